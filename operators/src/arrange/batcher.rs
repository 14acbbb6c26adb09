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
//! [`TotalBatcher`] keeps the updates of each time unsorted, in chunks of about 64 KiB (a
//! vector that doubled as it grew would hold up to twice its updates). Extracting at `[u]`
//! takes the times before `u` (all of them when the frontier is empty), moves their updates
//! into one vector of their size, sorts and consolidates it once, and seals it into a batch
//! with `S`. A time that gathers many updates (128 MiB of them: a restart's replay emits a
//! collection's whole state at one time), or a batch of times that together hold that many,
//! sorts them in runs of about 2^18 updates and merges the runs as `MergeBatcher` merges its
//! chains, which frees a run's chunks as they are merged: one vector of all of them, beside the
//! chunks it is moved from, would hold that state twice. The times it keeps start at the least
//! waiting one whose updates do not all cancel (as `MergeBatcher`'s, whose frontier is taken
//! after consolidation).
//!
//! The batches it seals hold the same updates as `MergeBatcher`'s at the same frontiers, and it
//! reports the same frontiers (a test checks both against differential's).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use differential_dataflow::batcher::merge::vec::VecMerger;
use differential_dataflow::batcher::merge::{MergeLadder, Sealer};
use differential_dataflow::batcher::{Batcher, Extract};
use differential_dataflow::consolidation::consolidate_updates;
use differential_dataflow::difference::Semigroup;
use differential_dataflow::logging::Logger;
use timely::order::TotalOrder;
use timely::progress::frontier::{Antichain, AntichainRef};

/// From this many bytes of unsorted updates a time, or the times one batch takes, sort them in
/// runs and merge the runs as differential's batcher does. Below it they are sorted at once,
/// which costs less than merging runs through the ladder (the scale bench matches 8% faster than
/// when times spilled from 2^20 updates: its references' keys no longer do) but holds them twice
/// while they are moved into one vector.
const SPILL_BYTES: usize = 1 << 27;

/// The updates a spilled time sorts at once (a few in tests, so that a spill makes several
/// runs).
const RUN: usize = if cfg!(test) { 3 } else { 1 << 18 };

/// The bytes of updates a chunk holds (a few updates' worth in tests, so that times span
/// several chunks).
const CHUNK_BYTES: usize = if cfg!(test) { 64 } else { 1 << 16 };

/// The updates waiting at one time: unsorted, in chunks that stop growing at `CHUNK` updates
/// (so that no vector doubles its capacity beyond what it holds), and, for a large time, the
/// sorted and consolidated chains they spilled into.
struct Waiting<D: Ord + Clone + 'static, T: Ord + Clone + timely::PartialOrder + 'static, R: Semigroup + 'static> {
    chunks: Vec<Vec<(D, T, R)>>,
    /// The updates the chunks hold.
    len: usize,
    spilled: Option<MergeLadder<VecMerger<D, T, R>>>,
}

impl<D: Ord + Clone + 'static, T: Ord + Clone + timely::PartialOrder + 'static, R: Semigroup + 'static> Waiting<D, T, R> {
    /// Updates a chunk holds at most (one started by [`Waiting::settle`] may hold more).
    const CHUNK: usize = match CHUNK_BYTES.checked_div(std::mem::size_of::<(D, T, R)>()) {
        Some(updates) => updates + 1,
        None => 1,
    };

    /// Updates from which a time spills ([`SPILL_BYTES`] of them; a few in tests, so that times
    /// spill as they wait; never for updates without a size).
    const SPILL_FROM: usize = match SPILL_BYTES.checked_div(std::mem::size_of::<(D, T, R)>()) {
        _ if cfg!(test) => 4,
        Some(updates) => updates,
        None => usize::MAX,
    };

    fn new() -> Self {
        Waiting { chunks: Vec::new(), len: 0, spilled: None }
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

    /// Sorts and consolidates the updates of `chunks` in runs of about [`RUN`] updates, and
    /// merges each into `ladder` as a chain of chunks, which a merge frees one at a time.
    ///
    /// Sorting a run at once costs a fraction of merging its chunks into it: a ladder of 64 KiB
    /// chunks merges a run of 2^18 updates of 40 bytes through about seven levels, each a pass
    /// over them. A run is held twice while it is cut into chunks, so runs are kept short.
    fn spill_into(chunks: Vec<Vec<(D, T, R)>>, ladder: &mut MergeLadder<VecMerger<D, T, R>>) {
        let mut run = Vec::new();
        let mut len = 0;
        for chunk in chunks {
            len += chunk.len();
            run.push(chunk);
            if len >= RUN {
                ladder.insert_chain(Self::sorted_run(std::mem::take(&mut run), std::mem::take(&mut len)));
            }
        }
        ladder.insert_chain(Self::sorted_run(run, len));
    }

    /// The updates of `chunks` (`len` of them), sorted and consolidated, in chunks of at most
    /// [`Self::CHUNK`] updates.
    fn sorted_run(chunks: Vec<Vec<(D, T, R)>>, len: usize) -> Vec<Vec<(D, T, R)>> {
        let mut run = concatenated(chunks, len).into_iter();
        let mut chain = Vec::with_capacity(len.div_ceil(Self::CHUNK));
        loop {
            let chunk: Vec<_> = run.by_ref().take(Self::CHUNK).collect();
            if chunk.is_empty() {
                return chain;
            }
            chain.push(chunk);
        }
    }

    /// Spills the unsorted updates once they are many.
    fn bound(&mut self) {
        if self.len >= Self::SPILL_FROM {
            let ladder = self.spilled.get_or_insert_with(|| MergeLadder::new(None, 0));
            Self::spill_into(std::mem::take(&mut self.chunks), ladder);
            self.len = 0;
        }
    }

    /// Consolidates every update of this time, as one chunk or one chain; whether none are
    /// left.
    fn settle(&mut self) -> bool {
        match &mut self.spilled {
            Some(ladder) => {
                Self::spill_into(std::mem::take(&mut self.chunks), ladder);
                self.len = 0;
                let chain: Vec<_> = ladder.merge_all().into_iter().filter(|chunk| !chunk.is_empty()).collect();
                let empty = chain.is_empty();
                ladder.insert_chain(chain);
                empty
            }
            None => {
                let updates = concatenated(std::mem::take(&mut self.chunks), self.len);
                self.len = updates.len();
                if !updates.is_empty() {
                    self.chunks.push(updates);
                }
                self.len == 0
            }
        }
    }
}

/// The updates of `chunks` (`len` of them), sorted and consolidated in one vector of their
/// size; the chunks are freed as they are moved into it.
fn concatenated<D: Ord, T: Ord, R: Semigroup>(mut chunks: Vec<Vec<(D, T, R)>>, len: usize) -> Vec<(D, T, R)> {
    let mut updates = match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut updates = Vec::with_capacity(len);
            for mut chunk in chunks {
                updates.append(&mut chunk);
            }
            updates
        }
    };
    consolidate_updates(&mut updates);
    updates
}

/// Forms batches of `(data, time, diff)` updates for totally ordered times, sealing them with
/// `S` (see the module documentation).
pub struct TotalBatcher<D: Ord + Clone + 'static, T: Ord + Clone + timely::PartialOrder + 'static, R: Semigroup + 'static, S> {
    waiting: BTreeMap<T, Waiting<D, T, R>>,
    /// The least waiting time, after the last extraction.
    frontier: Antichain<T>,
    sealer: PhantomData<S>,
}

impl<D: Ord + Clone + 'static, T: Ord + Clone + timely::PartialOrder + 'static, R: Semigroup + 'static, S> TotalBatcher<D, T, R, S> {
    /// An empty batcher; the arguments are those differential passes to a batcher's
    /// constructor (this one reports nothing to the logger).
    pub fn new(_logger: Option<Logger>, _operator: usize) -> Self {
        Self { waiting: BTreeMap::new(), frontier: Antichain::new(), sealer: PhantomData }
    }
}

impl<D, T, R, S> Batcher<Vec<(D, T, R)>> for TotalBatcher<D, T, R, S>
where
    D: Ord + Clone + 'static,
    T: TotalOrder + timely::progress::Timestamp,
    R: Semigroup + 'static,
    S: Sealer<Vec<(D, T, R)>>,
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
            waiting.bound();
        }
    }
}

impl<D, T, R, S> Extract for TotalBatcher<D, T, R, S>
where
    D: Ord + Clone + 'static,
    T: TotalOrder + timely::progress::Timestamp,
    R: Semigroup + 'static,
    S: Sealer<Vec<(D, T, R)>>,
{
    type Time = T;
    type Output = S::Output;

    fn extract<'a>(&'a mut self, upper: AntichainRef<'_, T>) -> (Option<S::Output>, AntichainRef<'a, T>) {
        // Times are totally ordered, so a frontier holds at most one time.
        let kept = match upper.iter().next() {
            Some(upper) => self.waiting.split_off(upper),
            None => BTreeMap::new(),
        };
        let ready: Vec<Waiting<D, T, R>> = std::mem::replace(&mut self.waiting, kept).into_values().collect();
        let len: usize = ready.iter().map(|waiting| waiting.len).sum();
        let mut chain = if len < Waiting::<D, T, R>::SPILL_FROM && ready.iter().all(|waiting| waiting.spilled.is_none()) {
            // Few updates: sorted once, together.
            let updates = concatenated(ready.into_iter().flat_map(|waiting| waiting.chunks).collect(), len);
            if updates.is_empty() {
                Vec::new()
            } else {
                vec![updates]
            }
        } else {
            // Many: merged as differential's batcher merges, which frees as it goes.
            let mut ladder = MergeLadder::new(None, 0);
            for waiting in ready {
                Waiting::spill_into(waiting.chunks, &mut ladder);
                if let Some(mut spilled) = waiting.spilled {
                    ladder.insert_chain(spilled.merge_all());
                }
            }
            ladder.merge_all().into_iter().filter(|chunk| !chunk.is_empty()).collect()
        };
        // The frontier is the least time whose updates do not all cancel, so that no capability
        // is held for a time with nothing to release.
        self.frontier.clear();
        while let Some(mut least) = self.waiting.first_entry() {
            if least.get_mut().settle() {
                least.remove();
            } else {
                self.frontier.insert(least.key().clone());
                break;
            }
        }
        let batch = if chain.is_empty() { None } else { S::seal(&mut chain) };
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
