//! Identifiers found in reference strings and carried by publications: DOI, PMID, PMCID.
//! Both sides produce the same normalised [`Identifier`], so a join on it is an exact match.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::text::ByText;

/// A normalised publication identifier.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Identifier {
    /// A DOI, lowercased, without resolver prefix or trailing punctuation.
    Doi(String),
    /// A PubMed id, digits without leading zeros.
    Pmid(String),
    /// A PubMed Central id, `PMC` and digits.
    Pmcid(String),
}

impl Identifier {
    /// The match method this identifier stands for.
    pub fn method(&self) -> &'static str {
        match self {
            Identifier::Doi(_) => "doi",
            Identifier::Pmid(_) => "pmid",
            Identifier::Pmcid(_) => "pmcid",
        }
    }
}

/// Normalises a DOI: lowercase, no `doi:` or resolver prefix, no trailing punctuation.
pub fn normalise_doi(doi: &str) -> Option<String> {
    let lower = doi.trim().to_lowercase();
    let start = lower.find("10.")?;
    let mut doi = lower[start..].trim_end_matches(['.', ',', ';', ']', '>', '"', '\'']);
    // Closing parentheses that open nowhere in the DOI belong to the text around it. Counted
    // once: a DOI followed by many `)` costs linear time, not quadratic.
    let opening = doi.matches('(').count();
    let mut closing = doi.matches(')').count();
    while doi.ends_with(')') && closing > opening {
        doi = doi[..doi.len() - 1].trim_end_matches(['.', ',', ';']);
        closing -= 1;
    }
    let (prefix, suffix) = doi.split_once('/')?;
    let registrant_ok = prefix.len() >= 7 && prefix[3..].chars().all(|c| c.is_ascii_digit() || c == '.');
    (registrant_ok && !suffix.is_empty() && !doi.chars().any(char::is_control)).then(|| doi.to_string())
}

/// Normalises a PMID: digits only, no leading zeros.
pub fn normalise_pmid(pmid: &str) -> Option<String> {
    let digits = pmid.trim().trim_start_matches('0');
    (!digits.is_empty() && digits.len() <= 9 && digits.chars().all(|c| c.is_ascii_digit())).then(|| digits.to_string())
}

/// Normalises a PMCID to `PMC` followed by digits, dropping a version suffix (`PMC123.2`).
pub fn normalise_pmcid(pmcid: &str) -> Option<String> {
    let unversioned = match pmcid.trim().split_once('.') {
        Some((id, version)) if !version.is_empty() && version.chars().all(|c| c.is_ascii_digit()) => id,
        _ => pmcid.trim(),
    };
    let trimmed = unversioned;
    let digits = trimmed.strip_prefix("PMC").or_else(|| trimmed.strip_prefix("pmc")).unwrap_or(trimmed);
    normalise_pmid(digits).map(|d| format!("PMC{d}"))
}

/// The DOI, PMID and PMCID patterns to search `text` with (see [`ByText`]).
fn patterns(text: &str) -> &'static (Regex, Regex, Regex) {
    all_patterns().of(text)
}

/// The identifiers' patterns, in both compilations.
fn all_patterns() -> &'static ByText<(Regex, Regex, Regex)> {
    static PATTERNS: OnceLock<ByText<(Regex, Regex, Regex)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        ByText::new(|regex| {
            (regex(r"(?i)\b10\.\d{4,9}/[^\s]+"), regex(r"(?i)\bpmid\s*:?\s*(\d{1,9})\b"), regex(r"(?i)\bpmc\s*(\d{3,9})\b"))
        })
    })
}

/// Every identifier written in a reference string, deduplicated.
pub fn find_identifiers(reference: &str) -> Vec<Identifier> {
    let (doi, pmid, pmcid) = patterns(reference);
    let mut found: Vec<Identifier> = doi
        .find_iter(reference)
        .filter_map(|m| normalise_doi(m.as_str()).map(Identifier::Doi))
        .chain(pmid.captures_iter(reference).filter_map(|c| normalise_pmid(&c[1]).map(Identifier::Pmid)))
        .chain(pmcid.captures_iter(reference).filter_map(|c| normalise_pmcid(&c[1]).map(Identifier::Pmcid)))
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Texts with a letter that is not ASCII are mostly searched as written: more cases
        // find the few that are not.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Wherever text is searched with ASCII word boundaries, the identifiers' patterns find
        /// what the patterns as written find.
        #[test]
        fn ascii_boundaries_find_the_same_where_chosen(text in r"(pmid|PMC|pmc|10\.1234/|[0-9a-zA-Z:;,. /–“”-]){0,30}|[ -~]{0,80}|(pmid|PMC|10\.1234/|é|α|\u{212A}|ſ|٣|[0-9]{1,3}|[a-z]{1,2}|[ :.–-]){0,8}") {
            prop_assert!(!all_patterns().chooses_ascii(&text) || all_patterns().agree(|(doi, pmid, pmcid)| [doi, pmid, pmcid], &text));
        }
    }

    #[test]
    fn finds_a_doi_url_and_strips_punctuation() {
        let found = find_identifiers("Carra G. Neurocrit Care 2021. https://doi.org/10.1007/s12028-021-01221-4 .");
        assert_eq!(found, vec![Identifier::Doi("10.1007/s12028-021-01221-4".into())]);
    }

    #[test]
    fn finds_pmid_and_pmcid() {
        let found = find_identifiers("Smith J. Title. Nature. 2001. PMID: 012345; PMCID: PMC998877.");
        assert_eq!(found, vec![Identifier::Pmid("12345".into()), Identifier::Pmcid("PMC998877".into())]);
    }

    #[test]
    fn nlm_strings_carry_no_identifier() {
        assert!(find_identifiers("J Bacteriol. 1977 Mar;129(3):1227-33").is_empty());
    }

    #[test]
    fn doi_normalisation_agrees_with_publication_side() {
        assert_eq!(normalise_doi("10.1016/S0960-9822(00)00336-5").as_deref(), Some("10.1016/s0960-9822(00)00336-5"));
        assert_eq!(normalise_doi("doi:10.1016/x."), Some("10.1016/x".into()));
        assert_eq!(normalise_doi("10.12/x"), None);
        assert_eq!(normalise_pmcid("PMC6134338.4").as_deref(), Some("PMC6134338"));
        assert_eq!(normalise_pmcid("PMC61.x"), None);
        assert_eq!(normalise_doi("(see 10.1000/abc(1)).").as_deref(), Some("10.1000/abc(1)"));
        assert_eq!(normalise_doi("10.1000/a\u{0}b"), None, "control characters are no part of a DOI");
    }

    #[test]
    fn a_doi_followed_by_many_parentheses_is_found_in_linear_time() {
        let text = format!("see 10.1000/xyz{}", ")".repeat(200_000));
        assert_eq!(normalise_doi(&text).as_deref(), Some("10.1000/xyz"));
        assert_eq!(find_identifiers(&text), vec![Identifier::Doi("10.1000/xyz".into())]);
    }

    proptest! {
        #[test]
        fn a_written_doi_is_found(registrant in 1000u32..99999, suffix in "[a-z0-9][a-z0-9./()-]{0,20}[a-z0-9]") {
            let doi = format!("10.{registrant}/{suffix}");
            let text = format!("Author A. A title. J Test. 2020;1:2. doi:{doi}.");
            prop_assert!(find_identifiers(&text).contains(&Identifier::Doi(doi)));
        }

        #[test]
        fn a_written_pmid_is_found(pmid in 1u32..999_999_999) {
            let text = format!("Some reference. PMID {pmid}");
            prop_assert_eq!(find_identifiers(&text), vec![Identifier::Pmid(pmid.to_string())]);
        }
    }
}
