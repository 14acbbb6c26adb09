//! Decoding Kafka messages: the JSON envelope, typed payloads per event type and schema
//! version (older versions upcast to the current types), upsert keys and tombstones, and
//! the data-quality rules. Anything unusable becomes a [`DeadLetter`] with a reason.

use citeflow_connectors::kafka::source::KafkaMessage;
use citeflow_engine::sink::DeadLetter;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::domain::{PolicyDocument, Publication};
use crate::matching::identifiers::{normalise_doi, normalise_pmcid, normalise_pmid};
use crate::references::split_reference_section;
use citeflow_engine::timestamps::{format_rfc3339, parse_rfc3339, LATEST_RFC3339};

/// Event type of publication records.
pub const PUBLICATION_EVENT: &str = "publication";
/// Event type of policy documents.
pub const DOCUMENT_EVENT: &str = "policy_document";
/// The schema version this build writes.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

/// A decoded input: an upsert (or, with `None`, a deletion) of one entity.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A publication was set or deleted.
    Publication(String, Option<Publication>),
    /// A policy document was set or deleted.
    Document(String, Option<PolicyDocument>),
}

/// What decoding needs to know: which event type each input topic carries, and how far
/// ahead event times may be.
#[derive(Clone, Debug)]
pub struct TopicRoles {
    /// Topic of publication records.
    pub publications: String,
    /// Topic of policy documents.
    pub documents: String,
    /// The bound on event times ahead of the clock.
    pub future: FutureEventTime,
}

/// What happens to a document whose event time is too far ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuturePolicy {
    /// Dead-lettered with reason `future_event_time`.
    DeadLetter,
    /// Its `published_at` is set to the bound.
    Clamp,
}

/// The bound on a document's event time: at most `ahead_ms` after its message's timestamp (the
/// time it was produced or appended; the wall clock when it has none). Measured against the
/// message, not the wall clock at reading, so a replay decides the same. Without a bound one
/// document dated `2999-01-01` would move the watermark there for good and close every period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FutureEventTime {
    /// How far ahead, in milliseconds.
    pub ahead_ms: i64,
    /// What happens beyond it.
    pub policy: FuturePolicy,
}

impl Default for FutureEventTime {
    fn default() -> Self {
        FutureEventTime { ahead_ms: 86_400_000, policy: FuturePolicy::DeadLetter }
    }
}

impl FutureEventTime {
    /// Applies the bound to `document`, read from `message`.
    fn apply(&self, document: &mut PolicyDocument, message: &KafkaMessage) -> Result<(), Rejection> {
        let clock = message.timestamp.filter(|t| *t > 0).unwrap_or_else(|| citeflow_engine::time::wall_clock_ms() as i64);
        let bound = clock.saturating_add(self.ahead_ms).min(LATEST_RFC3339);
        let Some(published) = parse_rfc3339(&document.published_at) else { return Ok(()) };
        match (published > bound, self.policy) {
            (false, _) => Ok(()),
            (true, FuturePolicy::DeadLetter) => Err(reject(
                "future_event_time",
                format!(
                    "published_at {} is beyond {} (the message's time plus the allowed lead)",
                    document.published_at,
                    format_rfc3339(bound)
                ),
            )),
            (true, FuturePolicy::Clamp) => {
                document.published_at = format_rfc3339(bound);
                Ok(())
            }
        }
    }
}

/// The envelope, with its payload as `P`: left as text (`&RawValue`, a borrowed slice of the
/// message) to be checked field by field, or decoded in place as its typed record.
#[derive(Deserialize)]
struct Envelope<P> {
    event_type: Option<String>,
    schema_version: Option<Value>,
    payload: Option<P>,
}

/// The payload of `bytes` as `P`, if `bytes` is an envelope of event type `expected` and the
/// current schema version whose payload decodes as `P`: one pass over the message, where the
/// checked envelope ([`enveloped`]) reads the payload once to find its end and once more to
/// decode it. The payload is decoded where it stands, before or after the other fields (the
/// topic says what it should be). `None` for any other message: not UTF-8 (the checked envelope
/// refuses a payload that is not, even where `P` ignores it), a field missing or repeated,
/// another event type or version, a payload that does not decode.
fn in_place<P: DeserializeOwned>(bytes: &[u8], expected: &str) -> Option<P> {
    let envelope: Envelope<P> = serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()?;
    let current = matches!(&envelope.schema_version, Some(Value::Number(n)) if n.as_u64() == Some(u64::from(CURRENT_SCHEMA_VERSION)));
    (envelope.event_type.as_deref() == Some(expected) && current).then_some(envelope.payload).flatten()
}

/// The payload of the envelope `bytes`, of event type `expected`, as `P`: read in place when
/// the envelope and its payload are valid ([`in_place`]); otherwise the envelope is checked
/// field by field and `parse` decodes its payload, to say why the message is refused.
fn payload<P: DeserializeOwned>(
    bytes: &[u8],
    topic: &str,
    expected: &'static str,
    parse: impl FnOnce(&RawValue) -> Result<P, Rejection>,
) -> Result<P, Rejection> {
    match in_place(bytes, expected) {
        Some(payload) => Ok(payload),
        None => parse(enveloped(bytes, topic, expected)?),
    }
}

/// The payload of the envelope `bytes`, once its event type (`expected` on `topic`) and schema
/// version are checked.
fn enveloped<'a>(bytes: &'a [u8], topic: &str, expected: &str) -> Result<&'a RawValue, Rejection> {
    let envelope: Envelope<&RawValue> =
        serde_json::from_slice(bytes).map_err(|e| reject("invalid_json", format!("not a JSON envelope: {e}")))?;
    let event_type = envelope.event_type.ok_or_else(|| reject("missing_field", "event_type is missing"))?;
    let version = match envelope.schema_version {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| reject("unsupported_schema_version", format!("schema_version {n}")))?,
        Some(other) => return Err(reject("unsupported_schema_version", format!("schema_version {other}"))),
        None => return Err(reject("missing_field", "schema_version is missing")),
    };
    let payload = envelope.payload.ok_or_else(|| reject("missing_field", "payload is missing"))?;
    if event_type != PUBLICATION_EVENT && event_type != DOCUMENT_EVENT {
        return Err(reject("unknown_event_type", format!("event_type `{event_type}`")));
    }
    if event_type != expected {
        return Err(reject("wrong_topic", format!("event_type `{event_type}` does not belong on {topic}")));
    }
    if version != u64::from(CURRENT_SCHEMA_VERSION) {
        return Err(reject("unsupported_schema_version", format!("{event_type} schema_version {version}")));
    }
    Ok(payload)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EpmcAuthor {
    #[serde(rename = "LastName")]
    last_name: Option<String>,
    #[serde(rename = "CollectiveName")]
    collective_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EpmcRecordV1 {
    pmid: Option<String>,
    pmcid: Option<String>,
    doi: Option<String>,
    title: Option<String>,
    #[serde(default)]
    authors: Option<Vec<EpmcAuthor>>,
    journal_title: Option<String>,
    #[serde(rename = "journalISOAbbreviation")]
    journal_iso_abbreviation: Option<String>,
    journal_volume: Option<String>,
    issue: Option<String>,
    pub_year: Option<Value>,
    page_info: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ReferencesV1 {
    List(Vec<String>),
    Section(String),
}

#[derive(Deserialize)]
struct PolicyDocumentV1 {
    id: String,
    organisation: String,
    title: String,
    url: Option<String>,
    published_at: String,
    references: ReferencesV1,
}

/// Why a message was rejected, before it is wrapped into a dead letter.
struct Rejection {
    reason: &'static str,
    detail: String,
}

fn reject(reason: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection { reason, detail: detail.into() }
}

/// The longest id, DOI, PMCID or organisation, in bytes: they are keys of indexed columns, and
/// PostgreSQL refuses an index entry above about 2.7 KB; real ones are below 200.
pub const MAX_KEY_BYTES: usize = 512;
/// The most references one document may carry (the largest real reports cite a few thousand).
pub const MAX_REFERENCES: usize = 10_000;
/// References longer than this are cut (at a character boundary): a real one is under 1 KB, and
/// matching costs grow with the length.
pub const MAX_REFERENCE_BYTES: usize = 4_096;
/// Other text (titles, journal names, volumes, pages, URLs) is cut to this many bytes: the
/// longest real titles are a few hundred, and every publication's title, authors and journal
/// feed one full-text index entry (PostgreSQL's `tsvector` holds at most 1 MB).
pub const MAX_TEXT_BYTES: usize = 2_048;
/// A publication keeps at most this many authors (large collaborations list a few thousand;
/// matching reads the first few).
pub const MAX_AUTHORS: usize = 5_000;

/// Refuses a key-like value longer than [`MAX_KEY_BYTES`], or holding a control character
/// (PostgreSQL drops NUL from text, so `a\0b` would be stored as another id, `ab`; other control
/// characters are never part of a real id and break the tools that print ids).
fn bounded(field: &str, value: &str) -> Result<(), Rejection> {
    if value.len() > MAX_KEY_BYTES {
        return Err(reject("too_large", format!("{field} has {} bytes; at most {MAX_KEY_BYTES}", value.len())));
    }
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(reject("invalid_field", format!("{field} holds the control character {:?}", c))),
        None => Ok(()),
    }
}

/// Text cut to [`MAX_TEXT_BYTES`], trimmed, `None` when empty.
fn text(value: Option<String>) -> Option<String> {
    non_empty(value).map(|v| truncated(v, MAX_TEXT_BYTES))
}

/// `text` cut to at most `limit` bytes at a character boundary.
fn truncated(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let cut = (0..=limit).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
    }
    text
}

/// `value` trimmed; a value without spaces around it is kept as it is, not copied.
fn trimmed(value: String) -> String {
    let trimmed = value.trim();
    if trimmed.len() == value.len() {
        value
    } else {
        trimmed.to_string()
    }
}

/// `value` trimmed, `None` when empty.
fn non_empty(value: Option<String>) -> Option<String> {
    Some(trimmed(value?)).filter(|value| !value.is_empty())
}

fn year_of(value: Option<Value>) -> Result<Option<i32>, Rejection> {
    let year = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().get(..4).and_then(|y| y.parse().ok()),
        Some(_) => None,
    };
    match year {
        Some(y) if (1000..=2200).contains(&y) => Ok(Some(y as i32)),
        _ => Err(reject("invalid_field", "pubYear is not a year")),
    }
}

fn parse_publication_v1(payload: &RawValue) -> Result<EpmcRecordV1, Rejection> {
    serde_json::from_str(payload.get()).map_err(|e| reject("invalid_field", format!("publication payload: {e}")))
}

fn publication_v1(record: EpmcRecordV1) -> Result<Publication, Rejection> {
    let pmid =
        non_empty(record.pmid).map(|p| normalise_pmid(&p).ok_or_else(|| reject("invalid_field", "pmid is not a number"))).transpose()?;
    let pmcid =
        non_empty(record.pmcid).map(|p| normalise_pmcid(&p).ok_or_else(|| reject("invalid_field", "pmcid is malformed"))).transpose()?;
    // A malformed DOI (PubMed has a few, e.g. "10.103/…") loses the DOI, not the record.
    let doi = non_empty(record.doi).and_then(|d| normalise_doi(&d));
    for (field, value) in [("pmid", &pmid), ("pmcid", &pmcid), ("doi", &doi)] {
        bounded(field, value.as_deref().unwrap_or_default())?;
    }
    let id = pmid
        .clone()
        .or_else(|| pmcid.clone())
        .or_else(|| doi.clone())
        .ok_or_else(|| reject("missing_field", "a publication needs a pmid, pmcid or doi"))?;
    let authors = record
        .authors
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| non_empty(a.last_name).or_else(|| non_empty(a.collective_name)))
        .map(|name| truncated(name, MAX_KEY_BYTES))
        .take(MAX_AUTHORS)
        .collect();
    Ok(Publication {
        id,
        pmid,
        pmcid,
        doi,
        title: text(record.title),
        authors,
        journal_title: text(record.journal_title),
        journal_abbreviation: text(record.journal_iso_abbreviation),
        volume: text(record.journal_volume),
        issue: text(record.issue),
        year: year_of(record.pub_year)?,
        pages: text(record.page_info),
    })
}

fn parse_document_v1(payload: &RawValue) -> Result<PolicyDocumentV1, Rejection> {
    serde_json::from_str(payload.get()).map_err(|e| {
        let message = e.to_string();
        let reason = if message.starts_with("missing field") { "missing_field" } else { "invalid_field" };
        reject(reason, format!("policy document payload: {message}"))
    })
}

fn document_v1(raw: PolicyDocumentV1) -> Result<PolicyDocument, Rejection> {
    // What `parse_rfc3339` accepts (years 1 to 9999 in UTC) is what PostgreSQL's `timestamptz` holds.
    let published = parse_rfc3339(&raw.published_at).ok_or_else(|| {
        reject("invalid_field", format!("published_at `{}` is not an RFC 3339 date in years 1 to 9999", raw.published_at))
    })?;
    let references: Vec<String> = match raw.references {
        ReferencesV1::List(list) => list.into_iter().map(trimmed).filter(|r| !r.is_empty()).collect(),
        ReferencesV1::Section(section) => split_reference_section(&section),
    };
    if references.len() > MAX_REFERENCES {
        return Err(reject("too_large", format!("{} references; at most {MAX_REFERENCES} per document", references.len())));
    }
    let organisation = trimmed(raw.organisation);
    bounded("organisation", &organisation)?;
    Ok(PolicyDocument {
        id: trimmed(raw.id),
        organisation,
        title: truncated(trimmed(raw.title), MAX_TEXT_BYTES),
        url: text(raw.url),
        published_at: format_rfc3339(published),
        references: references.into_iter().map(|r| truncated(r, MAX_REFERENCE_BYTES)).collect(),
    })
}

fn decode_event(message: &KafkaMessage, roles: &TopicRoles) -> Result<Event, Rejection> {
    let key = match message.key.as_deref().map(std::str::from_utf8) {
        Some(Err(error)) => return Err(reject("invalid_field", format!("the key is not UTF-8: {error}"))),
        Some(Ok(key)) => key.trim().to_string(),
        None => String::new(),
    };
    if key.is_empty() {
        return Err(reject("empty_id", "the message has no key"));
    }
    bounded("the key", &key)?;
    let is_publications = message.topic == roles.publications;
    let Some(bytes) = &message.payload else {
        return Ok(if is_publications { Event::Publication(key, None) } else { Event::Document(key, None) });
    };
    let event = if is_publications {
        let publication = publication_v1(payload(bytes, &message.topic, PUBLICATION_EVENT, parse_publication_v1)?)?;
        Event::Publication(publication.id.clone(), Some(publication))
    } else {
        let mut document = document_v1(payload(bytes, &message.topic, DOCUMENT_EVENT, parse_document_v1)?)?;
        roles.future.apply(&mut document, message)?;
        if document.id.is_empty() {
            return Err(reject("empty_id", "the document id is empty"));
        }
        Event::Document(document.id.clone(), Some(document))
    };
    let id = match &event {
        Event::Publication(id, _) | Event::Document(id, _) => id,
    };
    if *id != key {
        return Err(reject("key_mismatch", format!("key `{key}` but payload id `{id}`")));
    }
    Ok(event)
}

/// Decodes one message read from `roles`' topics.
pub fn decode(message: KafkaMessage, roles: &TopicRoles) -> Result<(Event, KafkaMessage), DeadLetter> {
    match decode_event(&message, roles) {
        Ok(event) => Ok((event, message)),
        Err(Rejection { reason, detail }) => Err(DeadLetter {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            reason: reason.to_string(),
            detail,
            key: message.key,
            payload: message.payload,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> TopicRoles {
        TopicRoles { publications: "pubs".into(), documents: "docs".into(), future: FutureEventTime::default() }
    }

    fn message(topic: &str, key: &str, payload: Option<&str>) -> KafkaMessage {
        KafkaMessage {
            topic: topic.into(),
            partition: 0,
            offset: 7,
            key: Some(key.as_bytes().to_vec()),
            payload: payload.map(|p| p.as_bytes().to_vec()),
            timestamp: Some(1_700_000_000_000),
        }
    }

    fn reason(topic: &str, key: &str, payload: &str) -> String {
        decode(message(topic, key, Some(payload)), &roles()).unwrap_err().reason
    }

    #[test]
    fn event_times_far_ahead_of_their_message_are_dead_lettered_or_clamped() {
        let document = |published_at: &str| {
            format!(
                r#"{{"event_type":"policy_document","schema_version":1,"payload":{{"id":"d","organisation":"WHO","title":"T","published_at":"{published_at}","references":[]}}}}"#
            )
        };
        let within = decode(message("docs", "d", Some(&document("2023-11-15T10:00:00Z"))), &roles());
        assert!(within.is_ok(), "less than a day after the message's time");
        assert_eq!(reason("docs", "d", &document("2999-01-01T00:00:00Z")), "future_event_time");
        let clamping = TopicRoles { future: FutureEventTime { ahead_ms: 3_600_000, policy: FuturePolicy::Clamp }, ..roles() };
        let (event, _) = decode(message("docs", "d", Some(&document("2999-01-01T00:00:00Z"))), &clamping).unwrap();
        let Event::Document(_, Some(document)) = event else { panic!("a document") };
        assert_eq!(document.published_at, format_rfc3339(1_700_000_000_000 + 3_600_000));
    }

    #[test]
    fn a_publication_decodes_and_its_id_is_the_pmid() {
        let payload = r#"{"event_type":"publication","schema_version":1,"payload":{"pmid":"0123","doi":"10.1000/X","title":"T","authors":[{"LastName":"Doe"},{"CollectiveName":"WHO"}],"pubYear":1977,"pageInfo":"1-2"}}"#;
        let (event, _) = decode(message("pubs", "123", Some(payload)), &roles()).unwrap();
        let Event::Publication(id, Some(publication)) = event else { panic!("{event:?}") };
        assert_eq!(id, "123");
        assert_eq!(publication.doi.as_deref(), Some("10.1000/x"));
        assert_eq!(publication.authors, vec!["Doe", "WHO"]);
        assert_eq!(publication.year, Some(1977));
    }

    #[test]
    fn values_postgresql_would_refuse_are_dead_lettered_or_normalised() {
        let document = |id: &str, organisation: &str, published_at: &str, references: &str| {
            format!(
                r#"{{"event_type":"policy_document","schema_version":1,"payload":{{"id":"{id}","organisation":"{organisation}","title":"T","published_at":"{published_at}","references":{references}}}}}"#
            )
        };
        assert_eq!(reason("docs", "d", &document("d", "WHO", "0000-06-15T00:00:00Z", "[]")), "invalid_field", "year 0");
        assert_eq!(reason("docs", "d", &document("d", "WHO", "2020-06-15T00:00:00+24:00", "[]")), "invalid_field");
        let long = "x".repeat(6_000);
        assert_eq!(reason("docs", &long, &document(&long, "WHO", "2020-06-15", "[]")), "too_large", "a 6,000-byte id");
        assert_eq!(reason("docs", "d", &document("d", &long, "2020-06-15", "[]")), "too_large", "a 6,000-byte organisation");
        let many = format!("[{}]", vec!["\"r\""; MAX_REFERENCES + 1].join(","));
        assert_eq!(reason("docs", "d", &document("d", "WHO", "2020-06-15", &many)), "too_large");

        let huge = format!(r#"["{}é"]"#, "a".repeat(MAX_REFERENCE_BYTES - 1));
        let payload = document("d", "WHO", "2020-06-15T10:00:00+15:30", &huge);
        let (event, _) = decode(message("docs", "d", Some(&payload)), &roles()).unwrap();
        let Event::Document(_, Some(document)) = event else { panic!() };
        assert_eq!(document.published_at, "2020-06-14T18:30:00.000Z", "stored in UTC, whatever the offset");
        assert_eq!(document.references[0].len(), MAX_REFERENCE_BYTES - 1, "cut before the character that crosses the limit");
    }

    #[test]
    fn ids_that_would_be_stored_as_other_ids_are_dead_lettered() {
        let document = |id: &str| {
            format!(
                r#"{{"event_type":"policy_document","schema_version":1,"payload":{{"id":"{id}","organisation":"WHO","title":"T","published_at":"2020-06-15","references":[]}}}}"#
            )
        };
        let mut not_utf8 = message("docs", "d", Some(&document("d")));
        not_utf8.key = Some(vec![b'd', 0xff]);
        assert_eq!(decode(not_utf8, &roles()).unwrap_err().reason, "invalid_field", "a key that is not UTF-8");
        assert_eq!(reason("docs", "a\u{0}b", &document("a\\u0000b")), "invalid_field", "NUL, which PostgreSQL would drop");
        assert_eq!(reason("docs", "a\u{1b}[31mb", &document("a\\u001b[31mb")), "invalid_field", "a terminal escape");
        let publication = r#"{"event_type":"publication","schema_version":1,"payload":{"pmid":"1","doi":"10.1000/a\u0000b"}}"#;
        let (event, _) = decode(message("pubs", "1", Some(publication)), &roles()).unwrap();
        assert!(
            matches!(event, Event::Publication(_, Some(Publication { doi: None, .. }))),
            "a DOI with a NUL is dropped, the record kept"
        );
    }

    #[test]
    fn long_text_is_cut_and_author_lists_bounded() {
        let title = "t".repeat(100_000);
        let authors = vec![r#"{"LastName":"Doe"}"#; MAX_AUTHORS + 10].join(",");
        let payload = format!(
            r#"{{"event_type":"publication","schema_version":1,"payload":{{"pmid":"1","title":"{title}","journalTitle":"{title}","authors":[{authors}]}}}}"#
        );
        let (event, _) = decode(message("pubs", "1", Some(&payload)), &roles()).unwrap();
        let Event::Publication(_, Some(publication)) = event else { panic!() };
        assert_eq!(publication.title.map(|t| t.len()), Some(MAX_TEXT_BYTES));
        assert_eq!(publication.journal_title.map(|t| t.len()), Some(MAX_TEXT_BYTES));
        assert_eq!(publication.authors.len(), MAX_AUTHORS);
    }

    #[test]
    fn text_around_a_documents_fields_is_trimmed() {
        let payload = r#"{"event_type":"policy_document","schema_version":1,"payload":{"id":" d ","organisation":"o ","title":" t","published_at":"2020-01-01T00:00:00Z","references":[" a ","b","  "]}}"#;
        let Ok((Event::Document(id, Some(document)), _)) = decode(message("docs", "d", Some(payload)), &roles()) else {
            panic!("a document")
        };
        assert_eq!((id.as_str(), document.organisation.as_str(), document.title.as_str()), ("d", "o", "t"));
        assert_eq!(document.references, ["a", "b"]);
    }

    #[test]
    fn a_tombstone_deletes() {
        let (event, _) = decode(message("docs", "d1", None), &roles()).unwrap();
        assert_eq!(event, Event::Document("d1".into(), None));
    }

    #[test]
    fn a_raw_reference_section_is_split() {
        let payload = r#"{"event_type":"policy_document","schema_version":1,"payload":{"id":"d","organisation":"WHO","title":"T","published_at":"2020-01-02","references":"References\n1. First reference here.\n2. Second reference here."}}"#;
        let (event, _) = decode(message("docs", "d", Some(payload)), &roles()).unwrap();
        let Event::Document(_, Some(document)) = event else { panic!() };
        assert_eq!(document.references, vec!["First reference here.", "Second reference here."]);
    }

    /// What decoding `bytes` on `topic` as a publication and as a policy document gives:
    /// through [`payload`], or (`in_place` false) through the checked [`Envelope`] alone.
    fn decoded(bytes: &[u8], topic: &str, in_place: bool) -> [Result<String, (&'static str, String)>; 2] {
        let publication = if in_place {
            payload(bytes, topic, PUBLICATION_EVENT, parse_publication_v1)
        } else {
            enveloped(bytes, topic, PUBLICATION_EVENT).and_then(parse_publication_v1)
        };
        let document = if in_place {
            payload(bytes, topic, DOCUMENT_EVENT, parse_document_v1)
        } else {
            enveloped(bytes, topic, DOCUMENT_EVENT).and_then(parse_document_v1)
        };
        let publication = publication.and_then(publication_v1).map(|p| format!("{p:?}"));
        let document = document.and_then(document_v1).map(|d| format!("{d:?}"));
        [publication, document].map(|result| result.map_err(|Rejection { reason, detail }| (reason, detail)))
    }

    #[test]
    fn a_valid_envelope_is_read_in_place_whatever_the_order_of_its_fields() {
        let read = |bytes: &[u8]| in_place::<EpmcRecordV1>(bytes, PUBLICATION_EVENT);
        let fields = [r#""event_type":"publication""#, r#""schema_version":1"#, r#""payload":{"pmid":"1","title":" T "}"#, r#""x":[1]"#];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let bytes = format!("{{{}}}", order.map(|field| fields[field]).join(","));
            let record = read(bytes.as_bytes()).expect("read in place");
            assert_eq!((record.pmid.as_deref(), record.title.as_deref()), (Some("1"), Some(" T ")));
        }
        let another_version = br#"{"payload":{"pmid":"1"},"event_type":"publication","schema_version":2}"#;
        assert!(read(another_version).is_none());
        assert_eq!(decoded(another_version, "pubs", true), decoded(another_version, "pubs", false));
        // Bytes that are not UTF-8 in a field the record ignores: the payload is refused, an
        // unknown field of the envelope is not.
        for (at, accepted) in [(r#"{"payload":{"pmid":"1","x":"?"},"#, false), (r#"{"x":"?","payload":{"pmid":"1"},"#, true)] {
            let mut bytes = format!(r#"{at}"event_type":"publication","schema_version":1}}"#).into_bytes();
            let question = bytes.iter().position(|b| *b == b'?').expect("a mark");
            bytes[question] = 0xff;
            let [publication, _] = decoded(&bytes, "pubs", true);
            assert_eq!(publication.as_ref().map_err(|(reason, _)| *reason).err(), (!accepted).then_some("invalid_json"));
            assert_eq!(decoded(&bytes, "pubs", true), decoded(&bytes, "pubs", false));
        }
    }

    proptest::proptest! {
        /// Envelopes with their fields in any order, missing or repeated, any event type or
        /// version, valid and invalid payloads: reading in place decodes or refuses each exactly
        /// as the checked envelope does, with the same reason and detail.
        #[test]
        fn reading_in_place_decodes_and_refuses_as_the_checked_envelope_does(
            values in proptest::array::uniform3(proptest::prop_oneof![2 => 0usize..2, 1 => 0usize..6]),
            extra in proptest::collection::vec((0usize..4, 0usize..6, 0usize..5), 0..3),
            swap in proptest::option::of((0usize..5, 0usize..5)),
            trailing in proptest::sample::select(vec!["", " ", " x", "}"]),
            topic in proptest::sample::select(vec!["pubs", "docs"]),
        ) {
            const EVENT_TYPES: [&str; 6] = [r#""publication""#, r#""policy_document""#, r#""nope""#, "null", "1", r#""publ\u0069cation""#];
            const VERSIONS: [&str; 6] = ["1", "2", r#""1""#, "1.0", "null", "-1"];
            const PAYLOADS: [&str; 6] = [
                r#"{"pmid":"12","title":" A title ","authors":[{"LastName":"Smith"}],"pubYear":"2001"}"#,
                r#"{"id":"d","organisation":"o","title":"t","published_at":"2020-01-01T00:00:00Z","references":["a","b"]}"#,
                r#"{"pmid":"x"}"#,
                r#"{"id":"d","title":"t"}"#,
                "null",
                r#"{"pmid":"1","pubYear":{"nested":[1,2]}}"#,
            ];
            let member = |field: usize, value: usize| match field {
                0 => format!(r#""event_type":{}"#, EVENT_TYPES[value]),
                1 => format!(r#""schema_version":{}"#, VERSIONS[value]),
                2 => format!(r#""payload":{}"#, PAYLOADS[value]),
                _ => format!(r#""other{value}":{}"#, PAYLOADS[value]),
            };
            // The order producers write, then fields added (repeated or unknown) and two swapped.
            let mut members: Vec<String> = values.iter().enumerate().map(|(field, &value)| member(field, value)).collect();
            for &(field, value, at) in &extra {
                members.insert(at.min(members.len()), member(field, value));
            }
            if let Some((a, b)) = swap {
                let last = members.len() - 1;
                members.swap(a.min(last), b.min(last));
            }
            let bytes = format!("{{{}}}{trailing}", members.join(","));
            proptest::prop_assert_eq!(decoded(bytes.as_bytes(), topic, true), decoded(bytes.as_bytes(), topic, false));
        }
    }

    #[test]
    fn every_kind_of_bad_message_has_its_reason() {
        assert_eq!(reason("pubs", "1", "{not json"), "invalid_json");
        assert_eq!(reason("pubs", "1", r#"{"event_type":"nope","schema_version":1,"payload":{}}"#), "unknown_event_type");
        assert_eq!(
            reason("pubs", "1", r#"{"event_type":"publication","schema_version":9,"payload":{"pmid":"1"}}"#),
            "unsupported_schema_version"
        );
        assert_eq!(reason("pubs", "1", r#"{"event_type":"publication","schema_version":1,"payload":{"title":"x"}}"#), "missing_field");
        assert_eq!(reason("pubs", "2", r#"{"event_type":"publication","schema_version":1,"payload":{"pmid":"1"}}"#), "key_mismatch");
        assert_eq!(reason("pubs", "1", r#"{"event_type":"policy_document","schema_version":1,"payload":{"pmid":"1"}}"#), "wrong_topic");
        assert_eq!(
            reason(
                "docs",
                "d",
                r#"{"event_type":"policy_document","schema_version":1,"payload":{"id":"d","organisation":"o","title":"t","published_at":"yesterday","references":[]}}"#
            ),
            "invalid_field"
        );
        assert_eq!(
            reason(
                "docs",
                "d",
                r#"{"event_type":"policy_document","schema_version":1,"payload":{"id":"d","title":"t","published_at":"2020-01-01","references":[]}}"#
            ),
            "missing_field"
        );
        let empty = decode(message("docs", " ", Some("{}")), &roles()).unwrap_err();
        assert_eq!(empty.reason, "empty_id");
        assert_eq!(empty.payload.as_deref(), Some(&b"{}"[..]), "the original bytes are kept");
    }
}
