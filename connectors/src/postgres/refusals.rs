//! Rows PostgreSQL refuses, found and set aside so that one bad row never stops the job.
//!
//! Decoding validates what it knows PostgreSQL will refuse, but the database has the last
//! word (a constraint a user adds, a limit nobody foresaw). When a commit fails with a data
//! error (SQLSTATE class 22, data exception; 23, integrity constraint violation; 54, program
//! limit exceeded), the committer retries it with [`apply_view_isolating`]: each view is
//! applied inside a savepoint; a view that fails is bisected with probing savepoints (always
//! rolled back) until the refused rows are single ones. The rest of the view is written; each
//! refused row becomes a dead letter (reason [`REFUSED_BY_DATABASE`]) and, in a delta, its key
//! is deleted, since the view no longer holds a row for it — the same table a restart's
//! reconciliation computes, which refuses the same row again and leaves it out again.
//!
//! A refused row's dead letter names the view in `topic` (`view:<table>`), has partition -1 and,
//! as its offset, a hash of the row, so that the same row refused again (after a restart)
//! is the same dead letter; `message_key` holds the row's encoded primary key (its leading
//! columns name the document or publication it came from), `payload` the row as COPY text.
//!
//! Cost: a refused row costs O(log n) probes of at most n rows of its view, only in the commit
//! that meets it; commits without refusals pay nothing.

use std::ops::Range;

use citeflow_engine::rows::ViewSchema;
use citeflow_engine::sink::{CommitMode, DeadLetter, ViewChanges};
use tokio_postgres::Transaction;

use super::apply::apply_view;
use super::PgError;

/// The dead-letter reason of a row PostgreSQL refused.
pub const REFUSED_BY_DATABASE: &str = "refused_by_database";

/// Which changes a probe applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Upserts,
    Deletes,
}

/// Applies `changes` inside a savepoint: kept if they apply, rolled back if not.
async fn apply_in_savepoint(
    transaction: &mut Transaction<'_>,
    schema: &ViewSchema,
    changes: &ViewChanges,
    mode: CommitMode,
) -> Result<u64, PgError> {
    let savepoint = transaction.savepoint("citeflow_view").await.map_err(PgError::db("opening a savepoint"))?;
    match apply_view(&savepoint, schema, changes, mode).await {
        Ok(rows) => {
            savepoint.commit().await.map_err(PgError::db("releasing a savepoint"))?;
            Ok(rows)
        }
        Err(error) => {
            savepoint.rollback().await.map_err(PgError::db("rolling back to a savepoint"))?;
            Err(error)
        }
    }
}

/// Whether the database refuses `lines` as `part` of a delta to `schema`, and why. Never keeps
/// what it wrote.
async fn probe(transaction: &mut Transaction<'_>, schema: &ViewSchema, lines: &[String], part: Part) -> Result<Option<String>, PgError> {
    let changes = match part {
        Part::Upserts => ViewChanges { upserts: lines.to_vec(), ..ViewChanges::default() },
        Part::Deletes => ViewChanges { deletes: lines.to_vec(), ..ViewChanges::default() },
    };
    let savepoint = transaction.savepoint("citeflow_probe").await.map_err(PgError::db("opening a savepoint"))?;
    let outcome = apply_view(&savepoint, schema, &changes, CommitMode::Delta).await;
    savepoint.rollback().await.map_err(PgError::db("rolling back a probe"))?;
    match outcome {
        Ok(_) => Ok(None),
        Err(error) => error.refusal().map(Some).ok_or(error),
    }
}

/// The lines of `lines` the database refuses on their own, with why, found by bisection.
async fn find_refused(
    transaction: &mut Transaction<'_>,
    schema: &ViewSchema,
    lines: &[String],
    part: Part,
) -> Result<Vec<(usize, String)>, PgError> {
    let mut refused = Vec::new();
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..lines.len());
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        let Some(why) = probe(transaction, schema, &lines[range.clone()], part).await? else { continue };
        if range.len() == 1 {
            refused.push((range.start, why));
            continue;
        }
        let middle = range.start + range.len() / 2;
        pending.push(middle..range.end);
        pending.push(range.start..middle);
    }
    refused.sort_unstable_by_key(|(index, _)| *index);
    Ok(refused)
}

/// FNV-1a: a hash that stays the same across runs and builds.
fn stable_hash(text: &str) -> i64 {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash >> 1) as i64
}

fn dead_letter(schema: &ViewSchema, line: &str, why: &str) -> DeadLetter {
    let key = schema.key_of(line);
    DeadLetter {
        topic: format!("view:{}", schema.table),
        partition: -1,
        offset: stable_hash(line),
        reason: REFUSED_BY_DATABASE.to_string(),
        detail: format!("PostgreSQL refused the row of {} with key {key:?}: {why}", schema.table),
        key: Some(key.as_bytes().to_vec()),
        payload: Some(line.as_bytes().to_vec()),
    }
}

fn without(lines: &[String], refused: &[(usize, String)]) -> Vec<String> {
    let mut skip = refused.iter().map(|(index, _)| *index).peekable();
    lines.iter().enumerate().filter(|(index, _)| skip.next_if_eq(index).is_none()).map(|(_, line)| line.clone()).collect()
}

/// Applies `changes` to the view `schema` like [`apply_view`], but leaves out the rows the
/// database refuses; returns the rows written and a dead letter for each refused row. Fails
/// only on errors that are not refusals of single rows.
pub async fn apply_view_isolating(
    transaction: &mut Transaction<'_>,
    schema: &ViewSchema,
    changes: &ViewChanges,
    mode: CommitMode,
) -> Result<(u64, Vec<DeadLetter>), PgError> {
    match apply_in_savepoint(transaction, schema, changes, mode).await {
        Ok(rows) => return Ok((rows, Vec::new())),
        Err(error) if error.refusal().is_some() => {}
        Err(error) => return Err(error),
    }
    let refused_upserts = find_refused(transaction, schema, &changes.upserts, Part::Upserts).await?;
    let mut deletes = changes.deletes.clone();
    let own_deletes = deletes.len();
    if mode != CommitMode::Reconcile {
        deletes.extend(refused_upserts.iter().map(|(index, _)| schema.key_of(&changes.upserts[*index]).to_string()));
    }
    let refused_deletes = find_refused(transaction, schema, &deletes, Part::Deletes).await?;
    let mut letters: Vec<DeadLetter> =
        refused_upserts.iter().map(|(index, why)| dead_letter(schema, &changes.upserts[*index], why)).collect();
    letters.extend(
        refused_deletes.iter().filter(|(index, _)| *index < own_deletes).map(|(index, why)| dead_letter(schema, &deletes[*index], why)),
    );
    let kept = ViewChanges {
        deletes: without(&deletes, &refused_deletes),
        upserts: without(&changes.upserts, &refused_upserts),
        replaced: changes.replaced.clone(),
    };
    if let Some(first) = letters.first() {
        tracing::warn!(view = schema.table, rows = letters.len(), first = %first.detail, "rows refused by the database dead-lettered");
    }
    let rows = apply_in_savepoint(transaction, schema, &kept, mode).await?;
    Ok((rows, letters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use citeflow_engine::rows::Column;

    #[test]
    fn the_same_row_is_the_same_dead_letter() {
        const SCHEMA: ViewSchema =
            ViewSchema { table: "t", columns: &[Column::text("a"), Column::integer("b"), Column::text("c")], key_columns: 2 };
        let schema = SCHEMA;
        let first = dead_letter(&schema, "x\t1\ty", "refused");
        assert_eq!(first, dead_letter(&schema, "x\t1\ty", "refused"));
        assert_ne!(first.offset, dead_letter(&schema, "x\t1\tz", "refused").offset);
        assert!(first.offset >= 0);
        assert_eq!(first.key.as_deref(), Some(b"x\t1".as_slice()));
        assert_eq!(first.topic, "view:t");
    }

    #[test]
    fn refused_lines_are_left_out_in_order() {
        let lines: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let refused = vec![(1, String::new()), (3, String::new())];
        assert_eq!(without(&lines, &refused), vec!["a".to_string(), "c".to_string()]);
    }
}
