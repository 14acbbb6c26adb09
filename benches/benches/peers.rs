//! citeflow's side of `benches/peers/run.sh`, which runs Pathway and Bytewax on the same
//! workloads from the same files, and the generator of those files.
//!
//! Two workloads, each on one timely worker, one epoch per batch of the files:
//! - `windows`: `citeflow_operators::window::window_aggregate` with one-minute tumbling windows
//!   per key, counting and summing the values (`citeflow_operators::aggregate::{count,
//!   sum_by}`), over the workload of the `windows` bench (`citeflow_benches::windows`): 10,000
//!   keys, 1,000,000 insertions in 100 batches with event times over 1,000 seconds, then
//!   200,000 revisions of earlier records in 20 batches, each a retraction and an insertion.
//! - `join`: 1,000,000 left rows (id, key, value) over 333,333 keys and 100,000 right rows
//!   (id, key, value) on distinct keys among those, so that a right row matches about three
//!   left rows, inserted in 100 batches of 10,000 left and 1,000 right rows. Both sides are
//!   arranged by key (`citeflow_operators::arrange::ArrangeCompact`, as the job arranges its
//!   collections) and joined (`citeflow_operators::join::JoinByBatch`, as the job joins them);
//!   a pair scores `left value * right value mod 1,000,003`, and
//!   `citeflow_operators::best::leaders_by_key` keeps per right key the pair with the greatest
//!   (score, left id) (and the runner-up, which the peers do not compute and the check
//!   ignores).
//!
//! Events are input updates, counted alike for every engine: an insertion is one, a revision
//! two. The files are read into memory first; the clock runs from the first batch's input
//! until the probe shows the output complete for the last batch. Each workload runs twice, on
//! a new dataflow each time: paced (`citeflow`: a batch goes in once the output is complete
//! for the one before, as a stream arrives) and queued (`citeflow-queued`: every batch goes in
//! at once, each still its own epoch, as Pathway's input tables with times arrive). The
//! output's changes are kept in memory and, once the clock has stopped, added up and compared
//! with the generator's expected output.
//!
//! The files, CSV with a header and in batch order (every value an integer):
//! - `windows.csv`: `batch,diff,id,key,time,value` (time in ms since the Unix epoch; diff 1
//!   inserts the record version, -1 retracts it; a revision is both, in the same batch);
//! - `windows.expected.csv`: `key,start,count,sum`, per window holding live records at the end;
//! - `join.left.csv`, `join.right.csv`: `batch,id,key,value`;
//! - `join.expected.csv`: `key,left_id,score`, per right key with a match.
//!
//! `benches/peers/run.sh` runs it, or by hand:
//!
//!     cargo bench -p citeflow-benches --bench peers -- generate DIR
//!     cargo bench -p citeflow-benches --bench peers -- windows DIR
//!     cargo bench -p citeflow-benches --bench peers -- join DIR
//!
//! Without a command it generates into `PEERS_DATA` (default `/tmp/citeflow-peers`) and runs
//! both. `PEERS_ROWS` (1,000,000) sets the insertions and the left rows when generating; the
//! revisions are a fifth of it and the right rows a tenth. A run prints, paced then queued,
//! `peers-citeflow: WORKLOAD events N seconds S events_per_s X` and the same line for
//! `citeflow-queued`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use citeflow_benches::windows::{count_and_sum, workload, Change, Event, EventTime, Record, TUMBLING};
use citeflow_jobs::synthetic::Rng;
use citeflow_operators::arrange::ArrangeCompact;
use citeflow_operators::best::leaders_by_key;
use citeflow_operators::join::JoinByBatch;
use citeflow_operators::window::{window_aggregate, Window};
use differential_dataflow::consolidation::consolidate;
use differential_dataflow::input::Input;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How many batches the insertions, and the join's rows, arrive in.
const BATCHES: usize = 100;
/// A join pair's score is left value * right value modulo this prime.
const MODULUS: u64 = 1_000_003;
/// Join values are below this, so that a product stays far from overflow.
const VALUES: u64 = 1 << 20;

/// A window row: key and window, with the count and the sum of its values.
type WindowRow = ((u32, Window), (i64, i64));
/// A join row: key, then id and value.
type JoinRow = (u32, (u32, u64));
/// A pair's rank: score, then left id.
type Rank = (u64, u32);

fn score(left: u64, right: u64) -> u64 {
    left * right % MODULUS
}

/// A CSV file being written.
struct Csv(BufWriter<File>, PathBuf);

impl Csv {
    fn create(dir: &Path, name: &str, header: &str) -> Csv {
        let path = dir.join(name);
        let mut file = BufWriter::new(File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        writeln!(file, "{header}").expect("write");
        Csv(file, path)
    }

    fn row(&mut self, fields: &[&dyn Display]) {
        let line: Vec<String> = fields.iter().map(|field| field.to_string()).collect();
        writeln!(self.0, "{}", line.join(",")).unwrap_or_else(|e| panic!("{}: {e}", self.1.display()));
    }
}

impl Drop for Csv {
    fn drop(&mut self) {
        self.0.flush().unwrap_or_else(|e| panic!("{}: {e}", self.1.display()));
    }
}

/// The rows of a generated CSV file, whose header must be `header`.
fn read(dir: &Path, name: &str, header: &str) -> Vec<Vec<i64>> {
    let path = dir.join(name);
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e} (generate the files first)", path.display()));
    let mut lines = BufReader::new(file).lines().map(|line| line.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    assert_eq!(lines.next().as_deref(), Some(header), "{}: header", path.display());
    lines
        .map(|line| line.split(',').map(|field| field.parse().unwrap_or_else(|e| panic!("{}: {line}: {e}", path.display()))).collect())
        .collect()
}

/// `rows` grouped by their first column (the batch; the files are in batch order).
fn batches<T>(rows: &[Vec<i64>], mut item: impl FnMut(&[i64]) -> T) -> Vec<Vec<T>> {
    let mut grouped: Vec<Vec<T>> = Vec::new();
    let mut last = None;
    for row in rows {
        if last != Some(row[0]) {
            grouped.push(Vec::new());
            last = Some(row[0]);
        }
        grouped.last_mut().expect("a batch").push(item(&row[1..]));
    }
    grouped
}

fn window_start(time: EventTime) -> EventTime {
    TUMBLING.assign(time)[0].start
}

/// Writes the window workload of `insertions` insertions and its expected final windows.
fn generate_windows(dir: &Path, insertions: usize) -> usize {
    let phases = workload(insertions, insertions / 5);
    let mut file = Csv::create(dir, "windows.csv", "batch,diff,id,key,time,value");
    let mut windows: BTreeMap<(u32, EventTime), (i64, i64)> = BTreeMap::new();
    let mut apply = |batch: usize, diff: i64, event: &Event| {
        file.row(&[&batch, &diff, &event.id, &event.group, &event.time, &event.value]);
        let window = windows.entry((event.group, window_start(event.time))).or_default();
        *window = (window.0 + diff, window.1 + diff * event.value);
    };
    let epochs = phases.iter().flat_map(|phase| &phase.epochs);
    let mut updates = 0;
    for (batch, epoch) in epochs.enumerate() {
        for change in &epoch.changes {
            updates += change.updates();
            match change {
                Change::Insert(event) => apply(batch, 1, event),
                Change::Revise { old, new } => {
                    apply(batch, -1, old);
                    apply(batch, 1, new);
                }
            }
        }
    }
    let mut expected = Csv::create(dir, "windows.expected.csv", "key,start,count,sum");
    for ((key, start), (count, sum)) in windows.into_iter().filter(|(_, (count, _))| *count > 0) {
        expected.row(&[&key, &start, &count, &sum]);
    }
    updates
}

/// Writes the join workload of `left` left rows and its expected top pairs.
fn generate_join(dir: &Path, left: usize) -> (usize, usize) {
    let (keys, right) = (left / 3, left / 10);
    assert!(right > 0 && left < u32::MAX as usize, "the join needs 10 to 2^32 left rows");
    let mut rng = Rng::new(11);
    let left_rows: Vec<(u32, u64)> = (0..left).map(|_| (rng.below(keys as u64) as u32, rng.below(VALUES))).collect();
    let mut right_keys: Vec<u32> = (0..keys as u32).collect();
    rng.shuffle(&mut right_keys);
    let right_rows: Vec<(u32, u64)> = right_keys[..right].iter().map(|key| (*key, rng.below(VALUES))).collect();
    for (name, rows) in [("join.left.csv", &left_rows), ("join.right.csv", &right_rows)] {
        let mut file = Csv::create(dir, name, "batch,id,key,value");
        for (id, (key, value)) in rows.iter().enumerate() {
            file.row(&[&(id * BATCHES / rows.len()), &id, key, value]);
        }
    }
    let mut by_key: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    for (id, (key, value)) in left_rows.iter().enumerate() {
        by_key.entry(*key).or_default().push((id as u32, *value));
    }
    let mut tops: Vec<(u32, Rank)> = right_rows
        .iter()
        .filter_map(|(key, right)| {
            let lefts = by_key.get(key)?;
            Some((*key, lefts.iter().map(|(id, left)| (score(*left, *right), *id)).max().expect("a left row")))
        })
        .collect();
    tops.sort();
    let mut expected = Csv::create(dir, "join.expected.csv", "key,left_id,score");
    for (key, (score, id)) in tops {
        expected.row(&[&key, &id, &score]);
    }
    (left, right)
}

fn generate(dir: &Path, rows: usize) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let updates = generate_windows(dir, rows);
    let (left, right) = generate_join(dir, rows);
    println!(
        "generated {}: windows {updates} updates ({rows} insertions, {} revisions), join {left} left and {right} right rows",
        dir.display(),
        rows / 5
    );
}

/// How the batches are fed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feeding {
    /// Each batch once the output is complete for the one before, as a stream arrives.
    Paced,
    /// Every batch at once, then the output is awaited, as Pathway's tables with times arrive.
    Queued,
}

impl Feeding {
    /// The engine the report line names.
    fn engine(self) -> &'static str {
        match self {
            Feeding::Paced => "citeflow",
            Feeding::Queued => "citeflow-queued",
        }
    }
}

/// Feeds the batches (`feed(i)` inserts batch `i` and advances the inputs past it); the
/// seconds from the first input until the output is complete for the last batch.
fn timed(worker: &mut Worker, probe: &ProbeHandle<u64>, batches: usize, feeding: Feeding, mut feed: impl FnMut(usize)) -> f64 {
    let clock = Instant::now();
    for batch in 0..batches {
        feed(batch);
        if feeding == Feeding::Paced {
            let next = batch as u64 + 1;
            worker.step_while(|| probe.less_than(&next));
        }
    }
    let last = batches as u64;
    worker.step_while(|| probe.less_than(&last));
    clock.elapsed().as_secs_f64()
}

/// Prints the report line, after checking that the output is the expected one.
fn report<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    engine: &str,
    workload: &str,
    events: usize,
    seconds: f64,
    got: BTreeMap<K, V>,
    expected: BTreeMap<K, V>,
) {
    if got != expected {
        let wrong: Vec<_> = expected.iter().filter(|(key, value)| got.get(key) != Some(value)).take(3).collect();
        let extra: Vec<_> = got.keys().filter(|key| !expected.contains_key(key)).take(3).collect();
        panic!("{workload}: wrong output ({} entries, {} expected): expected {wrong:?}, unexpected {extra:?}", got.len(), expected.len());
    }
    println!("peers-{engine}: {workload} events {events} seconds {seconds:.3} events_per_s {:.0}", events as f64 / seconds);
}

/// The rows present once the diffs of their changes are added up.
fn present<D: Ord>(mut changes: Vec<(D, isize)>, workload: &str) -> impl Iterator<Item = D> {
    consolidate(&mut changes);
    assert!(changes.iter().all(|(_, diff)| *diff == 1), "{workload}: an output row with a multiplicity other than 1");
    changes.into_iter().map(|(row, _)| row)
}

fn run_windows(dir: &Path, feeding: Feeding) {
    let rows = read(dir, "windows.csv", "batch,diff,id,key,time,value");
    let events = rows.len();
    let input: Vec<Vec<(Record, isize)>> = batches(&rows, |row| ((row[2] as u32, (row[3], row[4])), row[0] as isize));
    drop(rows);
    let expected = read(dir, "windows.expected.csv", "key,start,count,sum");
    let expected = expected.iter().map(|row| ((row[0] as u32, row[1]), (row[2], row[3]))).collect();
    let (seconds, changes) = timely::execute_directly(move |worker| {
        let output = Rc::new(RefCell::new(Vec::<(WindowRow, isize)>::new()));
        let sink = output.clone();
        let (mut records, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (records, collection) = scope.new_collection::<Record, isize>();
            let probe = window_aggregate(collection, TUMBLING, count_and_sum)
                .inspect(move |(row, _, diff)| sink.borrow_mut().push((*row, *diff)))
                .probe()
                .0;
            (records, probe)
        });
        let seconds = timed(worker, &probe, input.len(), feeding, |batch| {
            for (record, diff) in &input[batch] {
                records.update(*record, *diff);
            }
            records.advance_to(batch as u64 + 1);
            records.flush();
        });
        (seconds, output.take())
    });
    let got = present(changes, "windows").map(|((key, window), totals)| ((key, window.start), totals)).collect();
    report(feeding.engine(), "windows", events, seconds, got, expected);
}

fn run_join(dir: &Path, feeding: Feeding) {
    let header = "batch,id,key,value";
    let (left_rows, right_rows) = (read(dir, "join.left.csv", header), read(dir, "join.right.csv", header));
    let events = left_rows.len() + right_rows.len();
    let row = |row: &[i64]| -> JoinRow { (row[1] as u32, (row[0] as u32, row[2] as u64)) };
    let (left, right) = (batches(&left_rows, row), batches(&right_rows, row));
    assert_eq!(left.len(), right.len(), "as many left batches as right ones");
    drop((left_rows, right_rows));
    let expected = read(dir, "join.expected.csv", "key,left_id,score");
    let expected = expected.iter().map(|row| (row[0] as u32, (row[1] as u32, row[2] as u64))).collect();
    let (seconds, changes) = timely::execute_directly(move |worker| {
        let output = Rc::new(RefCell::new(Vec::<((u32, (Rank, Option<Rank>)), isize)>::new()));
        let sink = output.clone();
        let (mut lefts, mut rights, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (lefts, left) = scope.new_collection::<JoinRow, isize>();
            let (rights, right) = scope.new_collection::<JoinRow, isize>();
            let pairs = left
                .arrange_compact_named("Arrange: left")
                .join_by_batch(right.arrange_compact_named("Arrange: right"), |key, (id, left), (_, right)| {
                    Some((*key, (score(*left, *right), *id)))
                });
            let probe = leaders_by_key(pairs).inspect(move |(row, _, diff)| sink.borrow_mut().push((*row, *diff))).probe().0;
            (lefts, rights, probe)
        });
        let seconds = timed(worker, &probe, left.len(), feeding, |batch| {
            for (side, rows) in [(&mut lefts, &left[batch]), (&mut rights, &right[batch])] {
                for row in rows {
                    side.insert(*row);
                }
                side.advance_to(batch as u64 + 1);
                side.flush();
            }
        });
        (seconds, output.take())
    });
    let got = present(changes, "join").map(|(key, ((score, id), _))| (key, (id, score))).collect();
    report(feeding.engine(), "join", events, seconds, got, expected);
}

/// Runs each workload paced, then queued.
fn run(dir: &Path, workloads: &[fn(&Path, Feeding)]) {
    for workload in workloads {
        for feeding in [Feeding::Paced, Feeding::Queued] {
            workload(dir, feeding);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let rows = std::env::var("PEERS_ROWS").ok().map(|v| v.parse().expect("PEERS_ROWS: a number")).unwrap_or(1_000_000);
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["generate", dir] => generate(Path::new(dir), rows),
        ["windows", dir] => run(Path::new(dir), &[run_windows]),
        ["join", dir] => run(Path::new(dir), &[run_join]),
        [] => {
            let dir = PathBuf::from(std::env::var("PEERS_DATA").unwrap_or_else(|_| "/tmp/citeflow-peers".into()));
            generate(&dir, rows);
            run(&dir, &[run_windows, run_join]);
        }
        _ => {
            eprintln!("usage: peers [generate|windows|join DIR] (see benches/benches/peers.rs)");
            std::process::exit(2);
        }
    }
}
