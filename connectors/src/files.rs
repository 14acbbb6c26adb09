//! Reading line-oriented files (JSONL), gzip-compressed or not, for samples and replays.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// Opens `path` for reading, decompressing it when its name ends in `.gz`.
pub fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    let reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// The non-empty lines of `path` (decompressed when needed).
pub fn lines(path: &Path) -> std::io::Result<impl Iterator<Item = std::io::Result<String>>> {
    Ok(open(path)?.lines().filter(|line| !matches!(line, Ok(text) if text.trim().is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn reads_plain_and_gzipped_lines() {
        let dir = std::env::temp_dir().join(format!("citeflow-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("a.jsonl");
        std::fs::write(&plain, "one\n\ntwo\n").unwrap();
        let gz = dir.join("a.jsonl.gz");
        let mut encoder = GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(b"one\ntwo\n").unwrap();
        encoder.finish().unwrap();
        for path in [plain, gz] {
            let read: Vec<String> = lines(&path).unwrap().map(Result::unwrap).collect();
            assert_eq!(read, vec!["one", "two"]);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
