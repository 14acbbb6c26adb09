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
            if let Some(bins) = small_bins() {
                let fragmented: usize = bins.iter().map(SmallBin::unused).sum();
                self.bytes.with_label_values(&["fragmented"]).set(i64::try_from(fragmented).unwrap_or(i64::MAX));
            }
        }
        self.bytes.collect()
    }
}

/// One of jemalloc's small size classes, over every arena: values of up to a few KiB share
/// slabs (runs of pages) of their class, and a slab stays resident while any of its regions
/// holds a live value.
struct SmallBin {
    /// The size class, in bytes.
    size: usize,
    /// Regions (values) of this class that are live.
    regions: usize,
    /// Slabs of this class that hold at least one live region.
    slabs: usize,
    /// Bytes per slab.
    slab_size: usize,
}

impl SmallBin {
    /// Bytes of this class's slabs that hold no live value.
    fn unused(&self) -> usize {
        (self.slabs * self.slab_size).saturating_sub(self.regions * self.size)
    }
}

/// Every small size class's statistics, or `None` when jemalloc does not report them.
fn small_bins() -> Option<Vec<SmallBin>> {
    /// jemalloc's `MALLCTL_ARENAS_ALL`: the statistics merged over every arena.
    const ALL_ARENAS: usize = 4096;
    fn read(name: String) -> Option<usize> {
        let name = format!("{name}\0");
        // SAFETY: each name read here is one of jemalloc's `size_t` statistics.
        unsafe { tikv_jemalloc_ctl::raw::read::<usize>(name.as_bytes()) }.ok()
    }
    // SAFETY: `arenas.nbins` is an `unsigned`.
    let bins = unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"arenas.nbins\0") }.ok()?;
    (0..bins)
        .map(|bin| {
            Some(SmallBin {
                size: read(format!("arenas.bin.{bin}.size"))?,
                regions: read(format!("stats.arenas.{ALL_ARENAS}.bins.{bin}.curregs"))?,
                slabs: read(format!("stats.arenas.{ALL_ARENAS}.bins.{bin}.curslabs"))?,
                slab_size: read(format!("arenas.bin.{bin}.slab_size"))?,
            })
        })
        .collect()
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
