//! Window maintenance throughput of the generic event-time operators of `citeflow_operators`,
//! on one timely worker.
//!
//! Scenarios, each in two phases timed separately:
//! - `tumbling`, `hopping`: `window_aggregate` with one-minute tumbling windows, and with
//!   one-minute windows every 15 seconds; `session`: `session_aggregate` with a 20-second gap.
//!   Each counts and sums its windows' values and is followed by `close_windows`, driven by
//!   watermark advances (at every epoch where it moves, the watermark is the greatest event
//!   time in the epochs before minus a 5-second bound).
//! - `lateness`: `judge_lateness` of the same versions as upsert arrivals keyed by record, late
//!   once the watermark they saw reached the end of their tumbling window, and applied.
//!
//! The workload (`citeflow_benches::windows`) is deterministic: 10,000 window keys, by default 1,000,000 insertions over 100 epochs
//! with event times spread over 1,000 seconds, mostly increasing (a record lags by up to 5
//! seconds, and one in a hundred by up to 20), then a fifth as many revisions of earlier
//! records drawn at random (a new event time within 5 seconds of the old one, a new value), in
//! epochs of the same size. A revision is two updates to the windows (a retraction and an
//! insertion) and one arrival for the judge.
//!
//! Each line reports the input updates, the time until the output was complete for every epoch,
//! updates/s and the output changes; the window scenarios check that every live record is
//! counted, and summed, in as many windows as it falls in.
//!
//!     cargo bench -p citeflow-benches --bench windows
//!     CITEFLOW_WINDOW_BENCH_UPDATES=200000 cargo bench -p citeflow-benches --bench windows

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use citeflow_benches::windows::{count_and_sum, workload, Change, Event, EventTime, Phase, Record, KEYS, TUMBLING};
use citeflow_operators::lateness::{close_windows, judge_lateness, Judgement, LatePolicy};
use citeflow_operators::watermark::WatermarkAdvance;
use citeflow_operators::window::{session_aggregate, window_aggregate, Window, Windows};
use differential_dataflow::input::Input;
use timely::dataflow::operators::vec::input::Handle;
use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::operators::{Inspect, Probe};

const HOPPING_SIZE: EventTime = 60_000;
const HOPPING_SLIDE: EventTime = HOPPING_SIZE / 4;
const HOPPING: Windows = Windows::Hopping { size: HOPPING_SIZE, slide: HOPPING_SLIDE };
const GAP: EventTime = 20_000;

/// A window row: key and window, with the count and the sum of its values.
type Row = ((u32, Window), (i64, i64));

/// One timed phase of a scenario.
struct Measurement {
    updates: usize,
    seconds: f64,
    changes: usize,
    note: String,
}

fn report(scenario: &str, phase: &str, m: &Measurement) {
    println!(
        "{:<16} {:>8} updates {:>7.2} s {:>6.0}k updates/s {:>9} output changes  {}",
        format!("{scenario}/{phase}"),
        m.updates,
        m.seconds,
        m.updates as f64 / m.seconds / 1_000.0,
        m.changes,
        m.note
    );
}

#[derive(Clone, Copy)]
enum Shape {
    Tumbling,
    Hopping,
    Session,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Tumbling => "tumbling",
            Shape::Hopping => "hopping",
            Shape::Session => "session",
        }
    }

    /// How many windows each record falls in.
    fn windows_per_record(self) -> i64 {
        match self {
            Shape::Tumbling | Shape::Session => 1,
            Shape::Hopping => HOPPING_SIZE / HOPPING_SLIDE,
        }
    }
}

/// The windows' output so far, accumulated: rows (and closed rows), with their counts and sums.
#[derive(Default)]
struct Tally {
    changes: usize,
    windows: isize,
    closed: isize,
    counted: i64,
    summed: i64,
}

/// Runs the windows of `shape`, then `close_windows`, over the phases.
fn windows(shape: Shape, phases: Arc<Vec<Phase>>) -> Vec<Measurement> {
    timely::execute_directly(move |worker| {
        let tally = Rc::new(RefCell::new(Tally::default()));
        let mut advances = Handle::<u64, WatermarkAdvance<u32>>::new();
        let (mut records, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (records, collection) = scope.new_collection::<Record, isize>();
            let rows = match shape {
                Shape::Tumbling => window_aggregate(collection, TUMBLING, count_and_sum),
                Shape::Hopping => window_aggregate(collection, HOPPING, count_and_sum),
                Shape::Session => session_aggregate(collection, GAP, count_and_sum),
            };
            let sink = tally.clone();
            let (probe, _) = close_windows(rows, scope.input_from(&mut advances), |((_, window), _): &Row| window.end)
                .inspect(move |((((_, _), (records, sum)), closed), _, diff)| {
                    let mut tally = sink.borrow_mut();
                    tally.changes += 1;
                    tally.windows += diff;
                    tally.closed += if *closed { *diff } else { 0 };
                    tally.counted += records * *diff as i64;
                    tally.summed += sum * *diff as i64;
                })
                .probe();
            (records, probe)
        });
        phases
            .iter()
            .map(|phase| {
                let changes_before = tally.borrow().changes;
                let clock = Instant::now();
                for epoch in &phase.epochs {
                    if let Some(advance) = &epoch.advance {
                        advances.send(advance.clone());
                    }
                    for change in &epoch.changes {
                        match change {
                            Change::Insert(event) => records.insert(event.record()),
                            Change::Revise { old, new } => {
                                records.remove(old.record());
                                records.insert(new.record());
                            }
                        }
                    }
                    let next = records.time() + 1;
                    records.advance_to(next);
                    records.flush();
                    advances.advance_to(next);
                    worker.step_while(|| probe.less_than(&next));
                }
                let seconds = clock.elapsed().as_secs_f64();
                let totals = tally.borrow();
                let multiplicity = shape.windows_per_record();
                assert!(totals.windows > 0 && totals.closed > 0, "{}: no windows, or none closed", shape.name());
                assert_eq!(totals.counted, multiplicity * phase.live, "{}: records counted in the windows", shape.name());
                assert_eq!(totals.summed, multiplicity * phase.value_sum, "{}: values summed in the windows", shape.name());
                Measurement {
                    updates: phase.epochs.iter().flat_map(|epoch| &epoch.changes).map(Change::updates).sum(),
                    seconds,
                    changes: totals.changes - changes_before,
                    note: format!("{} windows, {} closed", totals.windows, totals.closed),
                }
            })
            .collect()
    })
}

/// Runs `judge_lateness` (late records applied; deadline the end of the tumbling window) over
/// the phases' arrivals.
fn lateness(phases: Arc<Vec<Phase>>) -> Vec<Measurement> {
    timely::execute_directly(move |worker| {
        let judged = Rc::new(RefCell::new((0usize, 0usize)));
        let mut versions = Handle::<u64, Event>::new();
        let mut advances = Handle::<u64, WatermarkAdvance<u32>>::new();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let sink = judged.clone();
            let deadline = |time: &EventTime| TUMBLING.assign(*time)[0].end;
            judge_lateness(scope.input_from(&mut versions), scope.input_from(&mut advances), LatePolicy::Apply, deadline)
                .inspect(move |judgement: &Judgement<Event, EventTime>| {
                    let mut judged = sink.borrow_mut();
                    judged.0 += 1;
                    judged.1 += judgement.late as usize;
                })
                .probe()
                .0
        });
        phases
            .iter()
            .map(|phase| {
                let (judged_before, late_before) = *judged.borrow();
                let clock = Instant::now();
                for epoch in &phase.epochs {
                    if let Some(advance) = &epoch.advance {
                        advances.send(advance.clone());
                    }
                    for change in &epoch.changes {
                        versions.send(change.arrival());
                    }
                    let next = versions.time() + 1;
                    versions.advance_to(next);
                    advances.advance_to(next);
                    worker.step_while(|| probe.less_than(&next));
                }
                let seconds = clock.elapsed().as_secs_f64();
                let (judgements, late) = *judged.borrow();
                let arrivals = phase.epochs.iter().map(|epoch| epoch.changes.len()).sum();
                assert_eq!(judgements - judged_before, arrivals, "lateness: every arrival is judged once");
                Measurement {
                    updates: arrivals,
                    seconds,
                    changes: judgements - judged_before,
                    note: format!("{} late", late - late_before),
                }
            })
            .collect()
    })
}

fn main() {
    let insertions = std::env::var("CITEFLOW_WINDOW_BENCH_UPDATES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let revisions = insertions / 5;
    let phases = Arc::new(workload(insertions, revisions));
    println!(
        "{KEYS} keys, {insertions} insertions in {} epochs, then {revisions} revisions in {} epochs; one worker",
        phases[0].epochs.len(),
        phases[1].epochs.len()
    );
    for shape in [Shape::Tumbling, Shape::Hopping, Shape::Session] {
        for (phase, measurement) in phases.iter().zip(windows(shape, phases.clone())) {
            report(shape.name(), phase.name, &measurement);
        }
    }
    for (phase, measurement) in phases.iter().zip(lateness(phases.clone())) {
        report("lateness", phase.name, &measurement);
    }
}
