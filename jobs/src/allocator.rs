//! The process's allocator (jemalloc) and what it reports about memory, as metrics.
//!
//! Part of the `citeflow` program only (the global allocator is the program's choice, not the
//! library's). The gauges tell where resident memory goes: `allocated` is what the program's
//! live Rust values hold; `active` adds jemalloc's rounding to size classes; `resident` adds
//! freed pages jemalloc has not yet returned (it purges them after a few seconds); `fragmented`
//! is the part of `active` in slabs of small values that no live value uses (a slab returns to
//! the system only once all its values are freed). What the
//! process's RSS holds beyond `resident` belongs to C libraries that use the system allocator
//! (librdkafka's buffers) and to thread stacks.

use citeflow_engine::jemalloc::SmallClasses;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};

/// jemalloc, not the system allocator: a long-running job frees as much as it allocates, from
/// several worker threads, and glibc's per-thread arenas keep what was freed (a restart that
/// replayed months of revisions held twice the memory of the same records loaded once).
/// jemalloc returns unused pages to the system after a few seconds, from a background thread.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `citeflow_allocator_bytes{kind}`, read from jemalloc's statistics each time the metrics are
/// rendered.
struct AllocatorStats {
    bytes: IntGaugeVec,
}

impl Collector for AllocatorStats {
    fn desc(&self) -> Vec<&Desc> {
        self.bytes.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // jemalloc's statistics are a snapshot taken when the epoch advances.
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            /// Reads one of jemalloc's statistics.
            type Read = fn() -> tikv_jemalloc_ctl::Result<usize>;
            let kinds: [(&str, Read); 4] = [
                ("allocated", tikv_jemalloc_ctl::stats::allocated::read),
                ("active", tikv_jemalloc_ctl::stats::active::read),
                ("resident", tikv_jemalloc_ctl::stats::resident::read),
                ("retained", tikv_jemalloc_ctl::stats::retained::read),
            ];
            for (kind, read) in kinds {
                if let Ok(bytes) = read() {
                    self.bytes.with_label_values(&[kind]).set(i64::try_from(bytes).unwrap_or(i64::MAX));
                }
            }
            if let Some(small) = SmallClasses::read() {
                self.bytes.with_label_values(&["fragmented"]).set(i64::try_from(small.fragmented()).unwrap_or(i64::MAX));
            }
        }
        self.bytes.collect()
    }
}

/// Returns the system allocator's free memory to the system every few seconds, from a thread
/// of its own, as jemalloc's background thread does for jemalloc's. librdkafka allocates its
/// fetch buffers with the system allocator (glibc's), which keeps freed memory in its arenas:
/// a restart that replays the topics at the broker's full rate would otherwise hold the
/// buffers of that burst for good. A no-op where the system allocator is not glibc's.
pub(crate) fn trim_system_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// How often: as often as jemalloc's decay returns its own.
        const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
        let spawned = std::thread::Builder::new().name("heap-trim".into()).spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            // SAFETY: `malloc_trim` only returns free memory of glibc's heap to the system; it
            // is safe to call from any thread at any time.
            unsafe { libc::malloc_trim(0) };
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "the system allocator's free memory will not be returned");
        }
    }
}

/// The allocator's metric family (after the registry's prefix).
pub(crate) const FAMILY: &str = "allocator_bytes";

/// Adds the allocator's statistics to `registry`.
pub(crate) fn register(registry: &Registry) -> prometheus::Result<()> {
    let opts = Opts::new(
        FAMILY,
        "Memory as jemalloc sees it: allocated (live values), active (with size-class rounding), resident (with freed pages not yet returned), retained (address space kept unmapped), fragmented (bytes of small-value slabs that hold no live value)",
    );
    let bytes = IntGaugeVec::new(opts, &["kind"])?;
    registry.register(Box::new(AllocatorStats { bytes }))
}
