//! The one lock order of the engine, named and checked here.
//!
//! Every lock that can be held while another is taken is a [`RankedMutex`] or [`RankedRwLock`]
//! with a [`Rank`]. A thread may take a lock only while every lock it holds ranks lower; shards
//! are taken in ascending index among themselves, and several flash sales (same rank) only in
//! code order by the few paths that hold more than one (invariant checks). A violation is a
//! potential deadlock: it panics at once, in release builds too, so the tests that run every
//! path check the order and a wrong order never ships.
//!
//! Locks not listed here (the concurrent maps' internal shards, the WAL's buffers) are leaves:
//! nothing is taken while they are held.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use smallvec::SmallVec;

/// The lock order, lowest first. Take locks only upwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// A stock shard (SKUs, cells, expiry heaps); several only in ascending index.
    Shard = 1,
    /// The table of flash sales (held briefly to look one up, or to add one).
    SalesTable = 2,
    /// One flash sale's state (pool, counts, claim expiries).
    Sale = 3,
    /// The transfer book.
    TransferBook = 4,
    /// The catalog's location table.
    Locations = 5,
}

impl Rank {
    pub fn name(self) -> &'static str {
        match self {
            Rank::Shard => "shard",
            Rank::SalesTable => "sales table",
            Rank::Sale => "flash sale",
            Rank::TransferBook => "transfer book",
            Rank::Locations => "location table",
        }
    }
}

thread_local! {
    /// The ranked locks this thread holds, with the shard index for shards.
    static HELD: RefCell<SmallVec<[(Rank, usize); 8]>> = const { RefCell::new(SmallVec::new_const()) };
}

/// Records that this thread takes `rank` (with `index`, a shard's), after checking the order.
fn enter(rank: Rank, index: usize) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        for &(other, other_index) in held.iter() {
            let ordered = other < rank
                || (other == rank && rank == Rank::Shard && other_index < index)
                || (other == rank && rank == Rank::Sale);
            assert!(
                ordered,
                "lock order violated: taking the {} lock ({index}) while holding the {} lock ({other_index})",
                rank.name(),
                other.name(),
            );
        }
        held.push((rank, index));
    });
}

fn leave(rank: Rank, index: usize) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = held.iter().rposition(|&entry| entry == (rank, index)) {
            held.remove(at);
        }
    });
}

/// A held ranked lock: the underlying guard, leaving the order when dropped.
#[derive(Debug)]
pub struct Ranked<G> {
    rank: Rank,
    index: usize,
    guard: G,
}

impl<G> Ranked<G> {
    fn enter(rank: Rank, index: usize, take: impl FnOnce() -> G) -> Self {
        enter(rank, index);
        Ranked { rank, index, guard: take() }
    }
}

impl<G: Deref> Deref for Ranked<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Ranked<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<G> Drop for Ranked<G> {
    fn drop(&mut self) {
        leave(self.rank, self.index);
    }
}

pub type RankedGuard<'a, T> = Ranked<parking_lot::MutexGuard<'a, T>>;
pub type RankedRead<'a, T> = Ranked<parking_lot::RwLockReadGuard<'a, T>>;
pub type RankedWrite<'a, T> = Ranked<parking_lot::RwLockWriteGuard<'a, T>>;

/// A mutex with a place in the lock order.
#[derive(Debug)]
pub struct RankedMutex<T> {
    rank: Rank,
    index: usize,
    inner: parking_lot::Mutex<T>,
}

impl<T> RankedMutex<T> {
    pub fn new(rank: Rank, value: T) -> Self {
        Self::indexed(rank, 0, value)
    }

    /// A shard's mutex: shards are ordered among themselves by `index`.
    pub fn indexed(rank: Rank, index: usize, value: T) -> Self {
        RankedMutex { rank, index, inner: parking_lot::Mutex::new(value) }
    }

    pub fn lock(&self) -> RankedGuard<'_, T> {
        Ranked::enter(self.rank, self.index, || self.inner.lock())
    }
}

/// A reader-writer lock with a place in the lock order.
#[derive(Debug)]
pub struct RankedRwLock<T> {
    rank: Rank,
    inner: parking_lot::RwLock<T>,
}

impl<T> RankedRwLock<T> {
    pub fn new(rank: Rank, value: T) -> Self {
        RankedRwLock { rank, inner: parking_lot::RwLock::new(value) }
    }

    pub fn read(&self) -> RankedRead<'_, T> {
        Ranked::enter(self.rank, 0, || self.inner.read())
    }

    pub fn write(&self) -> RankedWrite<'_, T> {
        Ranked::enter(self.rank, 0, || self.inner.write())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(f: impl FnOnce()) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
    }

    #[test]
    fn locks_go_upwards_only() {
        let shards: Vec<RankedMutex<()>> = (0..3).map(|i| RankedMutex::indexed(Rank::Shard, i, ())).collect();
        let book = RankedMutex::new(Rank::TransferBook, ());
        let table = RankedRwLock::new(Rank::Locations, ());
        // Ascending shards, then the book, then the table: fine, and released in any order.
        let (a, c) = (shards[0].lock(), shards[2].lock());
        let (b, t) = (book.lock(), table.read());
        drop(a);
        drop((b, t, c));
        assert!(HELD.with(|held| held.borrow().is_empty()));
        let shards = std::sync::Arc::new(shards);
        let (s1, s2) = (shards.clone(), shards.clone());
        assert!(panics(move || {
            let _high = s1[2].lock();
            let _low = s1[1].lock();
        }));
        let table = std::sync::Arc::new(table);
        let t2 = table.clone();
        assert!(panics(move || {
            let _table = t2.write();
            let _shard = s2[0].lock();
        }));
    }
}
