//! Introspection from timely's and differential's own log events: how many updates each
//! arrangement of a worker physically holds (`citeflow_arrangement_records{worker, operator}`
//! and `citeflow_arrangement_batches{…}`), and how long each operator has been busy
//! (`citeflow_operator_busy_seconds_total{worker, operator}`, the time between timely's schedule
//! start and stop events: where the job's CPU goes) and each worker
//! (`citeflow_worker_busy_seconds_total{worker}`, the time its dataflows were scheduled: per
//! second of wall clock, the busy-time share an autoscaler sizes a job by).
//!
//! Differential reports every batch a trace takes in, every merge it completes and every batch
//! it drops; adding the first, replacing two inputs by their output for the second and removing
//! the third gives the updates the trace holds. That count is physical, not consolidated: an
//! arrangement whose count grows while the live records behind it do not is holding history —
//! the first thing to look at when a long-running job's memory grows.
//!
//! Operator names come from timely's operator log; install before building dataflows.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use timely::logging::{ScheduleEvent, StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;

use crate::metrics::Metrics;

/// Name of timely's log stream of system events.
const TIMELY_LOG: &str = "timely";
/// Name of differential's log stream of arrangement events.
const ARRANGE_LOG: &str = "differential/arrange";

/// What one arrangement holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Held {
    records: i64,
    batches: i64,
}

/// Per operator id, what its arrangement holds; operator names; when running operators started.
#[derive(Default)]
struct State {
    held: HashMap<usize, Held>,
    names: HashMap<usize, String>,
    /// Dataflows (operators at the root scope, whose busy time is that of their operators).
    dataflows: HashSet<usize>,
    started: HashMap<usize, Duration>,
}

impl State {
    fn apply(&mut self, event: &DifferentialEvent) -> Option<usize> {
        let (operator, records, batches) = match event {
            DifferentialEvent::Batch(batch) => (batch.operator, batch.length as i64, 1),
            DifferentialEvent::Merge(merge) => match merge.complete {
                Some(merged) => (merge.operator, merged as i64 - merge.length1 as i64 - merge.length2 as i64, -1),
                None => return None,
            },
            DifferentialEvent::Drop(dropped) => (dropped.operator, -(dropped.length as i64), -1),
            _ => return None,
        };
        let held = self.held.entry(operator).or_default();
        held.records += records;
        held.batches += batches;
        Some(operator)
    }

    /// Follows a schedule event at `time`; returns the operator (or dataflow) and how long it
    /// was busy when it stops.
    fn schedule(&mut self, time: Duration, event: &ScheduleEvent) -> Option<(usize, Duration)> {
        match event.start_stop {
            StartStop::Start => {
                self.started.insert(event.id, time);
                None
            }
            StartStop::Stop => self.started.remove(&event.id).map(|start| (event.id, time.saturating_sub(start))),
        }
    }

    fn label(&self, operator: usize) -> String {
        match self.names.get(&operator) {
            Some(name) => format!("{operator} {name}"),
            None => operator.to_string(),
        }
    }
}

/// Follows the arrangements of `worker`, publishing to `metrics`; install it before building
/// the dataflows whose operators it should name.
pub fn install(worker: &mut Worker, metrics: &'static Metrics) {
    let state = Rc::new(RefCell::new(State::default()));
    let worker_label = worker.index().to_string();
    let busy_label = worker_label.clone();
    let Some(mut register) = worker.log_register() else { return };
    let follow = state.clone();
    register.insert::<DifferentialEventBuilder, _>(ARRANGE_LOG, move |_time, events| {
        let Some(events) = events else { return };
        let mut state = follow.borrow_mut();
        let mut touched: Vec<usize> = events.iter().filter_map(|(_, event)| state.apply(event)).collect();
        touched.sort_unstable();
        touched.dedup();
        for operator in touched {
            let held = state.held[&operator].clone();
            let labels = [worker_label.as_str(), &state.label(operator)];
            metrics.arrangement_records.with_label_values(&labels).set(held.records);
            metrics.arrangement_batches.with_label_values(&labels).set(held.batches);
        }
    });
    register.insert::<TimelyEventBuilder, _>(TIMELY_LOG, move |_time, events| {
        let Some(events) = events else { return };
        let mut state = state.borrow_mut();
        let mut busy: HashMap<usize, Duration> = HashMap::new();
        let mut worker_busy = Duration::ZERO;
        for (time, event) in events.iter() {
            match event {
                TimelyEvent::Operates(operates) => {
                    state.names.insert(operates.id, operates.name.clone());
                    if operates.addr.len() == 1 {
                        state.dataflows.insert(operates.id);
                    }
                }
                TimelyEvent::Schedule(schedule) => match state.schedule(*time, schedule) {
                    Some((dataflow, elapsed)) if state.dataflows.contains(&dataflow) => worker_busy += elapsed,
                    Some((operator, elapsed)) => *busy.entry(operator).or_default() += elapsed,
                    None => {}
                },
                _ => {}
            }
        }
        if !worker_busy.is_zero() {
            metrics.worker_busy.with_label_values(&[busy_label.as_str()]).inc_by(worker_busy.as_secs_f64());
        }
        for (operator, elapsed) in busy {
            let labels = [busy_label.as_str(), &state.label(operator)];
            metrics.operator_busy.with_label_values(&labels).inc_by(elapsed.as_secs_f64());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::logging::{BatchEvent, DropEvent, MergeEvent};

    #[test]
    fn batches_merges_and_drops_balance() {
        let mut state = State::default();
        state.apply(&DifferentialEvent::Batch(BatchEvent { operator: 7, length: 10 }));
        state.apply(&DifferentialEvent::Batch(BatchEvent { operator: 7, length: 6 }));
        let start = MergeEvent { operator: 7, scale: 4, length1: 10, length2: 6, complete: None };
        state.apply(&DifferentialEvent::Merge(start.clone()));
        assert_eq!(state.held[&7], Held { records: 16, batches: 2 });
        state.apply(&DifferentialEvent::Merge(MergeEvent { complete: Some(4), ..start }));
        assert_eq!(state.held[&7], Held { records: 4, batches: 1 }, "the merge consolidated 16 updates into 4");
        state.apply(&DifferentialEvent::Drop(DropEvent { operator: 7, length: 4 }));
        assert_eq!(state.held[&7], Held { records: 0, batches: 0 });
    }

    #[test]
    fn an_operator_is_busy_from_its_start_to_its_stop() {
        let mut state = State::default();
        let event = |id, start_stop| ScheduleEvent { id, start_stop };
        let at = Duration::from_millis;
        assert_eq!(state.schedule(at(10), &event(0, StartStop::Start)), None);
        assert_eq!(state.schedule(at(11), &event(3, StartStop::Start)), None);
        assert_eq!(state.schedule(at(15), &event(3, StartStop::Stop)), Some((3, at(4))));
        assert_eq!(state.schedule(at(16), &event(0, StartStop::Stop)), Some((0, at(6))), "the dataflow spans its operators");
        assert_eq!(state.schedule(at(17), &event(4, StartStop::Stop)), None, "a stop without a start counts nothing");
    }
}
