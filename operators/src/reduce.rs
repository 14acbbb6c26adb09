//! Reductions for totally ordered times, computed from the input arrangement alone.
//!
//! Differential's `reduce` works for any lattice of times: for each key a batch changes, it
//! replays the key's input history and its own output history (an output arrangement it
//! keeps) at every time the change can affect, and emits the difference. When times are
//! totally ordered, as an epoch counter's are, a key's output at a time is simply the logic
//! applied to its input accumulated through that time, and the times to visit are just the
//! times of the batch's changes to that key.
//!
//! [`ReduceTotal::reduce_total_named`] computes that: for each key a new batch changes, it
//! accumulates the key's values from the input trace up to the batch (the state before it),
//! applies the batch's changes one time at a time in time order, and after each time emits
//! the retraction of the key's previous output and the insertion of its new output when they
//! differ. The output equals `reduce`'s, update for update once consolidated; it keeps no
//! output arrangement and no history, only a handle on the input trace, whose compaction it
//! lets advance to its input frontier. Like `reduce`, the logic sees the values with a non-zero
//! count, ordered, and is not called for a key without any.
//!
//! [`changed_keys`] is the walk both this and [`crate::count::keys_over_limit`] do: for every
//! key the new batches change, a cursor on those batches, and the trace's batches before them
//! to look the key up in, one batch at a time ([`Before`]).

use differential_dataflow::collection::AsCollection;
use differential_dataflow::consolidation::consolidate;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::cursor::{cursor_list, CursorList};
use differential_dataflow::trace::{BatchCursor, Cursor, Navigable, TraceReader};
use differential_dataflow::{Data, ExchangeData, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{CapabilitySet, Operator};
use timely::order::TotalOrder;
use timely::progress::{Antichain, Timestamp};

use crate::arrange::ArrangeCompact;

/// The batches of a trace up to some frontier, each with its own cursor, to look keys up in,
/// in key order: each lookup in a batch starts where the last one in it ended. A key is sought
/// in one batch at a time, not in all of them at once through a `CursorList`, whose every seek
/// compares the batches' cursors again; the caller adds up a key's updates itself.
pub(crate) struct Before<B: Navigable> {
    batches: Vec<B>,
    cursors: Vec<B::Cursor>,
}

impl<B: Navigable> Before<B> {
    fn new(batches: Vec<B>) -> Self {
        let cursors = batches.iter().map(Navigable::cursor).collect();
        Before { batches, cursors }
    }

    /// Calls `each(value, diff)` for every update of `key`, a batch at a time (in value order
    /// within a batch, not across them). `key` must not come before the last key looked up.
    pub(crate) fn updates<'a, K: Ord + 'a>(
        &'a mut self,
        key: &K,
        mut each: impl FnMut(<B::Cursor as Cursor>::Val<'a>, <B::Cursor as Cursor>::Diff),
    ) where
        for<'b> B::Cursor: Cursor<Key<'b> = &'b K>,
    {
        for (batch, cursor) in self.batches.iter().zip(&mut self.cursors) {
            cursor.seek_key(batch, key);
            if cursor.get_key(batch) == Some(key) {
                while let Some(value) = cursor.get_val(batch) {
                    cursor.map_times(batch, |_, diff| each(value, <B::Cursor as Cursor>::owned_diff(diff)));
                    cursor.step_val(batch);
                }
            }
        }
    }
}

/// Calls `per_key(key, changes, storage, before, output)` for every key that the
/// arrangement's new batches change, in key order: `changes` reads those batches (`storage`),
/// positioned at the key; `before` holds the trace's batches up to them, for `per_key` to look
/// the key up in (keys come in order, so each lookup starts where the last one ended). What
/// `per_key` leaves in `output` is emitted.
/// Times must be totally ordered, so that the trace up to the batches is the state before
/// every change in them.
pub(crate) fn changed_keys<'scope, Tr, K, D, F>(
    arranged: Arranged<'scope, Tr>,
    name: &str,
    mut per_key: F,
) -> VecCollection<'scope, Tr::Time, D, isize>
where
    Tr: TraceReader<Batch: Navigable, Time: TotalOrder> + Clone + 'static,
    for<'a> BatchCursor<Tr>: Cursor<Key<'a> = &'a K, Time = Tr::Time>,
    K: 'static,
    D: Data,
    F: FnMut(&K, &mut CursorList<BatchCursor<Tr>>, &Vec<Tr::Batch>, &mut Before<Tr::Batch>, &mut Vec<(D, Tr::Time, isize)>) + 'static,
{
    let mut trace = arranged.trace.clone();
    arranged
        .stream
        .unary_frontier(Pipeline, name, move |_, _| {
            let mut lower = Antichain::from_elem(<Tr::Time as Timestamp>::minimum());
            let mut upper = lower.clone();
            let mut produced = Vec::new();
            move |(input, _frontier), output| {
                lower.clone_from(&upper);
                let mut capabilities = CapabilitySet::new();
                let mut batches = Vec::new();
                input.for_each(|capability, received| {
                    for held in capability.retain_stamp(0).iter() {
                        capabilities.insert(held.clone());
                    }
                    for batch in received.drain(..) {
                        // Batches arrive in order: the last one's upper is the new upper.
                        upper.clone_from(batch.upper());
                        batches.push(batch);
                    }
                });
                if !capabilities.is_empty() {
                    let mut session = output.session(&capabilities);
                    let (mut changes, storage) = cursor_list(batches.into_iter().filter_map(|b| b.inner).collect());
                    let mut before =
                        Before::new(trace.batches_through(lower.borrow()).expect("the trace is compacted no further than its lower"));
                    while let Some(key) = changes.get_key(&storage) {
                        per_key(key, &mut changes, &storage, &mut before, &mut produced);
                        for update in produced.drain(..) {
                            session.give(update);
                        }
                        changes.step_key(&storage);
                    }
                }
                trace.set_logical_compaction(upper.borrow());
                trace.set_physical_compaction(upper.borrow());
            }
        })
        .as_collection()
}

/// Reducing a collection of `(key, value)` pairs by key when times are totally ordered (see
/// the module documentation).
pub trait ReduceTotal<'scope, T: Timestamp + Lattice + TotalOrder, K: ExchangeData, V: ExchangeData> {
    /// As `reduce_named`: for each key whose values changed, `logic` turns its values (those
    /// with a non-zero count, ordered) into its output values. The input is arranged with
    /// batches that keep no spare capacity ([`ArrangeCompact::arrange_compact_named`]); the
    /// output is not arranged.
    ///
    /// ```
    /// use citeflow_operators::reduce::ReduceTotal;
    /// use differential_dataflow::input::Input;
    ///
    /// timely::example(|scope| {
    ///     let pairs = scope.new_collection_from(vec![(1u32, 'a'), (1, 'b'), (2, 'c')]).1;
    ///     let counts = pairs.reduce_total_named("Count", |_key, values, output| output.push((values.len(), 1)));
    ///     counts.inspect(|x| println!("{x:?}"));
    /// });
    /// ```
    fn reduce_total_named<V2, L>(self, name: &str, logic: L) -> VecCollection<'scope, T, (K, V2)>
    where
        V2: Data,
        L: FnMut(&K, &[(&V, isize)], &mut Vec<(V2, isize)>) + 'static;
}

impl<'scope, T, K, V> ReduceTotal<'scope, T, K, V> for VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    fn reduce_total_named<V2, L>(self, name: &str, mut logic: L) -> VecCollection<'scope, T, (K, V2)>
    where
        V2: Data,
        L: FnMut(&K, &[(&V, isize)], &mut Vec<(V2, isize)>) + 'static,
    {
        let arranged = self.arrange_compact_named(&format!("Arrange: {name}"));
        let (mut previous, mut next) = (Vec::new(), Vec::new());
        changed_keys(arranged, name, move |key: &K, changes, storage, before, output| {
            let mut values: Vec<(&V, isize)> = Vec::new();
            before.updates(key, |value, diff| values.push((value, diff)));
            consolidate(&mut values);
            let mut updates: Vec<(T, &V, isize)> = Vec::new();
            while let Some(value) = changes.get_val(storage) {
                changes.map_times(storage, |time, diff| updates.push((time.clone(), value, *diff)));
                changes.step_val(storage);
            }
            // Stable: each time's values stay in order.
            updates.sort_by(|a, b| a.0.cmp(&b.0));
            let mut reduce = |values: &[(&V, isize)], into: &mut Vec<(V2, isize)>| {
                into.clear();
                if !values.is_empty() {
                    logic(key, values, into);
                }
            };
            reduce(&values, &mut previous);
            for at_time in updates.chunk_by(|a, b| a.0 == b.0) {
                values.extend(at_time.iter().map(|(_, value, diff)| (*value, *diff)));
                consolidate(&mut values);
                reduce(&values, &mut next);
                if next != previous {
                    let time = &at_time[0].0;
                    let retracted = previous.drain(..).map(|(value, diff)| ((key.clone(), value), time.clone(), -diff));
                    output.extend(retracted);
                    output.extend(next.iter().map(|(value, diff)| ((key.clone(), value.clone()), time.clone(), *diff)));
                    std::mem::swap(&mut previous, &mut next);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use differential_dataflow::consolidation::consolidate_updates;
    use differential_dataflow::input::Input;
    use proptest::prelude::*;

    use super::*;

    /// An output row: the sum of a key's values, with -1; and per value held more than once,
    /// the value and its count.
    type Row = (u8, (isize, isize));

    fn logic(_key: &u8, values: &[(&u8, isize)], output: &mut Vec<((isize, isize), isize)>) {
        output.push(((values.iter().map(|(value, count)| isize::from(**value) * count).sum(), -1), 1));
        output.extend(values.iter().filter(|(_, count)| *count > 1).map(|(value, count)| ((isize::from(**value), *count), 1)));
    }

    /// A reduction of `(key, value)` pairs into [`Row`]s.
    type Reduction = for<'s> fn(VecCollection<'s, u64, (u8, u8)>) -> VecCollection<'s, u64, Row>;

    /// The output of `reduction` over rounds of (key, value, diff) changes, each round at the
    /// next time, consolidated. Paced, each round's output is awaited before the next round;
    /// otherwise the rounds are queued and reach the reduction in batches of several times.
    fn output(rounds: &[Vec<(u8, u8, isize)>], paced: bool, reduction: Reduction) -> Vec<(Row, u64, isize)> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        let rounds = rounds.to_vec();
        timely::execute_directly(move |worker| {
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, pairs) = scope.new_collection::<(u8, u8), isize>();
                let out = out.clone();
                let (probe, _) = reduction(pairs).inspect(move |update| out.lock().expect("lock").push(*update)).probe();
                (input, probe)
            });
            for (round, changes) in rounds.into_iter().enumerate() {
                for (key, value, diff) in changes {
                    input.update((key, value), diff);
                }
                input.advance_to(round as u64 + 1);
                input.flush();
                if paced {
                    worker.step_while(|| probe.less_than(input.time()));
                }
            }
            input.advance_to(u64::MAX);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
        });
        let mut updates = seen.lock().expect("lock").clone();
        consolidate_updates(&mut updates);
        updates
    }

    fn total<'s>(pairs: VecCollection<'s, u64, (u8, u8)>) -> VecCollection<'s, u64, Row> {
        pairs.reduce_total_named("Total", logic)
    }

    fn differential<'s>(pairs: VecCollection<'s, u64, (u8, u8)>) -> VecCollection<'s, u64, Row> {
        pairs.reduce(logic)
    }

    proptest! {
        #[test]
        fn a_total_reduction_outputs_what_reduce_does(
            rounds in proptest::collection::vec(proptest::collection::vec((0u8..6, 0u8..6, -1isize..=2), 0..12), 1..8),
            paced in any::<bool>(),
        ) {
            prop_assert_eq!(output(&rounds, paced, total), output(&rounds, paced, differential));
        }
    }
}
