//! The process-wide metrics registry (Prometheus) and the metrics every job exposes.

use std::sync::OnceLock;

use prometheus::{
    core::Collector, CounterVec, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The metrics of the runtime and its connectors. Cheap to clone handles; safe to use from
/// every worker thread.
pub struct Metrics {
    /// The registry that the HTTP endpoint renders.
    pub registry: Registry,
    /// Records read, by topic.
    pub records_read: IntCounterVec,
    /// Row changes the dataflow handed to the sink, by view.
    pub records_out: IntCounterVec,
    /// Messages sent to the dead-letter topic, by reason.
    pub dead_letters: IntCounterVec,
    /// Consumer lag (high watermark minus position), by topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// Next offset to read, by topic and partition.
    pub source_position: IntGaugeVec,
    /// The sink's input frontier (epoch, ms since the Unix epoch).
    pub frontier: IntGauge,
    /// The last committed frontier.
    pub committed_frontier: IntGauge,
    /// Rows written per view (inserted, updated or deleted).
    pub rows_written: IntCounterVec,
    /// Seconds taken by each sink transaction.
    pub commit_latency: Histogram,
    /// Sink transactions that failed and were retried, by kind of failure.
    pub commit_retries: IntCounterVec,
    /// Errors reading the inputs (retried), by kind.
    pub source_errors: IntCounterVec,
    /// 1 while the job replays its inputs to rebuild state, 0 once live.
    pub hydrating: IntGauge,
    /// Fraction of the committed input replayed so far during hydration.
    pub hydration_progress: Gauge,
    /// Seconds taken by batched computations, by stage.
    pub stage_latency: HistogramVec,
    /// Event-time watermark of each source partition (ms since the Unix epoch).
    pub partition_watermark: IntGaugeVec,
    /// The job's event-time watermark (ms since the Unix epoch).
    pub global_watermark: IntGauge,
    /// Seconds between the wall clock and the job's event-time watermark.
    pub watermark_lag: Gauge,
    /// Source partitions currently idle (not holding the watermark back).
    pub idle_partitions: IntGauge,
    /// Records that arrived for a closed window, by what the late policy did with them.
    pub late_records: IntCounterVec,
    /// Updates each arrangement physically holds, by worker and operator.
    pub arrangement_records: IntGaugeVec,
    /// Batches each arrangement holds, by worker and operator.
    pub arrangement_batches: IntGaugeVec,
    /// Seconds each operator has been scheduled (busy), by worker and operator.
    pub operator_busy: CounterVec,
    /// Seconds each worker ran its dataflows (busy), by worker: per second of wall clock, the
    /// share an autoscaler sizes the job by.
    pub worker_busy: CounterVec,
    /// Workers of the job, all processes together.
    pub workers: IntGauge,
    /// Dead letters recorded in the table and not yet on the dead-letter topic.
    pub dead_letter_backlog: IntGauge,
    /// Attempts to publish dead letters to the dead-letter topic that failed (retried).
    pub dead_letter_publish_failures: IntCounterVec,
    /// Replacement models and decision rules read while running, by outcome (`loaded`,
    /// `refused`: unusable, the current one stays).
    pub reloads: IntCounterVec,
    families: Vec<String>,
}

/// Registers metrics and remembers their families' names.
pub(crate) struct Registrar {
    pub(crate) registry: Registry,
    pub(crate) families: Vec<String>,
}

impl Registrar {
    pub(crate) fn new(registry: Registry) -> Self {
        Registrar { registry, families: Vec::new() }
    }

    pub(crate) fn register<C: Collector + Clone + 'static>(&mut self, metric: C) -> C {
        self.families.extend(metric.desc().iter().map(|desc| format!("{PREFIX}_{}", desc.fq_name)));
        self.registry.register(Box::new(metric.clone())).expect("unique metric");
        metric
    }

    pub(crate) fn counter(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).expect("valid metric"))
    }
}

/// What every metric's name starts with (then `_`).
pub const PREFIX: &str = "citeflow";

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new_custom(Some(PREFIX.to_string()), None).expect("valid prefix");
        let mut r = Registrar::new(registry);
        let commit_latency = r.register(
            Histogram::with_opts(
                HistogramOpts::new("commit_latency_seconds", "Seconds taken by each sink transaction")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )
            .expect("valid metric"),
        );
        let hydration_progress = r.register(
            Gauge::new("hydration_progress_ratio", "Fraction of the committed input replayed during hydration").expect("valid metric"),
        );
        let stage_latency = r.register(
            HistogramVec::new(HistogramOpts::new("stage_latency_seconds", "Seconds taken by batched computations"), &["stage"])
                .expect("valid metric"),
        );
        let watermark_lag =
            r.register(Gauge::new("event_time_watermark_lag_seconds", "Wall clock minus the event-time watermark").expect("valid metric"));
        let operator_busy = r.register(
            CounterVec::new(Opts::new("operator_busy_seconds_total", "Seconds an operator was scheduled"), &["worker", "operator"])
                .expect("valid metric"),
        );
        let worker_busy = r.register(
            CounterVec::new(Opts::new("worker_busy_seconds_total", "Seconds a worker ran its dataflows"), &["worker"])
                .expect("valid metric"),
        );
        Metrics {
            workers: r.gauge("workers", "Workers of the job, all processes together"),
            worker_busy,
            records_read: r.counter("records_read_total", "Records read, by topic", &["topic"]),
            records_out: r.counter("records_out_total", "Row changes that reached a view", &["view"]),
            dead_letters: r.counter("dead_letters_total", "Messages dead-lettered, by reason", &["reason"]),
            consumer_lag: r.gauge_vec("consumer_lag", "High watermark minus position", &["topic", "partition"]),
            source_position: r.gauge_vec("source_position", "Next offset to read", &["topic", "partition"]),
            frontier: r.gauge("frontier_epoch_ms", "The sink's input frontier"),
            committed_frontier: r.gauge("committed_frontier_epoch_ms", "The last committed frontier"),
            rows_written: r.counter("rows_written_total", "Rows written per view", &["view"]),
            commit_retries: r.counter("commit_retries_total", "Sink transactions retried", &["kind"]),
            source_errors: r.counter("source_errors_total", "Errors reading inputs, retried", &["kind"]),
            hydrating: r.gauge("hydrating", "1 while replaying inputs to rebuild state"),
            partition_watermark: r.gauge_vec("event_time_partition_watermark_ms", "Watermark per partition", &["partition"]),
            global_watermark: r.gauge("event_time_watermark_ms", "The job's event-time watermark"),
            idle_partitions: r.gauge("event_time_idle_partitions", "Partitions idle, not holding the watermark"),
            late_records: r.counter("late_records_total", "Records for closed windows, by policy", &["policy"]),
            arrangement_records: r.gauge_vec("arrangement_records", "Updates an arrangement holds", &["worker", "operator"]),
            arrangement_batches: r.gauge_vec("arrangement_batches", "Batches an arrangement holds", &["worker", "operator"]),
            dead_letter_backlog: r.gauge("dead_letter_backlog", "Dead letters recorded but not yet published"),
            dead_letter_publish_failures: r.counter("dead_letter_publish_failures_total", "Failed dead-letter publishes, retried", &[]),
            reloads: r.counter("reloads_total", "Replacement models and rules, by what and outcome", &["what", "outcome"]),
            operator_busy,
            watermark_lag,
            commit_latency,
            hydration_progress,
            stage_latency,
            families: r.families,
            registry: r.registry,
        }
    }

    /// The names of the metric families registered here (with the prefix), whether or not
    /// they have values yet.
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// Renders every metric of `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buffer).expect("text encoding cannot fail");
    String::from_utf8(buffer).expect("metrics are UTF-8")
}

/// The metrics of this process, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_the_prefix_and_labels() {
        metrics().dead_letters.with_label_values(&["invalid_json"]).inc();
        let text = metrics().render();
        assert!(text.contains("citeflow_dead_letters_total{reason=\"invalid_json\"}"), "{text}");
    }
}
