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
//! batcher, same spine, same batches) with a sealer that gives that unused capacity back
//! when each batch is formed. The contents of every batch are unchanged.

use std::marker::PhantomData;

use differential_dataflow::batcher::merge::vec::VecMerger;
use differential_dataflow::batcher::merge::{MergeBatcher, Sealer};
use differential_dataflow::hashable::Hashable;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::ord_neu::OrdValBatch;
use differential_dataflow::trace::implementations::{ContainerChunker, Update, ValBuilder, ValSpine, Vector};
use differential_dataflow::{ExchangeData, VecCollection};
use timely::progress::Timestamp;

/// Seals chains into batches as `S` does, then shrinks the batch's time and diff columns to
/// what they hold.
pub struct Compacting<S>(PhantomData<S>);

impl<C, S, U> Sealer<C> for Compacting<S>
where
    S: Sealer<C, Output = OrdValBatch<Vector<U>>>,
    U: Update<Diff: Ord>,
{
    type Output = OrdValBatch<Vector<U>>;

    fn seal(chain: &mut Vec<C>) -> Option<Self::Output> {
        let mut batch = S::seal(chain)?;
        batch.storage.upds.times.shrink_to_fit();
        batch.storage.upds.diffs.shrink_to_fit();
        Some(batch)
    }
}

/// Arranging a collection of `(key, value)` pairs by key into compact batches (see the
/// module documentation).
pub trait ArrangeCompact<'scope, T: Timestamp + Lattice, K: ExchangeData, V: ExchangeData> {
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
    fn arrange_compact_named(self, name: &str) -> Arranged<'scope, TraceAgent<ValSpine<K, V, T, isize>>>;
}

impl<'scope, T, K, V> ArrangeCompact<'scope, T, K, V> for VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + Lattice + Ord,
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    fn arrange_compact_named(self, name: &str) -> Arranged<'scope, TraceAgent<ValSpine<K, V, T, isize>>> {
        type Batcher<K, V, T> =
            MergeBatcher<ContainerChunker<Vec<((K, V), T, isize)>>, VecMerger<(K, V), T, isize>, Compacting<ValBuilder<K, V, T, isize>>>;
        self.arrange_named::<Batcher<K, V, T>, ValSpine<K, V, T, isize>>(name, Batcher::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input;
    use differential_dataflow::trace::TraceReader;
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::Probe;
    use timely::progress::Antichain;

    /// Capacity of the time column and the contents, over the batches of a trace built from
    /// `records` inserted at one time, arranged compactly or not.
    fn arranged(records: u32, compact: bool) -> (usize, Vec<(u32, u32)>) {
        let seen = Arc::new(Mutex::new((0, Vec::new())));
        let out = seen.clone();
        timely::execute_directly(move |worker| {
            let (mut input, probe, mut trace) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, pairs) = scope.new_collection::<(u32, u32), isize>();
                let arranged = match compact {
                    true => pairs.arrange_compact_named("Compact"),
                    false => pairs.arrange_by_key_named("Default"),
                };
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
            let capacity = batches.iter().map(|batch| batch.storage.upds.times.capacity()).sum();
            // One value per key here, so keys and values pair up in order.
            let pairs =
                batches.iter().flat_map(|batch| batch.storage.keys.iter().copied().zip(batch.storage.vals.vals.iter().copied())).collect();
            *out.lock().expect("lock") = (capacity, pairs);
        });
        let result = seen.lock().expect("lock").clone();
        result
    }

    #[test]
    fn a_batch_at_one_time_keeps_one_time_not_one_per_update() {
        let (default_capacity, default_pairs) = arranged(10_000, false);
        let (compact_capacity, compact_pairs) = arranged(10_000, true);
        assert!(default_capacity >= 10_000, "differential's builder reserves a time per update ({default_capacity})");
        assert!(compact_capacity <= 1, "{compact_capacity}");
        assert_eq!(default_pairs, compact_pairs);
        assert_eq!(compact_pairs.len(), 10_000);
    }
}
