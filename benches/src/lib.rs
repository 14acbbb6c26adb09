//! Benchmarks of citeflow. `cargo bench -p citeflow-benches` runs the criterion
//! micro-benchmarks in `benches/`; this library holds what they share: the bundled sample and
//! the window workload ([`windows`]) of the `windows` and `peers` benches.

use std::path::{Path, PathBuf};

pub mod allocator;
pub mod churn;

/// The bundled sample directory.
pub fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample")
}

/// The reference strings of the gold files.
pub fn gold_references() -> Vec<String> {
    let documents = citeflow_jobs::loader::gold_documents(&sample_dir()).expect("gold files");
    documents.into_iter().flat_map(|d| d.references.into_iter().map(|r| r.citation)).collect()
}

/// The EPMC records of the sample, as JSON values.
pub fn epmc_records(limit: usize) -> Vec<serde_json::Value> {
    let path = sample_dir().join(citeflow_jobs::loader::EPMC_FILES[0]);
    citeflow_connectors::files::lines(&path)
        .expect("epmc file")
        .take(limit)
        .map(|line| serde_json::from_str(&line.expect("line")).expect("json"))
        .collect()
}

/// The window workload of the `windows` and `peers` benches, deterministic: [`KEYS`](windows::KEYS)
/// window keys, insertions in [`EPOCHS`](windows::EPOCHS) epochs with event times spread over
/// [`SPAN`](windows::SPAN), mostly increasing (a record lags by up to [`BOUND`](windows::BOUND),
/// and one in a hundred by up to four times that), then revisions of earlier records drawn at
/// random (a new event time within `BOUND` of the old one, a new value) in epochs of the same
/// size. Records are read round-robin by id from [`PARTITIONS`](windows::PARTITIONS) partitions,
/// and each epoch after the first carries the watermark advance justified by the epochs before.
pub mod windows {
    use citeflow_jobs::synthetic::Rng;
    use citeflow_operators::aggregate::{count, sum_by, Group};
    use citeflow_operators::lateness::Arrival;
    use citeflow_operators::watermark::WatermarkAdvance;
    use citeflow_operators::window::Windows;
    use serde::{Deserialize, Serialize};

    /// Milliseconds since the Unix epoch, as citeflow counts event time.
    pub type EventTime = i64;

    /// How many window keys the records fall into.
    pub const KEYS: u64 = 10_000;
    /// How many epochs the insertions take.
    pub const EPOCHS: usize = 100;
    /// How many partitions the records are read from.
    pub const PARTITIONS: u32 = 4;
    /// Where event time starts (November 2023).
    pub const START: EventTime = 1_700_000_000_000;
    /// The event time the insertions span, whatever their number.
    pub const SPAN: EventTime = 1_000_000;
    /// How far behind the greatest event time seen the watermark stays, and how far most records lag.
    pub const BOUND: EventTime = 5_000;
    /// One-minute tumbling windows aligned to the Unix epoch.
    pub const TUMBLING: Windows = Windows::Tumbling { size: 60_000, offset: 0 };

    /// A record for the windows: key, event time and value.
    pub type Record = (u32, (EventTime, i64));

    /// The count and the sum of a window's values.
    pub fn count_and_sum(values: &Group<'_, i64>) -> (i64, i64) {
        (count(values), sum_by(|value: &i64| *value)(values))
    }

    /// One version of a record, with where it was read. The judge keys versions by `id`; the
    /// windows group records by `group`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub struct Event {
        /// The record.
        pub id: u32,
        /// The window key.
        pub group: u32,
        /// The event time.
        pub time: EventTime,
        /// The value the windows sum.
        pub value: i64,
        /// The partition it was read from.
        pub partition: u32,
        /// Its offset in the partition.
        pub offset: i64,
    }

    impl Event {
        /// The record the windows see.
        pub fn record(&self) -> Record {
            (self.group, (self.time, self.value))
        }
    }

    impl Arrival for Event {
        type Partition = u32;
        type Key = u32;
        type Summary = EventTime;
        fn position(&self) -> (u32, i64) {
            (self.partition, self.offset)
        }
        fn key(&self) -> &u32 {
            &self.id
        }
        fn summary(&self) -> Option<EventTime> {
            Some(self.time)
        }
    }

    /// A change to the records.
    pub enum Change {
        /// A new record.
        Insert(Event),
        /// A new version of a record.
        Revise {
            /// The version it replaces.
            old: Event,
            /// The version that arrives.
            new: Event,
        },
    }

    impl Change {
        /// The version that arrives.
        pub fn arrival(&self) -> Event {
            match self {
                Change::Insert(event) | Change::Revise { new: event, .. } => *event,
            }
        }

        /// Updates to the windows' input.
        pub fn updates(&self) -> usize {
            match self {
                Change::Insert(_) => 1,
                Change::Revise { .. } => 2,
            }
        }
    }

    /// What one epoch brings: the watermark advance decided from the epochs before, and changes.
    pub struct Epoch {
        /// The advance, unless the watermark does not move.
        pub advance: Option<WatermarkAdvance<u32>>,
        /// The epoch's changes.
        pub changes: Vec<Change>,
    }

    /// A phase of the workload, with the live records' count and value sum at its end.
    pub struct Phase {
        /// "insert" or "revise".
        pub name: &'static str,
        /// The phase's epochs.
        pub epochs: Vec<Epoch>,
        /// How many records are live at its end.
        pub live: i64,
        /// The sum of their values.
        pub value_sum: i64,
    }

    /// Versions of records, read round-robin by id from the partitions, and the watermark.
    struct Generator {
        rng: Rng,
        offsets: Vec<i64>,
        latest: EventTime,
        watermark: Option<EventTime>,
    }

    impl Generator {
        fn version(&mut self, id: u32, group: u32, time: EventTime) -> Event {
            let partition = id % PARTITIONS;
            let offset = self.offsets[partition as usize];
            self.offsets[partition as usize] += 1;
            self.latest = self.latest.max(time);
            Event { id, group, time, value: self.rng.below(1_000) as i64, partition, offset }
        }

        fn insertion(&mut self, index: usize, of: usize) -> Event {
            let lag = if self.rng.below(100) == 0 { 4 * BOUND } else { BOUND };
            let time = START + SPAN * index as EventTime / of as EventTime - self.rng.below(lag as u64) as EventTime;
            let group = self.rng.below(KEYS) as u32;
            self.version(index as u32, group, time)
        }

        fn revision(&mut self, old: &Event) -> Event {
            let time = old.time + self.rng.below(2 * BOUND as u64 + 1) as EventTime - BOUND;
            self.version(old.id, old.group, time)
        }

        /// The advance justified by the records so far, unless the watermark would not move.
        fn advance(&mut self) -> Option<WatermarkAdvance<u32>> {
            let watermark = self.latest - BOUND;
            if self.watermark.is_some_and(|current| current >= watermark) {
                return None;
            }
            self.watermark = Some(watermark);
            let positions = self.offsets.iter().enumerate().map(|(partition, offset)| (partition as u32, *offset)).collect();
            Some(WatermarkAdvance { watermark, positions })
        }
    }

    /// `insertions` records (evenly spread over `SPAN` of event time, before lags) in `EPOCHS`
    /// epochs, then `revisions` revisions in epochs of the same size: the phases "insert" and
    /// "revise".
    pub fn workload(insertions: usize, revisions: usize) -> Vec<Phase> {
        assert!(insertions > 0, "the workload needs insertions");
        let mut generator = Generator { rng: Rng::new(7), offsets: vec![0; PARTITIONS as usize], latest: EventTime::MIN, watermark: None };
        let per_epoch = insertions.div_ceil(EPOCHS);
        let mut live: Vec<Event> = Vec::with_capacity(insertions);
        let mut phases = Vec::new();
        for (name, count) in [("insert", insertions), ("revise", revisions)] {
            let mut epochs = Vec::new();
            for first in (0..count).step_by(per_epoch) {
                let advance = if live.is_empty() { None } else { generator.advance() };
                let changes = (first..count.min(first + per_epoch))
                    .map(|index| {
                        if name == "insert" {
                            let event = generator.insertion(index, insertions);
                            live.push(event);
                            Change::Insert(event)
                        } else {
                            let slot = generator.rng.below(live.len() as u64) as usize;
                            let old = live[slot];
                            let new = generator.revision(&old);
                            live[slot] = new;
                            Change::Revise { old, new }
                        }
                    })
                    .collect();
                epochs.push(Epoch { advance, changes });
            }
            phases.push(Phase { name, epochs, live: live.len() as i64, value_sum: live.iter().map(|e| e.value).sum() });
        }
        phases
    }
}
