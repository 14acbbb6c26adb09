//! The time model: timely timestamps are processing-time epochs in milliseconds.
//!
//! A source closes an epoch every `epoch_ms` (or sooner when its batch fills); every record
//! read in an epoch carries that epoch's time, so the dataflow frontier says "every input up
//! to here has been processed everywhere" and is the unit of consistency for the sinks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use timely::scheduling::SyncActivator;

/// A processing-time epoch: milliseconds since the Unix epoch, rounded to the epoch length.
pub type Epoch = u64;

/// Mints strictly increasing epochs: the wall clock read once, when the clock is made, moved
/// on by the monotonic clock. So a wall clock that jumps (a VM resumed, a manual `date`, a
/// leap smear) moves no epoch: what is measured in epochs — a partition turning idle for the
/// watermark — measures time that really passed.
#[derive(Clone, Debug)]
pub struct EpochClock {
    epoch_ms: u64,
    /// Milliseconds since the Unix epoch at `origin`.
    origin_ms: u64,
    origin: Instant,
}

impl EpochClock {
    /// A clock whose epochs are `epoch_ms` long (at least one millisecond).
    pub fn new(epoch_ms: u64) -> Self {
        Self::starting_at(epoch_ms, wall_clock_ms(), Instant::now())
    }

    /// A clock that reads `origin_ms` at `origin`.
    fn starting_at(epoch_ms: u64, origin_ms: u64, origin: Instant) -> Self {
        EpochClock { epoch_ms: epoch_ms.max(1), origin_ms, origin }
    }

    /// The epoch the clock is in now.
    pub fn now(&self) -> Epoch {
        let millis = self.origin_ms + self.origin.elapsed().as_millis() as u64;
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

/// When the sources of one process close epochs. A source that read something closes its
/// epoch as the [`EpochClock`] says and the others follow at once (they are woken); a source
/// with nothing to say holds its epoch, so a job without input mints no epochs and its
/// operators are not scheduled: idle is idle. Quiet sources still move on every `heartbeat`,
/// so that what depends on processing time alone (a partition turning idle for the
/// watermark) is noticed.
///
/// Sources in other processes of a cluster cannot be woken; there the heartbeat is the epoch
/// length (every source closes every epoch, busy or not).
#[derive(Clone)]
pub struct EpochTicker {
    clock: EpochClock,
    heartbeat: Duration,
    demand: Arc<AtomicU64>,
    sources: Arc<Mutex<Vec<SyncActivator>>>,
}

impl EpochTicker {
    /// Epochs of `epoch_ms`; quiet sources move on every `heartbeat`.
    pub fn new(epoch_ms: u64, heartbeat: Duration) -> Self {
        EpochTicker {
            clock: EpochClock::new(epoch_ms),
            heartbeat,
            demand: Arc::new(AtomicU64::new(0)),
            sources: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Registers a source, to be woken when another closes an epoch.
    pub fn register(&self, source: SyncActivator) {
        self.sources.lock().expect("ticker lock").push(source);
    }

    /// The epoch a source at `current` that read something moves to (`full`: at once), if
    /// any; the other sources are woken to follow.
    pub fn busy(&self, current: Epoch, full: bool) -> Option<Epoch> {
        let next = self.clock.next_after(current, full)?;
        if self.demand.fetch_max(next, Ordering::SeqCst) < next {
            for source in self.sources.lock().expect("ticker lock").iter() {
                let _ = source.activate();
            }
        }
        Some(next)
    }

    /// The epoch a quiet source at `current`, which last moved at `moved`, moves to, if any:
    /// the latest another source moved to, or on the heartbeat the clock's.
    pub fn quiet(&self, current: Epoch, moved: Instant) -> Option<Epoch> {
        let demanded = self.demand.load(Ordering::SeqCst);
        if demanded > current {
            return Some(demanded);
        }
        if moved.elapsed() >= self.heartbeat {
            return self.clock.next_after(current, false);
        }
        None
    }

    /// The epochs of one source, which registers `waker` to be woken when another closes one.
    pub fn source(&self, waker: SyncActivator) -> SourceEpochs {
        self.register(waker);
        SourceEpochs { ticker: self.clone(), dirty: true, moved_at: Instant::now() }
    }

    /// The length of an epoch.
    pub fn epoch(&self) -> Duration {
        Duration::from_millis(self.clock.epoch_ms)
    }
}

/// One source's side of an [`EpochTicker`]: whether it emitted anything into its current epoch,
/// and when it last moved.
pub struct SourceEpochs {
    ticker: EpochTicker,
    dirty: bool,
    moved_at: Instant,
}

impl SourceEpochs {
    /// The epoch a source at `current` moves to, if any, having emitted something into it
    /// (`emitted`; `full`: close it at once). The source must downgrade to the returned epoch.
    pub fn next(&mut self, current: Epoch, emitted: bool, full: bool) -> Option<Epoch> {
        self.dirty |= emitted;
        let next = if self.dirty { self.ticker.busy(current, full) } else { self.ticker.quiet(current, self.moved_at) };
        if next.is_some() {
            (self.dirty, self.moved_at) = (false, Instant::now());
        }
        next
    }

    /// How long a source with nothing to read may sleep: until its heartbeat is due; `None`
    /// while its epoch holds something (it closes when the clock moves on). Another source
    /// closing an epoch wakes it sooner.
    pub fn quiet_for(&self) -> Option<Duration> {
        (!self.dirty).then(|| self.ticker.heartbeat.saturating_sub(self.moved_at.elapsed()).max(Duration::from_millis(1)))
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
    fn epochs_follow_the_monotonic_clock_not_the_wall_clock() {
        let clock = EpochClock::starting_at(10, 1_000, Instant::now());
        let now = clock.now();
        assert!((1_000..61_000).contains(&now), "{now}: the wall clock read at the start, moved by elapsed time only");
        std::thread::sleep(Duration::from_millis(25));
        assert!(clock.now() >= now + 20);
    }

    #[test]
    fn epochs_are_aligned_and_increase() {
        let clock = EpochClock::new(100);
        let now = clock.now();
        assert_eq!(now % 100, 0);
        let forced = clock.next_after(now + 1_000_000, true).unwrap();
        assert_eq!(forced, now + 1_000_001);
        assert_eq!(clock.next_after(now + 1_000_000, false), None);
    }

    #[test]
    fn quiet_sources_follow_busy_ones_and_otherwise_wait_for_the_heartbeat() {
        let ticker = EpochTicker::new(1, Duration::from_secs(3600));
        let start = ticker.clock.now() - 10;
        assert_eq!(ticker.quiet(start, Instant::now()), None, "nothing demanded, heartbeat far away");
        let next = ticker.busy(start, false).expect("the clock moved past start");
        assert_eq!(ticker.quiet(start, Instant::now()), Some(next), "a quiet source follows");
        assert_eq!(ticker.quiet(next, Instant::now()), None);
        let hasty = EpochTicker::new(1, Duration::ZERO);
        assert!(hasty.quiet(start, Instant::now()).is_some(), "the heartbeat moves a quiet source");
    }

    #[test]
    fn a_quiet_source_sleeps_until_its_heartbeat_and_a_busy_one_not_at_all() {
        let ticker = EpochTicker::new(1, Duration::from_secs(60));
        let mut epochs = SourceEpochs { ticker, dirty: false, moved_at: Instant::now() };
        let sleep = epochs.quiet_for().expect("quiet");
        assert!(sleep > Duration::from_secs(59) && sleep <= Duration::from_secs(60), "{sleep:?}");
        let current = epochs.ticker.clock.now() + 1_000_000;
        assert_eq!(epochs.next(current, true, false), None, "the epoch stays open until the clock passes it");
        assert_eq!(epochs.quiet_for(), None, "an open epoch with data is not quiet");
    }
}
