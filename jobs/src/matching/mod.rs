//! Matching references to publications inside the dataflow.
//!
//! Candidate generation joins references and publications on shared keys (identifiers,
//! bibliographic keys), so a publication that arrives after a document finds the
//! references waiting for it, and a deleted or revised publication retracts or changes its
//! candidates. Each candidate is scored; per reference the best candidate becomes the
//! citation unless another publication scores as well (an ambiguous reference stays
//! unmatched). A learned scorer plugs in as a replacement for [`features::rule_score`].

pub mod authors;
pub mod bibliographic;
pub mod blocking;
pub mod features;
pub mod identifiers;
pub mod indexed;
pub mod journals;
pub mod text;
pub mod title;
pub mod variants;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use citeflow_engine::metrics::metrics;
use citeflow_operators::arrange::ArrangeCompact;
use citeflow_operators::best::leaders_by_key;
use citeflow_operators::count::keys_over_limit;
use citeflow_operators::reduce::ReduceTotal;
use citeflow_operators::unzip::flat_unzip;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

use differential_dataflow::lattice::Lattice;

use crate::domain::{Publication, ReferenceKey};
use crate::publications::{entries, take_apart};
use bibliographic::{publication_keys, reference_locators, JournalForms, PublicationLocators};
use blocking::{BlockingKey, PublicationKey, ReferenceId};
use citeflow_operators::inference::{batched_map, rescore_with_latest, BinaryClassifier, InferenceError};
use citeflow_operators::join::JoinByBatch;
use features::{features_with, rule_score, title_evidence, Families, Features, ParsedReference, FEATURE_NAMES, TITLE_EVIDENCE_SCORE};
use indexed::IndexedPublication;
use journals::JournalTable;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;
use timely::order::TotalOrder;

/// Scores are fixed-point: millionths.
pub const SCORE_SCALE: f64 = 1_000_000.0;

/// How a citation was found, in increasing order of preference at equal score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Method {
    /// The publication's title is contained in the reference.
    Title,
    /// Journal, volume or year, and first page agree.
    Bibliographic,
    /// The reference carries the publication's PMCID.
    Pmcid,
    /// The reference carries the publication's PMID.
    Pmid,
    /// The reference carries the publication's DOI.
    Doi,
}

impl Method {
    /// The name written to the views.
    pub fn name(self) -> &'static str {
        match self {
            Method::Title => "title",
            Method::Bibliographic => "bibliographic",
            Method::Pmcid => "pmcid",
            Method::Pmid => "pmid",
            Method::Doi => "doi",
        }
    }
}

/// A publication proposed for a reference; ordered by score, then method, then id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// Score in millionths.
    pub score: u32,
    /// How it was found.
    pub method: Method,
    /// The publication id.
    pub publication: String,
}

impl Candidate {
    /// The score as a number in [0, 1].
    pub fn score(&self) -> f64 {
        f64::from(self.score) / SCORE_SCALE
    }
}

/// A title key shared by more publications than this is too common to block on: it would
/// explode the join and says little.
pub const MAX_PUBLICATIONS_PER_TITLE_KEY: isize = 200;

/// An author key (surname and year) shared by more publications than this is too common to
/// block on.
pub const MAX_PUBLICATIONS_PER_AUTHOR_KEY: isize = 50;

/// The bibliographic keys of a publication, its journal's forms from `forms`, as the hashes of
/// their texts (see [`bibliographic::publication_keys`]).
pub fn publication_blocking_keys(publication: &Publication, forms: &mut JournalForms) -> Vec<u64> {
    let locators = PublicationLocators {
        journals: [publication.journal_abbreviation.as_deref(), publication.journal_title.as_deref()],
        volume: publication.volume.as_deref(),
        year: publication.year,
        pages: publication.pages.as_deref(),
    };
    publication_keys(locators, &forms.of(locators.journals))
}

/// What matching reads of the publications, each part in its own collection (made by
/// [`crate::publications::take_apart`], which moves the parts rather than cloning entries).
pub struct IndexedPublications<'scope, T: Timestamp> {
    /// Every blocking key of every publication.
    pub keys: VecCollection<'scope, T, (BlockingKey, PublicationKey)>,
    /// The record the features read, per publication.
    pub records: VecCollection<'scope, T, (PublicationKey, IndexedPublication)>,
}

/// Candidate pairs for every reference with their features: pairs that share a blocking key
/// (identifiers, bibliographic keys, title keys or author keys; see [`blocking`]), one pair
/// per (reference, publication) with every family that found it.
///
/// Publications are held twice: their keys, as numbers in one arrangement shared by every
/// family, and their records by [`PublicationKey`]. Keys of a limited family that more
/// publications share than its limit (see [`blocking::BlockingKey::limit`]) are left out on the
/// references' side, so a common key costs its count, not its pairs; the counts are read from
/// the shared arrangement, not from a copy of the keys.
pub fn candidate_features<'scope, T>(
    publications: IndexedPublications<'scope, T>,
    references: VecCollection<'scope, T, (ReferenceKey, String)>,
    journals: Arc<JournalTable>,
) -> VecCollection<'scope, T, (ReferenceKey, (String, Features))>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
{
    let index = publications.keys.arrange_compact_named("Arrange: publication keys");
    let common = keys_over_limit(index.clone(), |key: &BlockingKey| key.limit());

    // A reference is parsed once, for its keys and its features. A pair meets its
    // publication's record first (shared, not copied: a record is two pointers), then its
    // parsed reference, so that a reference's pairs are scored one after another while the
    // parsed reference is in cache, rather than each when its publication comes up.
    let parsed = references.map(move |(reference, text)| {
        let mut locators = reference_locators(&text, &journals);
        let bibliographic = std::mem::take(&mut locators.keys);
        let parsed = ParsedReference::located(&text, locators);
        let (id, keys) = (ReferenceId::of(&reference), blocking::reference_keys(&text, &bibliographic, &parsed));
        (reference, (id, keys, Arc::new(parsed)))
    });
    // The blocking join and the pairs' reduction carry references as fixed-size ids; the
    // pairs meet their references' keys and texts again by id. Only the keys of a family with a
    // limit can be common, so only they are checked against the common keys.
    let (limited, unlimited) = flat_unzip(parsed.clone(), "Reference keys", |(_, (id, keys, _))| {
        keys.into_iter().map(|key| (key, id)).partition::<Vec<_>, _>(|(key, _)| key.limit().is_some())
    });
    let families = limited
        .antijoin_compact_named("Reference keys, common left out", common)
        .concat(unlimited)
        .arrange_compact_named("Arrange: reference keys")
        .join_by_batch(index, |key, reference, publication| Some(((*reference, *publication), key.family())))
        .reduce_total_named("Candidate pairs", |_pair, found, output| {
            output.push((found.iter().map(|(family, _)| **family).collect::<Families>(), 1))
        });
    let parsed = parsed.map(|(reference, (id, _, parsed))| (id, (reference, parsed)));
    let records = publications.records.arrange_compact_named("Arrange: publication records");
    families
        .map(|((reference, publication), families)| (publication, (reference, families)))
        .arrange_compact_named("Arrange: candidate pairs by publication")
        .join_by_batch(records, |_, (reference, families), publication| Some((*reference, (publication.clone(), *families))))
        .arrange_compact_named("Arrange: candidate pairs by reference")
        .join_by_batch(parsed.arrange_compact_named("Arrange: parsed references"), |_, (publication, families), (reference, parsed)| {
            let fields = publication.fields();
            Some((reference.clone(), (fields.id().to_string(), features_with(parsed, publication, fields, *families))))
        })
}

/// How candidate pairs are scored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scorer {
    /// The hand-written rules of [`features::rule_score`].
    Rules,
    /// A classifier trained on the exported features, run by ONNX Runtime in batches.
    Model {
        /// ONNX Runtime's shared library.
        runtime: PathBuf,
        /// The ONNX model.
        model: ModelSource,
    },
}

/// The scorer trained in `training/` (report in `training/report.md`), built into citeflow.
pub const BUNDLED_MODEL: &[u8] = include_bytes!("../../../training/scorer.onnx");

/// Where a learned scorer's model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// [`BUNDLED_MODEL`].
    Bundled,
    /// A model file; the running job watches it for replacements.
    File(PathBuf),
}

impl ModelSource {
    /// Loads the model with ONNX Runtime's library `runtime`, checking its input width.
    pub fn load(&self, runtime: &Path) -> Result<BinaryClassifier, InferenceError> {
        match self {
            ModelSource::Bundled => BinaryClassifier::from_bytes(runtime, &self.name(), BUNDLED_MODEL, FEATURE_NAMES.len()),
            ModelSource::File(path) => BinaryClassifier::load(runtime, path, FEATURE_NAMES.len()),
        }
    }

    /// How logs name the model.
    pub fn name(&self) -> String {
        match self {
            ModelSource::Bundled => "the bundled scorer".to_string(),
            ModelSource::File(path) => path.display().to_string(),
        }
    }
}

/// Candidate pairs scored by the rule scorer; rejected pairs are dropped.
pub fn rule_scored<'scope, T>(
    pairs: VecCollection<'scope, T, (ReferenceKey, (String, Features))>,
) -> VecCollection<'scope, T, (ReferenceKey, Candidate)>
where
    T: Timestamp + Lattice + Ord,
{
    pairs.flat_map(|(reference, (publication, features))| {
        rule_score(&features).map(|(score, method)| (reference, Candidate { score, method, publication }))
    })
}

/// Pairs scored per inference call.
const INFERENCE_BATCH: usize = 4096;

/// Candidate publications for every reference, scored by `scorer`. Identifier matches score
/// 1; other pairs score the rule score or the model's probability. With a model, `replacements`
/// (model files' bytes, e.g. from a file watcher) swap the model inside the running dataflow:
/// existing candidates are re-scored and only changed scores flow on.
pub fn candidates<'scope, T>(
    publications: VecCollection<'scope, T, (String, Publication)>,
    references: VecCollection<'scope, T, (ReferenceKey, String)>,
    journals: Arc<JournalTable>,
    scorer: &Scorer,
    replacements: Option<Stream<'scope, T, Vec<Vec<u8>>>>,
) -> Result<VecCollection<'scope, T, (ReferenceKey, Candidate)>, InferenceError>
where
    T: Timestamp + Lattice + Ord + TotalOrder,
{
    score_pairs(candidate_features(take_apart(entries(publications, journals.clone())).1, references, journals), scorer, replacements)
}

/// Scores candidate pairs with `scorer` (see [`candidates`]); several matchers can score the
/// same pairs, sharing candidate generation.
pub fn score_pairs<'scope, T>(
    pairs: VecCollection<'scope, T, (ReferenceKey, (String, Features))>,
    scorer: &Scorer,
    replacements: Option<Stream<'scope, T, Vec<Vec<u8>>>>,
) -> Result<VecCollection<'scope, T, (ReferenceKey, Candidate)>, InferenceError>
where
    T: Timestamp + Lattice + Ord + TotalOrder,
{
    let Scorer::Model { runtime, model } = scorer else { return Ok(rule_scored(pairs)) };
    let classifier = model.load(runtime)?;
    let score = |classifier: &mut BinaryClassifier, batch: Vec<(ReferenceKey, (String, Features))>| {
        // A pair an identifier found scores 1 whatever the model says, so the model sees only
        // the others.
        let rows: Vec<_> = batch.iter().filter(|(_, (_, features))| features.identifier.is_none()).map(|(_, (_, f))| f.vector()).collect();
        let mut probabilities = classifier.probabilities(&rows).expect("the model was checked at load with rows of this width").into_iter();
        batch
            .into_iter()
            .map(|(reference, (publication, features))| {
                let mut learned = || (probabilities.next().expect("a probability per pair without an identifier") * 1e6) as u32;
                let (score, method) = match features.identifier {
                    Some(method) => (1_000_000, method),
                    None if title_evidence(&features) => (learned().max(TITLE_EVIDENCE_SCORE), Method::Title),
                    None if features.bibliographic => (learned(), Method::Bibliographic),
                    None => (learned(), Method::Title),
                };
                (reference, Candidate { score, method, publication })
            })
            .collect::<Vec<_>>()
    };
    Ok(match replacements {
        None => {
            let mut classifier = classifier;
            batched_map(pairs, INFERENCE_BATCH, "scorer", move |batch| score(&mut classifier, batch))
        }
        Some(replacements) => {
            let (runtime, name) = (runtime.clone(), model.name());
            let load = move |bytes: Vec<u8>| match BinaryClassifier::from_bytes(&runtime, &name, &bytes, FEATURE_NAMES.len()) {
                Ok(replacement) => {
                    tracing::info!(model = %name, "new scorer model loaded; re-scoring candidates");
                    metrics().reloads.with_label_values(&["model", "loaded"]).inc();
                    Some(replacement)
                }
                Err(error) => {
                    tracing::error!(%error, "the replacement model is unusable; keeping the current one");
                    metrics().reloads.with_label_values(&["model", "refused"]).inc();
                    None
                }
            };
            let rescore = move |classifier: &mut BinaryClassifier, batch: &[_]| score(classifier, batch.to_vec());
            rescore_with_latest(pairs, replacements.broadcast(), classifier, INFERENCE_BATCH, "scorer", load, rescore)
        }
    })
}

/// When the best candidate of a reference becomes its citation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRule {
    /// The lowest score of a citation, in millionths.
    pub min_score: u32,
    /// How far (in millionths) the best must score above any other publication.
    pub margin: u32,
}

impl Default for DecisionRule {
    fn default() -> Self {
        DecisionRule { min_score: 800_000, margin: 20_000 }
    }
}

impl DecisionRule {
    /// Whether `best` becomes the citation: it scores at least the minimum and beats the
    /// runner-up (another publication) by the margin.
    pub fn accepts(&self, best: &Candidate, runner_up: Option<&Candidate>) -> bool {
        best.score >= self.min_score
            && runner_up.is_none_or(|other| other.publication == best.publication || other.score + self.margin <= best.score)
    }
}

/// References decided per batch when a new rule re-decides them.
const DECISION_BATCH: usize = 65_536;

/// Per reference, the best candidate, if `rule` accepts it over the runner-up (an ambiguous
/// reference stays unmatched). With `updates` (new rules, e.g. from a watched configuration
/// file; broadcast to every worker) the rule is a dataflow input: a new rule re-decides the
/// references held, and only the citations whose decision changes flow on.
pub fn decide<'scope, T>(
    candidates: VecCollection<'scope, T, (ReferenceKey, Candidate)>,
    rule: DecisionRule,
    updates: Option<Stream<'scope, T, Vec<DecisionRule>>>,
) -> VecCollection<'scope, T, (ReferenceKey, Candidate)>
where
    T: Timestamp + Lattice + Ord + TotalOrder,
{
    let leaders = leaders_by_key(candidates);
    let Some(updates) = updates else {
        return leaders
            .flat_map(move |(reference, (best, runner_up))| rule.accepts(&best, runner_up.as_ref()).then_some((reference, best)));
    };
    let decide_batch = |rule: &mut DecisionRule, batch: &[(ReferenceKey, (Candidate, Option<Candidate>))]| {
        batch
            .iter()
            .map(|(reference, (best, runner_up))| rule.accepts(best, runner_up.as_ref()).then(|| (reference.clone(), best.clone())))
            .collect()
    };
    rescore_with_latest(leaders, updates, rule, DECISION_BATCH, "decision", Some, decide_batch).flat_map(|decision| decision)
}

#[cfg(test)]
mod tests {
    //! Incremental matching ends in the same citations as a batch run, whatever the order in
    //! which publications and references arrive, are revised and are deleted.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use differential_dataflow::input::Input;
    use proptest::prelude::*;

    use super::*;
    use crate::synthetic::{render, Noise, Rng, STYLES};

    fn publication(index: usize, variant: usize) -> Publication {
        let titles = [
            "Dopamine modulates acute responses to cocaine in Drosophila",
            "Serum antibody to Pseudomonas exotoxin measured by passive hemagglutination",
            "Conjugal transfer of resistance plasmids in Neisseria gonorrhoeae",
            "Structural organization of ribosomal DNA in Drosophila melanogaster",
        ];
        Publication {
            id: format!("p{index}"),
            pmid: Some(format!("{}", 100 + index)),
            doi: index.is_multiple_of(2).then(|| format!("10.1000/test.{index}")),
            title: Some(format!("{} {}", titles[index % titles.len()], if variant == 1 { "revisited" } else { "" }).trim().to_string()),
            authors: vec!["Bainton".into(), "Tsai".into()],
            journal_title: Some("Journal of bacteriology".into()),
            journal_abbreviation: Some("J Bacteriol".into()),
            volume: Some(format!("{}", 10 + index % 3)),
            year: Some(1977),
            pages: Some(format!("{}-{}", 100 + 10 * index + variant, 109 + 10 * index + variant)),
            ..Publication::default()
        }
    }

    fn reference_text(choice: usize) -> String {
        let mut rng = Rng::new(choice as u64);
        let clean = Noise { typo: 0.0, truncated_title: 0.0, missing_locator: 0.0, year_off: 0.0 };
        match choice % 8 {
            7 => "World Health Organization. Global strategy on human resources for health. Geneva; 2016.".into(),
            _ => render(&publication(choice % 6, (choice / 6) % 2), STYLES[choice % STYLES.len()], clean, &mut rng),
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        SetPublication(usize, usize),
        DeletePublication(usize),
        SetReference(u32, usize),
        DeleteReference(u32),
        Advance,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..6, 0usize..2).prop_map(|(i, v)| Op::SetPublication(i, v)),
            1 => (0usize..6).prop_map(Op::DeletePublication),
            4 => (0u32..6, 0usize..24).prop_map(|(r, c)| Op::SetReference(r, c)),
            1 => (0u32..6).prop_map(Op::DeleteReference),
            2 => Just(Op::Advance),
        ]
    }

    type Decision = (ReferenceKey, Candidate);
    type Decisions = Vec<Decision>;
    /// The input changes of one epoch: publications, then references.
    type Round = (Vec<((String, Publication), isize)>, Vec<((ReferenceKey, String), isize)>);

    /// What the tests build over publications and references.
    type Matching<D> = for<'s> fn(
        VecCollection<'s, u64, (String, Publication)>,
        VecCollection<'s, u64, (ReferenceKey, String)>,
    ) -> VecCollection<'s, u64, D>;

    /// Runs `matching` over `rounds`, the input changes per epoch; the updates of its output.
    fn drive<D: Clone + Send + 'static>(rounds: Vec<Round>, matching: Matching<D>) -> Vec<(D, u64, isize)> {
        let output = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        timely::execute(timely::Config::thread(), move |worker| {
            let sink = sink.clone();
            let (mut publications, mut references) = worker.dataflow::<u64, _, _>(|scope| {
                let (publication_input, publications) = scope.new_collection::<(String, Publication), isize>();
                let (reference_input, references) = scope.new_collection::<(ReferenceKey, String), isize>();
                matching(publications, references).inspect(move |update| sink.lock().unwrap().push(update.clone()));
                (publication_input, reference_input)
            });
            for (round, (publication_changes, reference_changes)) in rounds.iter().enumerate() {
                publication_changes.iter().for_each(|(publication, diff)| publications.update(publication.clone(), *diff));
                reference_changes.iter().for_each(|(reference, diff)| references.update(reference.clone(), *diff));
                publications.advance_to(round as u64 + 1);
                references.advance_to(round as u64 + 1);
            }
        })
        .unwrap();
        let updates = output.lock().unwrap().clone();
        updates
    }

    /// Runs the matching dataflow; `rounds` are the input changes per epoch.
    fn run(rounds: Vec<Round>) -> Decisions {
        let mut updates: Vec<(Decision, isize)> = drive(rounds, |publications, references| {
            let scored = candidates(publications, references, Arc::new(JournalTable::bundled()), &Scorer::Rules, None).unwrap();
            decide(scored, DecisionRule::default(), None)
        })
        .into_iter()
        .map(|(decision, _, diff)| (decision, diff))
        .collect();
        differential_dataflow::consolidation::consolidate(&mut updates);
        assert!(updates.iter().all(|(_, diff)| *diff == 1), "{updates:?}");
        updates.into_iter().map(|(decision, _)| decision).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn incremental_matching_equals_a_batch_run(ops in proptest::collection::vec(op(), 1..40)) {
            let mut publications: BTreeMap<usize, Publication> = BTreeMap::new();
            let mut references: BTreeMap<u32, String> = BTreeMap::new();
            let mut rounds = vec![(Vec::new(), Vec::new())];
            for op in ops {
                let round = rounds.last_mut().unwrap();
                match op {
                    Op::SetPublication(i, variant) => {
                        if let Some(old) = publications.insert(i, publication(i, variant)) {
                            round.0.push(((old.id.clone(), old), -1));
                        }
                        round.0.push(((format!("p{i}"), publication(i, variant)), 1));
                    }
                    Op::DeletePublication(i) => {
                        if let Some(old) = publications.remove(&i) {
                            round.0.push(((old.id.clone(), old), -1));
                        }
                    }
                    Op::SetReference(r, choice) => {
                        let key = ("doc".to_string(), r);
                        if let Some(old) = references.insert(r, reference_text(choice)) {
                            round.1.push(((key.clone(), old), -1));
                        }
                        round.1.push(((key, reference_text(choice)), 1));
                    }
                    Op::DeleteReference(r) => {
                        if let Some(old) = references.remove(&r) {
                            round.1.push(((("doc".to_string(), r), old), -1));
                        }
                    }
                    Op::Advance => rounds.push((Vec::new(), Vec::new())),
                }
            }
            let batch = vec![(
                publications.values().map(|p| ((p.id.clone(), p.clone()), 1)).collect(),
                references.iter().map(|(r, text)| ((("doc".to_string(), *r), text.clone()), 1)).collect(),
            )];
            prop_assert_eq!(run(rounds), run(batch));
        }
    }

    /// Candidate pairs present after each round of `rounds`, found for references by
    /// [`candidate_features`].
    fn pairs_after_each(rounds: Vec<Round>) -> Vec<usize> {
        let count = rounds.len() as u64;
        let changes = drive(rounds, |publications, references| {
            let journals = Arc::new(JournalTable::bundled());
            candidate_features(take_apart(entries(publications, journals.clone())).1, references, journals)
        });
        (0..count)
            .map(|round| changes.iter().filter(|(_, time, _)| *time <= round).map(|(_, _, diff)| *diff).sum::<isize>() as usize)
            .collect()
    }

    #[test]
    fn a_key_more_publications_share_than_its_limit_finds_no_pair() {
        // Publications sharing only their first author and year: one author key.
        let sharing = |index: usize| Publication {
            id: format!("n{index}"),
            title: Some(format!(
                "Quantum dot {} spectroscopy",
                ["alpha", "beta", "gamma", "delta", "omega"][index % 5].repeat(index / 5 + 1)
            )),
            authors: vec!["Nakamura".into()],
            year: Some(1990),
            ..Publication::default()
        };
        let publication = |index: usize, diff| ((format!("n{index}"), sharing(index)), diff);
        let limit = MAX_PUBLICATIONS_PER_AUTHOR_KEY as usize;
        let reference = ((("doc".to_string(), 0), "Nakamura T. Plumage colour in quail. 1990.".to_string()), 1);
        let rounds = vec![
            ((0..limit).map(|index| publication(index, 1)).collect(), vec![reference]),
            (vec![publication(limit, 1)], Vec::new()),
            (vec![publication(0, -1)], Vec::new()),
        ];
        assert_eq!(pairs_after_each(rounds), [limit, 0, limit], "the key is left out while over its limit, and only then");
    }

    #[test]
    fn the_generated_references_do_match() {
        let rounds = vec![(
            (0..6).map(|i| ((format!("p{i}"), publication(i, 0)), 1)).collect(),
            (0..6u32).map(|r| ((("doc".to_string(), r), reference_text(r as usize)), 1)).collect(),
        )];
        let decisions = run(rounds);
        assert!(decisions.len() >= 5, "the property test exercises real matches: {decisions:?}");
    }
}
