//! Turning a timely stream of records into a differential collection of insertions.

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

/// Each record of `stream` becomes an insertion (`+1`) into a collection, at the time the
/// record carries in the stream.
pub fn insertions<'scope, T, D>(stream: Stream<'scope, T, Vec<D>>) -> VecCollection<'scope, T, D>
where
    T: Timestamp + TotalOrder,
    D: Clone + 'static,
{
    stream
        .unary(Pipeline, "Insertions", |_capability, _info| {
            move |input, output| {
                input.for_each_stamp(|capability, data| {
                    let Some(time) = capability.least().cloned() else { return };
                    output.session(&capability).give_iterator(data.flat_map(|batch| batch.drain(..)).map(|d| (d, time.clone(), 1isize)));
                });
            }
        })
        .as_collection()
}
