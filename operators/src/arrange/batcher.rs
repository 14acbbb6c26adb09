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
//! [`TotalBatcher`] keeps one vector of updates per time. Inserting appends each run of
//! updates at one time to its vector. Extracting at `[u]` takes the vectors of the times
//! before `u` (all of them when the frontier is empty), sorts and consolidates their updates
//! together, and seals them into a batch with `S`; the times it keeps start at the least
//! waiting one whose updates do not all cancel (as `MergeBatcher`'s, whose frontier is taken
//! after consolidation). A vector that has doubled since it was last consolidated is consolidated in
//! place, so that updates that cancel within one time (a revision and its retraction) do not
//! pile up while that time waits: a time's vector holds at most about twice its distinct
//! updates, and each update is sorted a logarithmic number of times at most.
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

/// Below this many updates a time's vector is left to its extraction to consolidate.
const CONSOLIDATE_FROM: usize = 1 << 16;

/// The updates waiting at one time.
struct Waiting<D, T, R> {
    updates: Vec<(D, T, R)>,
    /// How many updates the vector held when it was last consolidated.
    consolidated: usize,
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
            let waiting = self.waiting.entry(time.clone()).or_insert_with(|| Waiting { updates: Vec::new(), consolidated: 0 });
            waiting.updates.push(first);
            while let Some(next) = updates.next_if(|update| update.1 == time) {
                waiting.updates.push(next);
            }
            if waiting.updates.len() >= CONSOLIDATE_FROM.max(2 * waiting.consolidated) {
                consolidate_updates(&mut waiting.updates);
                waiting.consolidated = waiting.updates.len();
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
        let ready = std::mem::replace(&mut self.waiting, kept);
        let mut times = ready.into_values();
        let mut updates = times.next().map(|waiting| waiting.updates).unwrap_or_default();
        for waiting in times {
            updates.extend(waiting.updates);
        }
        consolidate_updates(&mut updates);
        // The frontier is the least time whose updates do not all cancel, so that no capability
        // is held for a time with nothing to release.
        self.frontier.clear();
        while let Some(mut least) = self.waiting.first_entry() {
            let waiting = least.get_mut();
            if waiting.consolidated != waiting.updates.len() {
                consolidate_updates(&mut waiting.updates);
                waiting.consolidated = waiting.updates.len();
            }
            if waiting.updates.is_empty() {
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
