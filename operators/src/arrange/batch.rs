//! Compact batches: built and merged an update at a time where a value has one update.
//!
//! A [`CompactBatch`] holds what differential's `OrdValBatch` holds, laid out as
//! [`Compact`]; its cursor is that batch's cursor. It differs in how it is formed from sorted
//! updates ([`CompactSealer`]) and how the spine merges two of them ([`CompactMerger`]).
//! Differential's builder and merger move every value's updates through a staging area: they
//! push them onto a stash, consolidate the stash, and check whether a single update repeats
//! the previous one through one-element containers. A value with one update — every value of
//! a collection whose records are inserted and later retracted once — pays all of that for
//! one `(time, diff)`. Here a value's one update is compared with the last one written
//! directly (its time advanced, when merging), and only the values with several updates, or
//! one value present in both merged batches, are staged. The batches are the ones
//! differential forms: the same keys, values, updates and singleton encoding (compared by the
//! property tests below), and merging spends fuel as differential's merger does, an update at
//! a time. The sealer sizes the key and value columns exactly and gives back what the update
//! columns do not hold, as a batch of one time and one diff keeps one update (see
//! [`super`]).

use differential_dataflow::batcher::merge::Sealer;
use differential_dataflow::difference::IsZero;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::trace::implementations::ord_neu::val_batch::{OrdValCursor, OrdValStorage};
use differential_dataflow::trace::implementations::ord_neu::{BuilderInput, OrdValBatch, Upds, Vals};
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

/// The columns of a compact batch being written, a key, a value and its updates at a time.
struct Writer<U: Update<Diff: Ord>> {
    /// The batch so far.
    result: Storage<U>,
    /// Updates written so far, counting each repeat of the previous one.
    updates: usize,
    /// A value's updates, when they are several or from two batches, to consolidate.
    staged: Vec<(U::Time, U::Diff)>,
}

impl<U: Update<Diff: Ord>> Writer<U> {
    fn new(result: Storage<U>) -> Self {
        Writer { result, updates: 0, staged: Vec::new() }
    }

    /// Writes the key if values were written for it since there were `written`.
    fn close_key(&mut self, written: usize, key: &U::Key) {
        if self.result.vals.vals.len() > written {
            self.result.keys.push(key.clone());
            self.result.vals.offs.push_ref(self.result.vals.vals.len());
        }
    }

    /// Writes a value's one update: as a repeat of the last update written if it is that
    /// update (differential's singleton encoding), else in full; whether it is not zero.
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

    /// Writes a value's staged updates, consolidated; whether any remain.
    fn write_staged(&mut self) -> bool {
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

    /// The batch written, unless it holds no update.
    fn done(self) -> Option<CompactBatch<U>> {
        (self.updates > 0).then(|| CompactBatch(OrdValBatch { updates: self.updates, storage: self.result }))
    }
}

/// A merge of two [`CompactBatch`]es in progress (see the module documentation).
pub struct CompactMerger<U: Update<Diff: Ord>> {
    /// The next key of each batch.
    cursors: (usize, usize),
    /// The merged batch so far.
    writer: Writer<U>,
    /// Times are advanced by this frontier.
    since: Antichain<U::Time>,
}

impl<U: Update<Diff: Ord>> Merger<CompactBatch<U>> for CompactMerger<U> {
    fn new(first: &CompactBatch<U>, second: &CompactBatch<U>, frontier: AntichainRef<U::Time>) -> Self {
        let (first, second) = (&first.0.storage, &second.0.storage);
        CompactMerger {
            cursors: (0, 0),
            writer: Writer::new(OrdValStorage {
                keys: BatchContainer::merge_capacity(&first.keys, &second.keys),
                vals: Vals::merge_capacity(&first.vals, &second.vals),
                upds: Upds::merge_capacity(&first.upds, &second.upds),
            }),
            since: frontier.to_owned(),
        }
    }

    fn work(&mut self, first: &CompactBatch<U>, second: &CompactBatch<U>, fuel: &mut isize) {
        let (first, second) = (&first.0.storage, &second.0.storage);
        let start = self.writer.updates;
        let spent = |merger: &Self| (merger.writer.updates - start) as isize;
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
        self.writer.done()
    }
}

impl<U: Update<Diff: Ord>> CompactMerger<U> {
    /// Writes the key at `index` of `source` with its values, unless every value's updates
    /// cancel.
    fn copy_key(&mut self, source: &Storage<U>, index: usize) {
        let written = self.writer.result.vals.vals.len();
        let (lower, upper) = source.vals.bounds(index);
        for value in lower..upper {
            if self.write_updates(&[(source, value)]) {
                self.writer.result.vals.vals.push(source.vals.vals[value].clone());
            }
        }
        self.writer.close_key(written, &source.keys[index]);
    }

    /// Writes the key both batches are at, with the values of both in order.
    fn merge_key(&mut self, first: &Storage<U>, second: &Storage<U>) {
        let written = self.writer.result.vals.vals.len();
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
                self.writer.result.vals.vals.push(value.clone());
            }
            one += usize::from(order.is_le());
            other += usize::from(order.is_ge());
        }
        self.writer.close_key(written, &first.keys[self.cursors.0]);
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
                return self.writer.write_one(time, diff);
            }
        }
        for (source, value) in sources {
            let (lower, upper) = source.upds.bounds(*value);
            for (time, diff) in source.upds.times[lower..upper].iter().zip(&source.upds.diffs[lower..upper]) {
                let mut time = time.clone();
                time.advance_by(self.since.borrow());
                self.writer.staged.push((time, diff.clone()));
            }
        }
        self.writer.write_staged()
    }
}

/// Sorted updates of `(key, value)` pairs, as a chain holds them.
type Chunk<K, V, T, R> = Vec<((K, V), T, R)>;

/// Seals a chain of sorted, consolidated updates into a [`CompactBatch`], as differential's
/// `OrdValBuilder` does (see the module documentation).
pub struct CompactSealer;

impl<K, V, T, R> Sealer<Chunk<K, V, T, R>> for CompactSealer
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
    T: Lattice + timely::progress::Timestamp,
    R: Ord + differential_dataflow::difference::Semigroup + 'static,
{
    type Output = CompactBatch<((K, V), T, R)>;

    fn seal(chain: &mut Vec<Chunk<K, V, T, R>>) -> Option<Self::Output> {
        let (keys, values, _) = <Chunk<K, V, T, R> as BuilderInput<Vec<K>, Vec<V>>>::key_val_upd_counts(chain);
        let mut writer = Writer::new(OrdValStorage {
            keys: Vec::with_capacity(keys),
            vals: Vals::with_capacity(keys + 1, values),
            upds: Upds::with_capacity(values + 1, 0),
        });
        for ((key, value), time, diff) in chain.drain(..).flatten() {
            let new_key = writer.result.keys.last() != Some(&key);
            if new_key || writer.result.vals.vals.last() != Some(&value) {
                if !writer.result.keys.is_empty() {
                    writer.write_staged();
                }
                let result = &mut writer.result;
                if new_key {
                    if !result.keys.is_empty() {
                        result.vals.offs.push_ref(result.vals.vals.len());
                    }
                    result.keys.push(key);
                }
                result.vals.vals.push(value);
            }
            writer.staged.push((time, diff));
        }
        writer.write_staged();
        let result = &mut writer.result;
        result.vals.offs.push_ref(result.vals.vals.len());
        super::shrink(&mut writer.result);
        writer.done()
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
        fn seals_what_differentials_builder_builds(updates in rows(), split in 1usize..8) {
            let expected = batch(updates.clone());
            let mut sorted = updates;
            differential_dataflow::consolidation::consolidate_updates(&mut sorted);
            let mut chain: Vec<Vec<Row>> = sorted.chunks(split).map(<[Row]>::to_vec).collect();
            let got = CompactSealer::seal(&mut chain);
            prop_assert_eq!(got.is_some(), expected.updates > 0);
            if let Some(got) = got {
                prop_assert_eq!((got.0.updates, columns(&got.0.storage)), (expected.updates, columns(&expected.storage)));
            }
        }

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
