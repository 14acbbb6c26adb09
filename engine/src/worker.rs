//! Worker layout: how many timely workers run in this process and in the cluster, and what
//! the first worker tells every other before the job's dataflow is built. (How Kafka
//! partitions are assigned to them is the Kafka source's business: `connectors`.)

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::operators::vec::{Broadcast, Input};
use timely::dataflow::operators::{Inspect, Probe};
use timely::worker::Worker;
use timely::ExchangeData;

use crate::config::EngineConfig;

/// Hands `value`, which worker 0 holds (`Some` there, ignored elsewhere), to every worker of
/// the cluster, in every process, and returns it; each worker waits for it. A job whose
/// progress one process keeps (it takes the generation and reads what was committed) shares
/// what it read this way, so every process replays to the same offsets. `None` if the cluster
/// stopped before the value arrived.
///
/// ```
/// timely::execute(timely::Config::process(2), |worker| {
///     let mine = (worker.index() == 0).then(|| "from worker 0".to_string());
///     let shared = citeflow_engine::worker::from_first_worker(worker, mine);
///     assert_eq!(shared.as_deref(), Some("from worker 0"));
/// })
/// .unwrap();
/// ```
pub fn from_first_worker<T: ExchangeData + Clone>(worker: &mut Worker, value: Option<T>) -> Option<T> {
    let received = Rc::new(RefCell::new(None));
    let slot = received.clone();
    let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<T>();
        let (probe, _) = stream.broadcast().inspect(move |value| *slot.borrow_mut() = Some(value.clone())).probe();
        (input, probe)
    });
    if let Some(value) = value.filter(|_| worker.index() == 0) {
        input.send(value);
    }
    drop(input);
    while !probe.done() {
        if !worker.step_or_park(None) {
            break;
        }
    }
    received.take()
}

/// Builds the timely configuration for `config`: threads in one process, or a cluster of
/// processes connected by timely's own networking when `hosts` lists more than one.
pub fn timely_config(config: &EngineConfig) -> timely::Config {
    let communication = if config.hosts.len() > 1 {
        timely::CommunicationConfig::Cluster {
            threads: config.workers,
            process: config.process,
            addresses: config.hosts.clone(),
            report: false,
            zerocopy: false,
        }
    } else {
        timely::CommunicationConfig::Process(config.workers)
    };
    let mut worker = timely::WorkerConfig::default();
    differential_dataflow::configure(&mut worker, &differential_dataflow::Config { idle_merge_effort: Some(IDLE_MERGE_EFFORT) });
    timely::Config { communication, worker }
}

/// Updates' worth of merging an arrangement does each time it is scheduled while it holds more
/// than one batch, input or not. Differential merges only as new updates arrive by default, so a
/// trace that stops receiving them (after hydration, or when the input goes quiet) would keep
/// every update and retraction it holds uncancelled; with this it settles into one compact
/// batch and then rests.
const IDLE_MERGE_EFFORT: isize = 1_000;
