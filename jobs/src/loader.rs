//! Loading inputs into the topics: the bundled sample (EPMC records, their deletions,
//! documents built from the gold reference lists, real policy reference sections, and a
//! handful of deliberately malformed messages). The loader is also the load generator: it
//! takes a rate limit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use citeflow_connectors::files::lines;
use citeflow_connectors::kafka::producer::{Outgoing, Producer};
use citeflow_connectors::kafka::KafkaConfig;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::TopicsConfig;
use crate::envelope::{CURRENT_SCHEMA_VERSION, DOCUMENT_EVENT, PUBLICATION_EVENT};
use crate::matching::identifiers::{normalise_doi, normalise_pmcid, normalise_pmid};
use citeflow_engine::timestamps::format_rfc3339;

/// The EPMC files of the sample, in load order.
pub const EPMC_FILES: [&str; 2] = ["epmc/pubmed-1970s.jsonl.gz", "epmc/pubmed-2021-update.jsonl.gz"];
/// PMIDs deleted by the update file.
pub const DELETED_PMIDS: &str = "epmc/pubmed-2021-update.deleted-pmids.txt";
/// Gold reference files.
pub const GOLD_FILES: [&str; 2] = ["gold/positives.dev.jsonl", "gold/negatives.dev.jsonl"];

/// One labelled reference of the gold files.
#[derive(Clone, Debug, Deserialize)]
pub struct GoldReference {
    /// `citing PMID#reference number`.
    pub ref_id: String,
    /// The reference string.
    pub citation: String,
    /// The cited PMID when it is in the sample, else `None`.
    pub expected_pmid: Option<String>,
}

/// A document made of the gold references of one citing article.
#[derive(Clone, Debug)]
pub struct GoldDocument {
    /// Document id (`pubmed-<citing PMID>`).
    pub id: String,
    /// Citing PMID.
    pub citing_pmid: String,
    /// References in reference-number order; the position is the reference index.
    pub references: Vec<GoldReference>,
}

/// A message that the job must dead-letter, with the reason it must give.
#[derive(Clone, Debug)]
pub struct MalformedMessage {
    /// Topic to produce to.
    pub topic: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
    /// The dead-letter reason the job must record.
    pub reason: &'static str,
}

/// What a load produced.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Publication records.
    pub publications: u64,
    /// Publication tombstones.
    pub deletions: u64,
    /// Policy documents (gold and real).
    pub documents: u64,
    /// Malformed messages.
    pub malformed: u64,
}

impl LoadReport {
    /// All messages produced.
    pub fn total(&self) -> u64 {
        self.publications + self.deletions + self.documents + self.malformed
    }
}

/// Wraps a payload in the input envelope, occurring now.
pub fn envelope(event_type: &str, event_id: &str, payload: &Value) -> Vec<u8> {
    let occurred_at = format_rfc3339(citeflow_engine::time::wall_clock_ms() as i64);
    envelope_at(event_type, event_id, &occurred_at, payload)
}

/// Wraps a payload in the input envelope with a given `occurred_at`.
pub fn envelope_at(event_type: &str, event_id: &str, occurred_at: &str, payload: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_type": event_type,
        "schema_version": CURRENT_SCHEMA_VERSION,
        "event_id": event_id,
        "occurred_at": occurred_at,
        "payload": payload,
    }))
    .expect("JSON encoding")
}

/// The Kafka key of an EPMC record: normalised PMID, else PMCID, else DOI.
pub fn publication_key(record: &Value) -> Option<String> {
    let field = |name: &str| record.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    field("pmid")
        .and_then(normalise_pmid)
        .or_else(|| field("pmcid").and_then(normalise_pmcid))
        .or_else(|| field("doi").and_then(normalise_doi))
}

/// Reads the gold files and groups them into documents.
pub fn gold_documents(data: &Path) -> anyhow::Result<Vec<GoldDocument>> {
    let mut by_citing: BTreeMap<String, Vec<(u32, GoldReference)>> = BTreeMap::new();
    for file in GOLD_FILES {
        let path = data.join(file);
        for line in lines(&path).with_context(|| format!("reading {}", path.display()))? {
            let reference: GoldReference = serde_json::from_str(&line?)?;
            let (citing, number) = reference.ref_id.split_once('#').context("ref_id without #")?;
            by_citing.entry(citing.to_string()).or_default().push((number.parse()?, reference));
        }
    }
    Ok(by_citing
        .into_iter()
        .map(|(citing, mut references)| {
            references.sort_by_key(|(number, _)| *number);
            GoldDocument {
                id: format!("pubmed-{citing}"),
                citing_pmid: citing,
                references: references.into_iter().map(|(_, r)| r).collect(),
            }
        })
        .collect())
}

/// The malformed messages of the sample, one per kind of problem.
pub fn malformed_messages(topics: &TopicsConfig) -> Vec<MalformedMessage> {
    let publication =
        |key: &str, value: Vec<u8>, reason| MalformedMessage { topic: topics.publications.clone(), key: key.to_string(), value, reason };
    let document =
        |key: &str, value: Vec<u8>, reason| MalformedMessage { topic: topics.documents.clone(), key: key.to_string(), value, reason };
    let malformed_envelope =
        |event_type: &str, event_id: &str, payload: &Value| envelope_at(event_type, event_id, "2024-01-01T00:00:00Z", payload);
    let good_document = |id: &str| json!({"id": id, "organisation": "Test", "title": "T", "published_at": "2021-01-01", "references": []});
    vec![
        publication("malformed-json", b"{\"event_type\": \"publication\", ".to_vec(), "invalid_json"),
        publication("malformed-type", malformed_envelope("citation", "m2", &json!({"pmid": "1"})), "unknown_event_type"),
        publication(
            "malformed-version",
            serde_json::to_vec(&json!({"event_type": PUBLICATION_EVENT, "schema_version": 99, "payload": {"pmid": "2"}})).unwrap(),
            "unsupported_schema_version",
        ),
        publication("malformed-ids", malformed_envelope(PUBLICATION_EVENT, "m4", &json!({"title": "No identifiers"})), "missing_field"),
        document("", malformed_envelope(DOCUMENT_EVENT, "m5", &good_document("")), "empty_id"),
        document(
            "malformed-date",
            malformed_envelope(
                DOCUMENT_EVENT,
                "m6",
                &json!({"id": "malformed-date", "organisation": "Test", "title": "T", "published_at": "last Tuesday", "references": []}),
            ),
            "invalid_field",
        ),
        document("malformed-key", malformed_envelope(DOCUMENT_EVENT, "m7", &good_document("another-id")), "key_mismatch"),
        document(
            "malformed-references",
            malformed_envelope(
                DOCUMENT_EVENT,
                "m8",
                &json!({"id": "malformed-references", "organisation": "Test", "title": "T", "published_at": "2021-01-01"}),
            ),
            "missing_field",
        ),
    ]
}

/// The real policy reference sections, as document payloads.
pub fn policy_documents(data: &Path) -> anyhow::Result<Vec<Value>> {
    let mut documents = Vec::new();
    for (file, prefix) in
        [("policy/test_numbered_references.jsonl", "numbered"), ("policy/test_token_labelled_references.jsonl", "labelled")]
    {
        for (index, line) in lines(&data.join(file))?.enumerate() {
            let record: Value = serde_json::from_str(&line?)?;
            let provider = record["meta"]["provider"].as_str().unwrap_or("unknown");
            let hash = record["meta"]["doc_hash"].as_str().unwrap_or("unknown");
            documents.push(json!({
                "id": format!("policy-{prefix}-{index}"),
                "organisation": provider,
                "title": format!("Reference section of document {hash}"),
                "url": null,
                "published_at": "2019-01-01",
                "references": record["text"],
            }));
        }
    }
    for line in lines(&data.join("policy/test_reach.jsonl"))? {
        let record: Value = serde_json::from_str(&line?)?;
        let text = record["text"].as_str().unwrap_or_default();
        let start = text.find("\nReferences\n").map_or(0, |i| i + 1);
        let section: String = text[start..].chars().take(20_000).collect();
        let metadata = &record["source_metadata"];
        documents.push(json!({
            "id": format!("policy-reach-{}", record["file_hash"].as_str().unwrap_or("unknown")),
            "organisation": "NICE",
            "title": metadata["title"],
            "url": metadata["url"],
            "published_at": format!("{}-01-01", metadata["year"].as_str().unwrap_or("2002")),
            "references": section,
        }));
    }
    let listed = std::fs::read_to_string(data.join("policy/test_references.txt"))?;
    documents.push(json!({
        "id": "policy-listed-0",
        "organisation": "unknown",
        "title": "Three listed references",
        "url": null,
        "published_at": "2019-01-01",
        "references": listed,
    }));
    Ok(documents)
}

/// Where the sample lives and how fast to load it.
#[derive(Clone, Debug)]
pub struct SampleLoad {
    /// The sample directory (with `epmc/`, `gold/`, `policy/`).
    pub data: PathBuf,
    /// Messages per second, unlimited when `None`.
    pub rate: Option<f64>,
}

/// Produces the whole sample into the topics.
pub fn load_sample(kafka: &KafkaConfig, topics: &TopicsConfig, load: &SampleLoad) -> anyhow::Result<LoadReport> {
    let mut producer = Producer::new(kafka, load.rate)?;
    let mut report = LoadReport::default();
    let mut years: HashMap<String, i64> = HashMap::new();
    for file in EPMC_FILES {
        let path = load.data.join(file);
        for line in lines(&path).with_context(|| format!("reading {}", path.display()))? {
            let record: Value = serde_json::from_str(&line?)?;
            let key = publication_key(&record).context("an EPMC record without identifiers")?;
            if let Some(year) = record["pubYear"].as_i64() {
                years.insert(key.clone(), year);
            }
            let value = envelope(PUBLICATION_EVENT, &format!("publication-{key}-{}", report.publications), &record);
            producer.send(Outgoing {
                topic: &topics.publications,
                key: Some(key.as_bytes()),
                value: Some(&value),
                headers: None,
                partition: None,
            })?;
            report.publications += 1;
        }
    }
    for pmid in std::fs::read_to_string(load.data.join(DELETED_PMIDS))?.split_whitespace() {
        producer.send(Outgoing { topic: &topics.publications, key: Some(pmid.as_bytes()), value: None, headers: None, partition: None })?;
        report.deletions += 1;
    }
    for document in gold_documents(&load.data)? {
        let year = years.get(&document.citing_pmid).copied().unwrap_or(2021);
        let payload = json!({
            "id": document.id,
            "organisation": "PubMed",
            "title": format!("Reference list of PMID {}", document.citing_pmid),
            "url": format!("https://pubmed.ncbi.nlm.nih.gov/{}/", document.citing_pmid),
            "published_at": format!("{year:04}-01-01"),
            "references": document.references.iter().map(|r| r.citation.as_str()).collect::<Vec<_>>(),
        });
        send_document(&mut producer, topics, &payload)?;
        report.documents += 1;
    }
    for payload in policy_documents(&load.data)? {
        send_document(&mut producer, topics, &payload)?;
        report.documents += 1;
    }
    for message in malformed_messages(topics) {
        producer.send(Outgoing {
            topic: &message.topic,
            key: Some(message.key.as_bytes()),
            value: Some(&message.value),
            headers: None,
            partition: None,
        })?;
        report.malformed += 1;
    }
    producer.flush()?;
    Ok(report)
}

/// Produces one policy document payload under its id.
pub fn send_document(producer: &mut Producer, topics: &TopicsConfig, payload: &Value) -> anyhow::Result<()> {
    let id = payload["id"].as_str().context("document without id")?;
    let value = envelope(DOCUMENT_EVENT, &format!("document-{id}"), payload);
    producer.send(Outgoing { topic: &topics.documents, key: Some(id.as_bytes()), value: Some(&value), headers: None, partition: None })?;
    Ok(())
}
