//! Deciding a job's parallelism from its lag and rates, in the manner of Flink's Kubernetes
//! operator autoscaler.
//!
//! Semantics. An [`Autoscaler`] is fed an [`Observation`] of the job's counters every interval
//! (from its `/metrics`, [`scrape`]) and answers a [`Decision`] each time:
//!
//! - **Stabilisation.** For `stabilisation` after the job (re)started, and while it hydrates,
//!   observations are not kept: a restarting job replays its inputs, and its rates then say
//!   nothing of the live load.
//! - **Metrics window.** Rates are the change of the counters between the oldest and newest
//!   observation of the last `metrics_window`; nothing is decided before one whole window has
//!   been observed since stabilising. A counter that goes backwards (the job restarted behind
//!   the autoscaler's back) starts the window again.
//! - **Busy time and the true processing rate.** `processed` is records read per second and
//!   `busy` the share of the workers' time spent running the dataflow
//!   (`citeflow_worker_busy_seconds_total` per worker per second). The rate the job could
//!   sustain at its current parallelism is `true_rate = processed / busy`; a job that is
//!   barely busy (`busy` < 0.5 %), or read nothing because nothing waited (its busy time is
//!   the timers and heartbeats of an idle job), has no measurable limit and any parallelism
//!   serves it; one that read nothing while records waited is as loaded as can be.
//! - **Target.** The job must keep up with what arrives (`arrival` = `processed` + the growth
//!   of the lag per second) and work off the current lag within `catch_up`:
//!   `target = arrival + lag / catch_up`. Its utilisation is `target / true_rate`.
//! - **Band.** Within `target_utilisation ± utilisation_band` nothing changes. Outside it, the
//!   wanted parallelism is `ceil(current × utilisation / target_utilisation)`, capped to
//!   `[min, max]` (`max` at most the input partition count), then raised to the next
//!   parallelism that divides the partition count, so that every worker reads as many
//!   partitions as every other.
//! - **Scale up at once; scale down after a cool-down.** A scale-up is decided as soon as a
//!   window shows it. A scale-down is only decided once every evaluation for
//!   `scale_down_cooldown` asked for one; it goes to the largest parallelism asked for in that
//!   time, and any evaluation that asks for the same or more cancels it. A noisy load
//!   inside the band therefore never rescales, and one quiet minute does not undo a scale-up.
//!
//! - **A decision stands until it is applied.** Once decided, a rescale is repeated at every
//!   evaluation (growing if the load asks for more) until the job is seen at another size,
//!   unless the load stops asking for a rescale that way.
//!
//! The decision is a pure function of the observations and the clock given to
//! [`Autoscaler::observe`]; acting on it (restarting the job at the new size, or publishing it
//! for an external scaler) is the caller's, with [`AutoscalerMetrics`] for what it exports.
//!
//! ```
//! use std::time::Duration;
//! use citeflow_engine::autoscale::{Autoscaler, Decision, Observation, ScalingPolicy};
//!
//! let policy = ScalingPolicy { partitions: 4, max: 4, ..ScalingPolicy::default() };
//! let mut autoscaler = Autoscaler::new(policy, 1, Duration::ZERO);
//! let seconds = Duration::from_secs;
//! // A job that reads 1,000 records/s while busy all the time, with 1,500/s arriving.
//! for t in (0..=200).step_by(10) {
//!     let t = t as f64;
//!     let observation = Observation { records_read: 1_000.0 * t, lag: 500.0 * t, busy_seconds: t, workers: 1, hydrating: false };
//!     let step = autoscaler.observe(seconds(t as u64), Some(observation));
//!     if let Decision::Rescale { to, .. } = step.decision {
//!         // 1,800/s needed (1,500 arriving, and the lag over 5 minutes) against 1,000/s: 3
//!         // workers at 70 % utilisation, aligned to the 4 partitions.
//!         assert_eq!(to, 4);
//!         return;
//!     }
//! }
//! panic!("no scale-up");
//! ```

pub mod scrape;

use std::collections::VecDeque;
use std::time::Duration;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Registry};
use serde::Serialize;

use crate::metrics::{Registrar, PREFIX};

/// Below this share of busy time a job has no measurable capacity limit.
const MIN_BUSY: f64 = 0.005;

/// How the autoscaler decides.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingPolicy {
    /// The utilisation aimed at when rescaling (0–1).
    pub target_utilisation: f64,
    /// Utilisations within `target_utilisation ±` this are left alone.
    pub utilisation_band: f64,
    /// The span rates are measured over.
    pub metrics_window: Duration,
    /// The time within which the current lag should be worked off.
    pub catch_up: Duration,
    /// How long after a (re)start observations are not kept.
    pub stabilisation: Duration,
    /// How long every evaluation must ask for a scale-down before it is decided.
    pub scale_down_cooldown: Duration,
    /// The smallest parallelism.
    pub min: usize,
    /// The largest parallelism (at most `partitions`).
    pub max: usize,
    /// The input topics' partition count (the largest of them).
    pub partitions: usize,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        ScalingPolicy {
            target_utilisation: 0.7,
            utilisation_band: 0.3,
            metrics_window: Duration::from_secs(120),
            catch_up: Duration::from_secs(300),
            stabilisation: Duration::from_secs(60),
            scale_down_cooldown: Duration::from_secs(600),
            min: 1,
            max: 1,
            partitions: 1,
        }
    }
}

impl ScalingPolicy {
    /// The utilisations left alone.
    pub fn band(&self) -> std::ops::RangeInclusive<f64> {
        (self.target_utilisation - self.utilisation_band)..=(self.target_utilisation + self.utilisation_band)
    }

    /// The parallelism for `wanted`: within `[min, max]`, then the next one that divides the
    /// partition count (or `max` when none up to it does).
    pub fn aligned(&self, wanted: usize) -> usize {
        let wanted = wanted.clamp(self.min, self.max);
        (wanted..=self.max).find(|p| self.partitions.is_multiple_of(*p)).unwrap_or(wanted)
    }
}

/// The job's counters at one moment, summed over its processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Observation {
    /// Records read since the job started (`citeflow_records_read_total`).
    pub records_read: f64,
    /// Records in the input partitions not yet read (`citeflow_consumer_lag`).
    pub lag: f64,
    /// Seconds the workers ran the dataflow since the job started
    /// (`citeflow_worker_busy_seconds_total`).
    pub busy_seconds: f64,
    /// Workers of the job, all processes together (`citeflow_workers`).
    pub workers: usize,
    /// Whether the job is replaying its inputs (`citeflow_hydrating`).
    pub hydrating: bool,
}

/// Rates over a metrics window and what they ask for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Seconds the window spans.
    pub window_seconds: f64,
    /// Records arriving per second.
    pub arrival_rate: f64,
    /// Records read per second.
    pub processing_rate: f64,
    /// Share of the workers' time spent busy (0–1).
    pub busy: f64,
    /// Records per second the job could read at its parallelism (`None`: not measurable, the
    /// job is barely busy).
    pub true_rate: Option<f64>,
    /// Records the job must read per second: arrivals plus the lag over the catch-up time.
    pub target_rate: f64,
    /// The lag at the end of the window.
    pub lag: f64,
    /// `target_rate / true_rate` (0 when the job is barely busy).
    pub utilisation: f64,
    /// The parallelism the window asks for, before the cool-down.
    pub wanted: usize,
}

/// Why the parallelism stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Within the stabilisation time after a (re)start, or hydrating.
    Stabilising,
    /// Less than one metrics window observed.
    CollectingMetrics,
    /// The job's metrics could not be read.
    NoMetrics,
    /// Utilisation within the band.
    WithinBand,
    /// Utilisation outside the band, but `min`, `max` or alignment leave the parallelism as it is.
    AtBound,
    /// A scale-down is asked for but the cool-down has not passed.
    CoolingDown,
}

impl Hold {
    /// How logs and metrics name it.
    pub fn name(self) -> &'static str {
        match self {
            Hold::Stabilising => "stabilising",
            Hold::CollectingMetrics => "collecting_metrics",
            Hold::NoMetrics => "no_metrics",
            Hold::WithinBand => "within_band",
            Hold::AtBound => "at_bound",
            Hold::CoolingDown => "cooling_down",
        }
    }
}

/// What to do with the job's parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// Keep it.
    Hold {
        /// Why.
        reason: Hold,
    },
    /// Restart the job with `to` workers.
    Rescale {
        /// The current parallelism.
        from: usize,
        /// The new one.
        to: usize,
    },
}

impl Decision {
    /// `up`, `down` or `hold`: the label of `citeflow_autoscaler_decisions_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Hold { .. } => "hold",
            Decision::Rescale { from, to } if to > from => "up",
            Decision::Rescale { .. } => "down",
        }
    }

    /// Why: the hold's reason, or `rescale`.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Hold { reason } => reason.name(),
            Decision::Rescale { .. } => "rescale",
        }
    }
}

/// One evaluation: the decision and the figures it was made from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Step {
    /// What to do.
    pub decision: Decision,
    /// The window's rates, once one whole window was observed.
    pub evaluation: Option<Evaluation>,
    /// The parallelism wanted now, the cool-down applied (the current one while holding).
    pub desired: usize,
}

/// A scale-down asked for by every evaluation since `since`.
#[derive(Clone, Copy, Debug)]
struct PendingDown {
    since: Duration,
    largest: usize,
}

/// The autoscaler's state: the current parallelism, the observations of the window, a
/// pending scale-down. See the module documentation.
#[derive(Debug)]
pub struct Autoscaler {
    policy: ScalingPolicy,
    current: usize,
    started: Duration,
    window: VecDeque<(Duration, Observation)>,
    pending_down: Option<PendingDown>,
    /// A rescale decided and not yet seen applied (the caller may leave it to someone else).
    decided: Option<usize>,
}

impl Autoscaler {
    /// An autoscaler for a job running with `current` workers since `now`.
    pub fn new(policy: ScalingPolicy, current: usize, now: Duration) -> Self {
        Autoscaler { policy, current, started: now, window: VecDeque::new(), pending_down: None, decided: None }
    }

    /// The parallelism the job runs with.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The job runs with `parallelism` workers since `now` (it was rescaled or restarted):
    /// stabilise again and forget the window.
    pub fn restarted(&mut self, parallelism: usize, now: Duration) {
        self.current = parallelism;
        self.started = now;
        self.window.clear();
        self.pending_down = None;
        self.decided = None;
    }

    /// Takes the observation made at `now` (`None`: the metrics could not be read) and decides.
    pub fn observe(&mut self, now: Duration, observation: Option<Observation>) -> Step {
        let hold = |reason, desired| Step { decision: Decision::Hold { reason }, evaluation: None, desired };
        let Some(observation) = observation else { return hold(Hold::NoMetrics, self.decided.unwrap_or(self.current)) };
        if observation.workers != 0 && observation.workers != self.current {
            self.restarted(observation.workers, now);
        }
        if now.saturating_sub(self.started) < self.policy.stabilisation || observation.hydrating {
            self.window.clear();
            return hold(Hold::Stabilising, self.current);
        }
        if let Some((_, last)) = self.window.back() {
            if observation.records_read < last.records_read || observation.busy_seconds < last.busy_seconds {
                self.window.clear();
            }
        }
        self.window.push_back((now, observation));
        while self.window.len() > 2 && now.saturating_sub(self.window[1].0) >= self.policy.metrics_window {
            self.window.pop_front();
        }
        let (first_at, first) = self.window[0];
        if now.saturating_sub(first_at) < self.policy.metrics_window {
            return hold(Hold::CollectingMetrics, self.decided.unwrap_or(self.current));
        }
        let evaluation = self.evaluate(now.saturating_sub(first_at), &first, &observation);
        let step = self.decide(now, evaluation);
        if let Decision::Rescale { to, .. } = step.decision {
            self.decided = Some(to);
        }
        step
    }

    /// The decision on `evaluation`, made at `now`.
    fn decide(&mut self, now: Duration, evaluation: Evaluation) -> Step {
        let step = |decision, desired| Step { decision, evaluation: Some(evaluation), desired };
        // A rescale decided before stands while the load still asks for one the same way.
        match self.decided.take() {
            Some(decided) if evaluation.wanted != self.current && (decided > self.current) == (evaluation.wanted > self.current) => {
                let to = decided.max(evaluation.wanted);
                return step(Decision::Rescale { from: self.current, to }, to);
            }
            _ => {}
        }
        if evaluation.wanted > self.current {
            self.pending_down = None;
            return step(Decision::Rescale { from: self.current, to: evaluation.wanted }, evaluation.wanted);
        }
        if evaluation.wanted == self.current {
            self.pending_down = None;
            let reason = if self.policy.band().contains(&evaluation.utilisation) { Hold::WithinBand } else { Hold::AtBound };
            return step(Decision::Hold { reason }, self.current);
        }
        let pending = self.pending_down.get_or_insert(PendingDown { since: now, largest: evaluation.wanted });
        pending.largest = pending.largest.max(evaluation.wanted);
        let pending = *pending;
        if now.saturating_sub(pending.since) >= self.policy.scale_down_cooldown {
            self.pending_down = None;
            step(Decision::Rescale { from: self.current, to: pending.largest }, pending.largest)
        } else {
            step(Decision::Hold { reason: Hold::CoolingDown }, self.current)
        }
    }

    fn evaluate(&self, span: Duration, first: &Observation, last: &Observation) -> Evaluation {
        let policy = &self.policy;
        let seconds = span.as_secs_f64();
        let processing_rate = (last.records_read - first.records_read) / seconds;
        let arrival_rate = (processing_rate + (last.lag - first.lag) / seconds).max(0.0);
        let busy = ((last.busy_seconds - first.busy_seconds) / (seconds * self.current as f64)).clamp(0.0, 1.0);
        let target_rate = arrival_rate + last.lag.max(0.0) / policy.catch_up.as_secs_f64();
        let true_rate = (busy >= MIN_BUSY).then(|| processing_rate / busy);
        let utilisation = match true_rate {
            Some(rate) if rate > 0.0 => target_rate / rate,
            // Nothing read: idle when nothing waits either, else as loaded as it can be.
            Some(_) if target_rate > 0.0 => f64::INFINITY,
            _ => 0.0,
        };
        let wanted = if policy.band().contains(&utilisation) {
            self.current
        } else {
            let factor = utilisation / policy.target_utilisation;
            let scaled = (self.current as f64 * factor).ceil();
            let wanted = if scaled.is_finite() && scaled < policy.max as f64 { scaled as usize } else { policy.max };
            policy.aligned(wanted.max(1))
        };
        Evaluation {
            window_seconds: seconds,
            arrival_rate,
            processing_rate,
            busy,
            true_rate,
            target_rate,
            lag: last.lag,
            utilisation,
            wanted,
        }
    }
}

/// What the autoscaler exports (`citeflow_autoscaler_*`), on a registry of its own.
pub struct AutoscalerMetrics {
    /// The registry its HTTP endpoint renders.
    pub registry: Registry,
    /// The parallelism the job runs with.
    pub current: IntGauge,
    /// The parallelism wanted now: what an external scaler (KEDA, HPA) should apply.
    pub desired: IntGauge,
    /// Records arriving per second over the last window.
    pub arrival_rate: Gauge,
    /// Records read per second over the last window.
    pub processing_rate: Gauge,
    /// Records per second the job could read at its parallelism (0: not measurable).
    pub true_rate: Gauge,
    /// Records per second the job must read: arrivals plus catching up.
    pub target_rate: Gauge,
    /// The target rate over the true rate.
    pub utilisation: Gauge,
    /// The workers' busy share.
    pub busy: Gauge,
    /// Records not yet read.
    pub lag: Gauge,
    /// Evaluations, by decision (`up`, `down`, `hold`) and reason.
    pub decisions: IntCounterVec,
    /// Times the job's metrics could not be read.
    pub scrape_errors: IntCounter,
    families: Vec<String>,
}

impl Default for AutoscalerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoscalerMetrics {
    /// The autoscaler's metrics on a new registry.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some(PREFIX.to_string()), None).expect("valid prefix");
        let mut r = Registrar::new(registry);
        let mut gauge = |name: &str, help: &str| r.register(Gauge::new(name, help).expect("valid metric"));
        let arrival_rate = gauge("autoscaler_arrival_rate", "Records arriving per second over the last window");
        let processing_rate = gauge("autoscaler_processing_rate", "Records read per second over the last window");
        let true_rate = gauge("autoscaler_true_processing_rate", "Records per second the job could read at its parallelism");
        let target_rate = gauge("autoscaler_target_rate", "Records per second the job must read");
        let utilisation = gauge("autoscaler_utilisation", "Target rate over true processing rate");
        let busy = gauge("autoscaler_busy_ratio", "Share of the workers' time spent busy");
        let lag = gauge("autoscaler_lag", "Records not yet read");
        AutoscalerMetrics {
            current: r.gauge("autoscaler_current_parallelism", "Workers the job runs with"),
            desired: r.gauge("autoscaler_desired_parallelism", "Workers the job should run with"),
            decisions: r.counter("autoscaler_decisions_total", "Evaluations, by decision and reason", &["decision", "reason"]),
            scrape_errors: r
                .register(IntCounter::new("autoscaler_scrape_errors_total", "Failed reads of the job's metrics").expect("valid metric")),
            arrival_rate,
            processing_rate,
            true_rate,
            target_rate,
            utilisation,
            busy,
            lag,
            families: r.families,
            registry: r.registry,
        }
    }

    /// The names of the metric families (with the prefix).
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// Publishes `step`.
    pub fn record(&self, current: usize, step: &Step) {
        self.current.set(current as i64);
        self.desired.set(step.desired as i64);
        self.decisions.with_label_values(&[step.decision.label(), step.decision.reason()]).inc();
        if let Some(evaluation) = &step.evaluation {
            self.arrival_rate.set(evaluation.arrival_rate);
            self.processing_rate.set(evaluation.processing_rate);
            self.true_rate.set(evaluation.true_rate.unwrap_or(0.0));
            self.target_rate.set(evaluation.target_rate);
            self.utilisation.set(if evaluation.utilisation.is_finite() { evaluation.utilisation } else { f64::MAX });
            self.busy.set(evaluation.busy);
            self.lag.set(evaluation.lag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScalingPolicy {
        ScalingPolicy {
            metrics_window: Duration::from_secs(60),
            stabilisation: Duration::from_secs(30),
            scale_down_cooldown: Duration::from_secs(300),
            catch_up: Duration::from_secs(300),
            min: 1,
            max: 8,
            partitions: 8,
            ..ScalingPolicy::default()
        }
    }

    /// A job with a fixed capacity per worker, fed by a load that is a function of time; its
    /// counters, observed every 10 s.
    struct Simulated {
        capacity_per_worker: f64,
        workers: usize,
        records_read: f64,
        lag: f64,
        busy_seconds: f64,
    }

    impl Simulated {
        fn new(capacity_per_worker: f64, workers: usize) -> Self {
            Simulated { capacity_per_worker, workers, records_read: 0.0, lag: 0.0, busy_seconds: 0.0 }
        }

        /// Advances `seconds` with `arriving` records per second.
        fn advance(&mut self, seconds: f64, arriving: f64) -> Observation {
            let capacity = self.capacity_per_worker * self.workers as f64;
            let available = self.lag + arriving * seconds;
            let read = available.min(capacity * seconds);
            self.records_read += read;
            self.lag = available - read;
            self.busy_seconds += read / self.capacity_per_worker;
            Observation {
                records_read: self.records_read,
                lag: self.lag,
                busy_seconds: self.busy_seconds,
                workers: self.workers,
                hydrating: false,
            }
        }
    }

    /// Runs `load(t)` for `until` seconds, rescaling the simulated job as decided; the
    /// rescales, with when they were decided.
    fn run(autoscaler: &mut Autoscaler, job: &mut Simulated, from: u64, until: u64, load: impl Fn(u64) -> f64) -> Vec<(u64, usize)> {
        let mut rescales = Vec::new();
        for t in (from..until).step_by(10) {
            let observation = job.advance(10.0, load(t));
            let now = Duration::from_secs(t + 10);
            if let Decision::Rescale { to, .. } = autoscaler.observe(now, Some(observation)).decision {
                rescales.push((t + 10, to));
                // A restarted job starts its counters again; its lag stays in the topics.
                *job = Simulated { lag: job.lag, ..Simulated::new(job.capacity_per_worker, to) };
                autoscaler.restarted(to, now);
            }
        }
        rescales
    }

    #[test]
    fn alignment_takes_the_next_divisor_of_the_partition_count() {
        let twelve = ScalingPolicy { partitions: 12, max: 12, ..policy() };
        let aligned: Vec<usize> = (1..=13).map(|p| twelve.aligned(p)).collect();
        assert_eq!(aligned, [1, 2, 3, 4, 6, 6, 12, 12, 12, 12, 12, 12, 12]);
        let odd = ScalingPolicy { partitions: 7, max: 5, ..policy() };
        assert_eq!(odd.aligned(3), 3, "no divisor up to max: the wanted parallelism");
        assert_eq!(ScalingPolicy { min: 2, ..policy() }.aligned(1), 2);
    }

    #[test]
    fn a_load_ramp_scales_up_within_a_window_of_outgrowing_the_capacity() {
        let mut autoscaler = Autoscaler::new(policy(), 1, Duration::ZERO);
        let mut job = Simulated::new(1_000.0, 1);
        // 500/s for five minutes (utilisation 0.5, in the band), then 2,500/s.
        let rescales = run(&mut autoscaler, &mut job, 0, 1_200, |t| if t < 300 { 500.0 } else { 2_500.0 });
        let (at, _) = rescales[0];
        assert!(at > 300 && at <= 300 + 60 + 10, "decided {at} s, within a window of the ramp at 300 s");
        assert!(rescales.windows(2).all(|pair| pair[0].1 < pair[1].1), "{rescales:?}: only up");
        assert!(rescales.len() <= 2, "{rescales:?}");
        assert_eq!(autoscaler.current(), 4, "2,500/s at 70 % of 1,000/s per worker wants 4 (3.6, aligned to 8 partitions)");
    }

    #[test]
    fn falling_load_scales_down_only_after_the_cool_down_and_to_the_largest_wanted() {
        let mut autoscaler = Autoscaler::new(policy(), 4, Duration::ZERO);
        let mut job = Simulated::new(1_000.0, 4);
        let load = |t| match t {
            0..300 => 2_500.0,
            300..420 => 500.0,
            // Load back within the cool-down cancels the pending scale-down.
            420..540 => 2_500.0,
            _ => 300.0,
        };
        let rescales = run(&mut autoscaler, &mut job, 0, 3_000, load);
        let (at, _) = rescales[0];
        assert!(at >= 540 + 300, "{rescales:?}: scaled down before the cool-down after the load came back");
        assert!(rescales.windows(2).all(|pair| pair[0].1 > pair[1].1), "{rescales:?}: only down");
        assert!(rescales.windows(2).all(|pair| pair[1].0 - pair[0].0 >= 300), "{rescales:?}: a cool-down between");
        assert_eq!(autoscaler.current(), 1, "300/s fits one worker");
    }

    #[test]
    fn a_noisy_steady_load_in_the_band_never_rescales() {
        let mut autoscaler = Autoscaler::new(policy(), 2, Duration::ZERO);
        let mut job = Simulated::new(1_000.0, 2);
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<f64> = (0..400)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % 1000) as f64 / 1000.0
            })
            .collect();
        // 1,400/s ± 40 %: utilisation 0.42–0.98 of two workers, every 10 s.
        let rescales = run(&mut autoscaler, &mut job, 0, 4_000, |t| 1_400.0 * (0.6 + 0.8 * noise[(t / 10) as usize]));
        assert!(rescales.is_empty(), "{rescales:?}");
    }

    #[test]
    fn an_idle_job_goes_to_the_minimum_after_the_cool_down() {
        let mut autoscaler = Autoscaler::new(policy(), 4, Duration::ZERO);
        let mut job = Simulated::new(1_000.0, 4);
        let rescales = run(&mut autoscaler, &mut job, 0, 600, |_| 0.0);
        assert_eq!(rescales, [(30 + 60 + 300, 1)]);
    }

    #[test]
    fn an_idle_job_busy_with_its_timers_is_idle_and_a_stuck_one_is_loaded() {
        let mut autoscaler = Autoscaler::new(policy(), 2, Duration::ZERO);
        let seconds = Duration::from_secs;
        let at = |t: f64, lag| Observation { records_read: 0.0, lag, busy_seconds: 0.02 * t, workers: 2, hydrating: false };
        autoscaler.observe(seconds(30), Some(at(30.0, 0.0)));
        let idle = autoscaler.observe(seconds(90), Some(at(90.0, 0.0))).evaluation.unwrap();
        assert_eq!((idle.utilisation, idle.wanted), (0.0, 1));
        let mut autoscaler = Autoscaler::new(policy(), 2, Duration::ZERO);
        autoscaler.observe(seconds(30), Some(at(30.0, 10.0)));
        let stuck = autoscaler.observe(seconds(90), Some(at(90.0, 10.0))).evaluation.unwrap();
        assert_eq!((stuck.utilisation, stuck.wanted), (f64::INFINITY, 8));
        let mut at_max = Autoscaler::new(ScalingPolicy { max: 2, ..policy() }, 2, Duration::ZERO);
        at_max.observe(seconds(30), Some(at(30.0, 10.0)));
        let step = at_max.observe(seconds(90), Some(at(90.0, 10.0)));
        assert_eq!(step.decision, Decision::Hold { reason: Hold::AtBound }, "overloaded at the largest parallelism");
    }

    #[test]
    fn a_lagging_job_catches_up() {
        let mut autoscaler = Autoscaler::new(policy(), 1, Duration::ZERO);
        let mut job = Simulated::new(1_000.0, 1);
        job.lag = 600_000.0;
        // 500/s arriving and 600k behind: 500 + 2,000 to catch up in 5 minutes.
        let rescales = run(&mut autoscaler, &mut job, 0, 200, |_| 500.0);
        assert_eq!(rescales.first().map(|r| r.1), Some(4), "{rescales:?}");
    }

    #[test]
    fn nothing_is_decided_while_stabilising_hydrating_or_without_metrics() {
        let mut autoscaler = Autoscaler::new(policy(), 1, Duration::ZERO);
        let busy = |t: f64, hydrating| Observation { records_read: 5_000.0 * t, lag: 0.0, busy_seconds: t, workers: 1, hydrating };
        let seconds = Duration::from_secs;
        assert_eq!(autoscaler.observe(seconds(10), Some(busy(10.0, false))).decision, Decision::Hold { reason: Hold::Stabilising });
        assert_eq!(autoscaler.observe(seconds(100), Some(busy(100.0, true))).decision, Decision::Hold { reason: Hold::Stabilising });
        assert_eq!(autoscaler.observe(seconds(110), None).decision, Decision::Hold { reason: Hold::NoMetrics });
        assert_eq!(autoscaler.observe(seconds(120), Some(busy(120.0, false))).decision, Decision::Hold { reason: Hold::CollectingMetrics });
        let step = autoscaler.observe(seconds(180), Some(busy(180.0, false)));
        assert_eq!(step.decision, Decision::Hold { reason: Hold::WithinBand }, "{step:?}");
        let evaluation = step.evaluation.unwrap();
        assert_eq!(evaluation.true_rate, Some(5_000.0));
        assert_eq!(evaluation.utilisation, 1.0, "fully busy keeping up: at the band's top edge");
    }

    #[test]
    fn a_decided_scale_down_stands_until_the_job_is_resized() {
        let mut autoscaler = Autoscaler::new(policy(), 4, Duration::ZERO);
        let mut job = Simulated::new(1_000.0, 4);
        let mut decided = None;
        for t in (10..=1_000).step_by(10) {
            let step = autoscaler.observe(Duration::from_secs(t), Some(job.advance(10.0, 0.0)));
            match (decided, step.decision) {
                (None, Decision::Rescale { to, .. }) => decided = Some((t, to)),
                (Some((_, to)), decision) => {
                    assert_eq!(decision, Decision::Rescale { from: 4, to }, "the decision is repeated");
                    assert_eq!(step.desired, to);
                }
                (None, _) => assert_eq!(step.desired, 4),
            }
        }
        assert_eq!(decided.map(|d| d.1), Some(1));
        autoscaler.observe(Duration::from_secs(1_010), Some(Observation { workers: 1, ..job.advance(10.0, 0.0) }));
        assert_eq!(autoscaler.current(), 1, "applied by someone else");
    }

    #[test]
    fn a_job_restarted_elsewhere_starts_the_window_again() {
        let mut autoscaler = Autoscaler::new(policy(), 2, Duration::ZERO);
        let seconds = Duration::from_secs;
        let at = |t: f64, workers| Observation { records_read: 100.0 * t, lag: 0.0, busy_seconds: t, workers, hydrating: false };
        autoscaler.observe(seconds(40), Some(at(40.0, 2)));
        let step = autoscaler.observe(seconds(50), Some(at(50.0, 4)));
        assert_eq!(step.decision, Decision::Hold { reason: Hold::Stabilising }, "an external scaler changed the workers");
        assert_eq!(autoscaler.current(), 4);
        autoscaler.observe(seconds(90), Some(at(90.0, 4)));
        let step = autoscaler.observe(seconds(100), Some(at(1.0, 4)));
        assert_eq!(step.decision, Decision::Hold { reason: Hold::CollectingMetrics }, "counters went back: a new window");
    }
}
