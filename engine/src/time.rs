//! Time as the engine sees it: milliseconds since the Unix epoch (UTC), from a [`Clock`].
//!
//! Every command records the time it was executed, and replay uses that recorded time, never
//! the wall clock, so recovery is deterministic. Tests drive a [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Timestamp = i64;

/// Days since 1970-01-01 (lot expiry dates are whole days, UTC).
pub type Day = i32;

pub const MS_PER_DAY: i64 = 86_400_000;

/// The UTC day a timestamp falls on.
pub fn day_of(at: Timestamp) -> Day {
    at.div_euclid(MS_PER_DAY) as Day
}

/// Queues of finished things, `(finished_at, id)`, kept sorted so pruning and the size caps
/// take the same entries live and after a restore (which rebuilds them sorted). Entries come
/// nearly in time order, so the place is found from the back in a step or two.
pub(crate) fn push_in_time_order(queue: &mut std::collections::VecDeque<(Timestamp, u64)>, entry: (Timestamp, u64)) {
    let mut at = queue.len();
    while at > 0 && queue[at - 1] > entry {
        at -= 1;
    }
    queue.insert(at, entry);
}

/// Where the engine reads the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Timestamp).unwrap_or(0)
    }
}

/// A clock that moves only when told to; shared by clones.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }
    pub fn set(&self, at: Timestamp) {
        self.0.store(at, Ordering::SeqCst);
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_toward_the_past() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(MS_PER_DAY - 1), 0);
        assert_eq!(day_of(MS_PER_DAY), 1);
        assert_eq!(day_of(-1), -1);
    }
}
