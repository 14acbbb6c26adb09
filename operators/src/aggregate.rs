//! Aggregations of the values in a group, as [`crate::window`] hands them over: each distinct
//! value with its multiplicity. Values with a multiplicity below one (which a consolidated,
//! correct collection never holds) are ignored.

use std::collections::BTreeSet;

/// A values-with-multiplicities slice, as differential's `reduce` presents a group.
pub type Group<'a, V> = [(&'a V, isize)];

fn present<'a, V>(values: &'a Group<'a, V>) -> impl Iterator<Item = (&'a V, i64)> + 'a {
    values.iter().filter(|(_, count)| *count > 0).map(|(value, count)| (*value, *count as i64))
}

/// How many values, with multiplicity.
pub fn count<V>(values: &Group<'_, V>) -> i64 {
    present(values).map(|(_, count)| count).sum()
}

/// The sum of `f` over the values, with multiplicity.
pub fn sum_by<V>(f: impl Fn(&V) -> i64) -> impl Fn(&Group<'_, V>) -> i64 {
    move |values| present(values).map(|(value, count)| f(value) * count).sum()
}

/// The least `f` over the values.
pub fn min_by<V, M: Ord>(f: impl Fn(&V) -> M) -> impl Fn(&Group<'_, V>) -> Option<M> {
    move |values| present(values).map(|(value, _)| f(value)).min()
}

/// The greatest `f` over the values.
pub fn max_by<V, M: Ord>(f: impl Fn(&V) -> M) -> impl Fn(&Group<'_, V>) -> Option<M> {
    move |values| present(values).map(|(value, _)| f(value)).max()
}

/// How many distinct `f` over the values; `None` from `f` is not counted.
pub fn distinct_count_by<V, D: Ord>(f: impl Fn(&V) -> Option<D>) -> impl Fn(&Group<'_, V>) -> i64 {
    move |values| present(values).filter_map(|(value, _)| f(value)).collect::<BTreeSet<D>>().len() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregations_respect_multiplicities() {
        let (a, b, c) = ((1, "x"), (5, "y"), (2, "x"));
        let group: Vec<(&(i64, &str), isize)> = vec![(&a, 2), (&b, 1), (&c, 1)];
        assert_eq!(count(&group), 4);
        assert_eq!(sum_by(|v: &(i64, &str)| v.0)(&group), 9);
        assert_eq!(min_by(|v: &(i64, &str)| v.0)(&group), Some(1));
        assert_eq!(max_by(|v: &(i64, &str)| v.0)(&group), Some(5));
        assert_eq!(distinct_count_by(|v: &(i64, &str)| Some(v.1))(&group), 2);
        assert_eq!(distinct_count_by(|v: &(i64, &str)| (v.0 > 1).then_some(v.0))(&group), 2);
    }

    #[test]
    fn retracted_values_do_not_count() {
        let (a, b) = (3, 7);
        let group: Vec<(&i64, isize)> = vec![(&a, 0), (&b, 1)];
        assert_eq!(count(&group), 1);
        assert_eq!(min_by(|v: &i64| *v)(&group), Some(7));
        assert_eq!(distinct_count_by(|v: &i64| Some(*v))(&group), 1);
    }
}
