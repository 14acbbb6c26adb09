//! What tells a publication from its near twins: a notice about it (a correction, erratum or
//! retraction repeats its title and authors) and the other parts of a series ("Part I" and
//! "Part II" share all but a numeral).

use super::text::words;

/// Words that mark a notice about another publication.
const NOTICE_WORDS: &[&str] = &["correction", "corrigendum", "erratum", "errata", "retraction", "retracted", "addendum"];

const ROMAN: &[&str] = &["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii"];

/// Whether `text` reads as a notice about another publication.
pub fn is_notice(text: &str) -> bool {
    words(text).split(' ').any(|word| NOTICE_WORDS.contains(&word))
}

/// A part number: a Roman numeral or a number of one or two digits.
fn numeral(word: &str) -> Option<u8> {
    let word = word.to_ascii_lowercase();
    match ROMAN.iter().position(|roman| *roman == word) {
        Some(index) => Some(index as u8 + 1),
        None if (1..=2).contains(&word.len()) => word.parse().ok(),
        None => None,
    }
}

/// The part of a series `text` names: "Part II", "part 3" or a Roman numeral in parentheses
/// ("(II)"; numbers in parentheses are issues, not parts).
pub fn part_number(text: &str) -> Option<u8> {
    let normalised = words(text);
    let tokens: Vec<&str> = normalised.split(' ').collect();
    let after_part = tokens.windows(2).find(|pair| pair[0] == "part").and_then(|pair| numeral(pair[1]));
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

    #[test]
    fn notices_are_recognised() {
        assert!(is_notice("Correction to: Lenvatinib as a salvage therapy for advanced medullary thyroid cancer."));
        assert!(is_notice("Eftekhar R. Corrigendum to \"Comparison of conventional IVF versus ICSI\". Int J Reprod Biomed."));
        assert!(!is_notice("Lenvatinib as a salvage therapy for advanced medullary thyroid cancer."));
        assert!(!is_notice("Corrective surgery of the spine."));
    }

    #[test]
    fn parts_are_read_from_part_words_and_parenthesised_numerals() {
        assert_eq!(part_number("A history of hospital dental practice. Part I: the early days."), Some(1));
        assert_eq!(part_number("A history of hospital dental practice. Part II."), Some(2));
        assert_eq!(part_number("Salvage and repair of fixed partial dentures (II)."), Some(2));
        assert_eq!(part_number("Zambito O (1979) Hospital dental practice, part 3. New Dent. 10(2):5-9"), Some(3));
        assert_eq!(part_number("Type II diabetes in adults. Lancet. 1979;2(8):100-5."), None, "an issue or a type is not a part");
    }
}
