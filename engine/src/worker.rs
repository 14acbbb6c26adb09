//! Worker layout: how many timely workers run in this process and in the cluster, and how
//! work that is partitioned outside timely (Kafka partitions) is assigned to them.

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

/// Assigns items deterministically to `peers` workers: the item at position `i` of the
/// sorted list goes to worker `i % peers`. Every worker computes the same assignment
/// independently, so no coordination (and no rebalancing) is needed.
pub fn assign<T: Ord + Clone>(items: &[T], worker: usize, peers: usize) -> Vec<T> {
    let mut sorted = items.to_vec();
    sorted.sort();
    sorted.into_iter().enumerate().filter(|(i, _)| i % peers == worker).map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_covers_every_item_once() {
        let items = vec![("b", 1), ("a", 0), ("a", 1), ("b", 0), ("c", 0)];
        let mut seen: Vec<_> = (0..3).flat_map(|w| assign(&items, w, 3)).collect();
        seen.sort();
        let mut expected = items.clone();
        expected.sort();
        assert_eq!(seen, expected);
        assert_eq!(assign(&items, 0, 3), vec![("a", 0), ("b", 1)]);
    }
}
