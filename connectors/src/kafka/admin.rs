//! Topic administration and discovery.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaError};

/// How long start-up metadata requests may wait for the broker.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Lists every partition of `topics` as `(topic, partition)`, failing if a topic is missing.
pub fn discover_partitions(config: &KafkaConfig, topics: &[String]) -> Result<Vec<(String, i32)>, KafkaError> {
    let consumer: BaseConsumer = config.consumer_config().create().map_err(KafkaError::client("creating consumer"))?;
    let mut partitions = Vec::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(KafkaError::client(format!("metadata of {topic}")))?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                partitions.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
            }
            _ => return Err(KafkaError::MissingTopic(topic.clone())),
        }
    }
    partitions.sort();
    Ok(partitions)
}

/// Low and high watermarks of one partition, waiting at most `timeout` for the broker.
pub fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32, timeout: Duration) -> Result<(i64, i64), KafkaError> {
    consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(KafkaError::client(format!("watermarks of {topic}/{partition}")))
}

/// Creates each topic with `partitions` partitions unless it exists already.
pub fn ensure_topics(config: &KafkaConfig, topics: &[String], partitions: i32) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        config.admin_config().create().map_err(KafkaError::client("creating admin client"))?;
    let new_topics: Vec<NewTopic> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = runtime
        .block_on(admin.create_topics(&new_topics, &options))
        .map_err(KafkaError::client("creating topics"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Client {
                    context: format!("creating topic {topic}"),
                    source: rdkafka::error::KafkaError::AdminOp(code),
                })
            }
        }
    }
    Ok(())
}
