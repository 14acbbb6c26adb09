//! Event time in the citation job: the watermark over the documents topic (a document's event
//! time is its `published_at`), and `citations_per_period` — per organisation and period, the
//! documents published, the citing documents, the citations and the distinct publications
//! cited, each row `closed` once the watermark passes the period's end plus the allowed
//! lateness, with a `revision` that counts the late documents applied to it.
//!
//! A document for a closed period is late. Under [`LatePolicy::Apply`] it changes the row and
//! bumps its revision; under [`LatePolicy::DeadLetter`] it is kept out of the period view
//! (the other views still take it) and goes to the dead-letter topic with reason `late`.
//! Citations found later for an already-counted document (a publication arriving, a new model)
//! update a closed row without being late: closing says no more *documents* are expected.

use std::collections::BTreeMap;

use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_engine::progress::{WatermarkLogRow, WATERMARKS_VIEW, WATERMARK_LOG_VIEW};
use citeflow_engine::replay::ReplayEnd;
use citeflow_engine::rows::{encode, Column, CopyLine, Row, ViewId, ViewRow, ViewSchema};
use citeflow_engine::sink::DeadLetter;
use citeflow_engine::time::Epoch;
use citeflow_engine::timestamps::{format_rfc3339, parse_rfc3339, EventTime};
use citeflow_operators::aggregate::{distinct_count_by, Group};
use citeflow_operators::lateness::{close_windows, judge_lateness, Arrival, Judgement, LatePolicy};
use citeflow_operators::stamp::insertions;
use citeflow_operators::upsert::{upsert_replaying, Upsert};
use citeflow_operators::watermark::{
    track_watermarks, Observation, WatermarkAdvance, WatermarkSettings, WatermarkStatus, WatermarkTracker,
};
use citeflow_operators::window::{window_aggregate, Window, Windows};
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::core::Filter;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::Stream;

use crate::domain::PolicyDocument;

/// `citations_per_period`: per organisation and period, what was published and cited.
pub const CITATIONS_PER_PERIOD: ViewSchema = ViewSchema {
    table: "citations_per_period",
    columns: &[
        Column::text("organisation"),
        Column::text("period_start"),
        Column::text("period_end"),
        Column::integer("documents"),
        Column::integer("citing_documents"),
        Column::integer("citations"),
        Column::integer("publications"),
        Column::boolean("closed"),
        Column::integer("revision"),
    ],
    key_columns: 2,
};

/// How the job keeps event time.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodLogic {
    /// The periods of `citations_per_period`.
    pub windows: Windows,
    /// How long after its end a period still takes documents on time (ms).
    pub allowed_lateness: EventTime,
    /// What happens to a late document.
    pub policy: LatePolicy,
    /// How the watermark is derived.
    pub watermarks: WatermarkSettings,
    /// The documents topic and its partitions.
    pub topic: String,
    /// The partitions of the documents topic.
    pub partitions: Vec<i32>,
    /// The watermark advances committed by previous runs.
    pub log: Vec<WatermarkAdvance<i32>>,
    /// The documents topic's committed offsets, which a replay must reach before recording.
    pub replay_to: BTreeMap<i32, i64>,
}

impl PeriodLogic {
    /// When the windows of a document published at `time` close: the earliest end of its
    /// periods plus the allowed lateness.
    fn deadline(&self) -> impl Fn(EventTime) -> EventTime + Clone + 'static {
        let (windows, lateness) = (self.windows, self.allowed_lateness);
        move |time| windows.assign(time).iter().map(|w| w.end).min().unwrap_or(time) + lateness
    }

    /// The advances of the durable log `rows`, grouped by watermark.
    pub fn advances_from(rows: Vec<WatermarkLogRow>) -> Vec<WatermarkAdvance<i32>> {
        let mut grouped: BTreeMap<EventTime, Vec<(i32, i64)>> = BTreeMap::new();
        for row in rows {
            grouped.entry(row.watermark).or_default().push((row.partition, row.next_offset));
        }
        grouped
            .into_iter()
            .map(|(watermark, mut positions)| {
                positions.sort();
                WatermarkAdvance { watermark, positions }
            })
            .collect()
    }
}

/// What the period windows need of a document version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dated {
    /// Publishing organisation.
    pub organisation: String,
    /// Event time: `published_at`.
    pub published: EventTime,
}

impl Dated {
    /// The document's organisation and event time (`published_at` was validated on decoding).
    pub fn of(document: &PolicyDocument) -> Self {
        Dated { organisation: document.organisation.clone(), published: parse_rfc3339(&document.published_at).unwrap_or(0) }
    }
}

/// A document message as the lateness judge sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DocumentArrival {
    /// Document id.
    pub id: String,
    /// The new version; `None` deletes the document.
    pub dated: Option<Dated>,
    /// Its upsert order ([`crate::dataflow::PartitionClocks`]).
    pub order: crate::dataflow::MessageOrder,
    /// The message, for the dead-letter topic.
    pub message: KafkaMessage,
}

impl Arrival for DocumentArrival {
    type Partition = i32;
    type Key = String;
    type Summary = Dated;

    fn position(&self) -> (i32, i64) {
        (self.message.partition, self.message.offset)
    }

    fn key(&self) -> &String {
        &self.id
    }

    fn summary(&self) -> Option<Dated> {
        self.dated.clone()
    }
}

/// A row of `citations_per_period`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct PeriodRow {
    organisation: String,
    period: Window,
    counts: PeriodCounts,
    revision: isize,
    closed: bool,
}

impl ViewRow for PeriodRow {
    fn write(&self, line: &mut CopyLine) {
        let c = &self.counts;
        line.text(&self.organisation)
            .text(&format_rfc3339(self.period.start))
            .text(&format_rfc3339(self.period.end))
            .int(c.documents)
            .int(c.citing_documents)
            .int(c.citations)
            .int(c.publications)
            .boolean(self.closed)
            .int(self.revision as i64);
    }
}

/// The aggregates of one organisation's period.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct PeriodCounts {
    documents: i64,
    citing_documents: i64,
    citations: i64,
    publications: i64,
}

/// A period's member: a document (`None`) or one of its citations (the publication).
type Member = (String, Option<String>);

fn period_counts(members: &Group<'_, Member>) -> PeriodCounts {
    let citations: i64 =
        members.iter().filter(|((_, publication), count)| publication.is_some() && *count > 0).map(|(_, c)| *c as i64).sum();
    PeriodCounts {
        documents: distinct_count_by(|(document, publication): &Member| publication.is_none().then(|| document.clone()))(members),
        citing_documents: distinct_count_by(|(document, publication): &Member| publication.as_ref().map(|_| document.clone()))(members),
        citations,
        publications: distinct_count_by(|(_, publication): &Member| publication.clone())(members),
    }
}

/// A row of `citeflow_watermarks`: the job's watermark (`global`) or a partition's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct WatermarkRow {
    source: String,
    watermark: Option<EventTime>,
    next_offset: Option<i64>,
}

impl ViewRow for WatermarkRow {
    fn write(&self, line: &mut CopyLine) {
        line.text(&self.source).opt_text(self.watermark.map(format_rfc3339).as_deref()).opt_int(self.next_offset);
    }
}

/// The views' ids, in the job's view list.
#[derive(Clone, Copy, Debug)]
pub struct PeriodViewIds {
    /// `citations_per_period`.
    pub periods: ViewId,
    /// `citeflow_watermarks`.
    pub watermarks: ViewId,
    /// `citeflow_watermark_log`.
    pub log: ViewId,
}

/// What event time adds to the job's outputs.
pub struct PeriodOutputs<'scope> {
    /// Rows of `citations_per_period`, `citeflow_watermarks` and `citeflow_watermark_log`.
    pub rows: VecCollection<'scope, Epoch, Row>,
    /// Late documents refused under [`LatePolicy::DeadLetter`].
    pub dead_letters: VecCollection<'scope, Epoch, DeadLetter>,
}

/// Builds the watermark, the lateness decisions and the period views from the document
/// messages (`arrivals`), the documents topic's positions, and the primary matcher's
/// citations as `(document, publication)`; after a restart, the documents applied to the
/// periods are shown once the `replay` ends ([`upsert_replaying`]).
pub fn citations_per_period<'scope>(
    arrivals: Stream<'scope, Epoch, Vec<DocumentArrival>>,
    positions: Stream<'scope, Epoch, Vec<Observation<i32>>>,
    citations: VecCollection<'scope, Epoch, (String, String)>,
    logic: PeriodLogic,
    replay: Option<&ReplayEnd<'scope, Epoch>>,
    ids: PeriodViewIds,
) -> PeriodOutputs<'scope> {
    let events = arrivals
        .clone()
        .flat_map(|arrival| arrival.dated.map(|dated| Observation::Event { partition: arrival.message.partition, time: dated.published }));
    let tracker = WatermarkTracker::new(
        logic.watermarks,
        logic.partitions.iter().copied(),
        &logic.log,
        logic.replay_to.clone(),
        citeflow_engine::time::wall_clock_ms(),
    );
    let tracked = track_watermarks(events.concat(positions), tracker, logic.log.clone());

    let deadline = logic.deadline();
    let judge_deadline = deadline.clone();
    let judged = judge_lateness(arrivals, tracked.advances.clone(), logic.policy, move |dated: &Dated| judge_deadline(dated.published));
    let applied = upsert_replaying(
        judged.clone().filter(|j| j.applied).map(|j: Judgement<DocumentArrival, Dated>| Upsert {
            key: j.record.id,
            order: j.record.order,
            value: j.record.dated,
        }),
        replay,
    );
    let topic = logic.topic.clone();
    let refused = insertions(judged.clone().filter(|j| j.late && !j.applied).map(move |j| late_letter(&topic, j)));
    let windows = logic.windows;
    let revisions = insertions(judged.filter(|j| j.late && j.applied).flat_map(move |j| {
        let mut closed = Vec::new();
        for dated in j.previous.into_iter().chain(j.record.dated) {
            if j.watermark.is_some_and(|w| deadline(dated.published) <= w) {
                closed.extend(windows.assign(dated.published).into_iter().map(|w| (dated.organisation.clone(), w)));
            }
        }
        closed
    }))
    .count();

    let documents = applied.clone().map(|(id, dated)| (dated.organisation, (dated.published, (id, None))));
    let cited = applied.join_map(citations, |id, dated, publication| {
        (dated.organisation.clone(), (dated.published, (id.clone(), Some(publication.clone()))))
    });
    let counts = window_aggregate(documents.concat(cited), logic.windows, period_counts);
    let revised = counts.clone().join_map(revisions.clone(), |key, counts, revision| (key.clone(), (counts.clone(), *revision)));
    let unrevised = counts.antijoin(revisions.map(|(key, _)| key)).map(|(key, counts)| (key, (counts, 0)));
    let lateness = logic.allowed_lateness;
    let periods = close_windows(revised.concat(unrevised), tracked.advances, move |((_, window), _)| window.end + lateness)
        .map(|(((organisation, period), (counts, revision)), closed)| PeriodRow { organisation, period, counts, revision, closed });

    let topic = logic.topic.clone();
    let status = tracked.status.flat_map(move |status| watermark_rows(&topic, status));
    let topic = logic.topic.clone();
    let log = tracked.log.flat_map(move |advance| {
        let topic = topic.clone();
        advance.positions.into_iter().map(move |(partition, next_offset)| WatermarkLogRow {
            watermark: advance.watermark,
            topic: topic.clone(),
            partition,
            next_offset,
        })
    });
    let rows = encode(periods, ids.periods, &CITATIONS_PER_PERIOD).concat(encode(status, ids.watermarks, &WATERMARKS_VIEW)).concat(encode(
        log,
        ids.log,
        &WATERMARK_LOG_VIEW,
    ));
    PeriodOutputs { rows, dead_letters: refused }
}

fn watermark_rows(topic: &str, status: WatermarkStatus<i32>) -> Vec<WatermarkRow> {
    let global = WatermarkRow { source: "global".into(), watermark: status.global, next_offset: None };
    let partitions = status.partitions.into_iter().map(|p| WatermarkRow {
        source: format!("{topic}/{}", p.partition),
        watermark: p.watermark,
        next_offset: Some(p.next_offset),
    });
    std::iter::once(global).chain(partitions).collect()
}

fn late_letter(topic: &str, judgement: Judgement<DocumentArrival, Dated>) -> DeadLetter {
    let published = judgement.record.dated.as_ref().map(|d| format_rfc3339(d.published)).unwrap_or_else(|| "deleted".into());
    let watermark = judgement.watermark.map(format_rfc3339).unwrap_or_default();
    let message = judgement.record.message;
    DeadLetter {
        topic: topic.to_string(),
        partition: message.partition,
        offset: message.offset,
        reason: "late".into(),
        detail: format!("document `{}` ({published}) touches a period closed by the watermark {watermark}", judgement.record.id),
        key: message.key,
        payload: message.payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_counts_count_documents_citations_and_publications() {
        let members: Vec<Member> = vec![
            ("d1".into(), None),
            ("d1".into(), Some("p1".into())),
            ("d2".into(), None),
            ("d2".into(), Some("p1".into())),
            ("d2".into(), Some("p2".into())),
            ("d3".into(), None),
        ];
        let group: Vec<(&Member, isize)> = members.iter().map(|m| (m, if m.0 == "d1" && m.1.is_some() { 2 } else { 1 })).collect();
        let counts = period_counts(&group);
        assert_eq!(counts, PeriodCounts { documents: 3, citing_documents: 2, citations: 4, publications: 2 });
    }

    #[test]
    fn the_durable_log_groups_into_advances() {
        let row = |watermark, partition, next_offset| WatermarkLogRow { watermark, topic: "t".into(), partition, next_offset };
        let advances = PeriodLogic::advances_from(vec![row(20, 1, 4), row(10, 0, 3), row(20, 0, 5), row(10, 1, 0)]);
        assert_eq!(
            advances,
            vec![
                WatermarkAdvance { watermark: 10, positions: vec![(0, 3), (1, 0)] },
                WatermarkAdvance { watermark: 20, positions: vec![(0, 5), (1, 4)] }
            ]
        );
    }
}
