//! Bibliographic blocking keys: normalised journal + volume + first page, and journal +
//! year + first page. They match NLM-style references that carry no title
//! ("J Physiol. 1978 Apr;277:245-72") and the journal part of full references.
//!
//! A reference does not say where its journal name starts, so it contributes every
//! plausible journal candidate (the last one to ten words before the volume, stopping at
//! the end of a sentence); a publication contributes the forms of its ISO abbreviation and
//! its full title, an abbreviation the table expands to that title only once, through the
//! title ([`JournalTable::indexed_forms`]). Only equal keys meet in the join, so surplus
//! candidates cost a little memory and never a false match.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use regex::Regex;

use super::journals::JournalTable;
use super::text::{first_page, last_page, leading_number, squash, ByText, StableHasher};

/// Most journal-name candidates taken before one volume.
const MAX_JOURNAL_WORDS: usize = 10;
/// Most volume/page occurrences read from one reference.
const MAX_LOCATORS: usize = 3;
/// Most numbers read from one reference.
const MAX_NUMBERS: usize = 12;
/// Numbers that pair into journal-less locator keys (see [`number_pair_keys`]).
const PAIRED_NUMBERS: usize = 8;

/// What a reference string says about where it was published.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ReferenceLocators {
    /// Years written in the reference.
    pub years: Vec<i32>,
    /// Volumes found before a page.
    pub volumes: Vec<String>,
    /// First pages found after a volume.
    pub pages: Vec<String>,
    /// Last pages of the page ranges found after a volume, written out in full.
    pub last_pages: Vec<String>,
    /// Every number written in the reference, wherever it stands and whatever the style:
    /// digit runs with at most a two-letter prefix ("e1234", "S12", "g265"), without leading
    /// zeros, in order of appearance; years and a leading list label ("\[12\]", "12.") left out.
    pub numbers: Vec<String>,
    /// The last page of every page range in the reference ("630–47" → "647"), written out.
    pub range_ends: Vec<String>,
    /// Blocking keys, as the [`stable_hash`](super::text::stable_hash)es of their texts (see
    /// [`BibliographicKey`]), sorted.
    pub keys: Vec<u64>,
}

/// The journal, volume, year and pages of a publication, as its metadata gives them.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicationLocators<'a> {
    /// Journal names (ISO abbreviation, full title).
    pub journals: [Option<&'a str>; 2],
    /// Volume.
    pub volume: Option<&'a str>,
    /// Publication year.
    pub year: Option<i32>,
    /// Page range.
    pub pages: Option<&'a str>,
}

/// A bibliographic key: journal, volume and first page; journal, year and first page; or
/// volume, first page and year without the journal, which finds references whose journal name
/// is misspelt (the scorer then checks the journal itself). References and publications alike
/// hash a key from its parts ([`BibliographicKey::hash`]) to the
/// [`stable_hash`](super::text::stable_hash) of its text, without writing the text out.
#[derive(Clone, Copy, Debug)]
enum BibliographicKey<'a> {
    /// `v|journal|volume|page`.
    Volume { journal: &'a str, volume: &'a str, page: &'a str },
    /// `y|journal|year|page`.
    Year { journal: &'a str, year: i32, page: &'a str },
    /// `p|volume|page|year`.
    Locator { volume: &'a str, page: &'a str, year: i32 },
}

impl BibliographicKey<'_> {
    /// `each` of the key's text, given as its parts.
    fn parts<R>(self, each: impl FnOnce([&str; 6]) -> R) -> R {
        let mut year_text = itoa::Buffer::new();
        match self {
            BibliographicKey::Volume { journal, volume, page } => each(["v|", journal, "|", volume, "|", page]),
            BibliographicKey::Year { journal, year, page } => each(["y|", journal, "|", year_text.format(year), "|", page]),
            BibliographicKey::Locator { volume, page, year } => each(["p|", volume, "|", page, "|", year_text.format(year)]),
        }
    }

    /// The key's text.
    #[cfg(test)]
    fn text(self) -> String {
        self.parts(|parts| parts.concat())
    }

    /// The [`stable_hash`](super::text::stable_hash) of the key's text.
    fn hash(self) -> u64 {
        self.parts(|parts| StableHasher::of_parts(parts))
    }
}

struct Patterns {
    link: Regex,
    number: Regex,
    label: Regex,
    range_end: Regex,
    no_volume: Regex,
    colon: Regex,
    comma: Regex,
    chicago: Regex,
    year: Regex,
}

/// The patterns to search `text` with (see [`ByText`]).
fn patterns(text: &str) -> &'static Patterns {
    all_patterns().of(text)
}

/// The locators' patterns, in both compilations.
fn all_patterns() -> &'static ByText<Patterns> {
    static PATTERNS: OnceLock<ByText<Patterns>> = OnceLock::new();
    PATTERNS.get_or_init(|| ByText::new(|regex| Patterns {
        link: regex(r"(?i)(?:\bhttps?://|\bwww\.|\b10\.\d{4,9}/)\S*"),
        number: regex(r"(?i)\b([a-z]{0,2}\d{1,9})\b(?:\s*[-–—]\s*([a-z]{0,2}\d{1,9})\b)?"),
        label: regex(r"^\s*(?:\[\d{1,4}\]|\(\d{1,4}\)|\d{1,4}[.)])"),
        range_end: regex(r"^\s*[-–—]\s*([A-Za-z]?\d{1,6})"),
        no_volume: regex(r"(;)\s*:\s*([A-Za-z]{0,4}\d{1,20}[A-Za-z]?)\b"),
        colon: regex(r"\b(\d{1,5})\s*(?:(?:Pt|Part|Suppl|Supplement|Spec No)\.?\s*[A-Za-z0-9]{0,4}\s*)?(?:\([^()]{1,15}\))?\s*:\s*(?:[pP]p?\.?\s*)?([A-Za-z]{0,4}\d{1,20}[A-Za-z]?)\b"),
        comma: regex(r"\b(\d{1,5})\s*(?:\([^()]{1,15}\))?\s*,\s*(?:[pP]p?\.?\s*)?([A-Za-z]?\d{1,6})\s*[-–—]\s*[A-Za-z]?\d"),
        chicago: regex(r"\b(\d{1,5}),?\s*no\.\s*[A-Za-z0-9-]{1,8}\s*\([^()]{1,20}\)\s*:\s*([A-Za-z]{0,4}\d{1,20}[A-Za-z]?)\b"),
        year: regex(r"\b(1[89]\d\d|20\d\d)[a-z]?\b"),
    }))
}

pub(crate) const MONTHS: &[&str] = &[
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "spring",
    "summer",
    "autumn",
    "fall",
    "winter",
];

/// Whether a word is part of a date ("1977", "Mar", "Mar-Apr", "15", "(2015).", or a
/// misprinted year such as "1e79" or "19777": a word that starts with a digit) or empty.
/// Journal names do not end in a word that starts with a digit ("F1000Res" does not).
fn is_date_word(word: &str) -> bool {
    let core = word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    core.is_empty() || core.starts_with(|c: char| c.is_ascii_digit()) || core.split(['-', '/']).all(|part| MONTHS.contains(&part))
}

/// Whether a word ends a sentence of a title rather than abbreviating a journal word.
fn ends_sentence(word: &str) -> bool {
    let core = word.trim_end_matches(['"', '\'', '”', '’']);
    if core.ends_with(['?', '!', ']']) {
        return true;
    }
    match core.strip_suffix('.') {
        Some(stem) => stem.len() >= 3 && stem.chars().all(|c| c.is_lowercase() || c == '-'),
        None => false,
    }
}

/// A journal name without a trailing parenthetical qualifier: NLM abbreviations add the
/// place of publication ("Acta Endocrinol (Copenh)") where the ISO abbreviation does not.
fn without_qualifier(name: &str) -> Option<&str> {
    let trimmed = name.trim_end_matches(['.', ' ']);
    let open = trimmed.strip_suffix(')')?.rfind('(')?;
    let head = trimmed[..open].trim_end();
    (!head.is_empty()).then_some(head)
}

/// Calls `each` with the journal-name candidates in the text before a volume, squashed (see
/// [`squash`]), shortest first, each followed by its form [`without_qualifier`] if it has one.
///
/// Squashing drops what separates words, so a candidate's squashed form is its words' put
/// together, and the candidates are squashed a word at a time.
fn journal_candidates(prefix: &str, mut each: impl FnMut(&str)) {
    // Sized once: a word and the space after it take two bytes at least.
    let mut words: Vec<&str> = Vec::with_capacity(prefix.len().div_ceil(2));
    words.extend(prefix.split_whitespace());
    while words.last().is_some_and(|w| is_date_word(w)) {
        words.pop();
    }
    // Every candidate ends with the last word, so none has a qualifier unless the last word that
    // is more than dots ends with a parenthesis.
    let qualified =
        words.iter().rev().map(|word| word.trim_end_matches('.')).find(|word| !word.is_empty()).is_some_and(|word| word.ends_with(')'));
    // Squashing keeps at most a byte of each character.
    let mut squashed = String::with_capacity(prefix.len());
    for length in 1..=MAX_JOURNAL_WORDS.min(words.len()) {
        let start = words.len() - length;
        if length > 1 && ends_sentence(words[start]) {
            break;
        }
        squashed.insert_str(0, &squash(words[start]));
        each(&squashed);
        if qualified {
            if let Some(unqualified) = without_qualifier(&words[start..].join(" ")) {
                each(&squash(unqualified));
            }
        }
    }
}

/// The years (1800 to 2099) written in a reference, ascending; `patterns` are its patterns.
fn reference_years(reference: &str, patterns: &Patterns) -> Vec<i32> {
    // The year is the match without its letter (found without captures: they cost a slower
    // search per match).
    let year = |found: regex::Match<'_>| found.as_str().trim_end_matches(|c: char| c.is_ascii_lowercase()).parse().ok();
    let mut years: Vec<i32> = patterns.year.find_iter(reference).filter_map(year).collect();
    years.sort_unstable();
    years.dedup();
    years
}

/// The links (URLs, DOIs) written in `text`.
pub(crate) fn links(text: &str) -> impl Iterator<Item = &str> {
    patterns(text).link.find_iter(text).map(|m| m.as_str())
}

/// Whether `before` ends with a month's name (its last word, whatever its case).
fn follows_month(before: &str) -> bool {
    before.trim_end().rsplit(|c: char| !c.is_alphabetic()).next().is_some_and(|word| MONTHS.iter().any(|m| m.eq_ignore_ascii_case(word)))
}

/// The numbers of a reference and the last pages of its ranges (see [`ReferenceLocators`]);
/// `patterns` are its patterns.
fn reference_numbers(reference: &str, patterns: &Patterns, years: &[i32]) -> (Vec<String>, Vec<String>) {
    let body_start = patterns.label.find(reference).map_or(0, |label| label.end());
    // The digits of DOIs and URLs are not volumes or pages.
    let body = patterns.link.replace_all(&reference[body_start..], " ");
    let mut numbers = Vec::new();
    let mut range_ends = Vec::new();
    for found in patterns.number.find_iter(&body).take(MAX_NUMBERS) {
        let (first, end) = number_and_range_end(found.as_str());
        // A day of the month ("2021 May 15", "[cited 2023 Jan 5]") is part of a date.
        let is_day = first.parse::<u32>().is_ok_and(|day| day <= 31);
        if is_day && follows_month(&body[..found.start()]) {
            continue;
        }
        let is_year = first.len() == 4 && first.parse::<i32>().is_ok_and(|n| years.contains(&n));
        let Some(number) = first_page(first) else { continue };
        if let Some(end) = end.and_then(|end| last_page(&format!("{first}-{end}"))) {
            range_ends.push(end);
        }
        if !is_year && !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    range_ends.sort();
    range_ends.dedup();
    (numbers, range_ends)
}

/// The groups of a match of the `number` pattern, read from the match without a search for
/// captures: the number, and the end of the range it starts, if it does. Neither group holds a
/// space or a dash, and only spaces and dashes stand between them.
fn number_and_range_end(found: &str) -> (&str, Option<&str>) {
    let between = |c: char| c.is_whitespace() || matches!(c, '-' | '–' | '—');
    let number = found.split(between).next().unwrap_or(found);
    (number, found.rsplit(between).next().filter(|_| number.len() < found.len()))
}

/// Journal-less locator keys from each of the reference's numbers (a volume) with each of the
/// next two (its issue or page: styles put at most an issue between them), and each of its
/// years give or take one (the print and online years of an article often differ): they find
/// a publication whatever the style puts around its volume and pages ("Fortschr. Med. 97
/// (1979) 379"; "vol. 234, 2021, pp. 117921"). Only a publication with that volume, first
/// page and year shares one.
fn number_pair_keys(numbers: &[String], years: &[i32]) -> Vec<u64> {
    let paired = &numbers[..numbers.len().min(PAIRED_NUMBERS)];
    // Sized once: each volume pairs with two pages at most, and each year gives three keys.
    let mut keys = Vec::with_capacity(paired.len() * 2 * 3 * years.len());
    for (i, volume) in paired.iter().enumerate() {
        if !volume.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for page in paired.iter().skip(i + 1).take(2) {
            for year in years {
                keys.extend((year - 1..=year + 1).map(|year| BibliographicKey::Locator { volume, page, year }.hash()));
            }
        }
    }
    keys
}

/// A volume/page occurrence: where it starts, the volume (if written), first and last page.
type Locator = (usize, Option<String>, String, Option<String>);

/// Reads years, volumes and blocking keys from a reference string.
pub fn reference_locators(reference: &str, journals: &JournalTable) -> ReferenceLocators {
    let patterns = patterns(reference);
    let years = reference_years(reference, patterns);
    let locator = |c: regex::Captures<'_>| {
        let first = c.get(2)?;
        let last =
            patterns.range_end.captures(&reference[first.end()..]).and_then(|end| last_page(&format!("{}-{}", first.as_str(), &end[1])));
        let volume = match &c[1] {
            ";" => None,
            digits => Some(leading_number(digits)?),
        };
        Some((c.get(1)?.start(), volume, first_page(first.as_str())?, last))
    };
    let after_issue_number = |(start, _, _, _): &Locator| {
        let before = reference[..*start].trim_end().as_bytes();
        before.len() >= 3 && before[before.len() - 3..].eq_ignore_ascii_case(b"no.")
    };
    let mut locators: Vec<Locator> =
        patterns
            .colon
            .captures_iter(reference)
            .filter_map(locator)
            .filter(|found| !after_issue_number(found))
            .chain(patterns.chicago.captures_iter(reference).filter_map(locator))
            .chain(patterns.no_volume.captures_iter(reference).filter_map(locator))
            .chain(
                patterns.comma.captures_iter(reference).filter_map(locator).filter(|(_, volume, _, _)| {
                    !volume.as_ref().is_some_and(|v| v.len() == 4 && years.iter().any(|y| y.to_string() == *v))
                }),
            )
            .collect();
    locators.sort();
    locators.dedup();
    locators.truncate(MAX_LOCATORS);

    let mut keys = Vec::new();
    for (start, volume, page, _) in &locators {
        if let Some(volume) = volume {
            keys.extend(years.iter().map(|&year| BibliographicKey::Locator { volume, page, year }.hash()));
        }
        journal_candidates(&reference[..*start], |candidate| {
            for journal in journals.squashed_forms(candidate) {
                keys.extend(volume.iter().map(|volume| BibliographicKey::Volume { journal, volume, page }.hash()));
                keys.extend(years.iter().map(|&year| BibliographicKey::Year { journal, year, page }.hash()));
            }
        });
    }
    let (numbers, range_ends) = reference_numbers(reference, patterns, &years);
    keys.extend(number_pair_keys(&numbers, &years));
    keys.sort_unstable();
    keys.dedup();
    let sorted = |mut values: Vec<String>| {
        values.sort();
        values.dedup();
        values
    };
    let pages = sorted(locators.iter().map(|(_, _, page, _)| page.clone()).collect());
    let last_pages = sorted(locators.iter().filter_map(|(_, _, _, last)| last.clone()).collect());
    let volumes = sorted(locators.into_iter().filter_map(|(_, volume, _, _)| volume).collect());
    ReferenceLocators { years, volumes, pages, last_pages, numbers, range_ends, keys }
}

/// Name variants of a full journal title: as given, before a colon, without a leading
/// article or a trailing parenthesis ("Current biology : CB" → "Current biology").
fn title_variants(title: &str) -> Vec<&str> {
    let mut variants = vec![title];
    if let Some((head, _)) = title.split_once(':') {
        variants.push(head);
    }
    if let Some((head, _)) = title.split_once('(') {
        variants.push(head);
    }
    let without_article: Vec<&str> = variants.iter().filter_map(|v| v.trim().strip_prefix("The ")).collect();
    variants.extend(without_article);
    variants
}

/// The forms a publication with these journal names (ISO abbreviation, full title) is indexed
/// under: [`JournalTable::indexed_forms`] of every name's variants.
fn journal_forms(names: [Option<&str>; 2], journals: &JournalTable) -> Vec<String> {
    journals.indexed_forms(names.iter().flatten().flat_map(|name| title_variants(name)))
}

/// The indexed forms of the journals of the publications one maker indexes, each pair of names
/// worked out once: a journal has thousands of publications, and its forms cost a dozen
/// normalised strings and table lookups.
///
/// The pairs are held in a [`ByJournalNames`].
pub struct JournalForms {
    journals: Arc<JournalTable>,
    held: ByJournalNames<Arc<[String]>>,
}

impl JournalForms {
    /// Forms from `journals`.
    pub fn new(journals: Arc<JournalTable>) -> Self {
        JournalForms { journals, held: ByJournalNames::default() }
    }

    /// The forms of a publication with these journal `names` (ISO abbreviation, full title).
    pub fn of(&mut self, names: [Option<&str>; 2]) -> Arc<[String]> {
        let journals = &self.journals;
        self.held.get_or(names, || journal_forms(names, journals).into())
    }
}

/// Values worked out from a pair of journal names (ISO abbreviation, full title), held by the
/// pair: a journal has thousands of publications. They are forgotten all at once when there
/// are [`ByJournalNames::HELD`] pairs, so memory stays bounded whatever the names.
#[derive(Debug)]
pub(crate) struct ByJournalNames<V> {
    held: HashMap<String, V>,
    /// The names being looked up, each written after its length (so no two pairs read alike).
    scratch: String,
}

impl<V> Default for ByJournalNames<V> {
    fn default() -> Self {
        ByJournalNames { held: HashMap::new(), scratch: String::new() }
    }
}

impl<V: Clone> ByJournalNames<V> {
    /// Most pairs of names held (Europe PMC has about 30,000 journals).
    pub(crate) const HELD: usize = 100_000;

    /// The value held for `names`, made by `make` if none is.
    pub(crate) fn get_or(&mut self, names: [Option<&str>; 2], make: impl FnOnce() -> V) -> V {
        self.scratch.clear();
        for name in names {
            match name {
                Some(name) => {
                    self.scratch.push_str(itoa::Buffer::new().format(name.len()));
                    self.scratch.push(':');
                    self.scratch.push_str(name);
                }
                None => self.scratch.push('-'),
            }
        }
        if let Some(value) = self.held.get(self.scratch.as_str()) {
            return value.clone();
        }
        if self.held.len() >= Self::HELD {
            self.forget();
        }
        let value = make();
        self.held.insert(self.scratch.clone(), value.clone());
        value
    }

    /// Forgets every pair held.
    pub(crate) fn forget(&mut self) {
        self.held.clear();
    }
}

/// The blocking keys of a publication whose journal names have the indexed `forms` (see
/// [`JournalForms`]), as the [`stable_hash`](super::text::stable_hash)es of their texts: equal
/// to those of the same keys in [`ReferenceLocators::keys`].
pub fn publication_keys(locators: PublicationLocators<'_>, forms: &[String]) -> Vec<u64> {
    let Some(page) = locators.pages.and_then(first_page) else { return Vec::new() };
    let page = page.as_str();
    let volume = locators.volume.and_then(leading_number);
    let volume = volume.as_deref();
    let mut keys = Vec::new();
    if let (Some(volume), Some(year)) = (volume, locators.year) {
        keys.push(BibliographicKey::Locator { volume, page, year }.hash());
    }
    for journal in forms {
        if let Some(volume) = volume {
            keys.push(BibliographicKey::Volume { journal, volume, page }.hash());
        }
        if let Some(year) = locators.year {
            keys.push(BibliographicKey::Year { journal, year, page }.hash());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::super::text::stable_hash;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Texts with a letter that is not ASCII are mostly searched as written: more cases
        // find the few that are not.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Wherever text is searched with ASCII word boundaries (its word characters are ASCII,
        /// or its others stand away from numbers), the locators' patterns find what the
        /// patterns as written find.
        #[test]
        fn ascii_boundaries_find_the_same_where_chosen(
            text in r"[0-9a-zA-Z():;,. /–—“”’©\u{a0}\u{2009}-]{0,80}|[ -~]{0,80}|(é|α|第|\u{212A}|ſ|٣|[0-9]{1,3}|[a-zA-Z]{1,2}|https?://|www\.|pp?\.|no\.|[():;,. –-]){0,8}"
        ) {
            let every = |p: &'static Patterns| [&p.link, &p.number, &p.label, &p.range_end, &p.no_volume, &p.colon, &p.comma, &p.chicago, &p.year];
            prop_assert!(!all_patterns().chooses_ascii(&text) || all_patterns().agree(every, &text));
        }
    }

    proptest! {
        /// Read from the match alone, a number's groups are those a search for captures finds,
        /// and so is a year's.
        #[test]
        fn groups_read_from_a_match_are_the_captures(
            text in r"((1[89]|20)[0-9٣]{2}[a-z]?|[0-9]{1,3}[ \u{a0}]?[-–—][ \u{2009}]?[a-z]?[0-9]{1,3}|[0-9]{1,4}|[a-zA-Z]{1,3}|٣|K|[ ,.;:()\u{a0}\u{2009}–—-]){0,14}"
        ) {
            for captures in patterns(&text).number.captures_iter(&text) {
                let groups = (&captures[1], captures.get(2).map(|end| end.as_str()));
                prop_assert_eq!(number_and_range_end(&captures[0]), groups);
            }
            let captured: Vec<i32> = {
                let mut years: Vec<i32> = patterns(&text).year.captures_iter(&text).filter_map(|c| c[1].parse().ok()).collect();
                years.sort_unstable();
                years.dedup();
                years
            };
            prop_assert_eq!(reference_years(&text, patterns(&text)), captured);
        }
    }

    fn table() -> JournalTable {
        JournalTable::parse("jbiolchem\tjournal of biological chemistry\n")
    }

    /// The reference's keys that the publication shares.
    fn shared_keys(reference: &str, publication: PublicationLocators<'_>) -> Vec<u64> {
        let table = table();
        let reference = reference_locators(reference, &table);
        let hashes = publication_keys(publication, &journal_forms(publication.journals, &table));
        reference.keys.into_iter().filter(|k| hashes.contains(k)).collect()
    }

    proptest! {
        #[test]
        fn a_key_hashed_from_its_parts_hashes_as_its_text(
            journal in "[a-z ]{0,12}", volume in "[0-9a-z]{0,4}", page in "[0-9a-z|]{0,5}", year in any::<i32>(),
        ) {
            let (journal, volume, page) = (journal.as_str(), volume.as_str(), page.as_str());
            for key in [
                BibliographicKey::Volume { journal, volume, page },
                BibliographicKey::Year { journal, year, page },
                BibliographicKey::Locator { volume, page, year },
            ] {
                prop_assert_eq!(key.hash(), stable_hash(&key.text()));
            }
            prop_assert_eq!(BibliographicKey::Year { journal, year, page }.text(), format!("y|{journal}|{year}|{page}"));
        }
    }

    proptest! {
        /// Squashed a word at a time, the journal-name candidates are those written out word by
        /// word and squashed, each followed by its squashed form without a qualifier.
        #[test]
        fn candidates_squashed_a_word_at_a_time_are_the_candidates_written_out(
            prefix in r"([A-Za-z]{1,6}|Apr|1977|\(Copenh\)|\.|[a-z]{3,5}\.|é|[ ()?.]){0,14}"
        ) {
            let mut got = Vec::new();
            journal_candidates(&prefix, |candidate| got.push(candidate.to_string()));
            let mut words: Vec<&str> = prefix.split_whitespace().collect();
            while words.last().is_some_and(|w| is_date_word(w)) {
                words.pop();
            }
            let mut written = Vec::new();
            for start in (words.len().saturating_sub(MAX_JOURNAL_WORDS)..words.len()).rev() {
                if start + 1 < words.len() && ends_sentence(words[start]) {
                    break;
                }
                let candidate = words[start..].join(" ");
                written.push(squash(&candidate));
                written.extend(without_qualifier(&candidate).map(squash));
            }
            prop_assert_eq!(got, written);
        }
    }

    fn shares_key(reference: &str, publication: PublicationLocators<'_>) -> bool {
        !shared_keys(reference, publication).is_empty()
    }

    #[test]
    fn journal_forms_are_worked_out_once_per_pair_of_names() {
        let mut forms = JournalForms::new(Arc::new(table()));
        let names = [Some("J Biol Chem"), Some("The Journal of biological chemistry")];
        let first = forms.of(names);
        assert_eq!(*first, journal_forms(names, &table()));
        assert!(Arc::ptr_eq(&first, &forms.of(names)), "the second lookup is the first's forms");
        let apart = forms.of([Some("Lancet"), Some("Nature")]);
        let joined = forms.of([Some("LancetNature"), None]);
        assert_eq!((apart.len(), joined.len()), (2, 1), "pairs whose names join alike are told apart");
    }

    #[test]
    fn nlm_reference_meets_its_publication() {
        let publication = PublicationLocators {
            journals: [Some("Acta Endocrinol (Copenh)"), Some("Acta endocrinologica")],
            volume: Some("84"),
            year: Some(1977),
            pages: Some("673-80"),
        };
        assert!(shares_key("Acta Endocrinol (Copenh). 1977 Apr;84(4):673-80", publication));
        assert!(!shares_key("Acta Endocrinol (Copenh). 1977 Apr;84(4):674-80", publication));
        assert_eq!(
            shared_keys("Acta Physiol. 1977 Apr;84(4):673-80", publication),
            vec![stable_hash("p|84|673|1977")],
            "another journal shares only the journal-less key, which the scorer checks"
        );
    }

    #[test]
    fn full_reference_with_comma_locator_meets_its_publication() {
        let publication = PublicationLocators {
            journals: [Some("Osteoarthritis Cartilage"), Some("Osteoarthritis and cartilage")],
            volume: Some("23"),
            year: Some(2015),
            pages: Some("2279-87"),
        };
        let reference = "Shen C., Cai G.Q. (2015). Autophagy protects chondrocytes via ROS/Akt/FOXO3 signaling. \
                         Osteoarthritis Cartilage 23, 2279-2287.";
        assert!(shares_key(reference, publication));
    }

    #[test]
    fn abbreviation_with_periods_meets_the_full_title() {
        let publication = PublicationLocators {
            journals: [None, Some("The Journal of biological chemistry")],
            volume: Some("270"),
            year: Some(1995),
            pages: Some("1234-40"),
        };
        assert!(shares_key("Doe J. A study of things. J. Biol. Chem. 270:1234-1240 (1995).", publication));
    }

    #[test]
    fn long_article_numbers_and_misprinted_years_still_meet() {
        let article = |pages| PublicationLocators {
            journals: [Some("PLoS One"), Some("PloS one")],
            volume: Some("16"),
            year: Some(2021),
            pages: Some(pages),
        };
        assert!(shares_key("PLoS One. 2021 Jun;16(6):e0252640", article("e0252640")));
        assert!(shares_key("PLoS One. 2021 Jun;16:23247096211022487", article("23247096211022487")));
        assert!(shares_key(
            "Cochrane Database Syst Rev. 2021 May;16:CD013122",
            PublicationLocators { journals: [Some("Cochrane Database Syst Rev"), None], ..article("CD013122") }
        ));
        for misprint in ["1e79", "19779", "179", "1979eSep"] {
            let reference = format!("Med Instrum. {misprint} Jan;13(1):55-8");
            let publication =
                PublicationLocators { journals: [Some("Med Instrum"), None], volume: Some("13"), year: Some(1979), pages: Some("55-8") };
            assert!(shares_key(&reference, publication), "{reference}");
        }
    }

    #[test]
    fn candidates_stop_at_the_end_of_the_title() {
        let mut candidates = Vec::new();
        journal_candidates("King AL. Injury in mice. Am J Physiol ", |candidate| candidates.push(candidate.to_string()));
        assert_eq!(candidates, vec!["physiol", "jphysiol", "amjphysiol"]);
    }

    #[test]
    fn a_place_qualifier_and_part_numbers_are_looked_past() {
        let publication = PublicationLocators {
            journals: [Some("Acta Endocrinol."), Some("Acta endocrinologica")],
            volume: Some("84"),
            year: Some(1977),
            pages: Some("673-80"),
        };
        assert!(shares_key("Acta Endocrinol (Copenh). 1977 Apr;84(4):673-80", publication));
        let symposium = PublicationLocators {
            journals: [Some("Cold Spring Harb Symp Quant Biol"), None],
            volume: Some("41 Pt 2"),
            year: Some(1977),
            pages: Some("805-15"),
        };
        assert!(shares_key("Cold Spring Harb Symp Quant Biol. 1977;41 Pt 2:805-15", symposium));
        let lettered =
            PublicationLocators { journals: [Some("J Physiol"), None], volume: Some("266"), year: Some(1977), pages: Some("15P") };
        assert!(shares_key("J Physiol. 1977 Mar;266(1):15P", lettered));
    }

    #[test]
    fn chicago_issue_numbers_are_not_volumes() {
        let locators = reference_locators("Kocher R. \"Two theorems.\" J. Mol. Biol 127, no. 1 (1979): 39.", &table());
        assert_eq!(locators.volumes, vec!["127".to_string()]);
        assert_eq!(locators.pages, vec!["39".to_string()]);
    }

    #[test]
    fn an_article_number_without_volume_meets_by_year() {
        let publication =
            PublicationLocators { journals: [Some("Soc Sci Med"), None], volume: None, year: Some(2020), pages: Some("113169") };
        assert!(shares_key("Soc Sci Med. 2020 Jul 7;:113169", publication));
    }

    #[test]
    fn numbers_are_read_whatever_the_style() {
        let locators = reference_locators("[116] S. Onodera, T. Machida, Kansenshogaku Zasshi 51 (1978) 321–6.", &table());
        assert_eq!(locators.numbers, vec!["51", "321"], "the list label and the year left out");
        assert_eq!(locators.range_ends, vec!["326"]);
        let mla = reference_locators("Chevalier, J., et al. \"Decoding maps.\" Neuroimage, vol. 234, 2021, pp. 117921.", &table());
        assert_eq!(mla.numbers, vec!["234", "117921"]);
        assert!(mla.keys.contains(&stable_hash("p|234|117921|2021")), "{:?}", mla.keys);
        let covid =
            reference_locators("Covid19 and H1N1 in 2020 Jan 5: 12 cases, e0123. doi:10.1016/j.x.2020.03.004 https://x.org/7", &table());
        assert_eq!(covid.numbers, vec!["12", "e123"], "numbers inside words, days of months, DOIs and URLs are not numbers");
    }

    #[test]
    fn a_title_less_reference_in_any_order_meets_its_publication() {
        let publication = PublicationLocators {
            journals: [Some("Kansenshogaku Zasshi"), None],
            volume: Some("51"),
            year: Some(1978),
            pages: Some("321-6"),
        };
        assert!(shares_key("[116] S. Onodera, T. Machida, Kansenshogaku Zasshi 51 (1978) 321–6.", publication));
        assert!(shares_key("Onodera S (1978) Kansenshogaku Zasshi, vol. 51, pp. 321-326", publication));
        assert!(!shares_key("Onodera S (1978) Kansenshogaku Zasshi, vol. 52, pp. 321-326", publication));
        assert!(shares_key("Onodera S (1979) Kansenshogaku Zasshi, vol. 51, pp. 321-326", publication), "a year off by one");
        assert!(!shares_key("Onodera S (1980) Kansenshogaku Zasshi, vol. 51, pp. 321-326", publication));
    }

    #[test]
    fn a_year_is_not_a_volume() {
        let locators = reference_locators("Smith J. Title. Nature, 2001, 12-15.", &table());
        assert!(locators.volumes.is_empty(), "{locators:?}");
    }

    proptest! {
        #[test]
        fn nlm_rendering_always_meets(volume in 1u32..2000, page in 1u32..9000, span in 0u32..40, year in 1950i32..2024) {
            let pages = format!("{page}-{}", page + span);
            let volume_text = volume.to_string();
            let publication = PublicationLocators {
                journals: [Some("J Biol Chem"), None],
                volume: Some(&volume_text),
                year: Some(year),
                pages: Some(&pages),
            };
            let reference = format!("J Biol Chem. {year} Mar;{volume}(2):{page}-{}", page + span);
            prop_assert!(shares_key(&reference, publication));
        }
    }
}
