//! The job's views in PostgreSQL: their schemas, migrations, row types, and the dataflow
//! that derives them from publications, documents and citations.

use citeflow_connectors::postgres::Migration;
use citeflow_engine::rows::{encode, encode_row, Column, CopyLine, Row, ViewId, ViewRow, ViewSchema};
use citeflow_operators::reduce::ReduceTotal;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::VecCollection;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use citeflow_engine::progress::{WATERMARKS_VIEW, WATERMARK_LOG_VIEW};

use crate::domain::{PolicyDocument, Publication, ReferenceKey};
use crate::matching::Candidate;
use crate::periods::{PeriodViewIds, CITATIONS_PER_PERIOD};

/// `publications`: one row per publication, with a full-text search column.
pub const PUBLICATIONS: ViewSchema = ViewSchema {
    table: "publications",
    columns: &[
        Column::text("publication_id"),
        Column::text("pmid"),
        Column::text("pmcid"),
        Column::text("doi"),
        Column::text("title"),
        Column::text("authors"),
        Column::text("journal"),
        Column::text("journal_abbreviation"),
        Column::text("volume"),
        Column::text("issue"),
        Column::integer("year"),
        Column::text("pages"),
    ],
    key_columns: 1,
};

/// `policy_documents`: one row per document, with a full-text search column.
pub const POLICY_DOCUMENTS: ViewSchema = ViewSchema {
    table: "policy_documents",
    columns: &[
        Column::text("document_id"),
        Column::text("organisation"),
        Column::text("title"),
        Column::text("url"),
        Column::text("published_at"),
        Column::integer("reference_count"),
    ],
    key_columns: 1,
};

/// `citations`: per document, reference and matcher, the cited publication.
pub const CITATIONS: ViewSchema = ViewSchema {
    table: "citations",
    columns: &[
        Column::text("document_id"),
        Column::integer("reference_index"),
        Column::text("matcher"),
        Column::text("publication_id"),
        Column::text("method"),
        Column::float("score"),
        Column::text("reference"),
    ],
    key_columns: 3,
};

/// `publication_citation_counts`: per cited publication, citations and citing documents.
pub const PUBLICATION_CITATION_COUNTS: ViewSchema = ViewSchema {
    table: "publication_citation_counts",
    columns: &[Column::text("publication_id"), Column::integer("citations"), Column::integer("citing_documents")],
    key_columns: 1,
};

/// `matcher_comparison`: with two matchers side by side, per reference either cites: the
/// publication each chose and whether they `agree`, cite `only_a`, `only_b`, or a `different`
/// publication.
pub const MATCHER_COMPARISON: ViewSchema = ViewSchema {
    table: "matcher_comparison",
    columns: &[
        Column::text("document_id"),
        Column::integer("reference_index"),
        Column::text("matcher_a"),
        Column::text("matcher_b"),
        Column::text("publication_a"),
        Column::text("publication_b"),
        Column::text("outcome"),
    ],
    key_columns: 2,
};

/// Every view, indexed by [`ViewId`].
pub const VIEWS: [ViewSchema; 8] = [
    PUBLICATIONS,
    POLICY_DOCUMENTS,
    CITATIONS,
    PUBLICATION_CITATION_COUNTS,
    MATCHER_COMPARISON,
    CITATIONS_PER_PERIOD,
    WATERMARKS_VIEW,
    WATERMARK_LOG_VIEW,
];

const PUBLICATIONS_ID: ViewId = 0;
const POLICY_DOCUMENTS_ID: ViewId = 1;
const CITATIONS_ID: ViewId = 2;
const COUNTS_ID: ViewId = 3;
const COMPARISON_ID: ViewId = 4;

/// Where the event-time views sit in [`VIEWS`].
pub const PERIOD_VIEW_IDS: PeriodViewIds = PeriodViewIds { periods: 5, watermarks: 6, log: 7 };

/// The migrations that create and evolve the views.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        component: "citations",
        version: 1,
        description: "publications, policy documents, citations and citation counts",
        sql: r#"
        CREATE TABLE publications (
            publication_id text PRIMARY KEY,
            pmid text,
            pmcid text,
            doi text,
            title text,
            authors text,
            journal text,
            journal_abbreviation text,
            volume text,
            issue text,
            year integer,
            pages text,
            search tsvector GENERATED ALWAYS AS (
                to_tsvector('english', coalesce(title, '') || ' ' || coalesce(authors, '') || ' ' || coalesce(journal, ''))
            ) STORED
        );
        CREATE INDEX publications_search ON publications USING gin (search);
        CREATE INDEX publications_doi ON publications (doi);
        CREATE TABLE policy_documents (
            document_id text PRIMARY KEY,
            organisation text NOT NULL,
            title text NOT NULL,
            url text,
            published_at timestamptz NOT NULL,
            reference_count integer NOT NULL,
            search tsvector GENERATED ALWAYS AS (
                to_tsvector('english', title || ' ' || organisation)
            ) STORED
        );
        CREATE INDEX policy_documents_search ON policy_documents USING gin (search);
        CREATE TABLE citations (
            document_id text NOT NULL,
            reference_index integer NOT NULL,
            matcher text NOT NULL,
            publication_id text NOT NULL,
            method text NOT NULL,
            score double precision NOT NULL,
            reference text NOT NULL,
            PRIMARY KEY (document_id, reference_index, matcher)
        );
        CREATE INDEX citations_publication ON citations (publication_id);
        CREATE TABLE publication_citation_counts (
            publication_id text PRIMARY KEY,
            citations bigint NOT NULL,
            citing_documents bigint NOT NULL
        );
    "#,
    },
    Migration {
        component: "citations",
        version: 2,
        description: "matcher comparison (A/B)",
        sql: r#"
        CREATE TABLE matcher_comparison (
            document_id text NOT NULL,
            reference_index integer NOT NULL,
            matcher_a text NOT NULL,
            matcher_b text NOT NULL,
            publication_a text,
            publication_b text,
            outcome text NOT NULL CHECK (outcome IN ('agree', 'only_a', 'only_b', 'different')),
            PRIMARY KEY (document_id, reference_index)
        );
    "#,
    },
    Migration {
        component: "citations",
        version: 3,
        description: "citations per organisation and period (event time)",
        sql: r#"
        CREATE TABLE citations_per_period (
            organisation text NOT NULL,
            period_start timestamptz NOT NULL,
            period_end timestamptz NOT NULL,
            documents bigint NOT NULL,
            citing_documents bigint NOT NULL,
            citations bigint NOT NULL,
            publications bigint NOT NULL,
            closed boolean NOT NULL,
            revision integer NOT NULL,
            PRIMARY KEY (organisation, period_start)
        );
    "#,
    },
    Migration {
        component: "citations",
        version: 4,
        description: "row digests, for reconciliation by bucket",
        sql: r#"
        ALTER TABLE publications ADD COLUMN row_digest bigint;
        ALTER TABLE policy_documents ADD COLUMN row_digest bigint;
        ALTER TABLE citations ADD COLUMN row_digest bigint;
        ALTER TABLE publication_citation_counts ADD COLUMN row_digest bigint;
        ALTER TABLE matcher_comparison ADD COLUMN row_digest bigint;
        ALTER TABLE citations_per_period ADD COLUMN row_digest bigint;
    "#,
    },
];

/// The row of `publications` of `publication`, built in `scratch`.
pub(crate) fn publication_row(publication: &Publication, scratch: &mut CopyLine) -> Row {
    encode_row(PUBLICATIONS_ID, &PUBLICATIONS, &PublicationRow(publication), scratch)
}

/// A row of `publications`.
struct PublicationRow<'a>(&'a Publication);

impl ViewRow for PublicationRow<'_> {
    fn write(&self, line: &mut CopyLine) {
        let p = self.0;
        line.text(&p.id)
            .opt_text(p.pmid.as_deref())
            .opt_text(p.pmcid.as_deref())
            .opt_text(p.doi.as_deref())
            .opt_text(p.title.as_deref())
            .opt_joined(&p.authors, "; ")
            .opt_text(p.journal_title.as_deref())
            .opt_text(p.journal_abbreviation.as_deref())
            .opt_text(p.volume.as_deref())
            .opt_text(p.issue.as_deref())
            .opt_int(p.year.map(i64::from))
            .opt_text(p.pages.as_deref());
    }
}

/// The row of `policy_documents` of `document`, built in `scratch`.
pub(crate) fn document_row(document: &PolicyDocument, scratch: &mut CopyLine) -> Row {
    encode_row(POLICY_DOCUMENTS_ID, &POLICY_DOCUMENTS, &DocumentRow(document), scratch)
}

/// A row of `policy_documents`.
struct DocumentRow<'a>(&'a PolicyDocument);

impl ViewRow for DocumentRow<'_> {
    fn write(&self, line: &mut CopyLine) {
        let d = self.0;
        line.text(&d.id)
            .text(&d.organisation)
            .text(&d.title)
            .opt_text(d.url.as_deref())
            .text(&d.published_at)
            .int(d.references.len() as i64);
    }
}

/// A row of `citations`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct CitationRow {
    /// Citing document.
    pub document_id: String,
    /// Position of the reference in the document.
    pub reference_index: u32,
    /// Matcher version that decided.
    pub matcher: String,
    /// The decision.
    pub candidate: Candidate,
    /// The reference string.
    pub reference: String,
}

impl ViewRow for CitationRow {
    fn write(&self, line: &mut CopyLine) {
        line.text(&self.document_id)
            .int(self.reference_index.into())
            .text(&self.matcher)
            .text(&self.candidate.publication)
            .text(self.candidate.method.name())
            .float(self.candidate.score())
            .text(&self.reference);
    }
}

/// A row of `publication_citation_counts`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CountRow {
    publication: String,
    citations: isize,
    citing_documents: isize,
}

impl ViewRow for CountRow {
    fn write(&self, line: &mut CopyLine) {
        line.text(&self.publication).int(self.citations as i64).int(self.citing_documents as i64);
    }
}

/// A row of `matcher_comparison`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ComparisonRow {
    reference: ReferenceKey,
    matchers: (String, String),
    publications: (Option<String>, Option<String>),
}

impl ViewRow for ComparisonRow {
    fn write(&self, line: &mut CopyLine) {
        let outcome = match &self.publications {
            (Some(a), Some(b)) if a == b => "agree",
            (Some(_), Some(_)) => "different",
            (Some(_), None) => "only_a",
            _ => "only_b",
        };
        line.text(&self.reference.0)
            .int(self.reference.1.into())
            .text(&self.matchers.0)
            .text(&self.matchers.1)
            .opt_text(self.publications.0.as_deref())
            .opt_text(self.publications.1.as_deref())
            .text(outcome);
    }
}

/// One matcher's name and its decisions per reference.
pub type MatcherDecisions<'scope, T> = (String, VecCollection<'scope, T, (ReferenceKey, Candidate)>);

/// The rows of every view, derived from the job's collections and the decisions of each
/// matcher (the first is primary: its citations are the ones counted per publication); the
/// rows of `publications` and `policy_documents` come made, as the inputs are taken apart.
pub fn view_rows<'scope, T>(
    publication_rows: VecCollection<'scope, T, Row>,
    document_rows: VecCollection<'scope, T, Row>,
    references: VecCollection<'scope, T, (ReferenceKey, String)>,
    decisions: Vec<MatcherDecisions<'scope, T>>,
) -> VecCollection<'scope, T, Row>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
{
    let primary = decisions.first().map(|(name, _)| name.clone()).unwrap_or_default();
    let tagged = differential_dataflow::collection::concatenate(
        publication_rows.scope(),
        decisions.iter().map(|(name, collection)| {
            let name = name.clone();
            collection.clone().map(move |(reference, candidate)| (reference, (name.clone(), candidate)))
        }),
    );
    let citations = tagged.clone().join_map(references, |(document, index), (matcher, candidate), reference| CitationRow {
        document_id: document.clone(),
        reference_index: *index,
        matcher: matcher.clone(),
        candidate: candidate.clone(),
        reference: reference.clone(),
    });
    let counted = citations.clone().filter(move |c| c.matcher == primary);
    let per_citation = counted.clone().map(|c| c.candidate.publication).count();
    let per_document = counted.map(|c| (c.candidate.publication, c.document_id)).distinct().map(|(p, _)| p).count();
    let counts = per_citation.join_map(per_document, |publication, citations, citing_documents| CountRow {
        publication: publication.clone(),
        citations: *citations,
        citing_documents: *citing_documents,
    });
    let counts = encode(counts, COUNTS_ID, &PUBLICATION_CITATION_COUNTS);
    let mut rows = publication_rows.concat(document_rows).concat(encode(citations, CITATIONS_ID, &CITATIONS)).concat(counts);
    if let [(a, _), (b, _)] = &decisions[..] {
        let matchers = (a.clone(), b.clone());
        let comparison = tagged.reduce_total_named("Matcher comparison", move |reference, chosen, output| {
            let pick = |name: &str| chosen.iter().find(|((m, _), _)| m == name).map(|((_, c), _)| c.publication.clone());
            let publications = (pick(&matchers.0), pick(&matchers.1));
            output.push((ComparisonRow { reference: reference.clone(), matchers: matchers.clone(), publications }, 1));
        });
        rows = rows.concat(encode(comparison.map(|(_, row)| row), COMPARISON_ID, &MATCHER_COMPARISON));
    }
    rows
}
