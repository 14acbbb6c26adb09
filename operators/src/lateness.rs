//! Completeness and lateness against the watermark advances of [`crate::watermark`].
//!
//! A window is closed once the watermark reaches its deadline (its end plus the allowed
//! lateness). [`close_windows`] marks every window row provisional or closed, flipping a row
//! at the epoch whose advance passes its deadline. [`judge_lateness`] decides, for each input
//! record, whether it is late: whether a window it touches — the window of its new content or
//! of the version it replaces — was closed by the watermark *the record saw*, which
//! [`WatermarkLog::seen_by`] derives from the record's offset. Both decisions therefore depend
//! only on the data, its offsets and the advance log, and a replay repeats them exactly.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use citeflow_engine::metrics::metrics;
use citeflow_engine::timestamps::EventTime;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::frontier::MutableAntichain;
use timely::progress::Timestamp;

use crate::stash::{stash_records, stash_updates, Stash};
use crate::watermark::{WatermarkAdvance, WatermarkLog};

/// What happens to a record that arrives for a closed window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatePolicy {
    /// Apply it: the window's row changes and its revision goes up.
    Apply,
    /// Do not apply it to the windows; route it to the dead-letter topic with reason `late`.
    DeadLetter,
}

impl LatePolicy {
    /// The policy's name in configuration and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            LatePolicy::Apply => "apply",
            LatePolicy::DeadLetter => "dead_letter",
        }
    }
}

/// A keyed, upsert-style input record as the lateness judge sees it.
pub trait Arrival: ExchangeData {
    /// Source partition.
    type Partition: ExchangeData + Ord;
    /// The key whose previous version the record replaces.
    type Key: ExchangeData + Hash + Eq;
    /// What the windows need of a version (at least its event time).
    type Summary: ExchangeData;
    /// Where the record was read: partition and offset.
    fn position(&self) -> (Self::Partition, i64);
    /// The record's key.
    fn key(&self) -> &Self::Key;
    /// The new version's summary; `None` when the record deletes the key.
    fn summary(&self) -> Option<Self::Summary>;
}

/// The judge's verdict on one record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Judgement<R, S> {
    /// The record.
    pub record: R,
    /// The summary of the version it replaces: the last one applied for its key.
    pub previous: Option<S>,
    /// The watermark the record saw.
    pub watermark: Option<EventTime>,
    /// Whether a window it touches had closed.
    pub late: bool,
    /// Whether it takes effect in the windows (it is not late, or the policy applies it).
    pub applied: bool,
}

/// The advances received so far, applied in time order as the frontier allows.
struct AdvanceLog<T: Timestamp, P> {
    stash: Stash<T, WatermarkAdvance<P>>,
    log: WatermarkLog<P>,
}

impl<T: Timestamp + TotalOrder, P: Ord + Clone> AdvanceLog<T, P> {
    fn new() -> Self {
        AdvanceLog { stash: BTreeMap::new(), log: WatermarkLog::default() }
    }

    /// Absorbs the advances stashed at times up to `time`.
    fn absorb_until(&mut self, time: &T) {
        while let Some(entry) = self.stash.first_entry() {
            if entry.key() > time {
                break;
            }
            for advance in entry.remove().1 {
                self.log.push(advance);
            }
        }
    }
}

/// The earliest time, among two stashes, at which both inputs are complete.
fn next_complete<T: Timestamp + TotalOrder, A, B>(
    first: &Stash<T, A>,
    second: &Stash<T, B>,
    frontiers: [&MutableAntichain<T>; 2],
) -> Option<T> {
    let next = [first.keys().next(), second.keys().next()].into_iter().flatten().min()?.clone();
    frontiers.iter().all(|frontier| !frontier.less_equal(&next)).then_some(next)
}

/// Judges each record against the watermark it saw; see the module documentation. `deadline`
/// gives the time at which the window of a summary closes. Late records are counted in
/// `citeflow_late_records_total{policy}`.
pub fn judge_lateness<'scope, T, R, D>(
    records: Stream<'scope, T, Vec<R>>,
    advances: Stream<'scope, T, Vec<WatermarkAdvance<R::Partition>>>,
    policy: LatePolicy,
    deadline: D,
) -> Stream<'scope, T, Vec<Judgement<R, R::Summary>>>
where
    T: Timestamp + TotalOrder,
    R: Arrival,
    D: Fn(&R::Summary) -> EventTime + 'static,
{
    let exchange = Exchange::new(|record: &R| record.key().hashed());
    records.binary_frontier(advances, exchange, Pipeline, "JudgeLateness", move |_capability, _info| {
        let mut arrivals: Stash<T, R> = BTreeMap::new();
        let mut log = AdvanceLog::new();
        let mut applied: HashMap<R::Key, R::Summary> = HashMap::new();
        move |(records, records_frontier), (advances, advances_frontier), output| {
            records.for_each(|capability, batch| stash_records(&mut arrivals, capability, batch));
            advances.for_each(|capability, batch| stash_records(&mut log.stash, capability, batch));
            while let Some(time) = next_complete(&arrivals, &log.stash, [records_frontier, advances_frontier]) {
                log.absorb_until(&time);
                let Some((capability, mut batch)) = arrivals.remove(&time) else { continue };
                batch.sort_by_key(|record| {
                    let (partition, offset) = record.position();
                    (offset, partition)
                });
                let mut session = output.session(&capability);
                for record in batch {
                    let (partition, offset) = record.position();
                    let watermark = log.log.seen_by(&partition, offset);
                    let summary = record.summary();
                    let previous = applied.get(record.key()).cloned();
                    let closed = |s: &R::Summary| watermark.is_some_and(|w| deadline(s) <= w);
                    let late = summary.iter().chain(previous.iter()).any(closed);
                    let takes_effect = !late || policy == LatePolicy::Apply;
                    if late {
                        let action = if takes_effect { LatePolicy::Apply } else { LatePolicy::DeadLetter };
                        metrics().late_records.with_label_values(&[action.name()]).inc();
                    }
                    if takes_effect {
                        match &summary {
                            Some(summary) => applied.insert(record.key().clone(), summary.clone()),
                            None => applied.remove(record.key()),
                        };
                    }
                    session.give(Judgement { record, previous, watermark, late, applied: takes_effect });
                }
            }
        }
    })
}

/// Marks each row of `rows` open (`false`) or closed (`true`): closed once the watermark has
/// reached `deadline(row)`. A row that closes is retracted as open and inserted as closed at
/// the epoch of the advance that closes it; a closed row stays closed.
pub fn close_windows<'scope, T, D, P, F>(
    rows: VecCollection<'scope, T, D>,
    advances: Stream<'scope, T, Vec<WatermarkAdvance<P>>>,
    deadline: F,
) -> VecCollection<'scope, T, (D, bool)>
where
    T: Timestamp + TotalOrder,
    D: ExchangeData + Hash,
    P: ExchangeData + Ord,
    F: Fn(&D) -> EventTime + 'static,
{
    rows.inner
        .binary_frontier(advances, Pipeline, Pipeline, "CloseWindows", move |_capability, _info| {
            let mut updates: Stash<T, (D, isize)> = BTreeMap::new();
            let mut log = AdvanceLog::new();
            let mut open: BTreeMap<EventTime, HashMap<D, isize>> = BTreeMap::new();
            move |(rows, rows_frontier), (advances, advances_frontier), output| {
                rows.for_each(|capability, batch| stash_updates(&mut updates, capability, batch));
                advances.for_each(|capability, batch| stash_records(&mut log.stash, capability, batch));
                while let Some(time) = next_complete(&updates, &log.stash, [rows_frontier, advances_frontier]) {
                    let capability = match (updates.get(&time), log.stash.get(&time)) {
                        (Some((capability, _)), _) | (None, Some((capability, _))) => capability.clone(),
                        (None, None) => unreachable!("the time comes from one of the stashes"),
                    };
                    log.absorb_until(&time);
                    let watermark = log.log.current();
                    let mut session = output.session(&capability);
                    if let Some(watermark) = watermark {
                        while let Some(entry) = open.first_entry() {
                            if *entry.key() > watermark {
                                break;
                            }
                            for (row, count) in entry.remove() {
                                session.give(((row.clone(), false), time.clone(), -count));
                                session.give(((row, true), time.clone(), count));
                            }
                        }
                    }
                    let Some((_, batch)) = updates.remove(&time) else { continue };
                    for (row, diff) in batch {
                        let due = deadline(&row);
                        let closed = watermark.is_some_and(|w| due <= w);
                        if !closed {
                            let counts = open.entry(due).or_default();
                            let count = counts.entry(row.clone()).or_insert(0);
                            *count += diff;
                            if *count == 0 {
                                counts.remove(&row);
                                if counts.is_empty() {
                                    open.remove(&due);
                                }
                            }
                        }
                        session.give(((row, closed), time.clone(), diff));
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
    use std::sync::{Arc, Mutex};
    use timely::dataflow::operators::vec::input::Handle;
    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::{Inspect, Probe};

    /// A document-like record: key, partition, offset, event time (None deletes).
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    struct Record(u8, u8, i64, Option<EventTime>);

    impl Arrival for Record {
        type Partition = u8;
        type Key = u8;
        type Summary = EventTime;
        fn position(&self) -> (u8, i64) {
            (self.1, self.2)
        }
        fn key(&self) -> &u8 {
            &self.0
        }
        fn summary(&self) -> Option<EventTime> {
            self.3
        }
    }

    fn advance(watermark: EventTime, offset: i64) -> WatermarkAdvance<u8> {
        WatermarkAdvance { watermark, positions: vec![(0, offset)] }
    }

    type Verdict = (u8, i64, bool, bool, Option<EventTime>);

    /// Judges rounds of records against windows of 10 that close at their end.
    fn judge(rounds: Vec<(Vec<Record>, Vec<WatermarkAdvance<u8>>)>, policy: LatePolicy) -> Vec<Verdict> {
        judge_with_deadline(rounds, policy, |time| time - time.rem_euclid(10) + 10)
    }

    /// Judges rounds of records (each round is one epoch, with the advances decided in it).
    fn judge_with_deadline(
        rounds: Vec<(Vec<Record>, Vec<WatermarkAdvance<u8>>)>,
        policy: LatePolicy,
        deadline: fn(EventTime) -> EventTime,
    ) -> Vec<Verdict> {
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let sink = verdicts.clone();
        timely::execute_directly(move |worker| {
            let mut records = Handle::<u64, Record>::new();
            let mut advances = Handle::<u64, WatermarkAdvance<u8>>::new();
            let probe = worker.dataflow(|scope| {
                let judged =
                    judge_lateness(scope.input_from(&mut records), scope.input_from(&mut advances), policy, move |time: &EventTime| {
                        deadline(*time)
                    });
                judged
                    .inspect(move |j: &Judgement<Record, EventTime>| {
                        sink.lock().unwrap().push((j.record.0, j.record.2, j.late, j.applied, j.previous))
                    })
                    .probe()
                    .0
            });
            for (round, (batch, decided)) in rounds.into_iter().enumerate() {
                for record in batch {
                    records.send(record);
                }
                for advance in decided {
                    advances.send(advance);
                }
                records.advance_to(round as u64 + 1);
                advances.advance_to(round as u64 + 1);
                worker.step_while(|| probe.less_than(records.time()));
            }
        });
        let verdicts = verdicts.lock().unwrap().clone();
        verdicts
    }

    /// Flink allowed lateness 0: an element for a window whose end the watermark has passed
    /// is late; under `Apply` it still fires a late (revised) result, Beam's late pane.
    #[test]
    fn a_record_for_a_closed_window_is_late_and_applied() {
        let verdicts = judge(
            vec![(vec![Record(1, 0, 0, Some(25))], vec![advance(30, 1)]), (vec![Record(2, 0, 1, Some(5))], vec![])],
            LatePolicy::Apply,
        );
        assert_eq!(verdicts, vec![(1, 0, false, true, None), (2, 1, true, true, None)]);
    }

    /// Flink `allowedLateness(5)`: after the watermark passes a window's end, the window
    /// still takes elements until end + 5 (a late firing, not late data); then they are late.
    #[test]
    fn allowed_lateness_keeps_a_window_taking_records_after_its_end() {
        let verdicts = judge_with_deadline(
            vec![
                (vec![], vec![advance(12, 0)]),
                (vec![Record(1, 0, 0, Some(5))], vec![advance(15, 1)]),
                (vec![Record(2, 0, 1, Some(6))], vec![]),
            ],
            LatePolicy::Apply,
            |time| time - time.rem_euclid(10) + 10 + 5,
        );
        assert_eq!(verdicts, vec![(1, 0, false, true, None), (2, 1, true, true, None)]);
    }

    /// Flink's side output for late data, made durable: the late record is not applied and
    /// the key's previous version stays the one windows hold.
    #[test]
    fn under_dead_letter_a_late_record_is_not_applied() {
        let verdicts = judge(
            vec![
                (vec![Record(1, 0, 0, Some(35))], vec![]),
                (vec![], vec![advance(40, 1)]),
                (vec![Record(1, 0, 1, Some(45)), Record(1, 0, 2, Some(47))], vec![]),
            ],
            LatePolicy::DeadLetter,
        );
        assert_eq!(verdicts[1], (1, 1, true, false, Some(35)), "moving a record out of a closed window is late");
        assert_eq!(verdicts[2], (1, 2, true, false, Some(35)), "the rejected version was never applied");
    }

    /// The decision depends on the offset, not on when the advance reached the judge: a record
    /// read before the advance's recorded position is on time even if judged later.
    #[test]
    fn lateness_follows_offsets_not_arrival_order() {
        let verdicts = judge(
            vec![(vec![], vec![advance(30, 5)]), (vec![Record(1, 0, 4, Some(5)), Record(2, 0, 5, Some(5))], vec![])],
            LatePolicy::Apply,
        );
        assert_eq!(verdicts, vec![(1, 4, false, true, None), (2, 5, true, true, None)]);
    }

    #[test]
    fn rows_close_when_the_watermark_reaches_their_deadline() {
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        timely::execute_directly(move |worker| {
            let mut rows = Handle::<u64, (EventTime, u64, isize)>::new();
            let mut advances = Handle::<u64, WatermarkAdvance<u8>>::new();
            let probe = worker.dataflow(|scope| {
                let rows = scope.input_from(&mut rows).as_collection();
                close_windows(rows, scope.input_from(&mut advances), |deadline: &EventTime| *deadline)
                    .inspect(move |update| sink.lock().unwrap().push(*update))
                    .probe()
                    .0
            });
            rows.send((10, 0, 1));
            rows.send((20, 0, 1));
            rows.advance_to(1);
            advances.advance_to(1);
            advances.send(advance(10, 1));
            advances.advance_to(2);
            rows.send((5, 2, 1));
            rows.send((20, 2, -1));
            rows.advance_to(3);
            advances.advance_to(3);
            worker.step_while(|| probe.less_than(rows.time()));
        });
        let mut updates = output.lock().unwrap().clone();
        consolidate_updates(&mut updates);
        assert_eq!(
            updates,
            vec![
                ((10, false), 0, 1),
                ((20, false), 0, 1),
                ((10, false), 1, -1),
                ((10, true), 1, 1),
                ((5, true), 2, 1),
                ((20, false), 2, -1)
            ]
        );
    }

    type Flagged = (EventTime, bool);

    fn consolidate_updates(updates: &mut Vec<(Flagged, u64, isize)>) {
        let mut keyed: Vec<((u64, Flagged), isize)> = updates.iter().map(|(d, t, r)| ((*t, *d), *r)).collect();
        consolidate(&mut keyed);
        *updates = keyed.into_iter().map(|((t, d), r)| (d, t, r)).collect();
    }
}
