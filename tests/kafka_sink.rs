//! The Kafka sink against the local broker: the `citations` change topic ends equal to the
//! `citations` table, row for row, through SIGKILLs and a zombie instance, and a consumer that
//! followed the topic the whole time never saw a key take the value it already had; deleted
//! and re-published documents give tombstones and new values.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use citeflow_connectors::kafka::admin::ensure_topics;
use citeflow_connectors::kafka::sink::{header, latest_values, FRONTIER_HEADER, GENERATION_HEADER};
use citeflow_jobs::config::TopicsConfig;
use citeflow_jobs::loader::{envelope, gold_documents, publication_key, EPMC_FILES};
use citeflow_jobs::synthetic::Rng;
use citeflow_jobs::views::VIEWS;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use support::workload::{millis, produce, replace_instance, spawn_logged, workload, Message};
use support::*;

/// A view written to Kafka: its table, its topic and its key columns.
struct Written {
    table: &'static str,
    topic: &'static str,
    key: &'static [&'static str],
}

const CITATIONS: Written = Written { table: "citations", topic: "citeflow.citations", key: &["document_id", "reference_index", "matcher"] };
const PUBLICATIONS: Written = Written { table: "publications", topic: "citeflow.publications", key: &["publication_id"] };
const SINK: &str = "\n[kafka_sink]\nviews = [\"citations\", \"publications\"]\n";

/// One message a follower saw.
#[derive(Debug)]
struct Seen {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    frontier: Option<String>,
    generation: Option<String>,
}

/// A `read_committed` consumer following the change topic from its start on its own thread.
struct Follower {
    topic: &'static str,
    stop: Arc<AtomicBool>,
    next: Arc<Mutex<BTreeMap<i32, i64>>>,
    thread: JoinHandle<Vec<Seen>>,
}

impl Follower {
    fn start(broker: &Broker, topic: &'static str) -> Self {
        let kafka = test_kafka(broker);
        ensure_topics(&kafka, &[topic.to_string()], 4).expect("creating the change topic");
        let mut config = kafka.consumer_config();
        config.set("isolation.level", "read_committed").set("group.id", "citeflow-follower");
        let consumer: BaseConsumer = config.create().expect("consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..4 {
            assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("assign");
        }
        consumer.assign(&assignment).expect("assign");
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(Mutex::new(BTreeMap::new()));
        let (stopping, positions) = (stop.clone(), next.clone());
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
                let header = |name: &str| header(&message, name).map(str::to_owned);
                seen.push(Seen {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().expect("every change has a key").to_vec(),
                    value: message.payload().map(<[u8]>::to_vec),
                    frontier: header(FRONTIER_HEADER),
                    generation: header(GENERATION_HEADER),
                });
                positions.lock().unwrap().insert(message.partition(), message.offset() + 1);
            }
            seen
        });
        Follower { topic, stop, next, thread }
    }

    /// Waits until the follower has read to the topic's current end, and returns what it saw.
    fn finish(self, broker: &Broker) -> Vec<Seen> {
        let ends = high_watermarks(broker, &[self.topic]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let next = self.next.lock().unwrap().clone();
            if ends.iter().all(|((_, partition), end)| *end == 0 || next.get(partition).is_some_and(|n| n >= end)) {
                break;
            }
            assert!(Instant::now() < deadline, "the follower reads to the end: at {next:?} of {ends:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("follower")
    }
}

/// No message repeats the value its key already had (a tombstone for a key without a value
/// included), and every message names its frontier.
fn assert_no_change_seen_twice(seen: &[Seen]) {
    let mut latest: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
    for message in seen {
        assert!(message.frontier.is_some(), "every change names its frontier: {message:?}");
        let before = latest.get(message.key.as_slice()).copied().flatten();
        assert!(
            before != message.value.as_deref(),
            "partition {} offset {}: key {} took the value it had ({:?})",
            message.partition,
            message.offset,
            String::from_utf8_lossy(&message.key),
            message.value.as_deref().map(String::from_utf8_lossy)
        );
        latest.insert(&message.key, message.value.as_deref());
    }
}

/// `value` with every number as a float: the sink writes a double `1.0`, PostgreSQL's JSON `1`.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64().unwrap()),
        Value::Object(object) => Value::Object(object.into_iter().map(|(name, value)| (name, numbers_as_floats(value))).collect()),
        other => other,
    }
}

/// A view's table as the sink writes it: key object to row object (the columns written, so
/// neither a generated column nor the digest).
fn table_as_json(db: &Db, view: &Written) -> BTreeMap<String, Value> {
    let columns: Vec<&str> = VIEWS.iter().find(|schema| schema.table == view.table).unwrap().columns.iter().map(|c| c.name).collect();
    let sql = format!("SELECT row_to_json(t)::text FROM (SELECT {} FROM {}) t", columns.join(", "), view.table);
    db.rows(&sql)
        .into_iter()
        .map(|row| {
            let value: Value = serde_json::from_str(row[0].as_deref().unwrap()).unwrap();
            let key: serde_json::Map<String, Value> = view.key.iter().map(|column| (column.to_string(), value[*column].clone())).collect();
            (Value::Object(key).to_string(), numbers_as_floats(value))
        })
        .collect()
}

/// The topic's latest value per key equals the view's table, row for row.
fn assert_topic_equals_table(broker: &Broker, db: &Db, view: &Written, context: &str) -> BTreeMap<String, Value> {
    let topic: BTreeMap<String, Value> = latest_values(&test_kafka(broker), view.topic)
        .unwrap()
        .into_iter()
        .map(|(key, value)| {
            let key: Value = serde_json::from_slice(&key).unwrap();
            (key.to_string(), numbers_as_floats(serde_json::from_slice(&value).unwrap()))
        })
        .collect();
    let table = table_as_json(db, view);
    assert!(table.len() > 10, "{context}: the comparison covers real rows of {}", view.table);
    let missing: Vec<_> = table.iter().filter(|(key, row)| topic.get(*key) != Some(row)).take(3).collect();
    let extra: Vec<_> = topic.keys().filter(|key| !table.contains_key(*key)).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}: {} ({} keys) differs from {} ({} rows): missing or different {missing:?}, extra {extra:?}",
        view.topic,
        topic.len(),
        view.table,
        table.len()
    );
    topic
}

#[test]
fn the_change_topic_equals_the_table_through_kills_and_no_change_is_seen_twice() {
    let Setup { postgres, broker, url, config } = Setup::with_extra("kafka_killed", SINK);
    let followers: Vec<Follower> = [CITATIONS, PUBLICATIONS].iter().map(|view| Follower::start(&broker, view.topic)).collect();
    const KILLS: usize = 8;
    let work = workload(23, 1_200, 500);
    let logs = TempDir::new("kafka-kill-logs");
    let mut rng = Rng::new(0x5EED);
    std::thread::scope(|scope| {
        let loader = scope.spawn(|| produce(&broker, &work.messages, Some(150.0)));
        for kill in 0..KILLS {
            let log = logs.0.join(format!("run-{kill}.log"));
            let mut job = spawn_logged(&config, &log, &[]);
            std::thread::sleep(millis(&mut rng, 1_500, 6_000));
            job.kill().unwrap();
            job.wait().unwrap();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(!text.contains("panicked"), "run {kill} panicked:\n{text}");
        }
        loader.join().unwrap();
    });
    let output = citeflow_ok(&config, &["run", "--until-caught-up"]);
    let db = Db::connect(&url);
    let mut writers = std::collections::BTreeSet::new();
    for (view, follower) in [CITATIONS, PUBLICATIONS].iter().zip(followers) {
        let seen = follower.finish(&broker);
        let topic = assert_topic_equals_table(&broker, &db, view, "after the kills");
        assert_no_change_seen_twice(&seen);
        assert!(seen.len() >= topic.len(), "the follower saw every row of {} arrive", view.table);
        let tombstones = seen.iter().filter(|message| message.value.is_none()).count();
        let generations: std::collections::BTreeSet<&str> = seen.iter().filter_map(|message| message.generation.as_deref()).collect();
        eprintln!(
            "kafka kill test: {}: {} rows, {} changes seen ({tombstones} tombstones) from {} generations",
            view.topic,
            topic.len(),
            seen.len(),
            generations.len()
        );
        writers.extend(generations.into_iter().map(str::to_owned));
    }
    eprintln!("kafka kill test: last run: {}", output.trim());
    assert!(writers.len() >= 2, "a run wrote over what a killed run had written: generations {writers:?}");
    assert_equals_from_scratch(&postgres, &broker, &db, "kafka_scratch", "kafka kill test");
}

#[test]
fn a_zombie_instance_writes_nothing_after_it_is_fenced() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::with_extra("kafka_zombie", SINK);
    let follower = Follower::start(&broker, CITATIONS.topic);
    let work = workload(5, 300, 200);
    let logs = TempDir::new("kafka-zombie-logs");
    let db = Db::connect(&url);
    let (mut second, status, log) = replace_instance(&config, &broker, &db, &work, &logs);
    assert!(!status.success() && log.contains("fenced"), "the first instance stops, fenced:\n{log}");
    wait_caught_up(&db, &broker);
    second.kill().unwrap();
    second.wait().unwrap();
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let seen = follower.finish(&broker);
    assert_topic_equals_table(&broker, &db, &CITATIONS, "after a zombie");
    assert_no_change_seen_twice(&seen);
}

/// The sample's first documents, with the publications they cite.
fn documents_and_publications(count: usize) -> (Vec<Message>, Vec<Message>) {
    let topics = TopicsConfig::default();
    let gold = gold_documents(&repository().join("data/sample")).unwrap();
    let gold = &gold[..count];
    let cited: std::collections::BTreeSet<String> =
        gold.iter().flat_map(|d| d.references.iter().filter_map(|r| r.expected_pmid.clone())).collect();
    let mut publications = Vec::new();
    for line in read_lines(&sample(EPMC_FILES[0])).into_iter().chain(read_lines(&sample(EPMC_FILES[1]))) {
        let record: Value = serde_json::from_str(&line).unwrap();
        let key = publication_key(&record).unwrap();
        if cited.contains(&key) {
            publications.push(Message { topic: topics.publications.clone(), value: Some(envelope("publication", &key, &record)), key });
        }
    }
    let documents = gold
        .iter()
        .map(|document| {
            let references: Vec<&str> = document.references.iter().map(|r| r.citation.as_str()).collect();
            let value = json!({"id": document.id, "organisation": "PubMed", "title": format!("References of {}", document.id),
                               "url": null, "published_at": "2021-06-01", "references": references});
            Message {
                topic: topics.documents.clone(),
                key: document.id.clone(),
                value: Some(envelope("policy_document", &document.id, &value)),
            }
        })
        .collect();
    (documents, publications)
}

#[test]
fn deleted_documents_leave_tombstones_and_republished_ones_new_values() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::with_extra("kafka_deletions", SINK);
    let follower = Follower::start(&broker, CITATIONS.topic);
    let db = Db::connect(&url);
    let (documents, publications) = documents_and_publications(300);
    produce(&broker, &publications, None);
    produce(&broker, &documents, None);
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let before = assert_topic_equals_table(&broker, &db, &CITATIONS, "loaded");

    let deleted: Vec<Message> = documents[..100].iter().map(|m| Message { value: None, ..m.clone() }).collect();
    let ids: Vec<&str> = deleted.iter().map(|m| m.key.as_str()).collect();
    let of_deleted = |key: &String| ids.iter().any(|id| key.contains(&format!("\"document_id\":\"{id}\"")));
    let gone: Vec<&String> = before.keys().filter(|key| of_deleted(key)).collect();
    assert!(gone.len() >= 10, "the deleted documents had citations");
    produce(&broker, &deleted, None);
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let after = assert_topic_equals_table(&broker, &db, &CITATIONS, "deleted");
    assert!(gone.iter().all(|key| !after.contains_key(*key)), "the deleted documents' citations are gone from the topic");

    produce(&broker, &documents[..100], None);
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let again = assert_topic_equals_table(&broker, &db, &CITATIONS, "re-published");
    assert_eq!(again, before, "re-publishing brings every citation back, value for value");

    let seen = follower.finish(&broker);
    assert_no_change_seen_twice(&seen);
    for key in gone {
        let changes: Vec<bool> = seen.iter().filter(|m| m.key.as_slice() == key.as_bytes()).map(|m| m.value.is_some()).collect();
        assert_eq!(changes, vec![true, false, true], "{key}: a value, a tombstone, a new value");
    }
}

/// The local broker cannot commit a transaction (`tests/broker_contract.rs`): a job asked for
/// transactional delivery stops at start, naming the setting, before it writes anything.
#[test]
fn transactional_delivery_against_a_broker_without_transactions_stops_at_start() {
    let Setup { postgres: _postgres, broker: _broker, config, .. } =
        Setup::with_extra("kafka_transactional", &format!("{SINK}delivery = \"transactional\"\n"));
    let output = citeflow(&config, &["run", "--until-caught-up"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the job must not run");
    assert!(stderr.contains("kafka_sink.delivery") && stderr.contains("idempotent"), "the error names the setting:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
