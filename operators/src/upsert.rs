//! Upsert semantics: a stream of "set this key to this value (or delete it)" instructions
//! becomes a differential collection holding, per key, the latest value.
//!
//! Instructions are routed by key; at each time, once the input frontier has passed it, the
//! instruction with the greatest `order` wins for each key (a Kafka offset, say), and the
//! operator emits the retraction of the key's previous value and the insertion of the new
//! one. Keys whose value does not change produce nothing.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

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

/// Instructions waiting for the frontier to pass their time, with the capability to emit then.
type Pending<T, K, V, O> = (Capability<T>, Vec<Upsert<K, V, O>>);

/// Maintains the latest value per key; see the module documentation.
pub fn upsert<'scope, T, K, V, O>(stream: Stream<'scope, T, Vec<Upsert<K, V, O>>>) -> VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + TotalOrder,
    K: ExchangeData + Hash,
    V: ExchangeData,
    O: ExchangeData,
{
    let exchange = Exchange::new(|instruction: &Upsert<K, V, O>| instruction.key.hashed());
    stream
        .unary_frontier(exchange, "Upsert", |_capability, _info| {
            let mut state: HashMap<K, V> = HashMap::new();
            let mut stash: BTreeMap<T, Pending<T, K, V, O>> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|capability, data| {
                    if let Some(retained) = capability.retain_least(0) {
                        stash.entry(retained.time().clone()).or_insert_with(|| (retained, Vec::new())).1.append(data);
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (time, (capability, instructions)) = entry.remove_entry();
                    let mut latest: HashMap<K, (O, Option<V>)> = HashMap::new();
                    for Upsert { key, order, value } in instructions {
                        match latest.get(&key) {
                            Some((existing, _)) if *existing > order => {}
                            _ => {
                                latest.insert(key, (order, value));
                            }
                        }
                    }
                    let mut session = output.session(&capability);
                    for (key, (_, value)) in latest {
                        let previous = match &value {
                            Some(value) => state.insert(key.clone(), value.clone()),
                            None => state.remove(&key),
                        };
                        if previous == value {
                            continue;
                        }
                        if let Some(previous) = previous {
                            session.give(((key.clone(), previous), time.clone(), -1isize));
                        }
                        if let Some(value) = value {
                            session.give(((key, value), time.clone(), 1isize));
                        }
                    }
                }
            }
        })
        .as_collection()
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

    /// Runs the operator over `rounds` (one epoch each) and returns the final collection.
    fn run(rounds: Vec<Vec<Instruction>>, workers: usize) -> Vec<(u8, u8)> {
        let result = Arc::new(Mutex::new(Vec::new()));
        let sink = result.clone();
        timely::execute(timely::Config::process(workers), move |worker| {
            let mut input = Handle::<u64, Instruction>::new();
            let sink = sink.clone();
            let probe = worker.dataflow(|scope| {
                upsert(scope.input_from(&mut input)).inspect(move |(data, _, diff)| sink.lock().unwrap().push((*data, *diff))).probe().0
            });
            if worker.index() == 0 {
                for (round, instructions) in rounds.iter().enumerate() {
                    for instruction in instructions {
                        input.send(instruction.clone());
                    }
                    input.advance_to(round as u64 + 1);
                }
            }
            input.close();
            while !probe.done() {
                worker.step();
            }
        })
        .unwrap();
        let mut updates = result.lock().unwrap().clone();
        consolidate(&mut updates);
        assert!(updates.iter().all(|(_, diff)| *diff == 1), "{updates:?}");
        updates.into_iter().map(|(data, _)| data).collect()
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
    }

    #[test]
    fn the_greatest_order_wins_within_an_epoch() {
        let rounds = vec![vec![Upsert { key: 1, order: 5, value: Some(9) }, Upsert { key: 1, order: 2, value: Some(3) }]];
        assert_eq!(run(rounds, 1), vec![(1, 9)]);
    }
}
