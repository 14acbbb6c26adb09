//! `citeflow autoscale`: sizing the job by its lag and rates ([`citeflow_engine::autoscale`]
//! decides), and acting on the decision.
//!
//! Every `autoscaler.interval` it reads the job's `/metrics` (every URL of
//! `autoscaler.metrics_urls`, summed: one per process of a cluster), decides, logs the decision
//! with its inputs, and exports `citeflow_autoscaler_*` on `autoscaler.metrics_addr`. Then:
//!
//! - [`Mode::Act`]: the autoscaler runs the job itself, as a child `citeflow run` with
//!   `CITEFLOW_WORKERS` set to the parallelism, and rescales it by stopping it (SIGTERM, SIGKILL
//!   after 10 s) and starting it at the new size. The commit protocol makes that safe: the new
//!   instance takes the next generation, replays what was committed and reconciles, so the
//!   views end as one uninterrupted run would leave them. The child dies with the autoscaler
//!   (`PR_SET_PDEATHSIG`); when the child stops by itself the autoscaler stops too, with its
//!   exit code, for the process manager to act on. One process only: a cluster's processes
//!   are started by a process manager, which an external scaler drives.
//! - [`Mode::ExportOnly`]: nothing is started or stopped; `citeflow_autoscaler_desired_parallelism`
//!   is what an external scaler (KEDA's Prometheus scaler, an HPA through an adapter) applies.
//!   When the job's worker count changes, the autoscaler stabilises again.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use citeflow_connectors::kafka::admin::discover_partitions;
use citeflow_engine::autoscale::scrape::{fetch, ScrapeError};
use citeflow_engine::autoscale::{Autoscaler, AutoscalerMetrics, Decision, Observation, ScalingPolicy, Step};
use citeflow_engine::config::{parse_duration, ConfigError};
use citeflow_engine::http::{serve, Readiness};
use serde::Deserialize;

use crate::config::{CiteflowConfig, SourceConfig};

/// How long a stopped job may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long one read of a job's metrics may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The `[autoscaler]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscalerConfig {
    /// The job's metrics endpoints, one per process (default: `engine.metrics_addr`'s).
    pub metrics_urls: Vec<String>,
    /// How often the metrics are read and a decision made.
    pub interval: String,
    /// The span rates are measured over.
    pub metrics_window: String,
    /// How long after a (re)start metrics are not used.
    pub stabilisation: String,
    /// The time within which the lag should be worked off.
    pub catch_up: String,
    /// How long a scale-down must be asked for before it is made.
    pub scale_down_cooldown: String,
    /// The utilisation aimed at (0–1).
    pub target_utilisation: f64,
    /// Utilisations within `target_utilisation ±` this are left alone.
    pub utilisation_band: f64,
    /// The smallest parallelism.
    pub min_parallelism: usize,
    /// The largest parallelism (default and at most: the input topics' partition count).
    pub max_parallelism: Option<usize>,
    /// Where the autoscaler serves its own `/metrics` (empty: nowhere).
    pub metrics_addr: String,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            metrics_urls: Vec::new(),
            interval: "10 s".into(),
            metrics_window: "2 min".into(),
            stabilisation: "1 min".into(),
            catch_up: "5 min".into(),
            scale_down_cooldown: "10 min".into(),
            target_utilisation: 0.7,
            utilisation_band: 0.3,
            min_parallelism: 1,
            max_parallelism: None,
            metrics_addr: "127.0.0.1:9465".into(),
        }
    }
}

fn duration(setting: &str, text: &str) -> Result<Duration, ConfigError> {
    let setting = format!("autoscaler.{setting}");
    match parse_duration(&setting, text)? {
        ms if ms > 0 => Ok(Duration::from_millis(ms as u64)),
        _ => Err(ConfigError::invalid(setting, "must be longer than 0")),
    }
}

impl AutoscalerConfig {
    /// How often to decide.
    pub fn interval(&self) -> Result<Duration, ConfigError> {
        duration("interval", &self.interval)
    }

    /// The policy for input topics of `partitions` partitions; checks every setting.
    pub fn policy(&self, partitions: usize) -> Result<ScalingPolicy, ConfigError> {
        let invalid = |setting: &str, reason: &str| ConfigError::invalid(format!("autoscaler.{setting}"), reason.to_string());
        if !(self.target_utilisation > 0.0 && self.target_utilisation <= 1.0) {
            return Err(invalid("target_utilisation", "must be above 0 and at most 1"));
        }
        if !(self.utilisation_band >= 0.0 && self.utilisation_band < self.target_utilisation) {
            return Err(invalid("utilisation_band", "must be at least 0 and below target_utilisation"));
        }
        if self.min_parallelism == 0 {
            return Err(invalid("min_parallelism", "must be at least 1"));
        }
        let max = self.max_parallelism.unwrap_or(partitions).min(partitions);
        if self.max_parallelism.is_some_and(|max| max < self.min_parallelism) {
            return Err(invalid("max_parallelism", "must be at least min_parallelism"));
        }
        let metrics_window = duration("metrics_window", &self.metrics_window)?;
        if metrics_window < self.interval()? {
            return Err(invalid("metrics_window", "must be at least one interval"));
        }
        if !self.metrics_addr.is_empty() && self.metrics_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("metrics_addr", "must be an address like 127.0.0.1:9465"));
        }
        if let Some(url) = self.metrics_urls.iter().find(|url| !url.starts_with("http://")) {
            return Err(ConfigError::invalid("autoscaler.metrics_urls", format!("`{url}` is not an http:// URL")));
        }
        Ok(ScalingPolicy {
            target_utilisation: self.target_utilisation,
            utilisation_band: self.utilisation_band,
            metrics_window,
            catch_up: duration("catch_up", &self.catch_up)?,
            stabilisation: duration("stabilisation", &self.stabilisation)?,
            scale_down_cooldown: duration("scale_down_cooldown", &self.scale_down_cooldown)?,
            min: self.min_parallelism.min(max.max(1)),
            max: max.max(1),
            partitions: partitions.max(1),
        })
    }
}

/// What the autoscaler does with its decisions.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Run the job as a child process and restart it at each new size.
    Act {
        /// The `citeflow` program.
        program: PathBuf,
        /// Arguments before `run` (the configuration file, log format).
        arguments: Vec<String>,
    },
    /// Only publish the desired parallelism.
    ExportOnly,
}

/// The job's observation: every endpoint read and summed.
async fn observe(urls: &[String]) -> Result<Observation, ScrapeError> {
    let mut observations = Vec::with_capacity(urls.len());
    for url in urls {
        observations.push(Observation::parse(&fetch(url, SCRAPE_TIMEOUT).await?)?);
    }
    Ok(Observation::combine(observations))
}

/// The job as a child process at some parallelism.
struct Job {
    program: PathBuf,
    arguments: Vec<String>,
    child: Child,
}

impl Job {
    fn start(program: PathBuf, arguments: Vec<String>, workers: usize) -> anyhow::Result<Job> {
        let mut command = Command::new(&program);
        command.args(&arguments).arg("run").env("CITEFLOW_WORKERS", workers.to_string());
        // SAFETY: prctl is async-signal-safe and the closure touches nothing else.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {}", program.display()))?;
        tracing::info!(workers, pid = child.id(), "job started");
        Ok(Job { program, arguments, child })
    }

    /// The exit status, if the job stopped.
    fn stopped(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Stops the job (SIGTERM, SIGKILL after [`STOP_GRACE`]) and starts it with `workers`.
    fn restart(mut self, workers: usize) -> anyhow::Result<Job> {
        // SAFETY: signalling our own child, which has not been reaped (try_wait saw it running).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while self.child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Job::start(self.program, self.arguments, workers)
    }
}

/// Logs one evaluation with everything it was decided from.
fn log_step(step: &Step, current: usize) {
    let evaluation = step.evaluation.map(|evaluation| serde_json::to_string(&evaluation).unwrap_or_default()).unwrap_or_default();
    tracing::info!(decision = step.decision.label(), reason = step.decision.reason(), current, desired = step.desired, %evaluation, "autoscaler decision");
}

/// Runs the autoscaler until the job stops (acting) or forever (exporting).
pub fn autoscale(config: &CiteflowConfig, mode: Mode) -> anyhow::Result<()> {
    let settings = &config.autoscaler;
    if config.source != SourceConfig::Kafka {
        return Err(anyhow!("source.kind: the autoscaler sizes a job by its consumer lag, so it needs the Kafka source"));
    }
    let processes = config.engine.hosts.len().max(1);
    if processes > 1 && matches!(mode, Mode::Act { .. }) {
        return Err(anyhow!("engine.hosts: the autoscaler runs one process; size a cluster with --export-only"));
    }
    let topics = [config.topics.publications.clone(), config.topics.documents.clone()];
    let partitions = discover_partitions(&config.kafka, &topics)?;
    let most = topics.iter().map(|topic| partitions.iter().filter(|(t, _)| t == topic).count()).max().unwrap_or(1);
    let policy = settings.policy(most)?;
    let interval = settings.interval()?;
    let urls = match settings.metrics_urls.as_slice() {
        [] if config.engine.metrics_addr.is_empty() => {
            return Err(anyhow!("autoscaler.metrics_urls: none given and engine.metrics_addr is empty"));
        }
        [] => vec![format!("http://{}/metrics", config.engine.metrics_addr)],
        urls => urls.to_vec(),
    };
    let metrics = AutoscalerMetrics::new();
    if !settings.metrics_addr.is_empty() {
        let readiness = Readiness::default();
        readiness.set(true);
        let address = serve(&settings.metrics_addr, readiness, metrics.registry.clone())
            .with_context(|| format!("binding autoscaler.metrics_addr {}", settings.metrics_addr))?;
        tracing::info!(%address, "serving the autoscaler's /metrics");
    }
    let initial = policy.aligned(config.engine.workers * processes);
    let mut job = match mode {
        Mode::Act { program, arguments } => Some(Job::start(program, arguments, initial)?),
        Mode::ExportOnly => None,
    };
    tracing::info!(?policy, ?urls, initial, acting = job.is_some(), "autoscaler started");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let origin = Instant::now();
    let mut autoscaler = Autoscaler::new(policy, initial, Duration::ZERO);
    metrics.current.set(initial as i64);
    metrics.desired.set(initial as i64);
    loop {
        std::thread::sleep(interval);
        if let Some(status) = job.as_mut().map(Job::stopped).transpose()?.flatten() {
            return Err(anyhow!("the job stopped ({status}); the autoscaler stops with it"));
        }
        let observation = match runtime.block_on(observe(&urls)) {
            Ok(observation) => Some(observation),
            Err(error) => {
                tracing::warn!(%error, "cannot read the job's metrics");
                metrics.scrape_errors.inc();
                None
            }
        };
        let step = autoscaler.observe(origin.elapsed(), observation);
        metrics.record(autoscaler.current(), &step);
        log_step(&step, autoscaler.current());
        let Decision::Rescale { from, to } = step.decision else { continue };
        if let Some(running) = job.take() {
            tracing::info!(from, to, "rescaling: restarting the job");
            job = Some(running.restart(to)?);
            autoscaler.restarted(to, origin.elapsed());
            metrics.current.set(to as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_flinks_shape() {
        let policy = AutoscalerConfig::default().policy(8).unwrap();
        assert_eq!((policy.min, policy.max, policy.partitions), (1, 8, 8));
        assert_eq!(policy.target_utilisation, 0.7);
        assert_eq!(AutoscalerConfig { max_parallelism: Some(16), ..Default::default() }.policy(8).unwrap().max, 8, "capped by partitions");
    }

    #[test]
    fn bad_settings_are_named() {
        let cases = [
            (AutoscalerConfig { target_utilisation: 1.5, ..Default::default() }, "autoscaler.target_utilisation"),
            (AutoscalerConfig { utilisation_band: 0.8, ..Default::default() }, "autoscaler.utilisation_band"),
            (AutoscalerConfig { min_parallelism: 0, ..Default::default() }, "autoscaler.min_parallelism"),
            (AutoscalerConfig { min_parallelism: 4, max_parallelism: Some(2), ..Default::default() }, "autoscaler.max_parallelism"),
            (AutoscalerConfig { metrics_window: "1 s".into(), ..Default::default() }, "autoscaler.metrics_window"),
            (AutoscalerConfig { catch_up: "soon".into(), ..Default::default() }, "autoscaler.catch_up"),
            (AutoscalerConfig { interval: "0 s".into(), ..Default::default() }, "autoscaler.interval"),
            (AutoscalerConfig { metrics_addr: "here".into(), ..Default::default() }, "autoscaler.metrics_addr"),
            (AutoscalerConfig { metrics_urls: vec!["localhost:9464".into()], ..Default::default() }, "autoscaler.metrics_urls"),
        ];
        for (config, setting) in cases {
            let message = config.policy(4).unwrap_err().to_string();
            assert!(message.contains(setting), "{message} names {setting}");
        }
    }
}
