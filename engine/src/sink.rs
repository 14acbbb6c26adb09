//! The dataflow side of the commit protocol.
//!
//! [`commit_views`] gathers the changes of every view, the source positions and the dead
//! letters on one worker, and each time the frontier advances hands the consolidated changes
//! of all epochs now complete to a [`Committer`] as ONE [`CommitBatch`]. A committer applies
//! a batch atomically, so readers always see every view consistent with one prefix of every
//! input partition.
//!
//! Hydration: after a restart the sources replay their inputs from the start. Until every
//! partition has reached the offset committed by the previous run, the views that readers
//! see must not move, yet the sink holds nothing: it hands each frontier's changes on as a
//! [`CommitMode::Stage`] batch, which the committer applies to a shadow of every view (so
//! a restart's memory does not grow with the size of the views, and the committer's pace
//! bounds the replay's, as it does when live). The first batch at or after the committed
//! offsets is a [`CommitMode::Reconcile`] batch: its changes complete the shadows, and the
//! committer makes every view equal to its shadow, writing only the rows that differ, together
//! with the positions of every partition. Later batches are [`CommitMode::Delta`]. Upstream,
//! the job's upserts keep the replay's intermediate versions to themselves and show only its
//! outcome (`citeflow_operators::upsert::upsert_replaying`), so what the shadows are staged
//! from is the live records, not every version the topics hold.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use crate::flow::Completed;
use crate::metrics::metrics;
use crate::rows::{Row, ViewId};
use crate::time::Epoch;

/// Where a source partition stands: the next offset to read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the next message to read.
    pub next_offset: i64,
}

/// A message that could not be used, with why and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Machine-readable reason, e.g. `invalid_json`.
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    /// The message key, as received.
    pub key: Option<Vec<u8>>,
    /// The message value, as received.
    pub payload: Option<Vec<u8>>,
}

/// How a committer must apply a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// Hydrating: the batch holds changes to the views as the replay rebuilds them; apply them
    /// to the views' shadows (which start empty), not to the views, and record no positions
    /// and no frontier.
    Stage,
    /// Hydration is complete: apply the batch's changes to the shadows, then make every view
    /// equal to its shadow, writing only rows that differ. The positions are those of every
    /// partition.
    Reconcile,
    /// The batch holds changes: delete the listed keys, upsert the listed rows.
    Delta,
}

/// The changes to one view within a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewChanges {
    /// Encoded primary keys of rows to delete.
    pub deletes: Vec<String>,
    /// Encoded rows to insert or update.
    pub upserts: Vec<String>,
}

/// Everything one transaction must write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitBatch {
    /// How to apply it.
    pub mode: CommitMode,
    /// Every epoch before this one is included; `None` once the inputs are exhausted.
    pub frontier: Option<Epoch>,
    /// Changes per view.
    pub views: BTreeMap<ViewId, ViewChanges>,
    /// New positions of the source partitions that moved.
    pub positions: Vec<SourcePosition>,
    /// Dead letters first seen in these epochs (or, when reconciling, all of them).
    pub dead_letters: Vec<DeadLetter>,
}

/// Applies batches atomically and in order.
pub trait Committer: 'static {
    /// Queues `batch`; batches are applied in the order submitted.
    fn submit(&mut self, batch: CommitBatch);
}

/// The offsets a restarted job must replay before it may write: per topic and partition,
/// the next offset committed by the previous run.
pub type HydrationTarget = BTreeMap<(String, i32), i64>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum SinkRecord {
    Position(SourcePosition),
    DeadLetter(DeadLetter),
    View(Row),
}

/// Tracks replay progress against the committed offsets.
struct Hydration {
    target: HydrationTarget,
    reached: BTreeMap<(String, i32), i64>,
    started: Instant,
    last_report: Instant,
}

impl Hydration {
    fn new(target: HydrationTarget) -> Self {
        Hydration { target, reached: BTreeMap::new(), started: Instant::now(), last_report: Instant::now() }
    }
}

impl Hydration {
    fn observe(&mut self, position: &SourcePosition) {
        let key = (position.topic.clone(), position.partition);
        let entry = self.reached.entry(key).or_insert(0);
        *entry = (*entry).max(position.next_offset);
    }

    fn complete(&self) -> bool {
        self.target.iter().all(|(key, offset)| self.reached.get(key).is_some_and(|reached| reached >= offset))
    }

    /// Offsets replayed so far and in all, over the partitions of the target.
    fn replayed(&self) -> (i64, i64) {
        let total = self.target.values().sum();
        let done = self.target.iter().map(|(key, offset)| self.reached.get(key).copied().unwrap_or(0).min(*offset)).sum();
        (done, total)
    }

    fn progress(&self) -> f64 {
        match self.replayed() {
            (_, 0) => 1.0,
            (done, total) => done as f64 / total as f64,
        }
    }

    /// Logs replay progress with rate and estimated time left, at most every few seconds.
    fn report(&mut self) {
        if self.last_report.elapsed() < HYDRATION_REPORT_INTERVAL {
            return;
        }
        self.last_report = Instant::now();
        let (done, total) = self.replayed();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-3);
        let eta = (total - done) as f64 / rate.max(1.0);
        tracing::info!(
            replayed = done,
            of = total,
            percent = format!("{:.1}", 100.0 * self.progress()),
            records_per_second = rate.round(),
            eta_seconds = eta.round(),
            "hydrating"
        );
    }
}

const HYDRATION_REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// Room for this many updates the sink keeps however few are waiting.
const PENDING_KEPT: usize = 1024;

/// Where the sink reports progress for flow control (see [`crate::flow`]).
pub struct SinkProgress<'a> {
    /// Follows the sink's input frontier on this worker.
    pub probe: &'a ProbeHandle<Epoch>,
    /// What the sink (hydrating) or its committer (live) has finished.
    pub completed: Completed,
}

/// The updates of `records`, consolidated on the worker that produced them once their epoch is
/// complete: only net changes travel to the worker that commits (a row revised within an
/// epoch, or a position moved several times, sends one update, or none). What it holds is the
/// updates of the epochs not yet complete.
fn consolidated_epochs<'scope>(records: VecCollection<'scope, Epoch, SinkRecord>) -> VecCollection<'scope, Epoch, SinkRecord> {
    /// The updates of one incomplete epoch, with the capability to send them.
    type Waiting = (Capability<Epoch>, Vec<(SinkRecord, Epoch, isize)>);
    let mut waiting: BTreeMap<Epoch, Waiting> = BTreeMap::new();
    records
        .inner
        .unary_frontier(Pipeline, "ConsolidateEpochs", move |_, _| {
            move |(input, frontier), output| {
                input.for_each(|capability, updates| {
                    for (record, time, diff) in updates.drain(..) {
                        waiting.entry(time).or_insert_with(|| (capability.delayed(&time, 0), Vec::new())).1.push((record, time, diff));
                    }
                });
                while let Some(entry) = waiting.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (capability, mut updates) = entry.remove();
                    differential_dataflow::consolidation::consolidate_updates(&mut updates);
                    output.session(&capability).give_container(&mut updates);
                }
            }
        })
        .as_collection()
}

/// Writes the views, source positions and dead letters through `committer` (which only
/// worker 0 needs to hold), withholding output until `target` is reached.
pub fn commit_views<'scope, C: Committer>(
    views: VecCollection<'scope, Epoch, Row>,
    positions: VecCollection<'scope, Epoch, SourcePosition>,
    dead_letters: VecCollection<'scope, Epoch, DeadLetter>,
    target: HydrationTarget,
    committer: Option<C>,
    progress: SinkProgress<'_>,
) {
    let records = views.map(SinkRecord::View).concat(positions.map(SinkRecord::Position)).concat(dead_letters.map(SinkRecord::DeadLetter));
    let records = consolidated_epochs(records).inner.probe_with(progress.probe).as_collection();
    let completed = progress.completed;

    let Some(committer) = committer else {
        records.inner.sink(Exchange::new(|_| 0), "CommitViews", |(input, _frontier)| input.for_each(|_, _| {}));
        return;
    };
    let mut committer = Some(committer);
    let mut hydration = Some(Hydration::new(target));
    let mut pending: Vec<(SinkRecord, Epoch, isize)> = Vec::new();
    let mut replayed_positions: Vec<(SinkRecord, isize)> = Vec::new();
    let mut last_upper: Option<Epoch> = Some(0);
    metrics().hydrating.set(1);

    records.inner.sink(Exchange::new(|_| 0), "CommitViews", move |(input, frontier)| {
        input.for_each(|_time, data| pending.append(data));
        let upper = frontier.frontier().first().copied();
        if upper == last_upper {
            return;
        }
        last_upper = upper;
        if let Some(upper) = upper {
            metrics().frontier.set(upper as i64);
        }
        let complete = |time: &Epoch| upper.is_none_or(|upper| *time < upper);
        let mut ready: Vec<(SinkRecord, isize)> =
            pending.extract_if(.., |(_, time, _)| complete(time)).map(|(record, _, diff)| (record, diff)).collect();
        // The epoch a replay ends in brings every view's rows at once: keep no room for it.
        if pending.capacity() > 4 * pending.len().max(PENDING_KEPT) {
            pending.shrink_to(2 * pending.len().max(PENDING_KEPT));
        }
        consolidate(&mut ready);

        let batch = match hydration.as_mut() {
            Some(state) => {
                let (mut positions, changes): (Vec<_>, Vec<_>) =
                    ready.into_iter().partition(|(record, _)| matches!(record, SinkRecord::Position(_)));
                for (record, _) in &positions {
                    if let SinkRecord::Position(position) = record {
                        state.observe(position);
                    }
                }
                replayed_positions.append(&mut positions);
                consolidate(&mut replayed_positions);
                metrics().hydration_progress.set(state.progress());
                if !state.complete() && upper.is_some() {
                    state.report();
                    let batch = build_batch(CommitMode::Stage, upper, changes);
                    if batch.views.is_empty() && batch.dead_letters.is_empty() {
                        completed.finish(upper);
                        return;
                    }
                    batch
                } else {
                    tracing::info!(
                        seconds = format!("{:.1}", state.started.elapsed().as_secs_f64()),
                        "hydration complete; reconciling views"
                    );
                    hydration = None;
                    metrics().hydrating.set(0);
                    let mut updates = changes;
                    updates.append(&mut replayed_positions);
                    build_batch(CommitMode::Reconcile, upper, updates)
                }
            }
            None if ready.is_empty() && upper.is_some() => {
                completed.pass(upper);
                return;
            }
            None => build_batch(CommitMode::Delta, upper, ready),
        };
        completed.hand(upper);
        if let Some(committer) = committer.as_mut() {
            committer.submit(batch);
        }
        if upper.is_none() {
            committer = None;
        }
    });
}

/// The batch of `updates` (consolidated: no record twice). A view's row whose key also lost a
/// row is an upsert, not a delete.
fn build_batch(mode: CommitMode, frontier: Option<Epoch>, updates: Vec<(SinkRecord, isize)>) -> CommitBatch {
    let mut views: BTreeMap<ViewId, ViewChanges> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut positions = Vec::new();
    let mut dead_letters = Vec::new();
    for (record, diff) in updates {
        match record {
            SinkRecord::View(row) => rows.push((row, diff)),
            SinkRecord::Position(position) if diff > 0 => positions.push(position),
            SinkRecord::DeadLetter(letter) if diff > 0 => dead_letters.push(letter),
            SinkRecord::Position(_) | SinkRecord::DeadLetter(_) => {}
        }
    }
    // Rows with one key are adjacent in `Row`'s order; a sorted input sorts in linear time.
    rows.sort();
    for group in rows.chunk_by_mut(|(a, _), (b, _)| a.view == b.view && a.key() == b.key()) {
        let view = group[0].0.view;
        let changes = views.entry(view).or_default();
        let mut added = group.iter_mut().filter(|(_, diff)| *diff > 0);
        match added.next() {
            Some((row, diff)) => {
                if *diff > 1 || added.next().is_some() {
                    tracing::error!(view, key = %row.key(), "a view holds two rows with one key; keeping one");
                }
                changes.upserts.push(std::mem::take(row).into_line());
            }
            None => changes.deletes.push(std::mem::take(&mut group[0].0).into_key()),
        }
    }
    CommitBatch { mode, frontier, views, positions, dead_letters }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{encode_row, CopyLine, ViewRow, ViewSchema};

    struct KeyValue<'a>(&'a str, &'a str);

    impl ViewRow for KeyValue<'_> {
        fn write(&self, line: &mut CopyLine) {
            line.text(self.0).text(self.1);
        }
    }

    const SCHEMA: ViewSchema = ViewSchema { table: "t", columns: &["k", "v"], key_columns: 1 };

    fn row(view: ViewId, key: &str, value: &str) -> SinkRecord {
        SinkRecord::View(encode_row(view, &SCHEMA, &KeyValue(key, value), &mut CopyLine::default()))
    }

    #[test]
    fn an_update_is_an_upsert_not_a_delete() {
        let batch =
            build_batch(CommitMode::Delta, Some(10), vec![(row(0, "a", "old"), -1), (row(0, "a", "new"), 1), (row(0, "b", "gone"), -1)]);
        let changes = &batch.views[&0];
        assert_eq!(changes.upserts, vec!["a\tnew".to_string()]);
        assert_eq!(changes.deletes, vec!["b".to_string()]);
    }

    #[test]
    fn changes_are_grouped_by_view_and_key_whatever_their_order() {
        let updates = vec![
            (row(1, "a", "x"), -1),
            (row(0, "ab", "y"), 1),
            (row(0, "a", "old"), -1),
            (row(1, "a", "y"), 1),
            (row(0, "ab", "z"), -1),
            (row(0, "a", "new"), 1),
            (row(0, "c", "gone"), -1),
        ];
        let batch = build_batch(CommitMode::Delta, Some(3), updates);
        assert_eq!(batch.views[&0].upserts, vec!["a\tnew".to_string(), "ab\ty".to_string()]);
        assert_eq!(batch.views[&0].deletes, vec!["c".to_string()]);
        assert_eq!(batch.views[&1], ViewChanges { deletes: vec![], upserts: vec!["a\ty".to_string()] });
    }

    #[test]
    fn two_rows_with_one_key_keep_one_and_delete_none() {
        let batch = build_batch(CommitMode::Delta, Some(3), vec![(row(0, "a", "x"), 1), (row(0, "a", "y"), 1)]);
        assert_eq!(batch.views[&0].upserts.len(), 1);
        assert!(batch.views[&0].deletes.is_empty());
    }

    #[test]
    fn hydration_completes_when_every_partition_reaches_its_offset() {
        let target: HydrationTarget = [(("t".to_string(), 0), 5), (("t".to_string(), 1), 3)].into();
        let mut hydration = Hydration::new(target);
        hydration.observe(&SourcePosition { topic: "t".into(), partition: 0, next_offset: 5 });
        assert!(!hydration.complete());
        assert!((hydration.progress() - 5.0 / 8.0).abs() < 1e-9);
        hydration.observe(&SourcePosition { topic: "t".into(), partition: 1, next_offset: 4 });
        assert!(hydration.complete());
    }
}
