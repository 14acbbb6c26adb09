//! Flow control: a source reads ahead of what the job has finished by a bounded number of
//! records, so that a backlog waits in the source (in Kafka, where lag tools see it) and not in
//! the dataflow's memory.
//!
//! An epoch is *finished* once two things hold: the dataflow's frontier at the sink has passed
//! it (every operator is done with it; a [`ProbeHandle`] on the sink's input tells), and the sink
//! has handed it to its destination and the destination has finished it — committed it, or,
//! while hydrating, staged it ([`Completed`]). The second bounds the queue in front of a slow or absent destination: when
//! PostgreSQL stops answering, the sources pause instead of queueing batches in memory.
//!
//! This bounds more than memory. Arrangements compact only up to the frontier, so a dataflow that
//! reads far ahead of its frontier keeps every update of the gap uncompacted, and each new update
//! is joined against that history: work per update grows with the backlog and the backlog with
//! the work. Bounding what is in flight keeps the frontier close behind the reads, and with it the
//! cost of an update proportional to the records it touches.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use timely::dataflow::ProbeHandle;
use timely::scheduling::SyncActivator;

use crate::time::Epoch;

/// How far the sink has handed the job's output to its destination; shared (within a process)
/// by the sink operator, the destination's committer and the sources. See the module docs.
#[derive(Clone, Debug)]
pub struct Completed {
    /// The frontier of the last batch the sink handed to the destination.
    handed: Arc<AtomicU64>,
    /// Every epoch before this one is finished (committed, or staged while hydrating).
    done: Arc<AtomicU64>,
    /// Sources to wake when `done` moves: a source that ran out of room waits for it.
    waiting: Arc<Mutex<Vec<SyncActivator>>>,
}

impl Completed {
    /// Nothing finished yet: for the process whose sink will report progress.
    pub fn new() -> Self {
        Completed { handed: Arc::new(AtomicU64::new(0)), done: Arc::new(AtomicU64::new(0)), waiting: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Never holds a source back: for processes without a sink, whose sources rely on the probe.
    pub fn unbounded() -> Self {
        let completed = Completed::new();
        completed.done.store(Epoch::MAX, Ordering::SeqCst);
        completed
    }

    /// Every epoch before the returned one is finished.
    pub fn done(&self) -> Epoch {
        self.done.load(Ordering::SeqCst)
    }

    /// The destination has finished every epoch before `frontier` (`None`: everything); the
    /// sources waiting for room are woken if that moves what is done.
    pub fn finish(&self, frontier: Option<Epoch>) {
        let frontier = frontier.unwrap_or(Epoch::MAX);
        if self.done.fetch_max(frontier, Ordering::SeqCst) < frontier {
            for source in self.waiting.lock().expect("flow lock").iter() {
                let _ = source.activate();
            }
        }
    }

    /// The sink handed the destination a batch with this frontier.
    pub fn hand(&self, frontier: Option<Epoch>) {
        self.handed.fetch_max(frontier.unwrap_or(Epoch::MAX), Ordering::SeqCst);
    }

    /// The frontier advanced to `frontier` without anything to write: finished at once if the
    /// destination has finished everything handed to it, else when it does.
    pub fn pass(&self, frontier: Option<Epoch>) {
        if self.done() >= self.handed.load(Ordering::SeqCst) {
            self.finish(frontier);
        }
    }
}

impl Default for Completed {
    fn default() -> Self {
        Completed::new()
    }
}

/// One source's account of what it has read and the job has not finished.
pub struct FlowControl {
    probe: ProbeHandle<Epoch>,
    completed: Completed,
    max_in_flight: usize,
    /// Records read per epoch, oldest first, for epochs not yet finished.
    in_flight: VecDeque<(Epoch, usize)>,
    total: usize,
}

impl FlowControl {
    /// A source may have at most `max_in_flight` records read and not finished; `probe`
    /// follows the sink's input and `completed` the sink's destination.
    pub fn new(probe: ProbeHandle<Epoch>, completed: Completed, max_in_flight: usize) -> Self {
        FlowControl { probe, completed, max_in_flight: max_in_flight.max(1), in_flight: VecDeque::new(), total: 0 }
    }

    fn finished(&self, epoch: Epoch) -> bool {
        !self.probe.less_equal(&epoch) && epoch < self.completed.done()
    }

    /// How many more records the source may read now.
    pub fn room(&mut self) -> usize {
        while let Some(&(epoch, count)) = self.in_flight.front() {
            if !self.finished(epoch) {
                break;
            }
            self.in_flight.pop_front();
            self.total -= count;
        }
        self.max_in_flight.saturating_sub(self.total)
    }

    /// The source read `count` records into `epoch`.
    pub fn read(&mut self, epoch: Epoch, count: usize) {
        if count == 0 {
            return;
        }
        self.total += count;
        match self.in_flight.back_mut() {
            Some((last, records)) if *last == epoch => *records += count,
            _ => self.in_flight.push_back((epoch, count)),
        }
    }

    /// `waker` wakes the source whenever the destination finishes more epochs, so that a
    /// source without room reads again as soon as it may.
    pub fn wake_on_finish(&self, waker: SyncActivator) {
        self.completed.waiting.lock().expect("flow lock").push(waker);
    }

    /// Records read and not finished.
    pub fn in_flight(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::operators::vec::input::Handle;
    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::Probe;

    #[test]
    fn reading_pauses_until_the_frontier_and_the_destination_finish() {
        timely::execute_directly(|worker| {
            let probe = ProbeHandle::new();
            let mut input = Handle::<Epoch, u8>::new();
            worker.dataflow(|scope| {
                scope.input_from(&mut input).probe_with(&probe);
            });
            let completed = Completed::new();
            let mut flow = FlowControl::new(probe.clone(), completed.clone(), 10);
            assert_eq!(flow.room(), 10);
            flow.read(0, 6);
            flow.read(0, 2);
            flow.read(1, 2);
            assert_eq!(flow.room(), 0);
            input.advance_to(1);
            worker.step_while(|| probe.less_than(&1));
            assert_eq!(flow.room(), 0, "the dataflow is past epoch 0 but the destination has not finished it");
            completed.hand(Some(1));
            completed.finish(Some(1));
            assert_eq!(flow.room(), 8);
            assert_eq!(flow.in_flight(), 2);
            completed.pass(Some(5));
            input.advance_to(5);
            worker.step_while(|| probe.less_than(&5));
            assert_eq!(flow.room(), 10, "an advance with nothing to write finishes once the destination is idle");
        });
    }

    #[test]
    fn a_source_waiting_for_room_is_woken_when_the_destination_finishes() {
        use std::cell::Cell;
        use std::rc::Rc;
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::operators::generic::operator::source;

        timely::execute_directly(|worker| {
            let completed = Completed::new();
            let flow = FlowControl::new(ProbeHandle::new(), completed.clone(), 10);
            let scheduled = Rc::new(Cell::new(0));
            let counter = scheduled.clone();
            let stop = Rc::new(Cell::new(false));
            let stopping = stop.clone();
            worker.dataflow::<Epoch, _, _>(|scope| {
                source::<_, CapacityContainerBuilder<Vec<u8>>, _, _>(scope, "Waits", move |capability, info| {
                    flow.wake_on_finish(scope.worker().sync_activator_for(info.address.to_vec()));
                    let mut held = Some(capability);
                    move |_output| {
                        counter.set(counter.get() + 1);
                        if stopping.get() {
                            drop(held.take());
                        }
                    }
                });
            });
            for _ in 0..3 {
                worker.step();
            }
            let idle = scheduled.get();
            worker.step();
            assert_eq!(scheduled.get(), idle, "nothing wakes an idle source");
            completed.finish(Some(1));
            worker.step();
            assert_eq!(scheduled.get(), idle + 1, "finishing an epoch wakes it");
            completed.finish(Some(1));
            worker.step();
            assert_eq!(scheduled.get(), idle + 1, "finishing nothing new does not");
            stop.set(true);
            completed.finish(Some(2));
        });
    }

    #[test]
    fn an_advance_waits_for_what_was_handed_before() {
        let completed = Completed::new();
        completed.hand(Some(3));
        completed.pass(Some(4));
        assert_eq!(completed.done(), 0, "the batch up to 3 is not committed yet");
        completed.finish(Some(3));
        completed.pass(Some(4));
        assert_eq!(completed.done(), 4);
        completed.finish(Some(2));
        assert_eq!(completed.done(), 4, "never backwards");
    }
}
