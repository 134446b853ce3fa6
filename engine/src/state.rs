//! The engine's in-memory state and the one function that changes it: [`State::execute`].
//!
//! Layout: locations in one small table (read-mostly, behind an `RwLock`); SKUs with their
//! cells partitioned into shards by a hash of the SKU code, each shard behind its own mutex;
//! reservations and idempotency results in concurrent maps whose entries are only changed
//! while the shards of the reservation's lines are locked.
//!
//! **Architecture Invariant:** a command takes the locks of every shard it touches in
//! ascending shard order, checks, applies and appends its log record while holding them, so log
//! order equals apply order for any two commands that touch the same cell, and a multi-SKU
//! command is applied all-or-nothing. There is no lock shared by all reservations.
//!
//! Lock order: shard mutexes (ascending), then the sales table, then one flash sale's mutex,
//! then the transfer book ([`crate::transfer`]), then the location table, then map entries
//! (reservations, idempotency). Nothing takes them in another order. A flash-sale claim takes
//! no shard at all ([`crate::flash`]); a transfer command reads its transfer's SKUs under a
//! short lock of the book before it takes its shards, then the book again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::utils::CachePadded;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::{Mutex, MutexGuard, RwLock};
use rustc_hash::{FxBuildHasher, FxHashMap};
use smallvec::SmallVec;

use crate::audit::{AuditHint, AuditLog};
use crate::cell::Cell;
use crate::command::{
    Adjust, AdjustChange, CellPolicy, Command, IdempotencyTag, LogRecord, Receive, Reserve, ReserveLine,
};
use crate::error::{Conflict, EngineError, Entity, Result, Shortfall};
use crate::flash::{pool_change, PoolReturn, Sale, SaleState};
use crate::limits::*;
use crate::model::{LocationDef, SkuDef};
use crate::sourcing::GeoPoint;
use crate::time::{day_of, Timestamp};
use crate::transfer::{is_transfer_command, TransferBook};
use crate::view::{CellView, Outcome, ReservationStatus, ReservationView};
use crate::wal::{Durability, Lsn, Wal};

/// Dense index of a location in the location table; stable for the life of the data.
pub type LocId = u32;

#[derive(Debug, Default)]
pub(crate) struct LocationTable {
    pub by_code: FxHashMap<Box<str>, LocId>,
    pub defs: Vec<LocationDef>,
    /// Shared codes, so held lines can name their location without this table's lock.
    pub codes: Vec<Arc<str>>,
    /// Each location's coordinates, ready for the sourcing planner's distance ranking.
    pub points: Vec<GeoPoint>,
}

impl LocationTable {
    pub fn id(&self, code: &str) -> Option<LocId> {
        self.by_code.get(code).copied()
    }
    pub fn code(&self, id: LocId) -> &str {
        &self.defs[id as usize].code
    }

    pub fn insert(&mut self, def: LocationDef) -> LocId {
        let id = self.defs.len() as LocId;
        self.by_code.insert(def.code.as_str().into(), id);
        self.codes.push(def.code.as_str().into());
        self.points.push(GeoPoint::of(&def));
        self.defs.push(def);
        id
    }

    /// Replaces a location's definition (its code stays).
    pub fn replace(&mut self, id: LocId, def: LocationDef) {
        self.points[id as usize] = GeoPoint::of(&def);
        self.defs[id as usize] = def;
    }
}

/// A SKU and its cells, one per location that ever held stock or a policy.
#[derive(Debug)]
pub(crate) struct SkuEntry {
    pub code: Arc<str>,
    /// Shared so a snapshot copies a pointer, not the definition, while shards are locked.
    pub def: Arc<SkuDef>,
    /// Sorted by location id.
    pub cells: Vec<(LocId, Cell)>,
}

impl SkuEntry {
    pub fn cell(&self, location: LocId) -> Option<&Cell> {
        self.cells.binary_search_by_key(&location, |(id, _)| *id).ok().map(|i| &self.cells[i].1)
    }

    pub fn cell_mut(&mut self, location: LocId) -> Option<&mut Cell> {
        match self.cells.binary_search_by_key(&location, |(id, _)| *id) {
            Ok(i) => Some(&mut self.cells[i].1),
            Err(_) => None,
        }
    }

    pub fn cell_or_insert(&mut self, location: LocId) -> &mut Cell {
        let i = match self.cells.binary_search_by_key(&location, |(id, _)| *id) {
            Ok(i) => i,
            Err(i) => {
                // Grow by an eighth, not double: there may be a million cells and a cell is
                // created once per (SKU, location), so memory matters more than copies here.
                if self.cells.len() == self.cells.capacity() {
                    self.cells.reserve_exact((self.cells.len() / 8).max(4));
                }
                self.cells.insert(i, (location, Cell::default()));
                i
            }
        };
        &mut self.cells[i].1
    }
}

#[derive(Debug, Default)]
pub(crate) struct ShardState {
    pub skus: FxHashMap<Arc<str>, SkuEntry>,
    /// Expiry times of reservations whose lowest shard is this one. Entries are hints: a
    /// reservation extended or finished since is skipped when its entry comes due.
    pub expiries: BinaryHeap<Reverse<(Timestamp, u64)>>,
    /// Reservations whose lowest shard is this one that finished, oldest first, for pruning.
    pub finished: VecDeque<(Timestamp, u64)>,
}

/// A held line: shared SKU code, so a reservation does not copy it.
#[derive(Debug, Clone)]
pub(crate) struct HeldLine {
    pub sku: Arc<str>,
    pub location: LocId,
    pub location_code: Arc<str>,
    pub qty: u32,
}

/// A channel name stored inline (validated to at most `CHANNEL_LEN_MAX` ASCII bytes).
pub(crate) type ChannelName = arrayvec::ArrayString<CHANNEL_LEN_MAX>;

/// What never changes about a reservation once made.
#[derive(Debug)]
pub(crate) struct ReservationCore {
    /// Inline: channel names are short, and the reserve path should not allocate for one.
    pub channel: ChannelName,
    pub customer: Option<Box<str>>,
    pub lines: Box<[HeldLine]>,
    pub created_at: Timestamp,
    /// The flash sale this reservation is a claim on.
    pub sale: Option<Arc<Sale>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub id: u64,
    /// Shared: a snapshot clones every reservation while all shards are locked, so a clone
    /// must be one reference-count increment and a few plain fields.
    pub core: Arc<ReservationCore>,
    pub expires_at: Timestamp,
    pub status: ReservationStatus,
    pub order_ref: Option<Arc<str>>,
    /// When it left `active`/`committed`; finished reservations are pruned after a while.
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub(crate) enum IdempotencyState {
    /// The first request with this key is executing.
    Pending {
        fingerprint: u64,
    },
    Done {
        fingerprint: u64,
        at: Timestamp,
        lsn: Option<Lsn>,
        outcome: Arc<Outcome>,
    },
}

/// How a reservation's status change moves the units of each of its cells.
///
/// The one place these rules live: applying a command and describing it in the audit trail
/// both read them from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldChange {
    /// Held units are let go (release, expiry).
    Release,
    /// Held units become committed to an order.
    Commit,
    /// Committed units leave the building.
    Ship,
    /// Committed units are freed (order cancelled).
    Uncommit,
    /// A flash-sale claim's held units go back to the sale's pool: still reserved.
    ReleaseToPool,
    /// A flash-sale claim's sold units go back to the sale's pool: reserved again.
    UncommitToPool,
}

impl HoldChange {
    /// The status a command moves a reservation from and to, and what it does to its cells.
    pub fn of(command: &Command) -> Option<(ReservationStatus, ReservationStatus, HoldChange)> {
        use ReservationStatus::*;
        Some(match command {
            Command::Commit { .. } => (Active, Committed, HoldChange::Commit),
            Command::Fulfill { .. } => (Committed, Fulfilled, HoldChange::Ship),
            Command::Release { .. } => (Active, Released, HoldChange::Release),
            Command::Cancel { .. } => (Committed, Cancelled, HoldChange::Uncommit),
            Command::Expire { .. } => (Active, Expired, HoldChange::Release),
            _ => return None,
        })
    }

    /// The change for a flash-sale claim whose freed units go `back` (to its open pool, where
    /// they stay reserved, or to the cell once the sale has ended).
    pub fn for_claim(self, back: PoolReturn) -> Self {
        match (self, back) {
            (HoldChange::Release, PoolReturn::ToPool) => HoldChange::ReleaseToPool,
            (HoldChange::Uncommit, PoolReturn::ToPool) => HoldChange::UncommitToPool,
            (change, _) => change,
        }
    }

    /// Changes of (`on_hand`, `reserved`, `committed`) for `qty` units.
    pub fn deltas(self, qty: i64) -> (i64, i64, i64) {
        match self {
            HoldChange::Release => (0, -qty, 0),
            HoldChange::Commit => (0, -qty, qty),
            HoldChange::Ship => (-qty, 0, -qty),
            HoldChange::Uncommit => (0, 0, -qty),
            HoldChange::ReleaseToPool => (0, 0, 0),
            HoldChange::UncommitToPool => (0, qty, -qty),
        }
    }

    fn apply(self, cell: &mut Cell, qty: i64, today: crate::time::Day) {
        let (on_hand, reserved, committed) = self.deltas(qty);
        cell.reserved += reserved;
        cell.committed += committed;
        if on_hand < 0 {
            // Shipping takes lots earliest-expiring first; a count may have left fewer units.
            cell.ship((-on_hand).min(cell.on_hand), today);
        }
    }
}

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

/// The whole in-memory state. Owned by the engine; the WAL is passed in so replay can use the
/// same code without logging.
#[derive(Debug)]
pub(crate) struct State {
    pub locations: RwLock<LocationTable>,
    pub shards: Box<[CachePadded<Mutex<ShardState>>]>,
    shard_mask: usize,
    pub reservations: DashMap<u64, Reservation, FxBuildHasher>,
    pub idempotency: DashMap<Box<str>, IdempotencyState, FxBuildHasher>,
    pub next_reservation_id: AtomicU64,
    pub active_reservations: AtomicI64,
    /// Flash sales by code; read-mostly (claims only clone an entry out).
    pub sales: RwLock<FxHashMap<Box<str>, Arc<Sale>>>,
    /// Transfers and replenishment requests; taken after the shards a command locks.
    pub transfers: Mutex<TransferBook>,
    pub next_transfer_id: AtomicU64,
    pub next_replenishment_id: AtomicU64,
    /// Where applied records' movements go; `None` when nothing is logged.
    pub audit: Option<AuditLog>,
}

/// Where a command's effects go: logged (live) or not (replay of the log itself).
pub(crate) enum Sink<'w> {
    Log(&'w Wal),
    /// Replaying the record with this LSN.
    Replay(Lsn),
}

pub(crate) type Guards<'a> = SmallVec<[(usize, MutexGuard<'a, ShardState>); 4]>;

impl State {
    pub fn new(shards: usize, audit: Option<AuditLog>) -> Self {
        assert!(shards.is_power_of_two() && shards <= SHARDS_MAX);
        State {
            locations: RwLock::new(LocationTable::default()),
            shards: (0..shards).map(|_| CachePadded::new(Mutex::new(ShardState::default()))).collect(),
            shard_mask: shards - 1,
            reservations: DashMap::with_hasher(FxBuildHasher),
            idempotency: DashMap::with_hasher(FxBuildHasher),
            next_reservation_id: AtomicU64::new(1),
            active_reservations: AtomicI64::new(0),
            sales: RwLock::new(FxHashMap::default()),
            transfers: Mutex::new(TransferBook::default()),
            next_transfer_id: AtomicU64::new(1),
            next_replenishment_id: AtomicU64::new(1),
            audit,
        }
    }

    pub fn shard_of(&self, sku: &str) -> usize {
        // Fx mixes low bits poorly for short keys; take the high bits.
        ((FxBuildHasher.hash_one(sku) >> 40) as usize) & self.shard_mask
    }

    pub(crate) fn lock(&self, mut shards: SmallVec<[usize; 4]>) -> Guards<'_> {
        shards.sort_unstable();
        shards.dedup();
        shards.into_iter().map(|i| (i, self.shards[i].lock())).collect()
    }

    pub fn lock_all(&self) -> Vec<MutexGuard<'_, ShardState>> {
        self.shards.iter().map(|shard| shard.lock()).collect()
    }

    /// Runs one command: claims its idempotency key, locks its shards, checks it, applies it
    /// and (live) appends it to the log — all or nothing.
    pub fn execute(&self, record: &LogRecord, sink: Sink<'_>) -> Result<(Outcome, Option<Lsn>)> {
        let key = record.idempotency.as_ref().map(|tag| scoped_key(&record.actor, &tag.key));
        if let (Sink::Log(_), Some(key), Some(tag)) = (&sink, &key, &record.idempotency) {
            if let Some(done) = self.claim_key(key, tag)? {
                return Ok(done);
            }
        }
        let result = self.execute_locked(record, &sink, key.as_deref());
        if result.is_err() {
            if let Some(key) = &key {
                self.idempotency.remove_if(key.as_str(), |_, state| matches!(state, IdempotencyState::Pending { .. }));
            }
        }
        result
    }

    /// Returns the remembered result of a finished request with this key, or claims the key.
    fn claim_key(&self, key: &str, tag: &IdempotencyTag) -> Result<Option<(Outcome, Option<Lsn>)>> {
        match self.idempotency.entry(key.into()) {
            Entry::Occupied(entry) => match entry.get() {
                IdempotencyState::Done { fingerprint, outcome, lsn, .. } if *fingerprint == tag.fingerprint => {
                    Ok(Some((Outcome::clone(outcome), *lsn)))
                }
                IdempotencyState::Done { .. } => Err(Conflict::IdempotencyKeyReused.into()),
                IdempotencyState::Pending { fingerprint } if *fingerprint == tag.fingerprint => {
                    Err(Conflict::IdempotencyKeyInProgress.into())
                }
                IdempotencyState::Pending { .. } => Err(Conflict::IdempotencyKeyReused.into()),
            },
            Entry::Vacant(entry) => {
                entry.insert(IdempotencyState::Pending { fingerprint: tag.fingerprint });
                Ok(None)
            }
        }
    }

    fn execute_locked(&self, record: &LogRecord, sink: &Sink<'_>, key: Option<&str>) -> Result<(Outcome, Option<Lsn>)> {
        // Catalog writes serialise on the location table; everything else on shards.
        if let Command::PutLocation(def) = &record.command {
            let mut table = self.locations.write();
            let created = match table.id(&def.code) {
                Some(id) => {
                    table.replace(id, def.clone());
                    false
                }
                None => {
                    if table.defs.len() >= LOCATIONS_MAX {
                        return Err(EngineError::invalid("code", "too many locations"));
                    }
                    table.insert(def.clone());
                    true
                }
            };
            let outcome = Outcome::Put { created };
            let lsn = self.finish(record, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if let Command::ReserveSourced(request) = &record.command {
            // Planned and held under the same shard locks: no plan-then-race. The log gets the
            // resolved reservation, so replay never re-plans.
            let mut guards = self.lock(self.shards_of(&record.command)?);
            let reserve = self.resolve_sourced(record.at, request, &mut guards)?;
            let resolved = LogRecord {
                at: record.at,
                actor: record.actor.clone(),
                idempotency: record.idempotency.clone(),
                command: Command::Reserve(reserve),
            };
            let outcome = self.apply(&resolved, &mut guards, None)?;
            let lsn = self.finish(&resolved, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if let Command::Prune = &record.command {
            let mut guards = self.lock((0..self.shards.len()).collect());
            let mut book = self.transfers.lock();
            let outcome = self.apply_prune(record.at, &mut guards, &mut book);
            let lsn = self.finish(record, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if is_transfer_command(&record.command) {
            let mut guards = self.lock(self.shards_of(&record.command)?);
            // Held through the log append: steps of one transfer are logged in apply order.
            let mut book = self.transfers.lock();
            let (outcome, resolved) = self.apply_transfer(record, &mut guards, &mut book)?;
            let lsn = self.finish(resolved.as_ref().unwrap_or(record), sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if let Command::Claim(claim) = &record.command {
            // A claim touches its sale's pool only: no shard, so other SKUs never wait on it.
            let sale = self.sale(&claim.sale)?;
            let mut state = sale.state.lock();
            let outcome = self.apply_claim(record, claim, &sale, &mut state)?;
            let lsn = self.finish(record, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }
        if let Command::PutFlashSale(def) = &record.command {
            let mut guards = self.lock(smallvec::smallvec![self.shard_of(&def.sku)]);
            // Held through the log append: two writes of one sale are logged in apply order.
            let mut table = self.sales.write();
            let existing = table.get(def.code.as_str()).cloned();
            let mut existing_state = existing.as_ref().map(|sale| sale.state.lock());
            let pool_before = existing_state.as_deref().map(|state| self.pool_codes(state)).unwrap_or_default();
            let existing_sale = existing.as_deref().zip(existing_state.as_deref_mut());
            let (outcome, created) = self.apply_put_sale(record, def, &mut guards, existing_sale, table.len())?;
            let hint = match &outcome {
                Outcome::FlashSale { view, .. } => AuditHint::Pool(pool_change(&pool_before, view)),
                _ => AuditHint::None,
            };
            let lsn = self.finish(record, sink, key, &outcome, &hint)?;
            if let Some(sale) = created {
                table.insert(def.code.as_str().into(), sale);
            }
            return Ok((outcome, lsn));
        }

        let sale = self.sale_of(&record.command)?;
        let shards = self.shards_of(&record.command)?;
        let mut guards = self.lock(shards);
        let mut sale_state = sale.as_ref().map(|sale| sale.state.lock());
        let mut sale = sale.as_deref().zip(sale_state.as_deref_mut());
        // A count's movement is the difference to what was on hand before it.
        let mut hint = match &record.command {
            Command::Adjust(Adjust { sku, location, change: AdjustChange::Counted(_), .. }) => {
                let location = self.locations.read().id(location);
                let entry = self.sku_mut(&mut guards, sku).ok();
                AuditHint::OnHandBefore(
                    entry.zip(location).and_then(|(entry, id)| entry.cell(id)).map_or(0, |cell| cell.on_hand),
                )
            }
            _ => AuditHint::None,
        };
        let outcome = self.apply(record, &mut guards, sale.as_mut().map(|(sale, state)| (*sale, &mut **state)))?;
        if let Some((_, state)) = &sale {
            hint = match (&record.command, &outcome) {
                (Command::EndFlashSale { .. }, Outcome::FlashSale { view, .. }) => AuditHint::Pool(
                    view.pool.iter().map(|share| (share.location.clone(), -i64::from(share.remaining))).collect(),
                ),
                _ => AuditHint::Claim(if state.ended { PoolReturn::ToCell } else { PoolReturn::ToPool }),
            };
        }
        let lsn = self.finish(record, sink, key, &outcome, &hint)?;
        drop(sale_state);
        drop(guards);
        Ok((outcome, lsn))
    }

    /// The flash sale a command touches besides its shards, if any.
    fn sale_of(&self, command: &Command) -> Result<Option<Arc<Sale>>> {
        Ok(match command {
            Command::EndFlashSale { code } => Some(self.sale(code)?),
            Command::Extend { id, .. }
            | Command::Commit { id, .. }
            | Command::Fulfill { id }
            | Command::Release { id }
            | Command::Cancel { id }
            | Command::Expire { id } => self.reservations.get(id).and_then(|r| r.core.sale.clone()),
            _ => None,
        })
    }

    /// Appends the record (live) and remembers the outcome under its idempotency key. Called
    /// with the command's locks held.
    fn finish(
        &self,
        record: &LogRecord,
        sink: &Sink<'_>,
        key: Option<&str>,
        outcome: &Outcome,
        hint: &AuditHint,
    ) -> Result<Option<Lsn>> {
        let lsn = match sink {
            // Nothing is written without durability: skip the encoding too.
            Sink::Log(wal) if wal.durability() == Durability::None => Some(wal.append(&[])?),
            Sink::Log(wal) => Some(
                crate::command::with_encoded(record, |bytes| wal.append(bytes))
                    .map_err(|e| EngineError::Internal(format!("encoding a log record: {e}")))??,
            ),
            Sink::Replay(_) => None,
        };
        if let (Some(audit), Some(lsn)) = (
            &self.audit,
            lsn.or(match sink {
                Sink::Replay(lsn) => Some(*lsn),
                Sink::Log(_) => None,
            }),
        ) {
            audit.record(lsn, record, outcome, hint);
        }
        if let (Some(key), Some(tag)) = (key, &record.idempotency) {
            self.idempotency.insert(
                key.into(),
                IdempotencyState::Done {
                    fingerprint: tag.fingerprint,
                    at: record.at,
                    lsn,
                    outcome: Arc::new(outcome.clone()),
                },
            );
        }
        Ok(lsn)
    }

    pub(crate) fn shards_of(&self, command: &Command) -> Result<SmallVec<[usize; 4]>> {
        Ok(match command {
            Command::PutLocation(_) => SmallVec::new(),
            Command::PutSku(def) => smallvec::smallvec![self.shard_of(&def.code)],
            Command::Receive(Receive { sku, .. })
            | Command::Adjust(Adjust { sku, .. })
            | Command::SetCellPolicy(CellPolicy { sku, .. }) => {
                smallvec::smallvec![self.shard_of(sku)]
            }
            Command::Reserve(reserve) => reserve.lines.iter().map(|l| self.shard_of(&l.sku)).collect(),
            Command::ReserveSourced(request) => request.lines.iter().map(|l| self.shard_of(&l.sku)).collect(),
            Command::PutFlashSale(def) => smallvec::smallvec![self.shard_of(&def.sku)],
            Command::Claim(_) => SmallVec::new(),
            Command::EndFlashSale { code } => smallvec::smallvec![self.shard_of(&self.sale(code)?.sku)],
            Command::Extend { id, .. }
            | Command::Commit { id, .. }
            | Command::Fulfill { id }
            | Command::Release { id }
            | Command::Cancel { id }
            | Command::Expire { id } => {
                let reservation = self
                    .reservations
                    .get(id)
                    .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
                reservation.core.lines.iter().map(|l| self.shard_of(&l.sku)).collect()
            }
            Command::CreateTransfer(create) => create.lines.iter().map(|l| self.shard_of(&l.sku)).collect(),
            Command::RequestReplenishment(request) => request.lines.iter().map(|l| self.shard_of(&l.sku)).collect(),
            // A transfer's and a request's SKUs never change: read under a short lock, then
            // taken again after the shards (the lock order).
            Command::ShipTransfer { id } | Command::ReceiveTransfer { id, .. } | Command::CancelTransfer { id } => {
                let book = self.transfers.lock();
                let transfer =
                    book.transfers.get(id).ok_or_else(|| EngineError::not_found(Entity::Transfer, id.to_string()))?;
                transfer.lines.iter().map(|l| self.shard_of(&l.sku)).collect()
            }
            Command::ApproveReplenishment { id, .. } => {
                let book = self.transfers.lock();
                let request = book
                    .replenishments
                    .get(id)
                    .ok_or_else(|| EngineError::not_found(Entity::Replenishment, id.to_string()))?;
                request.lines.iter().map(|(sku, _)| self.shard_of(sku)).collect()
            }
            Command::RejectReplenishment { .. } => SmallVec::new(),
            Command::Prune => (0..self.shards.len()).collect(),
        })
    }

    fn location_id(&self, code: &str) -> Result<LocId> {
        self.locations.read().id(code).ok_or_else(|| EngineError::not_found(Entity::Location, code))
    }

    pub(crate) fn sku_mut<'g>(&self, guards: &'g mut Guards<'_>, sku: &str) -> Result<&'g mut SkuEntry> {
        let shard = self.shard_of(sku);
        let state = guards
            .iter_mut()
            .find(|(i, _)| *i == shard)
            .map(|(_, guard)| &mut **guard)
            .ok_or_else(|| EngineError::Internal(format!("shard {shard} of {sku} is not locked")))?;
        state.skus.get_mut(sku).ok_or_else(|| EngineError::not_found(Entity::Sku, sku))
    }

    /// Like [`State::sku_mut`], for reading several SKUs at once.
    pub(crate) fn sku_ref<'g>(&self, guards: &'g Guards<'_>, sku: &str) -> Result<&'g SkuEntry> {
        let shard = self.shard_of(sku);
        let state = guards
            .iter()
            .find(|(i, _)| *i == shard)
            .map(|(_, guard)| &**guard)
            .ok_or_else(|| EngineError::Internal(format!("shard {shard} of {sku} is not locked")))?;
        state.skus.get(sku).ok_or_else(|| EngineError::not_found(Entity::Sku, sku))
    }

    fn shard_mut<'g>(&self, guards: &'g mut Guards<'_>, shard: usize) -> Result<&'g mut ShardState> {
        guards
            .iter_mut()
            .find(|(i, _)| *i == shard)
            .map(|(_, guard)| &mut **guard)
            .ok_or_else(|| EngineError::Internal(format!("shard {shard} is not locked")))
    }

    /// Checks and applies one command whose shards are locked. On error nothing has changed.
    fn apply(
        &self,
        record: &LogRecord,
        guards: &mut Guards<'_>,
        sale: Option<(&Sale, &mut SaleState)>,
    ) -> Result<Outcome> {
        let today = day_of(record.at);
        match &record.command {
            Command::PutLocation(_) => Err(EngineError::Internal("locations are not sharded".into())),
            Command::PutSku(def) => {
                let shard = self.shard_of(&def.code);
                let state = self.shard_mut(guards, shard)?;
                let created = match state.skus.get_mut(def.code.as_str()) {
                    Some(entry) => {
                        entry.def = Arc::new(def.clone());
                        false
                    }
                    None => {
                        let code: Arc<str> = def.code.as_str().into();
                        state
                            .skus
                            .insert(code.clone(), SkuEntry { code, def: Arc::new(def.clone()), cells: Vec::new() });
                        true
                    }
                };
                Ok(Outcome::Put { created })
            }
            Command::Receive(receive) => {
                let location = self.location_id(&receive.location)?;
                let entry = self.sku_mut(guards, &receive.sku)?;
                if let Some(lot) = &receive.lot {
                    let conflicts =
                        entry.cell(location).is_some_and(|cell| cell.lot_conflicts(&lot.code, lot.expires_on));
                    if conflicts {
                        return Err(EngineError::invalid(
                            "lot.expires_on",
                            "the lot already exists with another expiry date",
                        ));
                    }
                    let lots = entry.cell(location).map_or(0, |cell| cell.lots().len());
                    if lots >= LOTS_PER_CELL_MAX {
                        return Err(EngineError::invalid("lot", "too many lots in this cell"));
                    }
                }
                let cell = entry.cell_or_insert(location);
                cell.receive(
                    i64::from(receive.qty),
                    receive.unit_cost,
                    receive.lot.as_ref().map(|lot| (lot.code.as_str(), lot.expires_on)),
                );
                Ok(Outcome::Cell(CellView::of(&receive.sku, &receive.location, cell, today)))
            }
            Command::Adjust(adjust) => {
                let location = self.location_id(&adjust.location)?;
                let entry = self.sku_mut(guards, &adjust.sku)?;
                let before = entry.cell(location).map_or(0, |cell| cell.on_hand);
                let delta = match adjust.change {
                    AdjustChange::Delta(delta) => delta,
                    AdjustChange::Counted(counted) => counted - before,
                };
                if before + delta < 0 {
                    return Err(EngineError::invalid(
                        "delta",
                        format!("would leave on_hand at {} (it is {before})", before + delta),
                    ));
                }
                if let Some(lot) = &adjust.lot {
                    let cell = entry.cell(location);
                    if delta > 0 && cell.is_some_and(|c| c.lot_conflicts(&lot.code, lot.expires_on)) {
                        return Err(EngineError::invalid(
                            "lot.expires_on",
                            "the lot already exists with another expiry date",
                        ));
                    }
                }
                let cell = entry.cell_or_insert(location);
                let lot = adjust.lot.as_ref().map(|lot| (lot.code.as_str(), lot.expires_on));
                if delta > 0 {
                    cell.add(delta, lot);
                } else if delta < 0 {
                    cell.remove(-delta, lot.map(|(code, _)| code));
                }
                Ok(Outcome::Cell(CellView::of(&adjust.sku, &adjust.location, cell, today)))
            }
            Command::SetCellPolicy(policy) => {
                let location = self.location_id(&policy.location)?;
                let entry = self.sku_mut(guards, &policy.sku)?;
                let cell = entry.cell_or_insert(location);
                if let Some(v) = policy.safety_stock {
                    cell.safety_stock = v;
                }
                if let Some(v) = policy.reorder_point {
                    cell.reorder_point = v;
                }
                if let Some(v) = policy.reorder_qty {
                    cell.reorder_qty = v;
                }
                Ok(Outcome::Cell(CellView::of(&policy.sku, &policy.location, cell, today)))
            }
            Command::Reserve(reserve) => self.apply_reserve(record.at, reserve, guards),
            Command::Extend { id, .. } if sale.is_some() => Err(Conflict::Other(format!(
                "reservation {id} is a flash-sale claim; its hold time is the sale's and cannot be extended"
            ))
            .into()),
            Command::Extend { id, expires_at } => {
                let (view, home) = self.modify(*id, ReservationStatus::Active, |r| r.expires_at = *expires_at)?;
                self.shard_mut(guards, home)?.expiries.push(Reverse((*expires_at, *id)));
                Ok(Outcome::Reservation(view))
            }
            Command::Expire { id } if self.reservations.get(id).is_none_or(|r| r.expires_at > record.at) => {
                Err(Conflict::Other(format!("reservation {id} is not due to expire")).into())
            }
            Command::Commit { id, .. }
            | Command::Fulfill { id }
            | Command::Release { id }
            | Command::Cancel { id }
            | Command::Expire { id } => Ok(Outcome::Reservation(self.transition(record, *id, guards, sale)?)),
            Command::PutFlashSale(_)
            | Command::Claim(_)
            | Command::ReserveSourced(_)
            | Command::CreateTransfer(_)
            | Command::ShipTransfer { .. }
            | Command::ReceiveTransfer { .. }
            | Command::CancelTransfer { .. }
            | Command::RequestReplenishment(_)
            | Command::ApproveReplenishment { .. }
            | Command::RejectReplenishment { .. }
            | Command::Prune => Err(EngineError::Internal("this command runs on its own path".into())),
            Command::EndFlashSale { .. } => {
                let (sale, state) =
                    sale.ok_or_else(|| EngineError::Internal("the ending sale is not locked".into()))?;
                self.apply_end_sale(record, sale, state, guards)
            }
        }
    }

    fn apply_reserve(&self, at: Timestamp, reserve: &Reserve, guards: &mut Guards<'_>) -> Result<Outcome> {
        let today = day_of(at);
        if self.reservations.contains_key(&reserve.id) {
            return Err(EngineError::Internal(format!("reservation id {} reused", reserve.id)));
        }
        // Resolve locations once, under one short read lock.
        let mut locations: SmallVec<[(LocId, Arc<str>); 4]> = SmallVec::with_capacity(reserve.lines.len());
        {
            let table = self.locations.read();
            for (i, line) in reserve.lines.iter().enumerate() {
                let id = table
                    .id(&line.location)
                    .ok_or_else(|| EngineError::not_found(Entity::Location, line.location.as_str()))?;
                if !table.defs[id as usize].sells_to(&reserve.channel) {
                    return Err(EngineError::invalid(
                        format!("lines[{i}].location"),
                        format!("{} does not sell to channel {}", line.location, reserve.channel),
                    ));
                }
                locations.push((id, table.codes[id as usize].clone()));
            }
        }
        // Check every line first so the answer lists each shortfall.
        let mut shortfalls = Vec::new();
        for (line, (location, _)) in reserve.lines.iter().zip(&locations) {
            let location = *location;
            let entry = self.sku_mut(guards, &line.sku)?;
            if !entry.def.active {
                return Err(EngineError::invalid("lines", format!("sku {} is not active", line.sku)));
            }
            let available = entry.cell(location).map_or(0, |cell| cell.available(today));
            shortfalls.extend(Shortfall::of(&line.sku, Some(&line.location), line.qty, available));
        }
        if !shortfalls.is_empty() {
            return Err(EngineError::InsufficientStock(shortfalls));
        }
        let mut held = Vec::with_capacity(reserve.lines.len());
        for (line, (location, location_code)) in reserve.lines.iter().zip(locations) {
            let entry = self.sku_mut(guards, &line.sku)?;
            let code = entry.code.clone();
            let cell = entry.cell_mut(location).ok_or_else(|| EngineError::Internal("checked cell vanished".into()))?;
            cell.reserved += i64::from(line.qty);
            debug_assert!(cell.available_raw(today) >= 0, "a reservation made available negative");
            held.push(HeldLine { sku: code, location, location_code, qty: line.qty });
        }
        let reservation = Reservation {
            id: reserve.id,
            core: Arc::new(ReservationCore {
                channel: ChannelName::from(&reserve.channel)
                    .map_err(|_| EngineError::invalid("channel", "too long"))?,
                customer: reserve.customer.as_deref().map(Into::into),
                lines: held.into(),
                created_at: at,
                sale: None,
            }),
            expires_at: reserve.expires_at,
            status: ReservationStatus::Active,
            order_ref: None,
            finished_at: None,
        };
        let home = self.home_shard(&reservation);
        self.shard_mut(guards, home)?.expiries.push(Reverse((reserve.expires_at, reserve.id)));
        let view = self.view(&reservation);
        self.reservations.insert(reserve.id, reservation);
        self.next_reservation_id.fetch_max(reserve.id + 1, Ordering::Relaxed);
        self.active_reservations.fetch_add(1, Ordering::Relaxed);
        Ok(Outcome::Reservation(view))
    }

    /// Moves reservation `id` along the status change its command names ([`HoldChange::of`]),
    /// changing each of its cells accordingly.
    fn transition(
        &self,
        record: &LogRecord,
        id: u64,
        guards: &mut Guards<'_>,
        sale: Option<(&Sale, &mut SaleState)>,
    ) -> Result<ReservationView> {
        let (from, to, mut change) =
            HoldChange::of(&record.command).ok_or_else(|| EngineError::Internal("not a transition".into()))?;
        let order_ref = match &record.command {
            Command::Commit { order_ref, .. } => order_ref.as_deref(),
            _ => None,
        };
        let (at, today) = (record.at, day_of(record.at));
        // One map entry, locked once: its lines change the cells, then its status moves.
        let (view, home) = {
            let mut reservation = self
                .reservations
                .get_mut(&id)
                .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
            if reservation.status != from {
                return Err(Conflict::ReservationState {
                    id,
                    status: reservation.status.as_str(),
                    expected: from.as_str(),
                }
                .into());
            }
            if let Some((sale, state)) = sale {
                let back = self.book_claim_change(&reservation, to, sale, state)?;
                change = change.for_claim(back);
            }
            for line in reservation.core.lines.iter() {
                let entry = self.sku_mut(guards, &line.sku)?;
                let cell = entry
                    .cell_mut(line.location)
                    .ok_or_else(|| EngineError::Internal(format!("reservation {id} holds a missing cell")))?;
                change.apply(cell, i64::from(line.qty), today);
            }
            reservation.status = to;
            if let Some(order_ref) = order_ref {
                reservation.order_ref = Some(order_ref.into());
            }
            if !to.is_live() {
                reservation.finished_at = Some(at);
            }
            (self.view(&reservation), self.home_shard(&reservation))
        };
        if from == ReservationStatus::Active {
            self.active_reservations.fetch_sub(1, Ordering::Relaxed);
        }
        if !to.is_live() {
            let home = self.shard_mut(guards, home)?;
            crate::time::push_in_time_order(&mut home.finished, (at, id));
            if home.finished.len() > FINISHED_RESERVATIONS_PER_SHARD_MAX {
                if let Some((_, oldest)) = home.finished.pop_front() {
                    self.reservations.remove_if(&oldest, |_, r| !r.status.is_live());
                }
            }
        }
        Ok(view)
    }

    /// Changes an entry in the `expected` state; returns its view and home shard.
    fn modify(
        &self,
        id: u64,
        expected: ReservationStatus,
        change: impl FnOnce(&mut Reservation),
    ) -> Result<(ReservationView, usize)> {
        let mut reservation = self
            .reservations
            .get_mut(&id)
            .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
        if reservation.status != expected {
            return Err(Conflict::ReservationState {
                id,
                status: reservation.status.as_str(),
                expected: expected.as_str(),
            }
            .into());
        }
        change(&mut reservation);
        Ok((self.view(&reservation), self.home_shard(&reservation)))
    }

    /// The shard whose expiry heap tracks a reservation: the lowest of its lines' shards.
    pub fn home_shard(&self, reservation: &Reservation) -> usize {
        reservation.core.lines.iter().map(|line| self.shard_of(&line.sku)).min().unwrap_or(0)
    }

    pub fn view(&self, reservation: &Reservation) -> ReservationView {
        ReservationView {
            id: reservation.id,
            channel: reservation.core.channel.to_string(),
            customer: reservation.core.customer.as_deref().map(str::to_owned),
            status: reservation.status,
            created_at: reservation.core.created_at,
            expires_at: reservation.expires_at,
            order_ref: reservation.order_ref.as_deref().map(str::to_owned),
            lines: reservation
                .core
                .lines
                .iter()
                .map(|line| ReserveLine {
                    sku: line.sku.to_string(),
                    location: line.location_code.to_string(),
                    qty: line.qty,
                })
                .collect(),
            flash_sale: reservation.core.sale.as_ref().map(|sale| sale.code.to_string()),
        }
    }

    /// Whether a [`Command::Prune`] at `now` would forget anything; the sweeper logs one only
    /// then, so an idle engine writes nothing.
    pub fn prunable(&self, now: Timestamp) -> bool {
        let horizon = now - FINISHED_RESERVATION_RETENTION_MS;
        self.transfers.lock().prunable(now)
            || self.shards.iter().any(|shard| shard.lock().finished.front().is_some_and(|&(at, _)| at <= horizon))
            || self.idempotency.iter().any(|entry| {
                matches!(entry.value(), IdempotencyState::Done { at, .. } if *at <= now - IDEMPOTENCY_RETENTION_MS)
            })
    }

    /// Applies a [`Command::Prune`] at `at` with every shard and the transfer book locked:
    /// forgets idempotency results, finished reservations, transfers and replenishment
    /// requests older than their retention as of the record's time, never the wall clock.
    fn apply_prune(&self, at: Timestamp, guards: &mut Guards<'_>, book: &mut TransferBook) -> Outcome {
        let transfers = book.prune(at);
        let before = self.idempotency.len();
        self.idempotency.retain(|_, state| match state {
            IdempotencyState::Done { at: done_at, .. } => *done_at > at - IDEMPOTENCY_RETENTION_MS,
            IdempotencyState::Pending { .. } => true,
        });
        let idempotency = before.saturating_sub(self.idempotency.len()) as u64;
        let mut reservations = 0;
        for (_, shard) in guards.iter_mut() {
            while let Some(&(finished_at, id)) = shard.finished.front() {
                if finished_at > at - FINISHED_RESERVATION_RETENTION_MS {
                    break;
                }
                shard.finished.pop_front();
                if self.reservations.remove_if(&id, |_, r| !r.status.is_live()).is_some() {
                    reservations += 1;
                }
            }
        }
        Outcome::Pruned { idempotency, reservations, transfers }
    }
}

/// Idempotency keys are scoped by actor so two clients' keys never collide.
fn scoped_key(actor: &str, key: &str) -> String {
    let mut scoped = String::with_capacity(actor.len() + 1 + key.len());
    scoped.push_str(actor);
    scoped.push('\u{1f}');
    scoped.push_str(key);
    scoped
}
