//! A timely cluster of processes runs one job: process 0 alone takes the generation and
//! commits, every process replays its own partitions to the offsets process 0 read, and the
//! tables end as one process writes them.

mod support;

use std::process::Child;

use support::workload::{produce, workload};
use support::*;

/// Runs the job as `processes` processes of one worker each until it has caught up, and
/// returns each process's log.
fn run_cluster(broker: &Broker, url: &str, processes: usize, logs: &TempDir, run: usize) -> Vec<String> {
    let hosts: Vec<String> = (0..processes).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let config = JobConfig::cluster(broker, url, 1, 4, &hosts, "");
    let children: Vec<(Child, std::path::PathBuf)> = (0..processes)
        .map(|process| {
            let log = logs.0.join(format!("run-{run}-process-{process}.log"));
            let mut command = citeflow(&config, &["run", "--until-caught-up"]);
            command.env("CITEFLOW_PROCESS", process.to_string()).env("RUST_LOG", "info");
            command.stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
            (command.spawn().expect("spawning a process"), log)
        })
        .collect();
    children
        .into_iter()
        .map(|(mut child, log)| {
            let status = child.wait().unwrap();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(status.success(), "a process failed:\n{}", &text[text.len().saturating_sub(3000)..]);
            text
        })
        .collect()
}

#[test]
fn two_and_three_processes_write_what_one_process_writes() {
    let postgres = Postgres::start();
    let broker = Broker::start();
    let work = workload(31, 1_500, 1_000);
    let (first, rest) = work.messages.split_at(work.messages.len() / 2);
    let setup = JobConfig::new(&broker, &postgres.database("unused"), 1, 4);
    citeflow_ok(&setup, &["topics"]);
    let logs = TempDir::new("cluster-logs");
    let two = postgres.database("two");
    for (processes, name) in [(2, "two"), (3, "three")] {
        let url = if processes == 2 { two.clone() } else { postgres.database(name) };
        produce(&broker, if processes == 2 { first } else { &[] }, None);
        let texts = run_cluster(&broker, &url, processes, &logs, processes);
        let db = Db::connect(&url);
        assert_eq!(db.count("SELECT generation FROM citeflow_job"), 1, "one generation for the whole cluster");
        for (process, text) in texts.iter().enumerate() {
            assert!(text.contains("resumes the job at the cluster's generation"), "process {process} learned the generation:\n{text}");
        }
        assert_eq!(texts.iter().filter(|text| text.contains("sink ready")).count(), 1, "one committer");
        assert_equals_from_scratch(&postgres, &broker, &db, &format!("{name}_scratch"), &format!("{processes} processes"));
    }
    // A restart of the two-process cluster after more input replays and resumes.
    produce(&broker, rest, None);
    run_cluster(&broker, &two, 2, &logs, 4);
    let db = Db::connect(&two);
    assert_eq!(db.count("SELECT generation FROM citeflow_job"), 2, "the restart took one more generation");
    assert_equals_from_scratch(&postgres, &broker, &db, "two_restarted_scratch", "2 processes, restarted");
}
