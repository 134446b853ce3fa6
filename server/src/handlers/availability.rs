//! `GET /v1/availability`: what POS terminals and store staff ask before a sale, for many
//! SKUs per call: `here`, `nearby` (nearest locations with stock) and `network`.
//!
//! Query: `skus=A,B` (or repeated), `location=`, `near=lat,lon`, `channel=`, `limit=` (nearby
//! locations per SKU, default 5). A channel token sees its channel's network by default; a POS
//! token's `location` defaults to its store.

use std::sync::Arc;

use aisle_engine::availability::{AvailabilityQuery, LocationStock, SkuAvailability};
use hyper::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::{Call, Reply};
use crate::auth::Role;
use crate::problem::ApiError;
use crate::shared::App;

/// Nearby locations listed per SKU when `limit` is not given.
pub const NEARBY_DEFAULT: usize = 5;

#[derive(Debug, Serialize, JsonSchema)]
pub struct LocationStockOut {
    location: String,
    available: i64,
    incoming: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_km: Option<f64>,
}

impl From<LocationStock> for LocationStockOut {
    fn from(s: LocationStock) -> Self {
        LocationStockOut {
            location: s.location,
            available: s.available,
            incoming: s.incoming,
            // Metres are precise enough for a shop floor.
            distance_km: s.distance_km.map(|d| (d * 1000.0).round() / 1000.0),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SkuAvailabilityOut {
    sku: String,
    here: Option<LocationStockOut>,
    nearby: Vec<LocationStockOut>,
    network: i64,
}

impl From<SkuAvailability> for SkuAvailabilityOut {
    fn from(a: SkuAvailability) -> Self {
        SkuAvailabilityOut {
            sku: a.sku,
            here: a.here.map(LocationStockOut::from),
            nearby: a.nearby.into_iter().map(LocationStockOut::from).collect(),
            network: a.network,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AvailabilityOut {
    items: Vec<SkuAvailabilityOut>,
}

fn parse_near(text: &str) -> Result<(f64, f64), ApiError> {
    let bad = || ApiError::invalid("near", "must be lat,lon in degrees");
    let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
    Ok((lat.trim().parse().map_err(|_| bad())?, lon.trim().parse().map_err(|_| bad())?))
}

pub fn get(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let principal = call.principal()?;
    let mut query = AvailabilityQuery { limit: NEARBY_DEFAULT, ..AvailabilityQuery::default() };
    for (key, value) in call.query_pairs() {
        match key.as_str() {
            "skus" | "sku" => query.skus.extend(value.split(',').filter(|s| !s.is_empty()).map(str::to_owned)),
            "location" => query.location = Some(value),
            "near" => query.near = Some(parse_near(&value)?),
            "channel" => query.channel = Some(value),
            "limit" => query.limit = value.parse().map_err(|_| ApiError::invalid("limit", "must be a whole number"))?,
            other => return Err(ApiError::invalid(other, "is not a parameter of this route")),
        }
    }
    if query.channel.is_none() && principal.role == Role::Channel {
        query.channel = principal.channel.clone();
    }
    if let Some(channel) = &query.channel {
        principal.check_channel(channel)?;
    }
    if query.location.is_none() && principal.role == Role::Pos {
        query.location = principal.location.clone();
    }
    let items = app.engine.availability(&query)?.into_iter().map(SkuAvailabilityOut::from).collect();
    Reply::json(StatusCode::OK, &AvailabilityOut { items })
}
