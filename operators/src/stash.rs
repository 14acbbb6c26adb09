//! Holding input until the frontier passes its time, with the capability to emit at that time.

use std::collections::BTreeMap;

use timely::dataflow::operators::{Capability, InputCapability};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

/// Items waiting for the frontier to pass their time, with a capability to emit at it.
pub type Stash<T, X> = BTreeMap<T, (Capability<T>, Vec<X>)>;

/// Stashes a message of stream records under the message's time (for output port 0).
pub fn stash_records<T: Timestamp + TotalOrder, X>(stash: &mut Stash<T, X>, capability: InputCapability<T>, records: &mut Vec<X>) {
    if let Some(retained) = capability.retain_least(0) {
        stash.entry(retained.time().clone()).or_insert_with(|| (retained, Vec::new())).1.append(records);
    }
}

/// Stashes a message of differential updates under each update's own time, which may be
/// later than the message's capability (for output port 0).
pub fn stash_updates<T: Timestamp, D>(stash: &mut Stash<T, (D, isize)>, capability: InputCapability<T>, updates: &mut Vec<(D, T, isize)>) {
    for (data, time, diff) in updates.drain(..) {
        let entry = stash.entry(time.clone()).or_insert_with(|| (capability.delayed(&time, 0), Vec::new()));
        entry.1.push((data, diff));
    }
}
