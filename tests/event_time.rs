//! Event time through the real broker and PostgreSQL: documents with out-of-order
//! publication dates on some partitions while others stay idle; the monthly view closes
//! months as the watermark passes them, records a late document according to the policy, and
//! a restart replays to exactly the same decisions.

mod support;

use citeflow_connectors::kafka::producer::Outgoing;
use citeflow_jobs::config::TopicsConfig;
use support::*;

/// Watermark settings that make the test quick: no out-of-orderness allowance, one second
/// of silence makes a partition idle.
fn event_time(policy: &str) -> String {
    format!("[event_time]\nout_of_orderness = \"0 days\"\nidle_timeout = \"1 s\"\nlate_policy = \"{policy}\"\n")
}

fn produce(broker: &Broker, partition: i32, id: &str, published_at: &str) {
    let mut producer = test_producer(broker);
    let payload = serde_json::json!({
        "id": id, "organisation": "WHO", "title": "A policy", "url": null,
        "published_at": published_at, "references": [],
    });
    let value = citeflow_jobs::loader::envelope("policy_document", id, &payload);
    let topic = TopicsConfig::default().documents;
    producer
        .send(Outgoing { topic: &topic, key: Some(id.as_bytes()), value: Some(&value), headers: None, partition: Some(partition) })
        .unwrap();
    producer.flush().unwrap();
}

/// `(documents, closed, revision)` of the WHO row for the month starting `month`.
fn month(db: &Db, month: &str) -> Option<(String, String, String)> {
    db.rows(&format!(
        "SELECT documents::text, closed::text, revision::text FROM citations_per_period
         WHERE organisation = 'WHO' AND period_start = '{month}T00:00:00Z'"
    ))
    .into_iter()
    .next()
    .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap(), row[2].clone().unwrap()))
}

fn watermark_at_least(db: &Db, date: &str) -> bool {
    db.count(&format!("SELECT count(*) FROM citeflow_watermarks WHERE source = 'global' AND watermark >= '{date}T00:00:00Z'")) == 1
}

/// Runs the scenario under `policy` and returns the database for policy-specific checks.
fn scenario(name: &str, policy: &str) -> (Setup, Db) {
    let setup = Setup::new(name);
    let config = JobConfig::with_extra(&setup.broker, &setup.url, 2, 4, &event_time(policy));
    let mut job = spawn_job(&config);
    let db = Db::connect(&setup.url);
    db.wait_until("the job is live", |db| {
        db.count("SELECT count(*) FROM pg_tables WHERE tablename = 'citeflow_job'") == 1
            && db.count("SELECT count(*) FROM citeflow_job WHERE frontier IS NOT NULL") == 1
    });

    // Out of order across partitions; partitions 2 and 3 never carry anything and must not
    // hold the watermark back once idle.
    produce(&setup.broker, 0, "january-1", "2024-01-05");
    produce(&setup.broker, 0, "january-2", "2024-01-20T08:00:00Z");
    db.wait_until("January's documents are in", |db| db.count("SELECT count(*) FROM policy_documents") == 2);
    produce(&setup.broker, 1, "march", "2024-03-15");
    db.wait_until("the watermark reaches mid-March", |db| watermark_at_least(db, "2024-03-15"));
    db.wait_until("January closes", |db| month(db, "2024-01-01") == Some(("2".into(), "true".into(), "0".into())));
    assert_eq!(month(&db, "2024-03-01"), Some(("1".into(), "false".into(), "0".into())), "March is provisional");
    assert_eq!(
        db.count("SELECT count(*) FROM citeflow_watermarks WHERE source LIKE 'policy.documents/%' AND watermark IS NULL"),
        2,
        "the idle partitions carried no event"
    );

    produce(&setup.broker, 0, "april", "2024-04-10");
    db.wait_until("March closes as the watermark passes April 1st", |db| {
        month(db, "2024-03-01") == Some(("1".into(), "true".into(), "0".into()))
    });
    assert_eq!(month(&db, "2024-04-01").map(|m| m.1), Some("false".into()));

    produce(&setup.broker, 1, "january-late", "2024-01-25");
    db.wait_until("the late document is recorded", |db| {
        db.count("SELECT count(*) FROM policy_documents WHERE document_id = 'january-late'") == 1
    });
    db.wait_until("everything is committed", |db| {
        db.count("SELECT count(*) FROM citeflow_progress WHERE topic = 'policy.documents' AND partition = 1 AND next_offset = 2") == 1
    });
    job.kill().unwrap();
    job.wait().unwrap();

    let before = dump_period_views(&db);
    let output = citeflow_ok(&config, &["run", "--until-caught-up"]);
    assert!(output.contains(" 0 rows written"), "a restart replays to the same windows and decisions: {output}");
    assert_eq!(dump_period_views(&db), before);
    (setup, db)
}

fn dump_period_views(db: &Db) -> Vec<Vec<Option<String>>> {
    let mut rows =
        db.rows("SELECT organisation, period_start::text, documents, closed::text, revision FROM citations_per_period ORDER BY 1, 2");
    rows.extend(db.rows("SELECT source, watermark::text, next_offset FROM citeflow_watermarks ORDER BY 1"));
    rows.extend(db.rows("SELECT watermark_ms, topic, partition, next_offset FROM citeflow_watermark_log ORDER BY 1, 2, 3"));
    rows.extend(db.rows("SELECT topic, partition, \"offset\", reason FROM citeflow_dead_letters ORDER BY 1, 2, 3"));
    rows
}

#[test]
fn a_late_document_is_applied_and_revises_its_closed_month() {
    let (_setup, db) = scenario("late_apply", "apply");
    assert_eq!(month(&db, "2024-01-01"), Some(("3".into(), "true".into(), "1".into())));
    assert_eq!(db.count("SELECT count(*) FROM citeflow_dead_letters WHERE reason = 'late'"), 0);
    assert!(db.count("SELECT count(DISTINCT watermark_ms) FROM citeflow_watermark_log") >= 2, "the advances are logged");
}

#[test]
fn a_late_document_is_dead_lettered_and_its_month_is_unchanged() {
    let (setup, db) = scenario("late_dead_letter", "dead_letter");
    assert_eq!(month(&db, "2024-01-01"), Some(("2".into(), "true".into(), "0".into())));
    let letters = db.rows("SELECT partition::text, \"offset\"::text, detail FROM citeflow_dead_letters WHERE reason = 'late'");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0][0].as_deref(), letters[0][1].as_deref()), (Some("1"), Some("1")));
    assert!(letters[0][2].as_deref().unwrap().contains("january-late"), "{letters:?}");
    let topic = read_topic(&setup.broker, &TopicsConfig::default().dead_letter);
    assert!(topic.iter().any(|m| m.headers.iter().any(|(k, v)| k == "citeflow.reason" && v == "late")), "the late letter is on the topic");
}
