//! Kafka through rdkafka: client settings, the partitioned source operator, producers and
//! topic administration.

pub mod admin;
pub mod config;
pub mod dead_letters;
pub mod discovery;
pub mod group;
pub mod producer;
pub mod sink;
pub mod source;

pub use config::KafkaConfig;

/// A Kafka operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client reported an error.
    #[error("kafka: {context}: {source}")]
    Client {
        /// What was being done.
        context: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// The brokers could not be reached or refused this client.
    #[error("kafka: the brokers {brokers} cannot be used: {reason} (check kafka.brokers and the security settings in kafka.properties)")]
    Unreachable {
        /// The bootstrap brokers.
        brokers: String,
        /// What the client reported.
        reason: String,
    },
    /// A topic the job needs does not exist.
    #[error("topic `{0}` does not exist (create it with `citeflow topics`)")]
    MissingTopic(String),
    /// A client runtime could not start.
    #[error("kafka: starting the admin client's runtime: {0}")]
    Runtime(String),
    /// Messages could not be delivered.
    #[error("kafka: {0} messages could not be delivered")]
    Undelivered(u64),
}

impl KafkaError {
    pub(crate) fn client(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> KafkaError {
        let context = context.into();
        move |source| KafkaError::Client { context, source }
    }
}
