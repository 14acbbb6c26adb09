//! What tells a publication from its near twins: a notice about it (a correction, erratum or
//! retraction repeats its title and authors) and the other parts of a series ("Part I" and
//! "Part II" share all but a numeral).

use super::text::pieces;
#[cfg(doc)]
use super::text::words;

/// Whether a normalised word marks a notice about another publication.
fn is_notice_word(word: &str) -> bool {
    // A match on strings compares lengths before bytes: most words are told apart by length.
    matches!(word, "correction" | "corrigendum" | "erratum" | "errata" | "retraction" | "retracted" | "addendum")
}

const ROMAN: &[&str] = &["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii"];

/// A part number: a Roman numeral or a number of one or two digits.
fn numeral(word: &str) -> Option<u8> {
    match ROMAN.iter().position(|roman| roman.eq_ignore_ascii_case(word)) {
        Some(index) => Some(index as u8 + 1),
        None if (1..=2).contains(&word.len()) => word.parse().ok(),
        None => None,
    }
}

/// Whether a text reads as a notice about another publication, and the part of a series it
/// names, read in one pass over its normalised words ([`words`]) `words`.
///
/// A notice has a word that marks one ("Correction", "Erratum"). A part is named by the word
/// after the first "part" ("Part II", "part 3"), or else by a Roman numeral in parentheses
/// ("(II)"; numbers in parentheses are issues, not parts).
pub fn notice_and_part(text: &str, words: &str) -> (bool, Option<u8>) {
    /// How far the words have been read for a part.
    enum Read {
        /// No "part" yet.
        Searching,
        /// The last word was the first "part".
        AfterPart,
        /// The word after the first "part" was read.
        Done,
    }
    let (mut notice, mut part, mut read) = (false, None, Read::Searching);
    for word in pieces(words, b' ') {
        notice |= is_notice_word(word);
        read = match read {
            Read::Searching if word == "part" => Read::AfterPart,
            Read::AfterPart => {
                part = numeral(word);
                Read::Done
            }
            other => other,
        };
    }
    (notice, part.or_else(|| parenthesised_numeral(text)))
}

/// The first Roman numeral written alone in parentheses in `text`.
fn parenthesised_numeral(text: &str) -> Option<u8> {
    text.split('(').skip(1).filter_map(|rest| rest.split_once(')')).find_map(|(inside, _)| {
        let inside = inside.trim();
        (inside.chars().all(|c| c.is_ascii_alphabetic()) && !inside.is_empty()).then(|| numeral(inside)).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::text::words;

    fn notice(text: &str) -> bool {
        notice_and_part(text, &words(text)).0
    }

    fn part(text: &str) -> Option<u8> {
        notice_and_part(text, &words(text)).1
    }

    proptest::proptest! {
        /// One pass finds what a search for a notice word and a search for the first "part"
        /// find, each on its own.
        #[test]
        fn one_pass_reads_what_two_searches_read(
            chosen in proptest::collection::vec(0usize..10, 0..12),
            parenthesised in proptest::option::of(0usize..3),
        ) {
            const WORDS: [&str; 10] = ["part", "ii", "3", "erratum", "the", "xii", "part", "correction", "13", "history"];
            let words = chosen.iter().map(|&n| WORDS[n]).collect::<Vec<_>>().join(" ");
            let text = match parenthesised {
                Some(n) => format!("{words} ({})", ["iv", "12", "x y"][n]),
                None => words.clone(),
            };
            let mut tokens = words.split(' ').filter(|word| !word.is_empty());
            let after_part = tokens.by_ref().find(|word| *word == "part").and_then(|_| tokens.next()).and_then(numeral);
            let expected = (words.split(' ').any(is_notice_word), after_part.or_else(|| parenthesised_numeral(&text)));
            proptest::prop_assert_eq!(notice_and_part(&text, &words), expected);
        }
    }

    #[test]
    fn notices_are_recognised() {
        assert!(notice("Correction to: Lenvatinib as a salvage therapy for advanced medullary thyroid cancer."));
        assert!(notice("Eftekhar R. Corrigendum to \"Comparison of conventional IVF versus ICSI\". Int J Reprod Biomed."));
        assert!(!notice("Lenvatinib as a salvage therapy for advanced medullary thyroid cancer."));
        assert!(!notice("Corrective surgery of the spine."));
    }

    #[test]
    fn parts_are_read_from_part_words_and_parenthesised_numerals() {
        assert_eq!(part("A history of hospital dental practice. Part I: the early days."), Some(1));
        assert_eq!(part("A history of hospital dental practice. Part II."), Some(2));
        assert_eq!(part("Salvage and repair of fixed partial dentures (II)."), Some(2));
        assert_eq!(part("Zambito O (1979) Hospital dental practice, part 3. New Dent. 10(2):5-9"), Some(3));
        assert_eq!(part("Type II diabetes in adults. Lancet. 1979;2(8):100-5."), None, "an issue or a type is not a part");
    }
}
