//! Topic administration and discovery.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaError};

/// How long start-up metadata requests may wait for the broker.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What librdkafka reported through its error callback, kept so that a failed request can
/// say why (an authentication or TLS failure surfaces only there; the request itself just
/// times out).
#[derive(Default)]
struct ErrorLog(std::sync::Mutex<Vec<String>>);

impl rdkafka::ClientContext for ErrorLog {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka client error");
        // "All broker connections are down" follows every other failure and says nothing new.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        // librdkafka repeats a failure with its timing ("… (after 13ms in state AUTH_REQ)").
        let reason = reason.split(" (after ").next().unwrap_or(reason);
        let mut reasons = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if reasons.len() < 3 && !reasons.iter().any(|r| r == reason) {
            reasons.push(reason.to_string());
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ErrorLog {}

/// Checks that the brokers can be reached and accept this client (its TLS and SASL settings):
/// a metadata request must succeed within [`METADATA_TIMEOUT`]. Otherwise the error names the
/// brokers and what librdkafka reported (e.g. `SASL authentication error`, `SSL handshake
/// failed`), so a job with wrong credentials stops at start instead of retrying forever.
pub fn check_connection(config: &KafkaConfig) -> Result<(), KafkaError> {
    let consumer: BaseConsumer<ErrorLog> =
        config.consumer_config().create_with_context(ErrorLog::default()).map_err(KafkaError::client("creating consumer"))?;
    match consumer.fetch_metadata(None, METADATA_TIMEOUT) {
        Ok(_) => Ok(()),
        Err(error) => {
            // The error callback runs when the client's queue is served.
            for _ in 0..5 {
                let _ = consumer.poll(Duration::from_millis(20));
            }
            let reported = consumer.context().0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("; ");
            let reason = if reported.is_empty() { error.to_string() } else { reported };
            Err(KafkaError::Unreachable { brokers: config.brokers.clone(), reason })
        }
    }
}

/// Whether `name` can name a topic (or start one): ASCII letters, digits, `.`, `_` and `-`.
pub fn is_topic_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Lists every partition of `topics` as `(topic, partition)`, failing if a topic is missing.
pub fn discover_partitions(config: &KafkaConfig, topics: &[String]) -> Result<Vec<(String, i32)>, KafkaError> {
    let consumer: BaseConsumer = config.consumer_config().create().map_err(KafkaError::client("creating consumer"))?;
    let mut partitions = Vec::new();
    for topic in topics {
        let metadata =
            consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT).map_err(KafkaError::client(format!("metadata of {topic}")))?;
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
    consumer.fetch_watermarks(topic, partition, timeout).map_err(KafkaError::client(format!("watermarks of {topic}/{partition}")))
}

fn admin(config: &KafkaConfig) -> Result<(AdminClient<DefaultClientContext>, tokio::runtime::Runtime), KafkaError> {
    let admin = config.admin_config().create().map_err(KafkaError::client("creating admin client"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| KafkaError::Runtime(e.to_string()))?;
    Ok((admin, runtime))
}

/// The low and high watermarks of each of `partitions`: the offsets of the first message the
/// broker still holds and of the next message it will append.
pub fn offset_ranges(config: &KafkaConfig, partitions: &[(String, i32)]) -> Result<Vec<(i64, i64)>, KafkaError> {
    let consumer: BaseConsumer = config.consumer_config().create().map_err(KafkaError::client("creating consumer"))?;
    partitions.iter().map(|(topic, partition)| watermarks(&consumer, topic, *partition, METADATA_TIMEOUT)).collect()
}

/// Creates each topic with `partitions` partitions unless it exists already. Topics are created
/// compacted (`cleanup.policy=compact`): every key's latest message stays, which is what a job
/// that rebuilds its state by replaying its topics needs.
pub fn ensure_topics(config: &KafkaConfig, topics: &[String], partitions: i32) -> Result<(), KafkaError> {
    let (admin, runtime) = admin(config)?;
    let new_topics: Vec<NewTopic> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)).set("cleanup.policy", "compact")).collect();
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = runtime.block_on(admin.create_topics(&new_topics, &options)).map_err(KafkaError::client("creating topics"))?;
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

/// Whether a topic can lose messages to retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Compacted without deletion, or with time and size retention off: every key's latest
    /// message stays.
    Kept,
    /// Messages expire: the setting that says so, and its value.
    Expires {
        /// The topic setting (`retention.ms` or `retention.bytes`).
        setting: &'static str,
        /// Its value.
        value: String,
    },
}

impl Retention {
    /// The retention a topic's settings imply (a missing setting has Kafka's default).
    pub fn of(setting: impl Fn(&str) -> Option<String>) -> Retention {
        let policy = setting("cleanup.policy").unwrap_or_else(|| "delete".to_string());
        if !policy.split(',').any(|p| p.trim() == "delete") {
            return Retention::Kept;
        }
        for (name, default) in [("retention.ms", "604800000"), ("retention.bytes", "-1")] {
            let value = setting(name).unwrap_or_else(|| default.to_string());
            if value.trim() != "-1" {
                return Retention::Expires { setting: name, value };
            }
        }
        Retention::Kept
    }
}

/// The retention of each of `topics`, as the broker describes their settings.
pub fn retention(config: &KafkaConfig, topics: &[String]) -> Result<Vec<(String, Retention)>, KafkaError> {
    let (admin, runtime) = admin(config)?;
    let specifiers: Vec<ResourceSpecifier> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
    let results =
        runtime.block_on(admin.describe_configs(&specifiers, &options)).map_err(KafkaError::client("describing topic settings"))?;
    topics
        .iter()
        .zip(results)
        .map(|(topic, result)| match result {
            Ok(resource) => {
                let setting = |name: &str| resource.get(name).and_then(|entry| entry.value.clone());
                Ok((topic.clone(), Retention::of(setting)))
            }
            Err(code) => Err(KafkaError::Client {
                context: format!("describing the settings of {topic}"),
                source: rdkafka::error::KafkaError::AdminOp(code),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention_of(settings: &[(&str, &str)]) -> Retention {
        Retention::of(|name| settings.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn compacted_topics_keep_their_messages_and_deleting_ones_expire_them() {
        assert_eq!(retention_of(&[("cleanup.policy", "compact")]), Retention::Kept);
        assert_eq!(retention_of(&[]), Retention::Expires { setting: "retention.ms", value: "604800000".into() });
        assert_eq!(
            retention_of(&[("cleanup.policy", "compact,delete"), ("retention.ms", "1000")]),
            Retention::Expires { setting: "retention.ms", value: "1000".into() }
        );
        assert_eq!(retention_of(&[("cleanup.policy", "delete"), ("retention.ms", "-1")]), Retention::Kept);
        assert_eq!(
            retention_of(&[("retention.ms", "-1"), ("retention.bytes", "1073741824")]),
            Retention::Expires { setting: "retention.bytes", value: "1073741824".into() }
        );
    }
}
