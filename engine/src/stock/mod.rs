//! The stock domain: cells (what is where), holds on them (reservations, and the pools and
//! claims of flash sales and the lines of transfers that other domains keep as holds), and
//! the reads over them (sourcing plans, availability, valuation).
//!
//! Layout: SKUs with their cells partitioned into shards by a hash of the SKU code, each
//! shard behind its own mutex; reservations in a concurrent map whose entries are only changed
//! while the shards of the reservation's lines are locked.
//!
//! **Architecture Invariant:** a command takes the locks of every shard it touches in
//! ascending shard order ([`Stock::lock`]), checks, applies and appends its log record while
//! holding them, so log order equals apply order for any two commands that touch the same
//! cell, and a multi-SKU command is applied all-or-nothing. There is no lock shared by all
//! reservations.
//!
//! SPEC invariant 1 (no hold makes `available` negative): [`Stock::apply_reserve`] checks
//! every line against `Cell::available` before changing anything. Invariant 2 (`reserved` and
//! `committed` equal the live holds): every status change goes through [`Stock::transition`]
//! with the rules of [`HoldChange`].

pub mod availability;
pub mod commands;
pub mod snapshot;
pub mod sourced;
pub mod valuation;
pub mod views;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::utils::CachePadded;
use dashmap::DashMap;
use rustc_hash::{FxBuildHasher, FxHashMap};
use smallvec::SmallVec;

use crate::catalog::{Catalog, LocId};
use crate::cell::Cell;
use crate::error::{Conflict, EngineError, Entity, Result, Shortfall};
use crate::kernel::locks::{Rank, RankedGuard, RankedMutex};
use crate::limits::*;
use crate::model::SkuDef;
use crate::time::{day_of, Timestamp};
use commands::{Adjust, AdjustChange, CellPolicy, Receive, Reserve, ReserveLine};
use views::{CellView, ReservationStatus, ReservationView};

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
    /// The code of the flash sale this reservation is a claim on.
    pub sale: Option<Arc<str>>,
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

/// How a reservation's status change moves the units of each of its cells.
///
/// The one place these rules live: applying a command and describing it in the audit trail
/// both read them from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
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

/// A reservation's status change, as a command names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Commit,
    Fulfill,
    Release,
    Cancel,
    Expire,
}

impl Transition {
    /// The status it moves a reservation from and to, and what it does to its cells.
    pub fn rule(self) -> (ReservationStatus, ReservationStatus, HoldChange) {
        use ReservationStatus::*;
        match self {
            Transition::Commit => (Active, Committed, HoldChange::Commit),
            Transition::Fulfill => (Committed, Fulfilled, HoldChange::Ship),
            Transition::Release => (Active, Released, HoldChange::Release),
            Transition::Cancel => (Committed, Cancelled, HoldChange::Uncommit),
            Transition::Expire => (Active, Expired, HoldChange::Release),
        }
    }
}

/// The flash-sale side of a claim's status change (implemented by [`crate::flash`]).
pub(crate) trait ClaimBook {
    /// Check phase: the sale can take the change (changes nothing).
    fn check(&self, reservation: &Reservation, to: ReservationStatus) -> Result<()>;
    /// Apply phase: books the change on the sale; answers where freed units go.
    fn book(&mut self, reservation: &Reservation, to: ReservationStatus) -> PoolReturn;
}

/// A line at a location that does not sell to the request's channel: the catalog as it is now
/// does not allow it (409), the request itself is well formed.
fn not_sold_here(line: usize, location: &str, channel: &str) -> EngineError {
    Conflict::Other(format!("lines[{line}]: {location} does not sell to channel {channel}")).into()
}

/// A SKU that is not for sale now (409: it may be activated again).
pub(crate) fn inactive(sku: &str) -> EngineError {
    Conflict::Other(format!("sku {sku} is not active")).into()
}

/// A lot named with another expiry date than the cell already holds it with: a conflict with
/// the cell's state, not a malformed request.
fn lot_conflict(code: &str) -> EngineError {
    Conflict::Other(format!("lot {code} is already held here with another expiry date")).into()
}

/// A receipt or adjustment that passed its check: the cell's location and the change in
/// `on_hand` (a count resolved to its difference). Nothing changed yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedCell {
    location: LocId,
    delta: i64,
}

/// A reservation that passed [`Stock::check_reserve`]: resolved, nothing changed yet.
#[derive(Debug)]
pub(crate) struct CheckedReserve<'r> {
    reserve: &'r Reserve,
    channel: ChannelName,
    /// Each line's location and shared location code.
    lines: SmallVec<[(LocId, Arc<str>); 4]>,
}

/// The check phase of a status change on its (locked) entry: the status it starts from, and
/// the claim's sale. Changes nothing. A reservation changes only under the shards of its
/// lines, so what is checked here still holds for a multi-part command that applies later
/// under the same guards; its cells exist (cells are never removed).
fn check_entry(reservation: &Reservation, transition: Transition, claim: Option<&dyn ClaimBook>) -> Result<()> {
    let (from, to, _) = transition.rule();
    if reservation.status != from {
        return Err(Conflict::ReservationState {
            id: reservation.id,
            status: reservation.status.as_str(),
            expected: from.as_str(),
        }
        .into());
    }
    match claim {
        Some(claim) => claim.check(reservation, to),
        None => Ok(()),
    }
}

/// Where the units a pooled hold (a flash-sale claim) lets go end up.
///
/// While the pool is open a released or expired claim's units go back to the pool (they stay
/// `reserved` in the cell) and a cancelled sale's units go back into the pool too; once the
/// sale has ended they go back to the cell like any reservation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolReturn {
    /// Units return to the pool: `remaining` rises, the cell keeps them reserved.
    ToPool,
    /// Units return to the cell (the sale has ended); still counted in `remaining`.
    ToCell,
}

/// What the holders of stock (reservations, flash-sale pools, transfers) say a cell should
/// show: (SKU, location) to the units they hold.
pub(crate) type HoldLedger = std::collections::HashMap<(String, LocId), CellHolds>;

/// Units held on one cell, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CellHolds {
    pub reserved: i64,
    pub committed: i64,
    pub incoming: i64,
}

pub(crate) type Guards<'a> = SmallVec<[(usize, RankedGuard<'a, ShardState>); 4]>;

/// The stock domain's state: the shards and the reservations.
#[derive(Debug)]
pub(crate) struct Stock {
    pub shards: Box<[CachePadded<RankedMutex<ShardState>>]>,
    shard_mask: usize,
    pub reservations: DashMap<u64, Reservation, FxBuildHasher>,
    pub next_reservation_id: AtomicU64,
    pub active_reservations: AtomicI64,
}

impl Stock {
    pub fn new(shards: usize) -> Self {
        assert!(shards.is_power_of_two() && shards <= SHARDS_MAX);
        Stock {
            shards: (0..shards)
                .map(|i| CachePadded::new(RankedMutex::indexed(Rank::Shard, i, ShardState::default())))
                .collect(),
            shard_mask: shards - 1,
            reservations: DashMap::with_hasher(FxBuildHasher),
            next_reservation_id: AtomicU64::new(1),
            active_reservations: AtomicI64::new(0),
        }
    }

    pub fn shard_of(&self, sku: &str) -> usize {
        // Fx mixes low bits poorly for short keys; take the high bits.
        ((FxBuildHasher.hash_one(sku) >> 40) as usize) & self.shard_mask
    }

    /// Locks the given shards in ascending order (the lock order), each once.
    pub(crate) fn lock(&self, mut shards: SmallVec<[usize; 4]>) -> Guards<'_> {
        shards.sort_unstable();
        shards.dedup();
        shards.into_iter().map(|i| (i, self.shards[i].lock())).collect()
    }

    pub fn lock_all(&self) -> Vec<RankedGuard<'_, ShardState>> {
        self.shards.iter().map(|shard| shard.lock()).collect()
    }

    /// Every shard, as [`Guards`].
    pub(crate) fn lock_every(&self) -> Guards<'_> {
        self.lock((0..self.shards.len()).collect())
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

    /// Like [`Stock::sku_mut`], for reading several SKUs at once.
    pub(crate) fn sku_ref<'g>(&self, guards: &'g Guards<'_>, sku: &str) -> Result<&'g SkuEntry> {
        let shard = self.shard_of(sku);
        let state = guards
            .iter()
            .find(|(i, _)| *i == shard)
            .map(|(_, guard)| &**guard)
            .ok_or_else(|| EngineError::Internal(format!("shard {shard} of {sku} is not locked")))?;
        state.skus.get(sku).ok_or_else(|| EngineError::not_found(Entity::Sku, sku))
    }

    pub(crate) fn shard_mut<'g>(&self, guards: &'g mut Guards<'_>, shard: usize) -> Result<&'g mut ShardState> {
        guards
            .iter_mut()
            .find(|(i, _)| *i == shard)
            .map(|(_, guard)| &mut **guard)
            .ok_or_else(|| EngineError::Internal(format!("shard {shard} is not locked")))
    }

    /// Units arrive at a cell (with a cost and a lot, if given): [`Stock::check_receive`], then
    /// [`Stock::apply_checked_receive`].
    pub fn apply_receive(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        receive: &Receive,
        guards: &mut Guards<'_>,
    ) -> Result<CellView> {
        let checked = self.check_receive(catalog, receive, guards)?;
        Ok(self.apply_checked_receive(at, receive, checked, guards))
    }

    /// Whether `receive` can be applied: its location and SKU exist and its lot fits the cell.
    /// Changes nothing.
    pub(crate) fn check_receive(
        &self,
        catalog: &Catalog,
        receive: &Receive,
        guards: &mut Guards<'_>,
    ) -> Result<CheckedCell> {
        let location = catalog.location_id(&receive.location)?;
        let entry = self.sku_mut(guards, &receive.sku)?;
        if let Some(lot) = &receive.lot {
            let conflicts = entry.cell(location).is_some_and(|cell| cell.lot_conflicts(&lot.code, lot.expires_on));
            if conflicts {
                return Err(lot_conflict(&lot.code));
            }
            let lots = entry.cell(location).map_or(0, |cell| cell.lots().len());
            if lots >= LOTS_PER_CELL_MAX {
                return Err(Conflict::Other(format!("the cell already tracks {LOTS_PER_CELL_MAX} lots")).into());
            }
        }
        Ok(CheckedCell { location, delta: i64::from(receive.qty) })
    }

    /// Applies a receipt [`Stock::check_receive`] accepted, under the same locks; cannot fail.
    pub(crate) fn apply_checked_receive(
        &self,
        at: Timestamp,
        receive: &Receive,
        checked: CheckedCell,
        guards: &mut Guards<'_>,
    ) -> CellView {
        let cell = self.checked_cell(guards, &receive.sku, checked.location);
        cell.receive(
            checked.delta,
            receive.unit_cost,
            receive.lot.as_ref().map(|lot| (lot.code.as_str(), lot.expires_on)),
        );
        CellView::of(&receive.sku, &receive.location, cell, day_of(at))
    }

    /// Units found or lost, or a physical count: [`Stock::check_adjust`], then
    /// [`Stock::apply_checked_adjust`].
    pub fn apply_adjust(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        adjust: &Adjust,
        guards: &mut Guards<'_>,
    ) -> Result<CellView> {
        let checked = self.check_adjust(catalog, adjust, guards)?;
        Ok(self.apply_checked_adjust(at, adjust, checked, guards))
    }

    /// Whether `adjust` can be applied: it leaves `on_hand` at zero or more and its lot fits.
    /// Changes nothing; the result carries the change in `on_hand` (a count's difference).
    pub(crate) fn check_adjust(
        &self,
        catalog: &Catalog,
        adjust: &Adjust,
        guards: &mut Guards<'_>,
    ) -> Result<CheckedCell> {
        let location = catalog.location_id(&adjust.location)?;
        let entry = self.sku_mut(guards, &adjust.sku)?;
        let before = entry.cell(location).map_or(0, |cell| cell.on_hand);
        let delta = match adjust.change {
            AdjustChange::Delta(delta) => delta,
            AdjustChange::Counted(counted) => counted - before,
        };
        // Depends on the cell, not on the request alone: a conflict with its state.
        if before + delta < 0 {
            return Err(Conflict::Other(format!(
                "adjusting {} at {} by {delta} would leave on_hand at {} (it is {before})",
                adjust.sku,
                adjust.location,
                before + delta
            ))
            .into());
        }
        if let Some(lot) = &adjust.lot {
            let cell = entry.cell(location);
            if delta > 0 && cell.is_some_and(|c| c.lot_conflicts(&lot.code, lot.expires_on)) {
                return Err(lot_conflict(&lot.code));
            }
        }
        Ok(CheckedCell { location, delta })
    }

    /// Applies an adjustment [`Stock::check_adjust`] accepted, under the same locks; cannot fail.
    pub(crate) fn apply_checked_adjust(
        &self,
        at: Timestamp,
        adjust: &Adjust,
        checked: CheckedCell,
        guards: &mut Guards<'_>,
    ) -> CellView {
        let cell = self.checked_cell(guards, &adjust.sku, checked.location);
        let lot = adjust.lot.as_ref().map(|lot| (lot.code.as_str(), lot.expires_on));
        if checked.delta > 0 {
            cell.add(checked.delta, lot);
        } else if checked.delta < 0 {
            cell.remove(-checked.delta, lot.map(|(code, _)| code));
        }
        CellView::of(&adjust.sku, &adjust.location, cell, day_of(at))
    }

    /// The cell a check accepted (created if new). A check ran under the same locks and found
    /// the SKU, so its absence is a broken invariant, not an input error.
    fn checked_cell<'g>(&self, guards: &'g mut Guards<'_>, sku: &str, location: LocId) -> &'g mut Cell {
        let entry = self.sku_mut(guards, sku).expect("a checked SKU is in its locked shard");
        entry.cell_or_insert(location)
    }

    /// A cell's safety stock and reorder settings.
    pub fn apply_policy(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        policy: &CellPolicy,
        guards: &mut Guards<'_>,
    ) -> Result<CellView> {
        let today = day_of(at);
        let location = catalog.location_id(&policy.location)?;
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
        Ok(CellView::of(&policy.sku, &policy.location, cell, today))
    }

    /// Creates or replaces a SKU's definition (stored beside its cells); returns whether it
    /// was created.
    pub fn apply_put_sku(&self, def: &SkuDef, guards: &mut Guards<'_>) -> Result<bool> {
        let shard = self.shard_of(&def.code);
        let state = self.shard_mut(guards, shard)?;
        let created = match state.skus.get_mut(def.code.as_str()) {
            Some(entry) => {
                entry.def = Arc::new(def.clone());
                false
            }
            None => {
                let code: Arc<str> = def.code.as_str().into();
                state.skus.insert(code.clone(), SkuEntry { code, def: Arc::new(def.clone()), cells: Vec::new() });
                true
            }
        };
        Ok(created)
    }

    /// Holds every line or none: [`Stock::check_reserve`], then [`Stock::apply_checked_reserve`].
    pub fn apply_reserve(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        reserve: &Reserve,
        guards: &mut Guards<'_>,
    ) -> Result<ReservationView> {
        let checked = self.check_reserve(catalog, at, reserve, guards)?;
        Ok(self.apply_checked_reserve(at, checked, guards))
    }

    /// The check phase of a reservation: every line resolved and checked against `available`
    /// under `guards` (the shards of its lines), the answer listing each shortfall. Changes
    /// nothing; a command with several parts runs every part's check before any apply.
    pub fn check_reserve<'r>(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        reserve: &'r Reserve,
        guards: &mut Guards<'_>,
    ) -> Result<CheckedReserve<'r>> {
        let today = day_of(at);
        if self.reservations.contains_key(&reserve.id) {
            return Err(EngineError::Internal(format!("reservation id {} reused", reserve.id)));
        }
        let channel = ChannelName::from(&reserve.channel).map_err(|_| EngineError::invalid("channel", "too long"))?;
        // Resolve locations once, under one short read lock.
        let mut lines: SmallVec<[(LocId, Arc<str>); 4]> = SmallVec::with_capacity(reserve.lines.len());
        {
            let table = catalog.locations.read();
            for (i, line) in reserve.lines.iter().enumerate() {
                let id = table
                    .id(&line.location)
                    .ok_or_else(|| EngineError::not_found(Entity::Location, line.location.as_str()))?;
                if !table.defs[id as usize].sells_to(&reserve.channel) {
                    return Err(not_sold_here(i, &line.location, &reserve.channel));
                }
                lines.push((id, table.codes[id as usize].clone()));
            }
        }
        let mut shortfalls = Vec::new();
        for (line, (location, _)) in reserve.lines.iter().zip(&lines) {
            let entry = self.sku_mut(guards, &line.sku)?;
            if !entry.def.active {
                return Err(inactive(&line.sku));
            }
            let available = entry.cell(*location).map_or(0, |cell| cell.available(today));
            shortfalls.extend(Shortfall::of(&line.sku, Some(&line.location), line.qty, available));
        }
        if !shortfalls.is_empty() {
            return Err(EngineError::InsufficientStock(shortfalls));
        }
        Ok(CheckedReserve { reserve, channel, lines })
    }

    /// The apply phase of a reservation checked by [`Stock::check_reserve`] under the same
    /// guards, which have not been released since: it cannot fail.
    pub fn apply_checked_reserve(
        &self,
        at: Timestamp,
        checked: CheckedReserve<'_>,
        guards: &mut Guards<'_>,
    ) -> ReservationView {
        let CheckedReserve { reserve, channel, lines } = checked;
        let today = day_of(at);
        let mut held = Vec::with_capacity(reserve.lines.len());
        for (line, (location, location_code)) in reserve.lines.iter().zip(lines) {
            let entry = self.sku_mut(guards, &line.sku).expect("checked: the SKU is in a locked shard");
            let code = entry.code.clone();
            let cell = entry.cell_mut(location).expect("checked: the cell holds the units");
            cell.reserved += i64::from(line.qty);
            assert!(cell.available_raw(today) >= 0, "a reservation made available negative (SPEC invariant 1)");
            held.push(HeldLine { sku: code, location, location_code, qty: line.qty });
        }
        let reservation = Reservation {
            id: reserve.id,
            core: Arc::new(ReservationCore {
                channel,
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
        self.shard_mut(guards, home)
            .expect("the home shard is one of the lines'")
            .expiries
            .push(Reverse((reserve.expires_at, reserve.id)));
        let view = self.view(&reservation);
        self.reservations.insert(reserve.id, reservation);
        self.next_reservation_id.fetch_max(reserve.id + 1, Ordering::Relaxed);
        self.active_reservations.fetch_add(1, Ordering::Relaxed);
        view
    }

    /// Moves reservation `id` along `transition` ([`Transition::rule`]), changing each of its
    /// cells accordingly: the check phase, then the apply phase, on one lock of the map entry.
    /// `claim` books the change on the flash sale a claim belongs to.
    pub fn transition(
        &self,
        at: Timestamp,
        id: u64,
        transition: Transition,
        order_ref: Option<&str>,
        guards: &mut Guards<'_>,
        claim: Option<&mut dyn ClaimBook>,
    ) -> Result<ReservationView> {
        let reservation = self
            .reservations
            .get_mut(&id)
            .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
        check_entry(&reservation, transition, claim.as_deref())?;
        Ok(self.apply_entry(at, reservation, transition, order_ref, guards, claim))
    }

    /// The apply phase of a status change that passed [`check_entry`] on this (locked) map
    /// entry: it cannot fail. It releases the entry
    /// before it touches the finished queue (which may drop another entry of the map).
    fn apply_entry(
        &self,
        at: Timestamp,
        mut reservation: dashmap::mapref::one::RefMut<'_, u64, Reservation>,
        transition: Transition,
        order_ref: Option<&str>,
        guards: &mut Guards<'_>,
        claim: Option<&mut dyn ClaimBook>,
    ) -> ReservationView {
        let (from, to, mut change) = transition.rule();
        let today = day_of(at);
        let id = reservation.id;
        if let Some(claim) = claim {
            change = change.for_claim(claim.book(&reservation, to));
        }
        for line in reservation.core.lines.iter() {
            let entry = self.sku_mut(guards, &line.sku).expect("checked: the SKU is in a locked shard");
            let cell = entry.cell_mut(line.location).expect("a reservation's cells exist");
            change.apply(cell, i64::from(line.qty), today);
        }
        reservation.status = to;
        if let Some(order_ref) = order_ref {
            reservation.order_ref = Some(order_ref.into());
        }
        if !to.is_live() {
            reservation.finished_at = Some(at);
        }
        let view = self.view(&reservation);
        let home = self.home_shard(&reservation);
        drop(reservation);
        if from == ReservationStatus::Active {
            self.active_reservations.fetch_sub(1, Ordering::Relaxed);
        }
        if !to.is_live() {
            let home = self.shard_mut(guards, home).expect("the home shard is one of the lines'");
            crate::time::push_in_time_order(&mut home.finished, (at, id));
            if home.finished.len() > FINISHED_RESERVATIONS_PER_SHARD_MAX {
                if let Some((_, oldest)) = home.finished.pop_front() {
                    self.reservations.remove_if(&oldest, |_, r| !r.status.is_live());
                }
            }
        }
        view
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
            flash_sale: reservation.core.sale.as_deref().map(str::to_owned),
        }
    }

    /// Moves an active reservation's expiry.
    pub fn apply_extend(&self, id: u64, expires_at: Timestamp, guards: &mut Guards<'_>) -> Result<ReservationView> {
        let (view, home) = self.modify(id, ReservationStatus::Active, |r| r.expires_at = expires_at)?;
        self.shard_mut(guards, home)?.expiries.push(Reverse((expires_at, id)));
        Ok(view)
    }

    /// Checks SPEC invariant 2 and each cell's own consistency over the whole state: every
    /// cell's `reserved`, `committed` and `incoming` equal what its holders say (`holds`, from
    /// the other domains, plus the reservations counted here), and the active count is right.
    /// `guards` are every shard's.
    pub fn check(&self, guards: &[RankedGuard<'_, ShardState>], mut holds: HoldLedger) -> Result<(), String> {
        let mut active = 0;
        for entry in self.reservations.iter() {
            let slot = |line: &HeldLine| (line.sku.to_string(), line.location);
            match entry.status {
                ReservationStatus::Active => {
                    active += 1;
                    for line in entry.core.lines.iter() {
                        holds.entry(slot(line)).or_default().reserved += i64::from(line.qty);
                    }
                }
                ReservationStatus::Committed => {
                    for line in entry.core.lines.iter() {
                        holds.entry(slot(line)).or_default().committed += i64::from(line.qty);
                    }
                }
                _ => {}
            }
        }
        for guard in guards {
            for entry in guard.skus.values() {
                for (location, cell) in &entry.cells {
                    cell.check().map_err(|e| format!("{}@{location}: {e}", entry.code))?;
                    let CellHolds { reserved, committed, incoming } =
                        holds.remove(&(entry.code.to_string(), *location)).unwrap_or_default();
                    if cell.incoming != incoming {
                        return Err(format!(
                            "{}@{location}: incoming {} but transfers in transit carry {incoming}",
                            entry.code, cell.incoming
                        ));
                    }
                    if cell.reserved != reserved {
                        return Err(format!(
                            "{}@{location}: reserved {} but holds sum to {reserved}",
                            entry.code, cell.reserved
                        ));
                    }
                    if cell.committed != committed {
                        return Err(format!(
                            "{}@{location}: committed {} but lines sum to {committed}",
                            entry.code, cell.committed
                        ));
                    }
                }
            }
        }
        if let Some(((sku, location), _)) = holds.into_iter().find(|(_, held)| *held != CellHolds::default()) {
            return Err(format!("holds on {sku}@{location}, which has no cell"));
        }
        let counted = self.active_reservations.load(Ordering::Relaxed);
        if counted != active {
            return Err(format!("active_reservations says {counted}, there are {active}"));
        }
        Ok(())
    }

    /// Whether any finished reservation is older than its retention as of `now`.
    pub fn prunable(&self, now: Timestamp) -> bool {
        let horizon = now - FINISHED_RESERVATION_RETENTION_MS;
        self.shards.iter().any(|shard| shard.lock().finished.front().is_some_and(|&(at, _)| at <= horizon))
    }

    /// Forgets finished reservations older than their retention as of `at`; every shard is
    /// locked. Returns how many.
    pub fn prune(&self, at: Timestamp, guards: &mut Guards<'_>) -> u64 {
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
        reservations
    }
}
