//! Inventory valuation: what the stock on hand is worth at moving-average cost, per location.
//!
//! A report, not a hot path: it walks every shard once, holding one shard's lock at a time,
//! so each SKU's figures are consistent and writers wait at most one shard's walk.

/// Stock value at one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationValue {
    pub location: String,
    /// SKUs with units on hand here.
    pub skus: u64,
    pub on_hand: i64,
    /// Σ on_hand × avg_cost, in minor currency units (exact: cost is kept in millionths).
    pub value: i128,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valuation {
    /// By location code.
    pub locations: Vec<LocationValue>,
    pub on_hand: i64,
    pub value: i128,
}
