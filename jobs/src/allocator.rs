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

use citeflow_jobs::jemalloc::SmallClasses;
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
            let kinds: [(&str, fn() -> tikv_jemalloc_ctl::Result<usize>); 4] = [
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

/// Adds the allocator's statistics to `registry`.
pub(crate) fn register(registry: &Registry) -> prometheus::Result<()> {
    let opts = Opts::new(
        "allocator_bytes",
        "Memory as jemalloc sees it: allocated (live values), active (with size-class rounding), resident (with freed pages not yet returned), retained (address space kept unmapped), fragmented (bytes of small-value slabs that hold no live value)",
    );
    let bytes = IntGaugeVec::new(opts, &["kind"])?;
    registry.register(Box::new(AllocatorStats { bytes }))
}
