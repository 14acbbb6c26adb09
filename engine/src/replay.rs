//! The end of a replay. A restarted job re-reads its inputs from the start up to the positions
//! its previous run committed; until it has, nothing downstream may be shown to readers, and
//! every intermediate version the replay passes through is work and memory spent on history.
//!
//! [`ReplayEnd::new`] watches the sources' positions (a partition and the next offset to read,
//! at the epoch that reached it) and emits one `()` to every worker, at the first time by which
//! every partition of the target has reached its offset. If the positions end first (the
//! inputs were exhausted short of the target), it emits at the last time it held. It always
//! emits exactly once, so an operator waiting for it never waits forever.
//!
//! `citeflow_operators::upsert::upsert_replaying` uses it to apply a replay's versions silently and
//! show only their outcome; [`crate::sink::commit_views`] to reconcile the views once it ends.

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;
use timely::ExchangeData;

/// The time a replay ends, as a stream carrying one `()` to every worker at that time.
#[derive(Clone)]
pub struct ReplayEnd<'scope, T: Timestamp> {
    stream: Stream<'scope, T, Vec<()>>,
}

impl<'scope, T: Timestamp + TotalOrder> ReplayEnd<'scope, T> {
    /// Watches `positions` (partition, next offset) until every partition of `target` has
    /// reached its offset; see the module documentation.
    pub fn new<P: ExchangeData + Ord>(positions: Stream<'scope, T, Vec<(P, i64)>>, target: BTreeMap<P, i64>) -> Self {
        let watcher = positions.scope().index() == 0;
        let stream = positions
            .unary_frontier(Exchange::new(|_| 0), "ReplayEnd", move |capability, _info| {
                let mut held = watcher.then_some(capability);
                let mut reached: BTreeMap<P, i64> = BTreeMap::new();
                let mut stash: BTreeMap<T, Vec<(P, i64)>> = BTreeMap::new();
                let complete = move |reached: &BTreeMap<P, i64>| {
                    target.iter().all(|(partition, offset)| reached.get(partition).is_some_and(|at| at >= offset))
                };
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        if let Some(time) = capability.least() {
                            stash.entry(time.clone()).or_default().append(data);
                        }
                    });
                    let Some(capability) = held.as_mut() else {
                        stash.clear();
                        return;
                    };
                    let mut end = complete(&reached).then(|| capability.time().clone());
                    while end.is_none() {
                        let Some(entry) = stash.first_entry() else { break };
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (time, positions) = entry.remove_entry();
                        for (partition, offset) in positions {
                            let at = reached.entry(partition).or_insert(offset);
                            *at = (*at).max(offset);
                        }
                        end = complete(&reached).then_some(time);
                    }
                    match (end, frontier.frontier().first()) {
                        (Some(time), _) => {
                            output.session(&capability.delayed(&time)).give(());
                            held = None;
                            stash.clear();
                        }
                        (None, Some(time)) => capability.downgrade(time),
                        (None, None) => {
                            output.session(&*capability).give(());
                            held = None;
                        }
                    }
                }
            })
            .broadcast();
        ReplayEnd { stream }
    }

    /// The stream: one `()` per worker, at the time the replay ends.
    pub fn stream(&self) -> Stream<'scope, T, Vec<()>> {
        self.stream.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::vec::input::Handle;
    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::Inspect;

    /// Feeds `rounds` of positions (one epoch each) and returns, per worker, the times the end
    /// was seen at.
    fn ends(rounds: Vec<Vec<(u8, i64)>>, target: BTreeMap<u8, i64>, workers: usize) -> Vec<(usize, u64)> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        timely::execute(timely::Config::process(workers), move |worker| {
            let index = worker.index();
            let mut input = Handle::<u64, (u8, i64)>::new();
            let sink = sink.clone();
            let target = target.clone();
            worker.dataflow(|scope| {
                ReplayEnd::new(scope.input_from(&mut input), target).stream().inspect_core(move |event| {
                    if let Ok((stamp, data)) = event {
                        let time = *stamp.least().expect("a time");
                        sink.lock().unwrap().extend(data.iter().map(|_| (index, time)));
                    }
                });
            });
            if index == 0 {
                for (round, positions) in rounds.iter().enumerate() {
                    for position in positions {
                        input.send(*position);
                    }
                    input.advance_to(round as u64 + 1);
                    worker.step();
                }
            }
        })
        .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        seen
    }

    #[test]
    fn ends_at_the_epoch_the_last_partition_reaches_its_offset() {
        let target: BTreeMap<u8, i64> = [(0, 5), (1, 3)].into();
        let rounds = vec![vec![(0, 2)], vec![(0, 5), (1, 1)], vec![(1, 3)], vec![(0, 9), (1, 9)]];
        assert_eq!(ends(rounds, target, 2), vec![(0, 2), (1, 2)], "every worker hears it once, at epoch 2");
    }

    #[test]
    fn inputs_ending_short_of_the_target_end_the_replay_too() {
        let target: BTreeMap<u8, i64> = [(0, 50)].into();
        let seen = ends(vec![vec![(0, 2)], vec![(0, 5)]], target, 2);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.iter().all(|(_, time)| *time >= 1), "{seen:?}");
    }

    #[test]
    fn an_empty_target_ends_at_once() {
        assert_eq!(ends(vec![vec![(0, 2)]], BTreeMap::new(), 1), vec![(0, 0)]);
    }
}
