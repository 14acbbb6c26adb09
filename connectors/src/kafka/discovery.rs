//! Partitions added to the input topics while the job runs.
//!
//! Kafka lets a topic grow (never shrink) its partition count. A background thread asks the
//! brokers for the topics' partitions every `kafka.partition_discovery_ms` (a metadata request,
//! as Flink's Kafka source does); the sources check the published list whenever they are
//! scheduled (an atomic load) and each starts reading, from the earliest offset, the new
//! partitions that [`partition_owner`] gives its worker. Existing partitions keep their
//! worker, because the owner depends only on the topic and the partition number.
//!
//! A partition found this way is not part of a restart's hydration target (the last run
//! committed nothing for it), and its positions are committed with the views like any other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::admin::METADATA_TIMEOUT;
use super::KafkaConfig;

/// The worker (of `peers`) that reads `partition` of the topic at position `topic_rank` in the
/// sorted list of input topics: partitions go round-robin, each topic starting one worker
/// further, so that partition 0 of every topic does not land on worker 0. Adding partitions
/// never moves an existing one.
pub fn partition_owner(topic_rank: usize, partition: i32, peers: usize) -> usize {
    (topic_rank + usize::try_from(partition).unwrap_or(0)) % peers.max(1)
}

/// The partitions of `partitions` (of the input `topics`) that `worker` of `peers` reads.
pub fn assigned(topics: &[String], partitions: &[(String, i32)], worker: usize, peers: usize) -> Vec<(String, i32)> {
    let mut sorted = topics.to_vec();
    sorted.sort();
    partitions
        .iter()
        .filter(|(topic, partition)| sorted.binary_search(topic).is_ok_and(|rank| partition_owner(rank, *partition, peers) == worker))
        .cloned()
        .collect()
}

#[derive(Default)]
struct Shared {
    /// Every partition of the input topics, sorted.
    partitions: Mutex<Vec<(String, i32)>>,
    /// Bumped each time `partitions` changes.
    version: AtomicU64,
    stop: AtomicBool,
}

/// A handle on the discovered partitions; the thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct PartitionWatch {
    shared: Arc<Shared>,
    _stopper: Arc<Stopper>,
}

struct Stopper(Arc<Shared>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

impl PartitionWatch {
    /// Starts watching `topics`, whose partitions at start are `initial`, every `interval`.
    pub fn start(config: &KafkaConfig, topics: Vec<String>, initial: Vec<(String, i32)>, interval: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { partitions: Mutex::new(initial), ..Shared::default() });
        let watch = PartitionWatch { shared: shared.clone(), _stopper: Arc::new(Stopper(shared.clone())) };
        let config = config.clone();
        std::thread::Builder::new().name("citeflow-partitions".into()).spawn(move || {
            let consumer: BaseConsumer = match config.consumer_config().create() {
                Ok(consumer) => consumer,
                Err(error) => return tracing::error!(%error, "partition discovery cannot start; new partitions are not picked up"),
            };
            let step = Duration::from_millis(100).min(interval);
            let mut waited = Duration::ZERO;
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited < interval {
                    continue;
                }
                waited = Duration::ZERO;
                match discover(&consumer, &topics) {
                    Ok(found) => publish(&shared, found),
                    Err(error) => tracing::debug!(%error, "partition discovery: metadata request failed; trying again later"),
                }
            }
        })?;
        Ok(watch)
    }

    /// The partitions, if they changed since `version` (the version they have now, and them).
    pub fn changed_since(&self, version: u64) -> Option<(u64, Vec<(String, i32)>)> {
        let now = self.shared.version.load(Ordering::Acquire);
        (now != version).then(|| (now, self.shared.partitions.lock().unwrap_or_else(PoisonError::into_inner).clone()))
    }
}

fn discover(consumer: &BaseConsumer, topics: &[String]) -> Result<Vec<(String, i32)>, rdkafka::error::KafkaError> {
    let mut found = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        for t in metadata.topics().iter().filter(|t| t.name() == topic && t.error().is_none()) {
            found.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
        }
    }
    found.sort();
    Ok(found)
}

/// Adds the partitions in `found` that are new (a metadata response that misses some
/// partitions, as a broker restarting may give, removes none: Kafka never removes partitions).
fn publish(shared: &Shared, found: Vec<(String, i32)>) {
    let mut partitions = shared.partitions.lock().unwrap_or_else(PoisonError::into_inner);
    let new: Vec<(String, i32)> = found.into_iter().filter(|p| partitions.binary_search(p).is_err()).collect();
    if new.is_empty() {
        return;
    }
    tracing::info!(partitions = ?new, "new input partitions found; their workers start reading them from the earliest offset");
    partitions.extend(new);
    partitions.sort();
    shared.version.fetch_add(1, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Vec<String> {
        vec!["policy.documents".to_string(), "epmc.publications".to_string()]
    }

    fn partitions(counts: &[(&str, i32)]) -> Vec<(String, i32)> {
        counts.iter().flat_map(|(topic, n)| (0..*n).map(move |p| (topic.to_string(), p))).collect()
    }

    #[test]
    fn every_partition_has_one_owner_and_adding_partitions_moves_none() {
        let before = partitions(&[("epmc.publications", 4), ("policy.documents", 4)]);
        let after = partitions(&[("epmc.publications", 4), ("policy.documents", 7)]);
        for peers in 1..=5 {
            let mut seen: Vec<_> = (0..peers).flat_map(|w| assigned(&topics(), &after, w, peers)).collect();
            seen.sort();
            assert_eq!(seen, after, "{peers} workers");
            for worker in 0..peers {
                let old = assigned(&topics(), &before, worker, peers);
                let new = assigned(&topics(), &after, worker, peers);
                assert!(old.iter().all(|p| new.contains(p)), "worker {worker} of {peers} keeps its partitions");
            }
        }
        assert_eq!(assigned(&topics(), &before, 0, 2).len(), 4, "balanced");
        assert_ne!(partition_owner(0, 0, 2), partition_owner(1, 0, 2), "partition 0 of each topic on different workers");
    }

    #[test]
    fn only_new_partitions_are_published_and_none_removed() {
        let shared = Shared { partitions: Mutex::new(partitions(&[("t", 2)])), ..Shared::default() };
        publish(&shared, partitions(&[("t", 2)]));
        assert_eq!(shared.version.load(Ordering::Acquire), 0, "nothing new");
        publish(&shared, vec![("t".to_string(), 0), ("t".to_string(), 2)]);
        assert_eq!(*shared.partitions.lock().unwrap(), partitions(&[("t", 3)]), "partition 1 stays, 2 is added");
        assert_eq!(shared.version.load(Ordering::Acquire), 1);
    }
}
