//! The kernel: what executing a logged command needs, knowing no domain.
//!
//! - [`Context`]: who asks, with which idempotency key;
//! - [`Sink`]: whether a command's record goes to the log (live) or comes from it (replay);
//! - [`locks`]: the one lock order of the engine, named and checked in one place;
//! - `idempotency`: the idempotency results table, generic over the outcome;
//! - [`Ack`]: a write's result, valid once its log record is durable;
//! - [`container`]: the snapshot file of named, versioned sections;
//! - [`domain`]: what a registered domain offers the engine (section, capture, restore, check,
//!   pruning);
//! - [`projection`]: the pipeline that feeds the document store only from durable records.
//!
//! Domains ([`crate::catalog`], [`crate::stock`], [`crate::flash`], [`crate::transfer`]) import
//! the kernel and the shared leaves (`model`, `cell`, `sourcing`, `time`, `error`, `limits`),
//! never the dispatcher (`state`) or the facade (`engine`); `state.rs` runs a record through
//! them: claim the idempotency key, lock, check, apply, append, remember the outcome.

pub mod container;
pub mod domain;
pub(crate) mod idempotency;
pub mod locks;
pub mod projection;

use crate::wal::{Lsn, Wal};

/// Who asked, and with which idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub actor: &'a str,
    pub idempotency: Option<(&'a str, u64)>,
}

impl<'a> Context<'a> {
    pub fn actor(actor: &'a str) -> Self {
        Context { actor, idempotency: None }
    }
    /// Adds an idempotency key and a fingerprint of the request body it guards.
    pub fn with_key(mut self, key: &'a str, fingerprint: u64) -> Self {
        self.idempotency = Some((key, fingerprint));
        self
    }
}

/// Where a command's effects go: logged (live) or not (replay of the log itself).
pub(crate) enum Sink<'w> {
    Log(&'w Wal),
    /// Replaying the record with this LSN.
    Replay(Lsn),
}

/// A write's result, valid once its log record is durable.
#[derive(Debug, Clone)]
#[must_use = "a write is acknowledged only after its log record is durable: pass it to Engine::wait"]
pub struct Ack<T> {
    pub value: T,
    /// The record to wait for; `None` when nothing was logged (a harmless repeat).
    pub lsn: Option<Lsn>,
}

impl<T> Ack<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Ack<U> {
        Ack { value: f(self.value), lsn: self.lsn }
    }
}
