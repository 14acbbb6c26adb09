//! Micro-benchmarks of the per-record work of the citation job: decoding, key extraction,
//! parsing a reference for its features.

use citeflow_benches::{epmc_records, gold_references};
use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_jobs::envelope::{decode, TopicRoles};
use citeflow_jobs::loader::{envelope, publication_key};
use citeflow_jobs::matching::bibliographic::reference_locators;
use citeflow_jobs::matching::blocking::reference_keys;
use citeflow_jobs::matching::features::ParsedReference;
use citeflow_jobs::matching::identifiers::find_identifiers;
use citeflow_jobs::matching::journals::JournalTable;
use citeflow_jobs::matching::title::reference_title_keys;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

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

criterion_group!(benches, references, decoding);
criterion_main!(benches);
