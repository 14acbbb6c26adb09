//! The best value per key and its runner-up, so that a decision can guard against ties.

use differential_dataflow::lattice::Lattice;
use differential_dataflow::{ExchangeData, VecCollection};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use crate::reduce::ReduceTotal;

/// For each key, the greatest value and the next greatest (if any). Values are compared with
/// `Ord`, so put the quantity that ranks them first in the value type. A change to a key's
/// values changes its output only when the top two change.
pub fn leaders_by_key<'scope, T, K, V>(collection: VecCollection<'scope, T, (K, V)>) -> VecCollection<'scope, T, (K, (V, Option<V>))>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
    K: ExchangeData + std::hash::Hash,
    V: ExchangeData,
{
    collection.reduce_total_named("Leaders", move |_key, input, output| {
        let mut present = input.iter().filter(|(_, count)| *count > 0).map(|(value, _)| *value).rev();
        if let Some(best) = present.next() {
            output.push(((best.clone(), present.next().cloned()), 1));
        }
    })
}
