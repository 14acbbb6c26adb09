//! Matching at scale through the dataflow: indexes synthetic publications (by default
//! 1,000,000, derived from the bundled sample by recombining titles and renumbering
//! locators) in epochs of `CITEFLOW_BENCH_BATCH` (100,000), then matches references to them
//! (by default 100,000: half to indexed publications, half to publications outside the
//! index), with the job's default matcher (the bundled learned scorer) on
//! `CITEFLOW_BENCH_WORKERS` workers (1), and the job's allocator (jemalloc).
//!
//! State per publication is the growth of the process's resident memory from before indexing
//! to after it (the generated input is allocated before), once the arrangements have merged
//! (the job's timely configuration: idle merging) for `CITEFLOW_BENCH_SETTLE` seconds (12: longer than
//! jemalloc's ten-second decay of freed pages; the merges of 10M publications take longer).
//!
//!     cargo bench -p citeflow-benches --bench scale
//!     CITEFLOW_BENCH_PUBLICATIONS=200000 CITEFLOW_BENCH_REFERENCES=20000 CITEFLOW_BENCH_WORKERS=2 cargo bench -p citeflow-benches --bench scale
//!
//! The last line is fixed:
//! `scale: publications N references M index_per_s X match_per_s Y bytes_per_publication B`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use citeflow_benches::allocator::{memory, status};
use citeflow_benches::sample_dir;
use citeflow_engine::config::EngineConfig;
use citeflow_engine::metrics::metrics;
use citeflow_engine::worker::timely_config;
use citeflow_jobs::config::CiteflowConfig;
use citeflow_jobs::domain::Publication;
use citeflow_jobs::eval::read_publications;
use citeflow_jobs::loader::EPMC_FILES;
use citeflow_jobs::matching::bibliographic::JournalForms;
use citeflow_jobs::matching::blocking::publication_keys;
use citeflow_jobs::matching::indexed::IndexedPublication;
use citeflow_jobs::matching::journals::JournalTable;
use citeflow_jobs::matching::{candidate_features, decide, score_pairs};
use citeflow_jobs::publications::{entries, take_apart};
use citeflow_jobs::synthetic::{citable, recombined, render, Noise, Rng, STYLES};
use differential_dataflow::input::Input;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let publications = setting("CITEFLOW_BENCH_PUBLICATIONS", 1_000_000);
    let references = setting("CITEFLOW_BENCH_REFERENCES", 100_000);
    let mut rng = Rng::new(7);
    let files: Vec<_> = EPMC_FILES.iter().map(|f| sample_dir().join(f)).collect();
    let seeds: Vec<Publication> = read_publications(&files).expect("sample").into_iter().filter(citable).collect();
    let mut indexed = recombined(&seeds, publications + references / 2, &mut rng);
    let outside = indexed.split_off(publications);
    let texts: Vec<String> = (0..references)
        .map(|n| {
            let publication = if n % 2 == 0 { &indexed[rng.below(indexed.len() as u64) as usize] } else { &outside[n / 2 % outside.len()] };
            render(publication, STYLES[n % STYLES.len()], Noise::default(), &mut rng)
        })
        .collect();
    let sampled = &indexed[..indexed.len().min(10_000)];
    let mut forms = JournalForms::new(Arc::new(JournalTable::bundled()));
    let records: Vec<IndexedPublication> = sampled.iter().map(IndexedPublication::of).collect();
    let keys: usize = sampled.iter().zip(&records).map(|(p, record)| publication_keys(p, record, &mut forms).len()).sum();
    let packed: usize = records.iter().map(IndexedPublication::own_bytes).sum();
    println!(
        "per publication: {:.1} blocking keys, {:.0} bytes of indexed record (without the shared journal names)",
        keys as f64 / sampled.len() as f64,
        packed as f64 / sampled.len() as f64
    );
    let workers = setting("CITEFLOW_BENCH_WORKERS", 1);
    let batch = setting("CITEFLOW_BENCH_BATCH", 100_000).max(1);
    let settle = Duration::from_secs(setting("CITEFLOW_BENCH_SETTLE", 12) as u64);
    let before = memory();
    println!(
        "{} indexed publications, {} references, {workers} worker(s), epochs of {batch}; generated with peak memory {:.2} GiB",
        indexed.len(),
        texts.len(),
        before.peak as f64 / GIB
    );

    let matcher = CiteflowConfig::default().matching.logic().expect("the default matcher (run scripts/services.sh install)").remove(0);
    println!("matcher: {} ({:?})", matcher.name, matcher.scorer);
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let sink = counts.clone();
    let started = Instant::now();
    let timings = Arc::new(Mutex::new(Vec::new()));
    let timing_sink = timings.clone();
    let (indexed, texts) = (Arc::new(indexed), Arc::new(texts));
    let config = timely_config(&EngineConfig { workers, ..EngineConfig::default() });
    timely::execute(config, move |worker| {
        let (sink, timing_sink, matcher) = (sink.clone(), timing_sink.clone(), matcher.clone());
        let (index, peers) = (worker.index(), worker.peers());
        citeflow_engine::introspection::install(worker, metrics());
        let (mut publication_input, mut reference_input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (publication_input, publications) = scope.new_collection::<(String, Publication), isize>();
            let (reference_input, references) = scope.new_collection::<(citeflow_jobs::domain::ReferenceKey, String), isize>();
            let journals = Arc::new(JournalTable::bundled());
            let pairs_sink = sink.clone();
            let pairs = candidate_features(take_apart(entries(publications, journals.clone())).1, references, journals)
                .inspect(move |(_, _, diff)| pairs_sink.lock().unwrap().0 += *diff as usize);
            let decisions_sink = sink.clone();
            let scored = score_pairs(pairs, &matcher.scorer, None).expect("the scorer loads");
            let (probe, _) = decide(scored, matcher.decision, None)
                .inspect(move |(_, _, diff)| decisions_sink.lock().unwrap().1 += *diff as usize)
                .probe();
            (publication_input, reference_input, probe)
        });
        let mut epoch = 0;
        let advance = |worker: &mut timely::worker::Worker,
                       epoch: &mut u64,
                       publication_input: &mut differential_dataflow::input::InputSession<_, _, _>,
                       reference_input: &mut differential_dataflow::input::InputSession<_, _, _>| {
            *epoch += 1;
            publication_input.advance_to(*epoch);
            reference_input.advance_to(*epoch);
            publication_input.flush();
            reference_input.flush();
            worker.step_while(|| probe.less_than(epoch));
        };
        let clock = Instant::now();
        for chunk in indexed.chunks(batch) {
            for publication in chunk.iter().skip(index).step_by(peers) {
                publication_input.insert((publication.id.clone(), publication.clone()));
            }
            advance(worker, &mut epoch, &mut publication_input, &mut reference_input);
        }
        let indexing = clock.elapsed();
        // The arrangements merge what they hold while idle, as in the job (idle merge effort).
        let idle = Instant::now();
        while idle.elapsed() < settle {
            worker.step();
        }
        let indexed_memory = memory();
        if index == 0 {
            print_held("indexed");
        }
        let clock = Instant::now();
        for (number, text) in texts.iter().enumerate().skip(index).step_by(peers) {
            reference_input.insert((("bench".to_string(), number as u32), text.clone()));
        }
        advance(worker, &mut epoch, &mut publication_input, &mut reference_input);
        if index == 0 {
            timing_sink.lock().unwrap().push((indexing, clock.elapsed(), indexed_memory));
            print_held("matched");
        }
    })
    .expect("timely");
    let (indexing, matching, indexed_memory) = timings.lock().unwrap()[0];
    let (pairs, decisions) = *counts.lock().unwrap();
    let per_publication = |after: u64, before: u64| after.saturating_sub(before) as f64 / publications as f64;
    let state = per_publication(indexed_memory.rss, before.rss);
    let (index_rate, match_rate) = (publications as f64 / indexing.as_secs_f64(), references as f64 / matching.as_secs_f64());
    println!("indexing: {:.1}s ({index_rate:.0} publications/s)", indexing.as_secs_f64());
    println!("matching: {:.1}s ({match_rate:.0} references/s)", matching.as_secs_f64());
    println!("candidates per reference: {:.2}; citations: {decisions}", pairs as f64 / references as f64);
    println!(
        "peak memory: {:.2} GiB; resident after indexing {:.2} GiB, after matching {:.2} GiB; {state:.0} bytes per indexed publication (dataflow state)",
        status("VmHWM") as f64 / GIB,
        indexed_memory.rss as f64 / GIB,
        status("VmRSS") as f64 / GIB
    );
    println!(
        "per indexed publication: resident {state:.0} bytes, of which live values {:.0} (jemalloc allocated), their pages {:.0} (active)",
        per_publication(indexed_memory.allocated, before.allocated),
        per_publication(indexed_memory.active, before.active)
    );
    for (seconds, labels) in series("citeflow_operator_busy_seconds_total").into_iter().take(12) {
        println!("busy {seconds:>7.2} s {labels}");
    }
    println!("total {:.1}s", started.elapsed().as_secs_f64());
    println!(
        "scale: publications {publications} references {references} index_per_s {index_rate:.0} match_per_s {match_rate:.0} bytes_per_publication {state:.0}"
    );
}

/// Prints the updates each arrangement of this worker holds, after `phase`.
fn print_held(phase: &str) {
    for (updates, labels) in series("citeflow_arrangement_records").into_iter().filter(|(updates, _)| *updates > 0.0) {
        println!("{phase}: holds {updates:>11.0} updates {labels}");
    }
}

/// The series `name` of the engine's metrics, largest value first, with their labels.
fn series(name: &str) -> Vec<(f64, String)> {
    let mut found: Vec<(f64, String)> = metrics()
        .render()
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((value.parse().ok()?, labels.to_string()))
        })
        .collect();
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    found
}

const GIB: f64 = (1u64 << 30) as f64;
