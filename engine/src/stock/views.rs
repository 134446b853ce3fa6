//! What the stock domain answers: owned, plain views of cells and reservations.
//!
//! Views are copies taken under the shard lock, so a caller never holds engine locks while it
//! serialises a response. They are also what an idempotency key remembers, so they archive.

use rkyv::{Archive, Deserialize, Serialize};

use crate::cell::{Cell, Lot};
use crate::stock::commands::ReserveLine;
use crate::time::{Day, Timestamp};

/// One stock cell with its derived quantities at a given day.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CellView {
    pub sku: String,
    pub location: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub safety_stock: i64,
    pub incoming: i64,
    pub expired: i64,
    pub available: i64,
    pub oversold: i64,
    /// Moving-average unit cost, minor units.
    pub avg_cost: u64,
    pub reorder_point: i64,
    pub reorder_qty: i64,
    pub lots: Vec<Lot>,
}

impl CellView {
    pub fn of(sku: &str, location: &str, cell: &Cell, today: Day) -> Self {
        CellView {
            sku: sku.to_owned(),
            location: location.to_owned(),
            on_hand: cell.on_hand,
            reserved: cell.reserved,
            committed: cell.committed,
            safety_stock: cell.safety_stock,
            incoming: cell.incoming,
            expired: cell.expired(today),
            available: cell.available(today),
            oversold: cell.oversold(today),
            avg_cost: cell.avg_cost(),
            reorder_point: cell.reorder_point,
            reorder_qty: cell.reorder_qty,
            lots: cell.lots().to_vec(),
        }
    }
}

/// Sums of the quantities of one SKU over every location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockTotals {
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub safety_stock: i64,
    pub incoming: i64,
    pub expired: i64,
    pub available: i64,
    pub oversold: i64,
}

impl StockTotals {
    pub fn add(&mut self, cell: &CellView) {
        self.on_hand += cell.on_hand;
        self.reserved += cell.reserved;
        self.committed += cell.committed;
        self.safety_stock += cell.safety_stock;
        self.incoming += cell.incoming;
        self.expired += cell.expired;
        self.available += cell.available;
        self.oversold += cell.oversold;
    }
}

/// One SKU's stock everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuStock {
    pub sku: String,
    pub total: StockTotals,
    pub locations: Vec<CellView>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    Active,
    Committed,
    Fulfilled,
    Released,
    Expired,
    Cancelled,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Active => "active",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Fulfilled => "fulfilled",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Cancelled => "cancelled",
        }
    }

    /// Whether its units still count in cells (`reserved` or `committed`).
    pub fn is_live(self) -> bool {
        matches!(self, ReservationStatus::Active | ReservationStatus::Committed)
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReservationView {
    pub id: u64,
    pub channel: String,
    pub customer: Option<String>,
    pub status: ReservationStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub order_ref: Option<String>,
    pub lines: Vec<ReserveLine>,
    /// The flash sale this reservation is a claim on.
    pub flash_sale: Option<String>,
}
