//! The committer: a thread that owns a PostgreSQL connection and applies commit batches in
//! order, each group of queued batches in ONE transaction that first checks the job's
//! generation (fencing), then writes every view, the source positions, the dead letters and
//! the frontier. A failed transaction is retried whole with backoff; nothing half-applied is
//! ever visible. Dead letters are recorded in the table (exactly once); the outbox
//! (`outbox`) publishes them to the dead-letter topic after the commit, off the
//! commit path.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use citeflow_engine::flow::Completed;
use citeflow_engine::http::Readiness;
use citeflow_engine::metrics::metrics;
use citeflow_engine::progress::{Reconciliation, SinkStart, WatermarkLogRow};
use citeflow_engine::rows::ViewSchema;
use citeflow_engine::sink::{batch_queue, BatchQueue, BatchReceiver, CommitBatch, CommitMode, Committer, Replaced, ViewChanges};
use citeflow_engine::time::Epoch;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use super::apply::{apply_view, held_digests, insert_dead_letters, position_lines, prepare_staging, DEAD_LETTER_VIEW, PROGRESS_VIEW};
use super::migrate::{migrate, Migration, ENGINE_MIGRATIONS};
use super::outbox::{start_outbox, Outbox, Wake};
use super::refusals::{apply_view_isolating, REFUSED_BY_DATABASE};
use super::{Connection, PgError, PostgresConfig};
use crate::kafka::dead_letters::DeadLetterPublisher;
use crate::kafka::group::GroupPositions;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Totals over a committer's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Rows deleted, inserted or updated, over all views.
    pub rows_written: u64,
    /// Rows written by the reconciliation after hydration.
    pub reconciled_rows: u64,
}

/// The job's handle on the committer thread.
pub struct CommitterHandle {
    thread: JoinHandle<Result<CommitStats, PgError>>,
    failure: CommitterWatch,
    outbox: Option<Outbox>,
}

/// A cloneable view of whether the committer stopped on a fatal error.
#[derive(Clone)]
pub struct CommitterWatch(Arc<Mutex<Option<String>>>);

impl CommitterWatch {
    /// The committer's fatal error, if it stopped on one (e.g. it was fenced).
    pub fn failure(&self) -> Option<String> {
        self.0.lock().expect("failure lock").clone()
    }

    /// Reports a fatal error of the committer or of a destination that follows it (the first
    /// one reported is kept).
    pub(crate) fn report(&self, error: String) {
        self.0.lock().expect("failure lock").get_or_insert(error);
    }
}

impl CommitterHandle {
    /// A handle that worker threads can poll for the committer's fatal error.
    pub fn watch(&self) -> CommitterWatch {
        self.failure.clone()
    }

    /// Waits for the committer to apply everything queued (the queue must be closed, i.e.
    /// every [`BatchQueue`] to it dropped) and returns its totals.
    /// The outbox then publishes the dead letters still unpublished, once, and stops.
    pub fn join(self) -> Result<CommitStats, PgError> {
        let result = self.thread.join().expect("committer thread panicked");
        if let Some(outbox) = self.outbox {
            let _ = outbox.wake.send(Wake::Finish);
            outbox.thread.join().expect("outbox thread panicked");
        }
        result
    }
}

struct Session {
    connection: Connection,
    client: Client,
    views: Vec<ViewSchema>,
    generation: i64,
    reconciliation: Reconciliation,
}

fn staged_schemas(views: &[ViewSchema]) -> Vec<ViewSchema> {
    let mut all = views.to_vec();
    all.push(PROGRESS_VIEW);
    all.push(DEAD_LETTER_VIEW);
    all
}

/// What follows the committer's commits.
#[derive(Default)]
pub struct Followers {
    /// Publishes the dead letters each commit recorded to the dead-letter topic.
    pub dead_letters: Option<DeadLetterPublisher>,
    /// Another destination, handed each batch once it is committed, in commit order.
    pub destination: Option<Box<dyn Committer + Send>>,
    /// The consumer group told each commit's positions, for lag tools.
    pub group: Option<GroupPositions>,
}

/// Connects, applies the engine's and the job's migrations, takes a new generation, reads
/// the committed offsets, and starts the committer thread.
pub fn start_committer(
    config: &PostgresConfig,
    reconciliation: Reconciliation,
    views: Vec<ViewSchema>,
    migrations: &[Migration],
    followers: Followers,
    readiness: Readiness,
    completed: Completed,
) -> Result<(SinkStart, BatchQueue, CommitterHandle), PgError> {
    let connection = config.connection().map_err(|e| PgError::Config(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let (client, start) = runtime.block_on(async {
        let mut client = connection.connect().await?;
        if let Some(schema) = &config.schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(PgError::db(format!("creating schema {schema}")))?;
        }
        migrate(&mut client, ENGINE_MIGRATIONS).await?;
        migrate(&mut client, migrations).await?;
        let generation: i64 = client
            .query_one("UPDATE citeflow_job SET generation = generation + 1, started_at = now() WHERE id = 1 RETURNING generation", &[])
            .await
            .map_err(PgError::db("taking a generation"))?
            .get(0);
        let committed = client
            .query("SELECT topic, partition, next_offset FROM citeflow_progress", &[])
            .await
            .map_err(PgError::db("reading committed offsets"))?
            .iter()
            .map(|row| ((row.get::<_, String>(0), row.get::<_, i32>(1)), row.get::<_, i64>(2)))
            .collect();
        let watermark_log = client
            .query("SELECT watermark_ms, topic, partition, next_offset FROM citeflow_watermark_log ORDER BY 1, 2, 3", &[])
            .await
            .map_err(PgError::db("reading the watermark log"))?
            .iter()
            .map(|row| WatermarkLogRow { watermark: row.get(0), topic: row.get(1), partition: row.get(2), next_offset: row.get(3) })
            .collect();
        prepare_staging(&client, &staged_schemas(&views)).await?;
        let held = held_digests(&client, &views).await?;
        Ok::<_, PgError>((client, SinkStart { generation, committed, watermark_log, held }))
    })?;
    tracing::info!(generation = start.generation, partitions = start.committed.len(), "sink ready");
    let (queue, receiver) = batch_queue("postgres");
    let failure = CommitterWatch(Arc::new(Mutex::new(None)));
    let Followers { dead_letters, destination, group } = followers;
    let outbox = dead_letters
        .map(|publisher| start_outbox(connection.clone(), publisher))
        .transpose()
        .map_err(|e| PgError::Config(format!("starting the dead-letter outbox: {e}")))?;
    let wake = outbox.as_ref().map(|outbox| outbox.wake.clone());
    let session = Session { connection, client, views, generation: start.generation, reconciliation };
    let watch = failure.clone();
    let thread = std::thread::Builder::new()
        .name("citeflow-committer".into())
        .spawn(move || {
            let after = AfterCommit { outbox: wake, destination, group };
            let result = run(&runtime, session, receiver, after, readiness, completed);
            if let Err(error) = &result {
                tracing::error!(%error, "committer stopped");
                watch.report(error.to_string());
            }
            result
        })
        .expect("spawning the committer thread");
    Ok((start, queue, CommitterHandle { thread, failure, outbox }))
}

/// What the committer thread tells after each commit: the outbox, another destination, the
/// consumer group.
struct AfterCommit {
    outbox: Option<Sender<Wake>>,
    destination: Option<Box<dyn Committer + Send>>,
    group: Option<GroupPositions>,
}

fn run(
    runtime: &Runtime,
    mut session: Session,
    receiver: BatchReceiver,
    AfterCommit { outbox, mut destination, group }: AfterCommit,
    readiness: Readiness,
    completed: Completed,
) -> Result<CommitStats, PgError> {
    let mut stats = CommitStats::default();
    while let Some(mut batches) = receiver.next_group() {
        let mut backoff = Duration::from_millis(100);
        let mut isolate = false;
        loop {
            let started = Instant::now();
            match runtime.block_on(apply_batches(&mut session, &batches, isolate)) {
                Ok(applied) => {
                    metrics().commit_latency.observe(started.elapsed().as_secs_f64());
                    stats.transactions += 1;
                    stats.rows_written += applied.rows;
                    if let (Some(outbox), true) = (&outbox, applied.new_letters > 0) {
                        let _ = outbox.send(Wake::Letters);
                    }
                    if applied.refused > 0 {
                        metrics().dead_letters.with_label_values(&[REFUSED_BY_DATABASE]).inc_by(applied.refused as u64);
                    }
                    if batches.iter().any(|b| b.mode == CommitMode::Reconcile) {
                        stats.reconciled_rows += applied.rows;
                        tracing::info!(rows_written = applied.rows, "reconciliation committed; the job is live");
                        readiness.set(true);
                    }
                    if let Some(frontier) = committed_frontier(&batches) {
                        metrics().committed_frontier.set(frontier as i64);
                    }
                    completed.finish(batches.last().and_then(|b| b.frontier));
                    if let Some(group) = &group {
                        let positions: Vec<_> = batches.iter().flat_map(|batch| batch.positions.iter().cloned()).collect();
                        group.publish(&positions, batches.last().is_some_and(|batch| batch.frontier.is_none()));
                    }
                    if let Some(destination) = destination.as_mut() {
                        batches.drain(..).for_each(|batch| destination.submit(batch));
                    }
                    break;
                }
                Err(error) if error.refusal().is_some() && !isolate => {
                    tracing::warn!(%error, "the database refused a row; finding the refused rows to dead-letter them");
                    isolate = true;
                }
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    metrics().commit_retries.with_label_values(&[retry_kind(&error)]).inc();
                    tracing::warn!(%error, retry_in = ?backoff, "commit failed; retrying the whole transaction");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if session.client.is_closed() {
                        reconnect(runtime, &mut session);
                    }
                }
            }
        }
    }
    Ok(stats)
}

fn retry_kind(error: &PgError) -> &'static str {
    match error {
        PgError::Db { source, .. } if source.is_closed() => "connection",
        PgError::Db { .. } => "database",
        PgError::Fenced { .. } | PgError::Config(_) => "fatal",
    }
}

fn reconnect(runtime: &Runtime, session: &mut Session) {
    let schemas = staged_schemas(&session.views);
    let result = runtime.block_on(async {
        let client = session.connection.connect().await?;
        prepare_staging(&client, &schemas).await?;
        Ok::<_, PgError>(client)
    });
    match result {
        Ok(client) => {
            tracing::info!("reconnected to postgres");
            session.client = client;
        }
        Err(error) => tracing::warn!(%error, "reconnecting to postgres failed"),
    }
}

/// What one transaction wrote.
#[derive(Default)]
struct Applied {
    /// Rows deleted, inserted or updated in the views (not their shadows).
    rows: u64,
    /// Dead letters for rows the database refused (already recorded in the transaction).
    refused: usize,
    /// Dead letters new to the table.
    new_letters: u64,
}

async fn apply_batches(session: &mut Session, batches: &[CommitBatch], isolate: bool) -> Result<Applied, PgError> {
    let generation = session.generation;
    let mut transaction = session.client.transaction().await.map_err(PgError::db("starting a commit"))?;
    let current: i64 = transaction
        .query_one("SELECT generation FROM citeflow_job WHERE id = 1 FOR UPDATE", &[])
        .await
        .map_err(PgError::db("checking the generation"))?
        .get(0);
    if current != generation {
        return Err(PgError::Fenced { ours: generation, current });
    }
    let mut applied = Applied::default();
    for batch in batches {
        let mut letters = batch.dead_letters.clone();
        for (id, schema) in session.views.iter().enumerate() {
            let Some(changes) = batch.views.get(&(id as u16)) else { continue };
            let out = (changes.upserts.len() + changes.deletes.len()) as u64;
            metrics().records_out.with_label_values(&[schema.table]).inc_by(out);
            let kept;
            let changes = match (&changes.replaced, session.reconciliation) {
                (Replaced::Nothing, _) | (_, Reconciliation::Exact) => changes,
                (_, Reconciliation::KeepUnreplayed) => {
                    kept = ViewChanges { replaced: Replaced::Nothing, ..changes.clone() };
                    &kept
                }
            };
            let rows = if isolate {
                let (rows, refused) = apply_view_isolating(&mut transaction, schema, changes, batch.mode).await?;
                applied.refused += refused.len();
                letters.extend(refused);
                rows
            } else {
                apply_view(&transaction, schema, changes, batch.mode).await?
            };
            metrics().rows_written.with_label_values(&[schema.table]).inc_by(rows);
            applied.rows += rows;
        }
        if batch.mode != CommitMode::Stage {
            let positions = ViewChanges { upserts: position_lines(&batch.positions), ..ViewChanges::default() };
            apply_view(&transaction, &PROGRESS_VIEW, &positions, CommitMode::Delta).await?;
        }
        applied.new_letters += insert_dead_letters(&transaction, &letters).await?;
    }
    if let Some(frontier) = committed_frontier(batches) {
        transaction
            .execute("UPDATE citeflow_job SET frontier = $1, committed_at = now() WHERE id = 1", &[&(frontier as i64)])
            .await
            .map_err(PgError::db("recording the frontier"))?;
    }
    transaction.commit().await.map_err(PgError::db("committing"))?;
    Ok(applied)
}

/// The frontier `batches` commit: that of the last batch that is not staged.
fn committed_frontier(batches: &[CommitBatch]) -> Option<Epoch> {
    batches.iter().rev().filter(|b| b.mode != CommitMode::Stage).find_map(|b| b.frontier)
}
