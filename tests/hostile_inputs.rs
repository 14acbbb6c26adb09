//! Inputs that nothing upstream checked, through the real broker and PostgreSQL: the job
//! never stops on them, sets aside what cannot be stored (dead letters, with a reason) and
//! keeps everything else.

mod support;

use citeflow_jobs::config::TopicsConfig;
use support::*;

fn produce_documents(broker: &Broker, documents: &[(&str, &str)]) {
    let mut producer = test_producer(broker);
    for (id, title) in documents {
        let payload = serde_json::json!({
            "id": id, "organisation": "WHO", "title": title, "url": null,
            "published_at": "2024-03-01T12:00:00Z", "references": ["J Bacteriol. 1977 Mar;129(3):1227-33"],
        });
        citeflow_jobs::loader::send_document(&mut producer, &TopicsConfig::default(), &payload).unwrap();
    }
    producer.flush().unwrap();
}

fn titles(db: &Db) -> Vec<(String, String)> {
    db.rows("SELECT document_id, title FROM policy_documents ORDER BY 1")
        .into_iter()
        .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
        .collect()
}

/// A refusal validation cannot know about (a CHECK constraint the database gained): the
/// refused rows are dead-lettered, the rest is written, the job goes on, and a restart
/// refuses the same rows again without writing anything or recording them twice.
#[test]
fn rows_the_database_refuses_are_dead_lettered_and_the_job_goes_on() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::new("refusals");
    citeflow_ok(&config, &["run", "--until-caught-up"]);
    let db = Db::connect(&url);
    db.execute("ALTER TABLE policy_documents ADD CONSTRAINT test_refuses CHECK (title NOT LIKE '%REFUSE-ME%')");

    produce_documents(&broker, &[("ok-1", "A policy"), ("revised", "A fine first version"), ("bad", "REFUSE-ME at once")]);
    let mut job = spawn_job(&config);
    db.wait_until("the acceptable documents are written", |db| {
        titles(db) == [("ok-1".into(), "A policy".into()), ("revised".into(), "A fine first version".into())]
    });
    produce_documents(&broker, &[("revised", "REFUSE-ME in the revision"), ("ok-2", "Another policy")]);
    db.wait_until("the refused revision replaces the row by nothing", |db| {
        titles(db) == [("ok-1".into(), "A policy".into()), ("ok-2".into(), "Another policy".into())]
    });
    assert!(job.try_wait().unwrap().is_none(), "the job must keep running");
    let letters =
        db.rows("SELECT topic, partition, reason, convert_from(message_key, 'UTF8'), detail FROM citeflow_dead_letters ORDER BY 4");
    let summary: Vec<_> = letters.iter().map(|row| (row[0].clone().unwrap(), row[2].clone().unwrap(), row[3].clone().unwrap())).collect();
    assert_eq!(
        summary,
        [
            ("view:policy_documents".to_string(), "refused_by_database".to_string(), "bad".to_string()),
            ("view:policy_documents".to_string(), "refused_by_database".to_string(), "revised".to_string()),
        ]
    );
    assert!(letters.iter().all(|row| row[1].as_deref() == Some("-1")));
    assert!(letters[0][4].as_deref().unwrap().contains("test_refuses"), "{:?}", letters[0][4]);
    assert_eq!(db.count("SELECT count(*) FROM citations WHERE document_id IN ('ok-1', 'ok-2')"), 0, "no publications yet");
    job.kill().unwrap();
    job.wait().unwrap();

    let before = dump_views(&db);
    let output = citeflow_ok(&config, &["run", "--until-caught-up"]);
    assert!(output.contains(" 0 rows written"), "{output}");
    assert_eq!(dump_views(&db), before);
    assert_eq!(db.count("SELECT count(*) FROM citeflow_dead_letters"), 2, "the same refusals are the same dead letters");
}

/// A message far larger than any document: dead-lettered; the table keeps it whole (below
/// its 1 MiB cap) with its size and hash; the dead-letter topic gets a copy cut to 256 KiB
/// that says so; and the job goes on with the next document.
#[test]
fn an_oversized_malformed_message_is_dead_lettered_within_the_topic_limits() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::new("oversized");
    let topics = TopicsConfig::default();
    let huge: Vec<u8> = std::iter::repeat_n(b"{\"not json".as_slice(), 60_000).flatten().copied().collect();
    let mut producer = test_producer(&broker);
    producer
        .send(citeflow_connectors::kafka::producer::Outgoing {
            topic: &topics.documents,
            key: Some(b"huge"),
            value: Some(&huge),
            headers: None,
            partition: None,
        })
        .unwrap();
    producer.flush().unwrap();
    produce_documents(&broker, &[("after", "A policy after the huge one")]);
    citeflow_ok(&config, &["run", "--until-caught-up"]);

    let db = Db::connect(&url);
    assert_eq!(titles(&db), [("after".into(), "A policy after the huge one".into())]);
    let row = &db.rows("SELECT length(payload), payload_size, payload_sha256, published_at IS NOT NULL FROM citeflow_dead_letters")[0];
    assert_eq!(row[0].as_deref(), Some("600000"));
    assert_eq!(row[1].as_deref(), Some("600000"));
    assert_eq!(row[3].as_deref(), Some("true"), "the outbox published it and marked it");
    let published = read_topic(&broker, &topics.dead_letter);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].value.as_ref().map(Vec::len), Some(256 * 1024));
    let header = |name: &str| published[0].headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    assert_eq!(header("citeflow.truncated").as_deref(), Some("true"));
    assert_eq!(header("citeflow.payload_size").as_deref(), Some("600000"));
    assert_eq!(header("citeflow.payload_sha256"), row[2].clone());
}

/// A document message: the envelope around `payload`, as bytes.
fn document_bytes(payload: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"event_type": "policy_document", "schema_version": 1, "payload": payload})).unwrap()
}

fn document(id: &str, title: &str, published_at: &str, references: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"id": id, "organisation": "WHO", "title": title, "url": null, "published_at": published_at, "references": references})
}

/// One message of every class of hostile input, keyed `hostile-<n>` (or carrying no usable
/// key), interleaved with ordinary documents, some sent compressed with each codec. The job
/// never stops; every ordinary document arrives; every hostile message is dead-lettered or
/// stored sanitised; a restart writes nothing.
#[test]
fn every_class_of_hostile_input_is_dead_lettered_or_sanitised_and_the_job_goes_on() {
    let Setup { postgres: _postgres, broker, url, config } = Setup::new("hostile");
    let topics = TopicsConfig::default();
    let long = "x".repeat(6_000);
    let many: Vec<String> = (0..20_000).map(|i| format!("Ref {i}")).collect();
    let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let hostile: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"hostile-json".to_vec(), b"{\"event_type\": \"policy_document\", ".to_vec()),
        (b"hostile-utf8".to_vec(), vec![0xff, 0xfe, b'{', 0x80]),
        (b"hostile-nested".to_vec(), nested.into_bytes()),
        (b"hostile-year0".to_vec(), document_bytes(document("hostile-year0", "T", "0000-06-15T00:00:00Z", serde_json::json!([])))),
        (b"hostile-offset".to_vec(), document_bytes(document("hostile-offset", "T", "2020-06-15T00:00:00+16:00", serde_json::json!([])))),
        (b"hostile-future".to_vec(), document_bytes(document("hostile-future", "T", "2999-01-01T00:00:00Z", serde_json::json!([])))),
        (long.clone().into_bytes(), document_bytes(document(&long, "T", "2020-01-01T00:00:00Z", serde_json::json!([])))),
        (b"hostile-many".to_vec(), document_bytes(document("hostile-many", "T", "2020-01-01T00:00:00Z", serde_json::json!(many)))),
        (
            b"hostile-types".to_vec(),
            document_bytes(
                serde_json::json!({"id": "hostile-types", "organisation": 7, "title": ["T"], "published_at": true, "references": {}}),
            ),
        ),
        (b"hostile-mismatch".to_vec(), document_bytes(document("someone-else", "T", "2020-01-01T00:00:00Z", serde_json::json!([])))),
        (b"   ".to_vec(), document_bytes(document("   ", "T", "2020-01-01T00:00:00Z", serde_json::json!([])))),
        (b"hostile-version".to_vec(), b"{\"event_type\":\"policy_document\",\"schema_version\":99,\"payload\":{}}".to_vec()),
        (b"hostile-event".to_vec(), b"{\"event_type\":\"drop_tables\",\"schema_version\":1,\"payload\":{}}".to_vec()),
        (b"hostile-null".to_vec(), b"null".to_vec()),
        (vec![b'h', 0xff, 0xfe], document_bytes(document("h", "T", "2020-01-01T00:00:00Z", serde_json::json!([])))),
        (b"hostile\0id".to_vec(), document_bytes(document("hostile\u{0}id", "T", "2020-01-01T00:00:00Z", serde_json::json!([])))),
        (
            b"hostile-utc-year-10000".to_vec(),
            document_bytes(document("hostile-utc-year-10000", "T", "9999-12-31T23:59:59-08:00", serde_json::json!([]))),
        ),
        // Stored sanitised: an offset of +16:00 (stored in UTC), NUL and control characters, a
        // 0.9 MB title (cut), a huge reference, a pathological DOI.
        (
            b"hostile-nul".to_vec(),
            document_bytes(document("hostile-nul", "Ti\u{0}tle\u{7}\t\n\\N", "2020-01-01T00:00:00Z", serde_json::json!(["a\u{0}b"]))),
        ),
        (
            b"hostile-long-title".to_vec(),
            document_bytes(document("hostile-long-title", &"title ".repeat(150_000), "2020-01-01T00:00:00Z", serde_json::json!([]))),
        ),
        (
            b"hostile-big-reference".to_vec(),
            document_bytes(document("hostile-big-reference", "T", "2020-01-01T00:00:00Z", serde_json::json!(["y".repeat(100_000)]))),
        ),
        (
            b"hostile-doi".to_vec(),
            document_bytes(document(
                "hostile-doi",
                "T",
                "2020-01-01T00:00:00Z",
                serde_json::json!([format!("doi:10.1000/abc{}", ")".repeat(200_000))]),
            )),
        ),
    ];
    let stored_sanitised = ["hostile-offset", "hostile-nul", "hostile-long-title", "hostile-big-reference", "hostile-doi"];

    let mut job = spawn_job(&config);
    let mut ordinary = Vec::new();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for (index, (key, value)) in hostile.iter().enumerate() {
        let mut kafka = test_kafka(&broker);
        kafka.producer.insert("compression.type".into(), codecs[index % codecs.len()].into());
        let mut producer = citeflow_connectors::kafka::producer::Producer::new(&kafka, None).unwrap();
        let id = format!("ordinary-{index}");
        let payload =
            document(&id, "An ordinary policy", "2021-05-01T00:00:00Z", serde_json::json!(["J Bacteriol. 1977 Mar;129(3):1227-33"]));
        for (key, value) in [(id.as_bytes(), document_bytes(payload)), (key.as_slice(), value.clone())] {
            producer
                .send(citeflow_connectors::kafka::producer::Outgoing {
                    topic: &topics.documents,
                    key: Some(key),
                    value: Some(&value),
                    headers: None,
                    partition: None,
                })
                .unwrap();
        }
        producer.flush().unwrap();
        ordinary.push(id);
    }
    let db = Db::connect(&url);
    db.wait_until("every ordinary document and every hostile message is accounted for", |db| {
        let stored = db.count("SELECT count(*) FROM policy_documents");
        let letters = db.count("SELECT count(*) FROM citeflow_dead_letters");
        stored + letters >= (ordinary.len() + hostile.len()) as i64
    });
    assert!(job.try_wait().unwrap().is_none(), "the job must keep running");
    for id in &ordinary {
        assert_eq!(db.count(&format!("SELECT count(*) FROM policy_documents WHERE document_id = '{id}'")), 1, "{id}");
    }
    for id in stored_sanitised {
        assert_eq!(db.count(&format!("SELECT count(*) FROM policy_documents WHERE document_id = '{id}'")), 1, "{id} stored");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM citeflow_dead_letters"),
        (hostile.len() - stored_sanitised.len()) as i64,
        "every other hostile message is a dead letter: {:?}",
        db.rows("SELECT left(convert_from(message_key, 'SQL_ASCII'), 40), reason FROM citeflow_dead_letters ORDER BY 1")
    );
    let sanitised =
        "SELECT count(*) FROM policy_documents WHERE document_id = 'hostile-nul' AND title = 'Title' || chr(7) || E'\\t\\n\\\\N'";
    assert_eq!(db.count(sanitised), 1, "NUL dropped, control characters and escapes kept as text");
    let long_title = "SELECT octet_length(title) FROM policy_documents WHERE document_id = 'hostile-long-title'";
    assert_eq!(db.count(long_title), citeflow_jobs::envelope::MAX_TEXT_BYTES as i64, "a 0.9 MB title is cut");
    let offset = "SELECT count(*) FROM policy_documents WHERE document_id = 'hostile-offset' AND published_at = '2020-06-14T08:00:00Z'";
    assert_eq!(db.count(offset), 1, "an offset of +16:00 is stored in UTC");
    db.wait_until("the dead letters are on the topic", |db| {
        db.count("SELECT count(*) FROM citeflow_dead_letters WHERE published_at IS NULL") == 0
    });
    job.kill().unwrap();
    job.wait().unwrap();

    let before = dump_views(&db);
    let output = citeflow_ok(&config, &["run", "--until-caught-up"]);
    assert!(output.contains(" 0 rows written"), "{output}");
    assert_eq!(dump_views(&db), before);
}
