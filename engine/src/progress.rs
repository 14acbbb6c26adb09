//! The progress store: what a destination that keeps a job's progress provides.
//!
//! A job's progress is its generation (each start takes a new one, and the store refuses the
//! commits of older ones: fencing), the source positions committed with the views, and the
//! log of event-time watermark advances with the positions each was made at (so that a replay
//! decides lateness as the first run did). One destination keeps it, and commits it in the
//! same atomic step as its views ([`crate::sink::CommitBatch`] carries the positions, and the
//! watermark log is a view, [`WATERMARK_LOG_VIEW`]). When the job starts, that destination
//! says what it holds as a [`SinkStart`]; every other destination only says what it holds of
//! its views ([`HeldDigests`]) and writes the batches the first has committed.
//!
//! The PostgreSQL committer (`citeflow_connectors::postgres`) is the progress store today; the
//! Kafka sink follows it.

use serde::{Deserialize, Serialize};

use crate::rows::{Column, CopyLine, ViewRow, ViewSchema};
use crate::sink::{HeldDigests, HydrationTarget};
use crate::timestamps::format_rfc3339;

/// What the destination that keeps the job's progress says when the job starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SinkStart {
    /// This run's generation, new: the store refuses commits of older generations.
    pub generation: i64,
    /// The offsets the previous run committed.
    pub committed: HydrationTarget,
    /// The event-time watermark advances previous runs committed, in order.
    pub watermark_log: Vec<WatermarkLogRow>,
    /// What the views hold, for the reconciliation after the replay.
    pub held: HeldDigests,
}

/// What a restart's reconciliation does with rows of a view that the replay did not rebuild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciliation {
    /// Deletes them: the inputs hold every message (compacted topics), so a row the replay did
    /// not rebuild is a row that no longer exists.
    Exact,
    /// Keeps them: the inputs may have lost messages to retention, and a row whose messages
    /// expired must not disappear for that.
    KeepUnreplayed,
}

/// The engine's durable log of event-time watermark advances, written as a view by jobs
/// that keep event time: per advance and partition, the partition's next offset.
pub const WATERMARK_LOG_VIEW: ViewSchema = ViewSchema {
    table: "citeflow_watermark_log",
    columns: &[
        Column::integer("watermark_ms"),
        Column::text("topic"),
        Column::integer("partition"),
        Column::integer("next_offset"),
        Column::text("watermark"),
    ],
    key_columns: 3,
};

/// The engine's current event-time watermarks: `global` and one row per `topic/partition`.
pub const WATERMARKS_VIEW: ViewSchema = ViewSchema {
    table: "citeflow_watermarks",
    columns: &[Column::text("source"), Column::text("watermark"), Column::integer("next_offset")],
    key_columns: 1,
};

/// One row of [`WATERMARK_LOG_VIEW`]: when the watermark became `watermark`, `partition` of
/// `topic` had been read up to `next_offset`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
