//! Author blocking keys and author agreement.
//!
//! A publication contributes each word of its first author's surname with its year; a
//! reference contributes the first surname-like word of its text (where every style but the
//! title-less NLM string puts the first author) with each year it writes. The key finds
//! references whose title is truncated, misspelt or too short for title shingles; the
//! scorer then weighs title, journal and locators as for any candidate. Years must agree
//! exactly: the key is a fallback for damaged titles, and a tolerance of one year would
//! triple its candidates.

use super::text::{pieces, StableHasher};

/// Leading words of a reference that may be the first author's surname (a surname of
/// several words, or one preceded by an initial).
const LEADING_WORDS: usize = 4;
/// Shortest surname word used as a key: shorter ones ("de", "li") would say too little.
const MIN_KEY_LETTERS: usize = 3;
/// Authors whose surnames are looked for in a reference.
const AUTHORS_CHECKED: usize = 3;

/// Whether a normalised word can be a surname key.
fn is_key_word(word: &str) -> bool {
    word.len() >= MIN_KEY_LETTERS && word.chars().all(|c| c.is_ascii_alphabetic())
}

/// The key of `word` and `year`: the [`stable_hash`](super::text::stable_hash) of
/// `a|word|year`, hashed from its parts.
fn author_key(word: &str, year: i32) -> u64 {
    StableHasher::of_parts(["a|", word, "|", itoa::Buffer::new().format(year)])
}

/// The author keys of a publication: each word of its first author's surname (`first`,
/// normalised as [`words`](super::text::words) gives it) with its year.
pub fn publication_author_keys(first: Option<&str>, year: Option<i32>) -> Vec<u64> {
    let (Some(first), Some(year)) = (first, year) else { return Vec::new() };
    pieces(first, b' ').filter(|w| is_key_word(w)).map(|word| author_key(word, year)).collect()
}

/// The author keys of a reference whose normalised words (in order, as [`words`](super::text::words) gives them)
/// are `reference_words`: its first surname-like leading word with each of `years`.
pub fn reference_author_keys<W: AsRef<str>>(reference_words: &[W], years: &[i32]) -> Vec<u64> {
    let Some(word) = reference_words.iter().map(AsRef::as_ref).take(LEADING_WORDS).find(|w| is_key_word(w)) else { return Vec::new() };
    years.iter().map(|year| author_key(word, *year)).collect()
}

/// How a publication's authors appear in a reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthorAgreement {
    /// The reference begins with the first author's surname.
    pub first_author_leads: bool,
    /// Share of the first authors' surnames found anywhere in the reference, in millionths.
    pub authors_found: u32,
}

/// How `authors` (surnames, in order, normalised as [`words`](super::text::words) gives them) appear in a
/// reference, where `position` finds the first position of a word among the reference's
/// normalised words, if it is one of them.
pub fn author_agreement<'a>(authors: impl Iterator<Item = &'a str>, position: impl Fn(&str) -> Option<usize>) -> AuthorAgreement {
    let appears = |surname: &&str, within: usize| {
        !surname.is_empty() && pieces(surname, b' ').all(|part| position(part).is_some_and(|at| at < within))
    };
    let checked: Vec<&str> = authors.take(AUTHORS_CHECKED).collect();
    AuthorAgreement {
        first_author_leads: checked.first().is_some_and(|first| appears(first, LEADING_WORDS)),
        authors_found: if checked.is_empty() {
            0
        } else {
            (checked.iter().filter(|surname| appears(surname, usize::MAX)).count() as u64 * 1_000_000 / checked.len() as u64) as u32
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::words;
    use super::*;

    fn shares_key(reference: &str, reference_years: &[i32], authors: &[&str], year: i32) -> bool {
        let reference_words: Vec<String> = pieces(&words(reference), b' ').map(str::to_string).collect();
        let from_reference = reference_author_keys(&reference_words, reference_years);
        publication_author_keys(authors.first().map(|first| words(first)).as_deref(), Some(year)).iter().any(|k| from_reference.contains(k))
    }

    #[test]
    fn the_first_author_and_year_meet_whatever_the_title() {
        let reference = "Emerson N (1977) Movement of the hyoid in. The American journal of anatomy.";
        assert!(shares_key(reference, &[1977], &["Emerson", "Smith"], 1977));
        assert!(!shares_key(reference, &[1977], &["Emerson"], 1978), "years agree exactly");
        assert!(!shares_key(reference, &[1977], &["Smith", "Emerson"], 1977), "only the first author is a key");
    }

    #[test]
    fn surnames_of_several_words_and_accents_meet() {
        let reference = "Martínez de Espronceda Ezquerro O, Azcona Rodríguez Z. (2021) The Reading Man Flap.";
        assert!(shares_key(reference, &[2021], &["Martinez de Espronceda Ezquerro"], 2021));
        assert!(!shares_key(reference, &[2021], &["Azcona Rodríguez"], 2021), "only the leading surname is a key");
        assert!(shares_key("de Marsac C, Cohen-Bazire E. Molecular composition. 1977.", &[1977], &["de Marsac"], 1977));
        assert!(publication_author_keys(Some("li"), Some(2021)).is_empty(), "too short to be a key");
        assert!(publication_author_keys(Some("smith"), None).is_empty());
        assert_eq!(author_key("smith", 1977), super::super::text::stable_hash("a|smith|1977"), "the key of the text a|surname|year");
    }

    #[test]
    fn agreement_finds_the_leading_author_and_the_others() {
        let authors: Vec<String> = ["Galera", "Casitas", "Martínez-Cerón", "Utrilla"].iter().map(|a| words(a)).collect();
        let authors: Vec<&str> = authors.iter().map(String::as_str).collect();
        let agreement = |reference: &str| {
            let words = words(reference);
            author_agreement(authors.iter().copied(), |word| pieces(&words, b' ').position(|w| w == word))
        };
        let full = agreement("Galera A, Casitas S, Martinez-Ceron N, et al. (2021) Effect of hyperinflation.");
        assert_eq!(full, AuthorAgreement { first_author_leads: true, authors_found: 1_000_000 });
        let other = agreement("Zeik K (2021) Effect of hyperinflation. Casitas R, editor.");
        assert!(!other.first_author_leads);
        assert_eq!(other.authors_found, 333_333);
        assert_eq!(author_agreement(std::iter::empty(), |word| (word == "galera").then_some(0)), AuthorAgreement::default());
    }
}
