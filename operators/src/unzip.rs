//! One collection split into two, each update's data moved into its parts rather than cloned.
//!
//! A collection read by several operators is cloned for each reader after the first: every
//! message, and every string and buffer in it. When the readers want different parts of a
//! record (a row to write, keys to arrange, a record to look up), [`flat_unzip`] hands each
//! reader only its parts: `logic` takes the data of an update by value and returns two
//! iterators; every part of either is an update at the same time with the same difference. The
//! two collections are thus linear in the input: a retraction retracts the parts its insertion
//! made, as long as `logic` is a function of the data alone. The operator pipelines (no
//! exchange) and keeps no state.

use differential_dataflow::difference::Semigroup;
use differential_dataflow::VecCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::progress::operate::FrontierInterest;
use timely::progress::Timestamp;

/// The parts `logic` makes of each update of `collection`, as two collections (see the module
/// documentation).
///
/// ```
/// use citeflow_operators::unzip::flat_unzip;
/// use differential_dataflow::input::Input;
///
/// timely::example(|scope| {
///     let people = scope.new_collection_from(vec![("ada".to_string(), vec!["math", "engines"])]).1;
///     // Names to write, and one (topic, name) pair per topic to arrange.
///     let (names, topics) = flat_unzip(people, "People", |(name, topics)| {
///         let pairs: Vec<_> = topics.into_iter().map(|topic| (topic, name.len())).collect();
///         (Some(name), pairs)
///     });
///     names.inspect(|x| println!("{x:?}"));
///     topics.inspect(|x| println!("{x:?}"));
/// });
/// ```
pub fn flat_unzip<'scope, T, D, R, A, B, I, J, L>(
    collection: VecCollection<'scope, T, D, R>,
    name: &str,
    mut logic: L,
) -> (VecCollection<'scope, T, A, R>, VecCollection<'scope, T, B, R>)
where
    T: Timestamp,
    D: 'static,
    R: Semigroup + Clone + 'static,
    A: 'static,
    B: 'static,
    I: IntoIterator<Item = A>,
    J: IntoIterator<Item = B>,
    L: FnMut(D) -> (I, J) + 'static,
{
    let stream = collection.inner;
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    let (first, first_stream) = builder.new_output();
    let (second, second_stream) = builder.new_output();
    let mut first = OutputBuilder::from(first);
    let mut second = OutputBuilder::from(second);
    builder.build(move |_| {
        move |_frontiers| {
            let mut first = first.activate();
            let mut second = second.activate();
            input.for_each_stamp(|capability, data| {
                let mut firsts = first.session(&capability);
                let mut seconds = second.session(&capability);
                for (datum, time, diff) in data.flat_map(|batch| batch.drain(..)) {
                    let (a, b) = logic(datum);
                    firsts.give_iterator(a.into_iter().map(|a| (a, time.clone(), diff.clone())));
                    seconds.give_iterator(b.into_iter().map(|b| (b, time.clone(), diff.clone())));
                }
            });
        }
    });
    (VecCollection::new(first_stream), VecCollection::new(second_stream))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use differential_dataflow::input::Input;
    use proptest::prelude::*;

    use super::*;

    type Captured = Arc<Mutex<Vec<((u8, u8), u64, isize)>>>;

    proptest! {
        /// Each side is what mapping the collection to that side alone gives, at every time:
        /// the split is the two maps without the clone.
        #[test]
        fn each_side_is_the_map_to_it(rounds in prop::collection::vec(prop::collection::vec((0u8..8, 0u8..4, any::<bool>()), 0..12), 1..6)) {
            let parts = |(key, count): (u8, u8)| ((0..count).map(move |i| (key, i)), Some((key, count)));
            let [split_a, split_b, mapped_a, mapped_b]: [Captured; 4] = Default::default();
            let sinks = (split_a.clone(), split_b.clone(), mapped_a.clone(), mapped_b.clone());
            timely::execute_directly(move |worker| {
                let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                    let (input, collection) = scope.new_collection::<(u8, u8), isize>();
                    let (a, b) = flat_unzip(collection.clone(), "Split", parts);
                    fn record<'a>(c: VecCollection<'a, u64, (u8, u8)>, sink: Captured) -> VecCollection<'a, u64, (u8, u8)> {
                        c.inspect(move |(d, t, r)| sink.lock().unwrap().push((*d, *t, *r)))
                    }
                    record(a, sinks.0.clone());
                    record(b, sinks.1.clone());
                    record(collection.clone().flat_map(move |d| parts(d).0), sinks.2.clone());
                    let (probe, _) = record(collection.flat_map(move |d| parts(d).1), sinks.3.clone()).probe();
                    (input, probe)
                });
                for (round, changes) in rounds.iter().enumerate() {
                    for &(key, count, insert) in changes {
                        input.update((key, count), if insert { 1 } else { -1 });
                    }
                    input.advance_to(round as u64 + 1);
                    input.flush();
                    worker.step_while(|| probe.less_than(input.time()));
                }
            });
            for (split, mapped) in [(split_a, mapped_a), (split_b, mapped_b)] {
                let (mut split, mut mapped) = (split.lock().unwrap().clone(), mapped.lock().unwrap().clone());
                differential_dataflow::consolidation::consolidate_updates(&mut split);
                differential_dataflow::consolidation::consolidate_updates(&mut mapped);
                prop_assert_eq!(split, mapped);
            }
        }
    }
}
