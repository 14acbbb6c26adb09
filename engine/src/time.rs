//! The time model: timely timestamps are processing-time epochs in milliseconds.
//!
//! A source closes an epoch every `epoch_ms` (or sooner when its batch fills); every record
//! read in an epoch carries that epoch's time, so the dataflow frontier says "every input up
//! to here has been processed everywhere" and is the unit of consistency for the sinks.

use std::time::{SystemTime, UNIX_EPOCH};

/// A processing-time epoch: milliseconds since the Unix epoch, rounded to the epoch length.
pub type Epoch = u64;

/// Mints strictly increasing epochs from the wall clock.
#[derive(Clone, Debug)]
pub struct EpochClock {
    epoch_ms: u64,
}

impl EpochClock {
    /// A clock whose epochs are `epoch_ms` long (at least one millisecond).
    pub fn new(epoch_ms: u64) -> Self {
        EpochClock { epoch_ms: epoch_ms.max(1) }
    }

    /// The epoch that the wall clock is in now.
    pub fn now(&self) -> Epoch {
        let millis = wall_clock_ms();
        millis - millis % self.epoch_ms
    }

    /// The epoch to move to after `current`: the wall clock's epoch if it is later, and
    /// `current + 1` when `force` asks to close `current` early (a full batch).
    pub fn next_after(&self, current: Epoch, force: bool) -> Option<Epoch> {
        let now = self.now();
        if now > current {
            Some(now)
        } else if force {
            Some(current + 1)
        } else {
            None
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_aligned_and_increase() {
        let clock = EpochClock::new(100);
        let now = clock.now();
        assert_eq!(now % 100, 0);
        let forced = clock.next_after(now + 1_000_000, true).unwrap();
        assert_eq!(forced, now + 1_000_001);
        assert_eq!(clock.next_after(now + 1_000_000, false), None);
    }
}
