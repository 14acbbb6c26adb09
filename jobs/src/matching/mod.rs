//! Matching references to publications inside the dataflow.
//!
//! Candidate generation joins references and publications on shared keys (identifiers,
//! bibliographic keys), so a publication that arrives after a document finds the
//! references waiting for it, and a deleted or revised publication retracts or changes its
//! candidates. Each candidate is scored; per reference the best candidate becomes the
//! citation unless another publication scores as well (an ambiguous reference stays
//! unmatched). Title candidates and a learned scorer plug in as further candidate families
//! and a replacement for [`bibliographic_score`].

pub mod bibliographic;
pub mod identifiers;
pub mod journals;
pub mod text;

use std::sync::Arc;

use citeflow_operators::best::best_by_key;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

use differential_dataflow::lattice::Lattice;

use crate::domain::{Publication, ReferenceKey};
use bibliographic::{publication_keys, reference_locators, PublicationLocators};
use identifiers::{find_identifiers, Identifier};
use journals::JournalTable;

/// Scores are fixed-point: millionths.
pub const SCORE_SCALE: f64 = 1_000_000.0;

/// How a citation was found, in increasing order of preference at equal score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Method {
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

/// What the bibliographic join knows about a reference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReferenceFacts {
    /// The reference.
    pub reference: ReferenceKey,
    /// Years written in it.
    pub years: Vec<i32>,
    /// Volumes written in it.
    pub volumes: Vec<String>,
}

/// What the bibliographic join knows about a publication.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicationFacts {
    /// The publication id.
    pub publication: String,
    /// Its year.
    pub year: Option<i32>,
    /// Its volume, normalised.
    pub volume: Option<String>,
}

/// Scores a bibliographic candidate, or rejects it when the years contradict each other.
pub fn bibliographic_score(reference: &ReferenceFacts, publication: &PublicationFacts) -> Option<u32> {
    let year_agrees = match publication.year {
        Some(year) if !reference.years.is_empty() => {
            if !reference.years.iter().any(|y| (y - year).abs() <= 1) {
                return None;
            }
            true
        }
        _ => false,
    };
    let volume_agrees = publication.volume.as_ref().is_some_and(|v| reference.volumes.contains(v));
    Some(800_000 + 50_000 * u32::from(year_agrees) + 50_000 * u32::from(volume_agrees))
}

/// The facts a publication contributes to the bibliographic join.
pub fn publication_facts(publication: &Publication) -> PublicationFacts {
    PublicationFacts {
        publication: publication.id.clone(),
        year: publication.year,
        volume: publication.volume.as_deref().and_then(text::leading_number),
    }
}

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

/// Candidate publications for every reference: identifier matches and bibliographic
/// matches, one candidate per (reference, publication, method).
pub fn candidates<'scope, T>(
    publications: VecCollection<'scope, T, (String, Publication)>,
    references: VecCollection<'scope, T, (ReferenceKey, String)>,
    journals: Arc<JournalTable>,
) -> VecCollection<'scope, T, (ReferenceKey, Candidate)>
where
    T: Timestamp + Lattice + Ord,
{
    let publication_ids = publications
        .clone()
        .flat_map(|(id, publication)| publication.identifiers().into_iter().map(move |i| (i, id.clone())));
    let reference_ids = references
        .clone()
        .flat_map(|(reference, text)| find_identifiers(&text).into_iter().map(move |i| (i, reference.clone())));
    let by_identifier = reference_ids.join_map(publication_ids, |identifier, reference, publication| {
        let candidate = Candidate { score: 1_000_000, method: Method::of(identifier), publication: publication.clone() };
        (reference.clone(), candidate)
    });

    let publication_journals = journals.clone();
    let publication_keys = publications.flat_map(move |(_, publication)| {
        let facts = publication_facts(&publication);
        publication_blocking_keys(&publication, &publication_journals).into_iter().map(move |k| (k, facts.clone()))
    });
    let reference_keys = references.flat_map(move |(reference, text)| {
        let locators = reference_locators(&text, &journals);
        let facts = ReferenceFacts { reference, years: locators.years, volumes: locators.volumes };
        locators.keys.into_iter().map(move |k| (k, facts.clone()))
    });
    let by_bibliography = reference_keys
        .join_map(publication_keys, |_key, reference, publication| {
            let score = bibliographic_score(reference, publication);
            (reference.reference.clone(), publication.publication.clone(), score)
        })
        .flat_map(|(reference, publication, score)| {
            score.map(|score| (reference, Candidate { score, method: Method::Bibliographic, publication }))
        });

    by_identifier.concat(by_bibliography).distinct()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(years: Vec<i32>, volumes: Vec<&str>) -> ReferenceFacts {
        ReferenceFacts { reference: ("d".into(), 0), years, volumes: volumes.into_iter().map(String::from).collect() }
    }

    fn publication(year: Option<i32>, volume: Option<&str>) -> PublicationFacts {
        PublicationFacts { publication: "p".into(), year, volume: volume.map(String::from) }
    }

    #[test]
    fn contradicting_years_reject_the_candidate() {
        assert_eq!(bibliographic_score(&reference(vec![1990], vec!["12"]), &publication(Some(1977), Some("12"))), None);
    }

    #[test]
    fn agreement_raises_the_score_but_stays_below_identifiers() {
        let full = bibliographic_score(&reference(vec![1977], vec!["12"]), &publication(Some(1978), Some("12"))).unwrap();
        let partial = bibliographic_score(&reference(vec![], vec!["12"]), &publication(Some(1978), Some("12"))).unwrap();
        assert!(partial < full && full < 1_000_000);
    }
}
