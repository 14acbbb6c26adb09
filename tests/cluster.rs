//! A timely cluster of processes runs one job: process 0 alone takes the generation and
//! commits, every process replays its own partitions to the offsets process 0 read, and the
//! tables end as one process writes them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use citeflow_jobs::synthetic::Rng;
use support::workload::{millis, produce, workload};
use support::*;

/// Starts the job as `processes` processes of one worker each (`args` after `run`), logging
/// to `logs`: their configuration (kept while they run) and each process with its log.
fn spawn_cluster(
    broker: &Broker,
    url: &str,
    processes: usize,
    logs: &TempDir,
    run: usize,
    args: &[&str],
) -> (JobConfig, Vec<(Child, PathBuf)>) {
    let hosts: Vec<String> = (0..processes).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let config = JobConfig::cluster(broker, url, 1, 4, &hosts, "");
    let children = (0..processes)
        .map(|process| {
            let log = logs.0.join(format!("run-{run}-process-{process}.log"));
            let mut command = citeflow(&config, &[&["run"], args].concat());
            command.env("CITEFLOW_PROCESS", process.to_string()).env("RUST_LOG", "info");
            command.stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
            (command.spawn().expect("spawning a process"), log)
        })
        .collect();
    (config, children)
}

/// The last lines of a log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text[text.len().saturating_sub(3000)..].to_string()
}

/// Runs the job as `processes` processes until it has caught up; each process's log.
fn run_cluster(broker: &Broker, url: &str, processes: usize, logs: &TempDir, run: usize) -> Vec<String> {
    let (_config, children) = spawn_cluster(broker, url, processes, logs, run, &["--until-caught-up"]);
    children
        .into_iter()
        .map(|(mut child, log)| {
            let status = child.wait().unwrap();
            assert!(status.success(), "a process failed:\n{}", tail(&log));
            std::fs::read_to_string(&log).unwrap_or_default()
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

/// SIGKILL to either process of a running two-process cluster stops the other promptly, with
/// the exit code that asks for the whole cluster to restart; restarted each time, the cluster
/// ends with the tables a from-scratch run writes.
#[test]
fn a_cluster_stops_whole_when_either_process_is_killed_and_recovers() {
    let postgres = Postgres::start();
    let broker = Broker::start();
    let url = postgres.database("killed");
    citeflow_ok(&JobConfig::new(&broker, &url, 1, 4), &["topics"]);
    let work = workload(37, 1_500, 1_000);
    let logs = TempDir::new("cluster-kill-logs");
    let mut rng = Rng::new(43);
    std::thread::scope(|scope| {
        let loader = scope.spawn(|| produce(&broker, &work.messages, Some(200.0)));
        for round in 0..4 {
            let (_config, mut processes) = spawn_cluster(&broker, &url, 2, &logs, round, &[]);
            std::thread::sleep(millis(&mut rng, 3_000, 7_000));
            let victim = round % 2;
            processes[victim].0.kill().unwrap();
            processes[victim].0.wait().unwrap();
            let (survivor, log) = &mut processes[1 - victim];
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = survivor.try_wait().unwrap() {
                    break status;
                }
                assert!(Instant::now() < deadline, "round {round}: the surviving process did not stop:\n{}", tail(log));
                std::thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(status.code(), Some(3), "round {round}: the survivor asks for the cluster to restart:\n{}", tail(log));
        }
        loader.join().unwrap();
    });
    run_cluster(&broker, &url, 2, &logs, 9);
    let db = Db::connect(&url);
    assert_eq!(db.count("SELECT generation FROM citeflow_job"), 5, "one generation per start of the cluster");
    assert_equals_from_scratch(&postgres, &broker, &db, "killed_scratch", "two processes, killed four times");
}
