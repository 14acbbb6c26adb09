//! `citeflow`: the citation-matching job and its tools.

use std::path::PathBuf;

use anyhow::Context;
use citeflow_connectors::archive::archive_topics;
use citeflow_connectors::kafka::admin::{check_connection, ensure_topics};
use citeflow_connectors::kafka::sink::{describe, read_topic, Reading};
use citeflow_jobs::autoscale::{autoscale, Mode};
use citeflow_jobs::churn::{churn, ChurnSettings};
use citeflow_jobs::config::CiteflowConfig;
use citeflow_jobs::loader::{load_sample, SampleLoad};
use citeflow_jobs::{eval, job, status, synthetic};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::ops::ControlFlow;
use tracing_subscriber::EnvFilter;

mod allocator;

#[derive(Parser)]
#[command(name = "citeflow", version, about = "Incremental citation matching on timely and differential dataflow")]
struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, global = true, env = "CITEFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job: replay the inputs, reconcile the views, then follow the topics.
    Run {
        /// Stop once the inputs present at start are read and committed.
        #[arg(long)]
        until_caught_up: bool,
    },
    /// Create the input and dead-letter topics.
    Topics,
    /// Produce the bundled sample into the topics.
    Load {
        /// The sample directory (with epmc/, gold/, policy/).
        #[arg(long, default_value = "data/sample")]
        data: PathBuf,
        /// Messages per second (unlimited by default).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Produce churn: revisions and deletions over a fixed key set at a steady rate (the
    /// load of a long-running deployment; see benches/soak.rs).
    Churn {
        /// The sample directory (with epmc/ and gold/).
        #[arg(long, default_value = "data/sample")]
        data: PathBuf,
        /// Messages per second.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// How long to produce, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Document ids revised.
        #[arg(long, default_value_t = 5_000)]
        documents: usize,
        /// Publications revised (the first records of the sample).
        #[arg(long, default_value_t = 5_000)]
        publications: usize,
        /// Share of messages that delete their key.
        #[arg(long, default_value_t = 0.05)]
        deletions: f64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Copy the input topics, as they are now, into a topic archive: the same messages at the
    /// same offsets, which a job reads with `[source] kind = "archive"` instead of the broker.
    Archive {
        /// The archive's directory (the topics' files in it are replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Size the job by its lag and rates (Flink's autoscaler algorithm): run it and restart it
    /// at each new parallelism, or with `--export-only` only publish the desired parallelism
    /// (`citeflow_autoscaler_desired_parallelism` on `autoscaler.metrics_addr`) for an external
    /// scaler. Settings: `[autoscaler]`.
    Autoscale {
        /// Do not run the job: read its metrics and publish the desired parallelism only.
        #[arg(long)]
        export_only: bool,
    },
    /// Show what the views hold.
    Status,
    /// Print the changes of a view's Kafka topic (`[kafka_sink]`) as JSON lines, from the
    /// start: partition, offset, frontier, key, value (`null`: the row was deleted).
    Tail {
        /// The view (its table name), e.g. `citations`.
        view: String,
        /// Stop at the end the topic had when reading began instead of following it.
        #[arg(long)]
        to_end: bool,
    },
    /// Generate a seeded synthetic evaluation set: an index of publications and references
    /// to it (positives) and to publications held out of it (negatives), in five styles.
    Synth {
        /// Publication files to draw from (EPMC JSONL, gzip or not).
        #[arg(long, num_args = 1.., required = true)]
        epmc: Vec<PathBuf>,
        /// Publications held out of the index (negatives are drawn from them).
        #[arg(long, default_value_t = 10_000)]
        held_out: usize,
        /// References to indexed publications.
        #[arg(long, default_value_t = 10_000)]
        positives: usize,
        /// References to held-out publications.
        #[arg(long, default_value_t = 10_000)]
        negatives: usize,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write the index (EPMC JSONL).
        #[arg(long)]
        index: PathBuf,
        /// Where to write the labelled references (JSONL).
        #[arg(long)]
        gold: PathBuf,
    },
    /// Write the features of every candidate pair, labelled from the gold, as CSV for training.
    Features {
        /// Publication files (EPMC JSONL, gzip or not).
        #[arg(long, num_args = 1.., required = true)]
        epmc: Vec<PathBuf>,
        /// Labelled references (JSONL).
        #[arg(long, num_args = 1.., required = true)]
        gold: Vec<PathBuf>,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
    },
    /// Score the matcher against labelled references (no Kafka or PostgreSQL needed).
    Eval {
        /// Publication files (EPMC JSONL, gzip or not).
        #[arg(long, num_args = 1.., required = true)]
        epmc: Vec<PathBuf>,
        /// Labelled references: JSONL lines {"ref_id", "citation", "expected_pmid"}.
        #[arg(long, num_args = 1.., required = true)]
        gold: Vec<PathBuf>,
        /// Print one JSON object instead of a report.
        #[arg(long)]
        json: bool,
        /// How many errors the report lists.
        #[arg(long, default_value_t = 20)]
        worst: usize,
    },
}

/// The exit code of a process of a cluster whose peer stopped: the cluster restarts as a whole.
const PEER_STOPPED: i32 = 3;

/// When a process of a timely cluster stops, its peers' connections to it fail and timely's
/// network threads panic; this process then stops at once with [`PEER_STOPPED`], so that a
/// process manager restarts the whole cluster, which recovers through the commit protocol.
fn stop_with_the_cluster() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("timely communication error") {
            eprintln!(
                "citeflow: a process of the cluster stopped ({message}); this one stops too (exit {PEER_STOPPED}): restart the cluster"
            );
            std::process::exit(PEER_STOPPED);
        }
        default(info);
    }));
}

fn main() {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if cli.json_logs {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    if let Err(error) = allocator::register(&citeflow_engine::metrics::metrics().registry) {
        tracing::warn!(%error, "allocator statistics are not exported");
    }
    allocator::trim_system_heap();
    stop_with_the_cluster();
    if let Err(error) = execute(cli) {
        eprintln!("citeflow: {error:#}");
        std::process::exit(1);
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    let config = CiteflowConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Autoscale { export_only } => {
            let mode = if export_only {
                Mode::ExportOnly
            } else {
                let mut arguments: Vec<String> = Vec::new();
                if let Some(path) = &cli.config {
                    arguments.extend(["--config".to_string(), path.display().to_string()]);
                }
                if cli.json_logs {
                    arguments.push("--json-logs".to_string());
                }
                Mode::Act { program: std::env::current_exe().context("finding the citeflow program")?, arguments }
            };
            autoscale(&config, mode)?;
        }
        Command::Run { until_caught_up } => {
            let report = job::run(&config, until_caught_up)?;
            println!(
                "caught up in {:.1}s: {} transactions, {} rows written ({} by reconciliation)",
                report.elapsed.as_secs_f64(),
                report.commits.transactions,
                report.commits.rows_written,
                report.commits.reconciled_rows
            );
        }
        Command::Archive { out } => {
            check_connection(&config.kafka)?;
            let started = std::time::Instant::now();
            let topics = [config.topics.publications.clone(), config.topics.documents.clone()];
            let written = archive_topics(&config.kafka, &topics, &out)?;
            println!(
                "archived {written} messages of {} in {:.1}s into {}",
                topics.join(", "),
                started.elapsed().as_secs_f64(),
                out.display()
            );
        }
        Command::Topics => {
            check_connection(&config.kafka)?;
            let topics = [config.topics.publications.clone(), config.topics.documents.clone()];
            ensure_topics(&config.kafka, &topics, config.topics.partitions)?;
            ensure_topics(&config.kafka, std::slice::from_ref(&config.topics.dead_letter), 1)?;
            println!("topics ready: {}, {}, {}", topics[0], topics[1], config.topics.dead_letter);
        }
        Command::Load { data, rate } => {
            check_connection(&config.kafka)?;
            let started = std::time::Instant::now();
            let report = load_sample(&config.kafka, &config.topics, &SampleLoad { data, rate })?;
            println!(
                "loaded {} messages in {:.1}s: {} publications, {} deletions, {} documents, {} malformed",
                report.total(),
                started.elapsed().as_secs_f64(),
                report.publications,
                report.deletions,
                report.documents,
                report.malformed
            );
        }
        Command::Churn { data, rate, seconds, documents, publications, deletions, seed } => {
            check_connection(&config.kafka)?;
            let settings = ChurnSettings {
                data,
                rate,
                duration: std::time::Duration::from_secs(seconds),
                documents,
                publications,
                deletions,
                seed,
                ..ChurnSettings::default()
            };
            let report = churn(&config.kafka, &config.topics, settings)?;
            println!(
                "churned {} messages: {} document revisions, {} publication revisions, {} deletions",
                report.total(),
                report.documents,
                report.publications,
                report.deletions
            );
        }
        Command::Synth { epmc, held_out, positives, negatives, seed, index, gold } => {
            let records = eval::read_records(&epmc)?;
            let raw: std::collections::HashMap<String, serde_json::Value> =
                records.iter().map(|(p, record)| (p.id.clone(), record.clone())).collect();
            let publications = records.into_iter().map(|(p, _)| p).collect();
            let synthetic = synthetic::generate(publications, held_out, positives, negatives, seed);
            let mut index_out = std::io::BufWriter::new(std::fs::File::create(&index)?);
            for publication in &synthetic.index {
                writeln!(index_out, "{}", raw[&publication.id])?;
            }
            let mut gold_out = std::io::BufWriter::new(std::fs::File::create(&gold)?);
            for reference in &synthetic.references {
                writeln!(gold_out, "{}", serde_json::to_string(reference)?)?;
            }
            println!("{} indexed publications, {} references (seed {seed})", synthetic.index.len(), synthetic.references.len());
        }
        Command::Features { epmc, gold, out } => {
            let publications = eval::read_publications(&epmc)?;
            let references = eval::read_gold(&gold)?;
            let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
            let pairs = eval::write_features(&mut file, publications, &references)?;
            file.flush()?;
            println!("{pairs} candidate pairs of {} references written to {}", references.len(), out.display());
        }
        Command::Eval { epmc, gold, json, worst } => {
            let publications = eval::read_publications(&epmc)?;
            let references = eval::read_gold(&gold)?;
            let indexed = publications.len() as u64;
            let primary = config.matching.logic()?.remove(0);
            let decisions = eval::match_references(publications, &references, &primary.scorer, primary.decision)?;
            let evaluation = eval::score(&references, &decisions, indexed);
            if json {
                println!("{}", serde_json::to_string(&evaluation)?);
            } else {
                print!("{}", eval::report(&evaluation, worst));
            }
        }
        Command::Tail { view, to_end } => {
            let sink = config.kafka_sink.clone().unwrap_or_default();
            let topic = sink.topic(&view).ok_or_else(|| anyhow::anyhow!("the kafka sink does not write `{view}` (kafka_sink.views)"))?;
            check_connection(&config.kafka)?;
            let reading = if to_end { Reading::ToEnd } else { Reading::Follow };
            let mut out = std::io::stdout().lock();
            let mut written = Ok(());
            read_topic(&config.kafka, &topic, reading, |message| {
                written = writeln!(out, "{}", describe(message)).and_then(|()| out.flush());
                if written.is_ok() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })?;
            // A reader that stops early (`| head`) ends the tail; it is not an error.
            match written {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
                _ => {}
            }
        }
        Command::Status => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let text = runtime
                .block_on(async {
                    let client = status::connect(&config.postgres).await?;
                    status::report(&client).await
                })
                .context("reading status")?;
            print!("{text}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use citeflow_engine::autoscale::AutoscalerMetrics;
    use citeflow_engine::metrics::{metrics, PREFIX};

    use super::allocator;

    /// The PromQL expressions of a Grafana dashboard (every `expr`, however deep).
    fn expressions(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                for (key, value) in object {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => found.push(expr.clone()),
                        _ => expressions(value, found),
                    }
                }
            }
            serde_json::Value::Array(values) => values.iter().for_each(|value| expressions(value, found)),
            _ => {}
        }
    }

    /// Every metric the provisioned Grafana dashboard queries is one this program exports, and
    /// the dashboard shows what an operator needs.
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../deploy/grafana/dashboards/citeflow.json")).unwrap();
        let mut found = Vec::new();
        expressions(&dashboard, &mut found);
        let queried: BTreeSet<&str> = found
            .iter()
            .flat_map(|expr| expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')))
            .filter(|token| token.starts_with(&format!("{PREFIX}_")))
            .collect();
        let mut exported: BTreeSet<String> = metrics().families().iter().cloned().collect();
        exported.insert(format!("{PREFIX}_{}", allocator::FAMILY));
        exported.extend(AutoscalerMetrics::new().families().iter().cloned());
        for name in &queried {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|base| exported.contains(*base)))
                .unwrap_or(name);
            assert!(exported.contains(family), "the dashboard queries {name}, which the job does not export");
        }
        let needed = [
            "consumer_lag",
            "records_read_total",
            "commit_latency_seconds_bucket",
            "rows_written_total",
            "dead_letters_total",
            "late_records_total",
            "event_time_watermark_lag_seconds",
            "hydration_progress_ratio",
            "autoscaler_desired_parallelism",
            "autoscaler_decisions_total",
        ];
        for metric in needed {
            assert!(queried.contains(format!("{PREFIX}_{metric}").as_str()), "the dashboard shows {metric}");
        }
    }
}
