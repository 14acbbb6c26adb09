//! The Kafka source: each timely worker reads the partitions assigned to it (no consumer
//! group rebalancing), from the earliest offset, and mints processing-time epochs.
//!
//! Every message read in an epoch carries that epoch's time. An epoch that messages were read
//! into closes when the wall clock moves past it or when `max_records_per_epoch` messages have
//! been read into it; a source that read nothing holds its epoch until another source moves on
//! or its heartbeat comes ([`EpochTicker`]). At each close the source emits the new position of
//! every partition that moved, at the epoch being closed, so that positions travel with the data
//! they cover.
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
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use super::admin::{watermarks, METADATA_TIMEOUT};
use super::discovery::{assigned, PartitionWatch};
use super::{KafkaConfig, KafkaError};

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
    /// Epoch length in milliseconds.
    pub epoch_ms: u64,
    /// Most messages read into one epoch.
    pub max_records_per_epoch: usize,
    /// Stop (release the capability) once every assigned partition has reached the high
    /// watermark it had when the source started: run to "caught up" and finish.
    pub stop_at_end: bool,
}

struct PartitionState {
    topic: String,
    /// The topic as librdkafka's C API takes it.
    c_topic: CString,
    partition: i32,
    next_offset: i64,
    high_watermark: i64,
    moved: bool,
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

/// Starts reading `new` partitions from their earliest offsets.
fn add_partitions(
    consumer: &BaseConsumer,
    new: &[(String, i32)],
    states: &mut Vec<PartitionState>,
    index: &mut BTreeMap<(String, i32), usize>,
) {
    let mut assignment = TopicPartitionList::new();
    for (topic, partition) in new {
        let Ok(c_topic) = CString::new(topic.as_str()) else { continue };
        if assignment.add_partition_offset(topic, *partition, Offset::Beginning).is_err() {
            continue;
        }
        index.insert((topic.clone(), *partition), states.len());
        states.push(PartitionState {
            topic: topic.clone(),
            c_topic,
            partition: *partition,
            next_offset: 0,
            high_watermark: 0,
            moved: true,
            reported_lag: None,
        });
    }
    match consumer.incremental_assign(&assignment) {
        Ok(()) => tracing::info!(partitions = ?new, "reading new partitions"),
        Err(error) => tracing::error!(%error, partitions = ?new, "cannot read new partitions"),
    }
}

/// Creates the consumer for `partitions` and reads their initial watermarks.
fn connect(settings: &SourceSettings, partitions: &[(String, i32)]) -> Result<(BaseConsumer, Vec<PartitionState>), KafkaError> {
    let consumer: BaseConsumer = settings.kafka.consumer_config().create().map_err(KafkaError::client("creating consumer"))?;
    let mut assignment = TopicPartitionList::new();
    let mut states = Vec::new();
    for (topic, partition) in partitions {
        let (low, high) = watermarks(&consumer, topic, *partition, METADATA_TIMEOUT)?;
        assignment.add_partition_offset(topic, *partition, Offset::Offset(low)).map_err(KafkaError::client("building assignment"))?;
        states.push(PartitionState {
            topic: topic.clone(),
            c_topic: CString::new(topic.as_str()).map_err(|_| KafkaError::MissingTopic(topic.clone()))?,
            partition: *partition,
            next_offset: low,
            high_watermark: high,
            moved: true,
            reported_lag: None,
        });
    }
    consumer.assign(&assignment).map_err(KafkaError::client("assigning partitions"))?;
    Ok((consumer, states))
}

/// Reads `partitions` (this worker's share) into the dataflow, at most as far ahead of what
/// the job has finished as `flow` allows, closing epochs as `ticker` says (a source that reads
/// nothing holds its epoch); see the module documentation.
pub fn kafka_source<'scope>(
    scope: Scope<'scope, Epoch>,
    settings: SourceSettings,
    partitions: Vec<(String, i32)>,
    mut flow: FlowControl,
    ticker: EpochTicker,
    discovery: Option<SourceDiscovery>,
) -> Result<Stream<'scope, Epoch, Vec<SourceEvent>>, KafkaError> {
    let (mut consumer, mut states) = connect(&settings, &partitions)?;
    let mut index: BTreeMap<(String, i32), usize> = states.iter().enumerate().map(|(i, s)| ((s.topic.clone(), s.partition), i)).collect();
    let mut discovered = 0;
    let idle_wait = Duration::from_millis(settings.epoch_ms.clamp(1, 50));

    let stream = source::<_, CapacityContainerBuilder<Vec<SourceEvent>>, _, _>(scope, "KafkaSource", move |capability, info| {
        let activator = scope.activator_for(info.address.clone());
        let arrival = scope.worker().sync_activator_for(info.address.to_vec());
        consumer.set_nonempty_callback(move || {
            let _ = arrival.activate();
        });
        let mut epochs = ticker.source(scope.worker().sync_activator_for(info.address.to_vec()));
        let mut capability = Some(capability);
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            if let Some(discovery) = &discovery {
                let new = discovery.new_partitions(&mut discovered, &index);
                if !new.is_empty() {
                    add_partitions(&consumer, &new, &mut states, &mut index);
                }
            }
            let mut read = 0;
            let mut drained = false;
            let allowed = settings.max_records_per_epoch.min(flow.room());
            {
                let mut session = output.session(&*cap);
                while read < allowed {
                    match consumer.poll(Duration::ZERO) {
                        None => {
                            drained = true;
                            break;
                        }
                        Some(Err(error)) => {
                            metrics().source_errors.with_label_values(&["read"]).inc();
                            tracing::warn!(%error, "kafka source: read failed; retrying");
                            break;
                        }
                        Some(Ok(message)) => {
                            let key = (message.topic().to_string(), message.partition());
                            let Some(&slot) = index.get(&key) else { continue };
                            let state = &mut states[slot];
                            if message.offset() < state.next_offset {
                                continue;
                            }
                            state.next_offset = message.offset() + 1;
                            state.moved = true;
                            metrics().records_read.with_label_values(&[message.topic()]).inc();
                            session.give(SourceEvent::Message(KafkaMessage {
                                topic: key.0,
                                partition: key.1,
                                offset: message.offset(),
                                key: message.key().map(<[u8]>::to_vec),
                                payload: message.payload().map(<[u8]>::to_vec),
                                timestamp: message.timestamp().to_millis(),
                            }));
                            read += 1;
                        }
                    }
                }
            }
            flow.read(*cap.time(), read);
            for state in states.iter_mut() {
                if let Some(high) = cached_high_watermark(&consumer, &state.c_topic, state.partition) {
                    state.high_watermark = state.high_watermark.max(high);
                }
            }
            // A full epoch closes at once, and so does one cut short by flow control: nothing
            // more can be read into it, and closing it lets the job finish it.
            let full = read >= settings.max_records_per_epoch || (read > 0 && read == allowed);
            let at_end = states.iter().all(|s| s.next_offset >= s.high_watermark);
            let finishing = settings.stop_at_end && at_end;
            let next = epochs.next(*cap.time(), read > 0, full);
            if next.is_some() || finishing {
                let mut session = output.session(&*cap);
                for state in states.iter_mut().filter(|s| s.moved) {
                    state.moved = false;
                    session.give(SourceEvent::Position(SourcePosition {
                        topic: state.topic.clone(),
                        partition: state.partition,
                        next_offset: state.next_offset,
                    }));
                    metrics()
                        .source_position
                        .with_label_values(&[state.topic.as_str(), &state.partition.to_string()])
                        .set(state.next_offset);
                }
            }
            // Lag is reported for every partition whose lag changed, read or not: a source paused
            // by flow control reads nothing while its backlog grows.
            for state in states.iter_mut() {
                let lag = (state.high_watermark - state.next_offset).max(0);
                if state.reported_lag != Some(lag) {
                    state.reported_lag = Some(lag);
                    metrics().consumer_lag.with_label_values(&[state.topic.as_str(), &state.partition.to_string()]).set(lag);
                }
            }
            if finishing {
                capability = None;
                return;
            }
            if let Some(next) = next {
                cap.downgrade(&next);
            }
            // Drained and quiet, the source sleeps: librdkafka wakes it when a message arrives,
            // the ticker when another source closes an epoch, and its heartbeat at the latest.
            match (full, drained.then(|| epochs.quiet_for()).flatten()) {
                (true, _) => activator.activate(),
                (false, Some(quiet)) => activator.activate_after(quiet),
                (false, None) => activator.activate_after(idle_wait),
            }
        }
    });
    Ok(stream)
}
