//! Compact batches, and merging them an update at a time where a value has one update.
//!
//! A [`CompactBatch`] holds what differential's `OrdValBatch` holds, laid out as
//! [`Compact`]; its cursor is that batch's cursor. It differs in how the spine merges two of
//! them ([`CompactMerger`]). Differential's merger moves every value's updates through a
//! staging area: it pushes them onto a stash, consolidates the stash, and checks whether a
//! single update repeats the previous one through one-element containers. A value with one
//! update — every value of a collection whose records are inserted and later retracted once
//! — pays all of that for one `(time, diff)`. This merger advances that update's time and
//! compares it with the last one written directly, and stages only the values with several
//! updates, or one value present in both batches. The merged batch is the one differential
//! builds: the same keys, values, updates and singleton encoding (compared by the property
//! test below), and merging spends fuel as differential's merger does, an update at a time.

use differential_dataflow::difference::IsZero;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::trace::implementations::ord_neu::val_batch::{OrdValCursor, OrdValStorage};
use differential_dataflow::trace::implementations::ord_neu::{OrdValBatch, Upds, Vals};
use differential_dataflow::trace::implementations::spine_fueled::{Merger, SpineBatch};
use differential_dataflow::trace::implementations::{BatchContainer, Update};
use differential_dataflow::trace::{Cursor, Navigable};
use timely::progress::frontier::AntichainRef;
use timely::progress::Antichain;

use super::Compact;

/// A batch of `(key, value)` updates laid out as [`Compact`], merged by [`CompactMerger`].
pub struct CompactBatch<U: Update<Diff: Ord>>(pub(crate) OrdValBatch<Compact<U>>);

impl<U: Update<Diff: Ord>> Navigable for CompactBatch<U> {
    type Cursor = CompactCursor<U>;

    fn cursor(&self) -> CompactCursor<U> {
        CompactCursor(self.0.cursor())
    }
}

impl<U: Update<Diff: Ord>> SpineBatch for CompactBatch<U> {
    type Time = U::Time;
    type Merger = CompactMerger<U>;

    fn len(&self) -> usize {
        self.0.updates
    }
}

/// A cursor over a [`CompactBatch`]: differential's cursor over the batch it wraps.
pub struct CompactCursor<U: Update<Diff: Ord>>(OrdValCursor<Compact<U>>);

impl<U: Update<Diff: Ord>> Cursor for CompactCursor<U> {
    type Storage = CompactBatch<U>;

    type Key<'a> = <OrdValCursor<Compact<U>> as Cursor>::Key<'a>;
    type ValOwn = <OrdValCursor<Compact<U>> as Cursor>::ValOwn;
    type Val<'a> = <OrdValCursor<Compact<U>> as Cursor>::Val<'a>;
    type Time = <OrdValCursor<Compact<U>> as Cursor>::Time;
    type TimeGat<'a> = <OrdValCursor<Compact<U>> as Cursor>::TimeGat<'a>;
    type Diff = <OrdValCursor<Compact<U>> as Cursor>::Diff;
    type DiffGat<'a> = <OrdValCursor<Compact<U>> as Cursor>::DiffGat<'a>;
    type KeyContainer = <OrdValCursor<Compact<U>> as Cursor>::KeyContainer;
    type ValContainer = <OrdValCursor<Compact<U>> as Cursor>::ValContainer;
    type TimeContainer = <OrdValCursor<Compact<U>> as Cursor>::TimeContainer;
    type DiffContainer = <OrdValCursor<Compact<U>> as Cursor>::DiffContainer;

    #[inline]
    fn key_valid(&self, storage: &CompactBatch<U>) -> bool {
        self.0.key_valid(&storage.0)
    }
    #[inline]
    fn val_valid(&self, storage: &CompactBatch<U>) -> bool {
        self.0.val_valid(&storage.0)
    }
    #[inline]
    fn key<'a>(&self, storage: &'a CompactBatch<U>) -> Self::Key<'a> {
        self.0.key(&storage.0)
    }
    #[inline]
    fn val<'a>(&self, storage: &'a CompactBatch<U>) -> Self::Val<'a> {
        self.0.val(&storage.0)
    }
    #[inline]
    fn get_key<'a>(&self, storage: &'a CompactBatch<U>) -> Option<Self::Key<'a>> {
        self.0.get_key(&storage.0)
    }
    #[inline]
    fn get_val<'a>(&self, storage: &'a CompactBatch<U>) -> Option<Self::Val<'a>> {
        self.0.get_val(&storage.0)
    }
    #[inline]
    fn map_times<L: FnMut(Self::TimeGat<'_>, Self::DiffGat<'_>)>(&mut self, storage: &CompactBatch<U>, logic: L) {
        self.0.map_times(&storage.0, logic)
    }
    #[inline]
    fn step_key(&mut self, storage: &CompactBatch<U>) {
        self.0.step_key(&storage.0)
    }
    #[inline]
    fn seek_key(&mut self, storage: &CompactBatch<U>, key: Self::Key<'_>) {
        self.0.seek_key(&storage.0, key)
    }
    #[inline]
    fn step_val(&mut self, storage: &CompactBatch<U>) {
        self.0.step_val(&storage.0)
    }
    #[inline]
    fn seek_val(&mut self, storage: &CompactBatch<U>, val: Self::Val<'_>) {
        self.0.seek_val(&storage.0, val)
    }
    #[inline]
    fn rewind_keys(&mut self, storage: &CompactBatch<U>) {
        self.0.rewind_keys(&storage.0)
    }
    #[inline]
    fn rewind_vals(&mut self, storage: &CompactBatch<U>) {
        self.0.rewind_vals(&storage.0)
    }
}

/// The storage of a compact batch.
type Storage<U> = OrdValStorage<Compact<U>>;

/// A merge of two [`CompactBatch`]es in progress (see the module documentation).
pub struct CompactMerger<U: Update<Diff: Ord>> {
    /// The next key of each batch.
    cursors: (usize, usize),
    /// The merged batch so far.
    result: Storage<U>,
    /// Times are advanced by this frontier.
    since: Antichain<U::Time>,
    /// Updates written so far, counting each repeat of the previous one.
    updates: usize,
    /// A value's updates from both batches, or several of one, to consolidate.
    staged: Vec<(U::Time, U::Diff)>,
}

impl<U: Update<Diff: Ord>> Merger<CompactBatch<U>> for CompactMerger<U> {
    fn new(first: &CompactBatch<U>, second: &CompactBatch<U>, frontier: AntichainRef<U::Time>) -> Self {
        let (first, second) = (&first.0.storage, &second.0.storage);
        CompactMerger {
            cursors: (0, 0),
            result: OrdValStorage {
                keys: BatchContainer::merge_capacity(&first.keys, &second.keys),
                vals: Vals::merge_capacity(&first.vals, &second.vals),
                upds: Upds::merge_capacity(&first.upds, &second.upds),
            },
            since: frontier.to_owned(),
            updates: 0,
            staged: Vec::new(),
        }
    }

    fn work(&mut self, first: &CompactBatch<U>, second: &CompactBatch<U>, fuel: &mut isize) {
        let (first, second) = (&first.0.storage, &second.0.storage);
        let start = self.updates;
        let spent = |merger: &Self| (merger.updates - start) as isize;
        while self.cursors.0 < first.keys.len() && self.cursors.1 < second.keys.len() && spent(self) < *fuel {
            let (one, other) = self.cursors;
            match first.keys[one].cmp(&second.keys[other]) {
                std::cmp::Ordering::Less => {
                    self.copy_key(first, one);
                    self.cursors.0 += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.copy_key(second, other);
                    self.cursors.1 += 1;
                }
                std::cmp::Ordering::Equal => {
                    self.merge_key(first, second);
                    self.cursors = (one + 1, other + 1);
                }
            }
        }
        while self.cursors.0 < first.keys.len() && spent(self) < *fuel {
            self.copy_key(first, self.cursors.0);
            self.cursors.0 += 1;
        }
        while self.cursors.1 < second.keys.len() && spent(self) < *fuel {
            self.copy_key(second, self.cursors.1);
            self.cursors.1 += 1;
        }
        *fuel -= spent(self);
    }

    fn done(self) -> Option<CompactBatch<U>> {
        (self.updates > 0).then(|| CompactBatch(OrdValBatch { updates: self.updates, storage: self.result }))
    }
}

impl<U: Update<Diff: Ord>> CompactMerger<U> {
    /// Writes the key at `index` of `source` with its values, unless every value's updates
    /// cancel.
    fn copy_key(&mut self, source: &Storage<U>, index: usize) {
        let written = self.result.vals.vals.len();
        let (lower, upper) = source.vals.bounds(index);
        for value in lower..upper {
            if self.write_updates(&[(source, value)]) {
                self.result.vals.vals.push(source.vals.vals[value].clone());
            }
        }
        self.close_key(written, &source.keys[index]);
    }

    /// Writes the key both batches are at, with the values of both in order.
    fn merge_key(&mut self, first: &Storage<U>, second: &Storage<U>) {
        let written = self.result.vals.vals.len();
        let (mut one, end_one) = first.vals.bounds(self.cursors.0);
        let (mut other, end_other) = second.vals.bounds(self.cursors.1);
        while one < end_one || other < end_other {
            let order = match (one < end_one, other < end_other) {
                (true, true) => first.vals.vals[one].cmp(&second.vals.vals[other]),
                (true, false) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (value, kept) = match order {
                std::cmp::Ordering::Less => (&first.vals.vals[one], self.write_updates(&[(first, one)])),
                std::cmp::Ordering::Greater => (&second.vals.vals[other], self.write_updates(&[(second, other)])),
                std::cmp::Ordering::Equal => (&first.vals.vals[one], self.write_updates(&[(first, one), (second, other)])),
            };
            if kept {
                self.result.vals.vals.push(value.clone());
            }
            one += usize::from(order.is_le());
            other += usize::from(order.is_ge());
        }
        self.close_key(written, &first.keys[self.cursors.0]);
    }

    /// Writes the key if values were written for it since there were `written`.
    fn close_key(&mut self, written: usize, key: &U::Key) {
        if self.result.vals.vals.len() > written {
            self.result.keys.push(key.clone());
            self.result.vals.offs.push_ref(self.result.vals.vals.len());
        }
    }

    /// Writes the updates of the values at `sources` (one value, in one batch or both), their
    /// times advanced and consolidated; whether any remain.
    fn write_updates(&mut self, sources: &[(&Storage<U>, usize)]) -> bool {
        if let [(source, value)] = sources {
            let (lower, upper) = source.upds.bounds(*value);
            if upper - lower == 1 {
                let mut time = source.upds.times[lower].clone();
                time.advance_by(self.since.borrow());
                let diff = source.upds.diffs[lower].clone();
                return self.write_one(time, diff);
            }
        }
        for (source, value) in sources {
            let (lower, upper) = source.upds.bounds(*value);
            for (time, diff) in source.upds.times[lower..upper].iter().zip(&source.upds.diffs[lower..upper]) {
                let mut time = time.clone();
                time.advance_by(self.since.borrow());
                self.staged.push((time, diff.clone()));
            }
        }
        differential_dataflow::consolidation::consolidate(&mut self.staged);
        match self.staged.len() {
            0 => false,
            1 => {
                let (time, diff) = self.staged.pop().expect("one update");
                self.write_one(time, diff)
            }
            _ => {
                self.updates += self.staged.len();
                for (time, diff) in self.staged.drain(..) {
                    self.result.upds.times.push(time);
                    self.result.upds.diffs.push(diff);
                }
                self.result.upds.offs.push_ref(self.result.upds.times.len());
                true
            }
        }
    }

    /// Writes a value's one update: as a repeat of the last update written if it is that
    /// update (differential's singleton encoding), else in full.
    fn write_one(&mut self, time: U::Time, diff: U::Diff) -> bool {
        if diff.is_zero() {
            return false;
        }
        let upds = &mut self.result.upds;
        let repeats = upds.times.last() == Some(&time) && upds.diffs.last() == Some(&diff);
        if !repeats {
            upds.times.push(time);
            upds.diffs.push(diff);
        }
        upds.offs.push_ref(upds.times.len());
        self.updates += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::trace::implementations::ord_neu::OrdValBuilder;
    use differential_dataflow::trace::Builder;
    use proptest::prelude::*;

    type Row = ((u8, u8), u64, isize);

    /// A batch of `updates` (any order, any repeats), built by differential's builder.
    fn batch(mut updates: Vec<Row>) -> OrdValBatch<Compact<Row>> {
        differential_dataflow::consolidation::consolidate_updates(&mut updates);
        let mut builder = OrdValBuilder::<Compact<Row>, Vec<Row>>::with_capacity(0, 0, 0);
        builder.push(&mut updates);
        builder.done().unwrap_or_else(|| OrdValBatch {
            updates: 0,
            storage: OrdValStorage { keys: Vec::new(), vals: Vals::default(), upds: Upds::default() },
        })
    }

    /// A storage's columns: keys, value offsets, values, update offsets, times and diffs.
    type Columns = (Vec<u8>, Vec<usize>, Vec<u8>, Vec<usize>, Vec<u64>, Vec<isize>);

    /// What a storage holds, column by column, offsets included.
    fn columns(storage: &Storage<Row>) -> Columns {
        let offsets = |offs: &crate::arrange::Offsets| (0..offs.len()).map(|i| offs.index(i)).collect();
        (
            storage.keys.clone(),
            offsets(&storage.vals.offs),
            storage.vals.vals.clone(),
            offsets(&storage.upds.offs),
            storage.upds.times.clone(),
            storage.upds.diffs.clone(),
        )
    }

    /// Merges two batches, spending `fuel` at a time, with either merger.
    fn merged<B: SpineBatch<Time = u64>>(first: &B, second: &B, since: u64, fuel: isize) -> Option<B> {
        let mut merger = B::Merger::new(first, second, Antichain::from_elem(since).borrow());
        loop {
            let mut left = fuel;
            merger.work(first, second, &mut left);
            if left > 0 {
                return merger.done();
            }
        }
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        proptest::collection::vec(((0u8..12, 0u8..4), 0u64..6, prop_oneof![Just(1isize), Just(-1), Just(2)]), 0..60)
    }

    proptest! {
        #[test]
        fn merges_what_differentials_merger_merges(first in rows(), second in rows(), since in 0u64..7, fuel in 1isize..40) {
            let (one, other) = (batch(first), batch(second));
            let expected = merged(&one, &other, since, fuel).map(|batch| (batch.updates, columns(&batch.storage)));
            let (one, other) = (CompactBatch(one), CompactBatch(other));
            let got = merged(&one, &other, since, fuel).map(|batch| (batch.0.updates, columns(&batch.0.storage)));
            prop_assert_eq!(got, expected);
        }
    }
}
