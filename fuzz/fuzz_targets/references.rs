//! Reference text: splitting a raw reference section, and everything the matcher extracts from
//! a reference string (identifiers, bibliographic locators, title and author keys, the parsed
//! form the features read). Nothing panics; libFuzzer's `-timeout` catches inputs whose cost
//! grows faster than their length.
#![no_main]

use std::sync::OnceLock;

use citeflow_jobs::matching::bibliographic::reference_locators;
use citeflow_jobs::matching::blocking::reference_keys;
use citeflow_jobs::matching::features::ParsedReference;
use citeflow_jobs::matching::journals::JournalTable;
use citeflow_jobs::references::split_reference_section;
use libfuzzer_sys::fuzz_target;

fn journals() -> &'static JournalTable {
    static JOURNALS: OnceLock<JournalTable> = OnceLock::new();
    JOURNALS.get_or_init(JournalTable::bundled)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for reference in std::iter::once(text.to_string()).chain(split_reference_section(&text)) {
        let mut locators = reference_locators(&reference, journals());
        let bibliographic = std::mem::take(&mut locators.keys);
        let parsed = ParsedReference::located(&reference, locators);
        let _ = reference_keys(&reference, &bibliographic, &parsed);
    }
});
