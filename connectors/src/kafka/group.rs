//! The job's positions in its consumer group, for lag tools.
//!
//! The job reads its partitions by assignment and keeps its positions with its views, so
//! nothing about its progress is in Kafka unless it says so. After every commit of the
//! destination that keeps its progress, [`GroupPositions::publish`] commits the same positions
//! to the consumer group `kafka.group_id` — never before, so the lag that
//! `kafka-consumer-groups --describe`, Burrow or KEDA's Kafka scaler compute from the group is
//! the job's true lag. The group's positions are only a report: the job never reads them back,
//! and a failed group commit is logged and counted
//! (`citeflow_source_errors_total{kind="group_commit"}`) while the job goes on; the next commit
//! carries the positions again.

use std::time::Duration;

use citeflow_engine::metrics::metrics;
use citeflow_engine::sink::SourcePosition;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{KafkaConfig, KafkaError};

/// Counts group commits that failed.
struct CommitReports;

impl ClientContext for CommitReports {}

impl ConsumerContext for CommitReports {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(%error, "committing positions to the consumer group failed; the next commit carries them again");
            metrics().source_errors.with_label_values(&["group_commit"]).inc();
        }
    }
}

/// Commits positions to the job's consumer group.
pub struct GroupPositions {
    consumer: BaseConsumer<CommitReports>,
}

impl GroupPositions {
    /// A client of the group `kafka.group_id`.
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let consumer =
            config.consumer_config().create_with_context(CommitReports).map_err(KafkaError::client("creating the group client"))?;
        Ok(GroupPositions { consumer })
    }

    /// Commits `positions` (each partition's next offset) to the group, without waiting unless
    /// they are the `last` the job commits (it is stopping); the outcome of earlier commits is
    /// collected first.
    pub fn publish(&self, positions: &[SourcePosition], last: bool) {
        let _ = self.consumer.poll(Duration::ZERO);
        if positions.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for position in positions {
            if let Err(error) = offsets.add_partition_offset(&position.topic, position.partition, Offset::Offset(position.next_offset)) {
                tracing::warn!(%error, topic = position.topic, "a position cannot be committed to the consumer group");
            }
        }
        let mode = if last { CommitMode::Sync } else { CommitMode::Async };
        if let Err(error) = self.consumer.commit(&offsets, mode) {
            tracing::warn!(%error, "committing positions to the consumer group failed; the next commit carries them again");
            metrics().source_errors.with_label_values(&["group_commit"]).inc();
        }
    }
}
