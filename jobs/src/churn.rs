//! Churn: a steady stream of revisions and deletions over a fixed set of keys, as a long-running
//! deployment sees it once its inputs exist — documents re-published with other references,
//! publication records corrected, both deleted and re-created. The set of live records stays
//! about the same however long it runs; only versions change. It is the load of the soak
//! benchmark (`benches/soak.rs`) and of `citeflow churn`.
//!
//! Every choice comes from a seeded generator, so a seed gives the same messages. A document
//! keeps its organisation and `published_at` across revisions (a revision does not move it in
//! event time); its references are drawn from the gold reference strings. A publication
//! alternates between its sample record and a corrected version (title and pages revised).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use citeflow_connectors::files::lines;
use citeflow_connectors::kafka::producer::{Outgoing, Producer};
use citeflow_connectors::kafka::KafkaConfig;
use serde_json::{json, Value};

use crate::config::TopicsConfig;
use crate::envelope::{DOCUMENT_EVENT, PUBLICATION_EVENT};
use crate::loader::{envelope, gold_documents, publication_key, EPMC_FILES};
use crate::synthetic::Rng;

/// What to churn and how fast.
#[derive(Clone, Debug)]
pub struct ChurnSettings {
    /// The sample directory (with `epmc/` and `gold/`).
    pub data: PathBuf,
    /// Messages per second.
    pub rate: f64,
    /// How long to produce.
    pub duration: Duration,
    /// Document ids revised (`churn-0` …).
    pub documents: usize,
    /// Publications revised: the first this many records of the sample.
    pub publications: usize,
    /// Share of messages that are documents (the rest are publications).
    pub document_share: f64,
    /// Share of messages that delete their key (a later revision re-creates it).
    pub deletions: f64,
    /// References per document revision.
    pub references: usize,
    /// Seed of every choice.
    pub seed: u64,
}

impl Default for ChurnSettings {
    fn default() -> Self {
        ChurnSettings {
            data: PathBuf::from("data/sample"),
            rate: 1_000.0,
            duration: Duration::from_secs(60),
            documents: 5_000,
            publications: 5_000,
            document_share: 0.7,
            deletions: 0.05,
            references: 5,
            seed: 1,
        }
    }
}

/// What a churn run produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChurnReport {
    /// Document revisions.
    pub documents: u64,
    /// Publication revisions.
    pub publications: u64,
    /// Tombstones (documents and publications).
    pub deletions: u64,
}

impl ChurnReport {
    /// Every message produced.
    pub fn total(&self) -> u64 {
        self.documents + self.publications + self.deletions
    }
}

/// Organisations that churned documents belong to.
const ORGANISATIONS: [&str; 4] = ["WHO", "NICE", "UK Government", "CDC"];

/// The messages of a churn run, without Kafka: the key set, the reference strings and the
/// generator.
pub struct Churn {
    settings: ChurnSettings,
    references: Vec<String>,
    publications: Vec<(String, Value)>,
    rng: Rng,
}

/// One message of a churn run.
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnMessage {
    /// Whether it goes to the documents topic (else the publications topic).
    pub document: bool,
    /// Its key.
    pub key: String,
    /// Its value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

impl Churn {
    /// Reads the key set and the reference strings from the sample.
    pub fn new(settings: ChurnSettings) -> anyhow::Result<Self> {
        let references: Vec<String> = gold_documents(&settings.data)?.into_iter().flat_map(|d| d.references).map(|r| r.citation).collect();
        anyhow::ensure!(!references.is_empty(), "no gold references under {}", settings.data.display());
        let mut publications = Vec::new();
        let path = settings.data.join(EPMC_FILES[0]);
        for line in lines(&path).with_context(|| format!("reading {}", path.display()))? {
            if publications.len() >= settings.publications {
                break;
            }
            let record: Value = serde_json::from_str(&line?)?;
            if let Some(key) = publication_key(&record) {
                publications.push((key, record));
            }
        }
        let rng = Rng::new(settings.seed);
        Ok(Churn { settings, references, publications, rng })
    }

    /// The next message.
    pub fn next_message(&mut self) -> ChurnMessage {
        let document = self.publications.is_empty() || self.rng.chance(self.settings.document_share);
        let delete = self.rng.chance(self.settings.deletions);
        if document {
            let index = self.rng.below(self.settings.documents.max(1) as u64);
            let key = format!("churn-{index}");
            let value = (!delete).then(|| self.document(index, &key));
            ChurnMessage { document, key, value }
        } else {
            let index = self.rng.below(self.publications.len() as u64) as usize;
            let revised = self.rng.chance(0.5);
            let (key, record) = &self.publications[index];
            let value = (!delete).then(|| {
                let mut record = record.clone();
                if revised {
                    revise(&mut record);
                }
                envelope(PUBLICATION_EVENT, &format!("churn-{key}"), &record)
            });
            ChurnMessage { document, key: key.clone(), value }
        }
    }

    fn document(&mut self, index: u64, key: &str) -> Vec<u8> {
        let references: Vec<&str> = (0..self.settings.references)
            .map(|_| self.references[self.rng.below(self.references.len() as u64) as usize].as_str())
            .collect();
        let organisation = ORGANISATIONS[index as usize % ORGANISATIONS.len()];
        let published_at = format!("{}-{:02}-{:02}", 2018 + index % 4, 1 + index % 12, 1 + index % 28);
        let payload = json!({
            "id": key,
            "organisation": organisation,
            "title": format!("Churned document {index}"),
            "url": null,
            "published_at": published_at,
            "references": references,
        });
        envelope(DOCUMENT_EVENT, key, &payload)
    }
}

/// A corrected version of an EPMC record: the title and the pages revised.
fn revise(record: &mut Value) {
    if let Some(title) = record.get("title").and_then(Value::as_str) {
        record["title"] = Value::from(format!("{title} (corrected)"));
    }
    record["pageInfo"] = Value::from("1-2");
}

/// Produces churn into the topics at the configured rate for the configured duration.
pub fn churn(kafka: &KafkaConfig, topics: &TopicsConfig, settings: ChurnSettings) -> anyhow::Result<ChurnReport> {
    let duration = settings.duration;
    let mut producer = Producer::new(kafka, Some(settings.rate))?;
    let mut churn = Churn::new(settings)?;
    let mut report = ChurnReport::default();
    let started = Instant::now();
    while started.elapsed() < duration {
        let message = churn.next_message();
        match (&message.value, message.document) {
            (None, _) => report.deletions += 1,
            (Some(_), true) => report.documents += 1,
            (Some(_), false) => report.publications += 1,
        }
        let topic = if message.document { &topics.documents } else { &topics.publications };
        producer.send(Outgoing {
            topic,
            key: Some(message.key.as_bytes()),
            value: message.value.as_deref(),
            headers: None,
            partition: None,
        })?;
    }
    producer.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64) -> ChurnSettings {
        ChurnSettings {
            data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample"),
            documents: 20,
            publications: 10,
            seed,
            ..ChurnSettings::default()
        }
    }

    #[test]
    fn churn_stays_on_a_fixed_key_set_and_repeats_with_its_seed() {
        let mut churn = Churn::new(settings(3)).unwrap();
        let messages: Vec<ChurnMessage> = (0..2_000).map(|_| churn.next_message()).collect();
        let documents: std::collections::BTreeSet<&str> = messages.iter().filter(|m| m.document).map(|m| m.key.as_str()).collect();
        let publications: std::collections::BTreeSet<&str> = messages.iter().filter(|m| !m.document).map(|m| m.key.as_str()).collect();
        assert_eq!(documents.len(), 20, "every document id is revised, and no other");
        assert_eq!(publications.len(), 10);
        let deletions = messages.iter().filter(|m| m.value.is_none()).count();
        assert!((50..150).contains(&deletions), "about 5% deletions: {deletions}");
        let share = messages.iter().filter(|m| m.document).count() as f64 / messages.len() as f64;
        assert!((0.65..0.75).contains(&share), "{share}");
        let content = |m: &ChurnMessage| {
            let payload = m.value.as_deref().map(|v| serde_json::from_slice::<Value>(v).unwrap()["payload"].clone());
            (m.document, m.key.clone(), payload)
        };
        let mut again = Churn::new(settings(3)).unwrap();
        assert!(messages.iter().all(|m| content(m) == content(&again.next_message())), "a seed gives the same messages");
    }

    #[test]
    fn a_document_keeps_its_event_time_across_revisions() {
        let mut churn = Churn::new(settings(4)).unwrap();
        let first = churn.document(7, "churn-7");
        let second = churn.document(7, "churn-7");
        let payload = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap()["payload"].clone();
        assert_eq!(payload(&first)["published_at"], payload(&second)["published_at"]);
        assert_eq!(payload(&first)["references"].as_array().unwrap().len(), 5);
    }
}
