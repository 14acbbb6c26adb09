//! Batched model inference: a function applied to a collection a batch at a time (so a model
//! amortises its per-call cost), and ONNX models run by ONNX Runtime, loaded dynamically from
//! a shared library (e.g. the one in PyPI's `onnxruntime` wheel), so nothing is downloaded at
//! build time.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use crate::stash::{stash_records, stash_updates, Stash};
use citeflow_engine::metrics::metrics;
use differential_dataflow::{AsCollection, VecCollection};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

/// Applies `infer` to the records of `collection` in batches of at most `batch` records, which
/// it takes by value (moved out of the stream's containers, not cloned); `infer` must return one
/// output per input, in order, and be a pure function of its input (so the result is a
/// differential collection like `map` would give). Batch latency is recorded as
/// `citeflow_stage_latency_seconds{stage}`.
pub fn batched_map<'scope, T, D, D2, F>(
    collection: VecCollection<'scope, T, D>,
    batch: usize,
    stage: &'static str,
    mut infer: F,
) -> VecCollection<'scope, T, D2>
where
    T: Timestamp,
    D: Clone + 'static,
    D2: Clone + 'static,
    F: FnMut(Vec<D>) -> Vec<D2> + 'static,
{
    let batch = batch.max(1);
    collection
        .inner
        .unary(Pipeline, "BatchedMap", move |_capability, _info| {
            move |input, output| {
                input.for_each(|capability, data| {
                    let mut session = output.session(&capability);
                    let mut updates = data.drain(..);
                    loop {
                        let (records, stamps): (Vec<D>, Vec<(T, isize)>) =
                            updates.by_ref().take(batch).map(|(record, time, diff)| (record, (time, diff))).unzip();
                        if records.is_empty() {
                            break;
                        }
                        let started = Instant::now();
                        let results = infer(records);
                        metrics().stage_latency.with_label_values(&[stage]).observe(started.elapsed().as_secs_f64());
                        assert_eq!(results.len(), stamps.len(), "{stage}: one output per input");
                        for (result, (time, diff)) in results.into_iter().zip(stamps) {
                            session.give((result, time, diff));
                        }
                    }
                });
            }
        })
        .as_collection()
}

/// Scores every record of `data` with the latest model, in batches, and keeps each record's
/// output. A record is scored when it arrives, with the model current at its time; when a
/// replacement arrives on `updates` (turned into a model by `load`, which may refuse it) at
/// time `t`, every record held is re-scored and only the outputs that change are retracted and
/// re-inserted, at `t`. So the result always equals scoring each record with the model of its
/// time, and downstream operators see only what a new model changes.
///
/// `updates` must reach every worker that holds data (broadcast it).
pub fn rescore_with_latest<'scope, T, D, D2, U, M, L, F>(
    data: VecCollection<'scope, T, D>,
    updates: Stream<'scope, T, Vec<U>>,
    initial: M,
    batch: usize,
    stage: &'static str,
    mut load: L,
    mut infer: F,
) -> VecCollection<'scope, T, D2>
where
    T: Timestamp + TotalOrder,
    D: Clone + Ord + Hash + 'static,
    D2: Clone + Eq + 'static,
    U: Clone + 'static,
    M: 'static,
    L: FnMut(U) -> Option<M> + 'static,
    F: FnMut(&mut M, &[D]) -> Vec<D2> + 'static,
{
    let batch = batch.max(1);
    let mut model = initial;
    let mut score = move |model: &mut M, records: &[D]| -> Vec<D2> {
        let mut outputs = Vec::with_capacity(records.len());
        for chunk in records.chunks(batch) {
            let started = Instant::now();
            let results = infer(model, chunk);
            metrics().stage_latency.with_label_values(&[stage]).observe(started.elapsed().as_secs_f64());
            assert_eq!(results.len(), chunk.len(), "{stage}: one output per input");
            outputs.extend(results);
        }
        outputs
    };
    data.inner
        .binary_frontier(updates, Pipeline, Pipeline, "RescoreWithLatest", move |_capability, _info| {
            let mut held: HashMap<D, (isize, D2)> = HashMap::new();
            let mut records: Stash<T, (D, isize)> = BTreeMap::new();
            let mut models: Stash<T, U> = BTreeMap::new();
            move |(data_input, data_frontier), (model_input, model_frontier), output| {
                data_input.for_each(|capability, batch| stash_updates(&mut records, capability, batch));
                model_input.for_each(|capability, batch| stash_records(&mut models, capability, batch));
                let complete = |time: &T| !data_frontier.less_equal(time) && !model_frontier.less_equal(time);
                loop {
                    let next = [records.keys().next(), models.keys().next()].into_iter().flatten().min().cloned();
                    let Some(time) = next.filter(|t| complete(t)) else { break };
                    let replacements = models.remove(&time);
                    let arrivals = records.remove(&time);
                    let capability = match (&replacements, &arrivals) {
                        (Some((capability, _)), _) | (None, Some((capability, _))) => capability.clone(),
                        (None, None) => unreachable!("a time comes from one of the stashes"),
                    };
                    let mut session = output.session(&capability);
                    let replaced = replacements.and_then(|(_, updates)| updates.into_iter().filter_map(&mut load).last());
                    if let Some(replacement) = replaced {
                        model = replacement;
                        let keys: Vec<D> = held.keys().cloned().collect();
                        for (record, rescored) in keys.iter().zip(score(&mut model, &keys)) {
                            let (count, current) = held.get_mut(record).expect("held");
                            if *current != rescored {
                                session.give((current.clone(), time.clone(), -*count));
                                session.give((rescored.clone(), time.clone(), *count));
                                *current = rescored;
                            }
                        }
                    }
                    let Some((_, mut arrivals)) = arrivals else { continue };
                    differential_dataflow::consolidation::consolidate(&mut arrivals);
                    let fresh: Vec<D> = arrivals.iter().filter(|(r, _)| !held.contains_key(r)).map(|(r, _)| r.clone()).collect();
                    for (record, scored) in fresh.iter().zip(score(&mut model, &fresh)) {
                        held.insert(record.clone(), (0, scored));
                    }
                    for (record, diff) in arrivals {
                        let (count, current) = held.get_mut(&record).expect("scored above");
                        *count += diff;
                        session.give((current.clone(), time.clone(), diff));
                        if *count == 0 {
                            held.remove(&record);
                        }
                    }
                }
            }
        })
        .as_collection()
}

/// Loading or running a model failed.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// ONNX Runtime could not be loaded or initialised.
    #[error("ONNX Runtime from {library}: {message}")]
    Runtime {
        /// The shared library.
        library: String,
        /// What went wrong.
        message: String,
    },
    /// The model could not be loaded or run.
    #[error("ONNX model {model}: {message}")]
    Model {
        /// The model file.
        model: String,
        /// What went wrong.
        message: String,
    },
}

/// The process's ONNX Runtime environment, loaded once from `library`.
fn environment(library: &Path) -> Result<&'static Environment, InferenceError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    let loaded = ENVIRONMENT.get_or_init(|| {
        let builder = ort::environment::init_from(library).map_err(|e| e.to_string())?;
        builder.with_name("citeflow").build().map_err(|e| e.to_string())
    });
    loaded.as_ref().map_err(|message| InferenceError::Runtime { library: library.display().to_string(), message: message.clone() })
}

/// Where ONNX Runtime's shared library is: `ORT_DYLIB_PATH` if set, else the copy inside the
/// `onnxruntime` wheel that `scripts/services.sh install` puts in `~/.cache/citeflow/python`.
pub fn runtime_library() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(path.into());
    }
    let cache = std::env::var_os("CITEFLOW_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/citeflow")))?;
    let capi = cache.join("python/onnxruntime/capi");
    std::fs::read_dir(capi)
        .ok()?
        .flatten()
        .map(|f| f.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
}

/// A binary classifier exported to ONNX (e.g. by skl2onnx with ZipMap off): one float input
/// of shape `[n, width]`, an output of class probabilities of shape `[n, 2]`.
pub struct BinaryClassifier {
    session: Session,
    model: String,
    input: String,
    output: String,
    width: usize,
}

impl BinaryClassifier {
    /// Loads `model` with the ONNX Runtime in `library`; `width` is the number of features.
    pub fn load(library: &Path, model: &Path, width: usize) -> Result<Self, InferenceError> {
        let name = model.display().to_string();
        let bytes = std::fs::read(model).map_err(|e| InferenceError::Model { model: name.clone(), message: e.to_string() })?;
        Self::from_bytes(library, &name, &bytes, width)
    }

    /// Loads a model from its bytes; `name` identifies it in errors.
    pub fn from_bytes(library: &Path, name: &str, bytes: &[u8], width: usize) -> Result<Self, InferenceError> {
        let name = name.to_string();
        let failed = |message: String| InferenceError::Model { model: name.clone(), message };
        let environment = environment(library)?;
        // One thread per session, deterministic kernels: the dataflow's workers are the
        // parallelism, and a pair's score must not depend on how its batch was split across
        // threads (summing trees in another order changes the last bits of a probability).
        let mut builder = Session::builder(environment)
            .map_err(|e| failed(e.to_string()))?
            .with_intra_threads(1)
            .and_then(|builder| builder.with_deterministic_compute(true))
            .map_err(|e| failed(e.to_string()))?;
        let session = builder.commit_from_memory(bytes).map_err(|e| failed(e.to_string()))?;
        let input = session.inputs().first().map(|i| i.name().to_string()).ok_or_else(|| failed("no input".into()))?;
        let output = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .find(|n| n.contains("prob"))
            .ok_or_else(|| failed("no probabilities output (export with zipmap off)".into()))?;
        let mut classifier = BinaryClassifier { session, model: name, input, output, width };
        // A model that does not take `width` features or does not return two class
        // probabilities per row is refused here, at load, never in the running dataflow.
        classifier.probabilities(&[vec![0.0; width]])?;
        Ok(classifier)
    }

    /// The probability of the positive class for each row of features.
    pub fn probabilities<R: AsRef<[f32]>>(&mut self, rows: &[R]) -> Result<Vec<f32>, InferenceError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let failed = |message: String| InferenceError::Model { model: self.model.clone(), message };
        if let Some(row) = rows.iter().map(AsRef::as_ref).find(|r| r.len() != self.width) {
            return Err(failed(format!("a row has {} features, the model takes {}", row.len(), self.width)));
        }
        let flat: Vec<f32> = rows.iter().flat_map(AsRef::as_ref).copied().collect();
        let tensor = Tensor::from_array(([rows.len(), self.width], flat)).map_err(|e| failed(e.to_string()))?;
        let outputs = self.session.run(ort::inputs![self.input.as_str() => tensor]).map_err(|e| failed(e.to_string()))?;
        let (_, values) = outputs[self.output.as_str()].try_extract_tensor::<f32>().map_err(|e| failed(e.to_string()))?;
        if values.len() != 2 * rows.len() {
            return Err(failed(format!(
                "{} values for {} rows: a binary classifier returns two class probabilities per row",
                values.len(),
                rows.len()
            )));
        }
        Ok(values.chunks(2).map(|pair| pair[1]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input;
    use std::sync::{Arc, Mutex};

    /// The scorer in `training/`, with its 26 features.
    fn trained_scorer() -> BinaryClassifier {
        let library = runtime_library().expect("ONNX Runtime is not installed: run scripts/services.sh install");
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../training/scorer.onnx");
        BinaryClassifier::load(&library, &model, 26).unwrap()
    }

    #[test]
    fn the_trained_scorer_separates_clear_cases() {
        let mut classifier = trained_scorer();
        // Features in the order of citeflow_jobs::matching::features::FEATURE_NAMES.
        let full_title_match =
            vec![0., 0., 0., 1., 1.0, 8., 8., 1., 0., 1., 0., 1., 0., 1., 1., 0., 1.0, 1., 1.0, 0., 0., 1., 1., 1., 0., 0.];
        let other_title = vec![0., 0., 0., 0., 0.1, 8., 9., 0., 1., 0., 1., 0., 1., 1., 0., 1., 0.2, 0., 0., 0., 0., 0., 0., 0., 3., 8.];
        let probabilities = classifier.probabilities(&[full_title_match, other_title]).unwrap();
        assert!(probabilities[0] > 0.9 && probabilities[1] < 0.1, "{probabilities:?}");
        assert!(classifier.probabilities(&[vec![0.0; 3]]).is_err(), "a row of the wrong width is refused");
        let library = runtime_library().expect("ONNX Runtime");
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../training/scorer.onnx");
        let refused = BinaryClassifier::load(&library, &model, 25).err().expect("a model of another input width is refused at load");
        assert!(matches!(refused, InferenceError::Model { .. }), "{refused}");
    }

    #[test]
    fn a_score_does_not_depend_on_its_batch() {
        let mut classifier = trained_scorer();
        let rows: Vec<Vec<f32>> =
            (0..500u32).map(|n| (0..26u32).map(|column| ((n * 7919 + column * 104_729) % 1000) as f32 / 1000.0).collect()).collect();
        let together = classifier.probabilities(&rows).unwrap();
        let alone: Vec<f32> = rows.iter().flat_map(|row| classifier.probabilities(std::slice::from_ref(row)).unwrap()).collect();
        assert_eq!(together.iter().map(|p| p.to_bits()).collect::<Vec<_>>(), alone.iter().map(|p| p.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn a_new_model_rescores_held_records_and_emits_only_changes() {
        let result = Arc::new(Mutex::new(Vec::new()));
        let sink = result.clone();
        timely::execute(timely::Config::thread(), move |worker| {
            let sink = sink.clone();
            let mut models = timely::dataflow::operators::vec::input::Handle::<u64, u32>::new();
            let mut data = worker.dataflow::<u64, _, _>(|scope| {
                use timely::dataflow::operators::vec::Input as _;
                let (input, numbers) = scope.new_collection::<u32, isize>();
                let updates = scope.input_from(&mut models);
                let load = |multiplier: u32| (multiplier > 0).then_some(multiplier);
                rescore_with_latest(numbers, updates, 10u32, 2, "test", load, |model: &mut u32, batch: &[u32]| {
                    batch.iter().map(|n| n * *model).collect()
                })
                .inspect(move |(value, time, diff)| sink.lock().unwrap().push((*time, *value, *diff)));
                input
            });
            for n in [1, 2, 3] {
                data.insert(n);
            }
            data.advance_to(1);
            models.advance_to(1);
            models.send(100);
            data.remove(2);
            data.insert(4);
            data.advance_to(2);
            models.advance_to(2);
            models.send(0);
            models.send(100);
            data.advance_to(3);
            models.advance_to(3);
        })
        .unwrap();
        let updates = result.lock().unwrap().clone();
        let at = |time: u64| {
            let mut changes: Vec<(u32, isize)> = updates.iter().filter(|u| u.0 == time).map(|u| (u.1, u.2)).collect();
            differential_dataflow::consolidation::consolidate(&mut changes);
            changes
        };
        assert_eq!(at(0), vec![(10, 1), (20, 1), (30, 1)]);
        assert_eq!(at(1), vec![(10, -1), (20, -1), (30, -1), (100, 1), (300, 1), (400, 1)]);
        assert!(at(2).is_empty(), "the same model again changes nothing; a refused one is ignored");
    }

    #[test]
    fn batched_map_equals_map() {
        let result = Arc::new(Mutex::new(Vec::new()));
        let sink = result.clone();
        timely::execute(timely::Config::thread(), move |worker| {
            let sink = sink.clone();
            let mut input = worker.dataflow::<u64, _, _>(|scope| {
                let (input, numbers) = scope.new_collection::<u32, isize>();
                batched_map(numbers, 3, "test", |batch: Vec<u32>| {
                    assert!(batch.len() <= 3);
                    batch.into_iter().map(|n| n * 10).collect()
                })
                .inspect(move |(value, _, diff)| sink.lock().unwrap().push((*value, *diff)));
                input
            });
            for n in 0..10 {
                input.insert(n);
            }
            input.advance_to(1);
            input.remove(4);
        })
        .unwrap();
        let mut updates = result.lock().unwrap().clone();
        differential_dataflow::consolidation::consolidate(&mut updates);
        let expected: Vec<(u32, isize)> = (0..10).filter(|n| *n != 4).map(|n| (n * 10, 1)).collect();
        assert_eq!(updates, expected);
    }
}
