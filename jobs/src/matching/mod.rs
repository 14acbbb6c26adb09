//! Matching references to publications inside the dataflow.
//!
//! Candidate generation joins references and publications on shared keys (identifiers,
//! bibliographic keys), so a publication that arrives after a document finds the
//! references waiting for it, and a deleted or revised publication retracts or changes its
//! candidates. Each candidate is scored; per reference the best candidate becomes the
//! citation unless another publication scores as well (an ambiguous reference stays
//! unmatched). A learned scorer plugs in as a replacement for [`features::rule_score`].

pub mod bibliographic;
pub mod features;
pub mod identifiers;
pub mod journals;
pub mod text;
pub mod title;

use std::sync::Arc;

use citeflow_operators::best::best_by_key;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

use differential_dataflow::lattice::Lattice;

use crate::domain::{Publication, ReferenceKey};
use bibliographic::{publication_keys, reference_locators, PublicationLocators};
use citeflow_operators::inference::{batched_map, BinaryClassifier, InferenceError};
use features::{features, rule_score, Family, Features, FEATURE_NAMES};
use identifiers::{find_identifiers, Identifier};
use journals::JournalTable;
use title::{publication_title_keys, reference_title_keys};

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

    fn of(identifier: &Identifier) -> Method {
        match identifier {
            Identifier::Doi(_) => Method::Doi,
            Identifier::Pmid(_) => Method::Pmid,
            Identifier::Pmcid(_) => Method::Pmcid,
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

/// The bibliographic keys of a publication.
pub fn publication_blocking_keys(publication: &Publication, journals: &JournalTable) -> Vec<String> {
    let locators = PublicationLocators {
        journals: [publication.journal_abbreviation.as_deref(), publication.journal_title.as_deref()],
        volume: publication.volume.as_deref(),
        year: publication.year,
        pages: publication.pages.as_deref(),
    };
    publication_keys(locators, journals)
}

/// Candidate pairs for every reference with their features: pairs found by identifiers,
/// bibliographic keys or title keys, deduplicated per (reference, publication).
pub fn candidate_features<'scope, T>(
    publications: VecCollection<'scope, T, (String, Publication)>,
    references: VecCollection<'scope, T, (ReferenceKey, String)>,
    journals: Arc<JournalTable>,
) -> VecCollection<'scope, T, (ReferenceKey, (String, Features))>
where
    T: Timestamp + Lattice + Ord,
{
    let publication_ids = publications
        .clone()
        .flat_map(|(id, publication)| publication.identifiers().into_iter().map(move |i| (i, id.clone())));
    let reference_ids = references
        .clone()
        .flat_map(|(reference, text)| find_identifiers(&text).into_iter().map(move |i| (i, reference.clone())));
    let by_identifier = reference_ids
        .join_map(publication_ids, |identifier, reference, publication| {
            (reference.clone(), (publication.clone(), Family::Identifier(Method::of(identifier))))
        });

    let key_journals = journals.clone();
    let publication_keys = publications
        .clone()
        .flat_map(move |(id, publication)| publication_blocking_keys(&publication, &key_journals).into_iter().map(move |k| (k, id.clone())));
    let key_journals = journals.clone();
    let reference_keys = references
        .clone()
        .flat_map(move |(reference, text)| reference_locators(&text, &key_journals).keys.into_iter().map(move |k| (k, reference.clone())));
    let by_bibliography = reference_keys
        .join_map(publication_keys, |_key, reference, publication| (reference.clone(), (publication.clone(), Family::Bibliographic)));

    let title_keys = publications.clone().flat_map(|(id, publication)| {
        publication.title.as_deref().map(publication_title_keys).unwrap_or_default().into_iter().map(move |k| (k, id.clone()))
    });
    let common = title_keys.clone().map(|(key, _)| key).count().filter(|(_, count)| *count > MAX_PUBLICATIONS_PER_TITLE_KEY).map(|(key, _)| key);
    let title_keys = title_keys.antijoin(common);
    let reference_title = references
        .clone()
        .flat_map(|(reference, text)| reference_title_keys(&text).into_iter().map(move |k| (k, reference.clone())));
    let by_title = reference_title.join_map(title_keys, |_key, reference, publication| (reference.clone(), (publication.clone(), Family::Title)));

    let families = by_identifier
        .concat(by_bibliography)
        .concat(by_title)
        .map(|(reference, (publication, family))| ((reference, publication), family))
        .distinct()
        .reduce(|_pair, found, output| output.push((found.iter().map(|(family, _)| **family).collect::<Vec<Family>>(), 1)));
    families
        .map(|((reference, publication), families)| (reference, (publication, families)))
        .join_map(references, |reference, (publication, families), text| {
            (publication.clone(), (reference.clone(), text.clone(), families.clone()))
        })
        .join_map(publications, move |_, (reference, text, families), publication| {
            (reference.clone(), (publication.id.clone(), features(text, publication, families, &journals)))
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
        runtime: std::path::PathBuf,
        /// The ONNX model.
        model: std::path::PathBuf,
    },
}

/// Pairs scored per inference call.
const INFERENCE_BATCH: usize = 4096;

/// Candidate publications for every reference, scored by `scorer`. Identifier matches score
/// 1; other pairs score the rule score or the model's probability.
pub fn candidates<'scope, T>(
    publications: VecCollection<'scope, T, (String, Publication)>,
    references: VecCollection<'scope, T, (ReferenceKey, String)>,
    journals: Arc<JournalTable>,
    scorer: &Scorer,
) -> Result<VecCollection<'scope, T, (ReferenceKey, Candidate)>, InferenceError>
where
    T: Timestamp + Lattice + Ord,
{
    let pairs = candidate_features(publications, references, journals);
    match scorer {
        Scorer::Rules => Ok(pairs.flat_map(|(reference, (publication, features))| {
            rule_score(&features).map(|(score, method)| (reference, Candidate { score, method, publication }))
        })),
        Scorer::Model { runtime, model } => {
            let mut classifier = BinaryClassifier::load(runtime, model, FEATURE_NAMES.len())?;
            let scored = batched_map(pairs, INFERENCE_BATCH, "scorer", move |batch: &[(ReferenceKey, (String, Features))]| {
                let rows: Vec<Vec<f32>> = batch.iter().map(|(_, (_, features))| features.vector().to_vec()).collect();
                let probabilities = classifier.probabilities(&rows).expect("the model ran on this input shape at load");
                batch
                    .iter()
                    .zip(probabilities)
                    .map(|((reference, (publication, features)), probability)| {
                        let (score, method) = match features.identifier {
                            Some(method) => (1_000_000, method),
                            None if features.bibliographic => ((probability * 1e6) as u32, Method::Bibliographic),
                            None => ((probability * 1e6) as u32, Method::Title),
                        };
                        (reference.clone(), Candidate { score, method, publication: publication.clone() })
                    })
                    .collect()
            });
            Ok(scored)
        }
    }
}

/// Per reference, the best candidate scoring at least `min_score` (millionths), unless a
/// different publication scores as well.
pub fn decide<'scope, T>(
    candidates: VecCollection<'scope, T, (ReferenceKey, Candidate)>,
    min_score: u32,
) -> VecCollection<'scope, T, (ReferenceKey, Candidate)>
where
    T: Timestamp + Lattice + Ord,
{
    best_by_key(candidates, move |best: &Candidate, runner_up: Option<&Candidate>| {
        best.score >= min_score
            && runner_up.is_none_or(|other| other.publication == best.publication || other.score < best.score)
    })
}
