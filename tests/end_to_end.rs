//! The citation job end to end against a real PostgreSQL and a real Kafka-protocol broker.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use citeflow_jobs::config::TopicsConfig;
use citeflow_jobs::loader::{gold_documents, malformed_messages, publication_key, DELETED_PMIDS, EPMC_FILES};
use support::*;

/// The consumer group `citeflow` holds the positions the job committed with its views, so
/// lag tools see its true lag (here none: it has caught up).
fn assert_group_holds_the_committed_positions(broker: &Broker, db: &Db) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let committed: BTreeMap<(String, i32), i64> = db
        .rows("SELECT topic, partition::text, next_offset::text FROM citeflow_progress")
        .into_iter()
        .map(|r| ((r[0].clone().unwrap(), r[1].as_deref().unwrap().parse().unwrap()), r[2].as_deref().unwrap().parse().unwrap()))
        .collect();
    assert!(!committed.is_empty());
    let consumer: BaseConsumer = test_kafka(broker).consumer_config().create().unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for (topic, partition) in committed.keys() {
        partitions.add_partition(topic, *partition);
    }
    let group = consumer.committed_offsets(partitions, std::time::Duration::from_secs(10)).expect("the group's offsets");
    let group: BTreeMap<(String, i32), i64> = group
        .elements()
        .iter()
        .map(|element| ((element.topic().to_string(), element.partition()), element.offset().to_raw().unwrap_or(-1)))
        .collect();
    assert_eq!(group, committed, "the consumer group holds the committed positions");
    let topics: Vec<&str> = committed.keys().map(|(topic, _)| topic.as_str()).collect();
    assert_eq!(high_watermarks(broker, &topics), committed, "caught up: no lag left");
}

#[test]
fn the_sample_end_to_end() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::new("sample");
    citeflow_ok(&config, &["load", "--data", "data/sample"]);
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let db = Db::connect(&url);
    assert_group_holds_the_committed_positions(&broker, &db);

    // Known citations from the gold are present with the right publication.
    let citations: BTreeMap<(String, String), String> = db
        .rows("SELECT document_id, reference_index::text, publication_id FROM citations")
        .into_iter()
        .map(|r| ((r[0].clone().unwrap(), r[1].clone().unwrap()), r[2].clone().unwrap()))
        .collect();
    let (mut right, mut wrong, mut missed, mut spurious) = (0, 0, 0, 0);
    for document in gold_documents(&repository().join("data/sample")).unwrap() {
        for (index, reference) in document.references.iter().enumerate() {
            let found = citations.get(&(document.id.clone(), index.to_string()));
            match (&reference.expected_pmid, found) {
                (Some(expected), Some(found)) if expected == found => right += 1,
                (Some(_), Some(_)) => wrong += 1,
                (Some(_), None) => missed += 1,
                (None, Some(_)) => spurious += 1,
                (None, None) => {}
            }
        }
    }
    eprintln!("gold: {right} right, {wrong} wrong, {missed} missed, {spurious} matched negatives");
    assert!(right >= 370, "too few gold citations found: {right}");
    assert!(wrong + spurious <= 3, "{wrong} wrong and {spurious} spurious citations");

    // None of the deleted PMIDs is cited, or present.
    let deleted: Vec<String> =
        std::fs::read_to_string(sample(DELETED_PMIDS)).unwrap().split_whitespace().map(|p| format!("'{p}'")).collect();
    let deleted = deleted.join(",");
    assert_eq!(db.count(&format!("SELECT count(*) FROM citations WHERE publication_id IN ({deleted})")), 0);
    assert_eq!(db.count(&format!("SELECT count(*) FROM publications WHERE publication_id IN ({deleted})")), 0);

    // A revised PMID shows its later record.
    let mut last_title: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut revised = BTreeSet::new();
    for file in EPMC_FILES {
        for line in read_lines(&sample(file)) {
            let record: serde_json::Value = serde_json::from_str(&line).unwrap();
            let key = publication_key(&record).unwrap();
            if !seen.insert(key.clone()) {
                revised.insert(key.clone());
            }
            last_title.insert(key, record["title"].as_str().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()));
        }
    }
    assert_eq!(revised.len(), 3, "the sample revises three PMIDs (one of them three times)");
    for key in &revised {
        let rows = db.rows(&format!("SELECT title FROM publications WHERE publication_id = '{key}'"));
        assert_eq!(rows, vec![vec![last_title[key].clone()]], "publication {key} shows its latest record");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM publications") as usize,
        seen.len(),
        "one row per publication (none of the deleted PMIDs is in the sample files)"
    );

    // Each malformed message is in the dead-letter topic exactly once, with its reason.
    let topics = TopicsConfig::default();
    let dead = read_topic(&broker, &topics.dead_letter);
    for malformed in malformed_messages(&topics) {
        let matching: Vec<_> = dead.iter().filter(|m| m.value.as_deref() == Some(&malformed.value[..])).collect();
        assert_eq!(matching.len(), 1, "{} ({}) must be dead-lettered once", malformed.key, malformed.reason);
        let reason = matching[0].headers.iter().find(|(k, _)| k == "citeflow.reason").map(|(_, v)| v.as_str());
        assert_eq!(reason, Some(malformed.reason), "{}", malformed.key);
        let key = String::from_utf8(matching[0].key.clone().unwrap()).unwrap();
        assert!(key.starts_with(&format!("{}/", malformed.topic)), "{key}");
    }
    assert_eq!(db.count("SELECT count(*) FROM citeflow_dead_letters") as usize, dead.len());

    // The job did not stop at the bad messages: it committed every partition to its end.
    let progress = db.rows("SELECT topic, partition::text, next_offset::text FROM citeflow_progress ORDER BY 1, 2");
    let mut read = BTreeMap::new();
    for topic in [&topics.publications, &topics.documents] {
        for message in read_topic(&broker, topic) {
            let end = read.entry((topic.clone(), message.partition.to_string())).or_insert(0);
            *end = (*end).max(message.offset + 1);
        }
    }
    let committed: BTreeMap<_, _> =
        progress.into_iter().map(|r| ((r[0].clone().unwrap(), r[1].clone().unwrap()), r[2].clone().unwrap().parse().unwrap())).collect();
    assert_eq!(committed, read);

    // A restart with no new input writes nothing and leaves the views as they were.
    let before = dump_views(&db);
    let output = citeflow_ok(&config, &["run", "--until-caught-up"]);
    assert!(output.contains(" 0 rows written"), "{output}");
    assert_eq!(dump_views(&db), before);
}

fn produce_document(broker: &Broker, id: &str, references: &[&str]) {
    let mut producer = test_producer(broker);
    let payload = serde_json::json!({
        "id": id, "organisation": "WHO", "title": "A policy", "url": null,
        "published_at": "2024-03-01T12:00:00Z", "references": references,
    });
    citeflow_jobs::loader::send_document(&mut producer, &TopicsConfig::default(), &payload).unwrap();
    producer.flush().unwrap();
}

fn produce_publication(broker: &Broker, key: &str, record: Option<serde_json::Value>) {
    let mut producer = test_producer(broker);
    let value = record.map(|r| citeflow_jobs::loader::envelope("publication", key, &r));
    let topic = TopicsConfig::default().publications;
    producer
        .send(citeflow_connectors::kafka::producer::Outgoing {
            topic: &topic,
            key: Some(key.as_bytes()),
            value: value.as_deref(),
            headers: None,
            partition: None,
        })
        .unwrap();
    producer.flush().unwrap();
}

fn bacteriology(pmid: &str, volume: &str, pages: &str) -> serde_json::Value {
    serde_json::json!({
        "pmid": pmid, "title": format!("A study {pmid}"), "journalTitle": "Journal of bacteriology",
        "journalISOAbbreviation": "J Bacteriol", "journalVolume": volume, "pubYear": 1977, "pageInfo": pages,
    })
}

#[test]
fn live_updates_follow_the_publications_and_documents() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::new("live");
    let mut job = spawn_job(&config);
    let db = Db::connect(&url);
    db.wait_until("the job is live", |db| {
        db.count("SELECT count(*) FROM pg_tables WHERE tablename = 'citeflow_job'") == 1
            && db.count("SELECT count(*) FROM citeflow_job WHERE frontier IS NOT NULL") == 1
    });
    let citation_of = |db: &Db, index: u32| {
        db.rows(&format!("SELECT publication_id FROM citations WHERE document_id = 'doc' AND reference_index = {index}"))
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect::<Vec<_>>()
    };

    produce_document(&broker, "doc", &["J Bacteriol. 1977 Mar;129(3):1227-33", "Smith J. Something. PMID: 555"]);
    db.wait_until("the document is written", |db| db.count("SELECT count(*) FROM policy_documents WHERE document_id = 'doc'") == 1);
    assert_eq!(db.count("SELECT count(*) FROM citations"), 0, "no publication yet, no citation");

    produce_publication(&broker, "111", Some(bacteriology("111", "129", "1227-33")));
    db.wait_until("the citation appears", |db| citation_of(db, 0) == vec!["111".to_string()]);
    produce_publication(&broker, "555", Some(bacteriology("555", "1", "1-2")));
    db.wait_until("the PMID citation appears", |db| citation_of(db, 1) == vec!["555".to_string()]);
    assert_eq!(db.count("SELECT citations FROM publication_citation_counts WHERE publication_id = '111'"), 1);

    produce_publication(&broker, "111", None);
    db.wait_until("the citation goes with its publication", |db| citation_of(db, 0).is_empty());
    assert_eq!(db.count("SELECT count(*) FROM publications WHERE publication_id = '111'"), 0);
    assert_eq!(db.count("SELECT count(*) FROM publication_citation_counts WHERE publication_id = '111'"), 0);

    produce_publication(&broker, "111", Some(bacteriology("111", "129", "1227-33")));
    db.wait_until("the citation comes back", |db| citation_of(db, 0) == vec!["111".to_string()]);

    produce_document(&broker, "doc", &["Smith J. Something. PMID: 555"]);
    db.wait_until("the dropped reference's citation goes", |db| {
        citation_of(db, 0) == vec!["555".to_string()] && citation_of(db, 1).is_empty()
    });
    assert_eq!(db.count("SELECT reference_count FROM policy_documents WHERE document_id = 'doc'"), 1);
    assert_eq!(db.count("SELECT count(*) FROM publication_citation_counts WHERE publication_id = '111'"), 0);

    job.kill().unwrap();
    job.wait().unwrap();
}

#[test]
fn one_and_two_workers_write_the_same_tables() {
    let postgres = Postgres::start();
    let broker = Broker::start();
    let one = postgres.database("one_worker");
    let two = postgres.database("two_workers");
    let config_one = JobConfig::new(&broker, &one, 1, 3);
    let config_two = JobConfig::new(&broker, &two, 2, 3);
    citeflow_ok(&config_one, &["topics"]);
    citeflow_ok(&config_one, &["load", "--data", "data/sample"]);
    citeflow_ok(&config_one, &["run", "--until-caught-up"]);
    citeflow_ok(&config_two, &["run", "--until-caught-up"]);
    let (one, two) = (dump_views(&Db::connect(&one)), dump_views(&Db::connect(&two)));
    assert!(one["citations"].len() > 300, "the comparison covers real citations");
    for (view, rows) in &one {
        if rows != &two[view] {
            let (mine, theirs): (BTreeSet<_>, BTreeSet<_>) = (rows.iter().collect(), two[view].iter().collect());
            let only_one: Vec<_> = mine.difference(&theirs).take(5).collect();
            let only_two: Vec<_> = theirs.difference(&mine).take(5).collect();
            panic!("{view} differs between one and two workers: {only_one:?} against {only_two:?}");
        }
    }
}

#[test]
fn two_matchers_side_by_side_write_their_own_rows_and_a_comparison() {
    let postgres = Postgres::start();
    let broker = Broker::start();
    let url = postgres.database("ab");
    let model = repository().join("training/scorer.onnx");
    let matchers = format!(
        "[[matching.matchers]]\nmatcher = \"rules-v1\"\nmodel = \"rules\"\n\n[[matching.matchers]]\nmatcher = \"model-v1\"\nmin_score = 0.5\nmodel = \"{}\"\n",
        model.display()
    );
    let config = JobConfig::with_extra(&broker, &url, 2, 4, &matchers);
    citeflow_ok(&config, &["topics"]);
    citeflow_ok(&config, &["load", "--data", "data/sample"]);
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let db = Db::connect(&url);
    let per_matcher = |name: &str| db.count(&format!("SELECT count(*) FROM citations WHERE matcher = '{name}'"));
    assert!(per_matcher("rules-v1") > 300 && per_matcher("model-v1") > 300);
    assert_eq!(
        db.count("SELECT count(*) FROM matcher_comparison"),
        db.count("SELECT count(*) FROM (SELECT DISTINCT document_id, reference_index FROM citations) r"),
        "one comparison row per reference that either matcher cites"
    );
    let inconsistent = db.count(
        "SELECT count(*) FROM matcher_comparison m
         LEFT JOIN citations a ON a.document_id = m.document_id AND a.reference_index = m.reference_index AND a.matcher = 'rules-v1'
         LEFT JOIN citations b ON b.document_id = m.document_id AND b.reference_index = m.reference_index AND b.matcher = 'model-v1'
         WHERE m.publication_a IS DISTINCT FROM a.publication_id OR m.publication_b IS DISTINCT FROM b.publication_id
            OR m.outcome <> CASE WHEN a.publication_id = b.publication_id THEN 'agree'
                                 WHEN a.publication_id IS NULL THEN 'only_b'
                                 WHEN b.publication_id IS NULL THEN 'only_a' ELSE 'different' END",
    );
    assert_eq!(inconsistent, 0, "the comparison agrees with the citations of both matchers");
    assert_eq!(
        db.count("SELECT coalesce(sum(citations), 0) FROM publication_citation_counts"),
        per_matcher("rules-v1"),
        "the counts are the primary matcher's"
    );
    let outcomes = db.rows("SELECT outcome, count(*)::text FROM matcher_comparison GROUP BY 1 ORDER BY 1");
    eprintln!("A/B outcomes: {outcomes:?}");
}

/// Two jobs with different names on one database: each in its own schema, neither fences the
/// other, and a restart of either finds its own tables as it left them.
#[test]
fn jobs_with_different_names_share_a_database() {
    let Setup { postgres: _postgres, broker, url, config: _ } = Setup::new("shared");
    let job = |name: &str| JobConfig::with_extra(&broker, &url, 1, 4, &format!("[job]\nname = \"{name}\""));
    let (alpha, beta) = (job("alpha"), job("beta"));
    produce_document(&broker, "doc", &["Smith J. Something. PMID: 555"]);
    citeflow_ok(&alpha, &["run", "--until-caught-up"]);
    citeflow_ok(&beta, &["run", "--until-caught-up"]);
    let db = Db::connect(&url);
    for schema in ["alpha", "beta"] {
        assert_eq!(db.count(&format!("SELECT count(*) FROM {schema}.policy_documents")), 1, "{schema}");
        assert_eq!(db.count(&format!("SELECT generation FROM {schema}.citeflow_job")), 1, "{schema} fenced by nobody");
    }
    assert_eq!(db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'policy_documents'"), 0);
    let output = citeflow_ok(&alpha, &["run", "--until-caught-up"]);
    assert!(output.contains(" 0 rows written"), "{output}");
    assert_eq!(db.count("SELECT count(*) FROM alpha.policy_documents"), 1);
}
