//! The Kafka sink: chosen views as change topics, following the committer.
//!
//! **Messages.** Each view written to Kafka has its own topic, `<topic_prefix><table>`
//! (`citeflow.citations`), created compacted with `partitions` partitions. A message's key is
//! the row's primary key as a JSON object, its value the whole row as a JSON object, typed by
//! the view's schema ([`ViewSchema::decode`]); a deleted row is a tombstone (no value). Headers:
//! `citeflow.frontier` (the frontier of the batch the change belongs to: an epoch number, or
//! `end` when the inputs were exhausted), `citeflow.generation` (the job's generation) and, on
//! values, `citeflow.digest` (the row's digest, [`citeflow_engine::rows`]).
//!
//! **Order and progress.** The sink follows the job's committer (the PostgreSQL committer holds
//! the job's positions, watermark log and generation): it writes a group of batches only after
//! the committer has committed it, in commit order, and once every message of the group is
//! acknowledged it appends a progress record, `{"frontier": F, "generation": G}` keyed by the
//! topic prefix, to the progress topic (one partition, compacted). Every change of the epochs
//! before `F` is then in the topics. The producer is idempotent (`enable.idempotence`): a send
//! it retries is written once, and the messages of one partition appear in the order sent, so a
//! key's changes are in the order the view made them.
//!
//! **Restarts: each change once.** When the job starts, the sink reads its topics to the end
//! and says what they hold as digests per bucket ([`HeldDigests`]), as the database does. The
//! restart's reconciliation sends the buckets that differ from what either destination holds;
//! of those the sink writes only the rows whose latest value on the topic differs (it reads the
//! topics again for the keys of those buckets) and a tombstone for each key the topic holds
//! there that the view lacks (unless reconciliation keeps unreplayed rows). What reached the
//! topic before a crash is therefore compared, never sent again; what the crash kept from it
//! arrives as its net effect (a key revised twice while the sink was down shows its latest value
//! once). A consumer that follows the topic sees no key take the value it already has.
//!
//! The sink does not use Kafka transactions: a crash between two messages of one batch leaves
//! the first visible, and the batch is complete once the progress topic reaches its frontier.
//! `connectors/docs/kafka-sink.md` says why (the local broker cannot end a transaction) and what
//! a reader can rely on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use citeflow_engine::metrics::metrics;
use citeflow_engine::rows::{bucket_of, key_bucket, Bucket, Column, DecodeError, Value, ViewId, ViewSchema};
use citeflow_engine::sink::{BatchReceiver, CommitBatch, CommitMode, HeldDigests, HeldView, Replaced, ViewChanges};
use citeflow_engine::time::Epoch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number};

use super::admin::{discover_partitions, ensure_topics, is_topic_name, watermarks, METADATA_TIMEOUT};
use super::producer::{Outgoing, Producer};
use super::{KafkaConfig, KafkaError};
use crate::postgres::committer::CommitterWatch;
use citeflow_engine::progress::Reconciliation;

/// The header naming the frontier of a message's batch.
pub const FRONTIER_HEADER: &str = "citeflow.frontier";
/// The header holding a value's row digest.
pub const DIGEST_HEADER: &str = "citeflow.digest";
/// The header holding the job's generation.
pub const GENERATION_HEADER: &str = "citeflow.generation";

/// How the sink makes each change visible once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// An idempotent producer, and reconciliation against the topics after a restart: works
    /// with any broker; a crash can leave part of a batch visible (see the module
    /// documentation).
    #[default]
    Idempotent,
    /// A transactional producer: each group of batches and its progress record commit together,
    /// and a new instance fences the producers of older ones (`transactional_id`). Needs a
    /// broker that commits transactions (Apache Kafka; not tansu 0.6.0).
    Transactional,
}

/// Where the job's views go on Kafka (`[kafka_sink]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The views written, by table name.
    pub views: Vec<String>,
    /// A view's topic is this prefix and its table name.
    pub topic_prefix: String,
    /// The topic of the sink's progress records (one partition, compacted).
    pub progress_topic: String,
    /// Partitions of each view's topic, when the sink creates it.
    pub partitions: i32,
    /// How each change is made visible once.
    pub delivery: Delivery,
    /// The producer's `transactional.id` with [`Delivery::Transactional`]: the same for every
    /// run of one job, different between jobs. Default: `citeflow-sink:<topic_prefix>`.
    pub transactional_id: Option<String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            views: vec!["citations".into()],
            topic_prefix: "citeflow.".into(),
            progress_topic: "citeflow.sink-progress".into(),
            partitions: 4,
            delivery: Delivery::Idempotent,
            transactional_id: None,
        }
    }
}

/// The Kafka sink could not start or write.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    /// A setting is wrong.
    #[error("kafka_sink.{setting}: {reason}")]
    Config {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The client failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// A row did not decode by its view's schema (a bug: the engine encoded it).
    #[error("kafka sink: {0}")]
    Row(#[from] DecodeError),
    /// Reading a topic made no progress.
    #[error("kafka sink: reading {topic} stalled at {read} of {total} partitions done")]
    Stalled {
        /// The topic.
        topic: String,
        /// Partitions read to their end.
        read: usize,
        /// Partitions to read.
        total: usize,
    },
}

/// A record of the progress topic: every change of the epochs before `frontier` (all of them
/// when `None` follows a run that read its inputs to the end) is in the view topics, written by
/// `generation`. A new generation records its start with the frontier it found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The frontier.
    pub frontier: Option<Epoch>,
    /// The job's generation.
    pub generation: i64,
}

/// One view the sink writes.
#[derive(Clone, Debug)]
struct SinkView {
    id: ViewId,
    schema: ViewSchema,
    topic: String,
}

impl KafkaSinkConfig {
    /// Checks the settings against the job's `views`; returns the views written.
    fn resolve(&self, views: &[ViewSchema]) -> Result<Vec<SinkView>, KafkaSinkError> {
        if !is_topic_name(&self.topic_prefix) {
            return Err(KafkaSinkError::Config {
                setting: "topic_prefix",
                reason: format!("`{}` cannot start a topic name", self.topic_prefix),
            });
        }
        if !is_topic_name(&self.progress_topic) {
            return Err(KafkaSinkError::Config {
                setting: "progress_topic",
                reason: format!("`{}` is not a topic name", self.progress_topic),
            });
        }
        if !(1..=1024).contains(&self.partitions) {
            return Err(KafkaSinkError::Config { setting: "partitions", reason: "must be between 1 and 1024".into() });
        }
        if self.views.is_empty() {
            return Err(KafkaSinkError::Config { setting: "views", reason: "names no view".into() });
        }
        let names: BTreeSet<&str> = self.views.iter().map(String::as_str).collect();
        let mut chosen = Vec::new();
        for name in names {
            let Some((id, schema)) = views.iter().enumerate().find(|(_, schema)| schema.table == name) else {
                let known: Vec<&str> = views.iter().map(|schema| schema.table).collect();
                return Err(KafkaSinkError::Config {
                    setting: "views",
                    reason: format!("no view is named `{name}` (the views: {known:?})"),
                });
            };
            let id = ViewId::try_from(id).expect("fewer than 65,536 views");
            chosen.push(SinkView { id, schema: schema.clone(), topic: self.topic_of(schema.table) });
        }
        Ok(chosen)
    }

    /// Checks the settings against the job's `views`: the setting that is wrong and why.
    pub fn check(&self, views: &[ViewSchema]) -> Result<(), (&'static str, String)> {
        match self.resolve(views) {
            Err(KafkaSinkError::Config { setting, reason }) => Err((setting, reason)),
            _ => Ok(()),
        }
    }

    /// The topic of the view `table`, if the sink writes it.
    pub fn topic(&self, table: &str) -> Option<String> {
        self.views.iter().any(|view| view == table).then(|| self.topic_of(table))
    }

    fn topic_of(&self, table: &str) -> String {
        format!("{}{table}", self.topic_prefix)
    }
}

/// The JSON text of `values` as one object, keyed by column name.
fn json_object<'a>(values: impl IntoIterator<Item = (Column, Value<'a>)>) -> Vec<u8> {
    let object: Map<String, serde_json::Value> = values
        .into_iter()
        .map(|(column, value)| {
            let value = match value {
                Value::Null => serde_json::Value::Null,
                Value::Text(text) => serde_json::Value::String(text.into_owned()),
                Value::Integer(integer) => serde_json::Value::Number(integer.into()),
                Value::Float(float) => Number::from_f64(float).map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Boolean(boolean) => serde_json::Value::Bool(boolean),
                Value::Bytes(bytes) => serde_json::Value::String(bytes.iter().map(|byte| format!("{byte:02x}")).collect()),
            };
            (column.name.to_owned(), value)
        })
        .collect();
    serde_json::to_vec(&object).expect("a JSON map serializes")
}

/// One change as it goes to a topic.
#[derive(Debug, PartialEq, Eq)]
struct Change {
    key: Vec<u8>,
    /// The row's JSON and digest; `None` is a tombstone.
    value: Option<(Vec<u8>, i64)>,
}

/// The change an encoded row (a line with its digest last) makes.
fn upsert(schema: &ViewSchema, line: &str) -> Result<Change, KafkaSinkError> {
    let digest = line.rsplit_once('\t').and_then(|(_, digest)| digest.parse().ok()).unwrap_or_default();
    let values = schema.decode(line)?;
    let key = json_object(values[..schema.key_columns].iter().cloned());
    Ok(Change { key, value: Some((json_object(values), digest)) })
}

/// The tombstone of an encoded key.
fn tombstone(schema: &ViewSchema, key: &str) -> Result<Change, KafkaSinkError> {
    Ok(Change { key: json_object(schema.decode(key)?), value: None })
}

/// The changes a batch makes to one view's topic. `held` is what the topic holds of the
/// batch's replaced buckets (latest digest per key), `None` when nothing is replaced.
fn changes_of(
    schema: &ViewSchema,
    changes: &ViewChanges,
    held: Option<&HashMap<Vec<u8>, i64>>,
    reconciliation: Reconciliation,
) -> Result<Vec<Change>, KafkaSinkError> {
    let mut out = Vec::with_capacity(changes.upserts.len() + changes.deletes.len());
    let Some(held) = held else {
        for line in &changes.upserts {
            out.push(upsert(schema, line)?);
        }
        for key in &changes.deletes {
            out.push(tombstone(schema, key)?);
        }
        return Ok(out);
    };
    let replaced = |key: &str| match &changes.replaced {
        Replaced::Nothing => false,
        Replaced::Everything => true,
        Replaced::Buckets(buckets) => buckets.binary_search(&key_bucket(key)).is_ok(),
    };
    // The keys the view holds in the replaced buckets after this batch.
    let mut kept = BTreeSet::new();
    for line in &changes.upserts {
        let change = upsert(schema, line)?;
        let digest = change.value.as_ref().map(|(_, digest)| *digest);
        if replaced(schema.key_of(line)) {
            kept.insert(change.key.clone());
        }
        if held.get(&change.key).copied() != digest {
            out.push(change);
        }
    }
    for key in &changes.deletes {
        let change = tombstone(schema, key)?;
        if !replaced(key) || (held.contains_key(&change.key) && !kept.contains(&change.key)) {
            kept.insert(change.key.clone());
            out.push(change);
        }
    }
    if reconciliation == Reconciliation::Exact {
        let mut gone: Vec<&Vec<u8>> = held.keys().filter(|key| !kept.contains(*key)).collect();
        gone.sort();
        out.extend(gone.into_iter().map(|key| Change { key: key.clone(), value: None }));
    }
    Ok(out)
}

/// How far [`read_topic`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// To the end each partition had when reading began.
    ToEnd,
    /// On, as messages arrive, until the process stops.
    Follow,
}

/// Reads every partition of `topic` from its start, handing each message to `each` until it
/// says stop ([`ControlFlow::Break`]; `read_committed`: messages of open or aborted
/// transactions are not read). Reading [`Reading::ToEnd`] fails if a minute passes without a
/// message or a partition's end.
pub fn read_topic(
    config: &KafkaConfig,
    topic: &str,
    reading: Reading,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> ControlFlow<()>,
) -> Result<(), KafkaSinkError> {
    let mut client = config.consumer_config();
    client.set("isolation.level", "read_committed").set("enable.partition.eof", "true");
    let consumer: BaseConsumer = client.create().map_err(KafkaError::client("creating a consumer"))?;
    let partitions = discover_partitions(config, &[topic.to_owned()])?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for (_, partition) in &partitions {
        let (low, high) = watermarks(&consumer, topic, *partition, METADATA_TIMEOUT)?;
        if high > low || reading == Reading::Follow {
            assignment.add_partition_offset(topic, *partition, Offset::Beginning).map_err(KafkaError::client("assigning"))?;
            ends.insert(*partition, high);
        }
    }
    let total = ends.len();
    if total == 0 {
        return Ok(());
    }
    consumer.assign(&assignment).map_err(KafkaError::client(format!("assigning {topic}")))?;
    let mut last_progress = Instant::now();
    while reading == Reading::Follow || !ends.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                last_progress = Instant::now();
                if each(&message).is_break() {
                    return Ok(());
                }
                if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
                    ends.remove(&message.partition());
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                last_progress = Instant::now();
                ends.remove(&partition);
            }
            Some(Err(error)) => return Err(KafkaError::Client { context: format!("reading {topic}"), source: error }.into()),
            None if reading == Reading::ToEnd && last_progress.elapsed() > Duration::from_secs(60) => {
                return Err(KafkaSinkError::Stalled { topic: topic.to_owned(), read: total - ends.len(), total });
            }
            None => {}
        }
    }
    Ok(())
}

/// One message of a view's topic as `citeflow tail` prints it: a JSON object with the
/// partition, offset, frontier, key and value (`null` for a tombstone).
pub fn describe(message: &BorrowedMessage<'_>) -> String {
    let json = |bytes: Option<&[u8]>| match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => {
            serde_json::from_slice(bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
        }
    };
    serde_json::json!({
        "partition": message.partition(),
        "offset": message.offset(),
        "frontier": header(message, FRONTIER_HEADER),
        "key": json(message.key()),
        "value": json(message.payload()),
    })
    .to_string()
}

/// A header's value as text.
pub fn header<'a>(message: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a str> {
    message.headers()?.iter().find(|header| header.key == name).and_then(|header| std::str::from_utf8(header.value?).ok())
}

/// What `topic` holds: per key, the latest value's digest, for keys whose bucket `keep` wants.
fn held_keys(config: &KafkaConfig, topic: &str, keep: impl Fn(Bucket) -> bool) -> Result<HashMap<Vec<u8>, i64>, KafkaSinkError> {
    let mut held = HashMap::new();
    read_topic(config, topic, Reading::ToEnd, |message| {
        let digest = header(message, DIGEST_HEADER).and_then(|digest| digest.parse::<i64>().ok());
        match (message.key(), message.payload(), digest) {
            (Some(key), Some(_), Some(digest)) if keep(bucket_of(digest)) => {
                held.insert(key.to_vec(), digest);
            }
            (Some(key), _, _) => {
                held.remove(key);
            }
            (None, _, _) => {}
        }
        ControlFlow::Continue(())
    })?;
    Ok(held)
}

/// The sum of digests per bucket of what a topic holds.
fn bucket_sums(held: &HashMap<Vec<u8>, i64>) -> HashMap<Bucket, i128> {
    let mut sums: HashMap<Bucket, i128> = HashMap::new();
    for digest in held.values() {
        *sums.entry(bucket_of(*digest)).or_default() += i128::from(*digest);
    }
    sums
}

/// The job's handle on the Kafka sink's thread.
pub struct KafkaSinkHandle {
    thread: JoinHandle<Result<u64, KafkaSinkError>>,
}

impl KafkaSinkHandle {
    /// Waits until the sink has written everything queued (the committer must have stopped)
    /// and returns how many messages it wrote.
    pub fn join(self) -> Result<u64, KafkaSinkError> {
        self.thread.join().expect("kafka sink thread panicked")
    }
}

/// Everything the sink's thread needs.
pub struct KafkaSinkStart<'a> {
    /// The Kafka clients' settings.
    pub kafka: &'a KafkaConfig,
    /// The sink's settings.
    pub config: &'a KafkaSinkConfig,
    /// The job's views, indexed by [`ViewId`].
    pub views: &'a [ViewSchema],
    /// The job's generation.
    pub generation: i64,
    /// What reconciliation does with rows the replay did not rebuild.
    pub reconciliation: Reconciliation,
}

/// Checks the settings, creates the topics, fences older instances' producers (transactional
/// delivery), reads what the topics hold and starts the sink's thread on `receiver`. Returns
/// what the topics hold, for the reconciliation; a failure of the thread is reported through
/// `watch`.
pub fn start_kafka_sink(
    start: KafkaSinkStart<'_>,
    receiver: BatchReceiver,
    watch: CommitterWatch,
) -> Result<(HeldDigests, KafkaSinkHandle), KafkaSinkError> {
    let views = start.config.resolve(start.views)?;
    ensure_topics(start.kafka, &views.iter().map(|view| view.topic.clone()).collect::<Vec<_>>(), start.config.partitions)?;
    ensure_topics(start.kafka, std::slice::from_ref(&start.config.progress_topic), 1)?;
    let mut kafka = start.kafka.clone();
    kafka.producer.insert("enable.idempotence".into(), "true".into());
    let producer_kafka = match start.config.delivery {
        Delivery::Idempotent => kafka.clone(),
        Delivery::Transactional => {
            let id = start.config.transactional_id.clone().unwrap_or_else(|| format!("citeflow-sink:{}", start.config.topic_prefix));
            let mut transactional = kafka.clone();
            transactional.producer.insert("transactional.id".into(), id);
            transactional
        }
    };
    let producer = Producer::new(&producer_kafka, None)?;
    if start.config.delivery == Delivery::Transactional {
        producer.init_transactions()?;
    }
    let mut held = HeldDigests::new();
    for view in &views {
        let keys = held_keys(start.kafka, &view.topic, |_| true)?;
        tracing::info!(topic = view.topic, keys = keys.len(), "kafka sink: read what the topic holds");
        held.insert(view.id, HeldView::Buckets(bucket_sums(&keys)));
    }
    let mut last: Option<Progress> = None;
    read_topic(start.kafka, &start.config.progress_topic, Reading::ToEnd, |message| {
        if message.key() == Some(start.config.topic_prefix.as_bytes()) {
            last = message.payload().and_then(|payload| serde_json::from_slice(payload).ok());
        }
        ControlFlow::Continue(())
    })?;
    let mut sink = KafkaSink {
        producer,
        kafka,
        delivery: start.config.delivery,
        views,
        generation: start.generation,
        reconciliation: start.reconciliation,
        progress_topic: start.config.progress_topic.clone(),
        progress_key: start.config.topic_prefix.clone(),
        messages: 0,
    };
    let frontier = last.as_ref().and_then(|progress| progress.frontier);
    sink.record_progress(&Progress { frontier, generation: start.generation }, false)?;
    tracing::info!(?last, generation = start.generation, delivery = ?sink.delivery, "kafka sink ready");
    let thread = std::thread::Builder::new()
        .name("citeflow-kafka-sink".into())
        .spawn(move || {
            let result = sink.run(receiver);
            if let Err(error) = &result {
                tracing::error!(%error, "kafka sink stopped");
                watch.report(format!("kafka sink: {error}"));
            }
            result
        })
        .expect("spawning the kafka sink thread");
    Ok((held, KafkaSinkHandle { thread }))
}

struct KafkaSink {
    kafka: KafkaConfig,
    producer: Producer,
    delivery: Delivery,
    views: Vec<SinkView>,
    generation: i64,
    reconciliation: Reconciliation,
    progress_topic: String,
    progress_key: String,
    messages: u64,
}

impl KafkaSink {
    fn run(mut self, receiver: BatchReceiver) -> Result<u64, KafkaSinkError> {
        while let Some(batches) = receiver.next_group() {
            self.write(&batches)?;
        }
        Ok(self.messages)
    }

    /// Writes the committed `batches`, then their progress record, and waits for both.
    fn write(&mut self, batches: &[CommitBatch]) -> Result<(), KafkaSinkError> {
        let Some(last) = batches.iter().rev().find(|batch| batch.mode != CommitMode::Stage) else { return Ok(()) };
        let generation = self.generation.to_string();
        let transactional = self.delivery == Delivery::Transactional;
        if transactional {
            self.producer.begin_transaction()?;
        }
        for batch in batches.iter().filter(|batch| batch.mode != CommitMode::Stage) {
            let frontier = frontier_text(batch.frontier);
            for view in &self.views {
                let Some(changes) = batch.views.get(&view.id) else { continue };
                let held = match &changes.replaced {
                    Replaced::Nothing => None,
                    Replaced::Everything => Some(held_keys(&self.kafka, &view.topic, |_| true)?),
                    Replaced::Buckets(buckets) => {
                        let buckets: BTreeSet<Bucket> = buckets.iter().copied().collect();
                        Some(held_keys(&self.kafka, &view.topic, |bucket| buckets.contains(&bucket))?)
                    }
                };
                let changes = changes_of(&view.schema, changes, held.as_ref(), self.reconciliation)?;
                for change in &changes {
                    self.producer.send(Outgoing {
                        topic: &view.topic,
                        key: Some(&change.key),
                        value: change.value.as_ref().map(|(value, _)| value.as_slice()),
                        headers: Some(headers(&frontier, &generation, change.value.as_ref().map(|(_, digest)| *digest))),
                        partition: None,
                    })?;
                }
                metrics().rows_written.with_label_values(&[view.topic.as_str()]).inc_by(changes.len() as u64);
                self.messages += changes.len() as u64;
            }
        }
        let progress = Progress { frontier: last.frontier, generation: self.generation };
        self.record_progress(&progress, transactional)
    }

    /// Appends `progress` to the progress topic and waits for it. In the transaction open for
    /// the messages it covers (`in_transaction`), it commits with them; otherwise it follows
    /// them once they are acknowledged, in a transaction of its own with
    /// [`Delivery::Transactional`].
    fn record_progress(&mut self, progress: &Progress, in_transaction: bool) -> Result<(), KafkaSinkError> {
        let transactional = self.delivery == Delivery::Transactional;
        if !in_transaction {
            self.producer.flush()?;
            if transactional {
                self.producer.begin_transaction()?;
            }
        }
        let payload = serde_json::to_vec(progress).expect("JSON serializes");
        self.producer.send(Outgoing {
            topic: &self.progress_topic,
            key: Some(self.progress_key.as_bytes()),
            value: Some(&payload),
            headers: Some(headers(&frontier_text(progress.frontier), &progress.generation.to_string(), None)),
            partition: Some(0),
        })?;
        if transactional {
            self.producer.commit_transaction().map_err(unsupported_transactions)?;
        } else {
            self.producer.flush()?;
        }
        Ok(())
    }
}

/// A message's headers (see the module documentation).
fn headers(frontier: &str, generation: &str, digest: Option<i64>) -> OwnedHeaders {
    let headers = OwnedHeaders::new()
        .insert(Header { key: FRONTIER_HEADER, value: Some(frontier) })
        .insert(Header { key: GENERATION_HEADER, value: Some(generation) });
    match digest {
        Some(digest) => headers.insert(Header { key: DIGEST_HEADER, value: Some(digest.to_string().as_str()) }),
        None => headers,
    }
}

/// A commit's failure, named as a setting to change when the brokers cannot commit
/// transactions at all.
fn unsupported_transactions(error: KafkaError) -> KafkaSinkError {
    match &error {
        KafkaError::Client { source, .. } if source.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature) => {
            KafkaSinkError::Config {
                setting: "delivery",
                reason: format!("the brokers cannot commit transactions ({error}); use delivery = \"idempotent\""),
            }
        }
        _ => error.into(),
    }
}

/// A frontier as the headers write it.
fn frontier_text(frontier: Option<Epoch>) -> String {
    frontier.map_or_else(|| "end".to_owned(), |frontier| frontier.to_string())
}

/// Per key, what a topic's messages leave as its latest value: the view as the topic holds it.
/// For readers of the topics (`citeflow tail`, tests).
pub fn latest_values(config: &KafkaConfig, topic: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, KafkaSinkError> {
    let mut latest = BTreeMap::new();
    read_topic(config, topic, Reading::ToEnd, |message| {
        match (message.key(), message.payload()) {
            (Some(key), Some(value)) => latest.insert(key.to_vec(), value.to_vec()),
            (Some(key), None) => latest.remove(key),
            (None, _) => None,
        };
        ControlFlow::Continue(())
    })?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use citeflow_engine::rows::{encode_line, CopyLine, ViewRow};

    const SCHEMA: ViewSchema = ViewSchema {
        table: "t",
        columns: &[Column::text("id"), Column::integer("n"), Column::float("score"), Column::text("note")],
        key_columns: 2,
    };

    struct Example(&'static str, i64, f64, Option<&'static str>);

    impl ViewRow for Example {
        fn write(&self, line: &mut CopyLine) {
            line.text(self.0).int(self.1).float(self.2).opt_text(self.3);
        }
    }

    fn line(row: Example) -> String {
        encode_line(&SCHEMA, &row)
    }

    #[test]
    fn rows_are_typed_json_keyed_by_their_primary_key() {
        let change = upsert(&SCHEMA, &line(Example("a\tb", 3, 0.5, None))).unwrap();
        assert_eq!(String::from_utf8(change.key.clone()).unwrap(), r#"{"id":"a\tb","n":3}"#);
        let (value, digest) = change.value.unwrap();
        assert_eq!(String::from_utf8(value).unwrap(), r#"{"id":"a\tb","n":3,"note":null,"score":0.5}"#);
        assert_eq!(Some(digest), line(Example("a\tb", 3, 0.5, None)).rsplit_once('\t').and_then(|(_, d)| d.parse().ok()));
        let gone = tombstone(&SCHEMA, "a\\tb\t3").unwrap();
        assert_eq!((gone.key, gone.value), (change.key, None), "a tombstone's key is its row's");
    }

    #[test]
    fn a_delta_is_sent_as_it_is() {
        let changes =
            ViewChanges { upserts: vec![line(Example("a", 1, 1.0, None))], deletes: vec!["b\t2".into()], replaced: Replaced::Nothing };
        let out = changes_of(&SCHEMA, &changes, None, Reconciliation::Exact).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[0].value.is_some() && out[1].value.is_none());
    }

    #[test]
    fn a_replaced_bucket_sends_only_what_the_topic_lacks() {
        let same = upsert(&SCHEMA, &line(Example("same", 1, 1.0, None))).unwrap();
        let changed = upsert(&SCHEMA, &line(Example("changed", 1, 2.0, None))).unwrap();
        let new = upsert(&SCHEMA, &line(Example("new", 1, 1.0, None))).unwrap();
        let stale = upsert(&SCHEMA, &line(Example("stale", 1, 1.0, None))).unwrap();
        let digest = |change: &Change| change.value.as_ref().unwrap().1;
        let held: HashMap<Vec<u8>, i64> =
            [(same.key.clone(), digest(&same)), (changed.key.clone(), digest(&changed) ^ 1 << 20), (stale.key.clone(), digest(&stale))]
                .into();
        let changes = ViewChanges {
            upserts: ["same", "changed", "new"]
                .iter()
                .map(|id| line(Example(id, 1, if *id == "changed" { 2.0 } else { 1.0 }, None)))
                .collect(),
            deletes: vec!["never\t1".into()],
            replaced: Replaced::Everything,
        };
        let out = changes_of(&SCHEMA, &changes, Some(&held), Reconciliation::Exact).unwrap();
        let keys: Vec<(&[u8], bool)> = out.iter().map(|change| (change.key.as_slice(), change.value.is_some())).collect();
        assert_eq!(keys, vec![(changed.key.as_slice(), true), (new.key.as_slice(), true), (stale.key.as_slice(), false)]);
        let kept = changes_of(&SCHEMA, &changes, Some(&held), Reconciliation::KeepUnreplayed).unwrap();
        assert_eq!(kept.len(), 2, "unreplayed keys stay");

        let bucket = key_bucket("elsewhere\t1");
        let elsewhere = ViewChanges {
            deletes: vec!["elsewhere\t1".into()],
            replaced: Replaced::Buckets(vec![bucket.wrapping_add(1)]),
            ..ViewChanges::default()
        };
        let out = changes_of(&SCHEMA, &elsewhere, Some(&HashMap::new()), Reconciliation::Exact).unwrap();
        assert_eq!(out.len(), 1, "a delete outside the replaced buckets is a delta");
        let inside = ViewChanges { replaced: Replaced::Buckets(vec![bucket]), ..elsewhere };
        assert!(changes_of(&SCHEMA, &inside, Some(&HashMap::new()), Reconciliation::Exact).unwrap().is_empty(), "a key the topic lacks");
    }

    #[test]
    fn settings_name_what_is_wrong() {
        let views = [SCHEMA];
        let config = KafkaSinkConfig { views: vec!["nope".into()], ..KafkaSinkConfig::default() };
        assert!(config.resolve(&views).unwrap_err().to_string().starts_with("kafka_sink.views: no view is named `nope`"));
        let config = KafkaSinkConfig { views: vec!["t".into()], topic_prefix: "bad prefix".into(), ..KafkaSinkConfig::default() };
        assert!(config.resolve(&views).unwrap_err().to_string().starts_with("kafka_sink.topic_prefix"));
        let config = KafkaSinkConfig { views: vec!["t".into()], ..KafkaSinkConfig::default() };
        assert_eq!(config.resolve(&views).unwrap()[0].topic, "citeflow.t");
    }
}
