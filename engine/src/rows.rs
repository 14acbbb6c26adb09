//! View rows as the sink sees them: one text line per row in PostgreSQL's COPY text format,
//! its primary key being the leading columns.
//!
//! Jobs describe each view with a [`ViewSchema`] and implement [`ViewRow`] for its row type;
//! [`encode`] turns a typed collection into the untyped [`Row`]s that the sink consolidates.

use std::fmt::Write;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

/// Index of a view in the [`ViewSchema`] list handed to the sink.
pub type ViewId = u16;

/// The shape of one view table, enough to stage, delete and upsert its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewSchema {
    /// Table name.
    pub table: &'static str,
    /// Columns written by the sink, in COPY order; the first `key_columns` form the primary key.
    pub columns: &'static [&'static str],
    /// How many leading columns form the primary key.
    pub key_columns: usize,
}

impl ViewSchema {
    /// The primary-key columns.
    pub fn key(&self) -> &'static [&'static str] {
        &self.columns[..self.key_columns]
    }

    /// The columns that are not part of the primary key.
    pub fn values(&self) -> &'static [&'static str] {
        &self.columns[self.key_columns..]
    }

    /// The encoded primary key of an encoded row: its leading key columns.
    pub fn key_of<'a>(&self, line: &'a str) -> &'a str {
        match self.key_columns {
            0 => "",
            n => &line[..line.match_indices('\t').nth(n - 1).map_or(line.len(), |(i, _)| i)],
        }
    }
}

/// One row of one view, encoded: `line` is the COPY text of all its columns, and its first
/// `key_len` bytes are the COPY text of the key columns. One allocation per row, sized exactly:
/// a replay's last epoch brings every row of every view at once, and they must not leave the
/// heap in pieces when they are freed.
///
/// Rows of one view with the same key are adjacent in the order `Row` derives (same view, same
/// `key_len`, and lines that share the key as a prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Row {
    /// Which view.
    pub view: ViewId,
    key_len: u32,
    line: String,
}

impl Row {
    /// The encoded primary key.
    pub fn key(&self) -> &str {
        &self.line[..self.key_len as usize]
    }

    /// The encoded row, owned.
    pub fn into_line(self) -> String {
        self.line
    }

    /// The encoded primary key, owned (in the row's own allocation).
    pub fn into_key(self) -> String {
        let mut line = self.line;
        line.truncate(self.key_len as usize);
        line
    }
}

/// A typed row of a view.
pub trait ViewRow {
    /// Writes the row's columns, key columns first, in the order of the view's schema.
    fn write(&self, line: &mut CopyLine);
}

/// Builds one line of COPY text format: fields separated by tabs, `\N` for NULL, and
/// backslash escapes for backslash, tab, newline and carriage return.
#[derive(Debug, Default)]
pub struct CopyLine {
    text: String,
    fields: usize,
}

impl CopyLine {
    /// Empties the line, keeping its buffer for the next.
    fn clear(&mut self) {
        self.text.clear();
        self.fields = 0;
    }

    fn separate(&mut self) {
        if self.fields > 0 {
            self.text.push('\t');
        }
        self.fields += 1;
    }

    /// The finished line.
    pub fn into_text(self) -> String {
        self.text
    }

    /// Appends a text field.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separate();
        for c in value.chars() {
            match c {
                '\\' => self.text.push_str("\\\\"),
                '\t' => self.text.push_str("\\t"),
                '\n' => self.text.push_str("\\n"),
                '\r' => self.text.push_str("\\r"),
                '\0' => {}
                c => self.text.push(c),
            }
        }
        self
    }

    /// Appends a text field, or NULL.
    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    /// Appends an integer field.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.separate();
        // Writing to a `String` cannot fail.
        let _ = write!(self.text, "{value}");
        self
    }

    /// Appends an integer field, or NULL.
    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.int(value),
            None => self.null(),
        }
    }

    /// Appends a floating-point field (written so that it reads back exactly).
    pub fn float(&mut self, value: f64) -> &mut Self {
        self.separate();
        let _ = write!(self.text, "{value:?}");
        self
    }

    /// Appends a binary (bytea) field in hex form, or NULL.
    pub fn opt_bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        let Some(value) = value else { return self.null() };
        self.separate();
        self.text.push_str("\\\\x");
        for byte in value {
            let _ = write!(self.text, "{byte:02x}");
        }
        self
    }

    /// Appends a boolean field.
    pub fn boolean(&mut self, value: bool) -> &mut Self {
        self.separate();
        self.text.push(if value { 't' } else { 'f' });
        self
    }

    /// Appends a NULL field.
    pub fn null(&mut self) -> &mut Self {
        self.separate();
        self.text.push_str("\\N");
        self
    }
}

/// Encodes one typed row for `view`, whose schema says how many key columns lead the row,
/// building it in `scratch` (whose buffer is kept for the next row).
pub fn encode_row<R: ViewRow>(view: ViewId, schema: &ViewSchema, row: &R, scratch: &mut CopyLine) -> Row {
    scratch.clear();
    row.write(scratch);
    assert_eq!(scratch.fields, schema.columns.len(), "row of {} has the wrong number of columns", schema.table);
    let key_len = u32::try_from(schema.key_of(&scratch.text).len()).expect("a row comes from messages, which Kafka bounds to under 2 GiB");
    Row { view, key_len, line: scratch.text.as_str().to_owned() }
}

/// Turns a collection of typed rows into encoded rows of `view`.
pub fn encode<'scope, T, R>(rows: VecCollection<'scope, T, R>, view: ViewId, schema: &ViewSchema) -> VecCollection<'scope, T, Row>
where
    T: Timestamp,
    R: ViewRow + Clone + 'static,
{
    let schema = schema.clone();
    let mut scratch = CopyLine::default();
    rows.map(move |row| encode_row(view, &schema, &row, &mut scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Example(&'static str, i64, Option<&'static str>);

    impl ViewRow for Example {
        fn write(&self, line: &mut CopyLine) {
            line.text(self.0).int(self.1).opt_text(self.2);
        }
    }

    const SCHEMA: ViewSchema = ViewSchema { table: "example", columns: &["a", "b", "c"], key_columns: 2 };

    #[test]
    fn key_is_the_leading_columns() {
        let mut scratch = CopyLine::default();
        let row = encode_row(3, &SCHEMA, &Example("x\ty", 7, None), &mut scratch);
        assert_eq!(row.key(), "x\\ty\t7");
        assert_eq!(row.clone().into_line(), "x\\ty\t7\t\\N");
        assert_eq!(row.view, 3);
        let next = encode_row(3, &SCHEMA, &Example("z", -1, Some("v")), &mut scratch);
        assert_eq!((next.key(), next.clone().into_line().as_str()), ("z\t-1", "z\t-1\tv"));
        assert_eq!(row.clone().into_key(), "x\\ty\t7");
    }

    #[test]
    fn bytes_are_hex_with_an_escaped_backslash() {
        let mut line = CopyLine::default();
        line.opt_bytes(Some(&[0, 255])).opt_bytes(None);
        assert_eq!(line.text, "\\\\x00ff\t\\N");
    }

    #[test]
    fn special_characters_are_escaped() {
        let row = encode_row(0, &SCHEMA, &Example("a\\b\nc", 1, Some("\r")), &mut CopyLine::default());
        assert_eq!(row.into_line(), "a\\\\b\\nc\t1\t\\r");
    }
}
