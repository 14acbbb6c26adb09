//! Publishing dead letters to the dead-letter topic.
//!
//! Each dead letter is keyed by `topic/partition/offset` of the message it carries, so
//! consumers of the dead-letter topic can drop the repeats that at-least-once delivery may
//! bring (and find its row in `citeflow_dead_letters`); its value is the original bytes, cut
//! at [`TOPIC_PAYLOAD_CAP`] so that it always fits a producer's limits, and its headers say
//! why, where from, the original size and SHA-256, and whether the value was cut.

use citeflow_engine::sink::DeadLetter;
use rdkafka::message::{Header, OwnedHeaders};

use super::producer::{Outgoing, Producer};
use super::{KafkaConfig, KafkaError};

/// The most of a payload a dead letter on the topic carries: well below Kafka's default
/// `message.max.bytes` (1 MB), leaving room for the headers.
pub const TOPIC_PAYLOAD_CAP: usize = 256 * 1024;

/// A dead letter as the table holds it: the payload, perhaps cut at the table's cap, with
/// the size and SHA-256 (hex) of the original.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedLetter {
    /// The dead letter.
    pub letter: DeadLetter,
    /// The original payload's size in bytes.
    pub payload_size: Option<i64>,
    /// The original payload's SHA-256, hex.
    pub payload_sha256: Option<String>,
}

/// The most of a dead letter's detail its header carries (the table holds all of it).
const DETAIL_HEADER_CAP: usize = 4096;

/// `text` cut to at most `bytes` bytes, at a character boundary.
fn at_most(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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
    pub fn publish(&mut self, letters: &[RecordedLetter]) -> Result<(), KafkaError> {
        for recorded in letters {
            let letter = &recorded.letter;
            let key = dead_letter_key(letter);
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let value = letter.payload.as_deref().map(|payload| &payload[..payload.len().min(TOPIC_PAYLOAD_CAP)]);
            let size = recorded.payload_size.unwrap_or(0);
            let cut = value.is_some_and(|value| (value.len() as i64) < size);
            let size_text = size.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "citeflow.reason", value: Some(letter.reason.as_str()) })
                .insert(Header { key: "citeflow.detail", value: Some(at_most(&letter.detail, DETAIL_HEADER_CAP)) })
                .insert(Header { key: "citeflow.topic", value: Some(letter.topic.as_str()) })
                .insert(Header { key: "citeflow.partition", value: Some(partition.as_str()) })
                .insert(Header { key: "citeflow.offset", value: Some(offset.as_str()) })
                .insert(Header { key: "citeflow.payload_size", value: Some(size_text.as_str()) });
            if let Some(hash) = &recorded.payload_sha256 {
                headers = headers.insert(Header { key: "citeflow.payload_sha256", value: Some(hash.as_str()) });
            }
            if cut {
                headers = headers.insert(Header { key: "citeflow.truncated", value: Some("true") });
            }
            self.producer.send(Outgoing {
                topic: &self.topic,
                key: Some(key.as_bytes()),
                value,
                headers: Some(headers),
                partition: None,
            })?;
        }
        self.producer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(at_most("héllo", 2), "h");
        assert_eq!(at_most("héllo", 3), "hé");
        assert_eq!(at_most("hi", 10), "hi");
    }
}
