//! Fuzz targets for aisle: what the engine reads back from disk (log records, log segments,
//! snapshots) and what the server reads from clients (every request body).
//!
//! # Layout
//! - `tests/fuzz/` holds the targets, one `#[test]` each, written with [`bolero::check!`];
//!   each target's seeds are in `tests/fuzz/__fuzz__/<target>/corpus/` (bolero's layout).
//! - [`cursor`]: reads a fuzzer's bytes as a script of choices, so every target takes plain
//!   bytes (what libFuzzer mutates) and still builds structured cases from them.
//! - [`wal`]: the log segment format written again from `docs/wal-format.md`, to build valid
//!   frames and to walk a log the simple way as the reference recovery is compared with.
//! - [`session`]: a short real engine session whose log, records and snapshot are the valid
//!   inputs the damage targets start from.
//! - [`json`] and [`bodies`]: request bodies generated from a description of each request
//!   type, and each type's parse-and-convert path as the handlers run it.
//! - [`handlers`]: a server (engine in memory, no socket) that the handlers targets send
//!   requests to, checking the engine's invariants after each and, for a server that logs,
//!   that a replica recovered from its log and snapshots equals it.
//!
//! # How long
//! Under `cargo test` (bolero's random engine, stable Rust) each target runs for
//! [`SECONDS_DEFAULT`] seconds; `AISLE_FUZZ_SECONDS` changes that, `AISLE_FUZZ_ITERATIONS`
//! runs a number of inputs instead (bolero's own `BOLERO_RANDOM_*` variables win over both).
//! `cargo bolero test <target>` runs the same targets under libFuzzer (nightly Rust).

pub mod bodies;
pub mod corpus;
pub mod cursor;
pub mod handlers;
pub mod json;
pub mod session;
pub mod wal;

use std::time::Duration;

use aisle_engine::command::LogRecord;
use aisle_engine::snapshot::{Image, SnapshotError};
use rkyv::util::AlignedVec;

pub use cursor::{damage, Cursor, Edit};

/// Seconds each target runs under `cargo test` when no variable says otherwise: all targets
/// together stay near a minute on two cores.
pub const SECONDS_DEFAULT: u64 = 15;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a whole number, not {value:?}")))
}

/// Applies the run length the environment asks for (see the crate documentation).
pub fn budgeted<G, I>(
    target: bolero::TestTarget<G, bolero::DefaultEngine, I>,
) -> bolero::TestTarget<G, bolero::DefaultEngine, I> {
    let iterations = env_number("AISLE_FUZZ_ITERATIONS");
    let seconds = env_number("AISLE_FUZZ_SECONDS");
    let target = match iterations {
        Some(n) => target.with_iterations(usize::try_from(n).unwrap_or(usize::MAX)),
        None => target,
    };
    match (iterations, seconds) {
        (_, Some(s)) => target.with_test_time(Duration::from_secs(s)),
        (None, None) => target.with_test_time(Duration::from_secs(SECONDS_DEFAULT)),
        (Some(_), None) => target,
    }
}

/// Copies `bytes` to a 16-byte aligned buffer, as the engine reads files.
pub fn aligned(bytes: &[u8]) -> AlignedVec<16> {
    let mut out = AlignedVec::<16>::with_capacity(bytes.len());
    out.extend_from_slice(bytes);
    out
}

/// Decodes a log record's payload as recovery does (aligned, validated).
pub fn decode_record(bytes: &[u8]) -> Result<LogRecord, rkyv::rancor::Error> {
    aisle_engine::command::decode(&aligned(bytes))
}

/// Decodes a snapshot file as start-up does (aligned, verified, validated).
pub fn decode_snapshot(name: &str, bytes: &[u8]) -> Result<Image, SnapshotError> {
    aisle_engine::snapshot::decode(name, &aligned(bytes))
}
