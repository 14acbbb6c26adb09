//! Text normalisation shared by publications and references, so that both sides of every
//! join key are computed by the same code.

/// Folds Latin letters with diacritics (Western, Central and Eastern European, Turkish, Nordic)
/// to ASCII and lowercases; other characters stay as they are (and separate words).
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ă' | 'Ą' => 'a',
        'ç' | 'ć' | 'č' | 'Ç' | 'Ć' | 'Č' => 'c',
        'ď' | 'đ' | 'Ď' | 'Đ' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' | 'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => 'e',
        'ğ' | 'Ğ' => 'g',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' | 'Į' | 'İ' => 'i',
        'ł' | 'ľ' | 'ĺ' | 'Ł' | 'Ľ' | 'Ĺ' => 'l',
        'ñ' | 'ń' | 'ň' | 'Ñ' | 'Ń' | 'Ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' | 'Ő' => 'o',
        'ŕ' | 'ř' | 'Ŕ' | 'Ř' => 'r',
        'ś' | 'š' | 'ş' | 'ș' | 'Ś' | 'Š' | 'Ş' | 'Ș' => 's',
        'ť' | 'ţ' | 'ț' | 'Ť' | 'Ţ' | 'Ț' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' | 'Ű' | 'Ų' => 'u',
        'ý' | 'ÿ' | 'Ý' | 'Ÿ' => 'y',
        'ź' | 'ż' | 'ž' | 'Ź' | 'Ż' | 'Ž' => 'z',
        c => c.to_ascii_lowercase(),
    }
}

/// Lowercase ASCII letters and digits only: "J. Biol. Chem." → "jbiolchem". Used for
/// journal names, as in the journal-abbreviation table.
pub fn squash(text: &str) -> String {
    text.chars().map(fold).filter(char::is_ascii_alphanumeric).collect()
}

/// A 64-bit hash of `text` that every worker and process running the same build computes
/// alike (blocking keys travel and meet as these hashes: a collision can only add a candidate
/// pair, which the scorer then judges). Keys are never stored: a restart computes them again,
/// so the hash may change between builds. It is foldhash's with a fixed seed, which hashes the
/// short texts of keys faster than SipHash.
pub fn stable_hash(text: &str) -> u64 {
    hash_bytes(text.as_bytes())
}

/// The hash of [`stable_hash`], of bytes.
fn hash_bytes(bytes: &[u8]) -> u64 {
    /// The seed: any fixed number.
    const SEED: u64 = 0x6369_7465_666c_6f77;
    std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::with_seed(SEED), bytes)
}

/// Text kept on the stack by [`StableHasher`]: longer text moves to the heap.
const INLINE_BYTES: usize = 128;

/// [`stable_hash`] of a text given part by part, without allocating the text: the parts are
/// put together in a buffer on the stack (on the heap past [`INLINE_BYTES`]) and hashed once
/// (a test pins that both give one value).
pub struct StableHasher {
    inline: [u8; INLINE_BYTES],
    len: usize,
    spilled: Vec<u8>,
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher { inline: [0; INLINE_BYTES], len: 0, spilled: Vec::new() }
    }
}

impl StableHasher {
    /// Appends `part` to the text.
    fn part(&mut self, part: &str) {
        let bytes = part.as_bytes();
        match self.inline.get_mut(self.len..self.len + bytes.len()) {
            Some(room) if self.spilled.is_empty() => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => {
                if self.spilled.is_empty() {
                    self.spilled.extend_from_slice(&self.inline[..self.len]);
                }
                self.spilled.extend_from_slice(bytes);
            }
        }
    }

    /// The [`stable_hash`] of the text.
    fn finish(self) -> u64 {
        hash_bytes(if self.spilled.is_empty() { &self.inline[..self.len] } else { &self.spilled })
    }

    /// The [`stable_hash`] of the text that `parts` make.
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut hasher = StableHasher::default();
        parts.into_iter().for_each(|part| hasher.part(part));
        hasher.finish()
    }
}

/// The pieces of `text` between the bytes `separator` (an ASCII byte), as
/// `text.split(separator as char)` gives them: an empty text is one empty piece.
///
/// Normalised text ([`words`], the packed fields of an indexed record) is mostly pieces of a few
/// bytes; `str::split` looks for each separator with a call to `memchr`, whose setup costs more
/// than such a piece, and this compares byte by byte.
pub fn pieces(text: &str, separator: u8) -> Pieces<'_> {
    debug_assert!(separator.is_ascii(), "a separator within a character would split it");
    Pieces { rest: Some(text), separator }
}

/// The iterator of [`pieces`].
#[derive(Clone, Debug)]
pub struct Pieces<'a> {
    /// The text after the last separator found; `None` once the last piece is out.
    rest: Option<&'a str>,
    separator: u8,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|byte| byte == self.separator) {
            // An ASCII byte is a whole character, so both sides are on character boundaries.
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Lowercase words of letters and digits separated by single spaces.
///
/// Every other character separates words, and letters with diacritics are folded to ASCII
/// ([`fold`]), so the words are ASCII. ASCII text, most of every record, is read byte by byte;
/// only other characters are decoded.
pub fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_words(&mut out, text);
    out
}

/// Appends the [`words`] of `text` to `out`.
pub fn push_words(out: &mut String, text: &str) {
    let start = out.len();
    let mut separated = false;
    let mut push = |c: char| {
        if c.is_ascii_alphanumeric() {
            if separated && out.len() > start {
                out.push(' ');
            }
            separated = false;
            out.push(c);
        } else {
            separated = true;
        }
    };
    let mut rest = text;
    while !rest.is_empty() {
        let ascii = rest.bytes().position(|b| !b.is_ascii()).unwrap_or(rest.len());
        rest[..ascii].bytes().for_each(|b| push(char::from(b.to_ascii_lowercase())));
        rest = &rest[ascii..];
        if let Some(c) = rest.chars().next() {
            push(fold(c));
            rest = &rest[c.len_utf8()..];
        }
    }
}

/// Regular expressions compiled twice: as written, and with ASCII word boundaries for text
/// where the two read the same.
///
/// A word boundary (`\b`) is where a word character meets a character that is not one. The
/// regex crate's lazy DFA handles only ASCII boundaries; where a Unicode boundary meets a
/// non-ASCII byte it falls back to slower engines, ten times slower on a reference. Only the
/// boundaries differ between the compilations, and they differ only beside a non-ASCII word
/// character (an accented or Greek letter; an en dash or a curly quote is not one).
///
/// The patterns compiled here are all written so that the pattern's side of each of their
/// boundaries is an ASCII digit, ASCII letters followed by a digit within two, a digit followed
/// by at most one letter, or the first letter of `http`, `www` or `pm`. Where a non-ASCII
/// word character stands in text, then, the boundaries read differently only if it is itself a
/// digit or the case variant of an ASCII letter (the Kelvin sign, the long s), or the run of
/// ASCII letters and digits before it holds a digit ("1α"), or the run after it holds a digit
/// ("α7") or starts with `h`, `w` or `p`. Text without any of these ("Müller", "39–53") is
/// searched by the DFA alone; a property test compares the compilations on both kinds of text.
pub(crate) struct ByText<P> {
    unicode: P,
    ascii: P,
}

impl<P> ByText<P> {
    /// The patterns `make` builds with the compiler it is given, compiled as written and with
    /// ASCII word boundaries.
    pub(crate) fn new(make: impl Fn(&dyn Fn(&str) -> regex::Regex) -> P) -> Self {
        let compile = |pattern: &str| regex::Regex::new(pattern).unwrap_or_else(|error| panic!("the pattern {pattern}: {error}"));
        ByText { unicode: make(&compile), ascii: make(&|pattern| compile(&pattern.replace(r"\b", r"(?-u:\b)"))) }
    }

    /// The patterns to search `text` (and any part of it) with.
    pub(crate) fn of(&self, text: &str) -> &P {
        if text.is_ascii() || ascii_boundaries_suffice(text) {
            &self.ascii
        } else {
            &self.unicode
        }
    }

    /// Whether `text` is searched with the ASCII compilation.
    #[cfg(test)]
    pub(crate) fn chooses_ascii(&self, text: &str) -> bool {
        std::ptr::eq(self.of(text), &self.ascii)
    }

    /// Whether both compilations of every pattern of `patterns` find the same matches, with
    /// the same groups, in `text`.
    #[cfg(test)]
    pub(crate) fn agree<'a, const N: usize>(&'a self, patterns: impl Fn(&'a P) -> [&'a regex::Regex; N], text: &str) -> bool {
        let found = |regex: &regex::Regex| -> Vec<Vec<Option<(usize, usize)>>> {
            regex.captures_iter(text).map(|c| c.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect()).collect()
        };
        patterns(&self.unicode).into_iter().zip(patterns(&self.ascii)).all(|(unicode, ascii)| found(unicode) == found(ascii))
    }
}

/// Whether no non-ASCII word character of `text` stands where a [`ByText`] pattern's Unicode
/// boundary could read differently from its ASCII one (see [`ByText`]).
fn ascii_boundaries_suffice(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alphanumeric = |b: &&u8| b.is_ascii_alphanumeric();
    text.char_indices().all(|(at, c)| {
        if c.is_ascii() || !regex_syntax::try_is_word_character(c).unwrap_or(true) {
            return true;
        }
        let mut before = bytes[..at].iter().rev().take_while(alphanumeric);
        let after = &bytes[at + c.len_utf8()..];
        let mut run_after = after.iter().take_while(alphanumeric);
        !c.is_numeric()
            && !matches!(c, '\u{212A}' | '\u{17F}')
            && !before.any(u8::is_ascii_digit)
            && !after.first().is_some_and(|b| matches!(b.to_ascii_lowercase(), b'h' | b'w' | b'p'))
            && !run_after.any(u8::is_ascii_digit)
    })
}

/// The leading run of digits of `text`, without leading zeros ("050 Suppl" → "50").
pub fn leading_number(text: &str) -> Option<String> {
    let digits = leading(text, u8::is_ascii_digit);
    let trimmed = digits.trim_start_matches('0');
    match (digits.is_empty(), trimmed.is_empty()) {
        (true, _) => None,
        (false, true) => Some("0".to_string()),
        (false, false) => Some(trimmed.to_string()),
    }
}

/// The leading run of ASCII bytes of `text` (after white space) that are `kept`.
fn leading(text: &str, kept: impl Fn(&u8) -> bool) -> &str {
    let text = text.trim_start();
    &text[..text.bytes().position(|b| !kept(&b)).unwrap_or(text.len())]
}

/// The first page of a page range, lowercased, without leading zeros: "G265-77" → "g265".
pub fn first_page(pages: &str) -> Option<String> {
    let first = leading(pages, u8::is_ascii_alphanumeric);
    let split = first.bytes().position(|b| b.is_ascii_digit())?;
    let (prefix, number) = first.split_at(split);
    let number = number.trim_start_matches('0');
    (!number.is_empty()).then(|| [prefix, number].concat().to_ascii_lowercase())
}

/// The last page of a page range, written out in full: "1227-33" → "1233", "G265–G277" →
/// "g277"; `None` without a range.
pub fn last_page(pages: &str) -> Option<String> {
    let first = first_page(pages)?;
    let (_, end) = pages.split_once(['-', '–', '—'])?;
    let end = leading(end, u8::is_ascii_alphanumeric).to_ascii_lowercase();
    let digits_at = |s: &str| s.bytes().position(|b| b.is_ascii_digit());
    let (first_prefix, first_digits) = first.split_at(digits_at(&first)?);
    let (end_prefix, end_digits) = end.split_at(digits_at(&end)?);
    let end_digits = end_digits.trim_start_matches('0');
    if end_digits.is_empty() || !end_digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let prefix = if end_prefix.is_empty() { first_prefix } else { end_prefix };
    let kept = first_digits.len().saturating_sub(end_digits.len());
    Some([prefix, &first_digits[..kept], end_digits].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_with_other_word_characters_keeps_unicode_boundaries() {
        let patterns = ByText::new(|regex| regex(r"\b\d+\b"));
        let found = |text: &'static str| patterns.of(text).find(text).map(|m| m.as_str());
        assert_eq!(found("HIF-1α"), None, "α is a word character: 1α is not a number");
        assert_eq!(found("IL-6 é"), Some("6"));
        assert_eq!(found("pages 39–53"), Some("39"), "an en dash is not a word character");
        assert!(patterns.agree(|regex| [regex], "HIF-1 “x” 39–53"));
        assert!(!patterns.agree(|regex| [regex], "HIF-1α"), "the two compilations differ where words are not ASCII");
    }

    #[test]
    fn accented_letters_away_from_numbers_keep_the_ascii_compilation() {
        let patterns = ByText::new(|regex| regex(r"\b\d+\b"));
        let ascii = |text: &str| patterns.chooses_ascii(text);
        assert!(ascii("Müller K, Pérez J. Título. Rev Esp Cardiol. 2015;68(3):210–8."));
        assert!(ascii("Ωmega β-catenin 12 ü"), "a run without digits, a dash, a space: nothing a boundary of the patterns reads");
        for text in ["HIF-1α", "1aα", "α7", "αab1", "\u{212A}1", "\u{17F}1", "٣", "Kühn", "éwww", "épmid"] {
            assert!(!ascii(text), "{text}");
        }
    }

    proptest! {
        #[test]
        fn words_appended_are_the_words(before in "[a-z ]{0,5}", text in "[a-zA-Z é.,-]{0,20}") {
            let mut out = before.clone();
            push_words(&mut out, &text);
            prop_assert_eq!(out, before + &words(&text));
        }

        #[test]
        fn pieces_are_what_split_gives(text in "[a b|,é]{0,12}", separator in prop::sample::select(vec![b' ', b'|', b','])) {
            let split: Vec<&str> = text.split(char::from(separator)).collect();
            prop_assert_eq!(pieces(&text, separator).collect::<Vec<_>>(), split);
        }
    }

    #[test]
    fn squash_matches_the_abbreviation_table_form() {
        assert_eq!(squash("J. Biol. Chem."), "jbiolchem");
        assert_eq!(squash("Acta Endocrinol (Copenh)"), "actaendocrinolcopenh");
        assert_eq!(squash("Revista Médica"), "revistamedica");
        assert_eq!(words("Łódź, Dvořák, Erdoğan, Ştefănescu"), "lodz dvorak erdogan stefanescu");
    }

    #[test]
    fn a_text_in_parts_hashes_as_the_text() {
        let mut hasher = StableHasher::default();
        for part in ["t|", "dopamine", " ", "modulates"] {
            hasher.part(part);
        }
        assert_eq!(hasher.finish(), stable_hash("t|dopamine modulates"));
        assert_eq!(StableHasher::default().finish(), stable_hash(""));
    }

    proptest::proptest! {
        /// Parts put together on the stack, on the heap, or crossing from one to the other,
        /// hash as their text.
        #[test]
        fn parts_of_any_length_hash_as_their_text(parts in proptest::collection::vec(".{0,90}", 0..6)) {
            let mut hasher = StableHasher::default();
            parts.iter().for_each(|part| hasher.part(part));
            proptest::prop_assert_eq!(hasher.finish(), stable_hash(&parts.concat()));
        }
    }

    #[test]
    fn words_collapse_punctuation() {
        assert_eq!(words("  Dopamine modulates: acute—responses!  "), "dopamine modulates acute responses");
    }

    #[test]
    fn pages_and_volumes() {
        assert_eq!(first_page("1227-33").as_deref(), Some("1227"));
        assert_eq!(first_page("G265–G277").as_deref(), Some("g265"));
        assert_eq!(first_page("e0123").as_deref(), Some("e123"));
        assert_eq!(first_page("-"), None);
        assert_eq!(last_page("1227-33").as_deref(), Some("1233"));
        assert_eq!(last_page("37-44").as_deref(), Some("44"));
        assert_eq!(last_page("G265–G277").as_deref(), Some("g277"));
        assert_eq!(last_page("6, 69-72").as_deref(), Some("72"));
        assert_eq!(last_page("113169"), None);
        assert_eq!(leading_number("050 Suppl 1").as_deref(), Some("50"));
        assert_eq!(leading_number("Suppl"), None);
    }

    proptest! {
        #[test]
        fn squash_is_idempotent_and_ascii(text in "\\PC{0,40}") {
            let once = squash(&text);
            prop_assert_eq!(squash(&once), once.clone());
            prop_assert!(once.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }

        #[test]
        fn words_never_has_double_or_edge_spaces(text in "\\PC{0,40}") {
            let w = words(&text);
            prop_assert!(!w.contains("  ") && !w.starts_with(' ') && !w.ends_with(' '));
            prop_assert_eq!(words(&w), w.clone());
        }

        /// Reading ASCII byte by byte gives the words that folding every character gives.
        #[test]
        fn words_read_as_folding_every_character_reads_them(text in "(\\PC|[a-zA-Z0-9 .,]){0,40}") {
            let mut expected = String::new();
            for word in text.chars().map(fold).collect::<String>().split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
                if !expected.is_empty() {
                    expected.push(' ');
                }
                expected.push_str(word);
            }
            prop_assert_eq!(words(&text), expected);
        }
    }
}
