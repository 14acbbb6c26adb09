//! Topic archives: the messages of a job's input topics in files, and a source that replays them
//! with the Kafka source's semantics.
//!
//! An archive is a directory holding one file per partition, `<dir>/<topic>/<partition>.log`:
//! an 8-byte header (`CFARCH01`), then one frame per message in offset order — its body's length
//! and CRC-32 (4 bytes each, little-endian), then the body: offset and timestamp (8 bytes each;
//! `i64::MIN` for no timestamp), key and value (a 4-byte length, -1 for none, then the bytes).
//! Messages keep their Kafka offsets, so the positions a job commits while reading an archive are
//! the positions it would commit reading the topics, and either can continue from the other's.
//!
//! [`archive_source`] reads a worker's share of the partitions from their first message, in
//! epochs as the Kafka source does (`log_source.rs`): what the job sees, and commits, is
//! the same whichever it reads. With `stop_at_end` it finishes once every file has been read to
//! the length it had when the source started; otherwise it follows the files as they grow, looking
//! for new frames at every heartbeat. A frame cut short at the end of a file is one still being
//! written: the source waits for the rest. A frame whose CRC or layout is wrong ends its partition
//! there, with an error in the log and `citeflow_source_errors_total{kind="corrupt_archive"}`;
//! [`offset_range`] finds such a frame before a job starts, and the job refuses to start on it.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use citeflow_engine::flow::FlowControl;
use citeflow_engine::metrics::metrics;
use citeflow_engine::time::{Epoch, EpochTicker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::{Scope, Stream};

use crate::kafka::admin::{discover_partitions, watermarks, METADATA_TIMEOUT};
use crate::kafka::source::{KafkaMessage, SourceEvent};
use crate::kafka::{KafkaConfig, KafkaError};
use crate::log_source::{log_source, PartitionPosition, PartitionedLog};
use crate::EpochSettings;

/// The first bytes of every archive file.
const MAGIC: &[u8; 8] = b"CFARCH01";
/// The largest frame body a reader accepts (Kafka's own limit on a message is far smaller):
/// anything larger is a corrupt length, not a message.
const MAX_FRAME: u32 = 256 << 20;
/// A frame's length and CRC.
const FRAME_HEADER: usize = 8;
/// Messages a source reads from one partition before it turns to the next.
const TURN: usize = 256;

/// An archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file system refused.
    #[error("archive {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A file is not an archive file.
    #[error("archive {path}: not a citeflow archive file (it does not start with CFARCH01)")]
    NotAnArchive {
        /// The file.
        path: PathBuf,
    },
    /// A frame is damaged.
    #[error("archive {path}: the frame at byte {position} is corrupt ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the frame starts.
        position: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Reading the topics failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The broker sent nothing for a while before every partition was read to its end.
    #[error("archiving: nothing read for {0:?} before {1}/{2} reached its end")]
    Stalled(Duration, String, i32),
    /// A file name in a topic's directory is not a partition number.
    #[error("archive {path}: not a partition file (expected <partition>.log)")]
    UnknownFile {
        /// The file.
        path: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.to_path_buf(), source }
}

/// The file holding `topic`/`partition` in the archive `dir`.
pub fn partition_path(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    dir.join(topic).join(format!("{partition}.log"))
}

/// The partitions of `topics` the archive `dir` holds, sorted. A topic without a directory has
/// none.
pub fn partitions(dir: &Path, topics: &[String]) -> Result<Vec<(String, i32)>, ArchiveError> {
    let mut found = Vec::new();
    for topic in topics {
        let topic_dir = dir.join(topic);
        let entries = match std::fs::read_dir(&topic_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(source) => return Err(ArchiveError::Io { path: topic_dir, source }),
        };
        for entry in entries {
            let path = entry.map_err(io_error(&topic_dir))?.path();
            let partition = path.extension().filter(|e| *e == "log").and(path.file_stem()).and_then(|s| s.to_str()?.parse::<i32>().ok());
            match partition {
                Some(partition) if partition >= 0 => found.push((topic.clone(), partition)),
                _ => return Err(ArchiveError::UnknownFile { path }),
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Appends messages to one partition's file.
pub struct ArchiveWriter {
    path: PathBuf,
    file: BufWriter<File>,
    body: Vec<u8>,
}

impl ArchiveWriter {
    /// Creates (or empties) the file of `topic`/`partition` in the archive `dir`.
    pub fn create(dir: &Path, topic: &str, partition: i32) -> Result<Self, ArchiveError> {
        let path = partition_path(dir, topic, partition);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        let mut file = BufWriter::with_capacity(1 << 16, File::create(&path).map_err(io_error(&path))?);
        file.write_all(MAGIC).map_err(io_error(&path))?;
        Ok(ArchiveWriter { path, file, body: Vec::new() })
    }

    /// Appends `message` (its topic and partition are the file's).
    pub fn append(&mut self, message: &KafkaMessage) -> Result<(), ArchiveError> {
        fn bytes(body: &mut Vec<u8>, value: Option<&[u8]>) {
            match value {
                Some(value) => {
                    body.extend_from_slice(&(value.len() as i32).to_le_bytes());
                    body.extend_from_slice(value);
                }
                None => body.extend_from_slice(&(-1_i32).to_le_bytes()),
            }
        }
        let body = &mut self.body;
        body.clear();
        body.extend_from_slice(&message.offset.to_le_bytes());
        body.extend_from_slice(&message.timestamp.unwrap_or(i64::MIN).to_le_bytes());
        bytes(body, message.key.as_deref());
        bytes(body, message.payload.as_deref());
        let mut header = [0; FRAME_HEADER];
        header[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
        self.file.write_all(&header).and_then(|()| self.file.write_all(body)).map_err(io_error(&self.path))
    }

    /// Writes what is buffered and makes the file durable.
    pub fn finish(mut self) -> Result<(), ArchiveError> {
        self.file.flush().map_err(io_error(&self.path))?;
        self.file.get_ref().sync_all().map_err(io_error(&self.path))
    }
}

/// What reading the next frame found.
enum Frame {
    Message(KafkaMessage),
    /// No complete frame (yet): the end of the file, or a frame still being written.
    End,
}

/// Reads one partition's file from its first message.
struct PartitionReader {
    path: PathBuf,
    topic: String,
    partition: i32,
    file: BufReader<File>,
    /// Where the next frame starts.
    position: u64,
    /// Whether the last look found no complete frame after `position`.
    at_tail: bool,
    body: Vec<u8>,
}

impl PartitionReader {
    fn open(dir: &Path, topic: &str, partition: i32) -> Result<Self, ArchiveError> {
        let path = partition_path(dir, topic, partition);
        let mut file = BufReader::with_capacity(1 << 16, File::open(&path).map_err(io_error(&path))?);
        let mut magic = [0; MAGIC.len()];
        if file.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(ArchiveError::NotAnArchive { path });
        }
        let position = MAGIC.len() as u64;
        Ok(PartitionReader { path, topic: topic.to_string(), partition, file, position, at_tail: false, body: Vec::new() })
    }

    fn corrupt(&self, reason: &'static str) -> ArchiveError {
        ArchiveError::Corrupt { path: self.path.clone(), position: self.position, reason }
    }

    /// Reads exactly `buffer.len()` bytes; `false` if the file ends first.
    fn fill(file: &mut BufReader<File>, buffer: &mut [u8]) -> std::io::Result<bool> {
        match file.read_exact(buffer) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The next frame's body, in `self.body`; `false` if there is no complete frame (the reader
    /// then stays where the incomplete one starts).
    fn next_body(&mut self) -> Result<bool, ArchiveError> {
        let mut header = [0; FRAME_HEADER];
        let complete = Self::fill(&mut self.file, &mut header).map_err(io_error(&self.path))? && {
            let length = u32::from_le_bytes(header[..4].try_into().expect("four bytes"));
            if length > MAX_FRAME {
                return Err(self.corrupt("length beyond the largest frame"));
            }
            self.body.resize(length as usize, 0);
            Self::fill(&mut self.file, &mut self.body).map_err(io_error(&self.path))?
        };
        if !complete {
            self.file.seek(SeekFrom::Start(self.position)).map_err(io_error(&self.path))?;
            return Ok(false);
        }
        if crc32fast::hash(&self.body) != u32::from_le_bytes(header[4..].try_into().expect("four bytes")) {
            return Err(self.corrupt("CRC mismatch"));
        }
        self.position += (FRAME_HEADER + self.body.len()) as u64;
        Ok(true)
    }

    fn next(&mut self) -> Result<Frame, ArchiveError> {
        self.at_tail = !self.next_body()?;
        if self.at_tail {
            return Ok(Frame::End);
        }
        let start = self.position - self.body.len() as u64 - FRAME_HEADER as u64;
        let corrupt = |reason| ArchiveError::Corrupt { path: self.path.clone(), position: start, reason };
        let (offset, timestamp, key, payload) = decode_body(&self.body).ok_or_else(|| corrupt("layout"))?;
        Ok(Frame::Message(KafkaMessage {
            topic: self.topic.clone(),
            partition: self.partition,
            offset,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            timestamp: (timestamp != i64::MIN).then_some(timestamp),
        }))
    }
}

/// A frame body's offset, timestamp, key and value, if it is laid out as one.
type Body<'a> = (i64, i64, Option<&'a [u8]>, Option<&'a [u8]>);

fn decode_body(body: &[u8]) -> Option<Body<'_>> {
    fn take<'a>(rest: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
        let (head, tail) = rest.split_at_checked(count)?;
        *rest = tail;
        Some(head)
    }
    fn bytes<'a>(rest: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
        match i32::from_le_bytes(take(rest, 4)?.try_into().ok()?) {
            -1 => Some(None),
            length => Some(Some(take(rest, usize::try_from(length).ok()?)?)),
        }
    }
    let mut rest = body;
    let offset = i64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
    let timestamp = i64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
    let key = bytes(&mut rest)?;
    let payload = bytes(&mut rest)?;
    rest.is_empty().then_some((offset, timestamp, key, payload))
}

/// The offsets a partition's file holds: its first message's and one past its last (both 0 for
/// an empty file), as a broker reports a partition's low and high watermarks. It reads every
/// frame, and fails on the first damaged one.
pub fn offset_range(dir: &Path, topic: &str, partition: i32) -> Result<(i64, i64), ArchiveError> {
    let mut reader = PartitionReader::open(dir, topic, partition)?;
    let mut range: Option<(i64, i64)> = None;
    while let Frame::Message(message) = reader.next()? {
        let (low, _) = range.get_or_insert((message.offset, message.offset));
        range = Some((*low, message.offset + 1));
    }
    Ok(range.unwrap_or((0, 0)))
}

/// One worker's partitions of an archive.
struct ArchiveLog {
    readers: Vec<PartitionReader>,
    positions: Vec<PartitionPosition>,
    /// Each file's length when the source started: a partition is at its end once it is read
    /// that far, or as far as it holds complete frames.
    ends: Vec<u64>,
    /// Partitions that ended at a damaged frame.
    broken: Vec<bool>,
    /// The partition read first in the next read (they take turns).
    turn: usize,
    /// Which partitions the current read found without a complete frame (kept between reads
    /// so that a read allocates nothing).
    drained: Vec<bool>,
}

impl ArchiveLog {
    fn open(dir: &Path, partitions: &[(String, i32)]) -> Result<Self, ArchiveError> {
        let mut log =
            ArchiveLog { readers: Vec::new(), positions: Vec::new(), ends: Vec::new(), broken: Vec::new(), turn: 0, drained: Vec::new() };
        for (topic, partition) in partitions {
            let reader = PartitionReader::open(dir, topic, *partition)?;
            let length = reader.file.get_ref().metadata().map_err(io_error(&reader.path))?.len();
            log.readers.push(reader);
            log.positions.push(PartitionPosition::new(topic.clone(), *partition, 0));
            log.ends.push(length);
            log.broken.push(false);
            log.drained.push(false);
        }
        Ok(log)
    }
}

impl PartitionedLog for ArchiveLog {
    fn read(&mut self, limit: usize, give: &mut dyn FnMut(KafkaMessage)) -> bool {
        let count = self.readers.len();
        let mut read = 0;
        let mut drained = std::mem::take(&mut self.drained);
        drained.fill(false);
        while read < limit && drained.iter().any(|d| !d) {
            for slot in (0..count).map(|i| (self.turn + i) % count) {
                let mut turn = 0;
                while !drained[slot] && turn < TURN && read < limit {
                    if self.broken[slot] {
                        drained[slot] = true;
                        break;
                    }
                    match self.readers[slot].next() {
                        Ok(Frame::Message(message)) => {
                            if self.positions[slot].advance(message.offset) {
                                give(message);
                                read += 1;
                                turn += 1;
                            }
                        }
                        Ok(Frame::End) => drained[slot] = true,
                        Err(error) => {
                            metrics().source_errors.with_label_values(&["corrupt_archive"]).inc();
                            tracing::error!(%error, "archive source: the partition ends here");
                            self.broken[slot] = true;
                        }
                    }
                }
            }
            self.turn = (self.turn + 1) % count.max(1);
        }
        let all = drained.iter().all(|d| *d);
        self.drained = drained;
        all
    }

    fn positions(&mut self) -> &mut [PartitionPosition] {
        &mut self.positions
    }

    fn at_end(&self) -> bool {
        self.readers
            .iter()
            .zip(&self.ends)
            .zip(&self.broken)
            .all(|((reader, end), broken)| *broken || reader.at_tail || reader.position >= *end)
    }
}

/// How long archiving waits for the broker before it gives up.
const STALL: Duration = Duration::from_secs(30);

/// Writes every message `topics` hold now (up to each partition's high watermark when it starts)
/// into the archive `dir`, replacing the files of those partitions; returns the messages written.
pub fn archive_topics(kafka: &KafkaConfig, topics: &[String], dir: &Path) -> Result<u64, ArchiveError> {
    let consumer: BaseConsumer = kafka.consumer_config().create().map_err(KafkaError::client("creating consumer"))?;
    let mut assignment = TopicPartitionList::new();
    let mut partitions = Vec::new();
    for (topic, partition) in discover_partitions(kafka, topics)? {
        let (low, high) = watermarks(&consumer, &topic, partition, METADATA_TIMEOUT)?;
        let writer = ArchiveWriter::create(dir, &topic, partition)?;
        if high > low {
            assignment.add_partition_offset(&topic, partition, Offset::Offset(low)).map_err(KafkaError::client("building assignment"))?;
        }
        partitions.push(((topic, partition), (writer, high)));
    }
    consumer.assign(&assignment).map_err(KafkaError::client("assigning partitions"))?;
    let mut index: std::collections::BTreeMap<(String, i32), (ArchiveWriter, i64, i64)> =
        partitions.into_iter().map(|(key, (writer, high))| (key, (writer, -1, high))).collect();
    let mut written = 0;
    let mut last_read = std::time::Instant::now();
    while let Some(((topic, partition), _)) = index.iter().find(|(_, (_, last, high))| *last + 1 < *high) {
        if last_read.elapsed() > STALL {
            return Err(ArchiveError::Stalled(STALL, topic.clone(), *partition));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            // Offsets without a message (a transaction's markers, compacted gaps) count as read
            // once the consumer's position is past them.
            let positions = consumer.position().map_err(KafkaError::client("reading positions"))?;
            for element in positions.elements() {
                if let (Some((_, last, _)), Offset::Offset(next)) =
                    (index.get_mut(&(element.topic().to_string(), element.partition())), element.offset())
                {
                    *last = (*last).max(next - 1);
                }
            }
            continue;
        };
        let message = message.map_err(KafkaError::client("reading"))?;
        last_read = std::time::Instant::now();
        let Some((writer, last, high)) = index.get_mut(&(message.topic().to_string(), message.partition())) else { continue };
        if message.offset() <= *last || message.offset() >= *high {
            continue;
        }
        *last = message.offset();
        writer.append(&KafkaMessage {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            timestamp: message.timestamp().to_millis(),
        })?;
        written += 1;
    }
    for (writer, _, _) in index.into_values() {
        writer.finish()?;
    }
    Ok(written)
}

/// Reads `partitions` (this worker's share) of the archive `dir` into the dataflow, at most as
/// far ahead of what the job has finished as `flow` allows, closing epochs as `epochs` and
/// `ticker` say; see the module documentation.
pub fn archive_source<'scope>(
    scope: Scope<'scope, Epoch>,
    dir: &Path,
    epochs: EpochSettings,
    partitions: Vec<(String, i32)>,
    flow: FlowControl,
    ticker: EpochTicker,
) -> Result<Stream<'scope, Epoch, Vec<SourceEvent>>, ArchiveError> {
    let log = ArchiveLog::open(dir, &partitions)?;
    Ok(log_source(scope, "ArchiveSource", log, epochs, flow, ticker))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(label: &str) -> Self {
            let path = std::env::temp_dir().join(format!("citeflow-archive-{label}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn message(offset: i64, key: Option<&str>, payload: Option<&str>, timestamp: Option<i64>) -> KafkaMessage {
        KafkaMessage {
            topic: "t".into(),
            partition: 3,
            offset,
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: payload.map(|p| p.as_bytes().to_vec()),
            timestamp,
        }
    }

    fn write(dir: &Path, messages: &[KafkaMessage]) {
        let mut writer = ArchiveWriter::create(dir, "t", 3).expect("create");
        for message in messages {
            writer.append(message).expect("append");
        }
        writer.finish().expect("finish");
    }

    fn read_all(dir: &Path) -> Vec<KafkaMessage> {
        let mut log = ArchiveLog::open(dir, &[("t".into(), 3)]).expect("open");
        let mut read = Vec::new();
        while !log.read(2, &mut |m| read.push(m)) {}
        assert!(log.at_end());
        read
    }

    #[test]
    fn messages_come_back_as_written_with_their_offsets() {
        let dir = Dir::new("roundtrip");
        let messages = vec![
            message(4, Some("a"), Some("{\"x\":1}"), Some(1_700_000_000_000)),
            message(5, Some("b"), None, None),
            message(9, None, Some(""), Some(-5)),
        ];
        write(&dir.0, &messages);
        assert_eq!(read_all(&dir.0), messages);
        assert_eq!(offset_range(&dir.0, "t", 3).expect("range"), (4, 10));
        assert_eq!(partitions(&dir.0, &["t".into(), "absent".into()]).expect("partitions"), vec![("t".to_string(), 3)]);
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let dir = Dir::new("layout");
        let mut body = Vec::new();
        body.extend_from_slice(&7_i64.to_le_bytes());
        body.extend_from_slice(&i64::MIN.to_le_bytes());
        body.extend_from_slice(&1_i32.to_le_bytes());
        body.push(b'k');
        body.extend_from_slice(&(-1_i32).to_le_bytes());
        let mut bytes = b"CFARCH01".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        write(&dir.0, &[message(7, Some("k"), None, None)]);
        assert_eq!(std::fs::read(partition_path(&dir.0, "t", 3)).expect("read"), bytes);
    }

    #[test]
    fn a_frame_cut_short_is_waited_for_and_read_once_complete() {
        let dir = Dir::new("partial");
        write(&dir.0, &[message(0, Some("a"), Some("one"), None), message(1, Some("b"), Some("two"), None)]);
        let path = partition_path(&dir.0, "t", 3);
        let whole = std::fs::read(&path).expect("read");
        std::fs::write(&path, &whole[..whole.len() - 3]).expect("cut");
        let mut log = ArchiveLog::open(&dir.0, &[("t".into(), 3)]).expect("open");
        let mut read = Vec::new();
        assert!(log.read(10, &mut |m| read.push(m)));
        assert_eq!(read.len(), 1);
        assert!(log.at_end(), "the file's complete frames are read");
        std::fs::write(&path, &whole).expect("complete");
        assert!(log.read(10, &mut |m| read.push(m)));
        assert_eq!(read.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn a_damaged_frame_ends_the_partition_and_is_named_before_a_start() {
        let dir = Dir::new("corrupt");
        write(&dir.0, &[message(0, Some("a"), Some("one"), None), message(1, Some("b"), Some("two"), None)]);
        let path = partition_path(&dir.0, "t", 3);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("damage");
        let error = offset_range(&dir.0, "t", 3).expect_err("corrupt");
        assert!(matches!(error, ArchiveError::Corrupt { reason: "CRC mismatch", .. }), "{error}");
        assert_eq!(read_all(&dir.0).len(), 1);
    }

    #[test]
    fn a_huge_length_is_corruption_not_an_allocation() {
        let dir = Dir::new("huge");
        let path = partition_path(&dir.0, "t", 3);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(offset_range(&dir.0, "t", 3), Err(ArchiveError::Corrupt { .. })));
    }

    #[test]
    fn files_that_are_not_partitions_are_refused() {
        let dir = Dir::new("names");
        std::fs::create_dir_all(dir.0.join("t")).expect("dir");
        std::fs::write(dir.0.join("t").join("notes.txt"), "x").expect("write");
        assert!(matches!(partitions(&dir.0, &["t".into()]), Err(ArchiveError::UnknownFile { .. })));
        std::fs::create_dir_all(dir.0.join("u")).expect("dir");
        std::fs::write(partition_path(&dir.0, "u", 0), "not an archive").expect("write");
        assert!(matches!(ArchiveLog::open(&dir.0, &[("u".into(), 0)]), Err(ArchiveError::NotAnArchive { .. })));
    }

    #[test]
    fn bodies_with_lengths_beyond_them_are_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(&0_i64.to_le_bytes());
        body.extend_from_slice(&0_i64.to_le_bytes());
        body.extend_from_slice(&100_i32.to_le_bytes());
        assert!(decode_body(&body).is_none());
        body.truncate(16);
        body.extend_from_slice(&(-1_i32).to_le_bytes());
        body.extend_from_slice(&(-1_i32).to_le_bytes());
        assert_eq!(decode_body(&body), Some((0, 0, None, None)));
        body.push(0);
        assert!(decode_body(&body).is_none(), "trailing bytes");
    }
}
