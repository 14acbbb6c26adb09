//! Timestamp parsing: never panics, and every time it accepts formats back to text that parses
//! to the same instant.
#![no_main]

use citeflow_engine::timestamps::{format_rfc3339, parse_rfc3339};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(millis) = parse_rfc3339(text) {
        let formatted = format_rfc3339(millis);
        assert_eq!(parse_rfc3339(&formatted), Some(millis), "{text} -> {formatted}");
    }
});
