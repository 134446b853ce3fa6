//! Live availability for POS terminals and store staff: for each SKU, what is here, what is
//! nearest, and what the whole network can sell to a channel.
//!
//! Answers come from memory under one shard lock per SKU: the SKU's cells are walked once
//! (only locations that ever held it, not the whole network) and the nearest ones with stock
//! are kept in a small top-k ranked by chord length from the origin ([`GeoPoint::chord2`],
//! no trigonometry; true distances only for the k kept), so a call costs microseconds.

/// What to look up.
#[derive(Debug, Clone, Default)]
pub struct AvailabilityQuery {
    pub skus: Vec<String>,
    /// The caller's location: answers `here`, and is the origin of `nearby` unless `near`
    /// is given.
    pub location: Option<String>,
    /// Origin of `nearby` in degrees.
    pub near: Option<(f64, f64)>,
    /// Only locations selling to this channel count; all locations when `None`.
    pub channel: Option<String>,
    /// How many nearby locations to list per SKU.
    pub limit: usize,
}

/// Stock of one SKU at one location, as availability shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationStock {
    pub location: String,
    pub available: i64,
    pub incoming: i64,
    /// From the origin; `None` when the query has no origin.
    pub distance_km: Option<f64>,
}

/// One SKU's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SkuAvailability {
    pub sku: String,
    /// At the query's location (zeros when it holds none).
    pub here: Option<LocationStock>,
    /// Nearest locations with stock (other than `here`), nearest first.
    pub nearby: Vec<LocationStock>,
    /// Available units at every location selling to the channel.
    pub network: i64,
}
