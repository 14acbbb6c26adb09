//! Applying one view's changes inside a transaction: COPY into a staging table, then delete
//! and upsert by primary key in bulk, writing only rows whose digests differ; and reading what
//! a view holds as sums of digests per bucket, for a restart's reconciliation.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};
use citeflow_engine::rows::{encode_line, Bucket, Column, CopyLine, ViewId, ViewRow, ViewSchema, ROW_DIGEST};
use citeflow_engine::sink::{CommitMode, DeadLetter, HeldDigests, HeldView, Replaced, SourcePosition, ViewChanges};
use futures_util::SinkExt;
use tokio_postgres::{Client, Transaction};

use super::PgError;

/// The engine's progress table as a view: per topic and partition, the next offset.
pub const PROGRESS_VIEW: ViewSchema = ViewSchema {
    table: "citeflow_progress",
    columns: &[Column::text("topic"), Column::integer("partition"), Column::integer("next_offset")],
    key_columns: 2,
};

/// The engine's dead-letter table.
pub const DEAD_LETTER_VIEW: ViewSchema = ViewSchema {
    table: "citeflow_dead_letters",
    columns: &[
        Column::text("topic"),
        Column::integer("partition"),
        Column::integer("offset"),
        Column::text("reason"),
        Column::text("detail"),
        Column::bytes("message_key"),
        Column::bytes("payload"),
        Column::integer("payload_size"),
        Column::text("payload_sha256"),
    ],
    key_columns: 3,
};

/// The most of a dead letter's payload the table keeps (`payload_size` and `payload_sha256`
/// describe the original). Kafka's default `message.max.bytes` is 1 MB, so by default
/// nothing is cut.
pub const TABLE_PAYLOAD_CAP: usize = 1 << 20;

/// SHA-256 of `bytes`, hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

const COPY_CHUNK: usize = 1 << 20;

fn quoted<'a>(columns: impl IntoIterator<Item = &'a str>) -> String {
    columns.into_iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

fn key_match(schema: &ViewSchema, left: &str, right: &str) -> String {
    schema.key().map(|c| format!("{left}.\"{c}\" = {right}.\"{c}\"")).collect::<Vec<_>>().join(" AND ")
}

fn stage_table(schema: &ViewSchema) -> String {
    format!("citeflow_stage_{}", schema.table)
}

fn stage_keys_table(schema: &ViewSchema) -> String {
    format!("citeflow_stage_keys_{}", schema.table)
}

/// `INSERT … ON CONFLICT` from `source` into the view `schema`, writing only rows whose digests
/// differ. With `compare_first`, the rows of `source` whose digests equal those of the view's
/// rows are left out by a join before the insert: an upsert locks every row it conflicts with,
/// even one it leaves as it was, so a source that mostly repeats the view (the buckets a
/// reconciliation replaces) would otherwise write to every page it touches.
fn upsert_from(schema: &ViewSchema, source: &str, compare_first: bool) -> String {
    let table = schema.table;
    let columns = quoted(schema.written());
    let set = schema.values().chain([ROW_DIGEST]).map(|c| format!("\"{c}\" = EXCLUDED.\"{c}\"")).collect::<Vec<_>>().join(", ");
    let selected = if compare_first {
        let listed = schema.written().map(|c| format!("s.\"{c}\"")).collect::<Vec<_>>().join(", ");
        format!(
            "SELECT {listed} FROM {source} s LEFT JOIN {table} v ON {} WHERE v.\"{ROW_DIGEST}\" IS DISTINCT FROM s.\"{ROW_DIGEST}\"",
            key_match(schema, "v", "s"),
        )
    } else {
        format!("SELECT {columns} FROM {source}")
    };
    format!(
        "INSERT INTO {table} AS t ({columns}) {selected} ON CONFLICT ({key}) DO UPDATE SET {set} \
         WHERE t.\"{ROW_DIGEST}\" IS DISTINCT FROM EXCLUDED.\"{ROW_DIGEST}\"",
        key = quoted(schema.key())
    )
}

/// What each of `views` holds, as the sum of its rows' digests per bucket (a view whose rows
/// lack digests is [`HeldView::Unknown`]). Every view is listed: the database writes them all.
pub async fn held_digests(client: &Client, views: &[ViewSchema]) -> Result<HeldDigests, PgError> {
    let mut held = HeldDigests::new();
    for (id, schema) in views.iter().enumerate() {
        let id = ViewId::try_from(id).expect("fewer than 65,536 views");
        let sql = format!(
            "SELECT (\"{ROW_DIGEST}\" & {mask})::int4, sum(\"{ROW_DIGEST}\")::text FROM {table} GROUP BY 1",
            mask = Bucket::MAX,
            table = schema.table
        );
        let rows = client.query(&sql, &[]).await.map_err(PgError::db(format!("reading the digests of {}", schema.table)))?;
        if rows.is_empty() {
            held.insert(id, HeldView::Buckets(HashMap::new()));
            continue;
        }
        let mut buckets = HashMap::with_capacity(rows.len());
        let mut unknown = false;
        for row in rows {
            match (row.get::<_, Option<i32>>(0), row.get::<_, Option<String>>(1)) {
                (Some(bucket), Some(sum)) => {
                    let sum =
                        sum.parse().map_err(|_| PgError::Config(format!("{}: a digest sum {sum:?} is not an integer", schema.table)))?;
                    buckets.insert(bucket as Bucket, sum);
                }
                _ => unknown = true,
            }
        }
        held.insert(id, if unknown { HeldView::Unknown } else { HeldView::Buckets(buckets) });
    }
    Ok(held)
}

/// Creates this session's staging tables for `schemas` (temporary, emptied at each commit).
pub async fn prepare_staging(client: &Client, schemas: &[ViewSchema]) -> Result<(), PgError> {
    for schema in schemas {
        let sql = format!(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT {columns} FROM {table} WITH NO DATA;
             CREATE TEMP TABLE IF NOT EXISTS {keys} ON COMMIT DELETE ROWS AS SELECT {key} FROM {table} WITH NO DATA;",
            stage = stage_table(schema),
            keys = stage_keys_table(schema),
            columns = quoted(schema.written()),
            key = quoted(schema.key()),
            table = schema.table,
        );
        client.batch_execute(&sql).await.map_err(PgError::db(format!("staging tables for {}", schema.table)))?;
    }
    Ok(())
}

async fn copy_lines<'a>(
    transaction: &Transaction<'_>,
    table: &str,
    columns: String,
    lines: impl Iterator<Item = &'a str>,
) -> Result<(), PgError> {
    let context = format!("copying into {table}");
    transaction.batch_execute(&format!("TRUNCATE {table}")).await.map_err(PgError::db(context.clone()))?;
    let statement = format!("COPY {table} ({columns}) FROM STDIN");
    let sink = transaction.copy_in(&statement).await.map_err(PgError::db(context.clone()))?;
    let mut sink = std::pin::pin!(sink);
    let mut buffer = BytesMut::with_capacity(COPY_CHUNK);
    for line in lines {
        buffer.extend_from_slice(line.as_bytes());
        buffer.put_u8(b'\n');
        if buffer.len() >= COPY_CHUNK {
            sink.send(buffer.split().freeze()).await.map_err(PgError::db(context.clone()))?;
        }
    }
    if !buffer.is_empty() {
        sink.send(buffer.freeze()).await.map_err(PgError::db(context.clone()))?;
    }
    sink.as_mut().finish().await.map_err(PgError::db(context))?;
    Ok(())
}

/// Applies `changes` to the view `schema`; returns the number of rows deleted, inserted or
/// updated. The upserts of [`CommitMode::Reconcile`] are compared with the view first, and
/// rows of the buckets they replace ([`ViewChanges::replaced`]) that they lack are deleted.
pub async fn apply_view(
    transaction: &Transaction<'_>,
    schema: &ViewSchema,
    changes: &ViewChanges,
    mode: CommitMode,
) -> Result<u64, PgError> {
    let (table, stage) = (schema.table, stage_table(schema));
    let context = format!("writing {table}");
    let mut touched = 0;
    let staged = !changes.upserts.is_empty() || changes.replaced != Replaced::Nothing;
    if staged {
        copy_lines(transaction, &stage, quoted(schema.written()), changes.upserts.iter().map(String::as_str)).await?;
    }
    let missing = format!("NOT EXISTS (SELECT 1 FROM {stage} s WHERE {})", key_match(schema, "t", "s"));
    touched += match &changes.replaced {
        Replaced::Nothing => Ok(0),
        Replaced::Everything => transaction.execute(&format!("DELETE FROM {table} t WHERE {missing}"), &[]).await,
        Replaced::Buckets(buckets) => {
            let buckets: Vec<i64> = buckets.iter().map(|bucket| i64::from(*bucket)).collect();
            let sql = format!("DELETE FROM {table} t WHERE (t.\"{ROW_DIGEST}\" & {}) = ANY($1) AND {missing}", Bucket::MAX);
            transaction.execute(&sql, &[&buckets]).await
        }
    }
    .map_err(PgError::db(context.clone()))?;
    if !changes.deletes.is_empty() {
        let keys = stage_keys_table(schema);
        copy_lines(transaction, &keys, quoted(schema.key()), changes.deletes.iter().map(String::as_str)).await?;
        let sql = format!("DELETE FROM {table} t USING {keys} d WHERE {}", key_match(schema, "t", "d"));
        touched += transaction.execute(&sql, &[]).await.map_err(PgError::db(context.clone()))?;
    }
    if !changes.upserts.is_empty() {
        let sql = upsert_from(schema, &stage, mode == CommitMode::Reconcile);
        touched += transaction.execute(&sql, &[]).await.map_err(PgError::db(context))?;
    }
    Ok(touched)
}

/// A source position as a row of [`PROGRESS_VIEW`].
struct PositionRow<'a>(&'a SourcePosition);

impl ViewRow for PositionRow<'_> {
    fn write(&self, line: &mut CopyLine) {
        line.text(&self.0.topic).int(self.0.partition.into()).int(self.0.next_offset);
    }
}

/// A dead letter as a row of [`DEAD_LETTER_VIEW`].
struct DeadLetterRow<'a>(&'a DeadLetter);

impl ViewRow for DeadLetterRow<'_> {
    fn write(&self, line: &mut CopyLine) {
        let letter = self.0;
        let payload = letter.payload.as_deref();
        line.text(&letter.topic)
            .int(letter.partition.into())
            .int(letter.offset)
            .text(&letter.reason)
            .text(&letter.detail)
            .opt_bytes(letter.key.as_deref())
            .opt_bytes(payload.map(|p| &p[..p.len().min(TABLE_PAYLOAD_CAP)]))
            .opt_int(payload.map(|p| p.len() as i64))
            .opt_text(payload.map(sha256_hex).as_deref());
    }
}

/// Encodes source positions as rows of [`PROGRESS_VIEW`].
pub fn position_lines(positions: &[SourcePosition]) -> Vec<String> {
    positions.iter().map(|position| encode_line(&PROGRESS_VIEW, &PositionRow(position))).collect()
}

/// Inserts dead letters not recorded yet, for the outbox to publish; returns how many were new.
pub async fn insert_dead_letters(transaction: &Transaction<'_>, letters: &[DeadLetter]) -> Result<u64, PgError> {
    if letters.is_empty() {
        return Ok(0);
    }
    let schema = &DEAD_LETTER_VIEW;
    let lines: Vec<String> = letters.iter().map(|letter| encode_line(schema, &DeadLetterRow(letter))).collect();
    let stage = stage_table(schema);
    copy_lines(transaction, &stage, quoted(schema.written()), lines.iter().map(String::as_str)).await?;
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT DO NOTHING",
        table = schema.table,
        columns = quoted(schema.written()),
    );
    transaction.execute(&sql, &[]).await.map_err(PgError::db("recording dead letters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_hashes_are_sha256_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
