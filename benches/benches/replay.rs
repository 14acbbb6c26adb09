//! What a restart's hydration leaves in memory. A restarted job replays every version its topics
//! hold; the same live records loaded once are only the last version of each key. The state the
//! two build is the same, so the memory they end with should be too (issue 15's target: within
//! 10%). This bench measures both without a broker: the whole citation job (`citation_job`, the
//! default learned matcher) fed the soak's churn in process.
//!
//! It runs itself twice, each time in a fresh process: `history` feeds `CITEFLOW_REPLAY_MESSAGES`
//! churn messages (400,000) as a restart's hydration reads them — the previous run having
//! committed the end of them, so they are all a replay (`JobLogic::replay_to`) — with the
//! sources' positions after every epoch, `CITEFLOW_REPLAY_EPOCH` messages an epoch
//! with `CITEFLOW_REPLAY_IN_FLIGHT` epochs unfinished (by default the epochs of a hydration
//! on 2 workers under the engine's defaults: `engine.max_records_per_epoch` and
//! `engine.max_in_flight_records`);
//! `final` feeds only the last message of each key of the same churn, the same way. Each then
//! idles `CITEFLOW_REPLAY_SETTLE` seconds (12; merging, and jemalloc returning freed pages) and
//! reports its memory (`citeflow_benches::allocator`).
//!
//!     cargo bench -p citeflow-benches --bench replay
//!
//! The last line is fixed: `replay: messages N rss_history_mb A rss_final_mb B ratio R`.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use citeflow_benches::allocator::{memory, Memory};
use citeflow_benches::churn::{job_logic, ChurnFeed};
use citeflow_connectors::kafka::source::{KafkaMessage, SourceEvent};
use citeflow_engine::config::EngineConfig;
use citeflow_engine::sink::{HydrationTarget, SourcePosition};
use citeflow_engine::worker::timely_config;
use citeflow_jobs::dataflow::citation_job;
use timely::dataflow::operators::vec::input::Handle;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::Probe;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Set in the child processes: which input to feed.
const MODE: &str = "CITEFLOW_REPLAY_MODE";
/// Workers, as in the soak's job.
const WORKERS: usize = 2;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Messages per epoch of a hydration with the engine's defaults (each worker's source closes an
/// epoch at `max_records_per_epoch` records, or sooner when `max_in_flight_records` are
/// unfinished), and how many such epochs can be unfinished at once.
fn hydration_epochs() -> (usize, u64) {
    let engine = EngineConfig::default();
    let per_source = engine.max_records_per_epoch.min(engine.max_in_flight_records);
    (WORKERS * per_source, engine.max_in_flight_records.div_ceil(per_source) as u64)
}

/// The messages a worker feeds, with their position in the churn: every message, or only the
/// last of each key.
fn input(messages: usize, last_only: bool) -> Box<dyn Iterator<Item = (usize, KafkaMessage)>> {
    let mut feed = ChurnFeed::new();
    let all = (0..messages).map(move |n| (n, feed.next_message()));
    if !last_only {
        return Box::new(all);
    }
    /// A message's topic and key.
    type Key = (String, Option<Vec<u8>>);
    let mut last: HashMap<Key, (usize, KafkaMessage)> = HashMap::new();
    for (n, message) in all {
        last.insert((message.topic.clone(), message.key.clone()), (n, message));
    }
    let mut kept: Vec<_> = last.into_values().collect();
    kept.sort_by_key(|(n, _)| *n);
    Box::new(kept.into_iter())
}

/// Sends the positions the messages fed since the last call brought their partitions to.
fn send_positions(input: &mut Handle<u64, SourceEvent>, moved: &mut BTreeMap<(String, i32), i64>) {
    for ((topic, partition), next_offset) in std::mem::take(moved) {
        input.send(SourceEvent::Position(SourcePosition { topic, partition, next_offset }));
    }
}

/// Where the first `messages` of the churn leave every partition: a previous run's commit.
fn end_positions(messages: usize) -> HydrationTarget {
    input(messages, false).map(|(_, message)| ((message.topic, message.partition), message.offset + 1)).collect()
}

/// Feeds one mode's input to the job, settles, and prints its memory as one `child:` line.
fn child(last_only: bool) {
    let messages = setting("CITEFLOW_REPLAY_MESSAGES", 400_000);
    let (epoch_size, epochs_in_flight) = hydration_epochs();
    let per_epoch = setting("CITEFLOW_REPLAY_EPOCH", epoch_size).max(1);
    let in_flight = setting("CITEFLOW_REPLAY_IN_FLIGHT", epochs_in_flight as usize).max(1) as u64;
    let settle = Duration::from_secs(setting("CITEFLOW_REPLAY_SETTLE", 12) as u64);
    let mut logic = job_logic();
    if !last_only {
        logic.replay_to = end_positions(messages);
    }
    let started = Instant::now();
    let config = EngineConfig { workers: WORKERS, ..EngineConfig::default() };
    timely::execute(timely_config(&config), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input_handle = Handle::<u64, SourceEvent>::new();
        let logic = logic.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let outputs = citation_job(scope.input_from(&mut input_handle), logic).expect("the matcher loads");
            outputs.views.inner.probe().0
        });
        let mut epoch = 0;
        let mut fed = 0;
        let mut moved = BTreeMap::new();
        for (n, message) in input(messages, last_only) {
            if index == 0 {
                moved.insert((message.topic.clone(), message.partition), message.offset + 1);
            }
            if n % peers == index {
                input_handle.send(SourceEvent::Message(message));
            }
            fed += 1;
            if fed % per_epoch == 0 {
                send_positions(&mut input_handle, &mut moved);
                epoch += 1;
                input_handle.advance_to(epoch);
                worker.step_while(|| probe.less_than(&epoch.saturating_sub(in_flight)));
            }
        }
        send_positions(&mut input_handle, &mut moved);
        epoch += 1;
        input_handle.advance_to(epoch);
        worker.step_while(|| probe.less_than(&epoch));
        let fed_in = started.elapsed();
        let until = Instant::now() + settle;
        while Instant::now() < until {
            worker.step_or_park(Some(Duration::from_millis(100)));
        }
        if index == 0 {
            let m = memory();
            println!("child: fed {fed} messages in {:.1} s; {}", fed_in.as_secs_f64(), m.describe());
            println!("child-figures: {} {} {} {} {} {}", m.rss, m.peak, m.allocated, m.active, m.small, m.slabs);
        }
    })
    .expect("timely");
}

/// Runs one mode in a fresh process and returns its memory.
fn run(mode: &str) -> Memory {
    let output = Command::new(std::env::current_exe().expect("this bench")).env(MODE, mode).output().expect("the bench runs itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{mode}: {}\n{}", stdout, String::from_utf8_lossy(&output.stderr));
    for line in stdout.lines().filter(|l| l.starts_with("child:")) {
        println!("{mode}: {}", line.trim_start_matches("child: "));
    }
    let figures: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("child-figures: "))
        .map(|l| l.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    match figures[..] {
        [rss, peak, allocated, active, small, slabs] => Memory { rss, peak, allocated, active, small, slabs },
        _ => panic!("{mode}: no figures in {stdout}"),
    }
}

fn main() {
    match std::env::var(MODE).as_deref() {
        Ok("history") => return child(false),
        Ok("final") => return child(true),
        _ => {}
    }
    let messages = setting("CITEFLOW_REPLAY_MESSAGES", 400_000);
    let history = run("history");
    let last = run("final");
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let ratio = history.rss as f64 / last.rss.max(1) as f64;
    match ratio <= 1.1 {
        true => println!("replay: target met (history within 10% of the final versions loaded once)"),
        false => println!("replay: target missed: history holds {:.0}% more", (ratio - 1.0) * 100.0),
    }
    println!("replay: messages {messages} rss_history_mb {:.0} rss_final_mb {:.0} ratio {ratio:.2}", mb(history.rss), mb(last.rss));
}
