//! Envelope decoding: any key and value on either input topic. Decoding never panics, and what
//! it accepts is storable where the job writes it: keys and ids within their limits, event times
//! PostgreSQL can hold, at most so many references of at most so many bytes.
#![no_main]

use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_engine::timestamps::{parse_rfc3339, EARLIEST_RFC3339, LATEST_RFC3339};
use citeflow_jobs::envelope::{decode, Event, TopicRoles, MAX_KEY_BYTES, MAX_REFERENCES, MAX_REFERENCE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let split = rest.iter().position(|b| *b == 0xff).unwrap_or(0);
    let (key, value) = rest.split_at(split);
    let roles = TopicRoles { publications: "p".into(), documents: "d".into(), future: Default::default() };
    let message = KafkaMessage {
        topic: if selector & 1 == 0 { "p".into() } else { "d".into() },
        partition: 0,
        offset: 0,
        key: (selector & 2 == 0).then(|| key.to_vec()),
        payload: (selector & 4 == 0).then(|| value.get(1..).unwrap_or_default().to_vec()),
        timestamp: Some(1_700_000_000_000),
    };
    let Ok((event, _)) = decode(message, &roles) else { return };
    match event {
        Event::Publication(id, publication) => {
            assert!(!id.is_empty() && id.len() <= MAX_KEY_BYTES);
            if let Some(publication) = publication {
                assert!(publication.doi.as_ref().is_none_or(|doi| doi.len() <= MAX_KEY_BYTES));
            }
        }
        Event::Document(id, document) => {
            assert!(!id.is_empty() && id.len() <= MAX_KEY_BYTES);
            if let Some(document) = document {
                assert!(document.organisation.len() <= MAX_KEY_BYTES);
                assert!(document.references.len() <= MAX_REFERENCES);
                assert!(document.references.iter().all(|r| r.len() <= MAX_REFERENCE_BYTES));
                let published = parse_rfc3339(&document.published_at).expect("a stored date parses");
                assert!((EARLIEST_RFC3339..=LATEST_RFC3339).contains(&published), "{}", document.published_at);
            }
        }
    }
});
