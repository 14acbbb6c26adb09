//! Topic archive files: whatever a partition's file holds, reading it ends in its offsets or a
//! typed error (a damaged frame, not an archive), never a panic or an allocation its length
//! field asks for; and the offsets it reports are ordered.
#![no_main]

use citeflow_connectors::archive::{offset_range, partition_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("citeflow-fuzz-archive-{}", std::process::id()));
    let path = partition_path(&dir, "t", 0);
    std::fs::create_dir_all(path.parent().expect("a topic directory")).expect("temp dir");
    std::fs::write(&path, data).expect("write");
    if let Ok((low, high)) = offset_range(&dir, "t", 0) {
        assert!(low <= high, "offsets {low}..{high}");
    }
});
