//! What the job keeps of a publication: the row of the `publications` view, the compact record
//! the features read ([`IndexedPublication`]) and its blocking keys — never the decoded record.
//!
//! An entry is made once per message, before the upsert that keeps the latest per key
//! ([`citeflow_operators::upsert::upsert_keeping`]). The upsert holds an entry [`kept`]: its
//! row stripped to key and digest, which is all a later retraction of the row needs (the view
//! is in PostgreSQL; the dataflow need not hold it too), and its record and keys, which the
//! retraction of its candidate keys needs. So the state of a publication is a few hundred bytes
//! whatever its title, authors and journal, and a restart's replay, which emits every kept
//! value at its end, copies no text. After the upsert, [`take_apart`] moves each part of an
//! entry to the operators that read it (the view's rows, the keys, the record), so no reader
//! gets a clone of a whole entry.
//!
//! [`kept`]: PublicationEntry::kept

use std::sync::Arc;

use citeflow_engine::rows::{CopyLine, Row};
use citeflow_operators::unzip::flat_unzip;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

use crate::domain::Publication;
use crate::matching::bibliographic::JournalForms;
use crate::matching::blocking::{publication_keys, BlockingKey, PublicationKey};
use crate::matching::indexed::{IndexedPublication, JournalNames};
use crate::matching::journals::JournalTable;
use crate::matching::IndexedPublications;
use crate::views::publication_row;

/// One publication as the job keeps it (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicationEntry {
    /// Its row of `publications` (stripped to key and digest once kept).
    pub row: Row,
    /// What the features read.
    pub record: IndexedPublication,
    /// Its blocking keys.
    pub keys: Box<[BlockingKey]>,
}

impl PublicationEntry {
    /// The entry as the upsert holds it: equal to this one, without the row's values.
    pub fn kept(&self) -> Self {
        PublicationEntry { row: self.row.stripped(), record: self.record.clone(), keys: self.keys.clone() }
    }
}

/// Makes entries, sharing journal names among the records it makes.
pub struct EntryMaker {
    forms: JournalForms,
    names: JournalNames,
    scratch: CopyLine,
}

impl EntryMaker {
    /// A maker that reads journal names from `journals`.
    pub fn new(journals: Arc<JournalTable>) -> Self {
        EntryMaker { forms: JournalForms::new(journals), names: JournalNames::default(), scratch: CopyLine::default() }
    }

    /// The entry of `publication`.
    pub fn entry(&mut self, publication: &Publication) -> PublicationEntry {
        let record = IndexedPublication::sharing(publication, &mut self.names);
        PublicationEntry {
            row: publication_row(publication, &mut self.scratch),
            keys: publication_keys(publication, &record, &mut self.forms).into_boxed_slice(),
            record,
        }
    }
}

/// The entries of a collection of publications (for evaluation and benchmarks, which hold
/// publications as a collection; the job makes entries before its upsert).
pub fn entries<'scope, T: Timestamp>(
    publications: VecCollection<'scope, T, (String, Publication)>,
    journals: Arc<JournalTable>,
) -> VecCollection<'scope, T, (String, PublicationEntry)> {
    let mut maker = EntryMaker::new(journals);
    publications.map(move |(id, publication)| {
        let entry = maker.entry(&publication);
        (id, entry)
    })
}

/// `entries` taken apart for their readers, each part moved to its collection rather than
/// every reader getting a clone of every entry: the rows of `publications`, and what matching
/// reads (see [`flat_unzip`]).
pub fn take_apart<'scope, T: Timestamp>(
    entries: VecCollection<'scope, T, (String, PublicationEntry)>,
) -> (VecCollection<'scope, T, Row>, IndexedPublications<'scope, T>) {
    let (rows, indexed) = flat_unzip(entries, "Publication rows", |(id, entry): (String, PublicationEntry)| {
        (Some(entry.row), Some((PublicationKey::of(&id), entry.record, entry.keys)))
    });
    let (keys, records) = flat_unzip(indexed, "Publication keys and records", |(publication, record, keys)| {
        (keys.into_vec().into_iter().map(move |key| (key, publication)), Some((publication, record)))
    });
    (rows, IndexedPublications { keys, records })
}
