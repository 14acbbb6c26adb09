//! Property test of the event-time operators together — watermark tracking, lateness
//! judging, upsert, tumbling windows and window closing — against a brute-force oracle that
//! replays the same epochs one message at a time.
//!
//! Random epochs carry upserts and deletions over several partitions, with out-of-order event
//! times and partitions that go quiet long enough to be idle. After every epoch the windows
//! (with their `closed` flags) must equal the oracle's; at the end the watermark advances and
//! every lateness verdict must equal the oracle's, and every message must have been judged
//! exactly once (none lost, under either late policy).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use citeflow_operators::aggregate::{count, sum_by, Group};
use citeflow_operators::lateness::{close_windows, judge_lateness, Arrival, LatePolicy};
use citeflow_operators::upsert::{upsert, Upsert};
use citeflow_operators::watermark::{track_watermarks, Observation, WatermarkAdvance, WatermarkSettings, WatermarkTracker};
use citeflow_operators::window::{window_aggregate, Window, Windows};
use differential_dataflow::consolidation::consolidate;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::input::Handle;
use timely::dataflow::operators::vec::{Filter, Input, Map};
use timely::dataflow::operators::{Concat, Inspect};

const PARTITIONS: u8 = 3;
const WINDOW: i64 = 10;

/// One message: key, partition, offset, event time and value (`None` deletes the key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Message {
    key: u8,
    partition: u8,
    offset: i64,
    content: Option<(i64, i64)>,
}

impl Arrival for Message {
    type Partition = u8;
    type Key = u8;
    type Summary = (i64, i64);

    fn position(&self) -> (u8, i64) {
        (self.partition, self.offset)
    }

    fn key(&self) -> &u8 {
        &self.key
    }

    fn summary(&self) -> Option<(i64, i64)> {
        self.content
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    settings: WatermarkSettings,
    lateness: i64,
    policy: LatePolicy,
}

impl Case {
    fn deadline(&self, time: i64) -> i64 {
        time - time.rem_euclid(WINDOW) + WINDOW + self.lateness
    }
}

type WindowRow = ((u8, Window), (i64, i64));

/// Generated epochs: the gap before each, and its messages as (key, partition, content).
type Rounds = Vec<(u64, Vec<(u8, u8, Option<(i64, i64)>)>)>;

/// What the dataflow or the oracle concluded.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    /// Per epoch, the windows with their closed flags.
    windows: Vec<BTreeSet<(WindowRow, bool)>>,
    /// The watermark advances, in order.
    advances: Vec<WatermarkAdvance<u8>>,
    /// Per message (partition, offset): late, applied.
    verdicts: BTreeMap<(u8, i64), (bool, bool)>,
}

/// Epochs (time, messages) with offsets assigned per partition.
fn number(rounds: &Rounds) -> Vec<(u64, Vec<Message>)> {
    let mut next = [0i64; PARTITIONS as usize];
    let mut epoch = 0;
    rounds
        .iter()
        .map(|(gap, messages)| {
            epoch += gap;
            let messages = messages
                .iter()
                .map(|(key, partition, content)| {
                    let offset = next[*partition as usize];
                    next[*partition as usize] += 1;
                    Message { key: *key, partition: *partition, offset, content: *content }
                })
                .collect();
            (epoch, messages)
        })
        .collect()
}

/// The epoch after epoch `index`: the next one, or well after the last.
fn next_epoch(epochs: &[(u64, Vec<Message>)], index: usize) -> u64 {
    epochs.get(index + 1).map_or(epochs[index].0 + 1_000_000, |(next, _)| *next)
}

fn positions(messages: &[Message]) -> BTreeMap<u8, i64> {
    let mut moved = BTreeMap::new();
    for message in messages {
        let position = moved.entry(message.partition).or_insert(0);
        *position = (*position).max(message.offset + 1);
    }
    moved
}

fn window_rows(state: &BTreeMap<u8, (i64, i64)>, case: Case, watermark: Option<i64>) -> BTreeSet<(WindowRow, bool)> {
    let mut groups: BTreeMap<(u8, Window), (i64, i64)> = BTreeMap::new();
    for (key, (time, value)) in state {
        let start = time - time.rem_euclid(WINDOW);
        let entry = groups.entry((*key, Window { start, end: start + WINDOW })).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += value;
    }
    groups
        .into_iter()
        .map(|(row, aggregate)| {
            let closed = watermark.is_some_and(|w| row.1.end + case.lateness <= w);
            ((row, aggregate), closed)
        })
        .collect()
}

/// The brute-force oracle: the watermark recomputed from scratch after every epoch.
fn oracle(epochs: &[(u64, Vec<Message>)], case: Case) -> Outcome {
    let settings = case.settings;
    let mut max_event: BTreeMap<u8, i64> = BTreeMap::new();
    let mut offsets: BTreeMap<u8, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut moved_at: BTreeMap<u8, u64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let mut watermark: Option<i64> = None;
    let mut state: BTreeMap<u8, (i64, i64)> = BTreeMap::new();
    let mut outcome = Outcome::default();
    for (index, (epoch, messages)) in epochs.iter().enumerate() {
        let mut ordered = messages.clone();
        ordered.sort_by_key(|m| (m.offset, m.partition));
        for message in &ordered {
            let previous = state.get(&message.key).copied();
            let closed = |content: &(i64, i64)| watermark.is_some_and(|w| case.deadline(content.0) <= w);
            let late = message.content.iter().chain(previous.iter()).any(closed);
            let applied = !late || case.policy == LatePolicy::Apply;
            if applied {
                match message.content {
                    Some(content) => state.insert(message.key, content),
                    None => state.remove(&message.key),
                };
            }
            outcome.verdicts.insert((message.partition, message.offset), (late, applied));
            if let Some((time, _)) = message.content {
                let max = max_event.entry(message.partition).or_insert(time);
                *max = (*max).max(time);
            }
        }
        for (partition, position) in positions(messages) {
            offsets.insert(partition, position);
            moved_at.insert(partition, *epoch);
        }
        let now = next_epoch(epochs, index);
        let partition_watermark =
            |p: &u8| max_event.get(p).map(|max| (max - settings.out_of_orderness).div_euclid(settings.resolution) * settings.resolution);
        let active: Vec<u8> = (0..PARTITIONS).filter(|p| now - moved_at[p] < settings.idle_timeout).collect();
        let candidate = if active.is_empty() {
            (0..PARTITIONS).filter_map(|p| partition_watermark(&p)).max()
        } else {
            active.iter().map(partition_watermark).collect::<Option<Vec<i64>>>().and_then(|w| w.into_iter().min())
        };
        if let Some(candidate) = candidate.filter(|c| watermark.is_none_or(|w| *c > w)) {
            watermark = Some(candidate);
            outcome.advances.push(WatermarkAdvance { watermark: candidate, positions: offsets.iter().map(|(p, o)| (*p, *o)).collect() });
        }
        outcome.windows.push(window_rows(&state, case, watermark));
    }
    outcome
}

fn count_and_sum(values: &Group<'_, i64>) -> (i64, i64) {
    (count(values), sum_by(|v: &i64| *v)(values))
}

/// The operators under test, one epoch at a time.
fn dataflow(epochs: Vec<(u64, Vec<Message>)>, case: Case) -> Outcome {
    timely::execute_directly(move |worker| {
        let windows = Arc::new(Mutex::new(Vec::new()));
        let advances = Arc::new(Mutex::new(Vec::new()));
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let mut messages = Handle::<u64, Message>::new();
        let mut moves = Handle::<u64, Observation<u8>>::new();
        let (window_sink, advance_sink, verdict_sink) = (windows.clone(), advances.clone(), verdicts.clone());
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let arrivals = scope.input_from(&mut messages);
            let events =
                arrivals.clone().flat_map(|m: Message| m.content.map(|(time, _)| Observation::Event { partition: m.partition, time }));
            let tracker = WatermarkTracker::new(case.settings, 0..PARTITIONS, &[], BTreeMap::new(), 0);
            let tracked = track_watermarks(events.concat(scope.input_from(&mut moves)), tracker, Vec::new());
            tracked.log.inspect(move |(advance, _, _)| advance_sink.lock().unwrap().push(advance.clone()));
            let judged =
                judge_lateness(arrivals, tracked.advances.clone(), case.policy, move |(time, _): &(i64, i64)| case.deadline(*time))
                    .inspect(move |j| verdict_sink.lock().unwrap().push(((j.record.partition, j.record.offset), (j.late, j.applied))));
            let applied = upsert(judged.filter(|j| j.applied).map(|j| Upsert {
                key: j.record.key,
                order: (j.record.offset, j.record.partition),
                value: j.record.content,
            }));
            let aggregates = window_aggregate(applied, Windows::Tumbling { size: WINDOW, offset: 0 }, count_and_sum);
            close_windows(aggregates, tracked.advances, move |((_, window), _): &WindowRow| window.end + case.lateness)
                .inspect(move |update| window_sink.lock().unwrap().push(*update))
                .probe()
                .0
        });
        let mut outcome = Outcome::default();
        for (index, (epoch, batch)) in epochs.iter().enumerate() {
            messages.advance_to(*epoch);
            moves.advance_to(*epoch);
            for (partition, next_offset) in positions(batch) {
                moves.send(Observation::Position { partition, next_offset });
            }
            for message in batch {
                messages.send(message.clone());
            }
            let next = next_epoch(&epochs, index);
            messages.advance_to(next);
            moves.advance_to(next);
            worker.step_while(|| probe.less_than(messages.time()));
            let mut updates: Vec<((WindowRow, bool), isize)> =
                windows.lock().unwrap().iter().filter(|(_, t, _)| t <= epoch).map(|(d, _, r)| (*d, *r)).collect();
            consolidate(&mut updates);
            assert!(updates.iter().all(|(_, diff)| *diff == 1), "every window row appears once: {updates:?}");
            outcome.windows.push(updates.into_iter().map(|(row, _)| row).collect());
        }
        outcome.advances = advances.lock().unwrap().clone();
        let verdicts = verdicts.lock().unwrap().clone();
        let messages: usize = epochs.iter().map(|(_, batch)| batch.len()).sum();
        assert_eq!(verdicts.len(), messages, "every message is judged exactly once");
        outcome.verdicts = verdicts.into_iter().collect();
        outcome
    })
}

fn epochs() -> impl Strategy<Value = Rounds> {
    let message = (0u8..6, 0..PARTITIONS, prop::option::weighted(0.85, (0i64..200, -5i64..20)));
    prop::collection::vec((1u64..40, prop::collection::vec(message, 0..6)), 1..25)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn event_time_operators_equal_the_oracle(
        rounds in epochs(),
        out_of_orderness in 0i64..30,
        resolution in prop::sample::select(vec![1i64, 5]),
        lateness in prop::sample::select(vec![0i64, 5]),
        dead_letter in any::<bool>(),
    ) {
        let case = Case {
            settings: WatermarkSettings { out_of_orderness, idle_timeout: 60, resolution },
            lateness,
            policy: if dead_letter { LatePolicy::DeadLetter } else { LatePolicy::Apply },
        };
        let epochs = number(&rounds);
        let expected = oracle(&epochs, case);
        let actual = dataflow(epochs, case);
        for (index, (expected, actual)) in expected.windows.iter().zip(&actual.windows).enumerate() {
            prop_assert_eq!(expected, actual, "windows after epoch {}", index);
        }
        prop_assert_eq!(&expected.advances, &actual.advances);
        prop_assert_eq!(&expected.verdicts, &actual.verdicts);
    }
}
