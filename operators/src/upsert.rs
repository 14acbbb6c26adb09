//! Upsert semantics: a stream of "set this key to this value (or delete it)" instructions
//! becomes a differential collection holding, per key, the latest value.
//!
//! Instructions are routed by key; at each time, once the input frontier has passed it, the
//! instruction with the greatest `order` wins for each key (a Kafka offset, say), and the
//! operator emits the retraction of the key's previous value and the insertion of the new
//! one. Keys whose value does not change produce nothing.
//!
//! After a restart, [`upsert_replaying`] applies the replayed instructions without emitting
//! them and emits the resulting state once, when the replay ends ([`citeflow_engine::replay`]): the
//! intermediate versions of a replayed history never reach the operators downstream.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::ToStream;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use citeflow_engine::replay::ReplayEnd;

/// One upsert instruction: set `key` to `value`, or delete it when `value` is `None`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Upsert<K, V, O> {
    /// The key.
    pub key: K,
    /// Among instructions for one key at one time, the greatest order wins.
    pub order: O,
    /// The new value, or `None` to delete the key.
    pub value: Option<V>,
}

/// A table by key. Keys come from outside (a message's key), so the hash is seeded per
/// process; foldhash's, as SipHash took a tenth of a restart's upserts.
type Table<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// Instructions waiting for the frontier to pass their time, with the capability to emit then.
type Pending<T, K, V, O> = (Capability<T>, Vec<Upsert<K, V, O>>);

/// Maintains the latest value per key; see the module documentation.
///
/// ```
/// use citeflow_operators::upsert::{upsert, Upsert};
/// use timely::dataflow::operators::vec::ToStream;
///
/// timely::example(|scope| {
///     let instructions = vec![
///         Upsert { key: 'a', order: 1, value: Some(1) },
///         Upsert { key: 'a', order: 2, value: Some(2) },
///         Upsert { key: 'b', order: 3, value: None },
///     ];
///     upsert(instructions.to_stream(scope)).inspect(|(data, _, diff)| assert_eq!((*data, *diff), (('a', 2), 1)));
/// });
/// ```
pub fn upsert<'scope, T, K, V, O>(stream: Stream<'scope, T, Vec<Upsert<K, V, O>>>) -> VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + TotalOrder,
    K: ExchangeData + Hash,
    V: ExchangeData,
    O: ExchangeData,
{
    upsert_replaying(stream, None)
}

/// [`upsert`] after a restart: until `replay` ends (at time `E`), instructions change the
/// operator's state and nothing is emitted; at `E` the whole state is emitted as insertions,
/// and from then on the operator is [`upsert`]. The collection is the same from `E` on; the
/// versions a replay passes through never travel downstream, so operators after it do the
/// work, and hold the memory, of the final versions only, as if loaded once. `None` is
/// [`upsert`].
pub fn upsert_replaying<'scope, T, K, V, O>(
    stream: Stream<'scope, T, Vec<Upsert<K, V, O>>>,
    replay: Option<&ReplayEnd<'scope, T>>,
) -> VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + TotalOrder,
    K: ExchangeData + Hash,
    V: ExchangeData,
    O: ExchangeData,
{
    upsert_keeping(stream, replay, V::clone)
}

/// [`upsert_replaying`], holding each value as `keep` makes it: a smaller form that must equal
/// the value (`keep(v) == v`), because the operator retracts a value by its kept form. A value
/// whose parts downstream operators need only at insertion (a view's row, once written) is
/// then held without them. A replay's values are held whole until they are emitted at its end.
pub fn upsert_keeping<'scope, T, K, V, O, F>(
    stream: Stream<'scope, T, Vec<Upsert<K, V, O>>>,
    replay: Option<&ReplayEnd<'scope, T>>,
    mut keep: F,
) -> VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + TotalOrder,
    K: ExchangeData + Hash,
    V: ExchangeData,
    O: ExchangeData,
    F: FnMut(&V) -> V + 'static,
{
    let mut replaying = replay.is_some();
    let end = match replay {
        Some(replay) => replay.stream(),
        None => Vec::<()>::new().to_stream(stream.scope()),
    };
    let exchange = Exchange::new(|instruction: &Upsert<K, V, O>| instruction.key.hashed());
    stream
        .binary_frontier(end, exchange, Pipeline, "Upsert", |_capability, _info| {
            let mut state: Table<K, V> = Table::default();
            let mut stash: BTreeMap<T, Pending<T, K, V, O>> = BTreeMap::new();
            let mut ended: Option<Capability<T>> = None;
            move |(input, frontier), (end, end_frontier), output| {
                input.for_each(|capability, data| {
                    if let Some(retained) = capability.retain_least(0) {
                        stash.entry(retained.time().clone()).or_insert_with(|| (retained, Vec::new())).1.append(data);
                    }
                });
                end.for_each(|capability, _| ended = capability.retain_least(0));
                loop {
                    if let Some(at) = ended.take_if(|at| {
                        let next_is_later = stash.first_key_value().is_none_or(|(time, _)| at.time().less_than(time));
                        replaying && next_is_later && !frontier.less_equal(at.time())
                    }) {
                        // The replayed values travel on and the operator keeps copies, as it
                        // does live: copies are sized to their contents, and the table to the
                        // live keys, not to every key the replay saw. Each value is swapped for
                        // its copy where it stands, so the table is not built again.
                        state.shrink_to_fit();
                        output.session(&at).give_iterator(state.iter_mut().map(|(key, value)| {
                            let kept = keep(value);
                            ((key.clone(), std::mem::replace(value, kept)), at.time().clone(), 1isize)
                        }));
                        replaying = false;
                    }
                    let Some(entry) = stash.first_entry() else { break };
                    let waiting_for_end = replaying && ended.is_none() && end_frontier.less_equal(entry.key());
                    if frontier.less_equal(entry.key()) || waiting_for_end {
                        break;
                    }
                    let (time, (capability, instructions)) = entry.remove_entry();
                    let changes = apply(&mut state, latest(instructions), !replaying, &mut keep);
                    output.session(&capability).give_iterator(changes.into_iter().map(|(data, diff)| (data, time.clone(), diff)));
                }
            }
        })
        .as_collection()
}

/// Per key, the instruction with the greatest order.
fn latest<K: Hash + Eq, V, O: Ord>(instructions: Vec<Upsert<K, V, O>>) -> Table<K, (O, Option<V>)> {
    let mut latest: Table<K, (O, Option<V>)> = Table::default();
    for Upsert { key, order, value } in instructions {
        match latest.get(&key) {
            Some((existing, _)) if *existing > order => {}
            _ => {
                latest.insert(key, (order, value));
            }
        }
    }
    latest
}

/// Applies one time's winning instructions to `state` and, if `emit`, returns the changes they
/// make: the previous value's retraction and the new value's insertion, for keys whose value
/// changed. Emitted values are held as `keep` makes them; others whole.
fn apply<K: Hash + Eq + Clone, V: PartialEq, O>(
    state: &mut Table<K, V>,
    latest: Table<K, (O, Option<V>)>,
    emit: bool,
    keep: &mut impl FnMut(&V) -> V,
) -> Vec<((K, V), isize)> {
    let mut changes = Vec::new();
    for (key, (_, value)) in latest {
        if !emit {
            match value {
                Some(value) => state.insert(key, value),
                None => state.remove(&key),
            };
            continue;
        }
        let previous = match &value {
            Some(value) => state.insert(key.clone(), keep(value)),
            None => state.remove(&key),
        };
        if previous == value {
            continue;
        }
        if let Some(previous) = previous {
            changes.push(((key.clone(), previous), -1));
        }
        if let Some(value) = value {
            changes.push(((key, value), 1));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::consolidation::consolidate;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::vec::input::Handle;
    use timely::dataflow::operators::vec::Input;

    type Instruction = Upsert<u8, u8, u32>;

    /// Runs the operator over `rounds` (one epoch each; a replay that ends at round `replayed`,
    /// if any) and returns every update it emitted.
    fn updates(rounds: Vec<Vec<Instruction>>, workers: usize, replayed: Option<u64>) -> Vec<((u8, u8), u64, isize)> {
        let result = Arc::new(Mutex::new(Vec::new()));
        let sink = result.clone();
        timely::execute(timely::Config::process(workers), move |worker| {
            let mut input = Handle::<u64, Instruction>::new();
            let mut positions = Handle::<u64, (u8, i64)>::new();
            let sink = sink.clone();
            let probe = worker.dataflow(|scope| {
                let replay = replayed.map(|end| ReplayEnd::new(scope.input_from(&mut positions), [(0, end as i64)].into()));
                upsert_replaying(scope.input_from(&mut input), replay.as_ref())
                    .inspect(move |update| sink.lock().unwrap().push(*update))
                    .probe()
                    .0
            });
            if worker.index() == 0 {
                for (round, instructions) in rounds.iter().enumerate() {
                    for instruction in instructions {
                        input.send(instruction.clone());
                    }
                    positions.send((0, round as i64));
                    input.advance_to(round as u64 + 1);
                    positions.advance_to(round as u64 + 1);
                }
            }
            input.close();
            positions.close();
            while !probe.done() {
                worker.step();
            }
        })
        .unwrap();
        let updates = result.lock().unwrap().clone();
        updates
    }

    /// The collection `updates` holds at `time` (all times if `None`).
    fn collection_at(updates: &[((u8, u8), u64, isize)], time: Option<u64>) -> Vec<(u8, u8)> {
        let mut at: Vec<_> =
            updates.iter().filter(|(_, t, _)| time.is_none_or(|time| *t <= time)).map(|(data, _, diff)| (*data, *diff)).collect();
        consolidate(&mut at);
        assert!(at.iter().all(|(_, diff)| *diff == 1), "{at:?}");
        at.into_iter().map(|(data, _)| data).collect()
    }

    /// Runs the operator over `rounds` (one epoch each) and returns the final collection.
    fn run(rounds: Vec<Vec<Instruction>>, workers: usize) -> Vec<(u8, u8)> {
        collection_at(&updates(rounds, workers, None), None)
    }

    /// From-scratch model: apply the instructions in (round, order) order.
    fn model(rounds: &[Vec<Instruction>]) -> Vec<(u8, u8)> {
        let mut state = BTreeMap::new();
        for instructions in rounds {
            let mut sorted = instructions.clone();
            sorted.sort_by_key(|i| i.order);
            for Upsert { key, value, .. } in sorted {
                match value {
                    Some(value) => state.insert(key, value),
                    None => state.remove(&key),
                };
            }
        }
        state.into_iter().collect()
    }

    fn instructions() -> impl Strategy<Value = Vec<Vec<Instruction>>> {
        let instruction = (0u8..6, proptest::option::of(0u8..4));
        proptest::collection::vec(proptest::collection::vec(instruction, 0..8), 1..6).prop_map(|rounds| {
            let mut order = 0;
            rounds
                .into_iter()
                .map(|round| {
                    round
                        .into_iter()
                        .map(|(key, value)| {
                            order += 1;
                            Upsert { key, order, value }
                        })
                        .collect()
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn incremental_upserts_equal_the_final_state(rounds in instructions()) {
            prop_assert_eq!(run(rounds.clone(), 2), model(&rounds));
        }

        #[test]
        fn a_replay_shows_only_its_outcome_and_then_every_change(rounds in instructions(), end in 0u64..6) {
            let end = end.min(rounds.len() as u64 - 1);
            let updates = updates(rounds.clone(), 2, Some(end));
            prop_assert!(updates.iter().all(|(_, time, diff)| *time >= end && (*time > end || *diff == 1)), "{:?}", updates);
            prop_assert_eq!(collection_at(&updates, Some(end)), model(&rounds[..=end as usize]));
            for time in end..rounds.len() as u64 {
                prop_assert_eq!(collection_at(&updates, Some(time)), model(&rounds[..=time as usize]));
            }
        }
    }

    #[test]
    fn the_greatest_order_wins_within_an_epoch() {
        let rounds = vec![vec![Upsert { key: 1, order: 5, value: Some(9) }, Upsert { key: 1, order: 2, value: Some(3) }]];
        assert_eq!(run(rounds, 1), vec![(1, 9)]);
    }

    /// A value equal to another when their first fields are: its second is what a kept form drops.
    #[derive(Clone, Debug)]
    struct Tagged(u8, &'static str);

    impl PartialEq for Tagged {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    #[test]
    fn kept_values_are_held_and_retracted_in_their_kept_form() {
        let mut state = Table::default();
        let mut keep = |value: &Tagged| Tagged(value.0, "");
        let insert = apply(&mut state, Table::from_iter([(1u8, (0u32, Some(Tagged(7, "payload"))))]), true, &mut keep);
        assert_eq!(insert.iter().map(|((_, v), d)| (v.1, *d)).collect::<Vec<_>>(), vec![("payload", 1)]);
        assert_eq!(state[&1].1, "", "held without its payload");
        let replace = apply(&mut state, Table::from_iter([(1u8, (1u32, Some(Tagged(8, "new"))))]), true, &mut keep);
        assert_eq!(replace.iter().map(|((_, v), d)| (v.0, v.1, *d)).collect::<Vec<_>>(), vec![(7, "", -1), (8, "new", 1)]);
        let same = apply(&mut state, Table::from_iter([(1u8, (2u32, Some(Tagged(8, "again"))))]), true, &mut keep);
        assert!(same.is_empty(), "a value equal to the kept one changes nothing");
    }
}
