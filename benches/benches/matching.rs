//! Micro-benchmarks of the per-record work of the citation job: decoding, key extraction,
//! parsing a reference for its features, and the features of candidate pairs.

use citeflow_benches::{epmc_records, gold_references, sample_dir};
use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_jobs::envelope::{decode, TopicRoles};
use citeflow_jobs::eval::read_publications;
use citeflow_jobs::loader::{envelope, publication_key, EPMC_FILES};
use citeflow_jobs::matching::bibliographic::reference_locators;
use citeflow_jobs::matching::blocking::reference_keys;
use citeflow_jobs::matching::features::{features, Families, Family, ParsedReference};
use citeflow_jobs::matching::identifiers::find_identifiers;
use citeflow_jobs::matching::indexed::IndexedPublication;
use citeflow_jobs::matching::journals::JournalTable;
use citeflow_jobs::matching::title::reference_title_keys;
use citeflow_jobs::synthetic::{citable, recombined, render, Noise, Rng, STYLES};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The job's allocator: the per-record work allocates, and glibc's allocator costs otherwise.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn references(c: &mut Criterion) {
    let references = gold_references();
    let journals = JournalTable::bundled();
    let mut group = c.benchmark_group("references");
    group.throughput(Throughput::Elements(references.len() as u64));
    group.bench_function("bibliographic_keys", |b| {
        b.iter(|| references.iter().map(|r| reference_locators(r, &journals).keys.len()).sum::<usize>())
    });
    group.bench_function("identifiers", |b| b.iter(|| references.iter().map(|r| find_identifiers(r).len()).sum::<usize>()));
    let located: Vec<_> = references.iter().map(|r| reference_locators(r, &journals)).collect();
    group.bench_function("parse", |b| {
        b.iter(|| references.iter().zip(&located).map(|(r, l)| ParsedReference::located(r, l.clone()).words().all().len()).sum::<usize>())
    });
    let parsed: Vec<_> = references.iter().zip(&located).map(|(r, l)| ParsedReference::located(r, l.clone())).collect();
    group.bench_function("blocking_keys", |b| {
        b.iter(|| references.iter().zip(&located).zip(&parsed).map(|((r, l), p)| reference_keys(r, &l.keys, p).len()).sum::<usize>())
    });
    group
        .bench_function("title_keys", |b| b.iter(|| parsed.iter().map(|p| reference_title_keys(p.words().content()).len()).sum::<usize>()));
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let roles = TopicRoles { publications: "p".into(), documents: "d".into(), future: Default::default() };
    let messages: Vec<KafkaMessage> = epmc_records(2_000)
        .iter()
        .enumerate()
        .map(|(offset, record)| KafkaMessage {
            topic: "p".into(),
            partition: 0,
            offset: offset as i64,
            key: publication_key(record).map(String::into_bytes),
            payload: Some(envelope("publication", "e", record)),
            timestamp: None,
        })
        .collect();
    let mut group = c.benchmark_group("decoding");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("publications", |b| b.iter(|| messages.iter().filter(|m| decode((*m).clone(), &roles).is_ok()).count()));
    group.finish();
}

/// Candidates a reference is paired with in the `features` group: its publication and the next
/// ones in journal order (as blocking finds publications of its journal).
const CANDIDATES: usize = 3;
/// References in the `features` group, each paired with its own run of publications.
const PAIRED: usize = 1_000;

fn candidate_pairs(c: &mut Criterion) {
    let mut rng = Rng::new(7);
    let files: Vec<_> = EPMC_FILES.iter().map(|file| sample_dir().join(file)).collect();
    let seeds: Vec<_> = read_publications(&files).expect("sample").into_iter().filter(citable).collect();
    let mut publications = recombined(&seeds, PAIRED * CANDIDATES, &mut rng);
    publications.sort_by(|a, b| (&a.journal_title, a.year).cmp(&(&b.journal_title, b.year)));
    let records: Vec<IndexedPublication> = publications.iter().map(IndexedPublication::of).collect();
    let journals = JournalTable::bundled();
    let references: Vec<ParsedReference> = (0..PAIRED)
        .map(|n| {
            ParsedReference::of(&render(&publications[CANDIDATES * n], STYLES[n % STYLES.len()], Noise::default(), &mut rng), &journals)
        })
        .collect();
    let families = Families::from_iter([Family::Title]);
    let mut group = c.benchmark_group("features");
    group.throughput(Throughput::Elements((references.len() * CANDIDATES) as u64));
    group.bench_function("pairs", |b| {
        b.iter(|| {
            let pairs =
                references.iter().enumerate().flat_map(|(n, r)| records[CANDIDATES * n..CANDIDATES * (n + 1)].iter().map(move |p| (r, p)));
            pairs.map(|(reference, publication)| u64::from(features(reference, publication, families).title_containment)).sum::<u64>()
        })
    });
    group.finish();
}

criterion_group!(benches, references, decoding, candidate_pairs);
criterion_main!(benches);
