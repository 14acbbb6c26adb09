//! Publishing dead letters to the dead-letter topic.
//!
//! Each dead letter is keyed by `topic/partition/offset` of the message it carries, so
//! consumers of the dead-letter topic can drop the repeats that at-least-once delivery may
//! bring; its value is the original bytes and its headers say why and where from.

use citeflow_engine::sink::DeadLetter;
use rdkafka::message::{Header, OwnedHeaders};

use super::producer::{Outgoing, Producer};
use super::{KafkaConfig, KafkaError};

/// The name of the dead-letter topic.
pub const DEAD_LETTER_TOPIC: &str = "citeflow.dead-letter";

/// The key of a dead letter on the dead-letter topic.
pub fn dead_letter_key(letter: &DeadLetter) -> String {
    format!("{}/{}/{}", letter.topic, letter.partition, letter.offset)
}

/// Sends dead letters to the dead-letter topic and waits until they are delivered.
pub struct DeadLetterPublisher {
    producer: Producer,
    topic: String,
}

impl DeadLetterPublisher {
    /// A publisher to `topic`.
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        Ok(DeadLetterPublisher { producer: Producer::new(config, None)?, topic: topic.to_string() })
    }

    /// Publishes `letters` and returns once all are delivered.
    pub fn publish(&mut self, letters: &[DeadLetter]) -> Result<(), KafkaError> {
        for letter in letters {
            let key = dead_letter_key(letter);
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "citeflow.reason", value: Some(letter.reason.as_str()) })
                .insert(Header { key: "citeflow.detail", value: Some(letter.detail.as_str()) })
                .insert(Header { key: "citeflow.topic", value: Some(letter.topic.as_str()) })
                .insert(Header { key: "citeflow.partition", value: Some(partition.as_str()) })
                .insert(Header { key: "citeflow.offset", value: Some(offset.as_str()) });
            self.producer.send(Outgoing {
                topic: &self.topic,
                key: Some(key.as_bytes()),
                value: letter.payload.as_deref(),
                headers: Some(headers),
                partition: None,
            })?;
        }
        self.producer.flush()
    }
}
