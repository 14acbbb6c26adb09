//! `citeflow eval`: runs the job's matching dataflow (the same candidate generation and
//! decision code, no Kafka or PostgreSQL) over publication files and labelled references,
//! and scores the result.
//!
//! Counting: a reference matched to its expected publication is a true positive; matched to
//! another publication, a false positive and a false negative; a negative (no expected
//! publication) matched to anything, a false positive; a positive left unmatched, a false
//! negative.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use citeflow_connectors::files::lines;
use citeflow_connectors::kafka::source::KafkaMessage;
use differential_dataflow::input::Input;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Publication, ReferenceKey};
use crate::envelope::{decode, Event, TopicRoles, PUBLICATION_EVENT};
use crate::loader::{envelope, publication_key};
use crate::matching::features::{Features, FEATURE_NAMES};
use crate::matching::journals::JournalTable;
use crate::matching::{candidate_features, candidates, decide, Candidate, DecisionRule, Scorer};
use crate::publications::{entries, take_apart};

/// One labelled reference.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LabelledReference {
    /// Identifier of the reference.
    pub ref_id: String,
    /// The reference string.
    pub citation: String,
    /// The publication it cites, or `None` when it cites nothing in the index.
    pub expected_pmid: Option<String>,
    /// How the reference is written (a citation style), when the set says so: the report then
    /// has a line per style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
}

/// Counts for one slice of the evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Matched to the expected publication.
    pub true_positives: u64,
    /// Matched to a publication that is not the expected one.
    pub false_positives: u64,
    /// Expected publication not matched.
    pub false_negatives: u64,
}

/// What one decision was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The expected publication.
    Right,
    /// Another publication than the expected one.
    Wrong,
    /// A publication, where none was expected.
    Spurious,
    /// Nothing, where a publication was expected.
    Missed,
    /// Nothing, as expected.
    Rejected,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Right => self.true_positives += 1,
            Outcome::Wrong => {
                self.false_positives += 1;
                self.false_negatives += 1;
            }
            Outcome::Spurious => self.false_positives += 1,
            Outcome::Missed => self.false_negatives += 1,
            Outcome::Rejected => {}
        }
    }

    /// TP / (TP + FP), TP / (TP + FN) and their harmonic mean.
    fn rates(&self) -> (f64, f64, f64) {
        let precision = ratio(self.true_positives, self.true_positives + self.false_positives);
        let recall = ratio(self.true_positives, self.true_positives + self.false_negatives);
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        (precision, recall, f1)
    }
}

/// The result for the references of one style.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StyleResult {
    /// References of the style.
    pub references: u64,
    /// Of which positives.
    pub positives: u64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Totals.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The result of an evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Totals.
    #[serde(flatten)]
    pub counts: Counts,
    /// References evaluated.
    pub references: u64,
    /// Of which positives.
    pub positives: u64,
    /// Publications indexed.
    pub publications: u64,
    /// Counts per method of the citation made (false negatives with no citation under `none`).
    pub by_method: BTreeMap<String, Counts>,
    /// Results per style, for references that name theirs.
    pub by_style: BTreeMap<String, StyleResult>,
    /// The errors, worst (highest-scoring false positives) first.
    #[serde(skip)]
    pub errors: Vec<EvaluationError>,
}

/// One wrong decision.
#[derive(Clone, Debug)]
pub struct EvaluationError {
    /// The reference.
    pub reference: LabelledReference,
    /// What the matcher decided.
    pub decision: Option<Candidate>,
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        1.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Reads EPMC records (JSONL, gzip or not) through the job's own decoding; returns each
/// publication with its raw record (the latest record per id).
pub fn read_records(files: &[PathBuf]) -> anyhow::Result<Vec<(Publication, Value)>> {
    let roles = TopicRoles { publications: "publications".into(), documents: "documents".into(), future: Default::default() };
    let mut by_id = BTreeMap::new();
    for file in files {
        for (offset, line) in lines(file).with_context(|| format!("reading {}", file.display()))?.enumerate() {
            let record: Value = serde_json::from_str(&line?).with_context(|| format!("{}: line {}", file.display(), offset + 1))?;
            let Some(key) = publication_key(&record) else { continue };
            let message = KafkaMessage {
                topic: roles.publications.clone(),
                partition: 0,
                offset: offset as i64,
                key: Some(key.into_bytes()),
                payload: Some(envelope(PUBLICATION_EVENT, "eval", &record)),
                timestamp: None,
            };
            if let Ok((Event::Publication(id, Some(publication)), _)) = decode(message, &roles) {
                by_id.insert(id, (publication, record));
            }
        }
    }
    Ok(by_id.into_values().collect())
}

/// Reads EPMC records as publications.
pub fn read_publications(files: &[PathBuf]) -> anyhow::Result<Vec<Publication>> {
    Ok(read_records(files)?.into_iter().map(|(publication, _)| publication).collect())
}

/// Reads labelled references.
pub fn read_gold(files: &[PathBuf]) -> anyhow::Result<Vec<LabelledReference>> {
    let mut references = Vec::new();
    for file in files {
        for line in lines(file).with_context(|| format!("reading {}", file.display()))? {
            references.push(serde_json::from_str(&line?).with_context(|| format!("a gold line in {}", file.display()))?);
        }
    }
    Ok(references)
}

/// Runs `build` (a piece of the job's dataflow) over `publications` and the references'
/// texts to completion, and returns its final output per reference position.
fn run_dataflow<V, B>(publications: Vec<Publication>, references: &[LabelledReference], build: B) -> Vec<(usize, V)>
where
    V: differential_dataflow::ExchangeData,
    B: for<'scope> Fn(
            VecCollection<'scope, u64, (String, Publication)>,
            VecCollection<'scope, u64, (ReferenceKey, String)>,
        ) -> VecCollection<'scope, u64, (ReferenceKey, V)>
        + Send
        + Sync
        + 'static,
{
    let output = Arc::new(Mutex::new(Vec::new()));
    let sink = output.clone();
    let texts: Vec<String> = references.iter().map(|r| r.citation.clone()).collect();
    timely::execute(timely::Config::thread(), move |worker| {
        let sink = sink.clone();
        let (mut publication_input, mut reference_input) = worker.dataflow::<u64, _, _>(|scope| {
            let (publication_input, publications) = scope.new_collection::<(String, Publication), isize>();
            let (reference_input, references) = scope.new_collection::<(ReferenceKey, String), isize>();
            build(publications, references).inspect(move |((key, value), _, diff)| {
                sink.lock().expect("output").push(((key.1 as usize, value.clone()), *diff));
            });
            (publication_input, reference_input)
        });
        for publication in publications.clone() {
            publication_input.insert((publication.id.clone(), publication));
        }
        for (index, text) in texts.iter().enumerate() {
            reference_input.insert((("eval".to_string(), index as u32), text.clone()));
        }
    })
    .expect("timely");
    let mut updates = Arc::try_unwrap(output).expect("dataflow finished").into_inner().expect("output");
    differential_dataflow::consolidation::consolidate(&mut updates);
    updates.into_iter().filter(|(_, diff)| *diff > 0).map(|(entry, _)| entry).collect()
}

/// Matches `references` against `publications` with the job's dataflow and `scorer`;
/// returns the decision per reference position.
pub fn match_references(
    publications: Vec<Publication>,
    references: &[LabelledReference],
    scorer: &Scorer,
    rule: DecisionRule,
) -> anyhow::Result<BTreeMap<usize, Candidate>> {
    if let Scorer::Model { runtime, model } = scorer {
        model.load(runtime)?;
    }
    let journals = Arc::new(JournalTable::bundled());
    let scorer = scorer.clone();
    Ok(run_dataflow(publications, references, move |publications, references| {
        let scored = candidates(publications, references, journals.clone(), &scorer, None).expect("the model loaded above");
        decide(scored, rule, None)
    })
    .into_iter()
    .collect())
}

/// Every candidate pair the job's dataflow considers, with its features, per reference position.
pub fn candidate_pairs(publications: Vec<Publication>, references: &[LabelledReference]) -> Vec<(usize, (String, Features))> {
    let journals = Arc::new(JournalTable::bundled());
    run_dataflow(publications, references, move |publications, references| {
        candidate_features(take_apart(entries(publications, journals.clone())).1, references, journals.clone())
    })
}

/// Writes the features of every candidate pair as CSV with a `label` column (1 when the
/// candidate is the expected publication): the training data of a learned scorer.
pub fn write_features(
    out: &mut impl std::io::Write,
    publications: Vec<Publication>,
    references: &[LabelledReference],
) -> anyhow::Result<usize> {
    writeln!(out, "ref_id,publication,label,{}", FEATURE_NAMES.join(","))?;
    let pairs = candidate_pairs(publications, references);
    for (index, (publication, features)) in &pairs {
        let reference = &references[*index];
        let label = u8::from(reference.expected_pmid.as_deref() == Some(publication.as_str()));
        let values: Vec<String> = features.vector().iter().map(|v| v.to_string()).collect();
        writeln!(out, "{},{publication},{label},{}", reference.ref_id, values.join(","))?;
    }
    Ok(pairs.len())
}

/// Scores decisions against the labels.
pub fn score(references: &[LabelledReference], decisions: &BTreeMap<usize, Candidate>, publications: u64) -> Evaluation {
    let mut counts = Counts::default();
    let mut by_method: BTreeMap<String, Counts> = BTreeMap::new();
    let mut by_style: BTreeMap<String, StyleResult> = BTreeMap::new();
    let mut errors = Vec::new();
    for (index, reference) in references.iter().enumerate() {
        let decision = decisions.get(&index);
        let outcome = match (&reference.expected_pmid, decision) {
            (Some(expected), Some(found)) if *expected == found.publication => Outcome::Right,
            (Some(_), Some(_)) => Outcome::Wrong,
            (None, Some(_)) => Outcome::Spurious,
            (Some(_), None) => Outcome::Missed,
            (None, None) => Outcome::Rejected,
        };
        counts.add(outcome);
        by_method.entry(decision.map_or("none", |c| c.method.name()).to_string()).or_default().add(outcome);
        if let Some(style) = &reference.style {
            let slot = by_style.entry(style.clone()).or_default();
            slot.references += 1;
            slot.positives += u64::from(reference.expected_pmid.is_some());
            slot.counts.add(outcome);
        }
        if !matches!(outcome, Outcome::Right | Outcome::Rejected) {
            errors.push(EvaluationError { reference: reference.clone(), decision: decision.cloned() });
        }
    }
    for result in by_style.values_mut() {
        (result.precision, result.recall, result.f1) = result.counts.rates();
    }
    errors.sort_by_key(|e| std::cmp::Reverse(e.decision.as_ref().map_or(0, |c| c.score)));
    let (precision, recall, f1) = counts.rates();
    Evaluation {
        precision,
        recall,
        f1,
        counts,
        references: references.len() as u64,
        positives: references.iter().filter(|r| r.expected_pmid.is_some()).count() as u64,
        publications,
        by_method,
        by_style,
        errors,
    }
}

/// A readable report with the worst errors.
pub fn report(evaluation: &Evaluation, worst: usize) -> String {
    let c = evaluation.counts;
    let mut out = format!(
        "{} references ({} positives) against {} publications\nprecision {:.4}  recall {:.4}  F1 {:.4}  (TP {}, FP {}, FN {})\n\nby method:\n",
        evaluation.references, evaluation.positives, evaluation.publications, evaluation.precision, evaluation.recall,
        evaluation.f1, c.true_positives, c.false_positives, c.false_negatives
    );
    for (method, counts) in &evaluation.by_method {
        out += &format!(
            "  {method:<14} TP {:>6}  FP {:>4}  FN {:>4}\n",
            counts.true_positives, counts.false_positives, counts.false_negatives
        );
    }
    if !evaluation.by_style.is_empty() {
        out += &format!(
            "\nby style (lowest recall first):\n  {:<52} {:>6} {:>6} {:>9} {:>7} {:>6}\n",
            "style", "refs", "pos", "precision", "recall", "F1"
        );
        let mut styles: Vec<_> = evaluation.by_style.iter().collect();
        styles.sort_by(|a, b| a.1.recall.total_cmp(&b.1.recall).then(a.0.cmp(b.0)));
        for (style, result) in styles {
            out += &format!(
                "  {style:<52} {:>6} {:>6} {:>9.4} {:>7.4} {:>6.4}\n",
                result.references, result.positives, result.precision, result.recall, result.f1
            );
        }
    }
    out += &format!("\nworst errors ({} of {}):\n", worst.min(evaluation.errors.len()), evaluation.errors.len());
    for error in evaluation.errors.iter().take(worst) {
        let decided = error
            .decision
            .as_ref()
            .map_or("nothing".to_string(), |c| format!("{} by {} ({:.2})", c.publication, c.method.name(), c.score()));
        let style = error.reference.style.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
        out += &format!(
            "  {}{style}: expected {}, matched {}\n    {}\n",
            error.reference.ref_id,
            error.reference.expected_pmid.as_deref().unwrap_or("nothing"),
            decided,
            error.reference.citation
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::Method;

    fn reference(expected: Option<&str>) -> LabelledReference {
        LabelledReference { ref_id: "r".into(), citation: "c".into(), expected_pmid: expected.map(String::from), style: None }
    }

    fn candidate(publication: &str) -> Candidate {
        Candidate { score: 900_000, method: Method::Bibliographic, publication: publication.into() }
    }

    #[test]
    fn a_wrong_match_is_a_false_positive_and_a_false_negative() {
        let references = vec![reference(Some("1")), reference(Some("2")), reference(None), reference(Some("4")), reference(None)];
        let decisions: BTreeMap<usize, Candidate> = [(0, candidate("1")), (1, candidate("3")), (2, candidate("9"))].into();
        let evaluation = score(&references, &decisions, 10);
        assert_eq!(evaluation.counts, Counts { true_positives: 1, false_positives: 2, false_negatives: 2 });
        assert!((evaluation.precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((evaluation.recall - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(evaluation.errors.len(), 3);
        assert!(evaluation.by_style.is_empty(), "no style named");
    }

    #[test]
    fn styles_are_scored_apart() {
        let styled = |expected: Option<&str>, style: &str| LabelledReference { style: Some(style.into()), ..reference(expected) };
        let references =
            vec![styled(Some("1"), "apa"), styled(Some("2"), "apa"), styled(None, "title-year"), styled(Some("4"), "title-year")];
        let decisions: BTreeMap<usize, Candidate> = [(0, candidate("1")), (2, candidate("9")), (3, candidate("4"))].into();
        let evaluation = score(&references, &decisions, 10);
        let apa = &evaluation.by_style["apa"];
        assert_eq!((apa.references, apa.positives, apa.precision, apa.recall), (2, 2, 1.0, 0.5));
        let title_year = &evaluation.by_style["title-year"];
        assert_eq!((title_year.precision, title_year.recall), (0.5, 1.0));
        assert!(report(&evaluation, 0).contains("by style"));
    }
}
