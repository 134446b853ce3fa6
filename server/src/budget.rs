//! Per-token request budgets (SPEC §5): over its budget a token gets 429 `rate_limited` with
//! `Retry-After`.
//!
//! Each token has a token bucket of `burst` requests refilled at `rate` per second, kept as one
//! atomic in the token's record ([`Bucket`]): the generic cell rate algorithm stores the
//! bucket's "theoretical arrival time" (TAT), the time at which the bucket would be full again.
//! A request is admitted when `max(TAT, now) + interval - now <= burst * interval`, and then
//! moves TAT on by one interval, with a compare-and-swap. So the hot path takes no lock, does no
//! allocation, and a bucket lives and dies with its token (memory bounded by `TOKENS_MAX`).
//!
//! Admin tokens have their own rate (unlimited by default: they run set-ups, imports and load
//! tests); channel, POS and ops tokens share the other. Both use the same burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::auth::Role;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A token's bucket: its theoretical arrival time, in nanoseconds since [`Budgets`]' epoch.
#[derive(Debug, Default)]
pub struct Bucket(AtomicU64);

/// A rate and burst as the algorithm uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    /// Nanoseconds between two requests at the sustained rate.
    interval_ns: u64,
    /// How far TAT may run ahead of now: `burst * interval_ns`.
    window_ns: u64,
}

impl Rate {
    /// `None` for 0 (unlimited).
    fn new(per_second: u32, burst: u32) -> Option<Rate> {
        if per_second == 0 {
            return None;
        }
        let interval_ns = (NANOS_PER_SECOND / u64::from(per_second)).max(1);
        Some(Rate { interval_ns, window_ns: interval_ns.saturating_mul(u64::from(burst.max(1))) })
    }
}

/// The budgets of every token: the rates by role and the clock they are measured on.
#[derive(Debug)]
pub struct Budgets {
    epoch: Instant,
    token: Option<Rate>,
    admin: Option<Rate>,
}

impl Budgets {
    /// `token_rate` applies to channel, POS and ops tokens, `admin_rate` to admin tokens;
    /// 0 is unlimited. `burst` is how many requests a full bucket lets through at once.
    pub fn new(token_rate: u32, admin_rate: u32, burst: u32) -> Self {
        Budgets { epoch: Instant::now(), token: Rate::new(token_rate, burst), admin: Rate::new(admin_rate, burst) }
    }

    /// Takes one request out of `bucket`, or says how many whole seconds (at least 1) until the
    /// bucket holds one again.
    pub fn admit(&self, role: Role, bucket: &Bucket) -> Result<(), u64> {
        let rate = match role {
            Role::Admin => self.admin,
            Role::Ops | Role::Channel | Role::Pos => self.token,
        };
        let Some(rate) = rate else { return Ok(()) };
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        admit_at(rate, bucket, now)
    }
}

fn admit_at(rate: Rate, bucket: &Bucket, now: u64) -> Result<(), u64> {
    let mut tat = bucket.0.load(Ordering::Relaxed);
    loop {
        let next = tat.max(now).saturating_add(rate.interval_ns);
        let ahead = next - now;
        if ahead > rate.window_ns {
            let wait = ahead - rate.window_ns;
            return Err(wait.div_ceil(NANOS_PER_SECOND).max(1));
        }
        match bucket.0.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(current) => tat = current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = NANOS_PER_SECOND;

    #[test]
    fn a_burst_then_the_rate() {
        let Some(rate) = Rate::new(2, 3) else { panic!("2/s is a rate") };
        let bucket = Bucket::default();
        let t0 = 10 * SECOND;
        for n in 0..3 {
            assert_eq!(admit_at(rate, &bucket, t0), Ok(()), "request {n} of the burst");
        }
        // Empty: the next request is due half a second later, which rounds up to 1 s.
        assert_eq!(admit_at(rate, &bucket, t0), Err(1));
        assert_eq!(admit_at(rate, &bucket, t0 + SECOND / 2 - 1), Err(1));
        assert_eq!(admit_at(rate, &bucket, t0 + SECOND / 2), Ok(()));
        assert_eq!(admit_at(rate, &bucket, t0 + SECOND / 2), Err(1));
        // Idle for long: the bucket is full again, never fuller.
        let later = t0 + 100 * SECOND;
        for _ in 0..3 {
            assert_eq!(admit_at(rate, &bucket, later), Ok(()));
        }
        assert!(admit_at(rate, &bucket, later).is_err());
    }

    #[test]
    fn retry_after_counts_whole_seconds() {
        let Some(rate) = Rate::new(1, 1) else { panic!("1/s is a rate") };
        let bucket = Bucket::default();
        assert_eq!(admit_at(rate, &bucket, SECOND), Ok(()));
        assert_eq!(admit_at(rate, &bucket, SECOND), Err(1));
        // A wait of a little over 3 s is 4 s; 2 s later, a little over 1 s is 2 s.
        let slow = Rate { interval_ns: 3 * SECOND + 1, window_ns: 3 * SECOND + 1 };
        let bucket = Bucket::default();
        assert_eq!(admit_at(slow, &bucket, 0), Ok(()));
        assert_eq!(admit_at(slow, &bucket, 0), Err(4));
        assert_eq!(admit_at(slow, &bucket, 2 * SECOND), Err(2));
    }

    #[test]
    fn roles_and_unlimited() {
        let budgets = Budgets::new(1, 0, 1);
        let bucket = Bucket::default();
        for _ in 0..1000 {
            assert_eq!(budgets.admit(Role::Admin, &bucket), Ok(()), "admin is unlimited here");
        }
        for role in [Role::Channel, Role::Pos, Role::Ops] {
            let own = Bucket::default();
            assert_eq!(budgets.admit(role, &own), Ok(()));
            assert!(budgets.admit(role, &own).is_err(), "{role:?} is budgeted");
        }
        let unlimited = Budgets::new(0, 0, 1);
        let bucket = Bucket::default();
        for _ in 0..1000 {
            assert_eq!(unlimited.admit(Role::Channel, &bucket), Ok(()));
        }
    }

    #[test]
    fn concurrent_takers_never_exceed_the_burst() {
        let Some(rate) = Rate::new(1, 100) else { panic!("1/s is a rate") };
        let bucket = std::sync::Arc::new(Bucket::default());
        let admitted: usize = std::thread::scope(|scope| {
            let takers: Vec<_> = (0..4)
                .map(|_| {
                    let bucket = bucket.clone();
                    scope.spawn(move || (0..100).filter(|_| admit_at(rate, &bucket, SECOND).is_ok()).count())
                })
                .collect();
            takers.into_iter().map(|t| t.join().unwrap_or(0)).sum()
        });
        assert_eq!(admitted, 100);
    }
}
