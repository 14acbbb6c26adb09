//! Title blocking keys and title agreement.
//!
//! A publication contributes a few word-shingles of its title chosen by hash (the
//! smallest hashes, as in min-hashing), so no global statistics are needed; a reference
//! contributes every shingle of its text, so a title contained in a longer reference string
//! is found. Shingles are over content words (stop words removed).

use super::text::{pieces, stable_hash, words};

/// Words per shingle.
const SHINGLE: usize = 3;
/// Shingles a publication contributes.
const KEYS_PER_TITLE: usize = 4;
/// Most shingles a reference contributes.
const MAX_REFERENCE_KEYS: usize = 120;

/// The content words of a text: normalised, without stop words and one-letter words.
pub fn content_words(text: &str) -> Vec<String> {
    pieces(&words(text), b' ').filter(|w| is_content_word(w)).map(str::to_string).collect()
}

/// Whether a normalised word (see [`words`]) is a content word: two letters or more, not a
/// stop word.
pub(crate) fn is_content_word(word: &str) -> bool {
    // A match on strings compares lengths before bytes: most words are told apart by length.
    !matches!(
        word,
        "after"
            | "al"
            | "among"
            | "an"
            | "and"
            | "are"
            | "as"
            | "at"
            | "between"
            | "by"
            | "during"
            | "et"
            | "for"
            | "from"
            | "in"
            | "into"
            | "is"
            | "its"
            | "of"
            | "on"
            | "or"
            | "the"
            | "their"
            | "to"
            | "via"
            | "vs"
            | "with"
    ) && word.len() > 1
}

/// The hash of each shingle of `words`, in order: each word's [`stable_hash`] is taken once,
/// and a shingle's hash mixes its words' hashes in order. A word is in up to [`SHINGLE`]
/// shingles, so this hashes a title's text once rather than once per shingle.
fn shingle_hashes<W: AsRef<str>>(words: &[W]) -> impl Iterator<Item = u64> {
    let hashes: Vec<u64> = words.iter().map(|word| stable_hash(word.as_ref())).collect();
    (SHINGLE..=hashes.len()).map(move |end| hashes[end - SHINGLE..end].iter().fold(SHINGLE_SEED, |mixed, hash| mix(mixed ^ hash)))
}

/// Where a shingle's hash starts, so that it differs from its words' hashes.
const SHINGLE_SEED: u64 = 0x7469_746c_6573_6869;

/// SplitMix64's finaliser: every bit of `x` moves about half the bits of the result.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The title keys of a publication whose title's content words (see [`content_words`]) are
/// `content`, as hashes: its `KEYS_PER_TITLE` shingles with the smallest hashes.
pub fn publication_title_keys(content: &[&str]) -> Vec<u64> {
    let mut keys: Vec<u64> = shingle_hashes(content).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(KEYS_PER_TITLE);
    keys
}

/// The title keys of a reference, as hashes: every shingle of its text, whose content words
/// (see [`content_words`]) are `words`.
pub fn reference_title_keys<W: AsRef<str>>(words: &[W]) -> Vec<u64> {
    let mut keys: Vec<u64> = shingle_hashes(&words[..words.len().min(MAX_REFERENCE_KEYS + SHINGLE - 1)]).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The shortest word that may be found within one edit of another (typos and OCR errors):
/// shorter words are told apart by one edit too often.
pub const NEAR_FROM: usize = 5;

/// The share of a title's content words found in a reference: each of `title` comes with
/// whether it is one of the reference's distinct content words, and a word that is not counts
/// when it has [`NEAR_FROM`] letters or more and `near` finds a reference word within one edit
/// of it.
pub fn containment<'w>(title: impl ExactSizeIterator<Item = (&'w str, bool)>, near: impl Fn(&str) -> bool) -> f64 {
    let words = title.len();
    if words == 0 {
        return 0.0;
    }
    let found = title.filter(|&(word, exact)| exact || (word.len() >= NEAR_FROM && near(word))).count();
    found as f64 / words as f64
}

/// The bytes of a word as a set, each byte modulo 64. Two words within one edit of each other
/// (see [`one_edit`]) differ in at most two members of their sets: a substitution takes one
/// byte out and puts one in, an insertion or a deletion changes one, a swap none.
pub(crate) fn letters(word: &str) -> u64 {
    word.bytes().fold(0, |set, byte| set | 1 << (byte & 63))
}

/// Words to look others up in allowing one edit, with their byte sets ([`letters`]), so that
/// most words are told apart from a word without comparing them.
///
/// ```
/// use citeflow_jobs::matching::title::Lexicon;
/// let lexicon = Lexicon::new(["dopamine", "modulates", "responses"]);
/// assert!(lexicon.has_near("repsonses") && lexicon.has_near("modulatse"));
/// assert!(!lexicon.has_near("serotonin"));
/// ```
pub struct Lexicon<'a> {
    words: Vec<(&'a str, u64)>,
}

impl<'a> Lexicon<'a> {
    /// The lexicon of `words`.
    pub fn new(words: impl IntoIterator<Item = &'a str>) -> Self {
        let words = words.into_iter();
        // Sized for every word offered (a pair's features make two lexicons of filtered words).
        let mut lexicon = Vec::with_capacity(words.size_hint().1.unwrap_or(0));
        lexicon.extend(words.map(|word| (word, letters(word))));
        Lexicon { words: lexicon }
    }

    /// The lexicon of those of `words` that can be within one edit of a word of [`NEAR_FROM`]
    /// letters or more: the lexicon [`containment`] needs.
    pub fn of_long(words: impl IntoIterator<Item = &'a str>) -> Self {
        Lexicon::new(words.into_iter().filter(|word| can_be_near_long(word)))
    }

    /// Whether a word of the lexicon is within one edit of `word` (see [`one_edit`]).
    pub fn has_near(&self, word: &str) -> bool {
        any_near(self.words.iter().map(|&(w, letters)| (letters, move || w)), word)
    }
}

/// Whether `word` can be within one edit of a word of [`NEAR_FROM`] letters or more.
pub(crate) fn can_be_near_long(word: &str) -> bool {
    word.len() + 1 >= NEAR_FROM
}

/// Whether any of `words`, each a byte set ([`letters`]) and how to read its word, is within
/// one edit of `word` (see [`one_edit`]): the sets tell most words apart without reading them.
pub(crate) fn any_near<'w, W: FnOnce() -> &'w str>(words: impl IntoIterator<Item = (u64, W)>, word: &str) -> bool {
    let set = letters(word);
    words.into_iter().any(|(letters, w)| {
        (letters ^ set).count_ones() <= 2 && {
            let w = w();
            w.len().abs_diff(word.len()) <= 1 && one_edit(w, word)
        }
    })
}

/// Whether two words differ by at most one substitution, insertion, deletion or swap. Words
/// are compared byte by byte: the words of [`content_words`] are ASCII.
pub(crate) fn one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    let suffix = ra.iter().rev().zip(rb.iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (ra.len() - suffix.min(ra.len()), rb.len() - suffix.min(rb.len()));
    match (ma, mb) {
        (0, 0) | (1, 0) | (0, 1) | (1, 1) => true,
        (2, 2) => ra[0] == rb[1] && ra[1] == rb[0],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stop_words_and_one_letter_words_are_not_content_words() {
        assert!(!is_content_word("the") && !is_content_word("x") && !is_content_word("") && !is_content_word("between"));
        assert!(is_content_word("tea") && is_content_word("betweenness") && is_content_word("2d"));
    }

    fn title_containment(title: &str, reference: &str) -> f64 {
        let mut distinct = content_words(reference);
        distinct.sort();
        distinct.dedup();
        let title = content_words(title);
        let lexicon = Lexicon::new(distinct.iter().map(String::as_str));
        containment(title.iter().map(|word| (word.as_str(), distinct.binary_search(word).is_ok())), |word| lexicon.has_near(word))
    }

    const TITLE: &str = "Dopamine modulates acute responses to cocaine, nicotine and ethanol in Drosophila.";

    #[test]
    fn a_title_inside_a_reference_shares_its_keys() {
        let reference = format!("Bainton RJ, Tsai LT. {TITLE} Curr Biol. 2000;10(4):187-94.");
        let from_reference = reference_title_keys(&content_words(&reference));
        let from_title = publication_title_keys(&content_words(TITLE).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(from_title.len(), KEYS_PER_TITLE);
        assert!(from_title.iter().all(|k| from_reference.contains(k)));
    }

    #[test]
    fn a_shingle_hashes_as_its_words_in_order_wherever_it_stands() {
        let hashes: Vec<u64> = shingle_hashes(&["dopamine", "modulates", "acute", "responses"]).collect();
        let moved: Vec<u64> = shingle_hashes(&["acute", "dopamine", "modulates", "acute"]).collect();
        let reordered: Vec<u64> = shingle_hashes(&["modulates", "dopamine", "acute"]).collect();
        assert_eq!(hashes.len(), 2);
        assert_eq!(moved[1], hashes[0], "the same three words, later in the text");
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(reordered[0], hashes[0], "the same words in another order");
        assert_eq!(shingle_hashes(&["two", "words"]).count(), 0);
    }

    #[test]
    fn containment_tolerates_typos_but_not_other_titles() {
        let noisy = "Bainton R. Dopamine modulatse acute responses to cocaine, nicotine and ethano1 in Drosophila. Curr Biol.";
        assert!(title_containment(TITLE, noisy) > 0.85);
        assert!(title_containment(TITLE, "Smith J. Serotonin and sleep in mice. Nature. 2001.") < 0.2);
        assert!(one_edit("responses", "repsonses"));
        assert!(!one_edit("responses", "response1s2"));
    }

    proptest! {
        /// The lexicon finds a word within one edit exactly when comparing with every word does, and
        /// so does the lexicon of long words for a long word.
        #[test]
        fn the_lexicon_finds_what_comparing_every_word_finds(
            words in proptest::collection::vec("[a-e0-2]{0,7}", 0..12),
            word in "[a-e0-2]{0,7}",
        ) {
            let near = words.iter().any(|w| one_edit(w, &word));
            prop_assert_eq!(Lexicon::new(words.iter().map(String::as_str)).has_near(&word), near);
            if word.len() >= NEAR_FROM {
                prop_assert_eq!(Lexicon::of_long(words.iter().map(String::as_str)).has_near(&word), near);
            }
        }
    }
}
