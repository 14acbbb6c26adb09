//! Row encoding (PostgreSQL's COPY text format): whatever the values, a line has exactly one
//! field per value (no raw tab, newline or carriage return), no NUL byte, and its text fields
//! decode back to the values without NUL.
#![no_main]

use citeflow_engine::rows::CopyLine;
use libfuzzer_sys::fuzz_target;

/// Decodes one COPY text field.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\u{1}').collect();
    let mut line = CopyLine::default();
    for (i, value) in values.iter().enumerate() {
        match i % 3 {
            0 => line.text(value),
            1 => line.opt_bytes(Some(value.as_bytes())),
            _ => line.opt_text((!value.is_empty()).then_some(value)),
        };
    }
    let line = line.into_text();
    assert!(!line.contains(['\n', '\r', '\0']));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), values.len());
    for (i, (field, value)) in fields.iter().zip(&values).enumerate() {
        if i % 3 == 0 {
            assert_eq!(unescape(field), value.replace('\0', ""));
        }
    }
});
