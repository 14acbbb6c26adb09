//! Validation with dead-lettering: every record either decodes into a typed value or becomes
//! a dead letter; nothing is dropped and nothing stops the dataflow.

use citeflow_engine::metrics::metrics;
use citeflow_engine::sink::DeadLetter;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use crate::stamp::insertions;

/// Splits `stream` with `decode` into the values that decoded and a collection of dead
/// letters, counting dead letters by reason.
pub fn validate<'scope, T, M, D, F>(
    stream: Stream<'scope, T, Vec<M>>,
    mut decode: F,
) -> (Stream<'scope, T, Vec<D>>, VecCollection<'scope, T, DeadLetter>)
where
    T: Timestamp + TotalOrder,
    M: 'static,
    D: Clone + 'static,
    F: FnMut(M) -> Result<D, DeadLetter> + 'static,
{
    let (valid, rejected) = stream.ok_err(move |message| {
        decode(message).inspect_err(|letter| {
            metrics().dead_letters.with_label_values(&[letter.reason.as_str()]).inc();
        })
    });
    (valid, insertions(rejected))
}
