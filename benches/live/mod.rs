//! What the live benchmarks (`soak`, `outage`) observe of a running job: the job as a child
//! process with its metrics endpoint, its RSS, CPU, read rate and consumer lag, and the broker's
//! CPU (it shares the machine and can be what limits the rate).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{citeflow, free_port, Broker, Setup};

pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The job as a child process, with its metrics endpoint on a known port.
pub struct Job {
    child: Child,
    metrics: String,
}

impl Job {
    pub fn start(setup: &Setup) -> Self {
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

    pub fn get(&self, path: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(&self.metrics) else { return String::new() };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: citeflow\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }

    /// The samples of metric `name` (one per label set), as (labels, value).
    pub fn metric(&self, name: &str) -> Vec<(String, f64)> {
        self.get("/metrics")
            .lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
            .filter_map(|rest| {
                let (labels, value) = rest.rsplit_once("} ")?;
                Some((labels.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    pub fn metric_sum(&self, name: &str) -> u64 {
        self.metric(name).iter().map(|(_, value)| value).sum::<f64>() as u64
    }

    /// Messages read so far, over every topic.
    pub fn records_read(&self) -> u64 {
        self.metric_sum("citeflow_records_read_total")
    }

    /// Consumer lag over every partition: messages in the broker the job has not read yet.
    pub fn lag(&self) -> u64 {
        self.metric_sum("citeflow_consumer_lag")
    }

    /// Updates held by all arrangements, and the largest few.
    pub fn arrangements(&self) -> String {
        let mut held = self.metric("citeflow_arrangement_records");
        held.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = held.iter().map(|(_, value)| value).sum();
        let largest: Vec<String> = held.iter().take(4).map(|(labels, value)| format!("{value:.0} ({labels})")).collect();
        format!("{total:.0} updates in arrangements; largest {}", largest.join(", "))
    }

    /// Where the resident memory is: jemalloc's view of it against the process's RSS.
    pub fn memory(&self) -> String {
        let bytes = self.metric("citeflow_allocator_bytes");
        let kind = |name: &str| {
            let label = format!("kind=\"{name}\"");
            bytes.iter().find(|(labels, _)| *labels == label).map_or(0.0, |(_, value)| value / 1048576.0)
        };
        let rss = self.rss_mb();
        format!(
            "RSS {rss:.0} MB: jemalloc allocated {:.0}, active {:.0} (of which unused in slabs {:.0}), resident {:.0}; outside jemalloc {:.0}",
            kind("allocated"),
            kind("active"),
            kind("fragmented"),
            kind("resident"),
            rss - kind("resident")
        )
    }

    pub fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory in MB.
    pub fn rss_mb(&self) -> f64 {
        self.proc_status("VmRSS:") as f64 / 1024.0
    }

    /// CPU seconds used so far (user + system).
    pub fn cpu_seconds(&self) -> f64 {
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
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / clock_ticks()
}

pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// One observation of the job (and of the broker, which shares the machine).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: f64,
    pub rss_mb: f64,
    pub read: u64,
    pub lag: u64,
    pub cpu: f64,
    pub broker_cpu: f64,
}

impl Sample {
    pub fn of(job: &Job, broker: &Broker, started: Instant) -> Self {
        Sample {
            at: started.elapsed().as_secs_f64(),
            rss_mb: job.rss_mb(),
            read: job.records_read(),
            lag: job.lag(),
            cpu: job.cpu_seconds(),
            broker_cpu: cpu_seconds(broker.pid()),
        }
    }

    /// The job's CPU use since `earlier`, in % of one core.
    pub fn cpu_since(&self, earlier: &Sample) -> f64 {
        100.0 * (self.cpu - earlier.cpu) / (self.at - earlier.at).max(1e-3)
    }

    /// The broker's CPU use since `earlier`, in % of one core.
    pub fn broker_cpu_since(&self, earlier: &Sample) -> f64 {
        100.0 * (self.broker_cpu - earlier.broker_cpu) / (self.at - earlier.at).max(1e-3)
    }

    /// Messages read per second and CPU per message (ms) since `earlier`.
    pub fn since(&self, earlier: &Sample) -> (f64, f64) {
        let seconds = (self.at - earlier.at).max(1e-3);
        let read = self.read.saturating_sub(earlier.read);
        (read as f64 / seconds, 1000.0 * (self.cpu - earlier.cpu) / (read.max(1) as f64))
    }
}

/// Waits until the job is caught up and its memory has settled (two samples a few seconds
/// apart within 1%), and returns its RSS.
pub fn settled_rss(job: &Job) -> f64 {
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
pub fn idle_rss(job: &Job, idle: u64) -> f64 {
    std::thread::sleep(Duration::from_secs(idle));
    job.rss_mb()
}
