//! The stock domain's snapshot section: every SKU with its cells, and every reservation.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::catalog::LocId;
use crate::cell::Cell;
use crate::kernel::locks::RankedGuard;
use crate::model::SkuDef;
use crate::stock::views::ReservationStatus;
use crate::stock::{ChannelName, HeldLine, Reservation, ReservationCore, ShardState, SkuEntry, Stock};
use crate::time::Timestamp;

// Its snapshot section. 1: SKUs with cells, reservations (as in snapshot format 3).
crate::kernel::container::snapshot_section!(StockSection, "stock", 1);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SkuImage {
    pub def: SkuDef,
    /// (location index, cell), sorted by location index.
    pub cells: Vec<(u32, Cell)>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HeldLineImage {
    pub sku: String,
    pub location: u32,
    pub qty: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReservationImage {
    pub id: u64,
    pub channel: String,
    pub customer: Option<String>,
    pub lines: Vec<HeldLineImage>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub status: ReservationStatus,
    pub order_ref: Option<String>,
    pub finished_at: Option<Timestamp>,
    /// The flash sale it is a claim on.
    pub sale: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct StockSection {
    pub next_reservation_id: u64,
    pub skus: Vec<SkuImage>,
    pub reservations: Vec<ReservationImage>,
}

type Cells = Vec<(LocId, Cell)>;

/// The stock domain copied with every shard locked: shared pointers and plain values only, so
/// writers wait for a copy, not for an encoding.
#[derive(Debug)]
pub(crate) struct StockCapture {
    next_reservation_id: u64,
    skus: Vec<(Arc<SkuDef>, Cells)>,
    reservations: Vec<Reservation>,
}

impl Stock {
    /// Copies the domain; `guards` are every shard's, held by the caller for the whole copy.
    pub(crate) fn capture(&self, guards: &[RankedGuard<'_, ShardState>]) -> StockCapture {
        let skus = guards
            .iter()
            .flat_map(|guard| guard.skus.values())
            .map(|entry| (entry.def.clone(), entry.cells.clone()))
            .collect();
        let mut reservations = Vec::with_capacity(self.reservations.len());
        reservations.extend(self.reservations.iter().map(|r| r.value().clone()));
        StockCapture { next_reservation_id: self.next_reservation_id.load(Ordering::Relaxed), skus, reservations }
    }

    /// Rebuilds the domain from its section (start-up only). `location_codes` are the
    /// catalog's; `sale_code` gives the shared code of a claim's flash sale.
    pub(crate) fn restore(
        &self,
        section: &StockSection,
        location_codes: &[Arc<str>],
        sale_code: &dyn Fn(&str) -> Option<Arc<str>>,
    ) {
        let mut codes: HashMap<&str, Arc<str>> = HashMap::with_capacity(section.skus.len());
        for sku in &section.skus {
            let code: Arc<str> = sku.def.code.as_str().into();
            codes.insert(sku.def.code.as_str(), code.clone());
            let mut shard = self.shards[self.shard_of(&sku.def.code)].lock();
            shard
                .skus
                .insert(code.clone(), SkuEntry { code, def: Arc::new(sku.def.clone()), cells: sku.cells.clone() });
        }
        let mut active = 0;
        let mut finished = Vec::new();
        for r in &section.reservations {
            let lines: Box<[HeldLine]> = r
                .lines
                .iter()
                .map(|line| HeldLine {
                    sku: codes.get(line.sku.as_str()).cloned().unwrap_or_else(|| line.sku.as_str().into()),
                    location: line.location,
                    location_code: location_codes
                        .get(line.location as usize)
                        .cloned()
                        .unwrap_or_else(|| Arc::from("?")),
                    qty: line.qty,
                })
                .collect();
            let reservation = Reservation {
                id: r.id,
                core: Arc::new(ReservationCore {
                    // An image holds only channels that were valid when reserved.
                    channel: ChannelName::from(&r.channel).unwrap_or_default(),
                    customer: r.customer.as_deref().map(Into::into),
                    lines,
                    created_at: r.created_at,
                    sale: r.sale.as_deref().and_then(sale_code),
                }),
                expires_at: r.expires_at,
                status: r.status,
                order_ref: r.order_ref.as_deref().map(Into::into),
                finished_at: r.finished_at,
            };
            let home = self.home_shard(&reservation);
            if reservation.status == ReservationStatus::Active {
                active += 1;
                let due = Reverse((reservation.expires_at, reservation.id));
                // A claim's expiry is its sale's to track ([`crate::flash`] rebuilds those).
                if reservation.core.sale.is_none() {
                    self.shards[home].lock().expiries.push(due);
                }
            }
            if let Some(finished_at) = reservation.finished_at {
                finished.push((finished_at, reservation.id, home));
            }
            self.reservations.insert(r.id, reservation);
        }
        self.active_reservations.store(active, Ordering::Relaxed);
        finished.sort_unstable();
        for (finished_at, id, home) in finished {
            self.shards[home].lock().finished.push_back((finished_at, id));
        }
        self.next_reservation_id.store(section.next_reservation_id, Ordering::Relaxed);
    }
}

impl StockCapture {
    /// The archivable section (no lock held).
    pub(crate) fn into_section(self) -> StockSection {
        let skus = self.skus.into_iter().map(|(def, cells)| SkuImage { def: SkuDef::clone(&def), cells }).collect();
        let reservations = self
            .reservations
            .into_iter()
            .map(|r| ReservationImage {
                id: r.id,
                channel: r.core.channel.to_string(),
                customer: r.core.customer.as_deref().map(str::to_owned),
                lines: r
                    .core
                    .lines
                    .iter()
                    .map(|line| HeldLineImage { sku: line.sku.to_string(), location: line.location, qty: line.qty })
                    .collect(),
                created_at: r.core.created_at,
                expires_at: r.expires_at,
                status: r.status,
                order_ref: r.order_ref.as_deref().map(str::to_owned),
                finished_at: r.finished_at,
                sale: r.core.sale.as_deref().map(str::to_owned),
            })
            .collect();
        StockSection { next_reservation_id: self.next_reservation_id, skus, reservations }
    }
}
