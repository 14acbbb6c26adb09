//! The dataflow side of the commit protocol.
//!
//! [`commit_views`] gathers the changes of every view, the source positions and the dead
//! letters on one worker, and each time the frontier advances hands the consolidated changes
//! of all epochs now complete to a [`Committer`] as ONE [`CommitBatch`]. A committer applies
//! a batch atomically, so readers always see every view consistent with one prefix of every
//! input partition. Changes are consolidated on the worker that produced them before they
//! travel: a row revised within an epoch sends one update, or none.
//!
//! Hydration: after a restart the sources replay their inputs from the start, and until every
//! partition has reached the offset committed by the previous run ([`ReplayEnd`], at time `E`)
//! the views readers see must not move. Upstream, the job's upserts keep the replay's
//! intermediate versions to themselves and show only its outcome
//! (`citeflow_operators::upsert::upsert_replaying`), so the rows that reach the sink up to `E`
//! are the views as the replay rebuilt them.
//!
//! Reconciliation compares digests, not rows. Every row carries the digest of its text, whose
//! low bits are the bucket of its key ([`crate::rows`]), and each destination says what it
//! holds of each view it writes as the sum of its rows' digests per bucket ([`HeldDigests`],
//! read when the job starts). A bucket that differs from what any destination holds travels
//! on, and each destination writes only the rows of it that differ from its own. Buckets are spread over the workers (bucket modulo workers); each worker
//! keeps the rows of its buckets up to `E` and, once all of them are in, sums their digests per
//! bucket. Only the buckets whose sums differ from the destination's travel on: every row of
//! each, with a marker saying that they replace the bucket. The first batch that includes `E`
//! is a [`CommitMode::Reconcile`] batch: the committer replaces the marked buckets (rows it
//! holds there that the batch lacks are deleted), applies the batch's other changes as deltas,
//! and records the positions of every partition. A restart that changes nothing therefore
//! sends no row to the committer and no worker ever holds a whole view; one that changes a few
//! rows (a new matcher's decisions) sends the buckets they fall in. A destination that holds
//! rows without digests (written before digests existed) has the whole view replaced.
//!
//! Batches before `E` are [`CommitMode::Stage`] batches: they carry only the dead letters the
//! replay met (recorded as they come, so they do not pile up on one worker), no positions and
//! no frontier. Later batches are [`CommitMode::Delta`].
//!
//! **What a destination implements**, whatever it is (PostgreSQL tables, Kafka topics):
//! - rows: each view's [`ViewSchema`](crate::rows::ViewSchema) types its columns, and a row's
//!   text decodes to typed values ([`ViewSchema::decode`](crate::rows::ViewSchema::decode));
//!   its key is its leading columns, its digest its last field;
//! - batches: a [`Committer`] applies each [`CommitBatch`] atomically (or, if it cannot, says
//!   what a reader sees in between), in the order submitted;
//! - reconciliation: when the job starts it says what it holds of each view it writes
//!   ([`HeldDigests`]); a [`CommitMode::Reconcile`] batch then replaces the [`Replaced`]
//!   buckets, writing only rows that differ from its own;
//! - progress: one destination also keeps the job's progress and says it when the job starts
//!   ([`crate::progress`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::consolidation::{consolidate, consolidate_updates};
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, Probe};
use timely::dataflow::{ProbeHandle, Stream};

use crate::flow::Completed;
use crate::metrics::metrics;
use crate::replay::ReplayEnd;
use crate::rows::{consolidate_rows, Bucket, Row, ViewId};
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
    /// Hydrating: the batch holds only dead letters; record them, and no positions and no
    /// frontier.
    Stage,
    /// Hydration is complete: replace the buckets each view's changes name
    /// ([`ViewChanges::replaced`]), writing only rows that differ, apply the other changes as
    /// in a delta, and record the positions, which are those of every partition.
    Reconcile,
    /// The batch holds changes: delete the listed keys, upsert the listed rows.
    Delta,
}

/// Which of a view's rows a reconciling batch replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Replaced {
    /// None: the changes are a delta.
    #[default]
    Nothing,
    /// These buckets (ascending): the batch's upserts in them are all the view holds there.
    Buckets(Vec<Bucket>),
    /// The whole view: the batch's upserts are all it holds.
    Everything,
}

/// The changes to one view within a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewChanges {
    /// Encoded primary keys of rows to delete.
    pub deletes: Vec<String>,
    /// Encoded rows (with their digests) to insert or update.
    pub upserts: Vec<String>,
    /// What the upserts replace: rows there that they lack are deleted.
    pub replaced: Replaced,
}

/// What a destination holds of one view (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeldView {
    /// The sum of the digests of its rows, per bucket that holds any.
    Buckets(HashMap<Bucket, i128>),
    /// Rows whose digests it does not know: the view is reconciled whole.
    Unknown,
}

/// What a destination holds of each view it writes, read when the job starts. A view it does
/// not list is one it does not write: a restart reconciles a view's buckets that differ from
/// what any destination listing it holds, and each destination writes only its own views.
pub type HeldDigests = BTreeMap<ViewId, HeldView>;

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

/// A committer on another thread: the sink's (or another committer's) end of a queue whose
/// other end, [`BatchReceiver`], the destination's thread reads.
pub struct BatchQueue {
    sender: Sender<CommitBatch>,
    destination: &'static str,
}

/// The destination's end of a [`BatchQueue`].
pub struct BatchReceiver(Receiver<CommitBatch>);

/// A queue of batches to `destination` (named in the log if it stops while batches come).
pub fn batch_queue(destination: &'static str) -> (BatchQueue, BatchReceiver) {
    let (sender, receiver) = mpsc::channel();
    (BatchQueue { sender, destination }, BatchReceiver(receiver))
}

impl Committer for BatchQueue {
    fn submit(&mut self, batch: CommitBatch) {
        if self.sender.send(batch).is_err() {
            tracing::error!(destination = self.destination, "the destination has stopped; a batch was not written");
        }
    }
}

impl BatchReceiver {
    /// Waits for the next batch and returns it with every batch queued behind it, in order;
    /// `None` once every [`BatchQueue`] is dropped and the queue is empty.
    pub fn next_group(&self) -> Option<Vec<CommitBatch>> {
        let first = self.0.recv().ok()?;
        let mut batches = vec![first];
        batches.extend(self.0.try_iter());
        Some(batches)
    }
}

/// The offsets a restarted job must replay before it may write: per topic and partition,
/// the next offset committed by the previous run.
pub type HydrationTarget = BTreeMap<(String, i32), i64>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum SinkRecord {
    Position(SourcePosition),
    DeadLetter(DeadLetter),
    View(Row),
    /// The view's rows in the same batch are all it holds in this bucket (`None`: anywhere).
    Replaced(ViewId, Option<Bucket>),
    /// The replay ended at this record's time: the batch that holds it reconciles.
    ReplayEnded,
}

impl SinkRecord {
    /// A row's text length (see [`consolidate_rows`]), 0 for other records.
    fn text_len(&self) -> usize {
        match self {
            SinkRecord::View(row) => row.text_len(),
            _ => 0,
        }
    }
}

/// Tracks replay progress against the committed offsets, for the logs and metrics.
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
fn consolidated_epochs<'scope, D: ExchangeData + Ord>(records: VecCollection<'scope, Epoch, D>) -> VecCollection<'scope, Epoch, D> {
    /// The updates of one incomplete epoch, with the capability to send them.
    type Waiting<D> = (Capability<Epoch>, Vec<(D, Epoch, isize)>);
    let mut waiting: BTreeMap<Epoch, Waiting<D>> = BTreeMap::new();
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
                    consolidate_updates(&mut updates);
                    output.session(&capability).give_container(&mut updates);
                }
            }
        })
        .as_collection()
}

/// Rows of one view's bucket, as a worker holds them until the replay ends.
type BucketRows = BTreeMap<(ViewId, Bucket), Vec<(Row, isize)>>;

/// The buckets whose rows up to the end of the replay differ from what a destination holds
/// (`held`), with every row of each, at the end's time; see the module documentation.
/// `rows` are routed by bucket; rows after the end pass through.
fn reconcile_buckets<'scope>(
    rows: Stream<'scope, Epoch, Vec<(Row, Epoch, isize)>>,
    end: Stream<'scope, Epoch, Vec<()>>,
    held: Arc<[HeldDigests]>,
) -> Stream<'scope, Epoch, Vec<(SinkRecord, Epoch, isize)>> {
    let (index, peers) = (rows.scope().index(), rows.scope().peers());
    let route = Exchange::new(|(row, _, _): &(Row, Epoch, isize)| u64::from(row.bucket()));
    // Rows and their times, sorted by digest when consolidated (see `consolidate_rows`).
    let mut stash: Vec<((Row, Epoch), isize)> = Vec::new();
    let mut consolidate_at = PENDING_KEPT;
    let mut ended: Option<Capability<Epoch>> = None;
    let mut done = false;
    rows.binary_frontier(end, route, Pipeline, "ReconcileBuckets", move |_, _| {
        move |(rows, frontier), (ends, _), output| {
            ends.for_each(|capability, _| {
                if !done && ended.is_none() {
                    ended = capability.retain_least(0);
                }
            });
            rows.for_each(|capability, data| {
                if done {
                    output.session(&capability).give_iterator(data.drain(..).map(|(row, time, diff)| (SinkRecord::View(row), time, diff)));
                } else {
                    stash.extend(data.drain(..).map(|(row, time, diff)| ((row, time), diff)));
                    if stash.len() >= consolidate_at {
                        consolidate_rows(&mut stash, |(row, _)| row.digest(), |(row, _)| row.text_len());
                        consolidate_at = (2 * stash.len()).max(PENDING_KEPT);
                    }
                }
            });
            let Some(end) = ended.take_if(|end| !frontier.less_equal(end.time())) else { return };
            done = true;
            let at = *end.time();
            let mut replayed: BucketRows = BTreeMap::new();
            for ((row, time), diff) in std::mem::take(&mut stash) {
                if time <= at {
                    replayed.entry((row.view, row.bucket())).or_default().push((row, diff));
                } else {
                    output.session(&end.delayed(&time)).give((SinkRecord::View(row), time, diff));
                }
            }
            let mut session = output.session(&end);
            session.give((SinkRecord::ReplayEnded, at, 1));
            for (view, bucket) in differing(replayed.iter_mut(), &held, index, peers) {
                session.give((SinkRecord::Replaced(view, bucket), at, 1));
                let rows = match bucket {
                    Some(bucket) => replayed.remove(&(view, bucket)).unwrap_or_default(),
                    None => {
                        let keys: Vec<_> = replayed.range((view, 0)..=(view, Bucket::MAX)).map(|(key, _)| *key).collect();
                        keys.into_iter().flat_map(|key| replayed.remove(&key).unwrap_or_default()).collect()
                    }
                };
                session.give_iterator(rows.into_iter().map(|(row, diff)| (SinkRecord::View(row), at, diff)));
            }
        }
    })
}

/// The views and buckets (`None`: the whole view) whose `replayed` rows (consolidated here)
/// differ from what any destination that writes the view holds (`held`, one per destination),
/// among those worker `index` of `peers` owns.
fn differing<'a>(
    replayed: impl Iterator<Item = (&'a (ViewId, Bucket), &'a mut Vec<(Row, isize)>)>,
    held: &[HeldDigests],
    index: usize,
    peers: usize,
) -> Vec<(ViewId, Option<Bucket>)> {
    let mine = |bucket: Bucket| usize::from(bucket) % peers == index;
    let mut sums: BTreeMap<ViewId, HashMap<Bucket, i128>> = BTreeMap::new();
    for (&(view, bucket), rows) in replayed {
        consolidate_rows(rows, |_| (), Row::text_len);
        let sum = rows.iter().map(|(row, diff)| i128::from(row.digest()) * *diff as i128).sum::<i128>();
        if !rows.is_empty() {
            sums.entry(view).or_default().insert(bucket, sum);
        }
    }
    let views: BTreeSet<ViewId> = held.iter().flat_map(|destination| destination.keys()).copied().collect();
    let mut differing = Vec::new();
    for view in views {
        let ours = sums.remove(&view).unwrap_or_default();
        let mut buckets = BTreeSet::new();
        let mut whole = false;
        for theirs in held.iter().filter_map(|destination| destination.get(&view)) {
            match theirs {
                HeldView::Unknown => whole = true,
                HeldView::Buckets(theirs) => buckets.extend(
                    ours.iter()
                        .filter(|(bucket, sum)| theirs.get(bucket) != Some(sum))
                        .map(|(bucket, _)| *bucket)
                        .chain(theirs.keys().filter(|bucket| mine(**bucket) && !ours.contains_key(bucket)).copied()),
                ),
            }
        }
        if whole {
            differing.push((view, None));
        } else {
            differing.extend(buckets.into_iter().map(|bucket| (view, Some(bucket))));
        }
    }
    differing
}

/// Writes the views, source positions and dead letters through `committer` (which only
/// worker 0 needs to hold), withholding output until the replay to `target` has ended and
/// reconciling the views with what the destinations hold (`held`, one per destination) then.
pub fn commit_views<'scope, C: Committer>(
    views: VecCollection<'scope, Epoch, Row>,
    positions: VecCollection<'scope, Epoch, SourcePosition>,
    dead_letters: VecCollection<'scope, Epoch, DeadLetter>,
    target: HydrationTarget,
    held: Arc<[HeldDigests]>,
    committer: Option<C>,
    progress: SinkProgress<'_>,
) {
    let reached = positions
        .inner
        .clone()
        .flat_map(|(position, _, diff)| (diff > 0).then_some(((position.topic, position.partition), position.next_offset)));
    let end = ReplayEnd::new(reached, target.clone()).stream();
    let rows = reconcile_buckets(consolidated_epochs(views).inner, end, held);
    let others = consolidated_epochs(positions.map(SinkRecord::Position).concat(dead_letters.map(SinkRecord::DeadLetter)));
    let records = rows.concat(others.inner).probe_with(progress.probe);
    let completed = progress.completed;

    let Some(committer) = committer else {
        records.sink(Exchange::new(|_| 0), "CommitViews", |(input, _frontier)| input.for_each(|_, _| {}));
        return;
    };
    let mut committer = Some(committer);
    let mut hydration = Some(Hydration::new(target));
    let mut pending: Vec<(SinkRecord, Epoch, isize)> = Vec::new();
    let mut replayed_positions: Vec<(SinkRecord, isize)> = Vec::new();
    let mut last_upper: Option<Epoch> = Some(0);
    metrics().hydrating.set(1);

    records.sink(Exchange::new(|_| 0), "CommitViews", move |(input, frontier)| {
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
        // The epoch a replay ends in may bring many rows at once: keep no room for it.
        if pending.capacity() > 4 * pending.len().max(PENDING_KEPT) {
            pending.shrink_to(2 * pending.len().max(PENDING_KEPT));
        }
        consolidate_rows(&mut ready, |_| (), SinkRecord::text_len);

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
                if upper.is_some() && !changes.iter().any(|(record, _)| *record == SinkRecord::ReplayEnded) {
                    state.report();
                    let batch = build_batch(CommitMode::Stage, upper, changes);
                    if batch.dead_letters.is_empty() {
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
                    metrics().hydration_progress.set(1.0);
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
            SinkRecord::Replaced(view, bucket) => {
                let replaced = &mut views.entry(view).or_default().replaced;
                match (bucket, replaced) {
                    (Some(bucket), Replaced::Buckets(buckets)) => buckets.push(bucket),
                    (Some(bucket), replaced @ Replaced::Nothing) => *replaced = Replaced::Buckets(vec![bucket]),
                    (None, replaced) => *replaced = Replaced::Everything,
                    (Some(_), Replaced::Everything) => {}
                }
            }
            SinkRecord::Position(_) | SinkRecord::DeadLetter(_) | SinkRecord::ReplayEnded => {}
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
    use crate::rows::{encode_row, Column, CopyLine, ViewRow, ViewSchema};

    struct KeyValue<'a>(&'a str, &'a str);

    impl ViewRow for KeyValue<'_> {
        fn write(&self, line: &mut CopyLine) {
            line.text(self.0).text(self.1);
        }
    }

    const SCHEMA: ViewSchema = ViewSchema { table: "t", columns: &[Column::text("k"), Column::text("v")], key_columns: 1 };

    fn encoded(view: ViewId, key: &str, value: &str) -> Row {
        encode_row(view, &SCHEMA, &KeyValue(key, value), &mut CopyLine::default())
    }

    fn row(view: ViewId, key: &str, value: &str) -> SinkRecord {
        SinkRecord::View(encoded(view, key, value))
    }

    fn line(key: &str, value: &str) -> String {
        encoded(0, key, value).into_line()
    }

    #[test]
    fn an_update_is_an_upsert_not_a_delete() {
        let batch =
            build_batch(CommitMode::Delta, Some(10), vec![(row(0, "a", "old"), -1), (row(0, "a", "new"), 1), (row(0, "b", "gone"), -1)]);
        let changes = &batch.views[&0];
        assert_eq!(changes.upserts, vec![line("a", "new")]);
        assert_eq!(changes.deletes, vec!["b".to_string()]);
        assert_eq!(changes.replaced, Replaced::Nothing);
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
        assert_eq!(batch.views[&0].upserts, vec![line("a", "new"), line("ab", "y")]);
        assert_eq!(batch.views[&0].deletes, vec!["c".to_string()]);
        assert_eq!(batch.views[&1], ViewChanges { deletes: vec![], upserts: vec![line("a", "y")], replaced: Replaced::Nothing });
    }

    #[test]
    fn two_rows_with_one_key_keep_one_and_delete_none() {
        let batch = build_batch(CommitMode::Delta, Some(3), vec![(row(0, "a", "x"), 1), (row(0, "a", "y"), 1)]);
        assert_eq!(batch.views[&0].upserts.len(), 1);
        assert!(batch.views[&0].deletes.is_empty());
    }

    #[test]
    fn replaced_buckets_gather_per_view() {
        let updates = vec![
            (SinkRecord::Replaced(0, Some(7)), 2),
            (SinkRecord::Replaced(0, Some(9)), 2),
            (SinkRecord::Replaced(1, None), 2),
            (SinkRecord::Replaced(2, Some(1)), 1),
            (SinkRecord::ReplayEnded, 2),
            (row(0, "a", "x"), 1),
        ];
        let batch = build_batch(CommitMode::Reconcile, Some(3), updates);
        assert_eq!(batch.views[&0].replaced, Replaced::Buckets(vec![7, 9]));
        assert_eq!(batch.views[&0].upserts, vec![line("a", "x")]);
        assert_eq!(batch.views[&1].replaced, Replaced::Everything);
        assert_eq!(batch.views[&2], ViewChanges { replaced: Replaced::Buckets(vec![1]), ..ViewChanges::default() });
    }

    /// `differing` over `rows` (one worker of one), as (view, bucket) pairs.
    fn differ(rows: Vec<(Row, isize)>, held: &HeldDigests, index: usize, peers: usize) -> Vec<(ViewId, Option<Bucket>)> {
        differ_from(rows, std::slice::from_ref(held), index, peers)
    }

    /// `differing` over `rows` against several destinations.
    fn differ_from(rows: Vec<(Row, isize)>, held: &[HeldDigests], index: usize, peers: usize) -> Vec<(ViewId, Option<Bucket>)> {
        let mut replayed: BucketRows = BTreeMap::new();
        for (row, diff) in rows {
            replayed.entry((row.view, row.bucket())).or_default().push((row, diff));
        }
        differing(replayed.iter_mut(), held, index, peers)
    }

    fn held_of(rows: &[Row]) -> HeldDigests {
        let mut held: HeldDigests = BTreeMap::new();
        for row in rows {
            let HeldView::Buckets(buckets) = held.entry(row.view).or_insert_with(|| HeldView::Buckets(HashMap::new())) else {
                unreachable!()
            };
            *buckets.entry(row.bucket()).or_default() += i128::from(row.digest());
        }
        held
    }

    #[test]
    fn equal_views_differ_nowhere_and_a_changed_row_only_in_its_bucket() {
        let rows: Vec<Row> = (0..200).map(|i| encoded(0, &format!("k{i}"), "v")).collect();
        let held = held_of(&rows);
        let replay = |rows: &[Row]| rows.iter().map(|row| (row.clone(), 1)).collect::<Vec<_>>();
        assert!(differ(replay(&rows), &held, 0, 1).is_empty());

        let mut changed = rows.clone();
        changed[17] = encoded(0, "k17", "other");
        assert_eq!(differ(replay(&changed), &held, 0, 1), vec![(0, Some(rows[17].bucket()))]);

        let shorter = &rows[1..];
        assert_eq!(differ(replay(shorter), &held, 0, 1), vec![(0, Some(rows[0].bucket()))], "a row the destination holds alone");
        let mut revised = replay(&rows);
        revised.push((rows[3].clone(), -1));
        revised.push((encoded(0, "k3", "w"), 1));
        assert_eq!(differ(revised, &held, 0, 1), vec![(0, Some(rows[3].bucket()))], "revisions consolidate first");
    }

    #[test]
    fn each_destination_is_compared_for_the_views_it_writes() {
        let rows: Vec<Row> = (0..100).map(|i| encoded(0, &format!("k{i}"), "v")).collect();
        let others: Vec<Row> = (0..10).map(|i| encoded(1, &format!("o{i}"), "v")).collect();
        let replay: Vec<(Row, isize)> = rows.iter().chain(&others).map(|row| (row.clone(), 1)).collect();
        let mut first = held_of(&rows);
        first.append(&mut held_of(&others));
        let mut behind = rows.clone();
        behind[40] = encoded(0, "k40", "older");
        let second = held_of(&behind);
        assert_eq!(differ_from(replay.clone(), &[first.clone()], 0, 1), vec![], "equal to the only destination");
        assert_eq!(
            differ_from(replay.clone(), &[first.clone(), second], 0, 1),
            vec![(0, Some(rows[40].bucket()))],
            "a bucket either destination lacks is sent; view 1 is the first's alone, and it holds it"
        );
        let empty: HeldDigests = [(0, HeldView::Buckets(HashMap::new()))].into();
        assert_eq!(differ_from(replay, &[first, empty], 0, 1).len(), rows.iter().map(Row::bucket).collect::<BTreeSet<_>>().len());
        assert!(differ_from(others.iter().map(|row| (row.clone(), 1)).collect(), &[], 0, 1).is_empty(), "a view no one writes");
    }

    #[test]
    fn a_worker_answers_for_the_held_buckets_it_owns_and_unknown_views_whole() {
        let rows: Vec<Row> = (0..50).map(|i| encoded(0, &format!("k{i}"), "v")).collect();
        let mut held = held_of(&rows);
        held.insert(3, HeldView::Unknown);
        let mut found: Vec<_> = (0..3).flat_map(|index| differ(Vec::new(), &held, index, 3)).collect();
        found.sort();
        found.dedup();
        let mut expected: Vec<_> = rows.iter().map(|row| (0, Some(row.bucket()))).collect();
        expected.push((3, None));
        expected.sort();
        expected.dedup();
        assert_eq!(found, expected, "every held bucket once, by its owner; the unknown view by everyone");
    }

    #[test]
    fn hydration_reports_its_progress() {
        let target: HydrationTarget = [(("t".to_string(), 0), 5), (("t".to_string(), 1), 3)].into();
        let mut hydration = Hydration::new(target);
        hydration.observe(&SourcePosition { topic: "t".into(), partition: 0, next_offset: 5 });
        assert!((hydration.progress() - 5.0 / 8.0).abs() < 1e-9);
        hydration.observe(&SourcePosition { topic: "t".into(), partition: 1, next_offset: 4 });
        assert!((hydration.progress() - 1.0).abs() < 1e-9);
    }
}
