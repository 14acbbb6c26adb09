//! Running the citation job: services, sink, timely workers, until stopped (or, on request,
//! until the inputs present at start have been read and committed).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use citeflow_connectors::archive::{self, archive_source};
use citeflow_connectors::kafka::admin::{check_connection, discover_partitions, ensure_topics, offset_ranges, retention, Retention};
use citeflow_connectors::kafka::dead_letters::DeadLetterPublisher;
use citeflow_connectors::kafka::discovery::{assigned, PartitionWatch};
use citeflow_connectors::kafka::group::GroupPositions;
use citeflow_connectors::kafka::sink::{start_kafka_sink, KafkaSinkHandle, KafkaSinkStart};
use citeflow_connectors::kafka::source::{kafka_source, SourceDiscovery, SourceSettings};
use citeflow_connectors::postgres::committer::{CommitStats, CommitterWatch, Followers};
use citeflow_connectors::postgres::{start_committer, CommitterHandle};
use citeflow_connectors::EpochSettings;
use citeflow_engine::flow::{Completed, FlowControl};
use citeflow_engine::http::{serve, Readiness};
use citeflow_engine::introspection;
use citeflow_engine::metrics::metrics;
use citeflow_engine::progress::{Reconciliation, SinkStart};
use citeflow_engine::sink::{batch_queue, commit_views, BatchQueue, Committer, HeldDigests, HydrationTarget, SinkProgress};
use citeflow_engine::time::{Epoch, EpochTicker};
use citeflow_engine::worker::{from_first_worker, timely_config};
use serde::{Deserialize, Serialize};
use timely::dataflow::ProbeHandle;

use crate::config::{CiteflowConfig, SourceConfig};
use crate::dataflow::{citation_job, JobLogic};
use crate::envelope::TopicRoles;
use crate::matching::journals::JournalTable;
use crate::periods::PeriodLogic;
use crate::views::{MIGRATIONS, VIEWS};

/// How long a worker parks when it has nothing to do.
const PARK: Duration = Duration::from_millis(100);

/// What a finished run did.
#[derive(Debug)]
pub struct RunReport {
    /// Totals of the committer.
    pub commits: CommitStats,
    /// Messages the Kafka sink wrote, when it runs.
    pub kafka_messages: Option<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Refuses input topics whose messages can expire, unless `topics.accept_expiring_messages`
/// says the user accepts it; then reconciliation keeps the rows the replay does not rebuild.
fn check_retention(config: &CiteflowConfig, topics: &[String]) -> anyhow::Result<Reconciliation> {
    for (topic, retention) in retention(&config.kafka, topics)? {
        let Retention::Expires { setting, value } = retention else { continue };
        if !config.topics.accept_expiring_messages {
            return Err(anyhow!(
                "topic `{topic}` can lose messages ({setting} = {value}): the job rebuilds its state by replaying its \
                 topics, so make the topic compacted (cleanup.policy=compact; `citeflow topics` creates them so) or set \
                 topics.accept_expiring_messages = true"
            ));
        }
        tracing::warn!(%topic, setting, %value, "input messages can expire; a restart keeps the rows it does not rebuild");
        return Ok(Reconciliation::KeepUnreplayed);
    }
    Ok(Reconciliation::Exact)
}

/// The low and high offsets of each of `partitions` where the job reads them: the broker's
/// watermarks, or the archive's first and next offsets (reading the archive checks its frames).
fn offset_ranges_of(config: &CiteflowConfig, partitions: &[(String, i32)]) -> anyhow::Result<Vec<(i64, i64)>> {
    match &config.source {
        SourceConfig::Kafka => Ok(offset_ranges(&config.kafka, partitions)?),
        SourceConfig::Archive { dir } => {
            Ok(partitions.iter().map(|(topic, partition)| archive::offset_range(dir, topic, *partition)).collect::<Result<_, _>>()?)
        }
    }
}

/// Stops at start, naming the partition, when the input holds fewer messages than the last run
/// committed (the topic was recreated or truncated) or has deleted messages the replay needs.
fn check_committed_offsets(config: &CiteflowConfig, target: &HydrationTarget, reconciliation: Reconciliation) -> anyhow::Result<()> {
    let partitions: Vec<(String, i32)> = target.keys().cloned().collect();
    for (((topic, partition), committed), (low, high)) in target.iter().zip(offset_ranges_of(config, &partitions)?) {
        if *committed > high {
            return Err(anyhow!(
                "{topic}/{partition} ends at offset {high}, but the last run committed offset {committed}: the topic was \
                 recreated or truncated, so the tables no longer match it; to rebuild them from the topic as it is, drop the \
                 job's tables (or use an empty database) and start again"
            ));
        }
        if low > 0 && reconciliation == Reconciliation::Exact {
            return Err(anyhow!(
                "{topic}/{partition} starts at offset {low}: messages the replay needs were deleted; set \
                 topics.accept_expiring_messages = true to run on what is left (rows not rebuilt are kept)"
            ));
        }
    }
    Ok(())
}

/// What the job learns of its inputs at start.
struct Inputs {
    /// Every partition of the input topics.
    partitions: Vec<(String, i32)>,
    /// How a restart reconciles.
    reconciliation: Reconciliation,
    /// Where dead letters are published (none when reading an archive).
    publisher: Option<DeadLetterPublisher>,
}

/// The inputs from Kafka (checking the brokers and the topics' retention), or from an archive.
fn inputs(config: &CiteflowConfig, topics: &[String]) -> anyhow::Result<Inputs> {
    match &config.source {
        SourceConfig::Kafka => {
            check_connection(&config.kafka)?;
            let partitions = discover_partitions(&config.kafka, topics)?;
            ensure_topics(&config.kafka, std::slice::from_ref(&config.topics.dead_letter), 1)?;
            let publisher = DeadLetterPublisher::new(&config.kafka, &config.topics.dead_letter)?;
            Ok(Inputs { partitions, reconciliation: check_retention(config, topics)?, publisher: Some(publisher) })
        }
        SourceConfig::Archive { dir } => {
            let partitions = archive::partitions(dir, topics)?;
            if partitions.is_empty() {
                return Err(anyhow!("the archive {} holds no partition of {topics:?} (source.dir)", dir.display()));
            }
            Ok(Inputs { partitions, reconciliation: Reconciliation::Exact, publisher: None })
        }
    }
}

/// Runs the job. With `until_caught_up` it stops once every partition has been read up to
/// the high watermark it had at start and everything is committed; otherwise it runs until
/// killed or fenced.
pub fn run(config: &CiteflowConfig, until_caught_up: bool) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let readiness = Readiness::default();
    if !config.engine.metrics_addr.is_empty() {
        let address = serve(&config.engine.metrics_addr, readiness.clone(), metrics().registry.clone())
            .with_context(|| format!("binding engine.metrics_addr {}", config.engine.metrics_addr))?;
        tracing::info!(%address, "serving /metrics, /health and /ready");
    }
    metrics().workers.set((config.engine.workers * config.engine.hosts.len().max(1)) as i64);
    let topics = vec![config.topics.publications.clone(), config.topics.documents.clone()];
    let Inputs { partitions, reconciliation, publisher } = inputs(config, &topics)?;
    let completed = Completed::new();
    // Process 0 keeps the job's progress: it alone takes the generation and runs the
    // committer, and every worker of the cluster learns from it what was committed.
    let (previous, queue, keeper) = match config.engine.process {
        0 => {
            let (previous, queue, keeper) = keep_progress(config, &partitions, reconciliation, publisher, readiness, completed.clone())?;
            (Some(previous), Some(queue), Some(keeper))
        }
        _ => (None, None, None),
    };
    let failure = keeper.as_ref().map(|keeper| keeper.committer.watch());
    let previous = Arc::new(Mutex::new(previous));
    let queue = Arc::new(Mutex::new(queue));
    let epochs = EpochSettings {
        epoch_ms: config.engine.epoch_ms,
        max_records_per_epoch: config.engine.max_records_per_epoch,
        stop_at_end: until_caught_up,
    };
    let kafka = config.kafka.clone();
    let mut periods = config.event_time.logic(&config.topics.documents)?;
    periods.partitions =
        partitions.iter().filter(|(topic, _)| *topic == config.topics.documents).map(|(_, partition)| *partition).collect();
    // Quiet sources in other processes of a cluster cannot be woken: there every epoch closes.
    let heartbeat = if config.engine.hosts.len() > 1 { config.engine.epoch_ms } else { config.engine.heartbeat_ms };
    let ticker = EpochTicker::new(config.engine.epoch_ms, Duration::from_millis(heartbeat));
    let logic = JobLogic {
        roles: TopicRoles {
            publications: config.topics.publications.clone(),
            documents: config.topics.documents.clone(),
            future: config.event_time.future()?,
        },
        journals: Arc::new(JournalTable::bundled()),
        matchers: config.matching.logic()?,
        watch_files: (!until_caught_up).then(|| ticker.clone()),
        config_file: config.file.clone(),
        periods,
        replay_to: HydrationTarget::new(),
    };
    let watch = match (until_caught_up, config.kafka.partition_discovery_ms, &config.source) {
        (true, _, _) | (_, 0, _) | (_, _, SourceConfig::Archive { .. }) => None,
        (false, ms, SourceConfig::Kafka) => Some(
            PartitionWatch::start(&config.kafka, topics.clone(), partitions.clone(), Duration::from_millis(ms))
                .context("starting partition discovery")?,
        ),
    };
    let source = config.source.clone();
    let (max_in_flight, sink_process) = (config.engine.max_in_flight_records, config.engine.process == 0);
    let (process, first_worker) = (config.engine.process, config.engine.process * config.engine.workers);
    let guards = timely::execute(timely_config(&config.engine), move |worker| -> Result<(), String> {
        let mine = assigned(&topics, &partitions, worker.index(), worker.peers());
        let discovery =
            watch.clone().map(|watch| SourceDiscovery { watch, topics: topics.clone(), worker: worker.index(), peers: worker.peers() });
        let shared = if worker.index() == 0 { previous.lock().expect("previous lock").take() } else { None };
        let Some(previous) = from_first_worker(worker, shared) else { return Err("the cluster stopped before it started".into()) };
        if worker.index() == first_worker {
            tracing::info!(generation = previous.start.generation, process, "this process resumes the job at the cluster's generation");
        }
        let logic = logic.resumed(&previous);
        let committer = if worker.index() == 0 { queue.lock().expect("queue lock").take() } else { None };
        let completed = if sink_process { completed.clone() } else { Completed::unbounded() };
        let probe = ProbeHandle::new();
        let flow = FlowControl::new(probe.clone(), completed.clone(), max_in_flight);
        let ticker = ticker.clone();
        let kafka = kafka.clone();
        let source = source.clone();
        let (held, target) = (previous.held(), previous.start.committed);
        introspection::install(worker, metrics());
        worker.dataflow::<Epoch, _, _>(move |scope| {
            let events = match source {
                SourceConfig::Kafka => {
                    kafka_source(scope, SourceSettings { kafka, epochs }, mine, flow, ticker, discovery).map_err(|e| e.to_string())?
                }
                SourceConfig::Archive { dir } => archive_source(scope, &dir, epochs, mine, flow, ticker).map_err(|e| e.to_string())?,
            };
            let outputs = citation_job(events, logic).map_err(|e| e.to_string())?;
            let progress = SinkProgress { probe: &probe, completed };
            commit_views(outputs.views, outputs.positions, outputs.dead_letters, target, held, committer, progress);
            Ok::<_, String>(())
        })?;
        while worker.has_dataflows() {
            worker.step_or_park(Some(PARK));
            if let Some(failure) = failure.as_ref().and_then(CommitterWatch::failure) {
                for dataflow in worker.installed_dataflows() {
                    worker.drop_dataflow(dataflow);
                }
                return Err(failure);
            }
        }
        Ok(())
    })
    .map_err(|e| anyhow!("starting timely workers: {e}"))?;
    for result in guards.join() {
        result.map_err(|e| anyhow!("a worker failed: {e}"))?.map_err(|e| anyhow!(e))?;
    }
    let (commits, kafka_messages) = match keeper {
        Some(keeper) => (keeper.committer.join()?, keeper.kafka_sink.map(KafkaSinkHandle::join).transpose()?),
        None => (CommitStats::default(), None),
    };
    Ok(RunReport { commits, kafka_messages, elapsed: started.elapsed() })
}

/// What every worker must know of the previous runs before it builds the dataflow: what the
/// progress store said (its committed offsets kept to the partitions read now) and what every
/// other destination holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Previous {
    start: SinkStart,
    others: Vec<HeldDigests>,
}

impl Previous {
    /// What each destination holds, the progress store first.
    fn held(&self) -> Arc<[HeldDigests]> {
        std::iter::once(&self.start.held).chain(&self.others).cloned().collect()
    }
}

impl JobLogic {
    /// The logic of a run that resumes from `previous`: it replays to the committed offsets and
    /// decides lateness as the runs before it did.
    fn resumed(&self, previous: &Previous) -> JobLogic {
        let mut logic = self.clone();
        let documents = &logic.roles.documents;
        logic.periods.replay_to = previous
            .start
            .committed
            .iter()
            .filter(|((topic, _), _)| topic == documents)
            .map(|((_, partition), offset)| (*partition, *offset))
            .collect();
        logic.periods.log =
            PeriodLogic::advances_from(previous.start.watermark_log.iter().filter(|row| &row.topic == documents).cloned().collect());
        logic.replay_to = previous.start.committed.clone();
        logic
    }
}

/// The destinations that keep the job's progress, started by process 0.
struct Keeper {
    committer: CommitterHandle,
    kafka_sink: Option<KafkaSinkHandle>,
}

/// Starts the committer (taking a new generation) and the Kafka sink, and reads what the
/// previous runs committed: that, the queue to the committer, and the destinations.
fn keep_progress(
    config: &CiteflowConfig,
    partitions: &[(String, i32)],
    reconciliation: Reconciliation,
    publisher: Option<DeadLetterPublisher>,
    readiness: Readiness,
    completed: Completed,
) -> anyhow::Result<(Previous, BatchQueue, Keeper)> {
    // Lag tools read the consumer group, which the job tells its positions after each commit.
    let group = match config.source {
        SourceConfig::Kafka => Some(GroupPositions::new(&config.kafka)?),
        SourceConfig::Archive { .. } => None,
    };
    let (kafka_queue, kafka_receiver) = config.kafka_sink.as_ref().map(|_| batch_queue("kafka")).unzip();
    let followers =
        Followers { dead_letters: publisher, destination: kafka_queue.map(|queue| Box::new(queue) as Box<dyn Committer + Send>), group };
    let (start, queue, committer) =
        start_committer(&config.postgres, reconciliation, VIEWS.to_vec(), MIGRATIONS, followers, readiness, completed)?;
    let mut others = Vec::new();
    let kafka_sink = match (&config.kafka_sink, kafka_receiver) {
        (Some(sink), Some(receiver)) => {
            let start = KafkaSinkStart { kafka: &config.kafka, config: sink, views: &VIEWS, generation: start.generation, reconciliation };
            let (kafka_held, handle) = start_kafka_sink(start, receiver, committer.watch()).context("starting the kafka sink")?;
            others.push(kafka_held);
            Some(handle)
        }
        _ => None,
    };
    let mut start = start;
    start.committed.retain(|key, _| partitions.contains(key));
    check_committed_offsets(config, &start.committed, reconciliation)?;
    tracing::info!(
        generation = start.generation,
        partitions = partitions.len(),
        replay_to = ?start.committed,
        "starting; replaying inputs up to the committed offsets before writing"
    );
    Ok((Previous { start, others }, queue, Keeper { committer, kafka_sink }))
}
