//! The epoch protocol of a partitioned-log source, whatever holds the log: a Kafka broker
//! ([`crate::kafka::source`]) or a topic archive on disk ([`crate::archive`]).
//!
//! Every message read in an epoch carries that epoch's time. An epoch that messages were read
//! into closes when the wall clock moves past it or when `max_records_per_epoch` messages have
//! been read into it (or as many as flow control allowed: nothing more can be read into it); a
//! source that read nothing holds its epoch until another source moves on or its heartbeat comes
//! ([`EpochTicker`]). At each close the source emits the new position of every partition that
//! moved, at the epoch being closed, so that positions travel with the data they cover. With
//! `stop_at_end`, the source emits its positions and finishes once its log says it is at its end.

use std::time::Duration;

use citeflow_engine::flow::FlowControl;
use citeflow_engine::metrics::metrics;
use citeflow_engine::sink::SourcePosition;
use citeflow_engine::time::{Epoch, EpochTicker};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};
use timely::scheduling::SyncActivator;

use crate::kafka::source::{KafkaMessage, SourceEvent};

/// How far one partition has been read.
#[derive(Clone, Debug)]
pub(crate) struct PartitionPosition {
    /// Topic.
    pub(crate) topic: String,
    /// Partition.
    pub(crate) partition: i32,
    /// The next offset to read.
    pub(crate) next_offset: i64,
    /// Whether it moved since its position was last emitted.
    pub(crate) moved: bool,
}

impl PartitionPosition {
    /// A partition to be read from `next_offset`; its first position is emitted at the first close.
    pub(crate) fn new(topic: String, partition: i32, next_offset: i64) -> Self {
        PartitionPosition { topic, partition, next_offset, moved: true }
    }

    /// Whether `offset` is new to this partition; if so, the partition moves past it.
    pub(crate) fn advance(&mut self, offset: i64) -> bool {
        if offset < self.next_offset {
            return false;
        }
        self.next_offset = offset + 1;
        self.moved = true;
        true
    }
}

/// A partitioned log one worker reads: its share of the partitions.
pub(crate) trait PartitionedLog: 'static {
    /// Hands at most `limit` messages, in offset order per partition, to `give`; returns whether
    /// the log had nothing more to read for now.
    fn read(&mut self, limit: usize, give: &mut dyn FnMut(KafkaMessage)) -> bool;
    /// The partitions and how far each has been read.
    fn positions(&mut self) -> &mut [PartitionPosition];
    /// Whether every partition has been read to the end the log had when the source started.
    fn at_end(&self) -> bool;
    /// Called after every read: a log can refresh what it knows of its partitions' ends here.
    fn observe(&mut self) {}
    /// `waker` wakes the source; a log that can tell when a message arrives keeps it.
    fn wake_on_arrival(&mut self, _waker: SyncActivator) {}
}

/// How a partitioned-log source closes epochs.
#[derive(Clone, Copy, Debug)]
pub struct EpochSettings {
    /// Epoch length in milliseconds (a drained source with an unfinished epoch looks again
    /// after at most this long, and at most 50 ms).
    pub epoch_ms: u64,
    /// Most messages read into one epoch.
    pub max_records_per_epoch: usize,
    /// Finish once the log is at its end: for Kafka, every assigned partition at the high
    /// watermark it had when the source started; for an archive, every file read as far as it
    /// was long then.
    pub stop_at_end: bool,
}

/// How soon a source without room looks again if nothing woke it: flow control wakes it when
/// the destination finishes epochs, but the dataflow's frontier may reach this worker a moment
/// later.
const ROOM_RECHECK: Duration = Duration::from_millis(5);

/// Reads `log` into the dataflow, at most as far ahead of what the job has finished as `flow`
/// allows, closing epochs as `ticker` says; see the module documentation.
pub(crate) fn log_source<'scope, L: PartitionedLog>(
    scope: Scope<'scope, Epoch>,
    name: &str,
    mut log: L,
    settings: EpochSettings,
    mut flow: FlowControl,
    ticker: EpochTicker,
) -> Stream<'scope, Epoch, Vec<SourceEvent>> {
    let idle_wait = Duration::from_millis(settings.epoch_ms.clamp(1, 50));
    source::<_, CapacityContainerBuilder<Vec<SourceEvent>>, _, _>(scope, name, move |capability, info| {
        let activator = scope.activator_for(info.address.clone());
        log.wake_on_arrival(scope.worker().sync_activator_for(info.address.to_vec()));
        let mut epochs = ticker.source(scope.worker().sync_activator_for(info.address.to_vec()));
        flow.wake_on_finish(scope.worker().sync_activator_for(info.address.to_vec()));
        let mut capability = Some(capability);
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            let allowed = settings.max_records_per_epoch.min(flow.room());
            let mut read = 0;
            let drained = {
                let mut session = output.session(&*cap);
                log.read(allowed, &mut |message| {
                    metrics().records_read.with_label_values(&[message.topic.as_str()]).inc();
                    session.give(SourceEvent::Message(message));
                    read += 1;
                })
            };
            flow.read(*cap.time(), read);
            log.observe();
            let full = read >= settings.max_records_per_epoch || (read > 0 && read == allowed);
            let finishing = settings.stop_at_end && log.at_end();
            let next = epochs.next(*cap.time(), read > 0, full);
            if next.is_some() || finishing {
                let mut session = output.session(&*cap);
                for position in log.positions().iter_mut().filter(|p| p.moved) {
                    position.moved = false;
                    session.give(SourceEvent::Position(SourcePosition {
                        topic: position.topic.clone(),
                        partition: position.partition,
                        next_offset: position.next_offset,
                    }));
                    metrics()
                        .source_position
                        .with_label_values(&[position.topic.as_str(), &position.partition.to_string()])
                        .set(position.next_offset);
                }
            }
            if finishing {
                capability = None;
                return;
            }
            if let Some(next) = next {
                cap.downgrade(&next);
            }
            // Drained and quiet, the source sleeps: its log wakes it when a message arrives (if it
            // can tell), the ticker when another source closes an epoch, and its heartbeat at the
            // latest. Without room, flow control wakes it when the job finishes an epoch.
            match (full, drained.then(|| epochs.quiet_for()).flatten()) {
                (true, _) => activator.activate(),
                (false, _) if allowed == 0 => activator.activate_after(ROOM_RECHECK.min(idle_wait)),
                (false, Some(quiet)) => activator.activate_after(quiet),
                (false, None) => activator.activate_after(idle_wait),
            }
        }
    })
}
