//! The keys of an arrangement with more values than a limit, read from the arrangement itself.
//!
//! Differential's `count_total` counts the records of a collection by arranging them by
//! themselves; when the records are already arranged by key (for a join, say) and what is
//! wanted is which keys have too many values, that second arrangement holds every record
//! again, and every count change travels downstream. [`keys_over_limit`] reads the batches of
//! the existing arrangement instead, counts the values of each key the batch changes (among
//! those with a limit), and emits `(key, time, +1)` when the count rises above the key's limit
//! and `(key, time, -1)` when it falls back: the output is the collection of keys over their
//! limit, and it changes only when a key crosses it. Times must be totally ordered, as for
//! `count_total`: each change is applied to the count at the time before it. The operator
//! keeps no state beyond a handle on the trace, whose compaction it lets advance to its input
//! frontier (it walks the changed keys as [`crate::reduce`] does).

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::{BatchCursor, Cursor, Navigable, TraceReader};
use differential_dataflow::{ExchangeData, VecCollection};
use timely::order::TotalOrder;

use crate::reduce::changed_keys;

/// The keys of `arranged` with more values than `limit` gives them (`None`: no limit), as a
/// collection (see the module documentation).
///
/// ```
/// use citeflow_operators::count::keys_over_limit;
/// use differential_dataflow::input::Input;
///
/// timely::example(|scope| {
///     let pairs = scope.new_collection_from(vec![(1u32, 'a'), (1, 'b'), (2, 'c'), (2, 'd'), (3, 'e')]).1;
///     // The odd keys with more than one value: 1.
///     keys_over_limit(pairs.arrange_by_key(), |key: &u32| (key % 2 == 1).then_some(1)).inspect(|x| println!("{x:?}"));
/// });
/// ```
pub fn keys_over_limit<'scope, Tr, K, F>(arranged: Arranged<'scope, Tr>, limit: F) -> VecCollection<'scope, Tr::Time, K, isize>
where
    Tr: TraceReader<Batch: Navigable, Time: TotalOrder> + Clone + 'static,
    for<'a> BatchCursor<Tr>: Cursor<Key<'a> = &'a K, Time = Tr::Time, Diff = isize>,
    K: ExchangeData,
    F: Fn(&K) -> Option<isize> + 'static,
{
    let mut changes: Vec<(Tr::Time, isize)> = Vec::new();
    changed_keys(arranged, "KeysOverLimit", move |key: &K, batch, storage, before, output| {
        let Some(limit) = limit(key) else { return };
        let mut count = 0;
        before.updates(key, |_, diff| count += diff);
        while batch.val_valid(storage) {
            batch.map_times(storage, |time, diff| changes.push((BatchCursor::<Tr>::owned_time(time), BatchCursor::<Tr>::owned_diff(diff))));
            batch.step_val(storage);
        }
        consolidate(&mut changes);
        for (time, diff) in changes.drain(..) {
            let was_over = count > limit;
            count += diff;
            if was_over != (count > limit) {
                output.push((key.clone(), time, if was_over { -1 } else { 1 }));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use differential_dataflow::input::Input;
    use proptest::prelude::*;

    use super::*;

    /// Runs rounds of (key, value, insert?) changes; returns the keys over their limit at the end.
    fn run(rounds: Vec<Vec<(u8, u8, bool)>>) -> BTreeMap<u8, isize> {
        let out = Arc::new(Mutex::new(BTreeMap::new()));
        let sink = out.clone();
        timely::execute_directly(move |worker| {
            let (mut input, probe) = worker.dataflow::<u32, _, _>(|scope| {
                let (input, pairs) = scope.new_collection::<(u8, u8), isize>();
                let sink = sink.clone();
                let (probe, _) = keys_over_limit(pairs.arrange_by_key(), limit)
                    .inspect(move |(key, _, diff)| *sink.lock().unwrap().entry(*key).or_insert(0) += diff)
                    .probe();
                (input, probe)
            });
            for (round, changes) in rounds.into_iter().enumerate() {
                for (key, value, insert) in changes {
                    input.update((key, value), if insert { 1 } else { -1 });
                }
                input.advance_to(round as u32 + 1);
                input.flush();
                worker.step_while(|| probe.less_than(input.time()));
            }
        });
        let mut over = out.lock().unwrap().clone();
        over.retain(|_, diff| *diff != 0);
        over
    }

    /// Keys that are multiples of three have no limit; the others may have one value.
    fn limit(key: &u8) -> Option<isize> {
        (!key.is_multiple_of(3)).then_some(1)
    }

    proptest! {
        #[test]
        fn the_keys_over_their_limit_equal_a_count_from_scratch(rounds in proptest::collection::vec(proptest::collection::vec((0u8..8, 0u8..4, any::<bool>()), 0..12), 1..8)) {
            let mut multiset: BTreeMap<(u8, u8), isize> = BTreeMap::new();
            for (key, value, insert) in rounds.iter().flatten() {
                *multiset.entry((*key, *value)).or_insert(0) += if *insert { 1 } else { -1 };
            }
            let mut counts: BTreeMap<u8, isize> = BTreeMap::new();
            for ((key, _), diff) in multiset {
                *counts.entry(key).or_insert(0) += diff;
            }
            let expected: BTreeMap<u8, isize> =
                counts.into_iter().filter(|(key, count)| limit(key).is_some_and(|limit| *count > limit)).map(|(key, _)| (key, 1)).collect();
            prop_assert_eq!(run(rounds), expected);
        }
    }
}
