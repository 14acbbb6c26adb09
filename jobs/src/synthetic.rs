//! A seeded generator of labelled references for evaluation and benchmarks.
//!
//! It splits a publication corpus into an index and a held-out part, renders indexed
//! publications as positives and held-out ones as negatives, in six citation styles
//! (Vancouver/NLM with title, APA, Harvard, Chicago, a policy-report style, and the title-less
//! NLM strings of PubMed reference lists), with realistic noise: typos and OCR confusions,
//! truncated titles, abbreviated or full journal names, missing volume or pages, a year off by
//! one, "et al.". The same seed gives the same output.

use std::collections::HashSet;

use serde_json::Value;

use crate::domain::Publication;
use crate::eval::LabelledReference;
use crate::matching::text::{first_page, squash};

/// A small, fast, seeded random generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Shuffles `items` in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The citation styles rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// "Doe J, Roe R. Title. J Abbrev. 1977;12(3):45-67."
    Vancouver,
    /// "Doe, J., & Roe, R. (1977). Title. Journal, 12(3), 45-67."
    Apa,
    /// "Doe, J. and Roe, R. (1977) 'Title', Journal, 12(3), pp. 45-67."
    Harvard,
    /// "Doe, J., and R. Roe. "Title." Journal 12, no. 3 (1977): 45-67."
    Chicago,
    /// "Doe J et al. (1977) Title. Journal." — as policy reports cite, often without locators.
    PolicyReport,
    /// "J Abbrev. 1977 Mar;12(3):45-67" — PubMed reference lists: no authors, no title.
    NlmShort,
}

impl Style {
    /// The style's name in gold files (`style`).
    pub fn name(self) -> &'static str {
        match self {
            Style::Vancouver => "synthetic-vancouver",
            Style::Apa => "synthetic-apa",
            Style::Harvard => "synthetic-harvard",
            Style::Chicago => "synthetic-chicago",
            Style::PolicyReport => "synthetic-policy-report",
            Style::NlmShort => "synthetic-nlm-short",
        }
    }
}

/// Every style, in rotation order.
pub const STYLES: [Style; 6] = [Style::Vancouver, Style::Apa, Style::Harvard, Style::Chicago, Style::PolicyReport, Style::NlmShort];

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// How much noise to add.
#[derive(Clone, Copy, Debug)]
pub struct Noise {
    /// Probability of a typo or OCR confusion per reference.
    pub typo: f64,
    /// Probability that the title is truncated.
    pub truncated_title: f64,
    /// Probability that volume or pages are missing.
    pub missing_locator: f64,
    /// Probability that the year is off by one.
    pub year_off: f64,
}

impl Default for Noise {
    fn default() -> Self {
        Noise { typo: 0.3, truncated_title: 0.1, missing_locator: 0.15, year_off: 0.05 }
    }
}

fn initials(name: &str) -> String {
    name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default()
}

/// Author names as "Surname I" pairs; the generator only has surnames, so initials are
/// derived deterministically from the surname.
fn authors(publication: &Publication, rng: &mut Rng, style: Style) -> String {
    let names: Vec<(String, String)> =
        publication.authors.iter().map(|surname| (surname.clone(), initials(&surname.chars().rev().collect::<String>()))).collect();
    if names.is_empty() {
        return "Anonymous".to_string();
    }
    let shown = if names.len() > 3 && rng.chance(0.7) { 3 } else { names.len().min(6) };
    let et_al = shown < names.len();
    let rendered: Vec<String> = names[..shown]
        .iter()
        .map(|(surname, initial)| match style {
            Style::Vancouver | Style::PolicyReport | Style::NlmShort => format!("{surname} {initial}"),
            Style::Apa | Style::Harvard | Style::Chicago => format!("{surname}, {initial}."),
        })
        .collect();
    let joined = match style {
        Style::Apa if !et_al && rendered.len() > 1 => {
            format!("{}, & {}", rendered[..rendered.len() - 1].join(", "), rendered[rendered.len() - 1])
        }
        Style::Harvard | Style::Chicago if !et_al && rendered.len() > 1 => {
            format!("{} and {}", rendered[..rendered.len() - 1].join(", "), rendered[rendered.len() - 1])
        }
        _ => rendered.join(", "),
    };
    if et_al {
        format!("{joined}, et al.")
    } else {
        joined
    }
}

fn typo(text: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 4 {
        return text.to_string();
    }
    let at = 1 + rng.below(chars.len() as u64 - 2) as usize;
    let mut out: Vec<char> = chars.clone();
    match rng.below(5) {
        0 => out.swap(at, at - 1),
        1 => {
            out.remove(at);
        }
        2 => out.insert(at, chars[at]),
        3 => {
            let ocr = text.replacen("rn", "m", 1).replacen("l", "1", 1);
            return if ocr != text { ocr } else { text.replacen('o', "0", 1) };
        }
        _ => out[at] = if chars[at] == 'e' { 'c' } else { 'e' },
    }
    out.into_iter().collect()
}

fn truncate_words(text: &str, fraction: f64) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keep = ((words.len() as f64 * fraction).ceil() as usize).max(3).min(words.len());
    words[..keep].join(" ")
}

/// Renders one publication as a reference string in `style` with `noise`. Title-less NLM
/// strings keep their volume and pages (without them a string names an issue, not an
/// article) and cite a publication without either by its DOI, as PubMed does for articles
/// ahead of print; see [`identifiable`].
pub fn render(publication: &Publication, style: Style, noise: Noise, rng: &mut Rng) -> String {
    let mut title = publication.title.clone().unwrap_or_default().trim_end_matches('.').to_string();
    if rng.chance(noise.truncated_title) {
        title = truncate_words(&title, 0.6);
    }
    let journal = match style {
        Style::Vancouver | Style::NlmShort => publication.journal_abbreviation.clone().or_else(|| publication.journal_title.clone()),
        _ if rng.chance(0.5) => publication.journal_abbreviation.clone().or_else(|| publication.journal_title.clone()),
        _ => publication.journal_title.clone().or_else(|| publication.journal_abbreviation.clone()),
    }
    .unwrap_or_default()
    .trim_end_matches('.')
    .to_string();
    let mut year = publication.year.unwrap_or(2000);
    if rng.chance(noise.year_off) {
        year += if rng.chance(0.5) { 1 } else { -1 };
    }
    let mut volume = publication.volume.clone().unwrap_or_default();
    let issue = publication.issue.clone().unwrap_or_default();
    let mut pages = publication.pages.clone().unwrap_or_default();
    if style != Style::NlmShort && rng.chance(noise.missing_locator) {
        if rng.chance(0.5) {
            volume.clear();
        } else {
            pages.clear();
        }
    }
    let names = authors(publication, rng, style);
    let issue_part = |open: &str, close: &str| if issue.is_empty() { String::new() } else { format!("{open}{issue}{close}") };
    let comma_locator = |page_prefix: &str| {
        let mut locator = journal.clone();
        if !volume.is_empty() {
            locator += &format!(", {volume}{}", issue_part("(", ")"));
        }
        if !pages.is_empty() {
            locator += &format!(", {page_prefix}{pages}");
        }
        locator
    };
    let nlm_locator = |date: String| {
        let mut locator = date;
        if !volume.is_empty() {
            locator += &format!(";{volume}{}", issue_part("(", ")"));
        }
        if !pages.is_empty() {
            locator += &format!(":{pages}");
        }
        locator
    };
    let mut reference = match style {
        Style::Vancouver => format!("{names}. {title}. {journal}. {}.", nlm_locator(year.to_string())),
        Style::Apa => format!("{names} ({year}). {title}. {}.", comma_locator("")),
        Style::Harvard => format!("{names} ({year}) '{title}', {}.", comma_locator("pp. ")),
        Style::Chicago => {
            let names = names.trim_end_matches('.');
            let mut locator = journal.clone();
            if !volume.is_empty() {
                locator += &format!(" {volume}{}", issue_part(", no. ", ""));
            }
            locator += &format!(" ({year})");
            if !pages.is_empty() {
                locator += &format!(": {pages}");
            }
            format!("{names}. \"{title}.\" {locator}.")
        }
        Style::PolicyReport => format!("{names} ({year}) {title}. {journal}."),
        Style::NlmShort => {
            let month = MONTHS[rng.below(12) as usize];
            match &publication.doi {
                Some(doi) if volume.is_empty() && pages.is_empty() => format!("{journal}. {year} {month}. doi: {doi}"),
                _ => format!("{journal}. {}", nlm_locator(format!("{year} {month}"))),
            }
        }
    };
    if rng.chance(noise.typo) {
        reference = typo(&reference, rng);
    }
    reference
}

/// The first PMID [`recombined`] gives.
const FIRST_SYNTHETIC_PMID: usize = 90_000_000;

/// `count` distinct publications made from `seeds`, for benchmarks at scale: titles recombined
/// from the seeds' words, volumes, pages and years drawn anew, new PMIDs (from 90,000,000, the
/// id too), the rest (authors, journal) that of seed `i % seeds.len()` for the `i`-th.
pub fn recombined(seeds: &[Publication], count: usize, rng: &mut Rng) -> Vec<Publication> {
    let words: Vec<&str> = seeds.iter().filter_map(|p| p.title.as_deref()).flat_map(str::split_whitespace).collect();
    (0..count)
        .map(|i| {
            let length = 6 + rng.below(8) as usize;
            let title: Vec<&str> = (0..length).map(|_| words[rng.below(words.len() as u64) as usize]).collect();
            let first = 1 + rng.below(3000);
            let pmid = (FIRST_SYNTHETIC_PMID + i).to_string();
            Publication {
                id: pmid.clone(),
                pmid: Some(pmid),
                pmcid: None,
                doi: None,
                title: Some(title.join(" ")),
                volume: Some((1 + rng.below(300)).to_string()),
                pages: Some(format!("{first}-{}", first + rng.below(20))),
                year: Some(1950 + rng.below(72) as i32),
                ..seeds[i % seeds.len()].clone()
            }
        })
        .collect()
}

/// The EPMC record of a [`recombined`] publication: its seed's `record` with the fields the
/// recombination drew anew replaced, as the job would read it from the publications topic.
pub fn recombined_record(publication: &Publication, record: &Value) -> Value {
    let mut record = record.clone();
    record["pmid"] = Value::from(publication.pmid.as_deref());
    record["pmcid"] = Value::Null;
    record["doi"] = Value::Null;
    record["title"] = Value::from(publication.title.as_deref());
    record["journalVolume"] = Value::from(publication.volume.as_deref());
    record["pageInfo"] = Value::from(publication.pages.as_deref());
    record["pubYear"] = Value::from(publication.year);
    record
}

/// Whether a publication has what a citation needs (a title, authors, a journal and a year).
pub fn citable(publication: &Publication) -> bool {
    publication.title.as_deref().is_some_and(|t| t.split_whitespace().count() >= 3)
        && !publication.authors.is_empty()
        && publication.year.is_some()
        && (publication.journal_title.is_some() || publication.journal_abbreviation.is_some())
}

/// Whether a reference in `style` can identify `publication`: a title-less NLM string needs
/// the volume and pages, or a DOI.
pub fn identifiable(publication: &Publication, style: Style) -> bool {
    style != Style::NlmShort || (publication.volume.is_some() && publication.pages.is_some()) || publication.doi.is_some()
}

/// What a reference cannot tell apart: two records with the same title and first author
/// (a journal's translated twin, a duplicate PubMed record), or the same journal, year,
/// volume and first page (what a title-less string gives).
fn twin_keys(publication: &Publication) -> Vec<String> {
    let mut keys = Vec::new();
    if let (Some(title), Some(author)) = (&publication.title, publication.authors.first()) {
        keys.push(format!("t|{}|{}", squash(title), squash(author)));
    }
    let journal = publication.journal_abbreviation.as_deref().or(publication.journal_title.as_deref());
    if let (Some(journal), Some(volume), Some(page)) = (journal, &publication.volume, publication.pages.as_deref().and_then(first_page)) {
        keys.push(format!("l|{}|{:?}|{volume}|{page}", squash(journal), publication.year));
    }
    keys
}

/// A generated evaluation set.
pub struct Synthetic {
    /// The publications to index.
    pub index: Vec<Publication>,
    /// Labelled references: positives cite the index, negatives cite held-out publications.
    pub references: Vec<LabelledReference>,
}

/// Splits `publications` into an index and a held-out part (`held_out` of them), and
/// renders `positives` references to indexed publications and `negatives` to held-out ones.
/// A held-out publication that an indexed one twins (see `twin_keys`) is never cited as a
/// negative: matching it to its twin is right.
pub fn generate(mut publications: Vec<Publication>, held_out: usize, positives: usize, negatives: usize, seed: u64) -> Synthetic {
    let mut rng = Rng::new(seed);
    publications.sort_by(|a, b| a.id.cmp(&b.id));
    rng.shuffle(&mut publications);
    let split = held_out.min(publications.len());
    let index = publications.split_off(split);
    let twins: HashSet<String> = index.iter().flat_map(twin_keys).collect();
    let outside: Vec<Publication> = publications.into_iter().filter(|p| !twin_keys(p).iter().any(|key| twins.contains(key))).collect();
    let mut references = Vec::with_capacity(positives + negatives);
    let mut render_from = |pool: &[Publication], count: usize, positive: bool, rng: &mut Rng| {
        let citable: Vec<&Publication> = pool.iter().filter(|p| citable(p)).collect();
        for n in 0..count.min(citable.len() * 4) {
            let style = STYLES[n % STYLES.len()];
            let Some(publication) =
                (0..100).map(|_| citable[rng.below(citable.len() as u64) as usize]).find(|publication| identifiable(publication, style))
            else {
                continue;
            };
            references.push(LabelledReference {
                ref_id: format!("{}-{n}", if positive { "synthetic-positive" } else { "synthetic-negative" }),
                citation: render(publication, style, Noise::default(), rng),
                expected_pmid: positive.then(|| publication.id.clone()),
                style: Some(style.name().to_string()),
            });
        }
    };
    render_from(&index, positives, true, &mut rng);
    render_from(&outside, negatives, false, &mut rng);
    Synthetic { index, references }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(id: &str) -> Publication {
        Publication {
            id: id.into(),
            pmid: Some(id.into()),
            title: Some("Dopamine modulates acute responses to cocaine in Drosophila.".into()),
            authors: vec!["Bainton".into(), "Tsai".into(), "Singh".into(), "Moore".into()],
            journal_title: Some("Current biology : CB".into()),
            journal_abbreviation: Some("Curr Biol".into()),
            volume: Some("10".into()),
            issue: Some("4".into()),
            year: Some(2000),
            pages: Some("187-94".into()),
            ..Publication::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_references() {
        let corpus: Vec<Publication> = (0..50).map(|i| publication(&i.to_string())).collect();
        let a = generate(corpus.clone(), 10, 30, 20, 42);
        let b = generate(corpus.clone(), 10, 30, 20, 42);
        let c = generate(corpus, 10, 30, 20, 43);
        let texts = |s: &Synthetic| s.references.iter().map(|r| r.citation.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&a), texts(&b));
        assert_ne!(texts(&a), texts(&c));
        assert_eq!(a.index.len(), 40);
        assert_eq!(a.references.iter().filter(|r| r.expected_pmid.is_some()).count(), 30);
    }

    #[test]
    fn negatives_never_cite_the_index() {
        let corpus: Vec<Publication> = (0..50)
            .map(|i| Publication {
                title: Some(format!("Study q{i}q of dopamine responses")),
                pages: Some(format!("{}-9", 100 + i)),
                ..publication(&i.to_string())
            })
            .collect();
        let synthetic = generate(corpus, 10, 0, 40, 1);
        for reference in &synthetic.references {
            assert!(reference.expected_pmid.is_none());
            for indexed in &synthetic.index {
                assert!(!reference.citation.contains(&format!("q{}q", indexed.id)), "{}", reference.citation);
            }
        }
    }

    #[test]
    fn a_twin_of_an_indexed_publication_is_never_a_negative() {
        let corpus: Vec<Publication> = (0..50).map(|i| publication(&i.to_string())).collect();
        let synthetic = generate(corpus, 10, 0, 40, 1);
        assert!(synthetic.references.is_empty(), "every publication here is the same article under another id");
    }

    #[test]
    fn a_title_less_string_without_locators_cites_the_doi() {
        let clean = Noise { typo: 0.0, truncated_title: 0.0, missing_locator: 1.0, year_off: 0.0 };
        let ahead_of_print = Publication { volume: None, pages: None, doi: Some("10.1000/xyz".into()), ..publication("1") };
        let text = render(&ahead_of_print, Style::NlmShort, clean, &mut Rng::new(3));
        assert!(text.starts_with("Curr Biol. 2000 ") && text.ends_with(". doi: 10.1000/xyz"), "{text}");
        assert!(render(&publication("1"), Style::NlmShort, clean, &mut Rng::new(3)).ends_with(";10(4):187-94"), "locators are kept");
        assert!(!identifiable(&Publication { doi: None, ..ahead_of_print.clone() }, Style::NlmShort));
        assert!(identifiable(&Publication { doi: None, ..ahead_of_print }, Style::Apa));
    }

    #[test]
    fn every_style_renders_the_clean_fields() {
        let noise = Noise { typo: 0.0, truncated_title: 0.0, missing_locator: 0.0, year_off: 0.0 };
        let mut rng = Rng::new(5);
        for style in STYLES {
            let text = render(&publication("1"), style, noise, &mut rng);
            if style != Style::NlmShort {
                assert!(text.contains("Dopamine modulates acute responses"), "{style:?}: {text}");
            }
            assert!(text.contains("2000"), "{style:?}: {text}");
            if style != Style::PolicyReport {
                assert!(text.contains("187-94"), "{style:?}: {text}");
            }
            if style == Style::NlmShort {
                assert!(!text.contains("Dopamine"), "{text}");
            }
        }
    }
}
