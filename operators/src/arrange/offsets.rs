//! Offsets of a batch's columns held as a pattern where they follow one.
//!
//! A batch locates each key's values and each value's updates by offsets into the next
//! column, one per entry. Two patterns cover most of a large batch. When every key has one
//! value the value offsets count up by one: `0, 1, 2, …`. When every update repeats the
//! previous update's time and diff — a collection's state after compaction, or the whole
//! state inserted at once — the builder stores that update once and marks each later value
//! by repeating the previous offset: `0, 1, 1, 1, …`. Differential's [`OffsetList`] holds
//! four bytes per offset either way; [`Offsets`] holds a prefix of the form
//! `0, s, 2s, …, ks, ks, …, ks` as three numbers, and the offsets after it in an
//! [`OffsetList`]. An arrangement of blocking keys, with one value per key and its updates
//! compacted, then holds neither offset column: eight of its twenty-four bytes per update.

use differential_dataflow::trace::implementations::{BatchContainer, OffsetList};
use timely::container::PushInto;

/// A list of offsets: a strided prefix, its last offset repeated, then the rest as pushed
/// (see the module documentation).
#[derive(Debug)]
pub struct Offsets {
    /// Step of the prefix: offset `i < strided` is `stride * i`.
    stride: usize,
    /// Length of the strided prefix.
    strided: usize,
    /// How many times the prefix's last offset follows it.
    repeats: usize,
    /// The offsets after the pattern.
    rest: OffsetList,
    /// Offsets this list was sized for: the rest reserves what remains of it when it starts.
    capacity: usize,
}

impl Default for Offsets {
    fn default() -> Self {
        Offsets { stride: 0, strided: 0, repeats: 0, rest: OffsetList::with_capacity(0), capacity: 0 }
    }
}

impl Offsets {
    /// The offsets after the pattern, for shrinking.
    pub(crate) fn rest_mut(&mut self) -> &mut OffsetList {
        &mut self.rest
    }

    /// How many offsets are held in a list, not as the pattern.
    pub fn listed(&self) -> usize {
        self.rest.len()
    }

    fn in_pattern(&self) -> usize {
        self.strided + self.repeats
    }

    fn push(&mut self, offset: usize) {
        let patterned = self.rest.len() == 0;
        if patterned && self.strided == 0 && offset == 0 {
            self.strided = 1;
        } else if patterned && self.strided == 1 {
            self.stride = offset;
            self.strided = 2;
        } else if patterned && self.strided > 1 && self.repeats == 0 && Some(offset) == self.stride.checked_mul(self.strided) {
            self.strided += 1;
        } else if patterned && self.strided > 0 && offset == self.stride * (self.strided - 1) {
            self.repeats += 1;
        } else {
            if patterned {
                self.rest = OffsetList::with_capacity(self.capacity.saturating_sub(self.in_pattern()));
            }
            self.rest.push(offset);
        }
    }
}

impl PushInto<usize> for Offsets {
    fn push_into(&mut self, offset: usize) {
        self.push(offset);
    }
}

impl BatchContainer for Offsets {
    type Owned = usize;
    type ReadItem<'a> = usize;

    fn into_owned<'a>(item: usize) -> usize {
        item
    }

    fn push_ref(&mut self, item: usize) {
        self.push(item);
    }

    fn push_own(&mut self, item: &usize) {
        self.push(*item);
    }

    fn clear(&mut self) {
        let capacity = self.capacity;
        *self = Offsets { capacity, ..Offsets::default() };
    }

    fn with_capacity(size: usize) -> Self {
        Offsets { capacity: size, ..Offsets::default() }
    }

    fn merge_capacity(cont1: &Self, cont2: &Self) -> Self {
        Self::with_capacity(cont1.len() + cont2.len())
    }

    fn reborrow<'b, 'a: 'b>(item: usize) -> usize {
        item
    }

    fn index(&self, index: usize) -> usize {
        if index < self.strided {
            self.stride * index
        } else if index < self.in_pattern() {
            self.stride * (self.strided - 1)
        } else {
            self.rest.index(index - self.in_pattern())
        }
    }

    fn len(&self) -> usize {
        self.in_pattern() + self.rest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offsets(list: &[usize]) -> Offsets {
        let mut offsets = Offsets::with_capacity(list.len());
        for offset in list {
            offsets.push_ref(*offset);
        }
        offsets
    }

    #[test]
    fn the_two_patterns_hold_no_offsets() {
        let counting: Vec<usize> = (0..10_000).collect();
        let repeating: Vec<usize> = std::iter::once(0).chain(std::iter::repeat_n(1, 10_000)).collect();
        for list in [counting, repeating] {
            let held = offsets(&list);
            assert_eq!(held.rest.len(), 0);
            assert_eq!((0..list.len()).map(|i| held.index(i)).collect::<Vec<_>>(), list);
        }
    }

    #[test]
    fn the_rest_is_sized_for_what_the_pattern_left() {
        let list: Vec<usize> = (0..100).chain(std::iter::repeat_n(200, 50)).collect();
        let held = offsets(&list);
        assert_eq!((held.strided, held.repeats, held.rest.len()), (100, 0, 50));
        assert_eq!(held.rest.smol.capacity(), 50);
    }

    proptest! {
        #[test]
        fn offsets_read_back_as_pushed(
            steps in proptest::collection::vec(prop_oneof![Just(0usize), Just(1), Just(2), 0usize..5], 0..60),
            start in 0usize..3,
        ) {
            // Offsets never decrease; the first is usually zero.
            let list: Vec<usize> = steps.iter().scan(start, |at, step| { *at += step; Some(*at) }).collect();
            let held = offsets(&list);
            prop_assert_eq!(held.len(), list.len());
            prop_assert_eq!(held.last(), list.last().copied());
            prop_assert_eq!((0..list.len()).map(|i| held.index(i)).collect::<Vec<_>>(), list);
        }
    }
}
