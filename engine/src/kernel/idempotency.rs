//! Idempotency results: the first request with a key is the only one that executes; a retry
//! gets its outcome, a different request with the key is refused (SPEC §3).
//!
//! Keys are scoped by whoever asked ([`scoped_key`]; the server passes the token id), and each
//! result carries a fingerprint of the exact request. Results are forgotten 24 h after they
//! were recorded, by the logged prune ([`IdempotencyTable::prune`] as of a record's time), so a
//! replica replaying the log forgets the same ones. The table is generic over the outcome, so
//! the kernel knows no domain.

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use rustc_hash::FxBuildHasher;

use crate::error::{Conflict, Result};
use crate::limits::IDEMPOTENCY_RETENTION_MS;
use crate::time::Timestamp;
use crate::wal::Lsn;

#[derive(Debug, Clone)]
pub(crate) enum IdempotencyState<O> {
    /// The first request with this key is executing.
    Pending {
        fingerprint: u64,
    },
    Done {
        fingerprint: u64,
        at: Timestamp,
        lsn: Option<Lsn>,
        outcome: Arc<O>,
    },
}

/// A finished result, as snapshots keep it.
pub(crate) type Remembered<O> = (Box<str>, u64, Timestamp, Arc<O>);

#[derive(Debug)]
pub(crate) struct IdempotencyTable<O> {
    entries: DashMap<Box<str>, IdempotencyState<O>, FxBuildHasher>,
}

impl<O> Default for IdempotencyTable<O> {
    fn default() -> Self {
        IdempotencyTable { entries: DashMap::with_hasher(FxBuildHasher) }
    }
}

impl<O: Clone> IdempotencyTable<O> {
    /// Returns the remembered outcome of a finished request with this key and fingerprint, or
    /// claims the key for this request (`None`): a retry while it runs is `InProgress`, another
    /// request with the key is `Reused`.
    pub fn claim(&self, key: &str, fingerprint: u64) -> Result<Option<(O, Option<Lsn>)>> {
        match self.entries.entry(key.into()) {
            Entry::Occupied(entry) => match entry.get() {
                IdempotencyState::Done { fingerprint: first, outcome, lsn, .. } if *first == fingerprint => {
                    Ok(Some((O::clone(outcome), *lsn)))
                }
                IdempotencyState::Done { .. } => Err(Conflict::IdempotencyKeyReused.into()),
                IdempotencyState::Pending { fingerprint: first } if *first == fingerprint => {
                    Err(Conflict::IdempotencyKeyInProgress.into())
                }
                IdempotencyState::Pending { .. } => Err(Conflict::IdempotencyKeyReused.into()),
            },
            Entry::Vacant(entry) => {
                entry.insert(IdempotencyState::Pending { fingerprint });
                Ok(None)
            }
        }
    }

    /// The claimed request failed: the key is free again.
    pub fn abandon(&self, key: &str) {
        self.entries.remove_if(key, |_, state| matches!(state, IdempotencyState::Pending { .. }));
    }

    /// The request with this key finished with `outcome` (logged at `lsn`, if live).
    pub fn remember(&self, key: &str, fingerprint: u64, at: Timestamp, lsn: Option<Lsn>, outcome: O) {
        self.entries.insert(key.into(), IdempotencyState::Done { fingerprint, at, lsn, outcome: Arc::new(outcome) });
    }

    /// Whether any result is older than the retention as of `now`.
    pub fn prunable(&self, now: Timestamp) -> bool {
        self.entries.iter().any(
            |entry| matches!(entry.value(), IdempotencyState::Done { at, .. } if *at <= now - IDEMPOTENCY_RETENTION_MS),
        )
    }

    /// Forgets results older than the retention as of `at`; returns how many.
    pub fn prune(&self, at: Timestamp) -> u64 {
        let before = self.entries.len();
        self.entries.retain(|_, state| match state {
            IdempotencyState::Done { at: done_at, .. } => *done_at > at - IDEMPOTENCY_RETENTION_MS,
            IdempotencyState::Pending { .. } => true,
        });
        before.saturating_sub(self.entries.len()) as u64
    }

    /// Every finished result, for a snapshot.
    pub fn results(&self) -> Vec<Remembered<O>> {
        self.entries
            .iter()
            .filter_map(|entry| match entry.value() {
                IdempotencyState::Done { fingerprint, at, outcome, .. } => {
                    Some((entry.key().clone(), *fingerprint, *at, outcome.clone()))
                }
                IdempotencyState::Pending { .. } => None,
            })
            .collect()
    }

    /// A result read back from a snapshot (start-up only).
    pub fn restore(&self, key: &str, fingerprint: u64, at: Timestamp, outcome: O) {
        self.remember(key, fingerprint, at, None, outcome);
    }
}

/// A key as the table stores it: scoped by the actor of the record, so two clients' keys never
/// collide (the server also derives each key from its token id).
pub(crate) fn scoped_key(actor: &str, key: &str) -> String {
    let mut scoped = String::with_capacity(actor.len() + 1 + key.len());
    scoped.push_str(actor);
    scoped.push('\u{1f}');
    scoped.push_str(key);
    scoped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;

    /// The first request with a key claims it; until it finishes, a retry of the same request
    /// is told it is in flight (409) and another request with the key that it is reused (422);
    /// once done, the same request gets the first outcome.
    #[test]
    fn a_key_is_claimed_by_its_first_request() {
        let table: IdempotencyTable<&'static str> = IdempotencyTable::default();
        assert!(matches!(table.claim("k", 1), Ok(None)), "the first request claims the key");
        let in_flight = table.claim("k", 1);
        assert!(matches!(in_flight, Err(EngineError::Conflict(Conflict::IdempotencyKeyInProgress))), "{in_flight:?}");
        let other = table.claim("k", 2);
        assert!(matches!(other, Err(EngineError::Conflict(Conflict::IdempotencyKeyReused))), "{other:?}");
        table.remember("k", 1, 0, Some(7), "first");
        assert_eq!(table.claim("k", 1).expect("answered"), Some(("first", Some(7))));
        let other = table.claim("k", 2);
        assert!(matches!(other, Err(EngineError::Conflict(Conflict::IdempotencyKeyReused))), "{other:?}");
    }

    #[test]
    fn results_are_forgotten_a_day_after_they_were_recorded() {
        let table: IdempotencyTable<u8> = IdempotencyTable::default();
        table.remember("old", 1, 0, None, 1);
        table.remember("new", 1, 10, None, 2);
        assert!(matches!(table.claim("pending", 1), Ok(None)));
        assert!(!table.prunable(IDEMPOTENCY_RETENTION_MS - 1));
        assert!(table.prunable(IDEMPOTENCY_RETENTION_MS));
        assert_eq!(table.prune(IDEMPOTENCY_RETENTION_MS), 1);
        assert_eq!(table.results().len(), 1, "the newer result stays; a pending claim is not a result");
    }
}
