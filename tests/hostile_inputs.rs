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
    let letters = db.rows(
        "SELECT topic, partition, reason, convert_from(message_key, 'UTF8'), detail FROM citeflow_dead_letters ORDER BY 4",
    );
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
