//! Applying one view's changes inside a transaction: COPY into a staging table, then delete
//! and upsert by primary key in bulk, writing only rows whose values differ.

use bytes::{BufMut, BytesMut};
use citeflow_engine::rows::{CopyLine, ViewRow, ViewSchema};
use citeflow_engine::sink::{CommitMode, DeadLetter, SourcePosition, ViewChanges};
use citeflow_engine::timestamps::format_rfc3339;
use futures_util::SinkExt;
use tokio_postgres::{Client, Transaction};

use super::PgError;

/// The engine's progress table as a view: per topic and partition, the next offset.
pub const PROGRESS_VIEW: ViewSchema =
    ViewSchema { table: "citeflow_progress", columns: &["topic", "partition", "next_offset"], key_columns: 2 };

/// The engine's durable log of event-time watermark advances, written as a view by jobs
/// that keep event time: per advance and partition, the partition's next offset.
pub const WATERMARK_LOG_VIEW: ViewSchema = ViewSchema {
    table: "citeflow_watermark_log",
    columns: &["watermark_ms", "topic", "partition", "next_offset", "watermark"],
    key_columns: 3,
};

/// The engine's current event-time watermarks: `global` and one row per `topic/partition`.
pub const WATERMARKS_VIEW: ViewSchema =
    ViewSchema { table: "citeflow_watermarks", columns: &["source", "watermark", "next_offset"], key_columns: 1 };

/// One row of [`WATERMARK_LOG_VIEW`]: when the watermark became `watermark`, `partition` of
/// `topic` had been read up to `next_offset`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatermarkLogRow {
    /// The watermark (ms since the Unix epoch).
    pub watermark: i64,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The partition's next offset at that advance.
    pub next_offset: i64,
}

impl ViewRow for WatermarkLogRow {
    fn write(&self, line: &mut CopyLine) {
        line.int(self.watermark).text(&self.topic).int(self.partition.into()).int(self.next_offset).text(&format_rfc3339(self.watermark));
    }
}

/// The engine's dead-letter table.
pub const DEAD_LETTER_VIEW: ViewSchema = ViewSchema {
    table: "citeflow_dead_letters",
    columns: &["topic", "partition", "offset", "reason", "detail", "message_key", "payload", "payload_size", "payload_sha256"],
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

fn quoted(columns: &[&str]) -> String {
    columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

fn key_match(schema: &ViewSchema, left: &str, right: &str) -> String {
    schema.key().iter().map(|c| format!("{left}.\"{c}\" = {right}.\"{c}\"")).collect::<Vec<_>>().join(" AND ")
}

fn stage_table(schema: &ViewSchema) -> String {
    format!("citeflow_stage_{}", schema.table)
}

fn stage_keys_table(schema: &ViewSchema) -> String {
    format!("citeflow_stage_keys_{}", schema.table)
}

/// The shadow of a view: the view as a hydrating job rebuilds it (see [`prepare_shadows`]).
pub fn shadow_table(schema: &ViewSchema) -> String {
    format!("citeflow_shadow_{}", schema.table)
}

/// (Re)creates an empty shadow table for each of `schemas`: unlogged (it is rebuilt by every
/// start that hydrates), with the view's columns, NOT NULL and CHECK constraints and primary
/// key, so that rows the view would refuse are refused while staging, with the rows at hand.
pub async fn prepare_shadows(client: &Client, schemas: &[ViewSchema]) -> Result<(), PgError> {
    for schema in schemas {
        let sql = format!(
            "DROP TABLE IF EXISTS {shadow};
             CREATE UNLOGGED TABLE {shadow} (LIKE {table} INCLUDING CONSTRAINTS);
             ALTER TABLE {shadow} ADD PRIMARY KEY ({key});",
            shadow = shadow_table(schema),
            table = schema.table,
            key = quoted(schema.key()),
        );
        client.batch_execute(&sql).await.map_err(PgError::db(format!("shadow table for {}", schema.table)))?;
    }
    Ok(())
}

/// `INSERT … ON CONFLICT` from `source` into `table` (the view `schema` or its shadow),
/// writing only rows whose values differ. With `compare_first`, the rows of `source` equal to
/// rows of `table` are left out by a join before the insert: an upsert locks every row it
/// conflicts with, even one it leaves as it was, so a source that mostly repeats the table (a
/// reconciliation's shadow) would otherwise write to every page of it.
fn upsert_from(schema: &ViewSchema, table: &str, source: &str, compare_first: bool) -> String {
    let columns = quoted(schema.columns);
    let listed = |alias: &str, names: &[&str]| names.iter().map(|c| format!("{alias}.\"{c}\"")).collect::<Vec<_>>().join(", ");
    let conflict = if schema.values().is_empty() {
        "DO NOTHING".to_string()
    } else {
        let set = schema.values().iter().map(|c| format!("\"{c}\" = EXCLUDED.\"{c}\"")).collect::<Vec<_>>().join(", ");
        format!(
            "DO UPDATE SET {set} WHERE ROW({}) IS DISTINCT FROM ROW({})",
            listed("t", schema.values()),
            listed("EXCLUDED", schema.values())
        )
    };
    let selected = if compare_first {
        let differs = match schema.values() {
            [] => "FALSE".to_string(),
            values => format!("ROW({}) IS DISTINCT FROM ROW({})", listed("v", values), listed("s", values)),
        };
        format!(
            "SELECT {} FROM {source} s LEFT JOIN {table} v ON {} WHERE v.\"{}\" IS NULL OR {differs}",
            listed("s", schema.columns),
            key_match(schema, "v", "s"),
            schema.key()[0],
        )
    } else {
        format!("SELECT {columns} FROM {source}")
    };
    format!("INSERT INTO {table} AS t ({columns}) {selected} ON CONFLICT ({key}) {conflict}", key = quoted(schema.key()))
}

/// Makes the view equal to its shadow (with `delete_missing`; otherwise rows missing from the
/// shadow stay), writing only the rows that differ, and empties the shadow; returns the rows
/// deleted, inserted or updated.
pub async fn reconcile_from_shadow(transaction: &Transaction<'_>, schema: &ViewSchema, delete_missing: bool) -> Result<u64, PgError> {
    let (table, shadow) = (schema.table, shadow_table(schema));
    let context = format!("reconciling {table}");
    // The shadow was filled since it was created: without statistics the planner takes it
    // for a small table and compares row by row through the view's index.
    transaction.batch_execute(&format!("ANALYZE {shadow}")).await.map_err(PgError::db(context.clone()))?;
    let mut touched = 0;
    if delete_missing {
        let delete = format!("DELETE FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {shadow} s WHERE {})", key_match(schema, "t", "s"));
        touched += transaction.execute(&delete, &[]).await.map_err(PgError::db(context.clone()))?;
    }
    touched += transaction.execute(&upsert_from(schema, table, &shadow, true), &[]).await.map_err(PgError::db(context.clone()))?;
    transaction.batch_execute(&format!("TRUNCATE {shadow}")).await.map_err(PgError::db(context))?;
    Ok(touched)
}

/// Creates this session's staging tables for `schemas` (temporary, emptied at each commit).
pub async fn prepare_staging(client: &Client, schemas: &[ViewSchema]) -> Result<(), PgError> {
    for schema in schemas {
        let sql = format!(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT {columns} FROM {table} WITH NO DATA;
             CREATE TEMP TABLE IF NOT EXISTS {keys} ON COMMIT DELETE ROWS AS SELECT {key} FROM {table} WITH NO DATA;",
            stage = stage_table(schema),
            keys = stage_keys_table(schema),
            columns = quoted(schema.columns),
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
    columns: &[&str],
    lines: impl Iterator<Item = &'a str>,
) -> Result<(), PgError> {
    let context = format!("copying into {table}");
    transaction.batch_execute(&format!("TRUNCATE {table}")).await.map_err(PgError::db(context.clone()))?;
    let statement = format!("COPY {table} ({}) FROM STDIN", quoted(columns));
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

/// Applies `changes` to `table` (the view `schema`, or its shadow); returns the number of rows
/// deleted, inserted or updated. In [`CommitMode::Reconcile`] the upserts are the table's
/// complete contents and every other row is deleted; otherwise they are changes.
pub async fn apply_view(
    transaction: &Transaction<'_>,
    schema: &ViewSchema,
    table: &str,
    changes: &ViewChanges,
    mode: CommitMode,
) -> Result<u64, PgError> {
    let stage = stage_table(schema);
    let context = format!("writing {table}");
    let mut touched = 0;
    match mode {
        CommitMode::Reconcile => {
            copy_lines(transaction, &stage, schema.columns, changes.upserts.iter().map(String::as_str)).await?;
            let sql = format!("DELETE FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE {})", key_match(schema, "t", "s"));
            touched += transaction.execute(&sql, &[]).await.map_err(PgError::db(context.clone()))?;
        }
        CommitMode::Delta | CommitMode::Stage if !changes.deletes.is_empty() => {
            let keys = stage_keys_table(schema);
            copy_lines(transaction, &keys, schema.key(), changes.deletes.iter().map(String::as_str)).await?;
            let sql = format!("DELETE FROM {table} t USING {keys} d WHERE {}", key_match(schema, "t", "d"));
            touched += transaction.execute(&sql, &[]).await.map_err(PgError::db(context.clone()))?;
        }
        CommitMode::Delta | CommitMode::Stage => {}
    }
    if changes.upserts.is_empty() {
        return Ok(touched);
    }
    if mode != CommitMode::Reconcile {
        copy_lines(transaction, &stage, schema.columns, changes.upserts.iter().map(String::as_str)).await?;
    }
    touched += transaction.execute(&upsert_from(schema, table, &stage, false), &[]).await.map_err(PgError::db(context))?;
    Ok(touched)
}

/// Encodes source positions as rows of [`PROGRESS_VIEW`].
pub fn position_lines(positions: &[SourcePosition]) -> Vec<String> {
    positions
        .iter()
        .map(|p| {
            let mut line = CopyLine::default();
            line.text(&p.topic).int(p.partition.into()).int(p.next_offset);
            line.into_text()
        })
        .collect()
}

/// Inserts dead letters not recorded yet, for the outbox to publish; returns how many were new.
pub async fn insert_dead_letters(transaction: &Transaction<'_>, letters: &[DeadLetter]) -> Result<u64, PgError> {
    if letters.is_empty() {
        return Ok(0);
    }
    let schema = &DEAD_LETTER_VIEW;
    let lines: Vec<String> = letters
        .iter()
        .map(|l| {
            let payload = l.payload.as_deref();
            let mut line = CopyLine::default();
            line.text(&l.topic)
                .int(l.partition.into())
                .int(l.offset)
                .text(&l.reason)
                .text(&l.detail)
                .opt_bytes(l.key.as_deref())
                .opt_bytes(payload.map(|p| &p[..p.len().min(TABLE_PAYLOAD_CAP)]))
                .opt_int(payload.map(|p| p.len() as i64))
                .opt_text(payload.map(sha256_hex).as_deref());
            line.into_text()
        })
        .collect();
    let stage = stage_table(schema);
    copy_lines(transaction, &stage, schema.columns, lines.iter().map(String::as_str)).await?;
    let sql = format!(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT DO NOTHING",
        table = schema.table,
        columns = quoted(schema.columns),
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
