//! Row encoding (PostgreSQL's COPY text format) and its typed reading: whatever the values, a
//! line has exactly one field per value (no raw tab, newline or carriage return), no NUL byte,
//! and decodes back to the values (without NUL); and any text at all decodes by a schema to
//! values or an error, never a panic.
#![no_main]

use citeflow_engine::rows::{Column, CopyLine, Value, ViewSchema};
use libfuzzer_sys::fuzz_target;

/// Columns in the order the values are written: text, bytes, optional text, …
const WRITTEN: ViewSchema = ViewSchema {
    table: "written",
    columns: &[
        Column::text("a"),
        Column::bytes("b"),
        Column::text("c"),
        Column::text("d"),
        Column::bytes("e"),
        Column::text("f"),
    ],
    key_columns: 1,
};

/// Every kind of column, for text from anywhere.
const MIXED: ViewSchema = ViewSchema {
    table: "mixed",
    columns: &[Column::integer("i"), Column::float("f"), Column::boolean("b"), Column::bytes("x"), Column::text("t")],
    key_columns: 0,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = MIXED.decode(&text);
    let values: Vec<&str> = text.split('\u{1}').take(WRITTEN.columns.len()).collect();
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
    assert_eq!(line.split('\t').count(), values.len());
    let decoded = WRITTEN.decode(&line).expect("a written line decodes");
    assert_eq!(decoded.len(), values.len());
    for (i, ((_, decoded), value)) in decoded.iter().zip(&values).enumerate() {
        let expected = match i % 3 {
            0 => Value::Text(value.replace('\0', "").into()),
            1 => Value::Bytes(value.as_bytes().to_vec()),
            _ if value.is_empty() => Value::Null,
            _ => Value::Text(value.replace('\0', "").into()),
        };
        assert_eq!(*decoded, expected);
    }
});
