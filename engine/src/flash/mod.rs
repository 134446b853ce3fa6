//! Flash sales: a pool of units carved out of stock cells and claimed by a stampede of
//! customers.
//!
//! A sale's pool is a hold on its cell(s): the units still `remaining` in the pool and the
//! units `held` by live claims both count in the cells' `reserved`; sold units (committed
//! claims) move to `committed` like any committed reservation. So a claim moves units from
//! `remaining` to `held` without touching a cell, and takes no shard lock at all: claims on one
//! pool never wait for, or slow down, reservations of other SKUs.
//!
//! **Invariant (SPEC invariant 5):** `sold + held + remaining == quantity` at every step; a
//! customer's held and sold units never exceed `per_customer_limit`. Both are checked and
//! changed only under the sale's mutex, which is held until the command's log record is
//! appended, so log order equals apply order for everything that touches one sale.
//!
//! Lock order ([`crate::kernel::locks`]): shard mutexes, then the sales table, then one sale's
//! mutex, then the location table and map entries. A claim resolves its sale under a
//! short read of the table and releases it before taking the sale's mutex.
//!
//! Hot path: the sale mirrors its window and remaining units in atomics, so a claim on a sold
//! out (or closed) sale is answered from them without the mutex or the log.

pub mod snapshot;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::catalog::{Catalog, LocId};
use crate::error::{Conflict, EngineError, Entity, Result, Shortfall};
use crate::kernel::locks::{Rank, RankedMutex, RankedRwLock};
use crate::limits::*;
use crate::stock::views::{ReservationStatus, ReservationView};
pub(crate) use crate::stock::PoolReturn;
use crate::stock::{
    ChannelName, ClaimBook, Guards, HeldLine, HoldLedger, Reservation, ReservationCore, SkuEntry, Stock,
};
use crate::time::{day_of, Timestamp};

/// A flash-sale claim. Which cell(s) of the pool it takes from follows from the pool's state,
/// so replay picks the same ones.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub sale: String,
    /// The id of the reservation the claim becomes.
    pub id: u64,
    pub channel: String,
    pub customer: String,
    pub qty: u32,
}

/// A flash sale as defined by its owner (and as logged).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FlashSaleDef {
    pub code: String,
    pub sku: String,
    /// The cell the pool is carved from; `None` carves it from every shipping location.
    pub location: Option<String>,
    pub quantity: u32,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub per_customer_limit: u32,
    pub hold_seconds: u32,
}

/// Where a sale is in its life, as of a given time.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleStatus {
    /// Before `starts_at`.
    Scheduled,
    Active,
    /// Active, but nothing is left in the pool (expiring claims may refill it).
    SoldOut,
    /// Past `ends_at`: the pool's unsold units are back in the cell(s).
    Ended,
}

impl SaleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SaleStatus::Scheduled => "scheduled",
            SaleStatus::Active => "active",
            SaleStatus::SoldOut => "sold_out",
            SaleStatus::Ended => "ended",
        }
    }
}

/// One cell's share of a pool.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PoolShare {
    pub location: String,
    /// Units of this cell still in the pool (after the end: given back to the cell).
    pub remaining: u32,
}

/// What a sale looks like now.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FlashSaleView {
    pub def: FlashSaleDef,
    pub status: SaleStatus,
    pub remaining: u32,
    pub held: u32,
    pub sold: u32,
    /// Customers holding or having bought units.
    pub customers: u32,
    pub pool: Vec<PoolShare>,
}

/// A sale and the lock-free mirrors its hot path reads.
#[derive(Debug)]
pub(crate) struct Sale {
    pub code: Arc<str>,
    pub sku: Arc<str>,
    starts_at: AtomicI64,
    ends_at: AtomicI64,
    ended: AtomicBool,
    remaining: AtomicU32,
    pub state: RankedMutex<SaleState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolCell {
    pub location: LocId,
    pub remaining: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct SaleState {
    pub def: FlashSaleDef,
    /// The cells carved from, in the order claims take from them.
    pub pool: SmallVec<[PoolCell; 1]>,
    pub held: u32,
    pub sold: u32,
    /// The pool's remaining units went back to its cells.
    pub ended: bool,
    /// Held plus sold units per customer; entries at zero are removed, so the map never
    /// grows past `quantity` customers.
    pub customers: FxHashMap<Box<str>, u32>,
    /// Expiry times of live claims (hints: a claim finished since is skipped).
    pub expiries: BinaryHeap<Reverse<(Timestamp, u64)>>,
}

impl SaleState {
    pub fn remaining(&self) -> u32 {
        self.pool.iter().map(|share| share.remaining).sum()
    }

    pub fn status(&self, now: Timestamp) -> SaleStatus {
        if self.ended || now >= self.def.ends_at {
            SaleStatus::Ended
        } else if now < self.def.starts_at {
            SaleStatus::Scheduled
        } else if self.remaining() == 0 {
            SaleStatus::SoldOut
        } else {
            SaleStatus::Active
        }
    }

    fn pool_share_mut(&mut self, location: LocId) -> Option<&mut PoolCell> {
        self.pool.iter_mut().find(|share| share.location == location)
    }

    fn count_customer(&mut self, customer: &str, delta: i64) {
        let next = match self.customers.get_mut(customer) {
            Some(count) => {
                *count = (i64::from(*count) + delta).max(0) as u32;
                *count
            }
            None if delta > 0 => {
                self.customers.insert(customer.into(), delta as u32);
                return;
            }
            None => return,
        };
        if next == 0 {
            self.customers.remove(customer);
        }
    }
}

impl Sale {
    pub fn new(state: SaleState) -> Sale {
        let sale = Sale {
            code: state.def.code.as_str().into(),
            sku: state.def.sku.as_str().into(),
            starts_at: AtomicI64::new(0),
            ends_at: AtomicI64::new(0),
            ended: AtomicBool::new(false),
            remaining: AtomicU32::new(0),
            state: RankedMutex::new(Rank::Sale, state),
        };
        sale.publish(&sale.state.lock());
        sale
    }

    /// Mirrors what the lock-free early answer reads; called with the mutex held after
    /// every change.
    pub fn publish(&self, state: &SaleState) {
        self.starts_at.store(state.def.starts_at, Ordering::Relaxed);
        self.ends_at.store(state.def.ends_at, Ordering::Relaxed);
        self.ended.store(state.ended, Ordering::Relaxed);
        self.remaining.store(state.remaining(), Ordering::Release);
    }

    /// The refusal a claim of `qty` at `now` gets without taking the lock, if any. A stale
    /// read only answers as of a moment ago: the mutex re-checks everything it lets through.
    pub fn early_refusal(&self, now: Timestamp, qty: u32) -> Option<EngineError> {
        if self.ended.load(Ordering::Relaxed)
            || now < self.starts_at.load(Ordering::Relaxed)
            || now >= self.ends_at.load(Ordering::Relaxed)
        {
            return Some(not_active(&self.code, now, self.starts_at.load(Ordering::Relaxed)));
        }
        let remaining = self.remaining.load(Ordering::Acquire);
        (remaining < qty).then(|| Conflict::SoldOut { sale: self.code.to_string(), remaining }.into())
    }

    pub fn view(&self, state: &SaleState, now: Timestamp, location_codes: &[Arc<str>]) -> FlashSaleView {
        FlashSaleView {
            def: state.def.clone(),
            status: state.status(now),
            remaining: state.remaining(),
            held: state.held,
            sold: state.sold,
            customers: state.customers.len() as u32,
            pool: state
                .pool
                .iter()
                .map(|share| PoolShare {
                    location: location_codes.get(share.location as usize).map_or_else(|| "?".into(), |c| c.to_string()),
                    remaining: share.remaining,
                })
                .collect(),
        }
    }
}

fn not_active(code: &str, now: Timestamp, starts_at: Timestamp) -> EngineError {
    let status = if now < starts_at { "not started yet" } else { "over" };
    Conflict::SaleNotActive { sale: code.to_owned(), status }.into()
}

/// The flash-sale domain's state: sales by code, read-mostly (claims only clone an entry out).
#[derive(Debug)]
pub(crate) struct FlashSales {
    pub sales: RankedRwLock<FxHashMap<Box<str>, Arc<Sale>>>,
}

impl Default for FlashSales {
    fn default() -> Self {
        FlashSales { sales: RankedRwLock::new(Rank::SalesTable, FxHashMap::default()) }
    }
}

impl FlashSales {
    /// Resolves a sale by code under a short read of the sales table.
    pub(crate) fn sale(&self, code: &str) -> Result<Arc<Sale>> {
        self.sales.read().get(code).cloned().ok_or_else(|| EngineError::not_found(Entity::FlashSale, code))
    }

    /// The sales table's entries, for sweeps, snapshots and checks.
    pub(crate) fn all_sales(&self) -> Vec<Arc<Sale>> {
        let mut sales: Vec<Arc<Sale>> = self.sales.read().values().cloned().collect();
        sales.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        sales
    }
}

/// What flash-sale commands work on besides the sale itself: the catalog and the stock (a
/// pool is a hold on cells, a claim is a reservation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlashScope<'a> {
    pub catalog: &'a Catalog,
    pub stock: &'a Stock,
}

impl FlashScope<'_> {
    /// Creates a sale (carving its pool) or changes one: window, limits and hold time change
    /// freely; a larger quantity carves more, a smaller one gives back unclaimed units.
    pub(crate) fn apply_put_sale(
        &self,
        at: Timestamp,
        def: &FlashSaleDef,
        guards: &mut Guards<'_>,
        existing: Option<(&Sale, &mut SaleState)>,
        sales_count: usize,
    ) -> Result<(bool, FlashSaleView, Option<Arc<Sale>>)> {
        let today = day_of(at);
        let location = match &def.location {
            Some(code) => Some(
                self.catalog
                    .locations
                    .read()
                    .id(code)
                    .ok_or_else(|| EngineError::not_found(Entity::Location, code.as_str()))?,
            ),
            None => None,
        };
        let entry = self.stock.sku_mut(guards, &def.sku)?;
        let Some((sale, state)) = existing else {
            // The caller holds the sales table for writing: it passes the count in.
            if sales_count >= FLASH_SALES_MAX {
                return Err(EngineError::invalid("code", "too many flash sales"));
            }
            let pool = carve(&def.sku, entry, location, def.quantity, today, &[], self.catalog)?;
            let state = SaleState {
                def: def.clone(),
                pool,
                held: 0,
                sold: 0,
                ended: false,
                customers: FxHashMap::default(),
                expiries: BinaryHeap::new(),
            };
            let sale = Arc::new(Sale::new(state));
            let view = sale.view(&sale.state.lock(), at, &self.catalog.locations.read().codes);
            return Ok((true, view, Some(sale)));
        };
        if state.def.sku != def.sku || state.def.location != def.location {
            return Err(Conflict::Other(format!(
                "flash sale {} sells {} from {}; its SKU and location cannot change (use a new code)",
                def.code,
                state.def.sku,
                state.def.location.as_deref().unwrap_or("the network")
            ))
            .into());
        }
        if state.ended {
            return Err(Conflict::Other(format!("flash sale {} has ended", def.code)).into());
        }
        if let Some(most) = state.customers.values().copied().max().filter(|most| *most > def.per_customer_limit) {
            return Err(Conflict::Other(format!(
                "flash sale {}: a customer already has {most} units, more than a limit of {}",
                def.code, def.per_customer_limit
            ))
            .into());
        }
        if def.quantity > state.def.quantity {
            let more =
                carve(&def.sku, entry, location, def.quantity - state.def.quantity, today, &state.pool, self.catalog)?;
            for share in more {
                match state.pool.iter_mut().find(|s| s.location == share.location) {
                    Some(existing) => existing.remaining += share.remaining,
                    None => state.pool.push(share),
                }
            }
        } else if def.quantity < state.def.quantity {
            let mut fewer = state.def.quantity - def.quantity;
            let remaining = state.remaining();
            if remaining < fewer {
                return Err(Conflict::Other(format!(
                    "flash sale {}: only {remaining} unclaimed units can be taken back, not {fewer}",
                    def.code
                ))
                .into());
            }
            for share in state.pool.iter_mut().rev() {
                let back = share.remaining.min(fewer);
                if back == 0 {
                    continue;
                }
                let cell = entry
                    .cell_mut(share.location)
                    .ok_or_else(|| EngineError::Internal("a pool's cell vanished".into()))?;
                cell.reserved -= i64::from(back);
                share.remaining -= back;
                fewer -= back;
            }
        }
        state.def = def.clone();
        sale.publish(state);
        let view = sale.view(state, at, &self.catalog.locations.read().codes);
        Ok((false, view, None))
    }

    /// Turns a claim into a reservation held on the pool's cell(s).
    pub(crate) fn apply_claim(
        &self,
        at: Timestamp,
        claim: &Claim,
        sale: &Arc<Sale>,
        state: &mut SaleState,
    ) -> Result<ReservationView> {
        if self.stock.reservations.contains_key(&claim.id) {
            return Err(EngineError::Internal(format!("reservation id {} reused", claim.id)));
        }
        if state.ended || at < state.def.starts_at || at >= state.def.ends_at {
            return Err(not_active(&claim.sale, at, state.def.starts_at));
        }
        let remaining = state.remaining();
        if remaining < claim.qty {
            return Err(Conflict::SoldOut { sale: claim.sale.clone(), remaining }.into());
        }
        let limit = state.def.per_customer_limit;
        let before = state.customers.get(claim.customer.as_str()).copied().unwrap_or(0);
        if before + claim.qty > limit {
            return Err(Conflict::PerCustomerLimit { sale: claim.sale.clone(), limit, already: before }.into());
        }
        let channel = ChannelName::from(&claim.channel).map_err(|_| EngineError::invalid("channel", "too long"))?;
        let locations = self.catalog.locations.read();
        let mut lines: SmallVec<[HeldLine; 1]> = SmallVec::new();
        let mut need = claim.qty;
        for share in state.pool.iter_mut() {
            let take = share.remaining.min(need);
            if take == 0 {
                continue;
            }
            share.remaining -= take;
            need -= take;
            lines.push(HeldLine {
                sku: sale.sku.clone(),
                location: share.location,
                location_code: locations.codes.get(share.location as usize).cloned().unwrap_or_else(|| Arc::from("?")),
                qty: take,
            });
            if need == 0 {
                break;
            }
        }
        drop(locations);
        state.held += claim.qty;
        state.count_customer(&claim.customer, i64::from(claim.qty));
        let expires_at = at + i64::from(state.def.hold_seconds) * 1000;
        state.expiries.push(Reverse((expires_at, claim.id)));
        sale.publish(state);
        let reservation = Reservation {
            id: claim.id,
            core: Arc::new(ReservationCore {
                channel,
                customer: Some(claim.customer.as_str().into()),
                lines: lines.into_vec().into_boxed_slice(),
                created_at: at,
                sale: Some(sale.code.clone()),
            }),
            expires_at,
            status: ReservationStatus::Active,
            order_ref: None,
            finished_at: None,
        };
        let view = self.stock.view(&reservation);
        self.stock.reservations.insert(claim.id, reservation);
        self.stock.next_reservation_id.fetch_max(claim.id + 1, Ordering::Relaxed);
        self.stock.active_reservations.fetch_add(1, Ordering::Relaxed);
        Ok(view)
    }

    /// The sale is over: the pool's unclaimed units go back to their cells.
    pub(crate) fn apply_end_sale(
        &self,
        at: Timestamp,
        sale: &Sale,
        state: &mut SaleState,
        guards: &mut Guards<'_>,
    ) -> Result<FlashSaleView> {
        if state.ended {
            return Err(Conflict::Other(format!("flash sale {} has already ended", state.def.code)).into());
        }
        if at < state.def.ends_at {
            return Err(Conflict::Other(format!("flash sale {} is not due to end", state.def.code)).into());
        }
        let entry = self.stock.sku_mut(guards, &state.def.sku)?;
        for share in &state.pool {
            let cell =
                entry.cell_mut(share.location).ok_or_else(|| EngineError::Internal("a pool's cell vanished".into()))?;
            cell.reserved -= i64::from(share.remaining);
        }
        state.ended = true;
        sale.publish(state);
        let view = sale.view(state, at, &self.catalog.locations.read().codes);
        Ok(view)
    }

    /// Each pooled cell's code and remaining units, for the audit of a pool change.
    pub(crate) fn pool_codes(&self, state: &SaleState) -> Vec<(String, u32)> {
        let locations = self.catalog.locations.read();
        state
            .pool
            .iter()
            .map(|share| {
                let code = locations.codes.get(share.location as usize).map_or("?", |code| &**code);
                (code.to_owned(), share.remaining)
            })
            .collect()
    }
}

/// A claim's status change booked on its locked sale ([`ClaimBook`], called by the stock
/// domain's check and apply phases).
pub(crate) struct SaleBook<'a> {
    pub sale: &'a Sale,
    pub state: &'a mut SaleState,
}

impl ClaimBook for SaleBook<'_> {
    fn check(&self, reservation: &Reservation, to: ReservationStatus) -> Result<()> {
        let returns = matches!(
            (reservation.status, to),
            (ReservationStatus::Active, ReservationStatus::Released | ReservationStatus::Expired)
                | (ReservationStatus::Committed, ReservationStatus::Cancelled)
        );
        if returns {
            if let Some(line) =
                reservation.core.lines.iter().find(|line| !self.state.pool.iter().any(|s| s.location == line.location))
            {
                return Err(EngineError::Internal(format!(
                    "sale {} has no pool at location {}",
                    self.state.def.code, line.location
                )));
            }
        }
        Ok(())
    }

    fn book(&mut self, reservation: &Reservation, to: ReservationStatus) -> PoolReturn {
        let state = &mut *self.state;
        let qty: u32 = reservation.core.lines.iter().map(|line| line.qty).sum();
        let customer = reservation.core.customer.as_deref().unwrap_or("");
        let back = if state.ended { PoolReturn::ToCell } else { PoolReturn::ToPool };
        match (reservation.status, to) {
            (ReservationStatus::Active, ReservationStatus::Committed) => {
                state.held -= qty;
                state.sold += qty;
            }
            (ReservationStatus::Active, _) => {
                state.held -= qty;
                state.count_customer(customer, -i64::from(qty));
                for line in reservation.core.lines.iter() {
                    state.pool_share_mut(line.location).expect("checked: the pool has the line's cell").remaining +=
                        line.qty;
                }
            }
            (ReservationStatus::Committed, ReservationStatus::Cancelled) => {
                state.sold -= qty;
                state.count_customer(customer, -i64::from(qty));
                for line in reservation.core.lines.iter() {
                    state.pool_share_mut(line.location).expect("checked: the pool has the line's cell").remaining +=
                        line.qty;
                }
            }
            _ => {}
        }
        self.sale.publish(state);
        back
    }
}

/// How each pooled cell's `reserved` moved when a sale's pool went from `before` to `after`.
pub(crate) fn pool_change(before: &[(String, u32)], after: &FlashSaleView) -> Vec<(String, i64)> {
    after
        .pool
        .iter()
        .map(|share| {
            let was = before.iter().find(|(code, _)| *code == share.location).map_or(0, |(_, remaining)| *remaining);
            (share.location.clone(), i64::from(share.remaining) - i64::from(was))
        })
        .collect()
}

/// Takes `quantity` units out of `available` into a pool: from `location`, or from every
/// shipping location holding stock (most available first, then priority, then code), after
/// the cells already in `pool`.
fn carve(
    sku: &str,
    entry: &mut SkuEntry,
    location: Option<LocId>,
    quantity: u32,
    today: crate::time::Day,
    pool: &[PoolCell],
    catalog: &Catalog,
) -> Result<SmallVec<[PoolCell; 1]>> {
    let table = catalog.locations.read();
    let mut candidates: SmallVec<[(LocId, i64); 8]> = match location {
        Some(id) => smallvec::smallvec![(id, entry.cell(id).map_or(0, |cell| cell.available(today)))],
        None => entry
            .cells
            .iter()
            .filter(|(id, _)| table.defs.get(*id as usize).is_some_and(|def| def.ships))
            .map(|(id, cell)| (*id, cell.available(today)))
            .filter(|(_, available)| *available > 0)
            .collect(),
    };
    // Cells already in the pool first, so growing a pool does not scatter it; then the most
    // available, so a pool spans as few cells as it can.
    let rank = |id: LocId, available: i64| {
        let def = &table.defs[id as usize];
        (!pool.iter().any(|share| share.location == id), Reverse(available), def.priority, def.code.as_str())
    };
    candidates.sort_by(|a, b| rank(a.0, a.1).cmp(&rank(b.0, b.1)));
    let total: i64 = candidates.iter().map(|(_, available)| *available).sum();
    if let Some(short) = Shortfall::of(sku, location.map(|id| table.code(id)), quantity, total) {
        return Err(EngineError::InsufficientStock(vec![short]));
    }
    let mut need = i64::from(quantity);
    let mut carved = SmallVec::new();
    for (id, available) in candidates {
        let take = available.min(need);
        if take <= 0 {
            continue;
        }
        let cell = entry.cell_or_insert(id);
        cell.reserved += take;
        carved.push(PoolCell { location: id, remaining: take as u32 });
        need -= take;
        if need == 0 {
            break;
        }
    }
    Ok(carved)
}

/// Checks SPEC invariant 5 on every sale (its locks held, with every shard's): the pool adds
/// up, `held` is what live claims hold, and per-customer counts match and keep to the limit.
/// Adds the units still in open pools to their cells' `reserved` in `holds` (claims are
/// reservations and the stock domain counts them).
pub(crate) fn count_holds<S: std::ops::Deref<Target = SaleState>>(sales: &[S], holds: &mut HoldLedger) {
    for sale in sales {
        if !sale.ended {
            for share in &sale.pool {
                holds.entry((sale.def.sku.clone(), share.location)).or_default().reserved += i64::from(share.remaining);
            }
        }
    }
}

pub(crate) fn check_sales<S: std::ops::Deref<Target = SaleState>>(
    sales: &[S],
    stock: &Stock,
) -> std::result::Result<(), String> {
    let mut claims: FxHashMap<&str, (u64, u64)> = FxHashMap::default();
    let reservations: Vec<_> = stock.reservations.iter().filter(|r| r.core.sale.is_some()).collect();
    for r in &reservations {
        let Some(sale) = &r.core.sale else { continue };
        let qty: u64 = r.core.lines.iter().map(|line| u64::from(line.qty)).sum();
        let slot = claims.entry(sale).or_default();
        match r.status {
            ReservationStatus::Active => slot.0 += qty,
            ReservationStatus::Committed => slot.1 += qty,
            _ => {}
        }
    }
    for sale in sales {
        let code = sale.def.code.as_str();
        let (remaining, held, sold) = (sale.remaining(), sale.held, sale.sold);
        if u64::from(remaining) + u64::from(held) + u64::from(sold) != u64::from(sale.def.quantity) {
            return Err(format!(
                "sale {code}: remaining {remaining} + held {held} + sold {sold} != quantity {}",
                sale.def.quantity
            ));
        }
        let (live, committed) = claims.get(code).copied().unwrap_or_default();
        if live != u64::from(held) {
            return Err(format!("sale {code}: held {held} but live claims hold {live}"));
        }
        if committed > u64::from(sold) {
            return Err(format!("sale {code}: sold {sold} but committed claims hold {committed}"));
        }
        let counted: u64 = sale.customers.values().map(|count| u64::from(*count)).sum();
        if counted != u64::from(held) + u64::from(sold) {
            return Err(format!("sale {code}: customers count {counted}, held + sold is {}", held + sold));
        }
        if let Some((customer, count)) = sale.customers.iter().find(|(_, count)| **count > sale.def.per_customer_limit)
        {
            return Err(format!(
                "sale {code}: customer {customer} has {count} > limit {}",
                sale.def.per_customer_limit
            ));
        }
    }
    Ok(())
}

/// A claim on a flash sale, as the engine's caller asks for it.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub sale: String,
    /// The channel the claim's reservation is made for.
    pub channel: String,
    pub customer: String,
    pub qty: u32,
}
