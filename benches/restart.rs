//! A restart at scale without a broker: the job reads a topic archive
//! (`citeflow_connectors::archive`; the same messages and offsets as the topics, with the Kafka
//! source's epochs and flow control), so the figure is the engine's and PostgreSQL's, not the
//! local broker's.
//!
//! The bench writes an archive of `CITEFLOW_RESTART_PUBLICATIONS` synthetic publications
//! (1,000,000; `citeflow_jobs::synthetic::recombined`, as the scale bench) and policy documents
//! holding `CITEFLOW_RESTART_REFERENCES` references (100,000, ten a document, half to indexed
//! publications and half to publications outside the index, in the generator's six styles),
//! over four partitions a topic. It starts a throwaway PostgreSQL, runs the job
//! (`CITEFLOW_RESTART_WORKERS` workers, 2; the default learned matcher and engine settings)
//! over the archive until caught up — the first load — and then again: a restart, which replays
//! the archive to the committed offsets, compares the views' digests with the tables' and
//! writes nothing. `CITEFLOW_RESTART_ENGINE` adds lines to the job's `[engine]` section (say
//! `max_in_flight_records = 20000`). Each run is the `citeflow` program, timed from its own report (its start-up:
//! the model, the database) and from outside; `CITEFLOW_RESTART_BIN` names another build of it
//! (say, one copied from an earlier commit), to compare two builds on the same archive.
//!
//!     cargo bench --bench restart
//!
//! The last line is fixed:
//! `restart: publications N references M records R seconds S records_per_s X rows_written W`
//! (the restart's figures; `W` must be 0).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use citeflow_connectors::archive::ArchiveWriter;
use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_jobs::config::TopicsConfig;
use citeflow_jobs::envelope::{DOCUMENT_EVENT, PUBLICATION_EVENT};
use citeflow_jobs::eval::read_records;
use citeflow_jobs::loader::{envelope_at, EPMC_FILES};
use citeflow_jobs::synthetic::{citable, recombined, recombined_record, render, Noise, Rng, STYLES};
use serde_json::json;
use support::{repository, sample, Postgres, TempDir};

/// Partitions of each input topic.
const PARTITIONS: usize = 4;
/// References a document cites.
const PER_DOCUMENT: usize = 10;
/// The documents' organisations, in turn.
const ORGANISATIONS: [&str; 4] = ["WHO", "NICE", "UNICEF", "MSF"];
/// Every message's time, fixed so that the archive is the same each time.
const OCCURRED_AT: &str = "2026-01-01T00:00:00Z";
const TIMESTAMP_MS: i64 = 1_767_225_600_000;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One writer per partition of a topic, each counting its offsets.
struct Topic {
    name: String,
    writers: Vec<(ArchiveWriter, i64)>,
}

impl Topic {
    fn create(dir: &Path, name: &str) -> Self {
        let writers = (0..PARTITIONS).map(|p| (ArchiveWriter::create(dir, name, p as i32).expect("archive file"), 0)).collect();
        Topic { name: name.to_string(), writers }
    }

    /// Appends a message to the partition its key hashes to (FNV-1a).
    fn append(&mut self, key: &str, payload: Vec<u8>) {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        let partition = (hash % PARTITIONS as u64) as usize;
        let (writer, offset) = &mut self.writers[partition];
        let message = KafkaMessage {
            topic: self.name.clone(),
            partition: partition as i32,
            offset: *offset,
            key: Some(key.as_bytes().to_vec()),
            payload: Some(payload),
            timestamp: Some(TIMESTAMP_MS),
        };
        writer.append(&message).expect("archive append");
        *offset += 1;
    }

    fn finish(self) {
        for (writer, _) in self.writers {
            writer.finish().expect("archive finish");
        }
    }
}

/// Writes the archive; returns the messages written.
fn write_archive(dir: &Path, publications: usize, references: usize) -> usize {
    let topics = TopicsConfig::default();
    let seeds: Vec<_> = read_records(&EPMC_FILES.map(sample)).expect("sample").into_iter().filter(|(p, _)| citable(p)).collect();
    let (seed_publications, seed_records): (Vec<_>, Vec<_>) = seeds.into_iter().unzip();
    let mut rng = Rng::new(11);
    let mut indexed = recombined(&seed_publications, publications + references / 2, &mut rng);
    let outside = indexed.split_off(publications);
    let mut topic = Topic::create(dir, &topics.publications);
    for (i, publication) in indexed.iter().enumerate() {
        let record = recombined_record(publication, &seed_records[i % seed_records.len()]);
        topic.append(&publication.id, envelope_at(PUBLICATION_EVENT, &publication.id, OCCURRED_AT, &record));
    }
    topic.finish();
    let mut topic = Topic::create(dir, &topics.documents);
    let documents = references.div_ceil(PER_DOCUMENT);
    for d in 0..documents {
        let cited: Vec<String> = (0..PER_DOCUMENT)
            .map(|r| d * PER_DOCUMENT + r)
            .filter(|n| *n < references)
            .map(|n| {
                let publication =
                    if n % 2 == 0 { &indexed[rng.below(indexed.len() as u64) as usize] } else { &outside[n / 2 % outside.len()] };
                render(publication, STYLES[n % STYLES.len()], Noise::default(), &mut rng)
            })
            .collect();
        let id = format!("restart-{d}");
        let payload = json!({
            "id": id,
            "organisation": ORGANISATIONS[d % ORGANISATIONS.len()],
            "title": format!("Synthetic document {d}"),
            "url": null,
            "published_at": format!("{}-{:02}-{:02}", 2015 + d % 10, 1 + d % 12, 1 + d % 28),
            "references": cited,
        });
        topic.append(&id, envelope_at(DOCUMENT_EVENT, &id, OCCURRED_AT, &payload));
    }
    topic.finish();
    publications + documents
}

/// What one run of the job reported.
struct Run {
    /// Wall time from start to exit.
    wall: f64,
    /// The job's own time, from its start-up to caught up.
    job: f64,
    rows: u64,
}

/// Runs the job until caught up; its log goes to the bench's stderr when `RUST_LOG` is set.
fn run_job(config: &Path) -> Run {
    let started = Instant::now();
    let program = std::env::var_os("CITEFLOW_RESTART_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_citeflow").into());
    let mut command = Command::new(program);
    command.arg("--config").arg(config).args(["run", "--until-caught-up"]).current_dir(repository());
    if std::env::var_os("RUST_LOG").is_some() {
        command.stderr(std::process::Stdio::inherit());
    } else {
        command.env("RUST_LOG", "warn");
    }
    let output = command.output().expect("running citeflow");
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "citeflow failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // "caught up in 12.3s: 45 transactions, 678 rows written (0 by reconciliation)"
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let job = words.iter().find_map(|w| w.strip_suffix("s:")?.parse().ok()).expect("the job's time");
    let rows = words.iter().position(|w| *w == "rows").and_then(|at| words[at - 1].parse().ok()).expect("rows written");
    Run { wall, job, rows }
}

/// The largest resident set of the runs so far, in MiB.
fn children_peak_mib() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    usage.ru_maxrss as f64 / 1024.0
}

fn main() {
    let publications = setting("CITEFLOW_RESTART_PUBLICATIONS", 1_000_000);
    let references = setting("CITEFLOW_RESTART_REFERENCES", 100_000);
    let workers = setting("CITEFLOW_RESTART_WORKERS", 2);
    let archive = TempDir::new("restart-archive");
    let started = Instant::now();
    let records = write_archive(&archive.0, publications, references);
    let bytes: u64 = walk(&archive.0);
    println!(
        "archive: {records} messages ({publications} publications, {references} references), {:.0} MiB, written in {:.1}s",
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    let postgres = Postgres::start();
    let url = postgres.database("restart");
    let config_dir = TempDir::new("restart-config");
    let config = config_dir.0.join("citeflow.toml");
    let engine = std::env::var("CITEFLOW_RESTART_ENGINE").unwrap_or_default();
    let text = format!(
        "[engine]\nworkers = {workers}\n{engine}\n\n[postgres]\nurl = \"{url}\"\n\n[source]\nkind = \"archive\"\ndir = \"{}\"\n",
        archive.0.display()
    );
    std::fs::write(&config, text).expect("config");

    let load = run_job(&config);
    println!(
        "first load: {:.1}s ({:.1}s with start-up), {} rows written, {:.0} records/s",
        load.job,
        load.wall,
        load.rows,
        records as f64 / load.job
    );
    let restart = run_job(&config);
    println!(
        "restart: {:.1}s ({:.1}s with start-up), {} rows written, {:.0} records/s; peak memory of the runs {:.0} MiB",
        restart.job,
        restart.wall,
        restart.rows,
        records as f64 / restart.job,
        children_peak_mib()
    );
    println!(
        "restart: publications {publications} references {references} records {records} seconds {:.1} records_per_s {:.0} rows_written {}",
        restart.job,
        records as f64 / restart.job,
        restart.rows
    );
}

/// The bytes of the files under `dir`.
fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("archive dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                walk(&entry.path())
            } else {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
