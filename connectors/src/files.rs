//! Reading line-oriented files (JSONL), gzip-compressed or not, for samples and replays; and
//! watching a file (a model, a configuration) as a dataflow input.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use citeflow_engine::time::{Epoch, EpochTicker};
use flate2::read::MultiGzDecoder;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

/// Opens `path` for reading, decompressing it when its name ends in `.gz`.
pub fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    let reader: Box<dyn Read + Send> =
        if path.extension().is_some_and(|e| e == "gz") { Box::new(MultiGzDecoder::new(file)) } else { Box::new(file) };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// The non-empty lines of `path` (decompressed when needed).
pub fn lines(path: &Path) -> std::io::Result<impl Iterator<Item = std::io::Result<String>>> {
    Ok(open(path)?.lines().filter(|line| !matches!(line, Ok(text) if text.trim().is_empty())))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Emits the contents of `path` each time its modification time changes (not its contents at
/// start), at the epoch then current, polling every epoch of `ticker`; only worker 0 reads the
/// file, the others emit nothing. It closes epochs as `ticker` says (holding its epoch while the
/// file does not change) and never finishes: use it in long-running jobs.
pub fn watch_file<'scope>(scope: Scope<'scope, Epoch>, path: PathBuf, ticker: EpochTicker) -> Stream<'scope, Epoch, Vec<Vec<u8>>> {
    let poll = ticker.epoch();
    let reader = scope.index() == 0;
    source::<_, CapacityContainerBuilder<Vec<Vec<u8>>>, _, _>(scope, "WatchFile", move |capability, info| {
        let activator = scope.activator_for(info.address.clone());
        let mut epochs = ticker.source(scope.worker().sync_activator_for(info.address.to_vec()));
        let mut capability = reader.then_some(capability);
        let mut seen = modified(&path);
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            let now = modified(&path);
            let mut emitted = false;
            if now != seen {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        tracing::info!(path = %path.display(), "watched file changed");
                        output.session(&*cap).give(bytes);
                        seen = now;
                        emitted = true;
                    }
                    Err(error) => tracing::warn!(path = %path.display(), %error, "watched file unreadable; will retry"),
                }
            }
            if let Some(next) = epochs.next(*cap.time(), emitted, false) {
                cap.downgrade(&next);
            }
            activator.activate_after(poll);
        }
    })
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
