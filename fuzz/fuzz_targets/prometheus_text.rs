//! A job's `/metrics` text as the autoscaler reads it: any bytes at all give an observation or
//! an error, never a panic, and an observation's counters are finite and not negative where
//! they cannot be.
#![no_main]

use citeflow_engine::autoscale::Observation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(observation) = Observation::parse(text) {
        assert!(observation.records_read.is_finite());
        assert!(observation.busy_seconds.is_finite());
        assert!(observation.lag.is_finite() && observation.lag >= 0.0);
    }
});
