//! A workload of the sample's documents and publications with revisions, deletions,
//! re-published documents and malformed messages, and running the job under it.

use std::collections::BTreeSet;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use citeflow_connectors::kafka::producer::Outgoing;
use citeflow_jobs::config::TopicsConfig;
use citeflow_jobs::loader::{envelope, gold_documents, malformed_messages, publication_key, EPMC_FILES};
use citeflow_jobs::synthetic::Rng;
use serde_json::{json, Value};

use super::*;

/// A random duration between `low` and `high` milliseconds.
pub fn millis(rng: &mut Rng, low: u64, high: u64) -> Duration {
    Duration::from_millis(low + rng.below(high - low))
}

/// One message of a workload.
#[derive(Clone)]
pub struct Message {
    pub topic: String,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A stream of documents, publications, revisions, deletions, re-published documents and
/// malformed messages, built from the sample and shuffled with `seed`.
pub struct Workload {
    pub messages: Vec<Message>,
    pub malformed: usize,
}

pub fn workload(seed: u64, publications: usize, documents: usize) -> Workload {
    let topics = TopicsConfig::default();
    let mut rng = Rng::new(seed);
    let gold = gold_documents(&repository().join("data/sample")).unwrap();
    let cited: BTreeSet<String> = gold.iter().flat_map(|d| d.references.iter().filter_map(|r| r.expected_pmid.clone())).collect();
    let mut records: Vec<(String, Value)> = Vec::new();
    for line in read_lines(&sample(EPMC_FILES[0])).into_iter().chain(read_lines(&sample(EPMC_FILES[1]))) {
        let record: Value = serde_json::from_str(&line).unwrap();
        let key = publication_key(&record).unwrap();
        if cited.contains(&key) || (records.len() < publications && rng.below(10) == 0) {
            records.push((key, record));
        }
    }
    let publication = |key: &str, record: Option<&Value>| Message {
        topic: topics.publications.clone(),
        key: key.to_string(),
        value: record.map(|r| envelope("publication", key, r)),
    };
    let document = |id: &str, references: Vec<&str>| Message {
        topic: topics.documents.clone(),
        key: id.to_string(),
        value: Some(envelope(
            "policy_document",
            id,
            &json!({"id": id, "organisation": "PubMed", "title": format!("References of {id}"), "url": null,
                    "published_at": "2021-06-01", "references": references}),
        )),
    };
    let mut messages: Vec<Message> = records.iter().map(|(key, record)| publication(key, Some(record))).collect();
    for (key, record) in records.iter().filter(|_| rng.below(10) == 0) {
        let mut revised = record.clone();
        revised["title"] = json!(format!("{} (revised)", record["title"].as_str().unwrap_or("")));
        messages.push(publication(key, Some(&revised)));
    }
    for (key, _) in records.iter().filter(|(key, _)| cited.contains(key) && rng.below(12) == 0) {
        messages.push(publication(key, None));
    }
    for gold_document in gold.iter().take(documents) {
        let references: Vec<&str> = gold_document.references.iter().map(|r| r.citation.as_str()).collect();
        messages.push(document(&gold_document.id, references.clone()));
        if rng.below(8) == 0 {
            messages.push(document(&gold_document.id, references[..references.len() / 2].to_vec()));
        }
    }
    let mut malformed = 0;
    for _ in 0..3 {
        for bad in malformed_messages(&topics) {
            messages.push(Message { topic: bad.topic, key: bad.key, value: Some(bad.value) });
            malformed += 1;
        }
    }
    for i in (1..messages.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        messages.swap(i, j);
    }
    Workload { messages, malformed }
}

/// Produces `messages` at `rate` per second.
pub fn produce(broker: &Broker, messages: &[Message], rate: Option<f64>) {
    let mut producer = citeflow_connectors::kafka::producer::Producer::new(&test_kafka(broker), rate).expect("producer");
    for message in messages {
        producer
            .send(Outgoing {
                topic: &message.topic,
                key: Some(message.key.as_bytes()),
                value: message.value.as_deref(),
                headers: None,
                partition: None,
            })
            .unwrap();
    }
    producer.flush().unwrap();
}

pub fn spawn_logged(config: &JobConfig, log: &std::path::Path, extra_env: &[(&str, &str)]) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let mut command = citeflow(config, &["run"]);
    command.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(file);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.spawn().expect("spawning the job")
}

/// A number from the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the job on the first half of `work`, starts a second instance, produces the rest and
/// waits for the first instance to stop (fenced by the second): the second instance, still
/// running, and the first one's exit status and log.
pub fn replace_instance(config: &JobConfig, broker: &Broker, db: &Db, work: &Workload, logs: &TempDir) -> (Child, ExitStatus, String) {
    let (first_half, second_half) = work.messages.split_at(work.messages.len() / 2);
    let first_log = logs.0.join("first.log");
    let mut first = spawn_logged(config, &first_log, &[]);
    produce(broker, first_half, None);
    wait_caught_up(db, broker);
    let second = spawn_logged(config, &logs.0.join("second.log"), &[]);
    db.wait_until("the second instance takes generation 2", |db| db.count("SELECT generation FROM citeflow_job") == 2);
    produce(broker, second_half, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&first_log).unwrap_or_default();
            panic!("the first instance was not fenced:\n{}", &log[log.len().saturating_sub(3000)..]);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (second, status, std::fs::read_to_string(&first_log).unwrap())
}
