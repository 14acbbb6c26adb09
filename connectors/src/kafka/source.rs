//! The Kafka source: each timely worker reads the partitions assigned to it (no consumer
//! group rebalancing), from the earliest offset, and mints processing-time epochs.
//!
//! Epochs and positions follow the protocol of every partitioned-log source (`log_source.rs`,
//! shared with the archive source): every message read in an epoch carries that epoch's time;
//! an epoch closes when the clock moves past it or `max_records_per_epoch` messages (or as many
//! as flow control allows) were read into it; a source that read nothing holds its epoch until
//! another moves on or its heartbeat comes; at each close the source emits the new position of
//! every partition that moved, so that positions travel with the data they cover. The consumer
//! wakes the source when a message arrives.
//!
//! Partitions added to the topics while the job runs are picked up (see [`super::discovery`]).
//!
//! Consumer lag is the high watermark each fetch response carries (as librdkafka caches it)
//! minus the next offset to read: following it costs the broker nothing.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::time::Duration;

use citeflow_engine::flow::FlowControl;
use citeflow_engine::metrics::metrics;
use citeflow_engine::sink::SourcePosition;
use citeflow_engine::time::{Epoch, EpochTicker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use timely::dataflow::{Scope, Stream};
use timely::scheduling::SyncActivator;

use super::admin::{watermarks, METADATA_TIMEOUT};
use super::discovery::{assigned, PartitionWatch};
use super::{KafkaConfig, KafkaError};
use crate::log_source::{log_source, PartitionPosition, PartitionedLog};
use crate::EpochSettings;

/// One message as read from Kafka.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KafkaMessage {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    /// The message's timestamp (its producer's `CreateTime` or the broker's `LogAppendTime`),
    /// in milliseconds since the Unix epoch, if it has one.
    pub timestamp: Option<i64>,
}

/// What the source emits: messages, and the positions they bring the partitions to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SourceEvent {
    /// A message.
    Message(KafkaMessage),
    /// A partition's next offset after everything emitted before it at the same epoch.
    Position(SourcePosition),
}

/// How a source reads.
#[derive(Clone, Debug)]
pub struct SourceSettings {
    /// Client settings.
    pub kafka: KafkaConfig,
    /// How it closes epochs.
    pub epochs: EpochSettings,
}

/// What the source knows of a partition beyond its position.
struct PartitionState {
    /// The topic as librdkafka's C API takes it.
    c_topic: CString,
    high_watermark: i64,
    /// The lag last reported in the metrics.
    reported_lag: Option<i64>,
}

/// The high watermark of `topic`/`partition` as the consumer last saw it: every fetch response
/// carries it, and librdkafka keeps it (no request to the broker). `None` before the first fetch.
fn cached_high_watermark(consumer: &BaseConsumer, topic: &CStr, partition: i32) -> Option<i64> {
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is valid while `consumer` lives, `topic` is a NUL-terminated
    // string and the out-pointers point to live locals; librdkafka only reads its own cache.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(consumer.client().native_ptr(), topic.as_ptr(), partition, &mut low, &mut high)
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// Partitions that appear while the job runs, and how to tell this worker's.
#[derive(Clone)]
pub struct SourceDiscovery {
    /// The discovered partitions.
    pub watch: PartitionWatch,
    /// The input topics.
    pub topics: Vec<String>,
    /// This worker's index.
    pub worker: usize,
    /// How many workers the job has.
    pub peers: usize,
}

impl SourceDiscovery {
    /// New partitions of this worker, if the watch has found any since `version`.
    fn new_partitions(&self, version: &mut u64, known: &BTreeMap<(String, i32), usize>) -> Vec<(String, i32)> {
        let Some((now, all)) = self.watch.changed_since(*version) else { return Vec::new() };
        *version = now;
        assigned(&self.topics, &all, self.worker, self.peers).into_iter().filter(|p| !known.contains_key(p)).collect()
    }
}

/// This worker's partitions of the input topics as its consumer reads them.
struct KafkaLog {
    consumer: BaseConsumer,
    positions: Vec<PartitionPosition>,
    states: Vec<PartitionState>,
    index: BTreeMap<(String, i32), usize>,
    discovery: Option<SourceDiscovery>,
    discovered: u64,
}

impl KafkaLog {
    /// Creates the consumer for `partitions` and reads their initial watermarks.
    fn connect(settings: &SourceSettings, partitions: &[(String, i32)], discovery: Option<SourceDiscovery>) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = settings.kafka.consumer_config().create().map_err(KafkaError::client("creating consumer"))?;
        let mut log = KafkaLog { consumer, positions: Vec::new(), states: Vec::new(), index: BTreeMap::new(), discovery, discovered: 0 };
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in partitions {
            let (low, high) = watermarks(&log.consumer, topic, *partition, METADATA_TIMEOUT)?;
            assignment.add_partition_offset(topic, *partition, Offset::Offset(low)).map_err(KafkaError::client("building assignment"))?;
            let c_topic = CString::new(topic.as_str()).map_err(|_| KafkaError::MissingTopic(topic.clone()))?;
            log.add(topic, *partition, c_topic, low, high);
        }
        log.consumer.assign(&assignment).map_err(KafkaError::client("assigning partitions"))?;
        Ok(log)
    }

    fn add(&mut self, topic: &str, partition: i32, c_topic: CString, next_offset: i64, high_watermark: i64) {
        self.index.insert((topic.to_string(), partition), self.positions.len());
        self.positions.push(PartitionPosition::new(topic.to_string(), partition, next_offset));
        self.states.push(PartitionState { c_topic, high_watermark, reported_lag: None });
    }

    /// Starts reading partitions discovery found since the last look, from their earliest offsets.
    fn add_discovered(&mut self) {
        let Some(discovery) = &self.discovery else { return };
        let new = discovery.new_partitions(&mut self.discovered, &self.index);
        if new.is_empty() {
            return;
        }
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &new {
            let Ok(c_topic) = CString::new(topic.as_str()) else { continue };
            if assignment.add_partition_offset(topic, *partition, Offset::Beginning).is_err() {
                continue;
            }
            self.add(topic, *partition, c_topic, 0, 0);
        }
        match self.consumer.incremental_assign(&assignment) {
            Ok(()) => tracing::info!(partitions = ?new, "reading new partitions"),
            Err(error) => tracing::error!(%error, partitions = ?new, "cannot read new partitions"),
        }
    }
}

impl PartitionedLog for KafkaLog {
    fn read(&mut self, limit: usize, give: &mut dyn FnMut(KafkaMessage)) -> bool {
        self.add_discovered();
        let mut read = 0;
        while read < limit {
            match self.consumer.poll(Duration::ZERO) {
                None => return true,
                Some(Err(error)) => {
                    metrics().source_errors.with_label_values(&["read"]).inc();
                    tracing::warn!(%error, "kafka source: read failed; retrying");
                    return false;
                }
                Some(Ok(message)) => {
                    let key = (message.topic().to_string(), message.partition());
                    let Some(&slot) = self.index.get(&key) else { continue };
                    if !self.positions[slot].advance(message.offset()) {
                        continue;
                    }
                    give(KafkaMessage {
                        topic: key.0,
                        partition: key.1,
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                        timestamp: message.timestamp().to_millis(),
                    });
                    read += 1;
                }
            }
        }
        false
    }

    fn positions(&mut self) -> &mut [PartitionPosition] {
        &mut self.positions
    }

    fn at_end(&self) -> bool {
        self.positions.iter().zip(&self.states).all(|(position, state)| position.next_offset >= state.high_watermark)
    }

    /// Refreshes the high watermarks from the consumer's cache and reports the lag of every
    /// partition whose lag changed, read or not: a source paused by flow control reads nothing
    /// while its backlog grows.
    fn observe(&mut self) {
        for (position, state) in self.positions.iter().zip(self.states.iter_mut()) {
            if let Some(high) = cached_high_watermark(&self.consumer, &state.c_topic, position.partition) {
                state.high_watermark = state.high_watermark.max(high);
            }
            let lag = (state.high_watermark - position.next_offset).max(0);
            if state.reported_lag != Some(lag) {
                state.reported_lag = Some(lag);
                metrics().consumer_lag.with_label_values(&[position.topic.as_str(), &position.partition.to_string()]).set(lag);
            }
        }
    }

    fn wake_on_arrival(&mut self, waker: SyncActivator) {
        self.consumer.set_nonempty_callback(move || {
            let _ = waker.activate();
        });
    }
}

/// Reads `partitions` (this worker's share) into the dataflow, at most as far ahead of what
/// the job has finished as `flow` allows, closing epochs as `ticker` says (a source that reads
/// nothing holds its epoch); see the module documentation.
pub fn kafka_source<'scope>(
    scope: Scope<'scope, Epoch>,
    settings: SourceSettings,
    partitions: Vec<(String, i32)>,
    flow: FlowControl,
    ticker: EpochTicker,
    discovery: Option<SourceDiscovery>,
) -> Result<Stream<'scope, Epoch, Vec<SourceEvent>>, KafkaError> {
    let log = KafkaLog::connect(&settings, &partitions, discovery)?;
    Ok(log_source(scope, "KafkaSource", log, settings.epochs, flow, ticker))
}
