//! Splitting a raw reference section into reference strings: numbered sections ("1.",
//! "\[1\]", "(1)", "1 ") are split at consecutive numbers; others at blank lines, else lines.

use std::sync::OnceLock;

use regex::Regex;

/// Fragments shorter than this are not references (page numbers, stray headings).
const MIN_REFERENCE_CHARS: usize = 12;
/// The last reference of a numbered section ends at a blank line or after this many bytes.
const MAX_LAST_REFERENCE_BYTES: usize = 1_000;

fn marker() -> &'static Regex {
    static MARKER: OnceLock<Regex> = OnceLock::new();
    MARKER.get_or_init(|| Regex::new(r"(?m)^[ \t]*(?:\[(\d{1,3})\]|\((\d{1,3})\)|(\d{1,3})[.)]?)\s+").expect("marker"))
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_heading(text: &str) -> &str {
    let trimmed = text.trim_start();
    let first_line = trimmed.lines().next().unwrap_or("");
    let heading = first_line.trim().trim_end_matches(':').to_lowercase();
    if ["references", "reference list", "bibliography", "works cited", "literature cited"].contains(&heading.as_str()) {
        &trimmed[first_line.len()..]
    } else {
        trimmed
    }
}

fn last_reference_end(body: &str, start: usize) -> usize {
    let rest = &body[start..];
    let mut end = rest.find("\n\n").unwrap_or(rest.len()).min(MAX_LAST_REFERENCE_BYTES);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    start + end
}

/// The references of a raw reference section, in order.
pub fn split_reference_section(section: &str) -> Vec<String> {
    let body = strip_heading(section);
    let mut starts = Vec::new();
    let mut expected = 1;
    for captures in marker().captures_iter(body) {
        let number: u32 = captures.iter().skip(1).flatten().next().and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
        if number == expected {
            let whole = captures.get(0).expect("match");
            starts.push((whole.start(), whole.end()));
            expected += 1;
        }
    }
    let pieces: Vec<String> = if starts.len() >= 2 {
        starts
            .iter()
            .enumerate()
            .map(|(i, (_, content_start))| {
                let end = starts.get(i + 1).map_or_else(|| last_reference_end(body, *content_start), |(next, _)| *next);
                collapse(&body[*content_start..end])
            })
            .collect()
    } else {
        let blocks: Vec<&str> = body.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
        if blocks.len() > 1 {
            blocks.into_iter().map(collapse).collect()
        } else {
            body.lines().map(collapse).collect()
        }
    };
    pieces.into_iter().filter(|p| p.chars().count() >= MIN_REFERENCE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_references_span_lines() {
        let section = "References\n 1.    World Health Organization. Declaration of\n Alma-Ata. 1978.\n 2.    Global strategy on human resources. Geneva; 2016.\n";
        assert_eq!(
            split_reference_section(section),
            vec!["World Health Organization. Declaration of Alma-Ata. 1978.", "Global strategy on human resources. Geneva; 2016."]
        );
    }

    #[test]
    fn numbers_inside_a_reference_do_not_split_it() {
        let section = "1 Sibbald A (2001). Agroforestry systems, 39,\n39–53.\n2 Silva J (2003). Plant and Soil, 255 (2), 529–540.";
        let references = split_reference_section(section);
        assert_eq!(references.len(), 2, "{references:?}");
        assert!(references[0].ends_with("39, 39–53."));
    }

    #[test]
    fn unnumbered_sections_split_at_blank_lines() {
        let section = "Smith J. A first report on things. 2001.\n\nJones K. A second\nreport on things. 2002.";
        assert_eq!(split_reference_section(section).len(), 2);
    }
}
