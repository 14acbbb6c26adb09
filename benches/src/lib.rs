//! Benchmarks of citeflow. `cargo bench -p citeflow-benches` runs the criterion
//! micro-benchmarks in `benches/`; this library holds what they share.

use std::path::{Path, PathBuf};

/// The bundled sample directory.
pub fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample")
}

/// The reference strings of the gold files.
pub fn gold_references() -> Vec<String> {
    let documents = citeflow_jobs::loader::gold_documents(&sample_dir()).expect("gold files");
    documents.into_iter().flat_map(|d| d.references.into_iter().map(|r| r.citation)).collect()
}

/// The EPMC records of the sample, as JSON values.
pub fn epmc_records(limit: usize) -> Vec<serde_json::Value> {
    let path = sample_dir().join(citeflow_jobs::loader::EPMC_FILES[0]);
    citeflow_connectors::files::lines(&path)
        .expect("epmc file")
        .take(limit)
        .map(|line| serde_json::from_str(&line.expect("line")).expect("json"))
        .collect()
}
