//! Features of a candidate (reference, publication) pair, computed in Rust only, and the
//! rule-based scorer that turns them into a decision score. A learned scorer replaces
//! [`rule_score`] and reads the same [`Features`].

use serde::{Deserialize, Serialize};

use super::authors::author_agreement;
use super::bibliographic::{links, reference_locators, ReferenceLocators, MONTHS};
use super::journals::JournalTable;
use super::text::{pieces, words};
use std::cell::OnceCell;
use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use super::indexed::{Fields, IndexedPublication, Numbers};
use super::title::{any_near, can_be_near_long, containment, is_content_word, letters, Lexicon, NEAR_FROM};
use super::variants::notice_and_part;
use super::Method;

/// How a candidate pair was found (a pair can be found by several families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    /// An identifier written in the reference.
    Identifier(Method),
    /// A bibliographic key (journal, volume or year, first page).
    Bibliographic,
    /// A title shingle.
    Title,
    /// The first author's surname and the year.
    Author,
}

impl Family {
    /// Every family, each at the index of its [`Family::code`].
    pub(crate) const ALL: [Family; 8] = [
        Family::Bibliographic,
        Family::Title,
        Family::Author,
        Family::Identifier(Method::Doi),
        Family::Identifier(Method::Pmid),
        Family::Identifier(Method::Pmcid),
        Family::Identifier(Method::Title),
        Family::Identifier(Method::Bibliographic),
    ];

    /// The family's number, below 8: the low bits of its blocking keys, and its bit in
    /// [`Families`].
    pub(crate) fn code(self) -> u8 {
        match self {
            Family::Bibliographic => 0,
            Family::Title => 1,
            Family::Author => 2,
            Family::Identifier(Method::Doi) => 3,
            Family::Identifier(Method::Pmid) => 4,
            Family::Identifier(Method::Pmcid) => 5,
            Family::Identifier(Method::Title) => 6,
            Family::Identifier(Method::Bibliographic) => 7,
        }
    }

    /// The family whose [`Family::code`] is the low three bits of `code`.
    pub(crate) fn of_code(code: u8) -> Family {
        Family::ALL[usize::from(code & 7)]
    }
}

/// The families that found a candidate pair, as a set of their [`Family::code`]s: a byte,
/// which a pair carries through its arrangements without an allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Families(u8);

impl Families {
    /// Whether `family` is one of them.
    pub fn contains(self, family: Family) -> bool {
        self.0 & 1 << family.code() != 0
    }

    /// Each of them, in the order of their codes.
    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL.into_iter().filter(move |family| self.contains(*family))
    }
}

impl FromIterator<Family> for Families {
    fn from_iter<I: IntoIterator<Item = Family>>(families: I) -> Self {
        Families(families.into_iter().fold(0, |set, family| set | 1 << family.code()))
    }
}

/// What is known about one candidate pair. Shares are in millionths, so features can live
/// in differential collections.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Features {
    /// The strongest identifier shared, if any.
    pub identifier: Option<Method>,
    /// Found by a bibliographic key.
    pub bibliographic: bool,
    /// Share of the publication's title words found in the reference, in millionths.
    pub title_containment: u32,
    /// Content words in the publication's title.
    pub title_words: usize,
    /// Reference words that are not journal words, author names or numbers: whether the
    /// reference carries a title of its own.
    pub reference_title_words: usize,
    /// The reference's years include the publication's year, within one.
    pub year_agrees: bool,
    /// The reference has years and none is within one of the publication's.
    pub year_contradicts: bool,
    /// The reference names the publication's volume.
    pub volume_agrees: bool,
    /// The reference names volumes, and none is the publication's.
    pub volume_contradicts: bool,
    /// The reference names the publication's first page.
    pub page_agrees: bool,
    /// The reference names first pages, and none is the publication's.
    pub page_contradicts: bool,
    /// The reference's page range ends where the publication's does.
    pub last_page_agrees: bool,
    /// The reference has page ranges and none ends where the publication's does.
    pub last_page_contradicts: bool,
    /// Share of the words of the publication's journal name (abbreviated or full, the better)
    /// found in the reference, in millionths.
    pub journal_similarity: u32,
    /// The reference begins with the publication's first author.
    pub first_author_leads: bool,
    /// Share of the publication's first authors found in the reference, in millionths.
    pub authors_found: u32,
    /// One of the reference and the title reads as a notice (correction, erratum, retraction)
    /// and the other does not.
    pub notice_differs: bool,
    /// The reference and the title name different parts of a series.
    pub part_contradicts: bool,
    /// The publication's volume is one of the reference's numbers, wherever it stands.
    pub volume_found: bool,
    /// The publication's first page (or article number) is one of the reference's numbers.
    pub first_page_found: bool,
    /// The publication's last page ends one of the reference's page ranges, or stands alone.
    pub last_page_found: bool,
    /// Numbers of the reference that are not the publication's volume, issue or pages, nor in
    /// its title (at most [`MAX_COUNTED`]): what another article's locators would leave.
    pub unexplained_numbers: u8,
    /// Distinct content words of the reference that are not the publication's title words (one
    /// edit allowed), author names, journal words or citation scaffolding ("vol", "doi",
    /// "available", "colleagues", ...), at most [`MAX_COUNTED`]: 0 when the reference is
    /// just this publication's title and its metadata, whatever the order and the style.
    pub unexplained_words: u8,
}

/// Words on either side of an author's surname that are taken for given names.
const NAME_WINDOW: usize = 2;

/// The counts of [`Features`] stop here: beyond, more says nothing more.
pub const MAX_COUNTED: u8 = 30;

/// Words that reference strings use around the metadata in every style: they explain
/// themselves.
const SCAFFOLDING: &[&str] = &[
    "vol",
    "volume",
    "pp",
    "pg",
    "page",
    "pages",
    "no",
    "nos",
    "issue",
    "eds",
    "ed",
    "editor",
    "editors",
    "doi",
    "org",
    "http",
    "https",
    "www",
    "dx",
    "available",
    "accessed",
    "retrieved",
    "online",
    "pmid",
    "pmcid",
    "pmc",
    "epub",
    "print",
    "published",
    "ahead",
    "see",
    "also",
    "cited",
    "study",
    "colleagues",
    "others",
    "reported",
    "found",
    "showed",
    "shows",
    "suggested",
    "suppl",
    "supplement",
    "pt",
    "part",
    "article",
    "journal",
    "abstract",
    "letter",
    "paper",
    "review",
    "year",
    "internet",
    "updated",
    "viewed",
    "web",
    "website",
    "url",
    "pdf",
    "html",
    "link",
    "pub",
    "edn",
    "edition",
];

/// What the features need from a reference string, parsed once per reference rather than
/// once per candidate pair.
///
/// A reference lives as long as its document, in the arrangements of its candidate pairs, so its
/// words are packed: one string of every normalised word, and small numbers about them. Its
/// distinct words, in order of first appearance, are its vocabulary; every word is known by its
/// rank there, so that a pair looks each word of the publication up once (in a hash table) and
/// compares numbers from then on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ParsedReference {
    /// Years, volumes and pages written in the reference (without its blocking keys).
    pub locators: ReferenceLocators,
    /// Every normalised word, in order (see [`words`]), separated by single spaces; words that
    /// end past [`MAX_WORD_BYTES`] are left out.
    words: Box<str>,
    /// Where each word ends in `words`, in order.
    ends: Box<[u16]>,
    /// Each word's rank in the vocabulary, in order.
    ranks: Box<[u16]>,
    /// The vocabulary: for each rank, the first position of its word.
    firsts: Box<[u16]>,
    /// The vocabulary by the [`word_hash`] of each word: an open-addressing table, at most half
    /// full, of rank + 1 (0 is an empty slot; see [`probe`]).
    slots: Box<[u16]>,
    /// For each rank, what its word is: [`CONTENT`], [`OPEN`] and [`NUMBER`] bits.
    kinds: Box<[u8]>,
    /// The ranks of the content words that can be within one edit of a word of
    /// [`NEAR_FROM`] letters or more, in order, and their byte sets ([`letters`]): what
    /// [`ParsedReference::has_near`] compares a pair's words with, worked out once per reference
    /// rather than once per pair.
    near: (Box<[u16]>, Box<[u64]>),
    /// The reference reads as a notice about a publication (see [`notice_and_part`]).
    pub notice: bool,
    /// The part of a series it names, if any (see [`notice_and_part`]).
    pub part: Option<u8>,
}

/// The normalised words of a reference kept for its features: the envelope cuts references at
/// [`MAX_REFERENCE_BYTES`](crate::envelope::MAX_REFERENCE_BYTES), whose words are far shorter.
const MAX_WORD_BYTES: usize = u16::MAX as usize;

/// The hash of a word that places it in a reference's vocabulary table: the same in every
/// process of a build, as a parsed reference may travel between processes.
fn word_hash(word: &str) -> usize {
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), word) as usize
}

/// Looks `word` up in a vocabulary table (see [`ParsedReference`]'s `slots`), whose words
/// `word_of` gives by rank: its rank, or the empty slot where it goes.
fn probe<'w>(slots: &[u16], word: &str, word_of: impl Fn(usize) -> &'w str) -> Result<usize, usize> {
    let mask = slots.len() - 1;
    let mut slot = word_hash(word) & mask;
    loop {
        match usize::from(slots[slot]).checked_sub(1) {
            None => return Err(slot),
            Some(rank) if word_of(rank) == word => return Ok(rank),
            Some(_) => slot = (slot + 1) & mask,
        }
    }
}

/// A content word (see [`is_content_word`]).
const CONTENT: u8 = 1;
/// An open word (see [`ReferenceWords::open`]).
const OPEN: u8 = 2;
/// A word of digits only.
const NUMBER: u8 = 4;

/// The words of a [`ParsedReference`], unpacked: every word in order, then the kinds of words
/// the features read, as slices of one vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceWords<'a> {
    all: Vec<&'a str>,
    /// The content, distinct and open words, one after the other.
    picked: Vec<&'a str>,
    /// Where each of the three ends in `picked`.
    ends: [usize; 3],
}

impl<'a> ReferenceWords<'a> {
    /// Every normalised word, in order.
    pub fn all(&self) -> &[&'a str] {
        &self.all
    }

    /// The content words, in order.
    pub fn content(&self) -> &[&'a str] {
        &self.picked[..self.ends[0]]
    }

    /// The distinct content words, in order of first appearance.
    pub fn distinct(&self) -> &[&'a str] {
        &self.picked[self.ends[0]..self.ends[1]]
    }

    /// The distinct content words that only a candidate can explain, in order of first
    /// appearance: not numbers, longer than two letters, not citation scaffolding or month
    /// names, not words of the reference's own links (URLs, DOIs), which say nothing against a
    /// candidate.
    pub fn open(&self) -> &[&'a str] {
        &self.picked[self.ends[1]..self.ends[2]]
    }
}

impl ParsedReference {
    /// Parses `reference`; `journals` tells journal names apart.
    pub fn of(reference: &str, journals: &JournalTable) -> Self {
        Self::located(reference, reference_locators(reference, journals))
    }

    /// Parses `reference`, whose locators (see [`reference_locators`]) are already read.
    pub fn located(reference: &str, locators: ReferenceLocators) -> Self {
        let mut words = words(reference);
        let (notice, part) = notice_and_part(reference, &words);
        if words.len() > MAX_WORD_BYTES {
            // Words are ASCII: any byte is a character boundary.
            words.truncate(words[..=MAX_WORD_BYTES].rfind(' ').unwrap_or(0));
        }
        // Sized once: every word is followed by a space but the last.
        let mut all: Vec<&str> = Vec::with_capacity(words.bytes().filter(|&b| b == b' ').count() + 1);
        all.extend(pieces(&words, b' '));
        // Under MAX_WORD_BYTES, every offset and position fits.
        let small = |n: usize| n as u16;
        let mut past = 0;
        let ends: Vec<u16> = all
            .iter()
            .map(|word| {
                past += word.len() + 1;
                small(past - 1)
            })
            .collect();
        // The vocabulary, in order of first appearance, gathered in the table that finds it.
        let mut slots = vec![0; (2 * all.len()).next_power_of_two()];
        let (mut ranks, mut firsts): (Vec<u16>, Vec<u16>) = (Vec::with_capacity(all.len()), Vec::new());
        for (at, word) in all.iter().enumerate() {
            let rank = match probe(&slots, word, |rank| all[usize::from(firsts[rank])]) {
                Ok(rank) => rank,
                Err(slot) => {
                    firsts.push(small(at));
                    slots[slot] = small(firsts.len());
                    firsts.len() - 1
                }
            };
            ranks.push(small(rank));
        }
        let link_words: BTreeSet<String> = links(reference).flat_map(super::title::content_words).collect();
        let kinds = firsts
            .iter()
            .map(|&first| {
                let word = all[usize::from(first)];
                let content = is_content_word(word);
                let bit = |is: bool, kind: u8| if is { kind } else { 0 };
                bit(content, CONTENT)
                    | bit(content && is_open_word(word, &link_words), OPEN)
                    | bit(word.bytes().all(|b| b.is_ascii_digit()), NUMBER)
            })
            .collect::<Box<[u8]>>();
        let near: (Vec<u16>, Vec<u64>) = (0..firsts.len())
            .map(|rank| (rank, all[usize::from(firsts[rank])]))
            .filter(|&(rank, word)| kinds[rank] & CONTENT != 0 && can_be_near_long(word))
            .map(|(rank, word)| (small(rank), letters(word)))
            .unzip();
        ParsedReference {
            locators: ReferenceLocators { keys: Vec::new(), ..locators },
            near: (near.0.into(), near.1.into()),
            ends: ends.into(),
            ranks: ranks.into(),
            firsts: firsts.into(),
            slots: slots.into(),
            kinds,
            words: words.into(),
            notice,
            part,
        }
    }

    /// The word at `position`.
    fn word_at(&self, position: u16) -> &str {
        let at = usize::from(position);
        let start = if at == 0 { 0 } else { usize::from(self.ends[at - 1]) + 1 };
        &self.words[start..usize::from(self.ends[at])]
    }

    /// The word of rank `rank`.
    fn word(&self, rank: usize) -> &str {
        self.word_at(self.firsts[rank])
    }

    /// The rank of `word`, if the reference has it.
    fn rank(&self, word: &str) -> Option<usize> {
        probe(&self.slots, word, |rank| self.word(rank)).ok()
    }

    /// Whether one of the reference's distinct content words is within one edit of `word`, a
    /// word of [`NEAR_FROM`] letters or more.
    fn has_near(&self, word: &str) -> bool {
        let (ranks, sets) = &self.near;
        any_near(sets.iter().zip(ranks.iter()).map(|(&set, &rank)| (set, move || self.word(usize::from(rank)))), word)
    }

    /// The ranks whose words are of `kind`, in order.
    fn of_kind(&self, kind: u8) -> impl Iterator<Item = usize> + '_ {
        self.kinds.iter().enumerate().filter(move |(_, kinds)| *kinds & kind != 0).map(|(rank, _)| rank)
    }

    /// The reference's words, unpacked.
    pub fn words(&self) -> ReferenceWords<'_> {
        let all: Vec<&str> = (0..self.ends.len()).map(|at| self.word_at(at as u16)).collect();
        // Sized once for the three kinds: at most every word, and every distinct word twice.
        let mut picked: Vec<&str> = Vec::with_capacity(all.len() + 2 * self.kinds.len());
        picked.extend(all.iter().zip(&self.ranks).filter(|(_, &rank)| self.kinds[usize::from(rank)] & CONTENT != 0).map(|(word, _)| *word));
        let mut ends = [picked.len(), 0, 0];
        picked.extend(self.of_kind(CONTENT).map(|rank| self.word(rank)));
        ends[1] = picked.len();
        picked.extend(self.of_kind(OPEN).map(|rank| self.word(rank)));
        ends[2] = picked.len();
        ReferenceWords { all, picked, ends }
    }
}

/// Whether a distinct content word is one only a candidate can explain (see
/// [`ReferenceWords::open`]).
fn is_open_word(word: &str, link_words: &BTreeSet<String>) -> bool {
    !word.chars().all(|c| c.is_ascii_digit()) && word.len() > 2 && !explains_itself(word) && !link_words.contains(word)
}

/// Whether a word is citation scaffolding or a month's name, looked up in one table: every
/// distinct word of every reference is.
fn explains_itself(word: &str) -> bool {
    static WORDS: OnceLock<HashSet<&str, foldhash::fast::FixedState>> = OnceLock::new();
    WORDS.get_or_init(|| SCAFFOLDING.iter().chain(MONTHS).copied().collect()).contains(word)
}

/// What a publication explains of a reference's word, as bits of a pair's marks by rank.
/// The word is a word of the publication's authors.
const BY_AUTHORS: u8 = 1;
/// The word is a word of the publication's journal names.
const JOURNAL: u8 = 2;
/// The word is a word of the publication's title.
const TITLE: u8 = 4;
/// The word stands within [`NAME_WINDOW`] of an author's surname.
const NEAR_AUTHOR: u8 = 8;

/// Computes the features of a pair found by `families`.
pub fn features(reference: &ParsedReference, publication: &IndexedPublication, families: Families) -> Features {
    features_with(reference, publication, publication.fields(), families)
}

/// [`features`], with the publication's packed fields already split (the dataflow splits them
/// once for the features and the pair's publication id).
pub(crate) fn features_with(
    reference: &ParsedReference,
    publication: &IndexedPublication,
    fields: Fields<'_>,
    families: Families,
) -> Features {
    let locators = &reference.locators;
    let identifier = families
        .iter()
        .filter_map(|f| match f {
            Family::Identifier(method) => Some(method),
            _ => None,
        })
        .max();
    let (year_agrees, year_contradicts) = match publication.year() {
        Some(year) if !locators.years.is_empty() => {
            let agrees = locators.years.iter().any(|y| (y - year).abs() <= 1);
            (agrees, !agrees)
        }
        _ => (false, false),
    };
    // Each word of the publication is looked up once; what it explains is marked by rank.
    let title_words = fields.title_words();
    let title_ranks: Vec<Option<usize>> = title_words.iter().map(|word| reference.rank(word)).collect();
    let journal_words = publication.journal_words();
    let journal_ranks = journal_words.each_ref().map(|name| name.iter().map(|word| reference.rank(word)).collect::<Vec<_>>());
    let mut marks = vec![0u8; reference.firsts.len()];
    for rank in fields.authors().flat_map(|author| pieces(author, b' ')).filter_map(|word| reference.rank(word)) {
        marks[rank] |= BY_AUTHORS;
    }
    journal_ranks.iter().flatten().flatten().for_each(|&rank| marks[rank] |= JOURNAL);
    title_ranks.iter().flatten().for_each(|&rank| marks[rank] |= TITLE);
    let kind = |rank: usize, kind: u8| reference.kinds[rank] & kind != 0;
    // A content word is known when it is a journal word or an author's.
    let known = |rank: usize| marks[rank] & (JOURNAL | BY_AUTHORS) != 0;
    let reference_title_words = reference
        .ranks
        .iter()
        .map(|&rank| usize::from(rank))
        .filter(|&rank| kind(rank, CONTENT) && !kind(rank, NUMBER) && !known(rank))
        .count();
    let share = |words: &[&str], ranks: &[Option<usize>]| {
        let found = words.iter().zip(ranks).map(|(word, rank)| (*word, rank.is_some_and(|rank| kind(rank, CONTENT))));
        (containment(found, |word| reference.has_near(word)) * 1e6).round() as u32
    };
    let Numbers { volume, issue, first_page: page, last_page: last } = fields.numbers();
    let has = |found: &[String], value: &str| found.iter().any(|f| f == value);
    let agreement = |value: Option<&str>, found: &[String]| match value {
        Some(value) if !found.is_empty() => (has(found, value), !has(found, value)),
        _ => (false, false),
    };
    let (volume_agrees, volume_contradicts) = agreement(volume, &locators.volumes);
    let (page_agrees, page_contradicts) = agreement(page, &locators.pages);
    let (last_page_agrees, last_page_contradicts) = agreement(last, &locators.last_pages);
    let authors = author_agreement(fields.authors(), |word| reference.rank(word).map(|rank| usize::from(reference.firsts[rank])));
    let numbers = &locators.numbers;
    let title_numbers: Vec<&str> = title_words.iter().copied().filter(|w| w.chars().all(|c| c.is_ascii_digit())).collect();
    let explained_number = |n: &String| {
        [volume, issue, page, last].contains(&Some(n.as_str())) || title_numbers.iter().any(|t| t.trim_start_matches('0') == n)
    };
    let counted = |n: usize| n.min(usize::from(MAX_COUNTED)) as u8;
    // Given names stand next to their surnames ("Shan, Jing, Mei-Song Zhu"); the record keeps
    // surnames only, so words within two of an author's surname count as the author's.
    let ranks = &reference.ranks;
    for (at, &rank) in ranks.iter().enumerate() {
        let rank = usize::from(rank);
        if marks[rank] & BY_AUTHORS != 0 && reference.word(rank).len() > 1 {
            for &near in &ranks[at.saturating_sub(NAME_WINDOW)..(at + NAME_WINDOW + 1).min(ranks.len())] {
                marks[usize::from(near)] |= NEAR_AUTHOR;
            }
        }
    }
    let title = OnceCell::new();
    let unexplained_words = reference
        .of_kind(OPEN)
        .filter(|&rank| {
            let word = reference.word(rank);
            marks[rank] & (JOURNAL | BY_AUTHORS | NEAR_AUTHOR | TITLE) == 0
                && !(word.len() >= NEAR_FROM && title.get_or_init(|| Lexicon::of_long(title_words.iter().copied())).has_near(word))
        })
        .count();
    Features {
        volume_found: volume.is_some_and(|v| has(numbers, v)),
        first_page_found: page.is_some_and(|p| has(numbers, p)),
        last_page_found: last.is_some_and(|l| has(&locators.range_ends, l) || has(numbers, l)),
        unexplained_numbers: counted(numbers.iter().filter(|n| !explained_number(n)).count()),
        unexplained_words: counted(unexplained_words),
        identifier,
        bibliographic: families.contains(Family::Bibliographic),
        title_containment: share(&title_words, &title_ranks),
        title_words: title_words.len(),
        reference_title_words,
        year_agrees,
        year_contradicts,
        volume_agrees,
        volume_contradicts,
        page_agrees,
        page_contradicts,
        last_page_agrees,
        last_page_contradicts,
        journal_similarity: journal_words.iter().zip(&journal_ranks).map(|(name, ranks)| share(name, ranks)).max().unwrap_or(0),
        first_author_leads: authors.first_author_leads,
        authors_found: authors.authors_found,
        notice_differs: reference.notice != publication.notice(),
        part_contradicts: matches!((reference.part, publication.part()), (Some(cited), Some(titled)) if cited != titled),
    }
}

/// The names of the values of [`Features::vector`], in order: the columns of the feature
/// export and the inputs of a learned scorer.
pub const FEATURE_NAMES: [&str; 26] = [
    "doi",
    "pmid",
    "pmcid",
    "bibliographic",
    "title_containment",
    "title_words",
    "reference_title_words",
    "year_agrees",
    "year_contradicts",
    "volume_agrees",
    "volume_contradicts",
    "page_agrees",
    "page_contradicts",
    "has_title_words",
    "last_page_agrees",
    "last_page_contradicts",
    "journal_similarity",
    "first_author_leads",
    "authors_found",
    "notice_differs",
    "part_contradicts",
    "volume_found",
    "first_page_found",
    "last_page_found",
    "unexplained_numbers",
    "unexplained_words",
];

impl Features {
    /// The features as numbers, in the order of [`FEATURE_NAMES`].
    pub fn vector(&self) -> [f32; FEATURE_NAMES.len()] {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        [
            flag(self.identifier == Some(Method::Doi)),
            flag(self.identifier == Some(Method::Pmid)),
            flag(self.identifier == Some(Method::Pmcid)),
            flag(self.bibliographic),
            self.title_containment as f32 / 1e6,
            self.title_words as f32,
            self.reference_title_words as f32,
            flag(self.year_agrees),
            flag(self.year_contradicts),
            flag(self.volume_agrees),
            flag(self.volume_contradicts),
            flag(self.page_agrees),
            flag(self.page_contradicts),
            flag(self.reference_title_words >= TITLE_PRESENT),
            flag(self.last_page_agrees),
            flag(self.last_page_contradicts),
            self.journal_similarity as f32 / 1e6,
            flag(self.first_author_leads),
            self.authors_found as f32 / 1e6,
            flag(self.notice_differs),
            flag(self.part_contradicts),
            flag(self.volume_found),
            flag(self.first_page_found),
            flag(self.last_page_found),
            f32::from(self.unexplained_numbers),
            f32::from(self.unexplained_words),
        ]
    }
}

/// The score a pair earns by [`title_evidence`] alone (a learned scorer's probability, in
/// millionths, is raised to it).
pub const TITLE_EVIDENCE_SCORE: u32 = 900_000;
/// Content words a title needs to identify its publication with the year agreeing.
const DISTINCTIVE_WITH_YEAR: usize = 5;
/// Content words a title needs to identify its publication alone (the reference has no year).
const DISTINCTIVE_ALONE: usize = 7;

/// The title rule: a reference that is (nearly) only a distinctive title, complete or nearly,
/// cites the publication with that title, whatever else it lacks — as Reach matched on titles,
/// and as policy documents cite ("Title (2019)", a title in quotes or lower case, a narrative
/// phrase around it). Precisely, every one of:
///
/// - at least 90% of the title's content words are in the reference (one edit allowed in words
///   of five letters or more: typos, OCR errors);
/// - the title is distinctive: at least 5 content words when a year in the reference agrees
///   with the publication's (within one), at least 7 when the reference has no year; a short
///   generic title ("Annual report", "Diabetes in pregnancy") never matches on its own;
/// - the reference says nothing else: at most one content word that is not the title's, an
///   author's, the journal's or citation scaffolding, and no number that is not the
///   publication's volume, issue or pages;
/// - nothing contradicts: no other year, volume or first page, no notice (erratum,
///   correction) on one side only, no other part of a series.
///
/// Two publications that both pass for one reference (duplicate titles) leave it unmatched:
/// the decision's margin over the runner-up applies as to every score.
pub fn title_evidence(f: &Features) -> bool {
    let distinctive = match (f.year_agrees, f.year_contradicts) {
        (true, _) => f.title_words >= DISTINCTIVE_WITH_YEAR,
        (false, false) => f.title_words >= DISTINCTIVE_ALONE,
        (false, true) => false,
    };
    f.identifier.is_none()
        && distinctive
        && f.title_containment >= 900_000
        && f.unexplained_words <= 1
        && f.unexplained_numbers == 0
        && !(f.volume_contradicts || f.page_contradicts || f.notice_differs || f.part_contradicts)
}

/// Reference words beyond which a reference is taken to carry a title.
const TITLE_PRESENT: usize = 4;

/// Scores a pair in millionths, with the method that found it, or rejects it: an identifier
/// decides; otherwise a year, volume or first page that contradicts the publication rejects,
/// and so does a bibliographic match whose reference carries another title.
pub fn rule_score(f: &Features) -> Option<(u32, Method)> {
    if let Some(method) = f.identifier {
        return Some((1_000_000, method));
    }
    if f.year_contradicts || f.volume_contradicts || f.page_contradicts {
        return None;
    }
    let carries_title = f.reference_title_words >= TITLE_PRESENT && f.title_words >= 2;
    if f.bibliographic {
        if carries_title && f.title_containment < 340_000 {
            return None;
        }
        if f.journal_similarity < 500_000 && f.title_containment < 500_000 {
            return None;
        }
        let score = 800_000
            + 40_000 * u32::from(f.year_agrees)
            + 40_000 * u32::from(f.volume_agrees)
            + 40_000 * u32::from(f.page_agrees)
            + 20_000 * u32::from(f.last_page_agrees)
            + 60_000 * u32::from(f.title_containment >= 500_000);
        return Some((score, Method::Bibliographic));
    }
    let containment_needed = if f.year_agrees { 800_000 } else { 900_000 };
    if f.title_words < 3 || f.title_containment < containment_needed {
        return None;
    }
    let score =
        700_000 + f.title_containment / 5 + 40_000 * u32::from(f.year_agrees) + 40_000 * u32::from(f.volume_agrees || f.page_agrees);
    Some((score.min(980_000), Method::Title))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Publication;
    use crate::matching::title::one_edit;
    use proptest::prelude::*;

    fn publication() -> Publication {
        Publication {
            id: "1".into(),
            title: Some("Gastrointestinal systemic sclerosis in mixed connective tissue disease.".into()),
            authors: vec!["Bennett".into()],
            journal_title: Some("Arthritis and rheumatism".into()),
            journal_abbreviation: Some("Arthritis Rheum".into()),
            volume: Some("22".into()),
            year: Some(1979),
            pages: Some("429-30".into()),
            ..Publication::default()
        }
    }

    /// [`features`] with its word features computed the plain way, comparing lists of words
    /// as [`Features`] defines them: the reference for `features`, which marks the reference's
    /// words by rank.
    fn plain_features(reference: &ParsedReference, publication: &IndexedPublication, families: Families) -> Features {
        let words = reference.words();
        let (all, distinct) = (words.all(), words.distinct());
        let title = publication.title_words();
        let journals = publication.journal_words();
        let author_words: Vec<&str> = publication.authors().flat_map(|author| pieces(author, b' ')).collect();
        let known = |word: &str| journals.iter().flatten().any(|j| *j == word) || author_words.contains(&word);
        let share = |name: &[&str]| {
            let found = name.iter().map(|word| (*word, distinct.contains(word)));
            (containment(found, |word| distinct.iter().any(|d| one_edit(d, word))) * 1e6).round() as u32
        };
        let authors = author_agreement(publication.authors(), |word| all.iter().position(|w| *w == word));
        let near_authors: Vec<&str> = (0..all.len())
            .filter(|&at| all[at].len() > 1 && author_words.contains(&all[at]))
            .flat_map(|at| all[at.saturating_sub(NAME_WINDOW)..(at + NAME_WINDOW + 1).min(all.len())].iter().copied())
            .collect();
        let unexplained = words.open().iter().filter(|word| {
            !(known(word)
                || near_authors.contains(word)
                || title.contains(word)
                || (word.len() >= NEAR_FROM && title.iter().any(|t| one_edit(t, word))))
        });
        Features {
            title_containment: share(&title),
            title_words: title.len(),
            reference_title_words: words.content().iter().filter(|w| !w.bytes().all(|b| b.is_ascii_digit()) && !known(w)).count(),
            journal_similarity: journals.iter().map(|name| share(name)).max().unwrap_or(0),
            first_author_leads: authors.first_author_leads,
            authors_found: authors.authors_found,
            unexplained_words: unexplained.count().min(usize::from(MAX_COUNTED)) as u8,
            ..features(reference, publication, families)
        }
    }

    /// Words that references and records share, near misses of them, stop words, numbers,
    /// scaffolding and a link.
    const POOL: &[&str] = &[
        "Gastrointestinal",
        "gastrointestinl",
        "systemic",
        "sclerosis",
        "in",
        "of",
        "the",
        "mixed",
        "disease",
        "diseases",
        "Bennett",
        "Benett",
        "Smith",
        "Robert",
        "Arthritis",
        "Rheum",
        "and",
        "J",
        "a",
        "de",
        "la",
        "Vol",
        "doi",
        "part",
        "II",
        "Erratum",
        "22",
        "429",
        "1979",
        "4",
        "2020",
        "0022",
        "pp",
        "Jan",
        "colleagues",
        "x",
        "connective",
        "tissue",
        "Roe-Smith",
        "https://doi.org/10.1/sclerosis",
    ];

    fn pooled(size: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        (proptest::collection::vec(0..POOL.len(), size), proptest::sample::select(vec![" ", ", ", ". ", "; "]))
            .prop_map(|(words, separator)| words.into_iter().map(|at| POOL[at]).collect::<Vec<_>>().join(separator))
    }

    fn pooled_publication() -> impl Strategy<Value = Publication> {
        let numbers = || proptest::option::of(proptest::sample::select(vec!["22", "4", "0022", "429", "429-30", "22-4"]));
        (pooled(0..12), proptest::collection::vec(pooled(1..3), 0..5), pooled(0..4), pooled(0..4), numbers(), numbers(), numbers())
            .prop_map(|(title, authors, journal_title, journal_abbreviation, volume, issue, pages)| Publication {
                id: "p".into(),
                title: Some(title),
                authors,
                journal_title: Some(journal_title),
                journal_abbreviation: Some(journal_abbreviation),
                volume: volume.map(str::to_string),
                issue: issue.map(str::to_string),
                year: Some(1979),
                pages: pages.map(str::to_string),
                ..Publication::default()
            })
    }

    proptest! {
        /// Features read by rank are the features read from lists of words.
        #[test]
        fn features_by_rank_are_the_plain_features(
            publication in pooled_publication(),
            text in pooled(0..50),
            rendered in any::<Option<(u64, usize)>>(),
        ) {
            let text = match rendered {
                Some((seed, style)) => {
                    let mut rng = crate::synthetic::Rng::new(seed);
                    let noise = crate::synthetic::Noise { typo: 0.3, truncated_title: 0.3, missing_locator: 0.3, year_off: 0.2 };
                    crate::synthetic::render(&publication, crate::synthetic::STYLES[style % crate::synthetic::STYLES.len()], noise, &mut rng)
                }
                None => text,
            };
            let (reference, indexed) = (ParsedReference::of(&text, &JournalTable::default()), IndexedPublication::of(&publication));
            prop_assert_eq!(features(&reference, &indexed, by_title()), plain_features(&reference, &indexed, by_title()));
        }
    }

    proptest! {
        /// A set of families holds exactly the families put in it, whichever they are.
        #[test]
        fn families_hold_what_they_are_made_of(members in proptest::collection::vec(0..Family::ALL.len(), 0..10)) {
            let put: Vec<Family> = members.iter().map(|&index| Family::ALL[index]).collect();
            let families: Families = put.iter().copied().collect();
            for family in Family::ALL {
                prop_assert_eq!(families.contains(family), put.contains(&family), "{:?}", family);
            }
            let mut distinct = put.clone();
            distinct.sort_by_key(|family| family.code());
            distinct.dedup();
            prop_assert_eq!(families.iter().collect::<Vec<_>>(), distinct);
        }
    }

    /// The families of a pair found by its title only.
    fn by_title() -> Families {
        Families::from_iter([Family::Title])
    }

    fn score(reference: &str, families: &[Family]) -> Option<(u32, Method)> {
        rule_score(&features(
            &ParsedReference::of(reference, &JournalTable::default()),
            &IndexedPublication::of(&publication()),
            families.iter().copied().collect(),
        ))
    }

    #[test]
    fn an_nlm_reference_without_title_matches_bibliographically() {
        let (score, method) = score("Arthritis Rheum. 1979;22(4):429-30", &[Family::Bibliographic]).unwrap();
        assert_eq!(method, Method::Bibliographic);
        assert!(score >= 880_000);
    }

    #[test]
    fn a_reference_with_another_title_is_not_this_publication() {
        let other = "Thomas S. Who heads x-ray departments in the region? Arthritis Rheum. 1979;22(4):429.";
        assert_eq!(score(other, &[Family::Bibliographic]), None);
    }

    #[test]
    fn a_full_title_matches_without_locators() {
        let reference =
            "Bennett T (1979) Gastrointestinal systemic sclerosis in mixed connective tissue disease. Arthritis and rheumatism.";
        let (_, method) = score(reference, &[Family::Title]).unwrap();
        assert_eq!(method, Method::Title);
        assert_eq!(
            score("Bennett T (1985) Gastrointestinal systemic sclerosis in mixed connective tissue disease.", &[Family::Title]),
            None
        );
        let other_pages =
            "Bennett T. Gastrointestinal systemic sclerosis in mixed connective tissue disease. Arthritis Rheum. 1979;22:501-2.";
        assert_eq!(score(other_pages, &[Family::Title]), None, "a reply or erratum with the same title is another publication");
    }

    #[test]
    fn every_feature_of_an_agreeing_reference() {
        let reference =
            "Bennett R. Gastrointestinal systemic sclerosis in mixed connective tissue disease. Arthritis Rheum. 1979;22(4):429-30.";
        let parsed = ParsedReference::of(reference, &JournalTable::default());
        let found = features(
            &parsed,
            &IndexedPublication::of(&publication()),
            Families::from_iter([Family::Bibliographic, Family::Title, Family::Author]),
        );
        let expected = Features {
            identifier: None,
            bibliographic: true,
            title_containment: 1_000_000,
            title_words: 7,
            reference_title_words: 7,
            year_agrees: true,
            year_contradicts: false,
            volume_agrees: true,
            volume_contradicts: false,
            page_agrees: true,
            page_contradicts: false,
            last_page_agrees: true,
            last_page_contradicts: false,
            journal_similarity: 1_000_000,
            first_author_leads: true,
            authors_found: 1_000_000,
            notice_differs: false,
            part_contradicts: false,
            volume_found: true,
            first_page_found: true,
            last_page_found: true,
            unexplained_numbers: 1,
            unexplained_words: 0,
        };
        assert_eq!(found, expected, "the issue, 4, is not in the publication's record");
        assert!(!title_evidence(&found), "the reference says more than the title: a learned scorer decides");
    }

    #[test]
    fn every_feature_of_a_contradicting_reference() {
        let reference = "Thomas S. Who heads x-ray departments in the region? Arthritis Rheum. 1985;23(4):501-2.";
        let found = features(
            &ParsedReference::of(reference, &JournalTable::default()),
            &IndexedPublication::of(&publication()),
            Families::from_iter([Family::Identifier(Method::Pmid)]),
        );
        let expected = Features {
            identifier: Some(Method::Pmid),
            bibliographic: false,
            title_containment: 0,
            title_words: 7,
            reference_title_words: 6,
            year_agrees: false,
            year_contradicts: true,
            volume_agrees: false,
            volume_contradicts: true,
            page_agrees: false,
            page_contradicts: true,
            last_page_agrees: false,
            last_page_contradicts: true,
            journal_similarity: 1_000_000,
            first_author_leads: false,
            authors_found: 0,
            notice_differs: false,
            part_contradicts: false,
            volume_found: false,
            first_page_found: false,
            last_page_found: false,
            unexplained_numbers: 3,
            unexplained_words: 6,
        };
        assert_eq!(found, expected);
        let vector = found.vector();
        let named = |name: &str| vector[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!((named("pmid"), named("doi"), named("year_contradicts"), named("journal_similarity")), (1.0, 0.0, 1.0, 1.0));
        assert_eq!((named("title_words"), named("has_title_words"), named("authors_found")), (7.0, 1.0, 0.0));
    }

    #[test]
    fn a_distinctive_title_alone_cites_its_publication_and_a_generic_one_never() {
        let evidence = |title: &str, reference: &str| {
            let publication = Publication { title: Some(title.into()), ..publication() };
            title_evidence(&features(
                &ParsedReference::of(reference, &JournalTable::default()),
                &IndexedPublication::of(&publication),
                by_title(),
            ))
        };
        let title = "Gastrointestinal systemic sclerosis in mixed connective tissue disease.";
        assert!(evidence(title, "Gastrointestinal systemic sclerosis in mixed connective tissue disease (1979)"));
        assert!(evidence(title, "“gastrointestinal systemic sclerosis in mixed connective tisue disease”"), "lower case, a typo, no year");
        assert!(evidence(
            title,
            "Bennett and colleagues (1979) reported 'Gastrointestinal systemic sclerosis in mixed connective tissue disease'"
        ));
        assert!(!evidence(title, "Gastrointestinal systemic sclerosis in mixed connective tissue disease (1985)"), "another year");
        assert!(!evidence(
            title,
            "Gastrointestinal systemic sclerosis in mixed connective tissue disease: a reply to Smith and Jones on renal outcomes (1979)"
        ));
        assert!(
            !evidence(title, "Gastrointestinal systemic sclerosis in mixed connective tissue disease. Arthritis Rheum 1979;23:501"),
            "other locators"
        );
        let full_names =
            "Bennett, Robert Morris, and Jane Roe-Smith. \"Gastrointestinal systemic sclerosis in mixed connective tissue disease.\" 1979.";
        let publication = Publication { authors: vec!["Bennett".into(), "Roe-Smith".into()], ..publication() };
        let parsed = ParsedReference::of(full_names, &JournalTable::default());
        assert_eq!(
            features(&parsed, &IndexedPublication::of(&publication), by_title()).unexplained_words,
            0,
            "given names stand by their surnames"
        );
        let generic = "Diabetes in pregnancy.";
        assert!(!evidence(generic, "Diabetes in pregnancy (1979)"), "a short title never matches on its own");
        let five = "Gastrointestinal sclerosis in connective tissue disease.";
        assert!(evidence(five, "Gastrointestinal sclerosis in connective tissue disease (1979)"));
        assert!(!evidence(five, "Gastrointestinal sclerosis in connective tissue disease"), "five words need the year");
    }

    #[test]
    fn a_notice_or_another_part_differs_from_the_publication() {
        let feature = |reference: &str| {
            features(&ParsedReference::of(reference, &JournalTable::default()), &IndexedPublication::of(&publication()), by_title())
        };
        let notice =
            feature("Bennett R. Erratum: Gastrointestinal systemic sclerosis in mixed connective tissue disease. Arthritis Rheum. 1979.");
        assert!(notice.notice_differs && !notice.part_contradicts);
        let part =
            feature("Bennett R. Gastrointestinal systemic sclerosis in mixed connective tissue disease. Part II. Arthritis Rheum. 1979.");
        assert!(!part.part_contradicts, "the publication names no part");
        let first_part = Publication { title: Some("Gastrointestinal systemic sclerosis. Part I.".into()), ..publication() };
        let parsed = ParsedReference::of(
            "Bennett R. Gastrointestinal systemic sclerosis. Part II. Arthritis Rheum. 1979.",
            &JournalTable::default(),
        );
        assert!(features(&parsed, &IndexedPublication::of(&first_part), by_title()).part_contradicts);
    }

    #[test]
    fn words_past_the_kept_length_are_left_out() {
        let text = format!("{}Gastrointestinal systemic sclerosis in mixed connective tissue disease", "ab ".repeat(30_000));
        let parsed = ParsedReference::of(&text, &JournalTable::default());
        let words = parsed.words();
        assert_eq!(words.all().len(), 21_845, "the words that end within 64 KiB");
        assert!(words.all().iter().all(|word| *word == "ab"));
        let indexed = IndexedPublication::of(&publication());
        let found = features(&parsed, &indexed, by_title());
        assert_eq!(found.title_containment, 0, "the title's words were past the cut");
        assert_eq!(found, plain_features(&parsed, &indexed, by_title()));
    }

    #[test]
    fn identifiers_win() {
        assert_eq!(score("anything 1990", &[Family::Identifier(Method::Doi)]), Some((1_000_000, Method::Doi)));
    }
}
