//! What a domain offers the engine besides its commands: a snapshot section, a copy taken
//! under the engine's locks, a restore, a canonical order, a self-check and logged pruning.
//!
//! A domain implementing [`Domain`] is registered with one line in `domains.rs`; the engine
//! then captures, snapshots, restores, compares, checks and prunes it with no other code.
//! Commands stay the domain's own (its variants in `Command`, its arm in the dispatcher).

use std::sync::Arc;

use crate::kernel::container::Section;
use crate::time::Timestamp;

pub trait Domain: Default + Send + Sync {
    /// Its part of a snapshot.
    type Section: Section + Clone + PartialEq + std::fmt::Debug;
    /// A copy taken while every engine lock is held (the snapshot's only pause): cheap
    /// clones and shared pointers; [`Domain::into_section`] builds the section afterwards.
    type Capture: Send + 'static;

    /// Copies the state. Called with every shard locked; the domain takes its own locks, whose
    /// [`crate::kernel::locks::Rank`] is above the shards'.
    fn capture(&self) -> Self::Capture;
    /// The archivable section, built with no lock held.
    fn into_section(capture: Self::Capture) -> Self::Section;
    /// Rebuilds the state from its section at start-up (nothing else runs). `location_codes`
    /// are the catalog's, by location id.
    fn restore(&self, section: &Self::Section, location_codes: &[Arc<str>]);
    /// Puts a section in a canonical order and clears what is a bound rather than state (id
    /// allocators: a refused request uses one up without a record), so replicas compare equal.
    fn canonicalize(section: &mut Self::Section);
    /// The domain's own consistency (counters against contents); `Err` says what is wrong.
    fn check(&self) -> Result<(), String>;
    /// Whether [`Domain::prune`] at `now` would forget anything.
    fn prunable(&self, now: Timestamp) -> bool;
    /// Forgets finished entries past their retention as of the logged time `at` (the
    /// sweeper's `Prune` record, applied under every shard lock); returns how many.
    fn prune(&self, at: Timestamp) -> u64;
}
