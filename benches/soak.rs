//! Soak: the job under steady churn for minutes (or hours, by hand), as a long-running
//! deployment sees it. A throwaway PostgreSQL cluster and tansu broker; the sample loaded and
//! caught up; then a steady producer of revisions and deletions over a fixed key set
//! (`citeflow_jobs::churn`: 70% documents over 5,000 ids, 30% publications over 5,000 PMIDs,
//! 5% deletions). The job's RSS, read rate, CPU and consumer lag (and the broker's CPU, since it
//! shares the machine and can be what limits the rate) are sampled through the run; then it idles,
//! is restarted over the churned topics, and the same live records are loaded once into a
//! fresh broker and database to compare memory.
//!
//!     cargo bench --bench soak
//!     CITEFLOW_SOAK_SECONDS=3600 cargo bench --bench soak   # the hour
//!
//! Settings (environment): `CITEFLOW_SOAK_SECONDS` (churn after warm-up, default 180),
//! `CITEFLOW_SOAK_WARMUP` (180: touching each of the 5,000 document ids at least once takes
//! about 150 s of churn, and until then the live set still grows), `CITEFLOW_SOAK_RATE`
//! (messages/s, 400: what the job sustains on a 2-core machine that also runs the broker),
//! `CITEFLOW_SOAK_INTERVAL` (seconds between samples, 10), `CITEFLOW_SOAK_IDLE` (60).
//!
//! Targets: RSS at the end of the churn within 10% of RSS at its start (after warm-up); the
//! read rate over the last minute of the churn at least 0.9 × the rate over its first minute
//! (a third of the churn when it is shorter); a restart over the churned topics, once ready and
//! idle for `CITEFLOW_SOAK_IDLE` seconds, within 10% of the RSS of the same live records loaded
//! once into a fresh job and measured the same way. The last line is fixed:
//! `soak: messages N seconds S rss_start_mb A rss_end_mb B rate_start X rate_end Y`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use citeflow_jobs::churn::{churn, ChurnSettings};
use citeflow_jobs::config::TopicsConfig;
use support::{citeflow, citeflow_ok, free_port, read_topic, sample, test_kafka, test_producer, wait_caught_up, Broker, Db, Setup};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The job as a child process, with its metrics endpoint on a known port.
struct Job {
    child: Child,
    metrics: String,
}

impl Job {
    fn start(setup: &Setup) -> Self {
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = citeflow(&setup.config, &["run"])
            .env("CITEFLOW_METRICS_ADDR", &metrics)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the job");
        let job = Job { child, metrics };
        let deadline = Instant::now() + Duration::from_secs(600);
        while !job.get("/ready").starts_with("HTTP/1.1 200") {
            assert!(Instant::now() < deadline, "the job did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        job
    }

    fn get(&self, path: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(&self.metrics) else { return String::new() };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: citeflow\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }

    /// The samples of metric `name` (one per label set), as (labels, value).
    fn metric(&self, name: &str) -> Vec<(String, f64)> {
        self.get("/metrics")
            .lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
            .filter_map(|rest| {
                let (labels, value) = rest.rsplit_once("} ")?;
                Some((labels.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    fn metric_sum(&self, name: &str) -> u64 {
        self.metric(name).iter().map(|(_, value)| value).sum::<f64>() as u64
    }

    /// Messages read so far, over every topic.
    fn records_read(&self) -> u64 {
        self.metric_sum("citeflow_records_read_total")
    }

    /// Consumer lag over every partition: messages in the broker the job has not read yet.
    fn lag(&self) -> u64 {
        self.metric_sum("citeflow_consumer_lag")
    }

    /// Updates held by all arrangements, and the largest few.
    fn arrangements(&self) -> String {
        let mut held = self.metric("citeflow_arrangement_records");
        held.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = held.iter().map(|(_, value)| value).sum();
        let largest: Vec<String> = held.iter().take(4).map(|(labels, value)| format!("{value:.0} ({labels})")).collect();
        format!("{total:.0} updates in arrangements; largest {}", largest.join(", "))
    }

    /// Where the resident memory is: jemalloc's view of it against the process's RSS.
    fn memory(&self) -> String {
        let bytes = self.metric("citeflow_allocator_bytes");
        let kind = |name: &str| {
            let label = format!("kind=\"{name}\"");
            bytes.iter().find(|(labels, _)| *labels == label).map_or(0.0, |(_, value)| value / 1048576.0)
        };
        let rss = self.rss_mb();
        format!(
            "RSS {rss:.0} MB: jemalloc allocated {:.0}, active {:.0}, resident {:.0}; outside jemalloc {:.0}",
            kind("allocated"),
            kind("active"),
            kind("resident"),
            rss - kind("resident")
        )
    }

    fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory in MB.
    fn rss_mb(&self) -> f64 {
        self.proc_status("VmRSS:") as f64 / 1024.0
    }

    /// CPU seconds used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }
}

/// A job is never left running: not when the benchmark ends, nor when it fails.
impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds process `pid` has used so far (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// One observation of the job (and of the broker, which shares the machine).
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: f64,
    rss_mb: f64,
    read: u64,
    lag: u64,
    cpu: f64,
    broker_cpu: f64,
}

impl Sample {
    fn of(job: &Job, broker: &Broker, started: Instant) -> Self {
        Sample {
            at: started.elapsed().as_secs_f64(),
            rss_mb: job.rss_mb(),
            read: job.records_read(),
            lag: job.lag(),
            cpu: job.cpu_seconds(),
            broker_cpu: cpu_seconds(broker.pid()),
        }
    }

    /// The broker's CPU use since `earlier`, in % of one core.
    fn broker_cpu_since(&self, earlier: &Sample) -> f64 {
        100.0 * (self.broker_cpu - earlier.broker_cpu) / (self.at - earlier.at).max(1e-3)
    }

    /// Messages read per second and CPU per message (ms) since `earlier`.
    fn since(&self, earlier: &Sample) -> (f64, f64) {
        let seconds = (self.at - earlier.at).max(1e-3);
        let read = self.read.saturating_sub(earlier.read);
        (read as f64 / seconds, 1000.0 * (self.cpu - earlier.cpu) / (read.max(1) as f64))
    }
}

/// Waits until the job is caught up and its memory has settled (two samples a few seconds
/// apart within 1%), and returns its RSS.
fn settled_rss(job: &Job) -> f64 {
    let mut last = job.rss_mb();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(3));
        let now = job.rss_mb();
        if (now - last).abs() <= 0.01 * last {
            return now;
        }
        last = now;
    }
    last
}

/// RSS after `idle` seconds more without input: what a job holds once it has settled (both
/// sides of the restart comparison are measured so).
fn idle_rss(job: &Job, idle: u64) -> f64 {
    std::thread::sleep(Duration::from_secs(idle));
    job.rss_mb()
}

/// The latest value of every key of `topic` that is not deleted.
fn live_records(setup: &Setup, topic: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut latest = BTreeMap::new();
    let mut messages = read_topic(&setup.broker, topic);
    messages.sort_by_key(|m| (m.partition, m.offset));
    for message in messages {
        let Some(key) = message.key else { continue };
        match message.value {
            Some(value) => latest.insert(key, value),
            None => latest.remove(&key),
        };
    }
    latest
}

fn main() {
    let seconds = setting("CITEFLOW_SOAK_SECONDS", 180);
    let warmup = setting("CITEFLOW_SOAK_WARMUP", 180);
    let rate = setting("CITEFLOW_SOAK_RATE", 400) as f64;
    let interval = setting("CITEFLOW_SOAK_INTERVAL", 10).max(1);
    let idle = setting("CITEFLOW_SOAK_IDLE", 60);
    let topics = TopicsConfig::default();

    let setup = Setup::new("soak");
    citeflow_ok(&setup.config, &["load", "--data", sample("").to_str().expect("path")]);
    let job = Job::start(&setup);
    let db = Db::connect(&setup.url);
    wait_caught_up(&db, &setup.broker);
    println!("soak: sample loaded and caught up, RSS {:.0} MB", settled_rss(&job));

    let kafka = test_kafka(&setup.broker);
    // The producer runs two intervals past the sampling, so that no sampled interval holds its end.
    let churn_settings = ChurnSettings {
        data: sample(""),
        rate,
        duration: Duration::from_secs(warmup + seconds + 2 * interval),
        ..ChurnSettings::default()
    };
    let producer_topics = topics.clone();
    let producer = std::thread::spawn(move || churn(&kafka, &producer_topics, churn_settings));
    let started = Instant::now();
    let mut samples = vec![Sample::of(&job, &setup.broker, started)];
    println!("soak: churn at {rate} messages/s: {warmup} s warm-up, then {seconds} s");
    println!("{:>8} {:>10} {:>12} {:>14} {:>8} {:>14}", "seconds", "rss_mb", "read_per_s", "cpu_ms_per_msg", "lag", "broker_cpu_pct");
    while started.elapsed().as_secs() < warmup + seconds {
        std::thread::sleep(Duration::from_secs(interval));
        let sample = Sample::of(&job, &setup.broker, started);
        let (rate, cpu) = sample.since(samples.last().expect("a sample"));
        let broker_cpu = sample.broker_cpu_since(samples.last().expect("a sample"));
        println!("{:>8.0} {:>10.0} {:>12.0} {:>14.3} {:>8} {:>14.0}", sample.at, sample.rss_mb, rate, cpu, sample.lag, broker_cpu);
        samples.push(sample);
    }
    // A broker that stops taking messages ends the churn early, not the measurement.
    let produced = match producer.join().expect("producer thread") {
        Ok(report) => report.total(),
        Err(error) => {
            println!("soak: the producer stopped: {error:#}; counting what the job read");
            samples.last().map_or(0, |s| s.read - samples[0].read)
        }
    };
    // Rates over a window (a minute, or a third of the churn when shorter) at each end of the
    // churn after warm-up: single intervals are as noisy as the producer's pacing.
    let after_warmup: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup as f64 - 0.5).collect();
    let window = (seconds as f64 / 3.0).clamp(interval as f64, 60.0);
    let (first, last) = (after_warmup[0], after_warmup[after_warmup.len() - 1]);
    let start_window_end = after_warmup.iter().find(|s| s.at >= first.at + window - 0.5).copied().unwrap_or(last);
    let end_window_start = after_warmup.iter().rev().find(|s| s.at <= last.at - window + 0.5).copied().unwrap_or(first);
    let (rate_start, cpu_start) = start_window_end.since(first);
    let (rate_end, cpu_end) = last.since(end_window_start);
    let (rss_start, rss_end) = (first.rss_mb, last.rss_mb);

    wait_caught_up(&db, &setup.broker);
    let idle_start = Sample::of(&job, &setup.broker, started);
    std::thread::sleep(Duration::from_secs(idle));
    let idle_end = Sample::of(&job, &setup.broker, started);
    let idle_cpu = 100.0 * (idle_end.cpu - idle_start.cpu) / (idle_end.at - idle_start.at).max(1e-3);
    println!(
        "soak: idle {idle} s: RSS {:.0} -> {:.0} MB, CPU {idle_cpu:.2}% of one core (the broker {:.2}%)",
        idle_start.rss_mb,
        idle_end.rss_mb,
        idle_end.broker_cpu_since(&idle_start)
    );
    println!("soak: idle: {}", job.memory());

    drop(job);
    let restarted = Instant::now();
    let job = Job::start(&setup);
    wait_caught_up(&db, &setup.broker);
    let ready_in = restarted.elapsed().as_secs_f64();
    let (ready_rss, restart_rss) = (settled_rss(&job), idle_rss(&job, idle));
    println!(
        "soak: restart over the churned topics: ready in {ready_in:.1} s, RSS {ready_rss:.0} MB, after {idle} s idle {restart_rss:.0} MB"
    );
    println!("soak: restart: {}", job.arrangements());
    println!("soak: restart: {}", job.memory());
    drop(job);

    let fresh = Setup::new("fresh");
    let mut producer = test_producer(&fresh.broker);
    let mut live = 0;
    for topic in [&topics.publications, &topics.documents] {
        for (key, value) in live_records(&setup, topic) {
            producer
                .send(citeflow_connectors::kafka::producer::Outgoing {
                    topic,
                    key: Some(&key),
                    value: Some(&value),
                    headers: None,
                    partition: None,
                })
                .expect("producing");
            live += 1;
        }
    }
    producer.flush().expect("flushing");
    let job = Job::start(&fresh);
    wait_caught_up(&Db::connect(&fresh.url), &fresh.broker);
    let (fresh_ready_rss, fresh_rss) = (settled_rss(&job), idle_rss(&job, idle));
    println!("soak: loaded once: {}", job.arrangements());
    println!("soak: loaded once: {}", job.memory());
    drop(job);
    println!("soak: the same {live} live records loaded once: RSS {fresh_ready_rss:.0} MB, after {idle} s idle {fresh_rss:.0} MB");

    let mut missed = Vec::new();
    if (rss_end - rss_start).abs() > 0.1 * rss_start {
        missed.push(format!("RSS moved {rss_start:.0} -> {rss_end:.0} MB"));
    }
    // The job can only read what the producer got into the broker: with (almost) no lag at the
    // end, a lower read rate is the broker's or the producer's, not the job's.
    let kept_up = (last.lag as f64) <= rate_start;
    match (rate_end < 0.9 * rate_start, kept_up) {
        (true, false) => missed.push(format!("rate fell {rate_start:.0} -> {rate_end:.0}/s with {} messages of lag", last.lag)),
        (true, true) => println!(
            "soak: the read rate fell {rate_start:.0} -> {rate_end:.0}/s with the job's lag at {}: the broker and producer set it, not the job (see the broker's CPU; the engine alone: cargo bench -p citeflow-benches --bench churn)",
            last.lag
        ),
        (false, _) => {}
    }
    if (restart_rss - fresh_rss).abs() > 0.1 * fresh_rss {
        missed.push(format!("restart RSS {restart_rss:.0} MB vs {fresh_rss:.0} MB loaded once"));
    }
    println!("soak: CPU per message {cpu_start:.3} ms at the start, {cpu_end:.3} ms at the end");
    match missed.is_empty() {
        true => println!("soak: targets met"),
        false => println!("soak: targets missed: {}", missed.join("; ")),
    }
    println!(
        "soak: messages {} seconds {seconds} rss_start_mb {rss_start:.0} rss_end_mb {rss_end:.0} rate_start {rate_start:.0} rate_end {rate_end:.0}",
        produced
    );
}
