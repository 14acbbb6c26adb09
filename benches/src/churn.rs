//! The soak's churn (`citeflow_jobs::churn`) as the citation job's source would deliver it, for
//! the in-process benches (`churn`, `replay`): the job's logic with the default matcher, and the
//! messages with the partitions and offsets a broker would give them.

use std::collections::HashMap;
use std::sync::Arc;

use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_jobs::churn::{Churn, ChurnSettings};
use citeflow_jobs::config::{CiteflowConfig, TopicsConfig};
use citeflow_jobs::dataflow::JobLogic;
use citeflow_jobs::envelope::TopicRoles;
use citeflow_jobs::matching::journals::JournalTable;

use crate::sample_dir;

/// Partitions per topic the messages are spread over (by key), as a producer would.
pub const PARTITIONS: i32 = 4;

/// The citation job's logic as `citeflow run` builds it from the default configuration, with
/// [`PARTITIONS`] partitions of the documents topic.
pub fn job_logic() -> JobLogic {
    let config = CiteflowConfig::default();
    let matchers = config.matching.logic().expect("the default matcher (run scripts/services.sh install)");
    let topics = TopicsConfig::default();
    let mut periods = config.event_time.logic(&topics.documents).expect("event time");
    periods.partitions = (0..PARTITIONS).collect();
    JobLogic {
        roles: TopicRoles { publications: topics.publications.clone(), documents: topics.documents.clone(), future: Default::default() },
        journals: Arc::new(JournalTable::bundled()),
        matchers,
        watch_files: None,
        config_file: None,
        periods,
        replay_to: Default::default(),
    }
}

/// The churn's messages in order, each on the partition its key hashes to and at the next
/// offset of that partition. The same seed gives the same messages on every worker.
pub struct ChurnFeed {
    churn: Churn,
    topics: TopicsConfig,
    offsets: HashMap<(bool, i32), i64>,
}

impl ChurnFeed {
    /// The default churn over the bundled sample.
    pub fn new() -> Self {
        let settings = ChurnSettings { data: sample_dir(), ..ChurnSettings::default() };
        ChurnFeed { churn: Churn::new(settings).expect("the sample"), topics: TopicsConfig::default(), offsets: HashMap::new() }
    }

    /// The next message.
    pub fn next_message(&mut self) -> KafkaMessage {
        let message = self.churn.next_message();
        let partition = (message.key.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % PARTITIONS as u32) as i32;
        let offset = self.offsets.entry((message.document, partition)).or_default();
        *offset += 1;
        let topic = if message.document { &self.topics.documents } else { &self.topics.publications };
        KafkaMessage {
            topic: topic.clone(),
            partition,
            offset: *offset,
            key: Some(message.key.into_bytes()),
            payload: message.value,
            timestamp: None,
        }
    }
}

impl Default for ChurnFeed {
    fn default() -> Self {
        ChurnFeed::new()
    }
}
