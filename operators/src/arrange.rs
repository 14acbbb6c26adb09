//! Arrangements whose batches hold no spare capacity for their updates.
//!
//! Differential's batch builder sizes a batch's `(time, diff)` columns for every update it
//! will hold, then stores one entry per run of updates that repeat the previous `(time, diff)`
//! (its singleton encoding). A batch of updates that all share one time and one diff — the
//! whole state of a collection inserted at once, as a restart's replay emits it (see
//! [`crate::upsert::upsert_replaying`]) — uses one entry and keeps the capacity of all the
//! others: 16 bytes per update for `u64` times and `isize` diffs. The spine merges most
//! batches into new, exactly sized ones, but the largest batch of a trace is rarely merged
//! again, so that capacity stays for as long as the job runs.
//!
//! [`ArrangeCompact::arrange_compact_named`] arranges like `arrange_by_key_named` (same
//! spine, batches with the same contents) with a sealer that gives that unused capacity back
//! when each batch is formed ([`CompactSealer`]); [`ArrangeCompact::antijoin_compact_named`]
//! is `antijoin` over such an arrangement. Its times are totally ordered, and its batcher is
//! [`TotalBatcher`], which sorts each update once instead of merging chains of them
//! (`arrange/batcher.rs`).
//!
//! Those batches also lay their columns out as [`Compact`]: vectors like differential's
//! `Vector` layout, and [`Offsets`] for the offsets, which hold the common patterns of a large
//! batch (a value per key, an update repeated per value) as three numbers instead of four
//! bytes per entry. Those [`CompactBatch`]es are sealed and merged writing a value's one update
//! directly instead of staging it (`arrange/batch.rs`).

use std::marker::PhantomData;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::ord_neu::val_batch::OrdValStorage;
use differential_dataflow::trace::implementations::spine_fueled::Spine;
use differential_dataflow::trace::implementations::{Layout, Update};
use differential_dataflow::{ExchangeData, VecCollection};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use crate::join::JoinByBatch;

mod batch;
mod batcher;
mod offsets;

pub use batch::{CompactBatch, CompactCursor, CompactMerger, CompactSealer};
pub use batcher::TotalBatcher;
pub use offsets::Offsets;

/// The layout of compact batches: a vector per column, and [`Offsets`] for the offsets.
pub struct Compact<U> {
    phantom: PhantomData<U>,
}

impl<U: Update<Diff: Ord>> Layout for Compact<U> {
    type KeyContainer = Vec<U::Key>;
    type ValContainer = Vec<U::Val>;
    type TimeContainer = Vec<U::Time>;
    type DiffContainer = Vec<U::Diff>;
    type OffsetContainer = Offsets;
}

/// A trace of [`CompactBatch`]es, as [`ArrangeCompact`]'s arrangements hold.
pub type CompactSpine<K, V, T, R> = Spine<std::rc::Rc<CompactBatch<((K, V), T, R)>>>;

/// Gives back what a batch's columns hold beyond their contents.
fn shrink<U: Update<Diff: Ord>>(storage: &mut OrdValStorage<Compact<U>>) {
    fn offsets(list: &mut Offsets) {
        let rest = list.rest_mut();
        rest.smol.shrink_to_fit();
        rest.chonk.shrink_to_fit();
    }
    storage.keys.shrink_to_fit();
    offsets(&mut storage.vals.offs);
    storage.vals.vals.shrink_to_fit();
    offsets(&mut storage.upds.offs);
    storage.upds.times.shrink_to_fit();
    storage.upds.diffs.shrink_to_fit();
}

/// Arranging and antijoining a collection of `(key, value)` pairs by key through
/// compact batches (see the module documentation).
pub trait ArrangeCompact<'scope, T: Timestamp + Lattice + TotalOrder, K: ExchangeData, V: ExchangeData> {
    /// As `arrange_by_key_named`, with batches that keep no spare capacity.
    ///
    /// ```
    /// use citeflow_operators::arrange::ArrangeCompact;
    /// use differential_dataflow::input::Input;
    ///
    /// timely::example(|scope| {
    ///     let pairs = scope.new_collection_from(vec![(1u32, 'a'), (1, 'b'), (2, 'c')]).1;
    ///     pairs.arrange_compact_named("Pairs").as_collection(|key, value| (*key, *value)).inspect(|x| println!("{x:?}"));
    /// });
    /// ```
    fn arrange_compact_named(self, name: &str) -> Arranged<'scope, TraceAgent<CompactSpine<K, V, T, isize>>>;

    /// As `antijoin`: the pairs whose key is not among `keys` (which should hold each key at
    /// most once), with the pairs arranged into compact batches.
    ///
    /// ```
    /// use citeflow_operators::arrange::ArrangeCompact;
    /// use differential_dataflow::input::Input;
    ///
    /// timely::example(|scope| {
    ///     let pairs = scope.new_collection_from(vec![(1u32, 'a'), (1, 'b'), (2, 'c')]).1;
    ///     let common = scope.new_collection_from(vec![1u32]).1;
    ///     pairs.antijoin_compact_named("Rare pairs", common).inspect(|x| println!("{x:?}"));
    /// });
    /// ```
    fn antijoin_compact_named(self, name: &str, keys: VecCollection<'scope, T, K>) -> VecCollection<'scope, T, (K, V)>;
}

impl<'scope, T, K, V> ArrangeCompact<'scope, T, K, V> for VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    fn arrange_compact_named(self, name: &str) -> Arranged<'scope, TraceAgent<CompactSpine<K, V, T, isize>>> {
        type Batcher<K, V, T> = TotalBatcher<(K, V), T, isize, CompactSealer>;
        self.arrange_named::<Batcher<K, V, T>, CompactSpine<K, V, T, isize>>(name, Batcher::new)
    }

    fn antijoin_compact_named(self, name: &str, keys: VecCollection<'scope, T, K>) -> VecCollection<'scope, T, (K, V)> {
        let matched = self
            .clone()
            .arrange_compact_named(&format!("Arrange: {name}"))
            .join_by_batch(keys.arrange_by_self(), |key, value, ()| Some((key.clone(), value.clone())));
        self.concat(matched.negate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input;
    use differential_dataflow::trace::implementations::spine_fueled::SpineBatch;
    use differential_dataflow::trace::implementations::Vector;
    use differential_dataflow::trace::{Trace, TraceReader};
    use std::collections::BTreeSet;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::Probe;
    use timely::progress::Antichain;

    /// An arrangement of `(u32, u32)` pairs in batches `B`.
    type Arrange<B> = for<'s> fn(VecCollection<'s, u64, (u32, u32)>) -> Arranged<'s, TraceAgent<Spine<Rc<B>>>>;

    /// What the batches of a trace hold, built by `arrange` from `records` pairs (one value
    /// per key) inserted at one time: the capacity of their time columns, the offsets they
    /// hold in lists (counted by `listed`), and their pairs. A batch keeps them in `storage`,
    /// laid out as `L`.
    fn arranged<L, B>(
        records: u32,
        arrange: Arrange<B>,
        storage: fn(&B) -> &OrdValStorage<L>,
        listed: fn(&L::OffsetContainer) -> usize,
    ) -> (usize, usize, Vec<(u32, u32)>)
    where
        L: Layout<KeyContainer = Vec<u32>, ValContainer = Vec<u32>, TimeContainer = Vec<u64>, DiffContainer = Vec<isize>> + 'static,
        B: SpineBatch<Time = u64> + 'static,
        Spine<Rc<B>>: Trace<Time = u64, Batch = Rc<B>>,
    {
        let seen = Arc::new(Mutex::new((0, 0, Vec::new())));
        let out = seen.clone();
        timely::execute_directly(move |worker| {
            let (mut input, probe, mut trace) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, pairs) = scope.new_collection::<(u32, u32), isize>();
                let arranged = arrange(pairs);
                let (probe, _) = arranged.stream.probe();
                (input, probe, arranged.trace)
            });
            for record in 0..records {
                input.insert((record, record * 2));
            }
            input.advance_to(1);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
            let batches = trace.batches_through(Antichain::from_elem(1).borrow()).expect("batches up to 1");
            let batches: Vec<&OrdValStorage<L>> = batches.iter().map(|batch| storage(batch)).collect();
            let capacity = batches.iter().map(|batch| batch.upds.times.capacity()).sum();
            let offsets = batches.iter().map(|batch| listed(&batch.vals.offs) + listed(&batch.upds.offs)).sum();
            // One value per key here, so keys and values pair up in order.
            let pairs = batches.iter().flat_map(|batch| batch.keys.iter().copied().zip(batch.vals.vals.iter().copied())).collect();
            *out.lock().expect("lock") = (capacity, offsets, pairs);
        });
        let result = seen.lock().expect("lock").clone();
        result
    }

    #[test]
    fn a_batch_at_one_time_keeps_one_time_and_no_offsets_not_one_per_update() {
        let (default_capacity, default_offsets, default_pairs) = arranged::<Vector<_>, _>(
            10_000,
            |pairs| pairs.arrange_by_key_named("Default"),
            |batch| &batch.storage,
            |offsets| offsets.len(),
        );
        let (compact_capacity, compact_offsets, compact_pairs) =
            arranged::<Compact<_>, _>(10_000, |pairs| pairs.arrange_compact_named("Compact"), |batch| &batch.0.storage, Offsets::listed);
        assert!(default_capacity >= 10_000, "differential's builder reserves a time per update ({default_capacity})");
        assert!(default_offsets >= 20_000, "differential holds an offset per key and per value ({default_offsets})");
        assert!(compact_capacity <= 1, "{compact_capacity}");
        assert_eq!(compact_offsets, 0, "one value per key and one update repeated: both offset columns are patterns");
        assert_eq!(default_pairs, compact_pairs);
        assert_eq!(compact_pairs.len(), 10_000);
    }

    /// Pairs (key, value) built from the pairs and the keys of `updates` by `build`.
    type Built = for<'s> fn(VecCollection<'s, u64, (u8, u8)>, VecCollection<'s, u64, u8>) -> VecCollection<'s, u64, (u8, isize)>;

    /// The output of `build` over `updates` (key, value, time, diff) and `keys` (each inserted
    /// once, at time 0), consolidated.
    fn output(updates: Vec<(u8, u8, u64, isize)>, keys: BTreeSet<u8>, build: Built) -> Vec<((u8, isize), u64, isize)> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        timely::execute_directly(move |worker| {
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, pairs) = scope.new_collection::<(u8, u8), isize>();
                let keys = scope.new_collection_from(keys).1;
                let out = out.clone();
                let (probe, _) = build(pairs, keys).inspect(move |update| out.lock().expect("lock").push(*update)).probe();
                (input, probe)
            });
            let mut updates = updates;
            updates.sort_by_key(|update| update.2);
            for (key, value, time, diff) in updates {
                input.advance_to(time);
                input.update((key, value), diff);
            }
            input.advance_to(u64::MAX);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
        });
        let mut updates = seen.lock().expect("lock").clone();
        differential_dataflow::consolidation::consolidate_updates(&mut updates);
        updates
    }

    fn compact_antijoin<'s>(
        pairs: VecCollection<'s, u64, (u8, u8)>,
        keys: VecCollection<'s, u64, u8>,
    ) -> VecCollection<'s, u64, (u8, isize)> {
        pairs.antijoin_compact_named("Rare", keys).map(|(key, value)| (key, isize::from(value)))
    }

    fn antijoin<'s>(pairs: VecCollection<'s, u64, (u8, u8)>, keys: VecCollection<'s, u64, u8>) -> VecCollection<'s, u64, (u8, isize)> {
        pairs.antijoin(keys).map(|(key, value)| (key, isize::from(value)))
    }

    proptest::proptest! {
        #[test]
        fn a_compact_antijoin_outputs_what_antijoin_does(
            updates in proptest::collection::vec((0u8..8, 0u8..8, 0u64..6, -1isize..=2), 0..60),
            keys in proptest::collection::btree_set(0u8..8, 0..4),
        ) {
            proptest::prop_assert_eq!(output(updates.clone(), keys.clone(), compact_antijoin), output(updates, keys, antijoin));
        }
    }
}
