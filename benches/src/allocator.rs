//! What jemalloc holds, for benches that run with it as their global allocator: live values,
//! the pages they occupy, and where those pages are only partly used (fragmentation).

use citeflow_engine::jemalloc::SmallClasses;

/// Memory of this process, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident memory (`VmRSS`).
    pub rss: u64,
    /// The most resident memory so far (`VmHWM`).
    pub peak: u64,
    /// Held by live values (`stats.allocated`).
    pub allocated: u64,
    /// In pages that hold live values (`stats.active`).
    pub active: u64,
    /// Live values of the small size classes (up to 14 KiB), which share slabs.
    pub small: u64,
    /// The slabs of the small size classes: `small` and the free slots between its values.
    pub slabs: u64,
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// A fresh snapshot of the statistics.
pub fn memory() -> Memory {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let small = SmallClasses::read().unwrap_or_default();
    Memory {
        rss: status("VmRSS"),
        peak: status("VmHWM"),
        allocated: tikv_jemalloc_ctl::stats::allocated::read().unwrap_or_default() as u64,
        active: tikv_jemalloc_ctl::stats::active::read().unwrap_or_default() as u64,
        small: small.allocated as u64,
        slabs: small.slabs as u64,
    }
}

impl Memory {
    /// One line in MB: RSS, its peak, allocated, active, and the small classes' values and slabs.
    pub fn describe(&self) -> String {
        let mb = |bytes: u64| bytes as f64 / 1e6;
        format!(
            "rss {:.0} MB (peak {:.0}), allocated {:.0} MB, active {:.0} MB; small values {:.0} MB in {:.0} MB of slabs",
            mb(self.rss),
            mb(self.peak),
            mb(self.allocated),
            mb(self.active),
            mb(self.small),
            mb(self.slabs)
        )
    }
}
