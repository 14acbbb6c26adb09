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
//! `CITEFLOW_SOAK_INTERVAL` (seconds between samples, 10), `CITEFLOW_SOAK_IDLE` (seconds the
//! job idles after the churn, sampled every interval, 60), `CITEFLOW_SOAK_SETTLE` (seconds both
//! sides of the restart comparison idle before their RSS is taken, 60).
//!
//! Targets: RSS at the end of the churn within 10% of RSS at its start (after warm-up), and the
//! read rate over the last minute of the churn at least 0.9 × the rate over its first minute
//! (a third of the churn when it is shorter; each RSS is the mean of the samples over the same
//! window as its rate); a restart over the churned topics, once ready and idle for
//! `CITEFLOW_SOAK_SETTLE` seconds, within 10% of the RSS of the same live records loaded once
//! into a fresh job and measured the same way. The last line is fixed:
//! `soak: messages N seconds S rss_start_mb A rss_end_mb B rate_start X rate_end Y`.

#[path = "live/mod.rs"]
mod live;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use citeflow_jobs::churn::{churn, ChurnSettings};
use citeflow_jobs::config::TopicsConfig;
use live::{idle_rss, setting, settled_rss, Job, Sample};
use support::{citeflow_ok, read_topic, sample, test_kafka, test_producer, wait_caught_up, Db, Setup};

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
    let settle = setting("CITEFLOW_SOAK_SETTLE", 60);
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
    // Rates and RSS over a window (a minute, or a third of the churn when shorter) at each end
    // of the churn after warm-up: single intervals are as noisy as the producer's pacing, and a
    // single RSS sample lands anywhere on the rise and fall of an epoch's allocations.
    let after_warmup: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup as f64 - 0.5).collect();
    let window = (seconds as f64 / 3.0).clamp(interval as f64, 60.0);
    let (first, last) = (after_warmup[0], after_warmup[after_warmup.len() - 1]);
    let start_window_end = after_warmup.iter().find(|s| s.at >= first.at + window - 0.5).copied().unwrap_or(last);
    let end_window_start = after_warmup.iter().rev().find(|s| s.at <= last.at - window + 0.5).copied().unwrap_or(first);
    let (rate_start, cpu_start) = start_window_end.since(first);
    let (rate_end, cpu_end) = last.since(end_window_start);
    let mean_rss = |window: &[&Sample]| window.iter().map(|s| s.rss_mb).sum::<f64>() / window.len().max(1) as f64;
    let rss_start = mean_rss(&after_warmup.iter().copied().filter(|s| s.at <= start_window_end.at).collect::<Vec<_>>());
    let rss_end = mean_rss(&after_warmup.iter().copied().filter(|s| s.at >= end_window_start.at).collect::<Vec<_>>());

    wait_caught_up(&db, &setup.broker);
    let idle_start = Sample::of(&job, &setup.broker, started);
    println!("soak: idle for {idle} s");
    println!("{:>8} {:>10} {:>14} {:>14}", "seconds", "rss_mb", "cpu_pct", "broker_cpu_pct");
    let mut idle_end = idle_start;
    while idle_end.at - idle_start.at < idle as f64 - 0.5 {
        std::thread::sleep(Duration::from_secs(interval.min(idle)));
        let sample = Sample::of(&job, &setup.broker, started);
        let (cpu, broker_cpu) = (sample.cpu_since(&idle_end), sample.broker_cpu_since(&idle_end));
        println!("{:>8.0} {:>10.0} {:>14.2} {:>14.2}", sample.at - idle_start.at, sample.rss_mb, cpu, broker_cpu);
        idle_end = sample;
    }
    let idle_cpu = idle_end.cpu_since(&idle_start);
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
    let (ready_rss, restart_rss) = (settled_rss(&job), idle_rss(&job, settle));
    println!(
        "soak: restart over the churned topics: ready in {ready_in:.1} s, RSS {ready_rss:.0} MB, after {settle} s idle {restart_rss:.0} MB"
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
    let (fresh_ready_rss, fresh_rss) = (settled_rss(&job), idle_rss(&job, settle));
    println!("soak: loaded once: {}", job.arrangements());
    println!("soak: loaded once: {}", job.memory());
    drop(job);
    println!("soak: the same {live} live records loaded once: RSS {fresh_ready_rss:.0} MB, after {settle} s idle {fresh_rss:.0} MB");

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
