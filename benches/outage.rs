//! A PostgreSQL outage under load: the job's memory while its database is down.
//!
//! A throwaway PostgreSQL cluster and tansu broker; the sample loaded and caught up; then a
//! steady producer of revisions and deletions (`citeflow_jobs::churn`). After a warm-up,
//! PostgreSQL is stopped for `CITEFLOW_OUTAGE_SECONDS` (60) while the producer goes on, then
//! started again. The job's RSS and consumer lag are sampled throughout: with flow control
//! (`engine.max_in_flight_records`), the sources pause once the committer cannot commit, so
//! the backlog waits in Kafka (the lag grows) and memory stays flat; after the outage the job
//! catches up and the views equal a from-scratch run's.
//!
//!     cargo bench --bench outage
//!
//! Settings (environment): `CITEFLOW_OUTAGE_SECONDS` (60), `CITEFLOW_OUTAGE_WARMUP` (60),
//! `CITEFLOW_OUTAGE_RATE` (messages/s, 400), `CITEFLOW_OUTAGE_INTERVAL` (seconds between samples, 5).
//!
//! Target: the largest RSS during the outage within 10% of the RSS just before it. The last
//! line is fixed: `outage: seconds S rss_before_mb A rss_max_mb B rss_after_mb C lag_max L`.

#[path = "live/mod.rs"]
mod live;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use citeflow_jobs::churn::{churn, ChurnSettings};
use citeflow_jobs::config::TopicsConfig;
use live::{setting, Job, Sample};
use support::{assert_equals_from_scratch, citeflow_ok, sample, test_kafka, wait_caught_up, Db, Setup};

fn main() {
    let outage = setting("CITEFLOW_OUTAGE_SECONDS", 60);
    let warmup = setting("CITEFLOW_OUTAGE_WARMUP", 60);
    let rate = setting("CITEFLOW_OUTAGE_RATE", 400) as f64;
    let interval = setting("CITEFLOW_OUTAGE_INTERVAL", 5).max(1);

    let setup = Setup::new("outage");
    citeflow_ok(&setup.config, &["load", "--data", sample("").to_str().expect("path")]);
    let job = Job::start(&setup);
    let db = Db::connect(&setup.url);
    wait_caught_up(&db, &setup.broker);

    let kafka = test_kafka(&setup.broker);
    let topics = TopicsConfig::default();
    let duration = Duration::from_secs(warmup + outage + warmup);
    let producer =
        std::thread::spawn(move || churn(&kafka, &topics, ChurnSettings { data: sample(""), rate, duration, ..ChurnSettings::default() }));
    let started = Instant::now();
    println!("outage: churn at {rate} messages/s; PostgreSQL stops after {warmup} s for {outage} s");
    println!("{:>8} {:>10} {:>10} {:>12}", "seconds", "rss_mb", "lag", "phase");
    let mut phase = "before";
    let (mut rss_before, mut rss_max, mut lag_max) = (0.0_f64, 0.0_f64, 0_u64);
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(interval));
        let sample = Sample::of(&job, &setup.broker, started);
        let at = sample.at as u64;
        if phase == "before" && at >= warmup {
            rss_before = sample.rss_mb;
            setup.postgres.stop();
            phase = "outage";
        } else if phase == "outage" {
            rss_max = rss_max.max(sample.rss_mb);
            lag_max = lag_max.max(sample.lag);
            if at >= warmup + outage {
                setup.postgres.launch();
                phase = "after";
            }
        }
        println!("{:>8} {:>10.0} {:>10} {:>12}", at, sample.rss_mb, sample.lag, phase);
    }
    producer.join().expect("producer thread").expect("producing");
    let db = Db::connect(&setup.url);
    wait_caught_up(&db, &setup.broker);
    let rss_after = job.rss_mb();
    drop(job);
    assert_equals_from_scratch(&setup.postgres, &setup.broker, &db, "scratch", "outage bench");
    println!("outage: after the outage the job caught up and its views equal a from-scratch run's");
    let verdict = if rss_max <= 1.1 * rss_before { "target met" } else { "target missed" };
    println!("outage: {verdict}: RSS {rss_before:.0} MB before, at most {rss_max:.0} MB during, lag up to {lag_max} messages");
    println!(
        "outage: seconds {outage} rss_before_mb {rss_before:.0} rss_max_mb {rss_max:.0} rss_after_mb {rss_after:.0} lag_max {lag_max}"
    );
}
