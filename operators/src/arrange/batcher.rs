//! A batcher for totally ordered times: updates wait in one bucket per time and are sorted
//! once, when a batch takes them.
//!
//! Differential's `MergeBatcher` works for any partially ordered time. It sorts each chunk of
//! a few hundred updates as it arrives, merges the chunks into geometrically sized chains as
//! they come, merges every chain into one when the frontier advances, and walks that chain once
//! more to carve out the updates the new frontier releases: each update is moved and compared
//! about once per doubling of the data. When times are totally ordered, the updates a frontier
//! `[u]` releases are exactly those at times before `u`, so they can wait apart, by time, and
//! be sorted once when they leave.
//!
//! [`TotalBatcher`] keeps the updates of each time in chunks of about 64 KiB (a vector that
//! doubled as it grew would hold up to twice its updates, and three times while it moves).
//! Inserting appends each run of updates at one time to its chunks. Extracting at `[u]` moves
//! the updates of each time before `u` (all of them when the frontier is empty) into one vector
//! of their size, freeing the chunks as it goes, sorts and consolidates them, and seals them
//! into a batch with `S`; the times it keeps start at the least waiting one whose updates do not
//! all cancel (as `MergeBatcher`'s, whose frontier is taken after consolidation). A time whose
//! updates have doubled since they were last consolidated is consolidated, so that updates that
//! cancel within one time (a revision and its retraction) do not pile up while that time
//! waits: a time holds at most about twice its distinct updates, and each update is sorted a
//! logarithmic number of times at most.
//!
//! The batches it seals hold the same updates as `MergeBatcher`'s at the same frontiers, and it
//! reports the same frontiers (a test checks both against differential's).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use differential_dataflow::batcher::merge::Sealer;
use differential_dataflow::batcher::{Batcher, Extract};
use differential_dataflow::consolidation::consolidate_updates;
use differential_dataflow::difference::Semigroup;
use differential_dataflow::logging::Logger;
use timely::order::TotalOrder;
use timely::progress::frontier::{Antichain, AntichainRef};

/// Below this many updates a time's updates are left to its extraction to consolidate (a few
/// in tests, so that they consolidate as they wait).
const CONSOLIDATE_FROM: usize = if cfg!(test) { 4 } else { 1 << 16 };

/// The bytes of updates a chunk holds (a few updates' worth in tests, so that times span
/// several chunks).
const CHUNK_BYTES: usize = if cfg!(test) { 64 } else { 1 << 16 };

/// The updates waiting at one time, in chunks that stop growing at `CHUNK` updates, so that no
/// vector doubles its capacity beyond what it holds.
struct Waiting<D, T, R> {
    chunks: Vec<Vec<(D, T, R)>>,
    /// The updates the chunks hold.
    len: usize,
    /// How many updates they held when they were last consolidated.
    consolidated: usize,
}

impl<D: Ord, T: Ord, R: Semigroup> Waiting<D, T, R> {
    /// Updates a chunk holds at most (one started by [`Waiting::updates`] may hold more).
    const CHUNK: usize = match CHUNK_BYTES.checked_div(std::mem::size_of::<(D, T, R)>()) {
        Some(updates) => updates + 1,
        None => 1,
    };

    fn new() -> Self {
        Waiting { chunks: Vec::new(), len: 0, consolidated: 0 }
    }

    fn push(&mut self, update: (D, T, R)) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK || chunk.len() < chunk.capacity() => chunk.push(update),
            _ => {
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() { 0 } else { Self::CHUNK });
                chunk.push(update);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// All the updates, sorted and consolidated, in one vector of their size; the chunks are
    /// freed as they are moved into it.
    fn updates(&mut self) -> Vec<(D, T, R)> {
        let mut updates = match self.chunks.len() {
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut updates = Vec::with_capacity(self.len);
                for mut chunk in self.chunks.drain(..) {
                    updates.append(&mut chunk);
                }
                updates
            }
        };
        if self.consolidated != self.len {
            consolidate_updates(&mut updates);
        }
        self.len = 0;
        self.consolidated = 0;
        updates
    }

    /// Consolidates the updates in place, as one chunk.
    fn consolidate(&mut self) {
        let updates = self.updates();
        self.len = updates.len();
        self.consolidated = updates.len();
        if !updates.is_empty() {
            self.chunks.push(updates);
        }
    }
}

/// Forms batches of `(data, time, diff)` updates for totally ordered times, sealing them with
/// `S` (see the module documentation).
pub struct TotalBatcher<D, T, R, S> {
    waiting: BTreeMap<T, Waiting<D, T, R>>,
    /// The least waiting time, after the last extraction.
    frontier: Antichain<T>,
    sealer: PhantomData<S>,
}

impl<D, T, R, S> TotalBatcher<D, T, R, S> {
    /// An empty batcher; the arguments are those differential passes to a batcher's
    /// constructor (this one reports nothing to the logger).
    pub fn new(_logger: Option<Logger>, _operator: usize) -> Self {
        Self { waiting: BTreeMap::new(), frontier: Antichain::new(), sealer: PhantomData }
    }
}

impl<D: Ord, T: Ord + Clone, R: Semigroup, S> Batcher<Vec<(D, T, R)>> for TotalBatcher<D, T, R, S>
where
    S: Sealer<Vec<(D, T, R)>>,
    T: TotalOrder + timely::progress::Timestamp,
{
    fn insert(&mut self, container: &mut Vec<(D, T, R)>) {
        let mut updates = container.drain(..).peekable();
        while let Some(first) = updates.next() {
            let time = first.1.clone();
            let waiting = self.waiting.entry(time.clone()).or_insert_with(Waiting::new);
            waiting.push(first);
            while let Some(next) = updates.next_if(|update| update.1 == time) {
                waiting.push(next);
            }
            if waiting.len >= CONSOLIDATE_FROM.max(2 * waiting.consolidated) {
                waiting.consolidate();
            }
        }
    }
}

impl<D: Ord, T: Ord + Clone, R: Semigroup, S> Extract for TotalBatcher<D, T, R, S>
where
    S: Sealer<Vec<(D, T, R)>>,
    T: TotalOrder + timely::progress::Timestamp,
{
    type Time = T;
    type Output = S::Output;

    fn extract<'a>(&'a mut self, upper: AntichainRef<'_, T>) -> (Option<S::Output>, AntichainRef<'a, T>) {
        // Times are totally ordered, so a frontier holds at most one time.
        let kept = match upper.iter().next() {
            Some(upper) => self.waiting.split_off(upper),
            None => BTreeMap::new(),
        };
        let mut ready: Vec<Waiting<D, T, R>> = std::mem::replace(&mut self.waiting, kept).into_values().collect();
        let updates = match ready.pop() {
            Some(mut last) if ready.is_empty() => last.updates(),
            last => {
                let mut updates = Vec::with_capacity(ready.iter().chain(&last).map(|waiting| waiting.len).sum());
                for mut chunk in ready.into_iter().chain(last).flat_map(|waiting| waiting.chunks) {
                    updates.append(&mut chunk);
                }
                consolidate_updates(&mut updates);
                updates
            }
        };
        // The frontier is the least time whose updates do not all cancel, so that no capability
        // is held for a time with nothing to release.
        self.frontier.clear();
        while let Some(mut least) = self.waiting.first_entry() {
            let waiting = least.get_mut();
            if waiting.consolidated != waiting.len {
                waiting.consolidate();
            }
            if waiting.len == 0 {
                least.remove();
            } else {
                self.frontier.insert(least.key().clone());
                break;
            }
        }
        let batch = if updates.is_empty() { None } else { S::seal(&mut vec![updates]) };
        (batch, self.frontier.borrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::batcher::merge::vec::VecMerger;
    use differential_dataflow::batcher::merge::MergeBatcher;
    use differential_dataflow::trace::implementations::ContainerChunker;

    type Update = (u8, u64, isize);

    /// Seals a chain as the updates it holds, in order.
    struct Flatten;

    impl Sealer<Vec<Update>> for Flatten {
        type Output = Vec<Update>;

        fn seal(chain: &mut Vec<Vec<Update>>) -> Option<Vec<Update>> {
            let updates: Vec<Update> = chain.drain(..).flatten().collect();
            (!updates.is_empty()).then_some(updates)
        }
    }

    /// A round of [`extractions`]: updates (data, time after the last upper, diff), then the
    /// step the upper takes.
    type Round = (Vec<Update>, u64);

    type Merging = MergeBatcher<ContainerChunker<Vec<Update>>, VecMerger<u8, u64, isize>, Flatten>;

    /// What each extraction of `batcher` gives, over `rounds`: a round inserts its updates
    /// (data, time after the last upper, diff) as containers of at most `split` updates, then
    /// advances the upper by its step and extracts; a last extraction takes the rest.
    fn extractions<B: Batcher<Vec<Update>> + Extract<Time = u64, Output = Vec<Update>>>(
        mut batcher: B,
        rounds: &[Round],
        split: usize,
    ) -> Vec<(Option<Vec<Update>>, Vec<u64>)> {
        let mut upper = 0;
        let mut extracted = Vec::new();
        for (updates, step) in rounds {
            let updates: Vec<Update> = updates.iter().map(|(data, later, diff)| (*data, upper + later, *diff)).collect();
            for chunk in updates.chunks(split) {
                batcher.insert(&mut chunk.to_vec());
            }
            upper += step;
            let (batch, frontier) = batcher.extract(Antichain::from_elem(upper).borrow());
            extracted.push((batch, frontier.to_vec()));
        }
        let (batch, frontier) = batcher.extract(Antichain::new().borrow());
        extracted.push((batch, frontier.to_vec()));
        extracted
    }

    #[test]
    fn updates_that_cancel_release_nothing_and_hold_no_time() {
        let rounds = vec![(vec![(1, 2, 1), (1, 2, -1), (2, 3, 1)], 1)];
        let total = extractions(TotalBatcher::<u8, u64, isize, Flatten>::new(None, 0), &rounds, 10);
        assert_eq!(total, vec![(None, vec![3]), (Some(vec![(2, 3, 1)]), vec![])]);
    }

    proptest::proptest! {
        #[test]
        fn it_extracts_what_differentials_merge_batcher_does(
            rounds in proptest::collection::vec(
                (proptest::collection::vec((0u8..6, 0u64..4, -1isize..=1), 0..40), 0u64..3),
                0..12,
            ),
            split in 1usize..50,
        ) {
            let total = extractions(TotalBatcher::<u8, u64, isize, Flatten>::new(None, 0), &rounds, split);
            let merging = extractions(Merging::new(None, 0), &rounds, split);
            proptest::prop_assert_eq!(total, merging);
        }
    }
}
