//! View rows as the sink sees them: one text line per row, its primary key being the leading
//! columns and its last column its digest. The text is tab-separated with backslash escapes
//! and `\N` for NULL (the text format PostgreSQL's COPY reads, so that destination loads it as
//! it is); every destination can read it back as typed values by the view's schema
//! ([`ViewSchema::decode`]).
//!
//! Jobs describe each view with a [`ViewSchema`] and implement [`ViewRow`] for its row type;
//! [`encode`] turns a typed collection into the untyped [`Row`]s that the sink consolidates.
//!
//! Every row carries a digest ([`Row::digest`]): SipHash-1-3 (zero key) of its encoded columns,
//! whose low 16 bits are replaced by the *bucket* of its key, SipHash-1-3 of the encoded key
//! modulo [`BUCKETS`]. The digest is written as the table's last column, [`ROW_DIGEST`], so a
//! destination can say what it holds of a view as one sum of digests per bucket, and a restart
//! compares those sums with the rebuilt view's instead of the rows themselves
//! ([`crate::sink`]). SipHash-1-3 is fixed by its specification: the digests of rows written
//! by one build are those any other build computes.

use std::fmt::Write;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;
use timely::progress::Timestamp;

/// Index of a view in the [`ViewSchema`] list handed to the sink.
pub type ViewId = u16;

/// A bucket of a view's keys: the low 16 bits of a row's digest.
pub type Bucket = u16;

/// How many buckets a view's keys fall into.
pub const BUCKETS: u32 = 1 << Bucket::BITS;

/// The column every table written through a [`ViewSchema`] ends with, after its
/// [`ViewSchema::columns`]: the row's digest (`bigint`).
pub const ROW_DIGEST: &str = "row_digest";

/// The digest of a row whose encoded key is `key` and encoded columns `line` (see the module
/// documentation).
pub fn digest(key: &str, line: &str) -> i64 {
    ((SipHasher13::new().hash(line.as_bytes()) & !u64::from(Bucket::MAX)) | u64::from(key_bucket(key))) as i64
}

/// The bucket of a row whose encoded key is `key`.
pub fn key_bucket(key: &str) -> Bucket {
    (SipHasher13::new().hash(key.as_bytes()) & u64::from(Bucket::MAX)) as Bucket
}

/// The bucket of a digest.
pub fn bucket_of(digest: i64) -> Bucket {
    (digest as u64 & u64::from(Bucket::MAX)) as Bucket
}

/// What a column holds. A destination types its values by it; every kind is written as text
/// by [`CopyLine`] and read back by [`ViewSchema::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text, including dates and times (ISO 8601).
    Text,
    /// A 64-bit integer.
    Integer,
    /// A 64-bit float.
    Float,
    /// A boolean.
    Boolean,
    /// Bytes.
    Bytes,
}

/// One column of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// What it holds.
    pub kind: ColumnKind,
}

impl Column {
    /// A text column.
    pub const fn text(name: &'static str) -> Column {
        Column { name, kind: ColumnKind::Text }
    }

    /// An integer column.
    pub const fn integer(name: &'static str) -> Column {
        Column { name, kind: ColumnKind::Integer }
    }

    /// A floating-point column.
    pub const fn float(name: &'static str) -> Column {
        Column { name, kind: ColumnKind::Float }
    }

    /// A boolean column.
    pub const fn boolean(name: &'static str) -> Column {
        Column { name, kind: ColumnKind::Boolean }
    }

    /// A bytes column.
    pub const fn bytes(name: &'static str) -> Column {
        Column { name, kind: ColumnKind::Bytes }
    }
}

/// The shape of one view, enough for a destination to stage, delete and upsert its rows and
/// to type their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewSchema {
    /// Table name.
    pub table: &'static str,
    /// Columns written by the sink, in row order; the first `key_columns` form the primary key.
    pub columns: &'static [Column],
    /// How many leading columns form the primary key.
    pub key_columns: usize,
}

impl ViewSchema {
    /// The primary-key columns' names.
    pub fn key(&self) -> impl Iterator<Item = &'static str> {
        self.columns[..self.key_columns].iter().map(|column| column.name)
    }

    /// The names of the columns that are not part of the primary key.
    pub fn values(&self) -> impl Iterator<Item = &'static str> {
        self.columns[self.key_columns..].iter().map(|column| column.name)
    }

    /// Every column written, in row order: [`ViewSchema::columns`], then [`ROW_DIGEST`].
    pub fn written(&self) -> impl Iterator<Item = &'static str> {
        self.columns.iter().map(|column| column.name).chain([ROW_DIGEST])
    }

    /// The typed values of an encoded row or key (its leading columns), paired with their
    /// columns; a row's trailing digest is not among them.
    pub fn decode<'a>(&self, line: &'a str) -> Result<Vec<(Column, Value<'a>)>, DecodeError> {
        let mut fields = line.split('\t');
        let mut values = Vec::with_capacity(self.columns.len());
        for column in self.columns {
            let Some(field) = fields.next() else { break };
            values.push((*column, Value::parse(column, field)?));
        }
        if values.len() < self.key_columns {
            return Err(DecodeError::Short { table: self.table, fields: values.len() });
        }
        Ok(values)
    }

    /// The encoded primary key of an encoded row: its leading key columns.
    pub fn key_of<'a>(&self, line: &'a str) -> &'a str {
        match self.key_columns {
            0 => "",
            n => &line[..line.match_indices('\t').nth(n - 1).map_or(line.len(), |(i, _)| i)],
        }
    }
}

/// One row of one view, encoded: `line` is the COPY text of all its columns and its digest,
/// and its first `key_len` bytes are the COPY text of the key columns. One allocation per row,
/// sized exactly: a replay's last epoch brings every row of every view at once, and they must
/// not leave the heap in pieces when they are freed.
///
/// Two rows are equal when their view, key and digest are, and they order by view, key and
/// digest: rows of one view with the same key are adjacent. A row [`Row::stripped`] of its
/// values equals the row it came from, so an operator that must retract a row later (an upsert
/// replacing it) keeps only its key and digest, and the retraction still cancels the row.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Row {
    /// Which view.
    pub view: ViewId,
    key_len: u32,
    line: String,
    digest: i64,
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.view == other.view && self.digest == other.digest && self.key() == other.key()
    }
}

impl Eq for Row {}

impl PartialOrd for Row {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Row {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.view, self.key(), self.digest).cmp(&(other.view, other.key(), other.digest))
    }
}

impl std::hash::Hash for Row {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.view, self.key(), self.digest).hash(state);
    }
}

impl Row {
    /// The encoded primary key.
    pub fn key(&self) -> &str {
        &self.line[..self.key_len as usize]
    }

    /// The row's digest (see the module documentation).
    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// The bucket of the row's key.
    pub fn bucket(&self) -> Bucket {
        bucket_of(self.digest)
    }

    /// The encoded row with its digest, owned.
    pub fn into_line(self) -> String {
        self.line
    }

    /// The length of the row's text: less for a row [`Row::stripped`] than for the row.
    pub fn text_len(&self) -> usize {
        self.line.len()
    }

    /// The row with its key and digest only: equal to this row, and all a retraction of it needs.
    pub fn stripped(&self) -> Row {
        Row { view: self.view, key_len: self.key_len, line: self.key().to_owned(), digest: self.digest }
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

/// One value of a decoded row ([`ViewSchema::decode`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// NULL.
    Null,
    /// Text, unescaped (borrowed when it held no escape).
    Text(std::borrow::Cow<'a, str>),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// An encoded row did not read back as its schema says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer fields than the key columns.
    #[error("a row of {table} has {fields} fields, fewer than its key")]
    Short {
        /// The view's table.
        table: &'static str,
        /// The fields found.
        fields: usize,
    },
    /// A field is not of its column's kind.
    #[error("column {column} holds {text:?}, which is not {kind:?}")]
    Kind {
        /// The column.
        column: &'static str,
        /// Its kind.
        kind: ColumnKind,
        /// The field as written.
        text: String,
    },
}

impl<'a> Value<'a> {
    fn parse(column: &Column, field: &'a str) -> Result<Value<'a>, DecodeError> {
        if field == "\\N" {
            return Ok(Value::Null);
        }
        let wrong = || DecodeError::Kind { column: column.name, kind: column.kind, text: field.to_owned() };
        Ok(match column.kind {
            ColumnKind::Text => Value::Text(unescape(field)),
            ColumnKind::Integer => Value::Integer(field.parse().map_err(|_| wrong())?),
            ColumnKind::Float => Value::Float(field.parse().map_err(|_| wrong())?),
            ColumnKind::Boolean => match field {
                "t" => Value::Boolean(true),
                "f" => Value::Boolean(false),
                _ => return Err(wrong()),
            },
            ColumnKind::Bytes => {
                let hex = field.strip_prefix("\\\\x").ok_or_else(wrong)?;
                let digits = |pair: &[u8]| std::str::from_utf8(pair).ok().and_then(|pair| u8::from_str_radix(pair, 16).ok());
                Value::Bytes(hex.as_bytes().chunks(2).map(digits).collect::<Option<_>>().ok_or_else(wrong)?)
            }
        })
    }
}

/// A COPY text field without its backslash escapes.
fn unescape(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.contains('\\') {
        return std::borrow::Cow::Borrowed(field);
    }
    let mut text = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => text.push('\t'),
            Some('n') => text.push('\n'),
            Some('r') => text.push('\r'),
            Some(other) => text.push(other),
            None => {}
        }
    }
    std::borrow::Cow::Owned(text)
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
        self.escaped(value);
        self
    }

    /// Appends one text field of `parts` with `separator` between them (what
    /// `parts.join(separator)` holds, without writing it out first), or NULL when there are no
    /// parts.
    pub fn opt_joined(&mut self, parts: &[String], separator: &str) -> &mut Self {
        if parts.is_empty() {
            return self.null();
        }
        self.separate();
        for (n, part) in parts.iter().enumerate() {
            if n > 0 {
                self.escaped(separator);
            }
            self.escaped(part);
        }
        self
    }

    /// Appends `value` escaped for COPY's text format.
    fn escaped(&mut self, value: &str) {
        // The characters COPY escapes are ASCII, so runs between them are copied whole.
        let mut rest = value;
        while let Some(at) = rest.bytes().position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0)) {
            self.text.push_str(&rest[..at]);
            match rest.as_bytes()[at] {
                b'\\' => self.text.push_str("\\\\"),
                b'\t' => self.text.push_str("\\t"),
                b'\n' => self.text.push_str("\\n"),
                b'\r' => self.text.push_str("\\r"),
                _ => {}
            }
            rest = &rest[at + 1..];
        }
        self.text.push_str(rest);
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
    let key_len = schema.key_of(&scratch.text).len();
    let digest = digest(&scratch.text[..key_len], &scratch.text);
    scratch.int(digest);
    let key_len = u32::try_from(key_len).expect("a row comes from messages, which Kafka bounds to under 2 GiB");
    Row { view, key_len, line: scratch.text.as_str().to_owned(), digest }
}

/// The line of one typed row of `schema`, with its digest (for tables a destination writes
/// without a [`Row`], such as its own progress).
pub fn encode_line<R: ViewRow>(schema: &ViewSchema, row: &R) -> String {
    encode_row(0, schema, row, &mut CopyLine::default()).into_line()
}

/// Consolidates `updates` as differential's `consolidate` does, keeping of each run of equal
/// records the one with the most text (`text`): a row stripped for a retraction equals its row,
/// and a row inserted, retracted and inserted again among the updates must keep its values.
///
/// Records are sorted by `prefix` first, which equal records must share (a row's digest, say:
/// one comparison of integers where the records' order would compare their keys' text), then
/// by their order.
pub fn consolidate_rows<D: Ord, P: Ord>(updates: &mut Vec<(D, isize)>, prefix: impl Fn(&D) -> P, text: impl Fn(&D) -> usize) {
    updates.sort_by(|(a, _), (b, _)| prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b)).then_with(|| text(b).cmp(&text(a))));
    let mut write = 0;
    for read in 0..updates.len() {
        if write > 0 && updates[write - 1].0 == updates[read].0 {
            let diff = updates[read].1;
            updates[write - 1].1 += diff;
        } else {
            if write > 0 && updates[write - 1].1 == 0 {
                write -= 1;
            }
            updates.swap(write, read);
            write += 1;
        }
    }
    if write > 0 && updates[write - 1].1 == 0 {
        write -= 1;
    }
    updates.truncate(write);
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

    const SCHEMA: ViewSchema =
        ViewSchema { table: "example", columns: &[Column::text("a"), Column::integer("b"), Column::text("c")], key_columns: 2 };

    #[test]
    fn key_is_the_leading_columns() {
        let mut scratch = CopyLine::default();
        let row = encode_row(3, &SCHEMA, &Example("x\ty", 7, None), &mut scratch);
        assert_eq!(row.key(), "x\\ty\t7");
        assert_eq!(row.clone().into_line(), format!("x\\ty\t7\t\\N\t{}", row.digest()));
        assert_eq!(row.view, 3);
        let next = encode_row(3, &SCHEMA, &Example("z", -1, Some("v")), &mut scratch);
        assert_eq!((next.key(), next.clone().into_line()), ("z\t-1", format!("z\t-1\tv\t{}", next.digest())));
        assert_eq!(row.clone().into_key(), "x\\ty\t7");
    }

    #[test]
    fn bytes_are_hex_with_an_escaped_backslash() {
        let mut line = CopyLine::default();
        line.opt_bytes(Some(&[0, 255])).opt_bytes(None);
        assert_eq!(line.text, "\\\\x00ff\t\\N");
    }

    #[test]
    fn rows_decode_to_their_typed_values() {
        let row = encode_row(0, &SCHEMA, &Example("a\\b\tc\nd", -7, None), &mut CopyLine::default());
        let values: Vec<Value<'_>> = SCHEMA.decode(row.key()).unwrap().into_iter().map(|(_, value)| value).collect();
        assert_eq!(values, vec![Value::Text("a\\b\tc\nd".into()), Value::Integer(-7)], "a key is its leading columns");
        let line = row.into_line();
        let decoded = SCHEMA.decode(&line).unwrap();
        assert_eq!(decoded.len(), 3, "the digest is not a column");
        assert_eq!(decoded[2], (Column::text("c"), Value::Null));

        const KINDS: ViewSchema =
            ViewSchema { table: "kinds", columns: &[Column::float("f"), Column::boolean("b"), Column::bytes("x")], key_columns: 1 };
        let mut line = CopyLine::default();
        line.float(0.1).boolean(true).opt_bytes(Some(&[0, 255]));
        let values: Vec<Value<'_>> = KINDS.decode(&line.text).unwrap().into_iter().map(|(_, value)| value).collect();
        assert_eq!(values, vec![Value::Float(0.1), Value::Boolean(true), Value::Bytes(vec![0, 255])]);
        assert!(matches!(KINDS.decode("x\tt"), Err(DecodeError::Kind { column: "f", .. })));
        assert!(matches!(SCHEMA.decode("only"), Err(DecodeError::Short { fields: 1, .. })));
    }

    #[test]
    fn special_characters_are_escaped() {
        let line = encode_line(&SCHEMA, &Example("a\\b\nc", 1, Some("\r")));
        assert!(line.starts_with("a\\\\b\\nc\t1\t\\r\t"), "{line}");
    }

    proptest::proptest! {
        #[test]
        fn a_text_field_reads_back_as_written_without_nuls(value in "[a-z\\\\\t\n\r\0é😀]{0,24}") {
            let mut line = CopyLine::default();
            line.text(&value);
            let text = line.into_text();
            proptest::prop_assert_eq!(unescape(&text), value.replace('\0', ""));
        }

        #[test]
        fn joined_parts_are_the_field_of_their_join(parts in proptest::collection::vec("[a-z\\\t;é]{0,6}", 0..4)) {
            let (mut joined, mut text) = (CopyLine::default(), CopyLine::default());
            joined.opt_joined(&parts, "; ");
            text.opt_text((!parts.is_empty()).then(|| parts.join("; ")).as_deref());
            proptest::prop_assert_eq!(joined.into_text(), text.into_text());
        }
    }

    #[test]
    fn digests_are_fixed_and_bucketed_by_key() {
        // SipHash-1-3 with a zero key: these values must never change, or every table's
        // digests would be stale after an upgrade.
        assert_eq!(digest("k", "k\tone"), -9_091_777_171_123_323_731);
        let (one, other) = (digest("k", "k\tone"), digest("k", "k\tother"));
        assert_ne!(one, other);
        assert_eq!(bucket_of(one), bucket_of(other), "one key, one bucket");
        let row = encode_row(0, &SCHEMA, &Example("k", 1, None), &mut CopyLine::default());
        assert_eq!(row.digest(), digest("k\t1", "k\t1\t\\N"));
        assert_eq!(row.bucket(), bucket_of(row.digest()));
    }

    #[test]
    fn a_stripped_row_equals_its_row_and_orders_beside_it() {
        let mut scratch = CopyLine::default();
        let row = encode_row(1, &SCHEMA, &Example("k", 1, Some("a long value")), &mut scratch);
        let stripped = row.stripped();
        assert_eq!(stripped, row);
        assert_eq!(stripped.clone().into_line(), "k\t1");
        let other = encode_row(1, &SCHEMA, &Example("k", 1, Some("another value")), &mut scratch);
        assert_ne!(stripped, other);
        let mut updates = vec![(row.clone(), 1), (other.clone(), 1), (stripped, -1)];
        differential_dataflow::consolidation::consolidate(&mut updates);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].0.clone().into_line(), other.into_line(), "the retraction cancelled the row, values and all");
    }

    #[test]
    fn consolidating_keeps_the_row_with_its_values() {
        let row = encode_row(0, &SCHEMA, &Example("k", 1, Some("value")), &mut CopyLine::default());
        for order in [[0, 1, 2], [1, 0, 2], [1, 2, 0], [2, 1, 0]] {
            let all = [(row.clone(), 1), (row.stripped(), -1), (row.clone(), 1)];
            let mut updates: Vec<(Row, isize)> = order.iter().map(|i| all[*i].clone()).collect();
            let mut by_digest = updates.clone();
            consolidate_rows(&mut updates, |_| (), Row::text_len);
            assert_eq!(updates.len(), 1);
            assert_eq!((updates[0].0.text_len(), updates[0].1), (row.text_len(), 1), "{order:?}");
            consolidate_rows(&mut by_digest, Row::digest, Row::text_len);
            assert_eq!((by_digest[0].0.text_len(), by_digest.len()), (row.text_len(), 1), "{order:?}, by digest");
        }
        let mut updates = vec![(3, 1), (1, 2), (3, -1), (2, 0), (1, -2), (4, 5), (6, 1), (5, 1)];
        let mut by_parity = updates.clone();
        consolidate_rows(&mut updates, |_| (), |_| 0);
        assert_eq!(updates, vec![(4, 5), (5, 1), (6, 1)]);
        consolidate_rows(&mut by_parity, |n| n % 2, |_| 0);
        assert_eq!(by_parity, vec![(4, 5), (6, 1), (5, 1)], "even first, then odd");
    }
}
