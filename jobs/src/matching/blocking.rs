//! Blocking keys as fixed-size numbers, so that candidate generation holds one compact
//! arrangement of every publication's keys.
//!
//! A [`BlockingKey`] is the hash of a key's text with its [`Family`] in the low three bits:
//! the keys of every family live in one collection and one arrangement, and the family of
//! a pair found through a key is read back from the key. A [`PublicationKey`] is the hash of
//! a publication's id, a [`ReferenceId`] the hash of a reference's document and number. Two
//! texts (or ids) with one hash make a spurious candidate pair at worst, which the scorer then
//! judges like any other (on the reference's own text and the publication's own record): with
//! 61 and 64 bits of hash that happens about once in 10^9 keys, never silently loses a pair,
//! and never merges two records.

use serde::{Deserialize, Serialize};

use super::authors::{publication_author_keys, reference_author_keys};
use super::bibliographic::JournalForms;
use super::features::Family;
use super::features::ParsedReference;
use super::identifiers::{find_identifiers, Identifier};
use super::indexed::IndexedPublication;
use super::text::stable_hash;
use super::title::{publication_title_keys, reference_title_keys};
use super::{publication_blocking_keys, Method, MAX_PUBLICATIONS_PER_AUTHOR_KEY, MAX_PUBLICATIONS_PER_TITLE_KEY};
use crate::domain::{Publication, ReferenceKey};

/// A publication in candidate generation: the hash of its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicationKey(u64);

impl PublicationKey {
    /// The key of the publication with this id.
    pub fn of(id: &str) -> Self {
        PublicationKey(stable_hash(id))
    }
}

/// A reference in candidate generation: the hash of its key, so that the reference side of
/// the blocking join sorts and merges fixed-size numbers rather than document ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReferenceId(u64);

impl ReferenceId {
    /// The id of the reference `key` (its document and number).
    pub fn of(key: &ReferenceKey) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        ReferenceId(hasher.finish())
    }
}

/// A blocking key of one family (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockingKey(u64);

const FAMILY_BITS: u32 = 3;

impl BlockingKey {
    /// The key of `text` in `family`.
    pub fn new(family: Family, text: &str) -> Self {
        Self::hashed(family, stable_hash(text))
    }

    /// The key in `family` whose hash is `hash`: a text's [`stable_hash`], or a title
    /// shingle's hash (`title`).
    pub fn hashed(family: Family, hash: u64) -> Self {
        BlockingKey(hash << FAMILY_BITS | u64::from(family.code()))
    }

    /// The family of the key.
    pub fn family(self) -> Family {
        Family::of_code(self.0 as u8)
    }

    /// A key of this family shared by more publications than this is too common to block
    /// on: it would explode the join and says little. `None`: no limit (identifiers and
    /// bibliographic keys name one publication, or a few twins).
    pub fn limit(self) -> Option<isize> {
        match self.family() {
            Family::Title => Some(MAX_PUBLICATIONS_PER_TITLE_KEY),
            Family::Author => Some(MAX_PUBLICATIONS_PER_AUTHOR_KEY),
            Family::Bibliographic | Family::Identifier(_) => None,
        }
    }
}

fn identifier_key(identifier: &Identifier) -> BlockingKey {
    let (method, text) = match identifier {
        Identifier::Doi(doi) => (Method::Doi, doi),
        Identifier::Pmid(pmid) => (Method::Pmid, pmid),
        Identifier::Pmcid(pmcid) => (Method::Pmcid, pmcid),
    };
    BlockingKey::new(Family::Identifier(method), text)
}

/// Every blocking key of a publication: its identifiers, bibliographic, title and author keys;
/// the title and author keys from its `record`, where its title and authors are normalised,
/// its journal's forms from `forms`.
pub fn publication_keys(publication: &Publication, record: &IndexedPublication, forms: &mut JournalForms) -> Vec<BlockingKey> {
    let mut keys: Vec<BlockingKey> = publication.identifiers().iter().map(identifier_key).collect();
    keys.extend(publication_blocking_keys(publication, forms).into_iter().map(|hash| BlockingKey::hashed(Family::Bibliographic, hash)));
    keys.extend(publication_title_keys(&record.title_words()).into_iter().map(|hash| BlockingKey::hashed(Family::Title, hash)));
    let authors = publication_author_keys(record.authors().next(), record.year());
    keys.extend(authors.into_iter().map(|hash| BlockingKey::hashed(Family::Author, hash)));
    keys.sort();
    keys.dedup();
    keys
}

/// Every blocking key of a reference `text`: its identifiers, its `bibliographic` keys (see
/// [`super::bibliographic::ReferenceLocators::keys`]) and the title and author keys of its words, already `parsed`.
pub fn reference_keys(text: &str, bibliographic: &[u64], parsed: &ParsedReference) -> Vec<BlockingKey> {
    let words = parsed.words();
    let identifiers = find_identifiers(text);
    // Sized once: a title key per content word at most, an author key per year.
    let mut keys = Vec::with_capacity(identifiers.len() + bibliographic.len() + words.content().len() + parsed.locators.years.len());
    keys.extend(identifiers.iter().map(identifier_key));
    keys.extend(bibliographic.iter().map(|&hash| BlockingKey::hashed(Family::Bibliographic, hash)));
    keys.extend(reference_title_keys(words.content()).into_iter().map(|hash| BlockingKey::hashed(Family::Title, hash)));
    keys.extend(
        reference_author_keys(words.all(), &parsed.locators.years).into_iter().map(|hash| BlockingKey::hashed(Family::Author, hash)),
    );
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::super::journals::JournalTable;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_key_knows_its_family(text in ".{0,40}", family in 0..Family::ALL.len()) {
            prop_assert_eq!(BlockingKey::new(Family::ALL[family], &text).family(), Family::ALL[family]);
        }
    }

    #[test]
    fn one_text_in_two_families_is_two_keys() {
        assert_ne!(BlockingKey::new(Family::Title, "x"), BlockingKey::new(Family::Author, "x"));
        assert_eq!(BlockingKey::new(Family::Title, "x").limit(), Some(MAX_PUBLICATIONS_PER_TITLE_KEY));
        assert_eq!(BlockingKey::new(Family::Identifier(Method::Doi), "10.1/x").limit(), None);
    }

    #[test]
    fn a_reference_shares_its_publications_keys() {
        let publication = Publication {
            id: "1".into(),
            pmid: Some("123".into()),
            title: Some("Gastrointestinal systemic sclerosis in mixed connective tissue disease".into()),
            authors: vec!["Bennett".into()],
            journal_abbreviation: Some("Arthritis Rheum".into()),
            volume: Some("22".into()),
            year: Some(1979),
            pages: Some("429-30".into()),
            ..Publication::default()
        };
        let journals = JournalTable::default();
        let mut forms = JournalForms::new(std::sync::Arc::new(JournalTable::default()));
        let text = "Bennett T. Gastrointestinal systemic sclerosis in mixed connective tissue disease. Arthritis Rheum. 1979;22(4):429-30. PMID: 123";
        let locators = super::super::bibliographic::reference_locators(text, &journals);
        let shared: Vec<Family> = reference_keys(text, &locators.keys, &ParsedReference::located(text, locators.clone()))
            .into_iter()
            .filter(|k| publication_keys(&publication, &IndexedPublication::of(&publication), &mut forms).contains(k))
            .map(BlockingKey::family)
            .collect();
        for family in [Family::Identifier(Method::Pmid), Family::Bibliographic, Family::Title, Family::Author] {
            assert!(shared.contains(&family), "{family:?} in {shared:?}");
        }
    }
}
