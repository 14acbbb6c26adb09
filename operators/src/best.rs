//! The best value per key, with a guard against ties: a key keeps its best value only when
//! `accept` agrees given the runner-up.

use differential_dataflow::{ExchangeData, VecCollection};
use timely::progress::Timestamp;

use differential_dataflow::lattice::Lattice;

/// For each key, the greatest value, kept only if `accept(best, runner_up)` holds (for
/// instance: the best must beat the runner-up by a margin). Values are compared with `Ord`,
/// so put the quantity that ranks candidates first in the value type.
pub fn best_by_key<'scope, T, K, V, F>(collection: VecCollection<'scope, T, (K, V)>, accept: F) -> VecCollection<'scope, T, (K, V)>
where
    T: Timestamp + Lattice + Ord,
    K: ExchangeData + std::hash::Hash,
    V: ExchangeData,
    F: Fn(&V, Option<&V>) -> bool + 'static,
{
    collection.reduce(move |_key, input, output| {
        let mut present = input.iter().filter(|(_, count)| *count > 0).map(|(value, _)| *value).rev();
        if let Some(best) = present.next() {
            if accept(best, present.next()) {
                output.push((best.clone(), 1));
            }
        }
    })
}
