//! The engine under churn, without a broker: the whole citation job (`citation_job`, every view,
//! the default learned matcher) fed in-process with the soak's churn (`citeflow_jobs::churn`:
//! revisions and deletions over a fixed key set) as fast as it can take it, a few epochs in
//! flight. It measures what the end-to-end soak (`cargo bench --bench soak`) cannot on this
//! machine, where the local broker slows down as its in-memory topics grow: whether the
//! engine's own rate decays while the live records stay the same.
//!
//!     cargo bench -p citeflow-benches --bench churn
//!     CITEFLOW_CHURN_MESSAGES=2000000 cargo bench -p citeflow-benches --bench churn
//!
//! Settings (environment): `CITEFLOW_CHURN_WARMUP` (messages before measuring, 100,000: every
//! key of the set has been written by then), `CITEFLOW_CHURN_MESSAGES` (measured, 300,000),
//! `CITEFLOW_CHURN_WORKERS` (2), `CITEFLOW_CHURN_EPOCH` (messages per epoch, 1,000).
//! Target: the rate over the last tenth of the measured messages at least 0.9 × the rate over
//! the first tenth, and RSS at the end within 10% of RSS at the start. The last line is fixed:
//! `churn: messages N seconds S rate_start X rate_end Y rss_start_mb A rss_end_mb B`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use citeflow_benches::allocator::status;
use citeflow_benches::churn::{job_logic, ChurnFeed};
use citeflow_connectors::kafka::source::SourceEvent;
use citeflow_jobs::dataflow::citation_job;
use timely::dataflow::operators::vec::input::Handle;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::Probe;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Epochs fed ahead of the slowest worker's output frontier.
const IN_FLIGHT: u64 = 4;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident memory of this process in MB.
fn rss_mb() -> f64 {
    status("VmRSS") as f64 / (1024.0 * 1024.0)
}

/// What the measuring worker saw: (messages processed, seconds since the start, RSS in MB).
type Checkpoints = Arc<Mutex<Vec<(usize, f64, f64)>>>;

fn main() {
    let warmup = setting("CITEFLOW_CHURN_WARMUP", 100_000);
    let measured = setting("CITEFLOW_CHURN_MESSAGES", 300_000);
    let workers = setting("CITEFLOW_CHURN_WORKERS", 2);
    let per_epoch = setting("CITEFLOW_CHURN_EPOCH", 1_000).max(1);
    let logic = job_logic();
    println!("churn: {warmup} messages of warm-up, then {measured} measured; {workers} workers, {per_epoch} messages per epoch");

    let checkpoints: Checkpoints = Arc::default();
    let report = checkpoints.clone();
    let total = warmup + measured;
    let started = Instant::now();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = Handle::<u64, SourceEvent>::new();
        let logic = logic.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let outputs = citation_job(scope.input_from(&mut input), logic).expect("the matcher loads");
            outputs.views.inner.probe().0
        });
        // Every worker generates the same messages and feeds its share (by position), with
        // per-partition offsets as a broker would assign them.
        let mut feed = ChurnFeed::new();
        let mut epoch = 0;
        for n in 0..total {
            let message = feed.next_message();
            if n % peers == index {
                input.send(SourceEvent::Message(message));
            }
            if (n + 1) % per_epoch == 0 || n + 1 == total {
                epoch += 1;
                input.advance_to(epoch);
                worker.step_while(|| probe.less_than(&epoch.saturating_sub(IN_FLIGHT)));
                let done = n + 1;
                if index == 0 && done >= warmup && (done - warmup).is_multiple_of((measured / 10).max(1)) {
                    worker.step_while(|| probe.less_than(&epoch));
                    report.lock().expect("checkpoints").push((done - warmup, started.elapsed().as_secs_f64(), rss_mb()));
                }
            }
        }
        input.close();
        worker.step_while(|| !probe.done());
    })
    .expect("timely");

    let checkpoints = checkpoints.lock().expect("checkpoints").clone();
    println!("{:>10} {:>10} {:>12} {:>10}", "messages", "seconds", "messages_per_s", "rss_mb");
    for pair in checkpoints.windows(2) {
        let ((_, t0, _), (n1, t1, rss)) = (pair[0], pair[1]);
        println!("{n1:>10} {t1:>10.1} {:>12.0} {rss:>10.0}", (measured / 10) as f64 / (t1 - t0).max(1e-3));
    }
    let rate = |pair: &[(usize, f64, f64)]| (pair[1].0 - pair[0].0) as f64 / (pair[1].1 - pair[0].1).max(1e-3);
    let (first, last) = (&checkpoints[..2], &checkpoints[checkpoints.len() - 2..]);
    let (rate_start, rate_end) = (rate(first), rate(last));
    let (rss_start, rss_end) = (first[0].2, last[1].2);
    let seconds = last[1].1 - first[0].1;
    let mut missed = Vec::new();
    if rate_end < 0.9 * rate_start {
        missed.push(format!("rate fell {rate_start:.0} -> {rate_end:.0}/s"));
    }
    if (rss_end - rss_start).abs() > 0.1 * rss_start {
        missed.push(format!("RSS moved {rss_start:.0} -> {rss_end:.0} MB"));
    }
    match missed.is_empty() {
        true => println!("churn: targets met"),
        false => println!("churn: targets missed: {}", missed.join("; ")),
    }
    println!(
        "churn: messages {measured} seconds {seconds:.0} rate_start {rate_start:.0} rate_end {rate_end:.0} rss_start_mb {rss_start:.0} rss_end_mb {rss_end:.0}"
    );
}
