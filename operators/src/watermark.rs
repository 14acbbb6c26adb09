//! Event-time watermarks: per source partition, the largest event time seen minus a bound on
//! out-of-orderness; for the job, the minimum over the partitions that are not idle.
//!
//! The job's watermark depends on how far each partition had been read when it was computed,
//! which is a matter of processing speed. So that a replay reaches the same event-time
//! decisions as the live run, every advance is recorded as a [`WatermarkAdvance`]: the new
//! watermark and the position of every partition at that moment. A record at offset `o` of
//! partition `p` sees the greatest watermark whose recorded position of `p` is at most `o`
//! ([`WatermarkLog::seen_by`]) — a function of the data and the log, not of timing. The log is
//! stored with each commit; after a restart the tracker starts from it and records nothing new
//! until every partition has been replayed past both the log and the committed offsets.
//!
//! Idleness is measured in processing time: a partition whose position has not moved for
//! `idle_timeout` milliseconds of epochs stops holding the watermark back, and rejoins as soon
//! as it moves. When every partition is idle the watermark is the greatest partition watermark
//! (a quiet stream still completes what it has seen). The watermark never goes backwards, and
//! is rounded down to `resolution`, which bounds the log to one entry per resolution step of
//! event time, however long the job runs.
//!
//! Advances travel with the data: [`track_watermarks`] emits each one (to every worker) at the
//! epoch it was decided, so every operator sees the same watermark at the same epoch.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::stamp::insertions;
use citeflow_engine::metrics::metrics;
use citeflow_engine::time::{wall_clock_ms, Epoch};
use citeflow_engine::timestamps::EventTime;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::Stream;

/// How partition watermarks are derived and when a partition is idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkSettings {
    /// How far behind the largest event time seen a partition's watermark stays (ms).
    pub out_of_orderness: EventTime,
    /// A partition whose position has not moved for this many milliseconds of epochs is idle.
    pub idle_timeout: u64,
    /// Watermarks are rounded down to a multiple of this many milliseconds (at least 1).
    pub resolution: EventTime,
}

/// One advance of the job's watermark: once every partition had been read up to its position
/// here (the next offset; absent means nothing read), the watermark was `watermark`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WatermarkAdvance<P> {
    /// The new watermark.
    pub watermark: EventTime,
    /// Every partition's next offset at that moment, sorted by partition.
    pub positions: Vec<(P, i64)>,
}

impl<P: Ord> WatermarkAdvance<P> {
    /// The recorded next offset of `partition` (0 when it had not been read).
    pub fn position(&self, partition: &P) -> i64 {
        self.positions.binary_search_by(|(p, _)| p.cmp(partition)).map(|i| self.positions[i].1).unwrap_or(0)
    }
}

/// The watermark advances known so far, to tell which one a record saw.
#[derive(Clone, Debug)]
pub struct WatermarkLog<P> {
    advances: Vec<WatermarkAdvance<P>>,
}

impl<P> Default for WatermarkLog<P> {
    fn default() -> Self {
        WatermarkLog { advances: Vec::new() }
    }
}

impl<P: Ord + Clone> WatermarkLog<P> {
    /// Adds an advance; advances arrive in increasing order of watermark and positions.
    pub fn push(&mut self, advance: WatermarkAdvance<P>) {
        if self.advances.last().is_none_or(|last| last.watermark < advance.watermark) {
            self.advances.push(advance);
        }
    }

    /// The watermark in force when the record at `offset` of `partition` arrived: the greatest
    /// advance recorded at a position of that partition at or before `offset`.
    pub fn seen_by(&self, partition: &P, offset: i64) -> Option<EventTime> {
        let count = self.advances.partition_point(|advance| advance.position(partition) <= offset);
        count.checked_sub(1).map(|i| self.advances[i].watermark)
    }

    /// The latest watermark.
    pub fn current(&self) -> Option<EventTime> {
        self.advances.last().map(|advance| advance.watermark)
    }
}

/// What the tracker learns from the sources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Observation<P> {
    /// A record with this event time was read from `partition`.
    Event {
        /// The partition.
        partition: P,
        /// The record's event time.
        time: EventTime,
    },
    /// `partition` has been read up to (not including) `next_offset`.
    Position {
        /// The partition.
        partition: P,
        /// The next offset to read.
        next_offset: i64,
    },
}

/// Where one partition stands.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionWatermark<P> {
    /// The partition.
    pub partition: P,
    /// Its watermark, once it has carried an event.
    pub watermark: Option<EventTime>,
    /// Whether it is idle (not holding the job's watermark back).
    pub idle: bool,
    /// The next offset to read.
    pub next_offset: i64,
}

/// The tracker's state as views and metrics show it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WatermarkStatus<P> {
    /// The job's watermark.
    pub global: Option<EventTime>,
    /// Every partition.
    pub partitions: Vec<PartitionWatermark<P>>,
}

#[derive(Clone, Debug)]
struct PartitionState {
    max_event: Option<EventTime>,
    next_offset: i64,
    moved_at: Epoch,
}

/// The watermark computation itself, without timely: feed it observations, ask it to advance.
#[derive(Clone, Debug)]
pub struct WatermarkTracker<P> {
    settings: WatermarkSettings,
    partitions: BTreeMap<P, PartitionState>,
    current: Option<EventTime>,
    replay_to: BTreeMap<P, i64>,
}

impl<P: Ord + Clone> WatermarkTracker<P> {
    /// A tracker for `partitions`, continuing from the advances in `log` (the durable log of a
    /// previous run), that records nothing new until every partition has reached both
    /// `replay_to` and the log's last positions; `now` starts the idleness clocks.
    pub fn new(
        settings: WatermarkSettings,
        partitions: impl IntoIterator<Item = P>,
        log: &[WatermarkAdvance<P>],
        mut replay_to: BTreeMap<P, i64>,
        now: Epoch,
    ) -> Self {
        if let Some(last) = log.last() {
            for (partition, position) in &last.positions {
                let target = replay_to.entry(partition.clone()).or_insert(0);
                *target = (*target).max(*position);
            }
        }
        let settings = WatermarkSettings { resolution: settings.resolution.max(1), ..settings };
        WatermarkTracker {
            settings,
            partitions: partitions.into_iter().map(|p| (p, PartitionState { max_event: None, next_offset: 0, moved_at: now })).collect(),
            current: log.iter().map(|advance| advance.watermark).max(),
            replay_to,
        }
    }

    /// Takes in one observation made at epoch `at`.
    pub fn observe(&mut self, observation: Observation<P>, at: Epoch) {
        match observation {
            Observation::Event { partition, time } => {
                let state = self.state(partition, at);
                state.max_event = Some(state.max_event.map_or(time, |max| max.max(time)));
            }
            Observation::Position { partition, next_offset } => {
                let state = self.state(partition, at);
                if next_offset > state.next_offset {
                    state.next_offset = next_offset;
                    state.moved_at = at;
                }
            }
        }
    }

    fn state(&mut self, partition: P, at: Epoch) -> &mut PartitionState {
        self.partitions.entry(partition).or_insert(PartitionState { max_event: None, next_offset: 0, moved_at: at })
    }

    /// Whether the inputs are still being replayed up to where the previous run had recorded.
    pub fn replaying(&self) -> bool {
        self.replay_to.iter().any(|(partition, target)| self.partitions.get(partition).is_none_or(|state| state.next_offset < *target))
    }

    fn partition_watermark(&self, state: &PartitionState) -> Option<EventTime> {
        let resolution = self.settings.resolution;
        state.max_event.map(|max| (max - self.settings.out_of_orderness).div_euclid(resolution) * resolution)
    }

    fn idle(&self, state: &PartitionState, now: Epoch) -> bool {
        now.saturating_sub(state.moved_at) >= self.settings.idle_timeout
    }

    /// The watermark the partitions justify at `now`, ignoring the log.
    fn candidate(&self, now: Epoch) -> Option<EventTime> {
        let active: Vec<Option<EventTime>> =
            self.partitions.values().filter(|state| !self.idle(state, now)).map(|state| self.partition_watermark(state)).collect();
        if active.is_empty() {
            self.partitions.values().filter_map(|state| self.partition_watermark(state)).max()
        } else {
            active.into_iter().collect::<Option<Vec<_>>>()?.into_iter().min()
        }
    }

    /// Moves the watermark forward if the partitions allow it at `now`, and returns the advance
    /// to record; never while replaying, never backwards.
    pub fn advance(&mut self, now: Epoch) -> Option<WatermarkAdvance<P>> {
        if self.replaying() {
            return None;
        }
        let candidate = self.candidate(now)?;
        if self.current.is_some_and(|current| current >= candidate) {
            return None;
        }
        self.current = Some(candidate);
        let positions = self.partitions.iter().map(|(p, state)| (p.clone(), state.next_offset)).collect();
        Some(WatermarkAdvance { watermark: candidate, positions })
    }

    /// Where every partition and the job stand at `now`.
    pub fn status(&self, now: Epoch) -> WatermarkStatus<P> {
        WatermarkStatus {
            global: self.current,
            partitions: self
                .partitions
                .iter()
                .map(|(partition, state)| PartitionWatermark {
                    partition: partition.clone(),
                    watermark: self.partition_watermark(state),
                    idle: self.idle(state, now),
                    next_offset: state.next_offset,
                })
                .collect(),
        }
    }
}

/// What [`track_watermarks`] produces.
pub struct TrackedWatermarks<'scope, P: 'static> {
    /// Every advance (first the durable log's), on every worker, at the epoch it was decided.
    pub advances: Stream<'scope, Epoch, Vec<WatermarkAdvance<P>>>,
    /// The same advances once (on worker 0), as a growing collection: the log to store.
    pub log: VecCollection<'scope, Epoch, WatermarkAdvance<P>>,
    /// The tracker's status (one record at a time), for views.
    pub status: VecCollection<'scope, Epoch, WatermarkStatus<P>>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Tracked<P> {
    Advance(WatermarkAdvance<P>),
    Status(WatermarkStatus<P>, Epoch, isize),
}

/// Tracks the job's watermark on worker 0 from every worker's `observations`; see the module
/// documentation. `log` holds the advances recorded by a previous run, which are emitted first.
pub fn track_watermarks<'scope, P>(
    observations: Stream<'scope, Epoch, Vec<Observation<P>>>,
    mut tracker: WatermarkTracker<P>,
    log: Vec<WatermarkAdvance<P>>,
) -> TrackedWatermarks<'scope, P>
where
    P: ExchangeData + Ord + Display,
{
    let leader = observations.scope().index() == 0;
    let tracked = observations.unary_frontier(Exchange::new(|_| 0), "TrackWatermarks", move |capability, _info| {
        let mut capability = leader.then_some(capability);
        let mut pending: Vec<(Epoch, Observation<P>)> = Vec::new();
        let mut shown: Option<WatermarkStatus<P>> = None;
        let mut durable = Some(log);
        move |(input, frontier), output| {
            input.for_each(|capability, batch| {
                let Some(time) = capability.least().copied() else { return };
                pending.extend(batch.drain(..).map(|observation| (time, observation)));
            });
            let Some(cap) = capability.as_mut() else { return };
            if let Some(log) = durable.take() {
                output.session(&*cap).give_iterator(log.into_iter().map(Tracked::Advance));
            }
            let now = frontier.frontier().first().copied();
            let complete = |time: &Epoch| now.is_none_or(|now| *time < now);
            pending.sort_by_key(|(time, _)| *time);
            let ready = pending.iter().take_while(|(time, _)| complete(time)).count();
            for (time, observation) in pending.drain(..ready) {
                tracker.observe(observation, time);
            }
            let clock = now.unwrap_or(*cap.time());
            let mut session = output.session(&*cap);
            if let Some(advance) = tracker.advance(clock) {
                session.give(Tracked::Advance(advance));
            }
            let status = tracker.status(clock);
            if shown.as_ref() != Some(&status) {
                report(&status);
                if let Some(previous) = shown.replace(status.clone()) {
                    session.give(Tracked::Status(previous, *cap.time(), -1));
                }
                session.give(Tracked::Status(status, *cap.time(), 1));
            }
            drop(session);
            match now {
                Some(now) => cap.downgrade(&now),
                None => capability = None,
            }
        }
    });
    let advances = tracked.clone().flat_map(|tracked| match tracked {
        Tracked::Advance(advance) => Some(advance),
        Tracked::Status(..) => None,
    });
    let status = tracked
        .flat_map(|tracked| match tracked {
            Tracked::Status(status, time, diff) => Some((status, time, diff)),
            Tracked::Advance(_) => None,
        })
        .as_collection();
    TrackedWatermarks { log: insertions(advances.clone()), advances: advances.broadcast(), status }
}

/// Publishes the status as metrics.
fn report<P: Display>(status: &WatermarkStatus<P>) {
    let metrics = metrics();
    for partition in &status.partitions {
        if let Some(watermark) = partition.watermark {
            metrics.partition_watermark.with_label_values(&[&partition.partition.to_string()]).set(watermark);
        }
    }
    metrics.idle_partitions.set(status.partitions.iter().filter(|p| p.idle).count() as i64);
    if let Some(global) = status.global {
        metrics.global_watermark.set(global);
        metrics.watermark_lag.set((wall_clock_ms() as i64 - global) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: WatermarkSettings = WatermarkSettings { out_of_orderness: 10, idle_timeout: 100, resolution: 1 };

    fn event(partition: u8, time: EventTime) -> Observation<u8> {
        Observation::Event { partition, time }
    }

    fn position(partition: u8, next_offset: i64) -> Observation<u8> {
        Observation::Position { partition, next_offset }
    }

    fn tracker(partitions: &[u8]) -> WatermarkTracker<u8> {
        WatermarkTracker::new(SETTINGS, partitions.iter().copied(), &[], BTreeMap::new(), 0)
    }

    /// Flink `forBoundedOutOfOrderness`: the watermark is the largest event time minus the bound.
    #[test]
    fn bounded_out_of_orderness() {
        let mut t = tracker(&[0]);
        t.observe(event(0, 100), 1);
        t.observe(event(0, 50), 1);
        t.observe(position(0, 2), 1);
        assert_eq!(t.advance(2).map(|a| a.watermark), Some(90));
        t.observe(event(0, 95), 3);
        t.observe(position(0, 3), 3);
        assert_eq!(t.advance(4), None, "an older event does not move the watermark");
    }

    /// Flink: the combined watermark is the minimum over inputs.
    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let mut t = tracker(&[0, 1]);
        t.observe(event(0, 500), 1);
        t.observe(position(0, 1), 1);
        assert_eq!(t.advance(2), None, "partition 1 has carried nothing and is not idle yet");
        t.observe(event(1, 200), 3);
        t.observe(position(1, 1), 3);
        let advance = t.advance(4).unwrap();
        assert_eq!(advance.watermark, 190);
        assert_eq!(advance.positions, vec![(0, 1), (1, 1)]);
    }

    /// Flink `withIdleness`: an idle input stops holding the watermark back and rejoins when
    /// it carries data again — and the watermark does not go back when it does.
    #[test]
    fn an_idle_partition_stops_holding_the_watermark_and_rejoins() {
        let mut t = tracker(&[0, 1]);
        t.observe(event(1, 200), 1);
        t.observe(position(1, 1), 1);
        t.observe(event(0, 500), 1);
        t.observe(position(0, 1), 1);
        assert_eq!(t.advance(2).map(|a| a.watermark), Some(190));
        for epoch in (10..200).step_by(10) {
            t.observe(event(0, 500 + epoch as i64), epoch);
            t.observe(position(0, 1 + epoch as i64), epoch);
        }
        let advance = t.advance(150).unwrap();
        assert_eq!(advance.watermark, 680, "partition 1 idle since epoch 1");
        assert!(t.status(150).partitions[1].idle);
        t.observe(event(1, 300), 200);
        t.observe(position(1, 2), 200);
        assert!(!t.status(200).partitions[1].idle);
        assert_eq!(t.advance(200), None, "the rejoining partition is behind; the watermark holds");
    }

    /// All idle: the greatest partition watermark (Flink would stall).
    #[test]
    fn when_every_partition_is_idle_the_greatest_wins() {
        let mut t = tracker(&[0, 1]);
        t.observe(event(0, 500), 1);
        t.observe(position(0, 1), 1);
        t.observe(event(1, 200), 1);
        t.observe(position(1, 1), 1);
        assert_eq!(t.advance(1000).map(|a| a.watermark), Some(490));
    }

    #[test]
    fn watermarks_are_rounded_down_to_the_resolution() {
        let settings = WatermarkSettings { resolution: 100, ..SETTINGS };
        let mut t = WatermarkTracker::new(settings, [0u8], &[], BTreeMap::new(), 0);
        t.observe(event(0, 1_234), 1);
        t.observe(position(0, 1), 1);
        assert_eq!(t.advance(2).map(|a| a.watermark), Some(1_200));
        t.observe(event(0, 1_250), 3);
        t.observe(position(0, 2), 3);
        assert_eq!(t.advance(4), None);
    }

    #[test]
    fn nothing_is_recorded_while_replaying_and_the_log_is_continued() {
        let log = vec![WatermarkAdvance { watermark: 90, positions: vec![(0u8, 5)] }];
        let replay_to = BTreeMap::from([(0u8, 7)]);
        let mut t = WatermarkTracker::new(SETTINGS, [0u8], &log, replay_to, 0);
        t.observe(event(0, 300), 1);
        t.observe(position(0, 6), 1);
        assert!(t.replaying());
        assert_eq!(t.advance(2), None);
        t.observe(position(0, 7), 3);
        assert_eq!(t.advance(4).map(|a| a.watermark), Some(290));
    }

    #[test]
    fn a_record_sees_the_advances_recorded_before_its_offset() {
        let mut log = WatermarkLog::default();
        log.push(WatermarkAdvance { watermark: 10, positions: vec![(0u8, 3), (1, 1)] });
        log.push(WatermarkAdvance { watermark: 20, positions: vec![(0u8, 5), (1, 1)] });
        log.push(WatermarkAdvance { watermark: 15, positions: vec![(0u8, 6), (1, 2)] });
        assert_eq!(log.seen_by(&0, 2), None);
        assert_eq!(log.seen_by(&0, 3), Some(10));
        assert_eq!(log.seen_by(&0, 9), Some(20), "a smaller watermark is never recorded");
        assert_eq!(log.seen_by(&1, 0), None);
        assert_eq!(log.seen_by(&1, 1), Some(20));
        assert_eq!(log.seen_by(&2, 0), Some(20), "a partition absent from the log had not been read");
        assert_eq!(log.current(), Some(20));
    }
}
