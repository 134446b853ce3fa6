//! Transfers and replenishment (SPEC §4 "Transfers and replenishment"): stock moved between
//! locations of the network, and stores asking for it.
//!
//! A transfer's life, and what each step does to the cells (`q` units of a line):
//!
//! | step | status after | `from` cell | `to` cell |
//! |---|---|---|---|
//! | create | `held` | `reserved += q` | |
//! | ship | `shipped` | `reserved -= q`, `on_hand -= q` (FEFO lots) | `incoming += q` |
//! | receive (part) | `partially_received` / `received` | | `incoming -= q`, `on_hand += q` |
//! | cancel (only `held`) | `cancelled` | `reserved -= q` | |
//!
//! So across the network, per SKU, `on_hand + incoming` never changes through a transfer: units
//! leave `from`'s shelf and appear in transit at `to`, then land on `to`'s shelf. A held line
//! counts in `reserved` like any hold (SPEC invariant 2) and is checked against `available`
//! when created, so a transfer never makes `available` negative (invariant 1).
//!
//! Shipping records each line's unit cost (the source's moving-average cost) and the lots the
//! units came from; a receipt lands them at that cost (the destination's average moves) and in
//! those lots, earliest-expiring first. A lot the destination cannot take (the same code with
//! another expiry date, or a cell already at [`LOTS_PER_CELL_MAX`]) lands untracked.
//!
//! A replenishment is a request from a location (`requested`; nothing is held). Approving it
//! creates its transfer in the same command — source: the approval's `from`, else the
//! request's, else the best source ([`TransferScope::best_source`]) — or fails with nothing changed.
//!
//! Commands that resolve something under their locks (a receipt of "everything outstanding",
//! an approval's best source) are logged resolved, so replay never decides anything again.
//!
//! Lock order: shard mutexes (ascending), then the transfer book ([`TransferBook`], one mutex
//! in [`Transfers`]), then the location table. Transfers are rare next to reservations, so one mutex
//! for all of them costs nothing and keeps open counts and ids exact.

pub mod snapshot;

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};
use rustc_hash::FxHashMap;

use crate::catalog::{Catalog, LocId};
use crate::cell::{Cell, Lot};
use crate::error::{Conflict, EngineError, Entity, FieldError, Result, Shortfall};
use crate::kernel::locks::{Rank, RankedMutex};
use crate::limits::*;
use crate::model::{check_code, check_text};
use crate::stock::{Guards, HoldLedger, Stock};
use crate::time::{day_of, Day, Timestamp};

// ---- commands (as logged) ------------------------------------------------------------------

/// One SKU and a quantity: a line of a transfer, a replenishment or a receipt.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TransferLine {
    pub sku: String,
    pub qty: u32,
}

/// Creates a transfer holding its lines at `from` (lines merged per SKU).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateTransfer {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
}

/// A location asks for stock; nothing is held until the request is approved.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RequestReplenishment {
    pub id: u64,
    pub location: String,
    /// The source the requester would like; approval may choose another.
    pub from: Option<String>,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
}

// ---- views -----------------------------------------------------------------------------

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    /// Units are held at the source.
    Held,
    /// Every unit left the source and is in transit.
    Shipped,
    /// Some units arrived.
    PartiallyReceived,
    /// Every unit arrived.
    Received,
    /// Cancelled before shipping; the hold was released.
    Cancelled,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Held => "held",
            TransferStatus::Shipped => "shipped",
            TransferStatus::PartiallyReceived => "partially_received",
            TransferStatus::Received => "received",
            TransferStatus::Cancelled => "cancelled",
        }
    }

    /// Whether its units still count in a cell (`reserved` at the source or `incoming` at the
    /// destination).
    pub fn is_open(self) -> bool {
        !matches!(self, TransferStatus::Received | TransferStatus::Cancelled)
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TransferLineView {
    pub sku: String,
    pub qty: u32,
    pub shipped: u32,
    pub received: u32,
    /// The source's average unit cost when shipped (minor units); `None` before shipping or
    /// when the source had no cost.
    pub unit_cost: Option<u64>,
    /// The lots the shipped units came from (earliest expiry first); units beyond them were
    /// untracked.
    pub lots: Vec<Lot>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TransferView {
    pub id: u64,
    pub status: TransferStatus,
    pub from: String,
    pub to: String,
    pub lines: Vec<TransferLineView>,
    pub note: Option<String>,
    pub created_at: Timestamp,
    pub shipped_at: Option<Timestamp>,
    /// The last receipt's time.
    pub received_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    /// The replenishment whose approval created it.
    pub replenishment: Option<u64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplenishmentStatus {
    Requested,
    /// Its transfer was created.
    Approved,
    Rejected,
}

impl ReplenishmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplenishmentStatus::Requested => "requested",
            ReplenishmentStatus::Approved => "approved",
            ReplenishmentStatus::Rejected => "rejected",
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReplenishmentView {
    pub id: u64,
    pub status: ReplenishmentStatus,
    /// The location asking.
    pub location: String,
    /// The requested source; once approved, the transfer's source.
    pub from: Option<String>,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
    pub created_at: Timestamp,
    /// When it was approved or rejected.
    pub decided_at: Option<Timestamp>,
    pub transfer: Option<u64>,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// A location that could send units, as a suggestion or an approval ranks it.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedSource {
    pub location: String,
    pub available: i64,
    pub distance_km: f64,
}

/// A cell below its reorder point and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub sku: String,
    pub location: String,
    pub available: i64,
    pub incoming: i64,
    /// Units asked for but not yet in transit: held transfers to this cell and open
    /// replenishment requests for it.
    pub on_order: i64,
    pub reorder_point: i64,
    pub reorder_qty: i64,
    pub suggested_qty: i64,
    /// The best other location to take them from; `None` when no other location has any.
    pub source: Option<SuggestedSource>,
}

/// A page of suggestions in (location, SKU) order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SuggestionPage {
    pub items: Vec<Suggestion>,
    /// The (location, SKU) to pass as `after` for the next page; `None` on the last.
    pub next: Option<(String, String)>,
}

// ---- state -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct TransferLineState {
    pub sku: Arc<str>,
    pub qty: u32,
    pub shipped: u32,
    pub received: u32,
    pub unit_cost: Option<u64>,
    pub lots: Vec<Lot>,
}

#[derive(Debug, Clone)]
pub(crate) struct Transfer {
    pub id: u64,
    pub from: LocId,
    pub to: LocId,
    pub from_code: Arc<str>,
    pub to_code: Arc<str>,
    pub lines: Vec<TransferLineState>,
    pub status: TransferStatus,
    pub note: Option<Box<str>>,
    pub created_at: Timestamp,
    pub shipped_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub replenishment: Option<u64>,
}

impl Transfer {
    pub fn view(&self) -> TransferView {
        TransferView {
            id: self.id,
            status: self.status,
            from: self.from_code.to_string(),
            to: self.to_code.to_string(),
            lines: self
                .lines
                .iter()
                .map(|line| TransferLineView {
                    sku: line.sku.to_string(),
                    qty: line.qty,
                    shipped: line.shipped,
                    received: line.received,
                    unit_cost: line.unit_cost,
                    lots: line.lots.clone(),
                })
                .collect(),
            note: self.note.as_deref().map(str::to_owned),
            created_at: self.created_at,
            shipped_at: self.shipped_at,
            received_at: self.received_at,
            cancelled_at: self.cancelled_at,
            replenishment: self.replenishment,
        }
    }

    /// When it stopped counting in cells.
    pub fn finished_at(&self) -> Option<Timestamp> {
        match self.status {
            TransferStatus::Received => self.received_at,
            TransferStatus::Cancelled => self.cancelled_at,
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Replenishment {
    pub id: u64,
    pub location: LocId,
    pub location_code: Arc<str>,
    pub from: Option<(LocId, Arc<str>)>,
    pub lines: Vec<(Arc<str>, u32)>,
    pub note: Option<Box<str>>,
    pub status: ReplenishmentStatus,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub transfer: Option<u64>,
    pub reason: Option<Box<str>>,
}

impl Replenishment {
    pub fn view(&self) -> ReplenishmentView {
        ReplenishmentView {
            id: self.id,
            status: self.status,
            location: self.location_code.to_string(),
            from: self.from.as_ref().map(|(_, code)| code.to_string()),
            lines: self.lines.iter().map(|(sku, qty)| TransferLine { sku: sku.to_string(), qty: *qty }).collect(),
            note: self.note.as_deref().map(str::to_owned),
            created_at: self.created_at,
            decided_at: self.decided_at,
            transfer: self.transfer,
            reason: self.reason.as_deref().map(str::to_owned),
        }
    }
}

/// Every transfer and replenishment the engine keeps, behind one mutex in [`Transfers`].
///
/// Open ones are kept until they finish; finished ones (received, cancelled, approved,
/// rejected) for [`FINISHED_TRANSFER_RETENTION_MS`] and at most [`FINISHED_TRANSFERS_MAX`]
/// (resp. [`FINISHED_REPLENISHMENTS_MAX`]), the oldest pruned first.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransferBook {
    pub transfers: FxHashMap<u64, Transfer>,
    pub replenishments: FxHashMap<u64, Replenishment>,
    /// Finished transfers, oldest first.
    pub finished_transfers: VecDeque<(Timestamp, u64)>,
    /// Decided replenishments, oldest first.
    pub finished_replenishments: VecDeque<(Timestamp, u64)>,
    pub open_transfers: usize,
    pub open_replenishments: usize,
}

impl TransferBook {
    fn transfer_mut(&mut self, id: u64) -> Result<&mut Transfer> {
        self.transfers.get_mut(&id).ok_or_else(|| EngineError::not_found(Entity::Transfer, id.to_string()))
    }

    pub(crate) fn replenishment_mut(&mut self, id: u64) -> Result<&mut Replenishment> {
        self.replenishments.get_mut(&id).ok_or_else(|| EngineError::not_found(Entity::Replenishment, id.to_string()))
    }

    fn transfer_finished(&mut self, id: u64, at: Timestamp) {
        self.open_transfers -= 1;
        crate::time::push_in_time_order(&mut self.finished_transfers, (at, id));
        if self.finished_transfers.len() > FINISHED_TRANSFERS_MAX {
            if let Some((_, oldest)) = self.finished_transfers.pop_front() {
                if self.transfers.get(&oldest).is_some_and(|t| !t.status.is_open()) {
                    self.transfers.remove(&oldest);
                }
            }
        }
    }

    pub(crate) fn replenishment_decided(&mut self, id: u64, at: Timestamp) {
        self.open_replenishments -= 1;
        crate::time::push_in_time_order(&mut self.finished_replenishments, (at, id));
        if self.finished_replenishments.len() > FINISHED_REPLENISHMENTS_MAX {
            if let Some((_, oldest)) = self.finished_replenishments.pop_front() {
                if self.replenishments.get(&oldest).is_some_and(|r| r.status != ReplenishmentStatus::Requested) {
                    self.replenishments.remove(&oldest);
                }
            }
        }
    }

    /// Whether [`TransferBook::prune`] at `now` would drop anything.
    pub fn prunable(&self, now: Timestamp) -> bool {
        let horizon = now - FINISHED_TRANSFER_RETENTION_MS;
        self.finished_transfers.front().is_some_and(|&(at, _)| at <= horizon)
            || self.finished_replenishments.front().is_some_and(|&(at, _)| at <= horizon)
    }

    /// Drops finished entries older than their retention; returns how many.
    pub fn prune(&mut self, now: Timestamp) -> u64 {
        let mut pruned = 0;
        let horizon = now - FINISHED_TRANSFER_RETENTION_MS;
        while let Some(&(at, id)) = self.finished_transfers.front() {
            if at > horizon {
                break;
            }
            self.finished_transfers.pop_front();
            if self.transfers.get(&id).is_some_and(|t| !t.status.is_open()) {
                self.transfers.remove(&id);
                pruned += 1;
            }
        }
        while let Some(&(at, id)) = self.finished_replenishments.front() {
            if at > horizon {
                break;
            }
            self.finished_replenishments.pop_front();
            if self.replenishments.get(&id).is_some_and(|r| r.status != ReplenishmentStatus::Requested) {
                self.replenishments.remove(&id);
                pruned += 1;
            }
        }
        pruned
    }

    /// The book's own consistency: open counts, shipped and received units per status, and
    /// approvals with their transfer.
    pub fn check(&self) -> Result<(), String> {
        let book = self;
        let open = book.transfers.values().filter(|t| t.status.is_open()).count();
        if open != book.open_transfers {
            return Err(format!("open_transfers says {}, there are {open}", book.open_transfers));
        }
        let requested = book.replenishments.values().filter(|r| r.status == ReplenishmentStatus::Requested).count();
        if requested != book.open_replenishments {
            return Err(format!("open_replenishments says {}, there are {requested}", book.open_replenishments));
        }
        for t in book.transfers.values() {
            for line in &t.lines {
                let shipped_ok = match t.status {
                    TransferStatus::Held | TransferStatus::Cancelled => line.shipped == 0 && line.received == 0,
                    TransferStatus::Shipped => line.shipped == line.qty && line.received == 0,
                    TransferStatus::PartiallyReceived => line.shipped == line.qty && line.received <= line.shipped,
                    TransferStatus::Received => line.shipped == line.qty && line.received == line.shipped,
                };
                if !shipped_ok {
                    return Err(format!(
                        "transfer {} is {} with {} line {}: shipped {} received {}",
                        t.id,
                        t.status.as_str(),
                        line.sku,
                        line.qty,
                        line.shipped,
                        line.received
                    ));
                }
            }
        }
        for r in book.replenishments.values() {
            let approved = r.status == ReplenishmentStatus::Approved;
            if approved != r.transfer.is_some() {
                return Err(format!("replenishment {} is {} with transfer {:?}", r.id, r.status.as_str(), r.transfer));
            }
        }
        Ok(())
    }

    /// Adds what transfers hold to `holds`: held lines in their source's `reserved`, shipped
    /// and not yet received units in their destination's `incoming`.
    pub fn count_holds(&self, holds: &mut HoldLedger) {
        for transfer in self.transfers.values() {
            for line in &transfer.lines {
                match transfer.status {
                    TransferStatus::Held => {
                        holds.entry((line.sku.to_string(), transfer.from)).or_default().reserved += i64::from(line.qty)
                    }
                    TransferStatus::Shipped | TransferStatus::PartiallyReceived => {
                        holds.entry((line.sku.to_string(), transfer.to)).or_default().incoming +=
                            i64::from(line.shipped - line.received)
                    }
                    TransferStatus::Received | TransferStatus::Cancelled => {}
                }
            }
        }
    }

    /// Rebuilds the counters and pruning queues after a restore.
    pub fn reindex(&mut self) {
        self.open_transfers = self.transfers.values().filter(|t| t.status.is_open()).count();
        self.open_replenishments =
            self.replenishments.values().filter(|r| r.status == ReplenishmentStatus::Requested).count();
        let mut finished: Vec<(Timestamp, u64)> =
            self.transfers.values().filter_map(|t| t.finished_at().map(|at| (at, t.id))).collect();
        finished.sort_unstable();
        self.finished_transfers = finished.into();
        let mut decided: Vec<(Timestamp, u64)> =
            self.replenishments.values().filter_map(|r| r.decided_at.map(|at| (at, r.id))).collect();
        decided.sort_unstable();
        self.finished_replenishments = decided.into();
    }

    /// Units asked for but not in transit, per (SKU, destination): held transfers and open
    /// requests.
    pub(crate) fn on_order(&self) -> FxHashMap<(Arc<str>, LocId), i64> {
        let mut on_order: FxHashMap<(Arc<str>, LocId), i64> = FxHashMap::default();
        for transfer in self.transfers.values().filter(|t| t.status == TransferStatus::Held) {
            for line in &transfer.lines {
                *on_order.entry((line.sku.clone(), transfer.to)).or_default() += i64::from(line.qty);
            }
        }
        for request in self.replenishments.values().filter(|r| r.status == ReplenishmentStatus::Requested) {
            for (sku, qty) in &request.lines {
                *on_order.entry((sku.clone(), request.location)).or_default() += i64::from(*qty);
            }
        }
        on_order
    }
}

/// Ships `qty` units (FEFO, [`Cell::ship`]) and returns the lots they came from.
fn ship_tracking_lots(cell: &mut Cell, qty: i64, today: Day) -> Vec<Lot> {
    if cell.lots.is_none() {
        cell.ship(qty, today);
        return Vec::new();
    }
    let before = cell.lots().to_vec();
    cell.ship(qty, today);
    let mut taken: Vec<Lot> = before
        .into_iter()
        .filter_map(|lot| {
            let left = cell.lots().iter().find(|l| l.code == lot.code).map_or(0, |l| l.qty);
            (lot.qty > left).then(|| Lot { qty: lot.qty - left, ..lot })
        })
        .collect();
    taken.sort_by(|a, b| (a.expires_on, &a.code).cmp(&(b.expires_on, &b.code)));
    taken
}

/// Splits a receipt of `qty` units, after `already` units received, over the shipped `lots`
/// (in order); units beyond the lots are untracked (`None`).
fn lot_portions(lots: &[Lot], already: u32, qty: u32) -> Vec<(Option<&Lot>, i64)> {
    let mut skip = i64::from(already);
    let mut need = i64::from(qty);
    let mut portions = Vec::new();
    for lot in lots {
        let here = (lot.qty - skip).max(0);
        skip = (skip - lot.qty).max(0);
        let take = here.min(need);
        if take > 0 {
            portions.push((Some(lot), take));
            need -= take;
        }
    }
    if need > 0 {
        portions.push((None, need));
    }
    portions
}

/// A location that could send units, ranked by [`better_source`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub(crate) id: LocId,
    pub(crate) code: &'a str,
    /// It has every unit asked for, on every line.
    pub(crate) fills: bool,
    pub(crate) available: i64,
    pub(crate) distance_km: f64,
}

/// The source order: one that fills everything, then the most available, then the nearest,
/// then the smaller code.
pub(crate) fn better_source(a: &Candidate<'_>, b: &Candidate<'_>) -> CmpOrdering {
    b.fills
        .cmp(&a.fills)
        .then(b.available.cmp(&a.available))
        .then(a.distance_km.total_cmp(&b.distance_km))
        .then(a.code.cmp(b.code))
}

pub(crate) fn conflict(message: String) -> EngineError {
    Conflict::Other(message).into()
}

/// The transfer domain's state: the book (behind one mutex, taken after the shards a command
/// locks) and the id counters.
#[derive(Debug)]
pub(crate) struct Transfers {
    pub book: RankedMutex<TransferBook>,
    pub next_transfer_id: std::sync::atomic::AtomicU64,
    pub next_replenishment_id: std::sync::atomic::AtomicU64,
}

impl Default for Transfers {
    fn default() -> Self {
        Transfers::new()
    }
}

impl Transfers {
    pub fn new() -> Self {
        Transfers {
            book: RankedMutex::new(Rank::TransferBook, TransferBook::default()),
            next_transfer_id: std::sync::atomic::AtomicU64::new(1),
            next_replenishment_id: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

/// What transfer and replenishment commands work on besides the book: the catalog, the stock
/// (a held line is a hold on its source cell; shipping and receiving move units between cells)
/// and the id counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransferScope<'a> {
    pub catalog: &'a Catalog,
    pub stock: &'a Stock,
    pub transfers: &'a Transfers,
}

impl TransferScope<'_> {
    /// Resolves a location code to its id and shared code.
    fn transfer_location(&self, code: &str) -> Result<(LocId, Arc<str>)> {
        let table = self.catalog.locations.read();
        let id = table.id(code).ok_or_else(|| EngineError::not_found(Entity::Location, code))?;
        Ok((id, table.codes[id as usize].clone()))
    }

    pub(crate) fn create_transfer_in(
        &self,
        at: Timestamp,
        create: &CreateTransfer,
        replenishment: Option<u64>,
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<TransferView> {
        if book.transfers.contains_key(&create.id) {
            return Err(EngineError::Internal(format!("transfer id {} reused", create.id)));
        }
        if book.open_transfers >= OPEN_TRANSFERS_MAX {
            return Err(conflict(format!(
                "{OPEN_TRANSFERS_MAX} transfers are open; ship, receive or cancel some before creating more"
            )));
        }
        let (from, from_code) = self.transfer_location(&create.from)?;
        let (to, to_code) = self.transfer_location(&create.to)?;
        if from == to {
            return Err(EngineError::invalid("to", "must differ from from"));
        }
        let today = day_of(at);
        let mut shortfalls = Vec::new();
        for line in &create.lines {
            let entry = self.stock.sku_mut(guards, &line.sku)?;
            let available = entry.cell(from).map_or(0, |cell| cell.available(today));
            shortfalls.extend(Shortfall::of(&line.sku, Some(&create.from), line.qty, available));
        }
        if !shortfalls.is_empty() {
            return Err(EngineError::InsufficientStock(shortfalls));
        }
        let mut lines = Vec::with_capacity(create.lines.len());
        for line in &create.lines {
            let entry = self.stock.sku_mut(guards, &line.sku)?;
            let sku = entry.code.clone();
            let cell = entry.cell_mut(from).ok_or_else(|| EngineError::Internal("checked cell vanished".into()))?;
            cell.reserved += i64::from(line.qty);
            debug_assert!(cell.available_raw(today) >= 0, "a transfer made available negative");
            lines.push(TransferLineState {
                sku,
                qty: line.qty,
                shipped: 0,
                received: 0,
                unit_cost: None,
                lots: vec![],
            });
        }
        let transfer = Transfer {
            id: create.id,
            from,
            to,
            from_code,
            to_code,
            lines,
            status: TransferStatus::Held,
            note: create.note.as_deref().map(Into::into),
            created_at: at,
            shipped_at: None,
            received_at: None,
            cancelled_at: None,
            replenishment,
        };
        let view = transfer.view();
        book.transfers.insert(create.id, transfer);
        book.open_transfers += 1;
        self.transfers.next_transfer_id.fetch_max(create.id + 1, Ordering::Relaxed);
        Ok(view)
    }

    pub(crate) fn ship_transfer_in(
        &self,
        at: Timestamp,
        id: u64,
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<TransferView> {
        let today = day_of(at);
        let transfer = book.transfer_mut(id)?;
        if transfer.status != TransferStatus::Held {
            return Err(conflict(format!(
                "transfer {id} is {}; only a held transfer can be shipped",
                transfer.status.as_str()
            )));
        }
        let (from, to) = (transfer.from, transfer.to);
        // Units leave the shelf: a count may have found fewer than the transfer holds.
        let mut shortfalls = Vec::new();
        for line in &transfer.lines {
            let on_hand = self.stock.sku_mut(guards, &line.sku)?.cell(from).map_or(0, |cell| cell.on_hand);
            shortfalls.extend(Shortfall::of(&line.sku, Some(&transfer.from_code), line.qty, on_hand));
        }
        if !shortfalls.is_empty() {
            return Err(EngineError::InsufficientStock(shortfalls));
        }
        for line in transfer.lines.iter_mut() {
            let qty = i64::from(line.qty);
            let entry = self.stock.sku_mut(guards, &line.sku)?;
            let source = entry
                .cell_mut(from)
                .ok_or_else(|| EngineError::Internal(format!("transfer {id} holds a missing cell")))?;
            source.reserved -= qty;
            // A source that never received with a cost has none to pass on.
            line.unit_cost = (source.avg_cost_micros > 0).then(|| source.avg_cost());
            line.lots = ship_tracking_lots(source, qty, today);
            line.shipped = line.qty;
            entry.cell_or_insert(to).incoming += qty;
        }
        transfer.status = TransferStatus::Shipped;
        transfer.shipped_at = Some(at);
        Ok(transfer.view())
    }

    /// Receives `lines` (empty: everything outstanding); returns the view and, for "everything",
    /// the lines that were received.
    pub(crate) fn receive_transfer_in(
        &self,
        at: Timestamp,
        id: u64,
        lines: &[TransferLine],
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<(TransferView, Option<Vec<TransferLine>>)> {
        let transfer = book.transfer_mut(id)?;
        if !matches!(transfer.status, TransferStatus::Shipped | TransferStatus::PartiallyReceived) {
            return Err(conflict(format!(
                "transfer {id} is {}; only a shipped transfer can be received",
                transfer.status.as_str()
            )));
        }
        let mut receipt: Vec<(usize, u32)> = Vec::with_capacity(transfer.lines.len());
        if lines.is_empty() {
            for (index, line) in transfer.lines.iter().enumerate() {
                if line.shipped > line.received {
                    receipt.push((index, line.shipped - line.received));
                }
            }
        } else {
            for (i, wanted) in lines.iter().enumerate() {
                let index = transfer
                    .lines
                    .iter()
                    .position(|line| *line.sku == *wanted.sku)
                    .ok_or_else(|| conflict(format!("lines[{i}]: {} is not on transfer {id}", wanted.sku)))?;
                let line = &transfer.lines[index];
                let outstanding = line.shipped - line.received;
                if wanted.qty > outstanding {
                    return Err(conflict(format!(
                        "transfer {id}: receiving {} of {} but {outstanding} are outstanding",
                        wanted.qty, wanted.sku
                    )));
                }
                receipt.push((index, wanted.qty));
            }
        }
        let to = transfer.to;
        for &(index, qty) in &receipt {
            let line = &mut transfer.lines[index];
            let entry = self.stock.sku_mut(guards, &line.sku)?;
            let cell = entry.cell_or_insert(to);
            cell.incoming -= i64::from(qty);
            for (lot, units) in lot_portions(&line.lots, line.received, qty) {
                let lot = lot.filter(|lot| {
                    let known = cell.lots().iter().any(|l| l.code == lot.code);
                    !cell.lot_conflicts(&lot.code, lot.expires_on) && (known || cell.lots().len() < LOTS_PER_CELL_MAX)
                });
                cell.receive(units, line.unit_cost, lot.map(|lot| (lot.code.as_str(), lot.expires_on)));
            }
            line.received += qty;
        }
        let done = transfer.lines.iter().all(|line| line.received == line.shipped);
        transfer.status = if done { TransferStatus::Received } else { TransferStatus::PartiallyReceived };
        transfer.received_at = Some(at);
        let view = transfer.view();
        let all = lines.is_empty().then(|| {
            receipt
                .iter()
                .map(|&(index, qty)| TransferLine { sku: view.lines[index].sku.clone(), qty })
                .collect::<Vec<_>>()
        });
        if done {
            book.transfer_finished(id, at);
        }
        Ok((view, all))
    }

    pub(crate) fn cancel_transfer_in(
        &self,
        at: Timestamp,
        id: u64,
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<TransferView> {
        let transfer = book.transfer_mut(id)?;
        if transfer.status != TransferStatus::Held {
            return Err(conflict(format!(
                "transfer {id} is {}; only a held transfer can be cancelled",
                transfer.status.as_str()
            )));
        }
        for line in &transfer.lines {
            let cell = self
                .stock
                .sku_mut(guards, &line.sku)?
                .cell_mut(transfer.from)
                .ok_or_else(|| EngineError::Internal(format!("transfer {id} holds a missing cell")))?;
            cell.reserved -= i64::from(line.qty);
        }
        transfer.status = TransferStatus::Cancelled;
        transfer.cancelled_at = Some(at);
        let view = transfer.view();
        book.transfer_finished(id, at);
        Ok(view)
    }

    pub(crate) fn request_replenishment_in(
        &self,
        at: Timestamp,
        request: &RequestReplenishment,
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<ReplenishmentView> {
        if book.replenishments.contains_key(&request.id) {
            return Err(EngineError::Internal(format!("replenishment id {} reused", request.id)));
        }
        if book.open_replenishments >= OPEN_REPLENISHMENTS_MAX {
            return Err(conflict(format!(
                "{OPEN_REPLENISHMENTS_MAX} replenishment requests are open; approve or reject some first"
            )));
        }
        let location = self.transfer_location(&request.location)?;
        let from = match &request.from {
            Some(code) => Some(self.transfer_location(code)?),
            None => None,
        };
        if from.as_ref().is_some_and(|(id, _)| *id == location.0) {
            return Err(EngineError::invalid("from", "must differ from location"));
        }
        let mut lines = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            lines.push((self.stock.sku_mut(guards, &line.sku)?.code.clone(), line.qty));
        }
        let replenishment = Replenishment {
            id: request.id,
            location: location.0,
            location_code: location.1,
            from,
            lines,
            note: request.note.as_deref().map(Into::into),
            status: ReplenishmentStatus::Requested,
            created_at: at,
            decided_at: None,
            transfer: None,
            reason: None,
        };
        let view = replenishment.view();
        book.replenishments.insert(request.id, replenishment);
        book.open_replenishments += 1;
        self.transfers.next_replenishment_id.fetch_max(request.id + 1, Ordering::Relaxed);
        Ok(view)
    }

    pub(crate) fn approve_in(
        &self,
        at: Timestamp,
        id: u64,
        transfer_id: u64,
        from: Option<&str>,
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<ReplenishmentView> {
        let request = book.replenishment_mut(id)?;
        if request.status != ReplenishmentStatus::Requested {
            return Err(conflict(format!(
                "replenishment {id} is {}; only a requested one can be approved",
                request.status.as_str()
            )));
        }
        let lines: Vec<TransferLine> =
            request.lines.iter().map(|(sku, qty)| TransferLine { sku: sku.to_string(), qty: *qty }).collect();
        let (destination, destination_code) = (request.location, request.location_code.to_string());
        let asked = from.map(str::to_owned).or_else(|| request.from.as_ref().map(|(_, code)| code.to_string()));
        let source = match asked {
            Some(code) if code == destination_code => {
                return Err(conflict(format!("replenishment {id} was asked by {code}; it cannot also send the stock")))
            }
            Some(code) => code,
            None => match self.best_source(day_of(at), destination, &lines, guards)? {
                Some(source) => source.location,
                None => {
                    return Err(EngineError::InsufficientStock(
                        lines
                            .iter()
                            .map(|line| Shortfall {
                                sku: line.sku.clone(),
                                location: None,
                                requested: u64::from(line.qty),
                                available: 0,
                            })
                            .collect(),
                    ))
                }
            },
        };
        let create = CreateTransfer {
            id: transfer_id,
            from: source.clone(),
            to: destination_code,
            lines,
            note: Some(format!("replenishment {id}")),
        };
        self.create_transfer_in(at, &create, Some(id), guards, book)?;
        let from = self.transfer_location(&source)?;
        let request = book.replenishment_mut(id)?;
        request.status = ReplenishmentStatus::Approved;
        request.from = Some(from);
        request.transfer = Some(transfer_id);
        request.decided_at = Some(at);
        let view = request.view();
        book.replenishment_decided(id, at);
        Ok(view)
    }

    /// The best location other than `destination` to send `lines` from: one that has every
    /// unit, then the most units available over the lines, then the nearest (haversine), then
    /// the smaller code. `None` when no other location has a single unit.
    pub(crate) fn best_source(
        &self,
        today: Day,
        destination: LocId,
        lines: &[TransferLine],
        guards: &Guards<'_>,
    ) -> Result<Option<SuggestedSource>> {
        // (available over the lines, lines it fills) per location.
        let mut totals: BTreeMap<LocId, (i64, usize)> = BTreeMap::new();
        for line in lines {
            let entry = self.stock.sku_ref(guards, &line.sku)?;
            for (location, cell) in &entry.cells {
                let available = cell.available(today);
                if *location == destination || available <= 0 {
                    continue;
                }
                let total = totals.entry(*location).or_default();
                total.0 += available;
                total.1 += usize::from(available >= i64::from(line.qty));
            }
        }
        let table = self.catalog.locations.read();
        let Some(here) = table.points.get(destination as usize) else { return Ok(None) };
        let best = totals
            .into_iter()
            .filter_map(|(id, (available, filled))| {
                Some(Candidate {
                    id,
                    code: table.defs.get(id as usize)?.code.as_str(),
                    fills: filled == lines.len(),
                    available,
                    distance_km: here.distance_km(table.points.get(id as usize)?),
                })
            })
            .min_by(better_source);
        Ok(best.map(|c| SuggestedSource {
            location: table.code(c.id).to_owned(),
            available: c.available,
            distance_km: c.distance_km,
        }))
    }
}

// ---- engine API ---------------------------------------------------------------------------

/// A transfer as a caller asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub from: String,
    pub to: String,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
}

/// A replenishment request as a caller states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplenishmentRequest {
    pub location: String,
    pub from: Option<String>,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
}

/// Validates lines and merges those for the same SKU, keeping first-seen order.
pub(crate) fn merge_transfer_lines(lines: Vec<TransferLine>, errors: &mut Vec<FieldError>) -> Vec<TransferLine> {
    if lines.is_empty() || lines.len() > LINES_PER_REQUEST_MAX {
        errors.push(FieldError::new("lines", format!("must hold 1 to {LINES_PER_REQUEST_MAX} lines")));
        return lines;
    }
    let mut merged: Vec<TransferLine> = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        check_code(&format!("lines[{i}].sku"), &line.sku, errors);
        if line.qty == 0 || line.qty > LINE_QTY_MAX {
            errors.push(FieldError::new(format!("lines[{i}].qty"), format!("must be 1 to {LINE_QTY_MAX}")));
            continue;
        }
        match merged.iter_mut().find(|m| m.sku == line.sku) {
            // Each line is bounded, so a merged one is at most LINES_PER_REQUEST_MAX times that.
            Some(m) => m.qty += line.qty,
            None => merged.push(line),
        }
    }
    merged
}

pub(crate) fn check_note(field: &str, note: &Option<String>, errors: &mut Vec<FieldError>) {
    if let Some(note) = note {
        check_text(field, note, NOTE_LEN_MAX, errors);
    }
}
