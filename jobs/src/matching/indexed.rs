//! A publication as candidate scoring holds it: what [`features`](super::features::features)
//! reads of the record, normalised once when the publication is indexed, not once per
//! candidate pair, and packed into two allocations, one of them shared.
//!
//! The fields are the words and locators the features compare (content words of the title
//! and of each journal name, each author's normalised surname, the volume, issue and first and
//! last page as numbers), the year, two traits of the title and the id. Normalised text holds
//! ASCII letters, digits and spaces only, so the fields are joined by separators that none of
//! them contains; the id, which may hold anything, comes last. The journal names are packed
//! apart and held once per distinct journal ([`JournalNames`]): a journal has thousands of
//! publications. An arrangement of these records holds two thin pointers ([`ArcStr`] keeps the
//! length with the text, so a pointer is one word) and a word of small values per publication:
//! 24 bytes, and a merge clones pointers.

use std::collections::HashSet;

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

use super::bibliographic::ByJournalNames;
use super::text::{first_page, last_page, leading_number, pieces, push_words, words};
use super::title::is_content_word;
use super::variants::notice_and_part;
use crate::domain::Publication;

/// The numbers of an [`IndexedPublication`] ([`IndexedPublication::numbers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbers<'a> {
    /// The volume's leading number.
    pub volume: Option<&'a str>,
    /// The issue's leading number.
    pub issue: Option<&'a str>,
    /// The first page (see [`first_page`]).
    pub first_page: Option<&'a str>,
    /// The last page, written out (see [`last_page`]).
    pub last_page: Option<&'a str>,
}

/// The packed fields of an [`IndexedPublication`], split ([`IndexedPublication::fields`]).
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    packed: [&'a str; FIELDS],
}

impl<'a> Fields<'a> {
    /// The publication id.
    pub fn id(&self) -> &'a str {
        self.packed[Packed::Id as usize]
    }

    /// The content words of the title, in order.
    pub fn title_words(&self) -> Vec<&'a str> {
        split_words(self.packed[Packed::Title as usize])
    }

    /// Each author's surname, normalised (see [`words`]), in order.
    pub fn authors(&self) -> impl Iterator<Item = &'a str> + Clone {
        authors_of(self.packed[Packed::Authors as usize])
    }

    /// The volume's and the issue's leading numbers and the first and last page.
    pub fn numbers(&self) -> Numbers<'a> {
        let at = |n: usize| Some(self.packed[Packed::Numbers as usize + n]).filter(|value| !value.is_empty());
        Numbers { volume: at(0), issue: at(1), first_page: at(2), last_page: at(3) }
    }
}

/// The surnames in a packed authors field.
fn authors_of(authors: &str) -> impl Iterator<Item = &str> + Clone {
    pieces(authors, AUTHOR as u8).filter(move |_| !authors.is_empty())
}

/// Separates the packed fields.
const FIELD: char = '|';
/// Separates the authors within their field.
const AUTHOR: char = ',';

/// The packed fields, in order: title, authors, the four [`Numbers`] (volume, issue, first
/// and last page), and [`Packed::Id`], last, which takes the rest.
#[derive(Clone, Copy)]
enum Packed {
    Title = 0,
    Authors = 1,
    Numbers = 2,
    Id = 6,
}

/// Fields, the id included.
const FIELDS: usize = Packed::Id as usize + 1;

/// What the features read of one publication (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndexedPublication {
    fields: ArcStr,
    /// The content words of the abbreviated and of the full journal name, `FIELD` between.
    journals: ArcStr,
    /// The year, when `dated`.
    year: i32,
    dated: bool,
    part: Option<u8>,
    notice: bool,
}

impl IndexedPublication {
    /// The indexed form of `publication`, holding its own copy of the journal names.
    pub fn of(publication: &Publication) -> Self {
        Self::sharing(publication, &mut JournalNames::default())
    }

    /// The indexed form of `publication`, written into one buffer field by field; the journal
    /// names come from (or join) `journals`.
    pub fn sharing(publication: &Publication, journals: &mut JournalNames) -> Self {
        let journal_names = journals.of([publication.journal_abbreviation.as_deref(), publication.journal_title.as_deref()]);
        let mut packed = String::with_capacity(128);
        let title = publication.title.as_deref().unwrap_or("");
        let title_words = words(title);
        push_content_words(&mut packed, &title_words);
        packed.push(FIELD);
        for (n, author) in publication.authors.iter().enumerate() {
            if n > 0 {
                packed.push(AUTHOR);
            }
            push_words(&mut packed, author);
        }
        packed.push(FIELD);
        let pages = publication.pages.as_deref();
        let numbers = [
            publication.volume.as_deref().and_then(leading_number),
            publication.issue.as_deref().and_then(leading_number),
            pages.and_then(first_page),
            pages.and_then(last_page),
        ];
        for number in numbers {
            packed.push_str(number.as_deref().unwrap_or(""));
            packed.push(FIELD);
        }
        packed.push_str(&publication.id);
        let (notice, part) = notice_and_part(title, &title_words);
        IndexedPublication {
            fields: ArcStr::from(packed),
            journals: journal_names,
            year: publication.year.unwrap_or_default(),
            dated: publication.year.is_some(),
            part,
            notice,
        }
    }

    /// The bytes this record holds on its own: the record, its fields' allocation and that
    /// allocation's reference counts (the journal names are shared).
    pub fn own_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 2 * std::mem::size_of::<usize>() + self.fields.len()
    }

    /// The packed fields, split in one pass: what a candidate pair's features read of the
    /// record, which would otherwise look for each field from the start.
    pub fn fields(&self) -> Fields<'_> {
        let mut packed = [""; FIELDS];
        let mut rest = self.fields.as_str();
        for field in &mut packed[..FIELDS - 1] {
            (*field, rest) = rest.split_once(FIELD).unwrap_or((rest, ""));
        }
        packed[FIELDS - 1] = rest;
        Fields { packed }
    }

    /// The publication id (the features read it with the other fields, [`Self::fields`]).
    #[cfg(test)]
    fn id(&self) -> &str {
        self.fields().id()
    }

    /// The content words of the title, in order.
    pub fn title_words(&self) -> Vec<&str> {
        split_words(self.leading(Packed::Title))
    }

    /// The content words of the abbreviated and of the full journal name.
    pub fn journal_words(&self) -> [Vec<&str>; 2] {
        let (abbreviation, title) = self.journals.split_once(FIELD).unwrap_or_default();
        [split_words(abbreviation), split_words(title)]
    }

    /// Each author's surname, normalised (see [`words`]), in order (a record may list
    /// thousands).
    pub fn authors(&self) -> impl Iterator<Item = &str> + Clone {
        authors_of(self.leading(Packed::Authors))
    }

    /// The volume's and the issue's leading numbers and the first and last page (the features
    /// read them with the other fields, [`Self::fields`]).
    #[cfg(test)]
    fn numbers(&self) -> Numbers<'_> {
        self.fields().numbers()
    }

    /// One of the fields before the id, found without splitting those after it.
    fn leading(&self, field: Packed) -> &str {
        self.fields.splitn(field as usize + 2, FIELD).nth(field as usize).unwrap_or("")
    }

    /// The publication year.
    pub fn year(&self) -> Option<i32> {
        self.dated.then_some(self.year)
    }

    /// The part of a series the title names (see [`notice_and_part`]).
    pub fn part(&self) -> Option<u8> {
        self.part
    }

    /// Whether the title reads as a notice (see [`notice_and_part`]).
    pub fn notice(&self) -> bool {
        self.notice
    }
}

/// Appends the content words (see [`content_words`](super::title::content_words)) among the
/// normalised `words` ([`words`]), separated by spaces.
fn push_content_words(packed: &mut String, words: &str) {
    for (n, word) in pieces(words, b' ').filter(|w| is_content_word(w)).enumerate() {
        if n > 0 {
            packed.push(' ');
        }
        packed.push_str(word);
    }
}

fn split_words(field: &str) -> Vec<&str> {
    // Sized once: a pair's features split a title and two journal names.
    let mut words = Vec::with_capacity(field.bytes().filter(|&b| b == b' ').count() + 1);
    words.extend(pieces(field, b' ').filter(|w| !w.is_empty()));
    words
}

/// The journal names of the publications indexed on one worker, each held once.
///
/// Names no record holds any more are dropped whenever the set has doubled since it was last
/// swept, so it stays within twice the distinct journals of the live records. The names of a
/// pair of raw journal names are worked out once ([`ByJournalNames`]), not once per record.
#[derive(Debug, Default)]
pub struct JournalNames {
    names: HashSet<ArcStr>,
    swept_at: usize,
    by_raw: ByJournalNames<ArcStr>,
}

/// Below this many names the set is not swept.
const SWEEP_FROM: usize = 1024;

impl JournalNames {
    /// The shared copy of the content words of the journal `names` (ISO abbreviation, full
    /// title), `FIELD` between.
    pub fn of(&mut self, names: [Option<&str>; 2]) -> ArcStr {
        if self.names.len() >= SWEEP_FROM.max(2 * self.swept_at) {
            // The pairs held by their raw names hold names too.
            self.by_raw.forget();
            self.names.retain(|held| ArcStr::strong_count(held).is_some_and(|count| count > 1));
            self.swept_at = self.names.len();
        }
        let held = &mut self.names;
        self.by_raw.get_or(names, || {
            let mut packed = String::with_capacity(64);
            push_content_words(&mut packed, &words(names[0].unwrap_or("")));
            packed.push(FIELD);
            push_content_words(&mut packed, &words(names[1].unwrap_or("")));
            held.get(packed.as_str()).cloned().unwrap_or_else(|| {
                let name = ArcStr::from(packed);
                held.insert(name.clone());
                name
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn publication(id: &str, authors: &[&str]) -> Publication {
        Publication {
            id: id.to_string(),
            title: Some("The Effect of Sleep on Memory: Part 2".into()),
            authors: authors.iter().map(|a| a.to_string()).collect(),
            journal_title: Some("The Journal of Sleep Research".into()),
            journal_abbreviation: Some("J Sleep Res".into()),
            volume: Some("012 Suppl".into()),
            issue: Some("3".into()),
            pages: Some("G265-77".into()),
            year: Some(2001),
            ..Publication::default()
        }
    }

    #[test]
    fn fields_are_normalised_once() {
        let indexed = IndexedPublication::of(&publication("MED:1|2,3", &["Martínez de la Cruz", "Smith"]));
        assert_eq!(indexed.id(), "MED:1|2,3", "the id comes back whole, separators and all");
        assert_eq!(indexed.title_words(), ["effect", "sleep", "memory", "part"]);
        assert_eq!(indexed.journal_words(), [vec!["sleep", "res"], vec!["journal", "sleep", "research"]]);
        assert_eq!(indexed.authors().collect::<Vec<_>>(), ["martinez de la cruz", "smith"]);
        let numbers = indexed.numbers();
        assert_eq!((numbers.volume, numbers.issue), (Some("12"), Some("3")));
        assert_eq!((numbers.first_page, numbers.last_page), (Some("g265"), Some("g277")));
        assert_eq!((indexed.year(), indexed.part(), indexed.notice()), (Some(2001), Some(2), false));
        let fields = indexed.fields();
        assert_eq!((fields.id(), fields.title_words(), fields.numbers()), (indexed.id(), indexed.title_words(), numbers));
        assert!(fields.authors().eq(indexed.authors()), "split at once or field by field, the same fields");
    }

    #[test]
    fn journal_names_are_shared_and_dropped_once_unheld() {
        let mut journals = JournalNames::default();
        let first = IndexedPublication::sharing(&publication("1", &["Smith"]), &mut journals);
        let second = IndexedPublication::sharing(&publication("2", &["Jones"]), &mut journals);
        assert!(ArcStr::ptr_eq(&first.journals, &second.journals), "one copy of a journal's names");
        assert_eq!(first.journal_words(), IndexedPublication::of(&publication("1", &["Smith"])).journal_words());
        drop((first, second));
        let names = |n: usize| Publication { journal_title: Some(format!("Journal n{n}")), ..publication("x", &[]) };
        let held: Vec<IndexedPublication> = (0..SWEEP_FROM).map(|n| IndexedPublication::sharing(&names(n), &mut journals)).collect();
        assert_eq!(journals.names.len(), SWEEP_FROM, "the first sweep dropped the unheld name");
        drop(held);
        let _kept = IndexedPublication::sharing(&names(SWEEP_FROM), &mut journals);
        assert_eq!(journals.names.len(), SWEEP_FROM + 1, "swept at the doubled size only");
        for n in 0..SWEEP_FROM {
            let _ = IndexedPublication::sharing(&names(SWEEP_FROM + 1 + n), &mut journals);
        }
        assert!(journals.names.len() <= SWEEP_FROM + 2, "{} names held: the unheld ones went", journals.names.len());
    }

    #[test]
    fn a_record_is_three_words() {
        assert_eq!(std::mem::size_of::<IndexedPublication>(), 24, "two thin pointers and the small values");
    }

    #[test]
    fn missing_fields_are_absent() {
        let indexed = IndexedPublication::of(&Publication { id: "x".into(), ..Publication::default() });
        assert!(indexed.title_words().is_empty() && indexed.authors().next().is_none());
        let numbers = indexed.numbers();
        assert_eq!((numbers.volume, numbers.first_page, numbers.last_page, indexed.year()), (None, None, None, None));
    }

    proptest! {
        #[test]
        fn any_text_keeps_its_id_and_authors(id in "\\PC*", authors in proptest::collection::vec("\\PC{0,12}", 0..5)) {
            let authors: Vec<&str> = authors.iter().map(String::as_str).collect();
            let indexed = IndexedPublication::of(&publication(&id, &authors));
            prop_assert_eq!(indexed.id(), id.as_str());
            prop_assert_eq!(indexed.fields().id(), id.as_str());
            let expected: Vec<String> = authors.iter().map(|a| words(a)).collect();
            let kept: Vec<String> = indexed.authors().map(str::to_string).collect();
            // One author without a letter or digit reads as none: the features treat both alike.
            if expected.iter().all(String::is_empty) && expected.len() <= 1 {
                prop_assert!(kept.is_empty());
            } else {
                prop_assert_eq!(kept, expected);
            }
        }
    }
}
