//! Joins of arrangements that seek a fresh batch's keys in each batch of the other side.
//!
//! Differential's `join_core` hands each fresh batch of one input, and the batches the other
//! input's trace holds, to a join tactic (`operators/join.rs`). Its cursor tactic merges the
//! trace's batches into one cursor (a `CursorList`), which compares its batches' cursors again at
//! every step, and it loads each matched key's values and times on both sides into histories,
//! advanced and consolidated, before pairing them. [`ByBatch`] keeps a cursor in each of the
//! trace's batches and seeks the fresh batch's keys in them: the least key any of them holds at
//! or after the fresh key moves the fresh cursor on. A matched key's updates in the trace are
//! gathered from its batches; where there are several (an insertion and its retraction, often in
//! two batches not yet merged), they are advanced by the fresh batch's lower bound and
//! consolidated, as `join_core` does, so that what cancels is never paired. Then each value of
//! the fresh side is paired with each of the trace's, at the join of their times with the
//! product of their diffs.
//!
//! The output is the same collection. What differs is how consolidated it is before it leaves:
//! `join_core` consolidates its output a container at a time, and this join does not, since
//! what arranges the output downstream sorts and consolidates it anyway. The tests below compare
//! the two joins on updates with retractions, and check that what cancels is never paired.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::operators::join::{join_with_tactic, Fresh, JoinTactic};
use differential_dataflow::trace::{BatchCursor, Cursor, Navigable, TraceReader};
use differential_dataflow::{AsCollection, Data, VecCollection};
use timely::container::{CapacityContainerBuilder, ContainerBuilder, PushInto};
use timely::progress::Timestamp;

/// Joining two arrangements by key with [`ByBatch`] (see the module documentation).
pub trait JoinByBatch<'scope, Tr1: TraceReader<Batch: Navigable>> {
    /// As `join_core`: for each key in both, `logic` turns each pair of values into output
    /// records, at the join of the pair's times with the product of their counts.
    ///
    /// ```
    /// use citeflow_operators::arrange::ArrangeCompact;
    /// use citeflow_operators::join::JoinByBatch;
    /// use differential_dataflow::input::Input;
    ///
    /// timely::example(|scope| {
    ///     let left = scope.new_collection_from(vec![(1u32, 'a'), (2, 'b')]).1.arrange_compact_named("Left");
    ///     let right = scope.new_collection_from(vec![(1u32, 10u8), (1, 11)]).1.arrange_compact_named("Right");
    ///     left.join_by_batch(right, |key, letter, number| Some((*key, *letter, *number))).inspect(|x| println!("{x:?}"));
    /// });
    /// ```
    fn join_by_batch<Tr2, K, V1, V2, I, L>(
        self,
        other: Arranged<'scope, Tr2>,
        logic: L,
    ) -> VecCollection<'scope, Tr1::Time, I::Item, isize>
    where
        Tr2: TraceReader<Time = Tr1::Time, Batch: Navigable> + 'static,
        for<'a> BatchCursor<Tr1>: Cursor<Key<'a> = &'a K, Val<'a> = &'a V1, Time = Tr1::Time, Diff = isize>,
        for<'a> BatchCursor<Tr2>: Cursor<Key<'a> = &'a K, Val<'a> = &'a V2, Time = Tr1::Time, Diff = isize>,
        K: Ord + 'static,
        V1: Ord + 'static,
        V2: Ord + 'static,
        I: IntoIterator<Item: Data>,
        L: FnMut(&K, &V1, &V2) -> I + 'static;
}

impl<'scope, Tr1> JoinByBatch<'scope, Tr1> for Arranged<'scope, Tr1>
where
    Tr1: TraceReader<Batch: Navigable> + 'static,
{
    fn join_by_batch<Tr2, K, V1, V2, I, L>(
        self,
        other: Arranged<'scope, Tr2>,
        mut logic: L,
    ) -> VecCollection<'scope, Tr1::Time, I::Item, isize>
    where
        Tr2: TraceReader<Time = Tr1::Time, Batch: Navigable> + 'static,
        for<'a> BatchCursor<Tr1>: Cursor<Key<'a> = &'a K, Val<'a> = &'a V1, Time = Tr1::Time, Diff = isize>,
        for<'a> BatchCursor<Tr2>: Cursor<Key<'a> = &'a K, Val<'a> = &'a V2, Time = Tr1::Time, Diff = isize>,
        K: Ord + 'static,
        V1: Ord + 'static,
        V2: Ord + 'static,
        I: IntoIterator<Item: Data>,
        L: FnMut(&K, &V1, &V2) -> I + 'static,
    {
        let pairs = move |key: &K, one: &V1, other: &V2, time: &Tr1::Time, diff: isize, output: &mut Output<I::Item, Tr1::Time>| {
            for record in logic(key, one, other) {
                output.push_into((record, time.clone(), diff));
            }
        };
        join_with_tactic(self, other, "Join by batch", ByBatch::new(pairs)).as_collection()
    }
}

/// The builder a join's output is written to, a container at a time, unconsolidated.
type Output<D, T> = CapacityContainerBuilder<Vec<(D, T, isize)>>;

/// The [`JoinTactic`] that seeks a fresh batch's keys in each batch of the other side (see the
/// module documentation). `logic` gets each matched key, the two values, the join of their
/// times and the product of their diffs.
pub struct ByBatch<L> {
    logic: Rc<RefCell<L>>,
}

impl<L> ByBatch<L> {
    fn new(logic: L) -> Self {
        ByBatch { logic: Rc::new(RefCell::new(logic)) }
    }
}

impl<T, B0, B1, K, V0, V1, D, L> JoinTactic<T, B0, B1, Vec<(D, T, isize)>> for ByBatch<L>
where
    T: Timestamp + Lattice,
    B0: Navigable + 'static,
    B1: Navigable + 'static,
    for<'a> B0::Cursor: Cursor<Key<'a> = &'a K, Val<'a> = &'a V0, Time = T, Diff = isize>,
    for<'a> B1::Cursor: Cursor<Key<'a> = &'a K, Val<'a> = &'a V1, Time = T, Diff = isize>,
    K: Ord + 'static,
    V0: Ord + 'static,
    V1: Ord + 'static,
    D: Data,
    L: FnMut(&K, &V0, &V1, &T, isize, &mut Output<D, T>) + 'static,
{
    fn prep(&mut self, input0: Vec<B0>, input1: Vec<B1>, fresh: Fresh, meet: T) -> Box<dyn Iterator<Item = Vec<(D, T, isize)>>> {
        let logic = Rc::clone(&self.logic);
        match fresh {
            Fresh::Input0 => Box::new(Pairs::new(
                input0,
                input1,
                meet,
                logic,
                |logic: &mut L, key: &K, one: &V0, other: &V1, time: &T, diff, output: &mut _| logic(key, one, other, time, diff, output),
            )),
            Fresh::Input1 => Box::new(Pairs::new(
                input1,
                input0,
                meet,
                logic,
                |logic: &mut L, key: &K, one: &V1, other: &V0, time: &T, diff, output: &mut _| logic(key, other, one, time, diff, output),
            )),
        }
    }
}

/// The join of the fresh batches (differential hands over one) with the batches the other side
/// has accumulated, as output containers (the driver pulls them as its fuel allows).
struct Pairs<F: Navigable, A: Navigable, D, T, L, C> {
    /// The fresh batches, each with its cursor; the first is being joined.
    fresh: VecDeque<(F, F::Cursor)>,
    accumulated: Vec<A>,
    /// A cursor in each accumulated batch.
    cursors: Vec<A::Cursor>,
    /// The lower bound of the output's times, by which the accumulated side's times are advanced
    /// where a key's history is consolidated.
    meet: T,
    /// The updates of the fresh side's current value.
    times: Vec<(T, isize)>,
    logic: Rc<RefCell<L>>,
    /// Calls `logic` with a fresh value and an accumulated one in the order of its inputs.
    call: C,
    output: Output<D, T>,
    ready: VecDeque<Vec<(D, T, isize)>>,
}

impl<F: Navigable, A: Navigable, D, T, L, C> Pairs<F, A, D, T, L, C> {
    fn new(fresh: Vec<F>, accumulated: Vec<A>, meet: T, logic: Rc<RefCell<L>>, call: C) -> Self {
        let fresh = match accumulated.is_empty() {
            true => VecDeque::new(),
            false => fresh
                .into_iter()
                .map(|batch| {
                    let cursor = batch.cursor();
                    (batch, cursor)
                })
                .collect(),
        };
        Pairs {
            fresh,
            cursors: accumulated.iter().map(Navigable::cursor).collect(),
            accumulated,
            meet,
            times: Vec::new(),
            logic,
            call,
            output: Output::default(),
            ready: VecDeque::new(),
        }
    }
}

impl<T, F, A, K, VF, VA, D, L, C> Iterator for Pairs<F, A, D, T, L, C>
where
    T: Timestamp + Lattice,
    F: Navigable,
    A: Navigable,
    for<'a> F::Cursor: Cursor<Key<'a> = &'a K, Val<'a> = &'a VF, Time = T, Diff = isize>,
    for<'a> A::Cursor: Cursor<Key<'a> = &'a K, Val<'a> = &'a VA, Time = T, Diff = isize>,
    K: Ord,
    VA: Ord,
    D: Data,
    C: Fn(&mut L, &K, &VF, &VA, &T, isize, &mut Output<D, T>),
{
    type Item = Vec<(D, T, isize)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut logic = self.logic.borrow_mut();
        let mut history: Vec<(&VA, T, isize)> = Vec::new();
        while self.ready.is_empty() {
            let Some((batch, cursor)) = self.fresh.front_mut() else { break };
            // The least key at or after the fresh key in any accumulated batch.
            let mut least = None;
            let key = cursor.get_key(batch);
            if let Some(key) = key {
                for (other, accumulated) in self.cursors.iter_mut().zip(&self.accumulated) {
                    if other.get_key(accumulated).is_some_and(|other_key| other_key < key) {
                        other.seek_key(accumulated, key);
                    }
                    if let Some(other_key) = other.get_key(accumulated) {
                        least = Some(least.map_or(other_key, |least: &K| least.min(other_key)));
                    }
                }
            }
            let key = match (key, least) {
                (Some(key), Some(least)) if least > key => {
                    cursor.seek_key(batch, least);
                    continue;
                }
                (Some(key), Some(_)) => key,
                // Done with this fresh batch: the next one starts at the accumulated batches'
                // first keys.
                _ => {
                    self.fresh.pop_front();
                    for (other, accumulated) in self.cursors.iter_mut().zip(&self.accumulated) {
                        other.rewind_keys(accumulated);
                    }
                    continue;
                }
            };
            history.clear();
            for (other, accumulated) in self.cursors.iter_mut().zip(&self.accumulated) {
                if other.get_key(accumulated) == Some(key) {
                    while let Some(value) = other.get_val(accumulated) {
                        other.map_times(accumulated, |time, diff| {
                            history.push((value, A::Cursor::owned_time(time), A::Cursor::owned_diff(diff)))
                        });
                        other.step_val(accumulated);
                    }
                    other.step_key(accumulated);
                }
            }
            // Updates of one value that cancel (an insertion and its retraction, often in two
            // batches) are consolidated away, as `join_core` does, before they meet the fresh
            // side. One update (most keys) has nothing to consolidate.
            if history.len() > 1 {
                for (_, time, _) in history.iter_mut() {
                    time.join_assign(&self.meet);
                }
                differential_dataflow::consolidation::consolidate_updates(&mut history);
            }
            while let Some(value) = cursor.get_val(batch) {
                self.times.clear();
                cursor.map_times(batch, |time, diff| self.times.push((F::Cursor::owned_time(time), F::Cursor::owned_diff(diff))));
                for (other_value, other_time, other_diff) in &history {
                    for (time, diff) in &self.times {
                        (self.call)(&mut logic, key, value, other_value, &time.join(other_time), diff * other_diff, &mut self.output);
                    }
                }
                cursor.step_val(batch);
            }
            cursor.step_key(batch);
            while let Some(container) = self.output.extract() {
                self.ready.push_back(std::mem::take(container));
            }
        }
        if self.fresh.is_empty() {
            while let Some(container) = self.output.finish() {
                self.ready.push_back(std::mem::take(container));
            }
        }
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrange::ArrangeCompact;
    use differential_dataflow::input::Input;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    type Update = (u8, u8, u64, isize);

    /// Which join [`joined`] runs.
    #[derive(Clone, Copy, Debug)]
    enum Join {
        Core,
        ByBatch,
    }

    /// The output of a join of `left` and `right` (key, value, time, diff), inserted a time at a
    /// time, consolidated.
    fn joined(left: Vec<Update>, right: Vec<Update>, join: Join) -> Vec<((u8, u8, u8), u64, isize)> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        timely::execute_directly(move |worker| {
            let (mut inputs, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (left_input, left) = scope.new_collection::<(u8, u8), isize>();
                let (right_input, right) = scope.new_collection::<(u8, u8), isize>();
                let (left, right) = (left.arrange_compact_named("Left"), right.arrange_compact_named("Right"));
                let logic = |key: &u8, one: &u8, other: &u8| Some((*key, *one, *other));
                let pairs = match join {
                    Join::Core => left.join_core(right, logic),
                    Join::ByBatch => left.join_by_batch(right, logic),
                };
                let out = out.clone();
                let (probe, _) = pairs.inspect(move |update| out.lock().expect("lock").push(*update)).probe();
                ([left_input, right_input], probe)
            });
            let mut updates: Vec<(usize, Update)> = left.into_iter().map(|u| (0, u)).chain(right.into_iter().map(|u| (1, u))).collect();
            updates.sort_by_key(|(_, update)| update.2);
            for (side, (key, value, time, diff)) in updates {
                for input in &mut inputs {
                    input.advance_to(time);
                }
                inputs[side].update((key, value), diff);
                for input in &mut inputs {
                    input.flush();
                }
                worker.step_while(|| probe.less_than(inputs[0].time()));
            }
            for input in &mut inputs {
                input.advance_to(u64::MAX);
                input.flush();
            }
            worker.step_while(|| probe.less_than(inputs[0].time()));
        });
        let mut updates = seen.lock().expect("lock").clone();
        differential_dataflow::consolidation::consolidate_updates(&mut updates);
        updates
    }

    fn updates() -> impl Strategy<Value = Vec<Update>> {
        proptest::collection::vec((0u8..6, 0u8..4, 0u64..8, prop_oneof![Just(1isize), Just(-1), Just(2)]), 0..40)
    }

    /// An insertion and its retraction in the trace, in two batches or in one, never meet a
    /// fresh batch: the logic is not called for them.
    #[test]
    fn what_cancels_in_the_trace_is_never_paired() {
        timely::execute_directly(|worker| {
            let calls = Rc::new(std::cell::Cell::new(0));
            let counted = Rc::clone(&calls);
            let (mut left, mut right, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (left_input, left) = scope.new_collection::<(u8, u8), isize>();
                let (right_input, right) = scope.new_collection::<(u8, u8), isize>();
                let joined =
                    left.arrange_compact_named("Left").join_by_batch(right.arrange_compact_named("Right"), move |key, one, other| {
                        counted.set(counted.get() + 1);
                        Some((*key, *one, *other))
                    });
                (left_input, right_input, joined.probe().0)
            });
            let mut step = |left: &mut differential_dataflow::input::InputSession<u64, (u8, u8), isize>,
                            right: &mut differential_dataflow::input::InputSession<u64, (u8, u8), isize>,
                            time: u64| {
                left.advance_to(time);
                right.advance_to(time);
                left.flush();
                right.flush();
                worker.step_while(|| probe.less_than(&time));
            };
            // Two batches: the insertion sealed before the retraction arrives.
            right.insert((1, 7));
            step(&mut left, &mut right, 1);
            right.remove((1, 7));
            step(&mut left, &mut right, 2);
            // One batch: both at different times, sealed together.
            right.insert((2, 7));
            right.advance_to(3);
            right.remove((2, 7));
            step(&mut left, &mut right, 4);
            left.insert((1, 9));
            left.insert((2, 9));
            step(&mut left, &mut right, 5);
            assert_eq!(calls.get(), 0, "no pair of a value that the trace no longer holds");
            right.insert((1, 8));
            step(&mut left, &mut right, 6);
            assert_eq!(calls.get(), 1, "a live value is paired");
        });
    }

    proptest! {
        #[test]
        fn joins_what_join_core_joins(left in updates(), right in updates()) {
            prop_assert_eq!(joined(left.clone(), right.clone(), Join::ByBatch), joined(left, right, Join::Core));
        }
    }
}
