//! The job's domain types: publications (EPMC/PubMed records) and policy documents with the
//! references they cite, in the internal form every version of the input is upcast to.

use serde::{Deserialize, Serialize};

use crate::matching::identifiers::{normalise_doi, normalise_pmcid, normalise_pmid, Identifier};

/// A publication, keyed by its id (PMID, else PMCID, else DOI).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Publication {
    /// The publication id: the Kafka key.
    pub id: String,
    /// PubMed id.
    pub pmid: Option<String>,
    /// PubMed Central id.
    pub pmcid: Option<String>,
    /// DOI, normalised.
    pub doi: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Author surnames (or collective names), in order.
    pub authors: Vec<String>,
    /// Full journal title.
    pub journal_title: Option<String>,
    /// ISO journal abbreviation.
    pub journal_abbreviation: Option<String>,
    /// Volume.
    pub volume: Option<String>,
    /// Issue.
    pub issue: Option<String>,
    /// Publication year.
    pub year: Option<i32>,
    /// Page range.
    pub pages: Option<String>,
}

impl Publication {
    /// The identifiers under which references may cite this publication.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mut ids = Vec::new();
        ids.extend(self.pmid.as_deref().and_then(normalise_pmid).map(Identifier::Pmid));
        ids.extend(self.pmcid.as_deref().and_then(normalise_pmcid).map(Identifier::Pmcid));
        ids.extend(self.doi.as_deref().and_then(normalise_doi).map(Identifier::Doi));
        ids
    }
}

/// A policy document and the references it cites, keyed by its id.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyDocument {
    /// Document id: the Kafka key.
    pub id: String,
    /// Publishing organisation.
    pub organisation: String,
    /// Title.
    pub title: String,
    /// Where it was found.
    pub url: Option<String>,
    /// Publication time (event time), RFC 3339.
    pub published_at: String,
    /// Reference strings, in document order.
    pub references: Vec<String>,
}

/// The reference identity: document id and position in its reference list.
pub type ReferenceKey = (String, u32);
