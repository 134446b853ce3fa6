//! The stock domain's logged commands: receipts, adjustments, cell policies and reservations,
//! exactly as the write-ahead log records them (inside [`crate::command::Command`]).

use rkyv::{Archive, Deserialize, Serialize};

use crate::time::{Day, Timestamp};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LotRef {
    pub code: String,
    pub expires_on: Day,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Receive {
    pub sku: String,
    pub location: String,
    pub qty: u32,
    pub unit_cost: Option<u64>,
    pub lot: Option<LotRef>,
    pub reason: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustReason {
    Count,
    Damage,
    Loss,
    Found,
    Other,
}

impl AdjustReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustReason::Count => "count",
            AdjustReason::Damage => "damage",
            AdjustReason::Loss => "loss",
            AdjustReason::Found => "found",
            AdjustReason::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "count" => AdjustReason::Count,
            "damage" => AdjustReason::Damage,
            "loss" => AdjustReason::Loss,
            "found" => AdjustReason::Found,
            "other" => AdjustReason::Other,
            _ => return None,
        })
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustChange {
    /// Units found (+) or lost (-).
    Delta(i64),
    /// A physical count: on hand becomes this.
    Counted(i64),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Adjust {
    pub sku: String,
    pub location: String,
    pub change: AdjustChange,
    pub reason: AdjustReason,
    /// The lot the change applies to, when known.
    pub lot: Option<LotRef>,
    pub note: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct CellPolicy {
    pub sku: String,
    pub location: String,
    pub safety_stock: Option<i64>,
    pub reorder_point: Option<i64>,
    pub reorder_qty: Option<i64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReserveLine {
    pub sku: String,
    pub location: String,
    pub qty: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    pub id: u64,
    pub channel: String,
    pub customer: Option<String>,
    pub expires_at: Timestamp,
    /// Merged: at most one line per (sku, location).
    pub lines: Vec<ReserveLine>,
}

/// Where a sourced basket goes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Fulfillment {
    /// Shipped to the customer at these coordinates (degrees).
    Ship { lat: f64, lon: f64 },
    /// Collected at this location (stock elsewhere is shipped to it).
    Pickup { location: String },
}

/// A reservation whose lines without a location (`location` empty) are sourced (SPEC §3).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReserveSourced {
    pub id: u64,
    pub channel: String,
    pub customer: Option<String>,
    pub expires_at: Timestamp,
    /// Merged per (sku, location); lines to source have an empty location.
    pub lines: Vec<ReserveLine>,
    pub fulfillment: Fulfillment,
    pub allow_split: bool,
}
