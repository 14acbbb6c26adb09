//! What jemalloc reports about the small size classes, for whatever process runs with it as its
//! global allocator (the `citeflow` program, the benches).
//!
//! Values of up to a few KiB share slabs (runs of pages) of their size class, and a slab stays
//! resident while any of its values is live: a heap whose small values were freed out of order
//! keeps slabs that are mostly empty. This module reads only statistics; choosing the allocator
//! is the program's business, not the library's.

/// jemalloc's `MALLCTL_ARENAS_ALL`: the statistics merged over every arena.
const ALL_ARENAS: usize = 4096;

/// Bytes of small values, and of the slabs that hold them, as of the last statistics epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmallClasses {
    /// Bytes of live small values.
    pub allocated: usize,
    /// Bytes of the slabs that hold at least one live small value.
    pub slabs: usize,
}

impl SmallClasses {
    /// Reads them from jemalloc's statistics as of its last epoch (`tikv_jemalloc_ctl::epoch`),
    /// or `None` when jemalloc does not report them (it is not the process's allocator, or was
    /// built without statistics).
    pub fn read() -> Option<Self> {
        // SAFETY: `arenas.nbins` is an `unsigned`.
        let bins = unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"arenas.nbins\0") }.ok()?;
        let slabs = (0..bins)
            .map(|bin| {
                Some(read(&format!("stats.arenas.{ALL_ARENAS}.bins.{bin}.curslabs"))? * read(&format!("arenas.bin.{bin}.slab_size"))?)
            })
            .sum::<Option<usize>>()?;
        let allocated = read(&format!("stats.arenas.{ALL_ARENAS}.small.allocated"))?;
        Some(SmallClasses { allocated, slabs })
    }

    /// Bytes of the slabs that no live value uses: what fragmentation costs.
    pub fn fragmented(&self) -> usize {
        self.slabs.saturating_sub(self.allocated)
    }
}

/// One of jemalloc's `size_t` statistics.
fn read(name: &str) -> Option<usize> {
    let name = format!("{name}\0");
    // SAFETY: each name read here is one of jemalloc's `size_t` statistics.
    unsafe { tikv_jemalloc_ctl::raw::read::<usize>(name.as_bytes()) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragmentation_is_the_slabs_beyond_their_values() {
        let classes = SmallClasses { allocated: 700, slabs: 1024 };
        assert_eq!(classes.fragmented(), 324);
        assert_eq!(SmallClasses { allocated: 10, slabs: 0 }.fragmented(), 0);
    }
}
