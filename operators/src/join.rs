//! Joins of arrangements that match a fresh batch with the other side's batches one at a time.
//!
//! Differential's `join_core` hands each fresh batch of one input, and the batches the other
//! input's trace holds, to a join tactic (`operators/join.rs`). Its cursor tactic merges the
//! trace's batches into one cursor (a `CursorList`), so that every key it seeks is sought in
//! every batch and the batches' cursors compared again; and it loads each matched key's values
//! and times into histories, advanced and consolidated, before pairing them. [`ByBatch`]
//! pairs the fresh batch with each batch of the trace in turn: a key is sought in one batch at
//! a time, and a matched key's updates are paired directly, each value of one side with each
//! value of the other, at the join of their times with the product of their diffs.
//!
//! The output is the same collection. A join is bilinear: joining a batch with a sum of
//! batches is the sum of joining it with each one, and the times `join_core` advances by the
//! fresh batch's lower bound only consolidate a key's history, as the fresh batch's times are
//! at or beyond that bound. What differs is how consolidated the output is before it leaves:
//! `join_core` consolidates its output a container at a time, and this join does not, since
//! what arranges the output downstream sorts and consolidates it anyway. And an update and its
//! retraction held in two batches of the trace each meet the fresh batch here, and their
//! outputs cancel downstream instead of in the join. The property test below compares the two
//! joins on updates with retractions.

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
        V1: 'static,
        V2: 'static,
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
        V1: 'static,
        V2: 'static,
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

/// The [`JoinTactic`] that joins a fresh batch with each batch of the other side in turn (see
/// the module documentation). `logic` gets each matched key, the two values, the join of their
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
    V0: 'static,
    V1: 'static,
    D: Data,
    L: FnMut(&K, &V0, &V1, &T, isize, &mut Output<D, T>) + 'static,
{
    fn prep(&mut self, input0: Vec<B0>, input1: Vec<B1>, _fresh: Fresh, _meet: T) -> Box<dyn Iterator<Item = Vec<(D, T, isize)>>> {
        Box::new(Pairs {
            done: input0.is_empty() || input1.is_empty(),
            batches: (input0, input1),
            next: (0, 0),
            cursors: None,
            times: Vec::new(),
            logic: Rc::clone(&self.logic),
            output: Output::default(),
            ready: VecDeque::new(),
        })
    }
}

/// The join of every batch of one side with every batch of the other, as output containers
/// (the driver pulls them as its fuel allows).
struct Pairs<B0: Navigable, B1: Navigable, D, T, L> {
    batches: (Vec<B0>, Vec<B1>),
    /// The pair of batches to join after the current one.
    next: (usize, usize),
    /// The pair being joined, and where their cursors stand.
    cursors: Option<(usize, usize, B0::Cursor, B1::Cursor)>,
    /// The updates of the first side's current value.
    times: Vec<(T, isize)>,
    logic: Rc<RefCell<L>>,
    output: Output<D, T>,
    ready: VecDeque<Vec<(D, T, isize)>>,
    done: bool,
}

impl<T, B0, B1, K, V0, V1, D, L> Iterator for Pairs<B0, B1, D, T, L>
where
    T: Timestamp + Lattice,
    B0: Navigable,
    B1: Navigable,
    for<'a> B0::Cursor: Cursor<Key<'a> = &'a K, Val<'a> = &'a V0, Time = T, Diff = isize>,
    for<'a> B1::Cursor: Cursor<Key<'a> = &'a K, Val<'a> = &'a V1, Time = T, Diff = isize>,
    K: Ord,
    D: Data,
    L: FnMut(&K, &V0, &V1, &T, isize, &mut Output<D, T>),
{
    type Item = Vec<(D, T, isize)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut logic = self.logic.borrow_mut();
        while self.ready.is_empty() && !self.done {
            if self.cursors.is_none() {
                let (one, other) = self.next;
                self.next = if other + 1 < self.batches.1.len() { (one, other + 1) } else { (one + 1, 0) };
                self.cursors = Some((one, other, self.batches.0[one].cursor(), self.batches.1[other].cursor()));
            }
            let (one, other, cursor0, cursor1) = self.cursors.as_mut().expect("a pair of batches");
            let (batch0, batch1) = (&self.batches.0[*one], &self.batches.1[*other]);
            let matched = next_match(cursor0, batch0, cursor1, batch1);
            if matched {
                let key = cursor0.key(batch0);
                while let Some(value0) = cursor0.get_val(batch0) {
                    self.times.clear();
                    cursor0.map_times(batch0, |time, diff| self.times.push((B0::Cursor::owned_time(time), B0::Cursor::owned_diff(diff))));
                    cursor1.rewind_vals(batch1);
                    while let Some(value1) = cursor1.get_val(batch1) {
                        cursor1.map_times(batch1, |time1, diff1| {
                            let (time1, diff1) = (B1::Cursor::owned_time(time1), B1::Cursor::owned_diff(diff1));
                            for (time0, diff0) in &self.times {
                                logic(key, value0, value1, &time0.join(&time1), diff0 * diff1, &mut self.output);
                            }
                        });
                        cursor1.step_val(batch1);
                    }
                    cursor0.step_val(batch0);
                }
                cursor0.step_key(batch0);
                cursor1.step_key(batch1);
            } else {
                self.cursors = None;
                self.done = self.next.0 == self.batches.0.len();
            }
            while let Some(container) = if self.done { self.output.finish() } else { self.output.extract() } {
                self.ready.push_back(std::mem::take(container));
            }
        }
        self.ready.pop_front()
    }
}

/// Moves both cursors to the next key they share; whether there is one.
fn next_match<C0, C1, K>(cursor0: &mut C0, batch0: &C0::Storage, cursor1: &mut C1, batch1: &C1::Storage) -> bool
where
    K: Ord,
    for<'a> C0: Cursor<Key<'a> = &'a K>,
    for<'a> C1: Cursor<Key<'a> = &'a K>,
{
    loop {
        match (cursor0.get_key(batch0), cursor1.get_key(batch1)) {
            (Some(key0), Some(key1)) => match key0.cmp(key1) {
                std::cmp::Ordering::Less => cursor0.seek_key(batch0, key1),
                std::cmp::Ordering::Greater => cursor1.seek_key(batch1, key0),
                std::cmp::Ordering::Equal => return true,
            },
            _ => return false,
        }
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

    proptest! {
        #[test]
        fn joins_what_join_core_joins(left in updates(), right in updates()) {
            prop_assert_eq!(joined(left.clone(), right.clone(), Join::ByBatch), joined(left, right, Join::Core));
        }
    }
}
