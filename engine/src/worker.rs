//! Worker layout: how many timely workers run in this process and in the cluster. (How Kafka
//! partitions are assigned to them is the Kafka source's business: `connectors`.)

use crate::config::EngineConfig;

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
