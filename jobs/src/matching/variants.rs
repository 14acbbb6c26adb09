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

/// Whether a text whose normalised words ([`words`]) are `words` reads as a notice about
/// another publication.
pub fn is_notice(words: &str) -> bool {
    pieces(words, b' ').any(is_notice_word)
}

/// A part number: a Roman numeral or a number of one or two digits.
fn numeral(word: &str) -> Option<u8> {
    match ROMAN.iter().position(|roman| roman.eq_ignore_ascii_case(word)) {
        Some(index) => Some(index as u8 + 1),
        None if (1..=2).contains(&word.len()) => word.parse().ok(),
        None => None,
    }
}

/// The part of a series `text` names: "Part II", "part 3" or a Roman numeral in parentheses
/// ("(II)"; numbers in parentheses are issues, not parts). `words` are its normalised words
/// ([`words`]).
pub fn part_number(text: &str, words: &str) -> Option<u8> {
    let mut tokens = pieces(words, b' ');
    let after_part = tokens.by_ref().find(|word| *word == "part").and_then(|_| tokens.next()).and_then(numeral);
    after_part.or_else(|| {
        text.split('(').skip(1).filter_map(|rest| rest.split_once(')')).find_map(|(inside, _)| {
            let inside = inside.trim();
            (inside.chars().all(|c| c.is_ascii_alphabetic()) && !inside.is_empty()).then(|| numeral(inside)).flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::text::words;

    fn notice(text: &str) -> bool {
        is_notice(&words(text))
    }

    fn part(text: &str) -> Option<u8> {
        part_number(text, &words(text))
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
