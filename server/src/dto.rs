//! The JSON shapes of the API and their conversion to and from engine types.
//!
//! **API Boundary:** the engine speaks plain Rust (ms timestamps, day numbers, `u64` ids);
//! this module is where those become RFC 3339 times, `YYYY-MM-DD` dates and string ids.
//! Request types reject unknown fields. Quantities are read as wide integers and range-checked
//! here, so a negative or huge quantity is a 422 naming the field, not a 400 from the parser.

use std::collections::BTreeMap;

use aisle_engine::cell::Lot;
use aisle_engine::command::{Adjust, AdjustChange, AdjustReason, Fulfillment, LotRef, Receive, ReserveLine};
use aisle_engine::error::FieldError;
use aisle_engine::flash::{FlashSaleDef, FlashSaleView};
use aisle_engine::limits::{
    ADJUST_QTY_MAX, ATTRIBUTES_MAX, ATTRIBUTE_LEN_MAX, CHANNELS_PER_LOCATION_MAX, CUSTOMER_LEN_MAX,
    LINES_PER_REQUEST_MAX, LINE_QTY_MAX, NAME_LEN_MAX, NOTE_LEN_MAX, PER_CUSTOMER_LIMIT_MAX, TTL_SECONDS_MAX,
    UNIT_COST_MAX,
};
use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
use aisle_engine::sourced::{Quote, SourcingRequest};
use aisle_engine::time::{Day, Timestamp};
use aisle_engine::view::{CellView, ReservationView, StockTotals};
use aisle_engine::SnapshotInfo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::auth::{Role, TOKEN_NAME_LEN_MAX};
use crate::problem::ApiError;
use crate::schema::{CHANNEL, CODE, DATE, TEXT, TEXT_NONEMPTY};

/// Julian day number of 1970-01-01: engine days count from there.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Formats engine milliseconds as RFC 3339 UTC (`2026-01-02T03:04:05.678Z`).
pub fn rfc3339(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        // Only a timestamp beyond year 9999 gets here; the engine never makes one.
        .unwrap_or_else(|| at.to_string())
}

/// Parses an RFC 3339 time (any offset) into engine milliseconds.
pub fn parse_rfc3339(field: &str, text: &str) -> Result<Timestamp, FieldError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| Timestamp::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .filter(|ms| *ms >= 0)
        .ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time after 1970, e.g. 2026-11-11T00:00:00Z"))
}

/// Formats an engine day number as `YYYY-MM-DD`.
pub fn date(day: Day) -> String {
    Date::from_julian_day(UNIX_EPOCH_JULIAN_DAY.saturating_add(day))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| day.to_string())
}

/// Parses `YYYY-MM-DD` into an engine day number.
pub fn parse_date(field: &str, text: &str) -> Result<Day, FieldError> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|d| d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
        .map_err(|_| FieldError::new(field, "must be a date YYYY-MM-DD"))
}

/// Reservation ids are decimal strings on the wire; anything else names no reservation.
pub fn parse_reservation_id(text: &str) -> Result<u64, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::NotFound(format!("reservation {text:?} not found")));
    }
    text.parse().map_err(|_| ApiError::NotFound(format!("reservation {text:?} not found")))
}

/// A line quantity: 1..=`LINE_QTY_MAX`.
fn line_qty(field: String, qty: i64, errors: &mut Vec<FieldError>) -> u32 {
    match u32::try_from(qty) {
        Ok(q) if (1..=LINE_QTY_MAX).contains(&q) => q,
        _ => {
            errors.push(FieldError::new(field, format!("must be 1 to {LINE_QTY_MAX}")));
            0
        }
    }
}

fn finish<T>(value: T, errors: Vec<FieldError>) -> Result<T, ApiError> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(ApiError::Engine(aisle_engine::EngineError::Invalid(errors)))
    }
}

// ---- catalog -------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A location. A `code` sent back from a GET must equal the path's code (not listed: the
/// path names the location).
#[schemars(example = examples::location())]
pub struct LocationIn {
    #[schemars(skip)]
    pub code: Option<String>,
    #[schemars(length(max = NAME_LEN_MAX), pattern(TEXT))]
    pub name: String,
    #[schemars(extend("enum" = ["warehouse", "store", "locker"]))]
    pub kind: String,
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: f64,
    #[schemars(range(min = -180.0, max = 180.0))]
    pub lon: f64,
    /// The channels it sells to.
    #[serde(default)]
    #[schemars(length(max = CHANNELS_PER_LOCATION_MAX), inner(pattern(CHANNEL)))]
    pub channels: Vec<String>,
    #[serde(default)]
    pub pickup: bool,
    #[serde(default)]
    pub ships: bool,
    #[serde(default)]
    pub priority: i32,
}

impl LocationIn {
    pub fn into_def(self, code: &str) -> Result<LocationDef, ApiError> {
        let mut errors = Vec::new();
        if self.code.as_deref().is_some_and(|c| c != code) {
            errors.push(FieldError::new("code", "must match the code in the path"));
        }
        let kind = match self.kind.as_str() {
            "warehouse" => LocationKind::Warehouse,
            "store" => LocationKind::Store,
            "locker" => LocationKind::Locker,
            _ => {
                errors.push(FieldError::new("kind", "must be warehouse, store or locker"));
                LocationKind::Store
            }
        };
        let def = LocationDef {
            code: code.to_owned(),
            name: self.name,
            kind,
            lat: self.lat,
            lon: self.lon,
            channels: self.channels,
            pickup: self.pickup,
            ships: self.ships,
            priority: self.priority,
        };
        finish(def, errors)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LocationOut {
    pub code: String,
    pub name: String,
    #[schemars(extend("enum" = ["warehouse", "store", "locker"]))]
    pub kind: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub channels: Vec<String>,
    pub pickup: bool,
    pub ships: bool,
    pub priority: i32,
}

impl From<LocationDef> for LocationOut {
    fn from(d: LocationDef) -> Self {
        LocationOut {
            code: d.code,
            name: d.name,
            kind: d.kind.as_str(),
            lat: d.lat,
            lon: d.lon,
            channels: d.channels,
            pickup: d.pickup,
            ships: d.ships,
            priority: d.priority,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A SKU. A `code` sent back from a GET must equal the path's code (not listed: the path
/// names the SKU).
#[schemars(example = examples::sku())]
pub struct SkuIn {
    #[schemars(skip)]
    pub code: Option<String>,
    #[schemars(length(max = NAME_LEN_MAX), pattern(TEXT))]
    pub name: String,
    /// Minor currency units.
    #[schemars(range(min = 0))]
    pub price: i64,
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = ATTRIBUTES_MAX,
        "propertyNames" = {"minLength": 1, "maxLength": ATTRIBUTE_LEN_MAX, "pattern": TEXT},
        "additionalProperties" = {"type": "string", "maxLength": ATTRIBUTE_LEN_MAX, "pattern": TEXT}
    ))]
    pub attributes: BTreeMap<String, String>,
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

impl SkuIn {
    pub fn into_def(self, code: &str) -> Result<SkuDef, ApiError> {
        let mut errors = Vec::new();
        if self.code.as_deref().is_some_and(|c| c != code) {
            errors.push(FieldError::new("code", "must match the code in the path"));
        }
        let def = SkuDef {
            code: code.to_owned(),
            name: self.name,
            price: self.price,
            // A BTreeMap iterates sorted with unique keys, as the engine requires.
            attributes: self.attributes.into_iter().collect(),
            active: self.active,
        };
        finish(def, errors)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SkuOut {
    pub code: String,
    pub name: String,
    pub price: i64,
    pub attributes: BTreeMap<String, String>,
    pub active: bool,
}

impl From<SkuDef> for SkuOut {
    fn from(d: SkuDef) -> Self {
        SkuOut {
            code: d.code,
            name: d.name,
            price: d.price,
            attributes: d.attributes.into_iter().collect(),
            active: d.active,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "PageOf{T}")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

// ---- stock ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LotIn {
    #[schemars(pattern(CODE))]
    pub code: String,
    #[schemars(pattern(DATE), extend("format" = "date"))]
    pub expires_on: String,
}

impl LotIn {
    fn into_ref(self, errors: &mut Vec<FieldError>) -> LotRef {
        let expires_on = parse_date("lot.expires_on", &self.expires_on).unwrap_or_else(|e| {
            errors.push(e);
            0
        });
        LotRef { code: self.code, expires_on }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = examples::receive())]
pub struct ReceiveIn {
    #[schemars(pattern(CODE))]
    pub location: String,
    #[schemars(pattern(CODE))]
    pub sku: String,
    #[schemars(range(min = 1, max = LINE_QTY_MAX))]
    pub qty: i64,
    /// Minor currency units per unit; moves the cell's moving-average cost.
    #[schemars(range(max = UNIT_COST_MAX))]
    pub unit_cost: Option<u64>,
    pub lot: Option<LotIn>,
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    pub reason: Option<String>,
}

impl ReceiveIn {
    pub fn into_command(self) -> Result<Receive, ApiError> {
        let mut errors = Vec::new();
        let qty = line_qty("qty".into(), self.qty, &mut errors);
        let lot = self.lot.map(|lot| lot.into_ref(&mut errors));
        let receive = Receive {
            sku: self.sku,
            location: self.location,
            qty,
            unit_cost: self.unit_cost,
            lot,
            reason: self.reason,
        };
        finish(receive, errors)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// Exactly one of `delta` (units found or lost) and `counted` (a physical count).
#[schemars(extend("oneOf" = [
    {"required": ["delta"], "properties": {"delta": {"type": "integer"}}},
    {"required": ["counted"], "properties": {"counted": {"type": "integer"}}}
]))]
#[schemars(example = examples::adjust())]
pub struct AdjustIn {
    #[schemars(pattern(CODE))]
    pub location: String,
    #[schemars(pattern(CODE))]
    pub sku: String,
    /// Non-zero.
    #[schemars(range(min = -ADJUST_QTY_MAX, max = ADJUST_QTY_MAX), extend("not" = {"const": 0}))]
    pub delta: Option<i64>,
    #[schemars(range(min = 0, max = ADJUST_QTY_MAX))]
    pub counted: Option<i64>,
    #[schemars(extend("enum" = ["count", "damage", "loss", "found", "other"]))]
    pub reason: String,
    pub lot: Option<LotIn>,
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    pub note: Option<String>,
}

impl AdjustIn {
    pub fn into_command(self) -> Result<Adjust, ApiError> {
        let mut errors = Vec::new();
        let change = match (self.delta, self.counted) {
            (Some(delta), None) => AdjustChange::Delta(delta),
            (None, Some(counted)) => AdjustChange::Counted(counted),
            _ => {
                errors.push(FieldError::new("delta", "give exactly one of delta and counted"));
                AdjustChange::Delta(0)
            }
        };
        let reason = AdjustReason::parse(&self.reason).unwrap_or_else(|| {
            errors.push(FieldError::new("reason", "must be count, damage, loss, found or other"));
            AdjustReason::Other
        });
        let lot = self.lot.map(|lot| lot.into_ref(&mut errors));
        let adjust = Adjust { sku: self.sku, location: self.location, change, reason, lot, note: self.note };
        finish(adjust, errors)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CellPolicyIn {
    #[schemars(range(min = 0, max = ADJUST_QTY_MAX))]
    pub safety_stock: Option<i64>,
    #[schemars(range(min = 0, max = ADJUST_QTY_MAX))]
    pub reorder_point: Option<i64>,
    #[schemars(range(min = 0, max = ADJUST_QTY_MAX))]
    pub reorder_qty: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LotOut {
    pub code: String,
    #[schemars(extend("format" = "date"))]
    pub expires_on: String,
    pub qty: i64,
}

impl From<Lot> for LotOut {
    fn from(lot: Lot) -> Self {
        LotOut { code: lot.code, expires_on: date(lot.expires_on), qty: lot.qty }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CellOut {
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
    pub avg_cost: u64,
    pub reorder_point: i64,
    pub reorder_qty: i64,
    pub lots: Vec<LotOut>,
}

impl From<CellView> for CellOut {
    fn from(c: CellView) -> Self {
        CellOut {
            sku: c.sku,
            location: c.location,
            on_hand: c.on_hand,
            reserved: c.reserved,
            committed: c.committed,
            safety_stock: c.safety_stock,
            incoming: c.incoming,
            expired: c.expired,
            available: c.available,
            oversold: c.oversold,
            avg_cost: c.avg_cost,
            reorder_point: c.reorder_point,
            reorder_qty: c.reorder_qty,
            lots: c.lots.into_iter().map(LotOut::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TotalsOut {
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub safety_stock: i64,
    pub incoming: i64,
    pub expired: i64,
    pub available: i64,
    pub oversold: i64,
}

impl From<StockTotals> for TotalsOut {
    fn from(t: StockTotals) -> Self {
        TotalsOut {
            on_hand: t.on_hand,
            reserved: t.reserved,
            committed: t.committed,
            safety_stock: t.safety_stock,
            incoming: t.incoming,
            expired: t.expired,
            available: t.available,
            oversold: t.oversold,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SkuStockOut {
    pub sku: String,
    pub total: TotalsOut,
    pub locations: Vec<CellOut>,
}

// ---- reservations --------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveLineIn {
    #[schemars(pattern(CODE))]
    pub sku: String,
    #[schemars(range(min = 1, max = LINE_QTY_MAX))]
    pub qty: i64,
    /// Absent: the line is sourced (SPEC §3).
    #[schemars(pattern(CODE))]
    pub location: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: f64,
    #[schemars(range(min = -180.0, max = 180.0))]
    pub lon: f64,
}

/// `{type: "ship", to: {lat, lon}}` or `{type: "pickup", location}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum FulfillmentIn {
    Ship {
        to: PointIn,
    },
    Pickup {
        #[schemars(pattern(CODE))]
        location: String,
    },
}

impl From<FulfillmentIn> for Fulfillment {
    fn from(f: FulfillmentIn) -> Self {
        match f {
            FulfillmentIn::Ship { to } => Fulfillment::Ship { lat: to.lat, lon: to.lon },
            FulfillmentIn::Pickup { location } => Fulfillment::Pickup { location },
        }
    }
}

/// A line without a `location` is sourced: `fulfillment` then says where its units go, and
/// `allow_split` applies only with a `fulfillment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": {"properties": {"lines": {"contains": {"not": {"required": ["location"], "properties": {"location": {"type": "string"}}}}}}},
        "then": {"required": ["fulfillment"], "properties": {"fulfillment": {"type": "object"}}}
    },
    {
        "if": {"required": ["allow_split"], "properties": {"allow_split": {"type": "boolean"}}},
        "then": {"required": ["fulfillment"], "properties": {"fulfillment": {"type": "object"}}}
    }
]))]
#[schemars(example = examples::reserve(), example = examples::reserve_sourced())]
pub struct ReserveIn {
    #[schemars(pattern(CHANNEL))]
    pub channel: String,
    #[schemars(length(min = 1, max = LINES_PER_REQUEST_MAX))]
    pub lines: Vec<ReserveLineIn>,
    /// Default 600.
    #[schemars(range(min = 1, max = TTL_SECONDS_MAX))]
    pub ttl_seconds: Option<i64>,
    #[schemars(length(min = 1, max = CUSTOMER_LEN_MAX), pattern(TEXT_NONEMPTY))]
    pub customer: Option<String>,
    /// Needed when a line has no location: where the sourced units go.
    pub fulfillment: Option<FulfillmentIn>,
    pub allow_split: Option<bool>,
}

/// A TTL: 1..=`TTL_SECONDS_MAX`.
pub fn ttl(field: &str, seconds: i64) -> Result<u32, ApiError> {
    match u32::try_from(seconds) {
        Ok(s) if (1..=TTL_SECONDS_MAX).contains(&s) => Ok(s),
        _ => Err(ApiError::invalid(field, format!("must be 1 to {TTL_SECONDS_MAX}"))),
    }
}

/// What a reservation request asks the engine to do.
#[derive(Debug)]
pub enum ReserveCall {
    /// Every line names its location.
    Located(aisle_engine::ReserveRequest),
    /// Some lines are sourced.
    Sourced { request: SourcingRequest, customer: Option<String>, ttl_seconds: Option<u32> },
}

fn reserve_lines(lines: Vec<ReserveLineIn>, errors: &mut Vec<FieldError>) -> Vec<ReserveLine> {
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| ReserveLine {
            qty: line_qty(format!("lines[{i}].qty"), l.qty, errors),
            sku: l.sku,
            location: l.location.unwrap_or_default(),
        })
        .collect()
}

impl ReserveIn {
    pub fn into_call(self) -> Result<ReserveCall, ApiError> {
        let mut errors = Vec::new();
        let ttl_seconds = match self.ttl_seconds {
            None => None,
            Some(s) => match ttl("ttl_seconds", s) {
                Ok(s) => Some(s),
                Err(_) => {
                    errors.push(FieldError::new("ttl_seconds", format!("must be 1 to {TTL_SECONDS_MAX}")));
                    None
                }
            },
        };
        if self.lines.iter().any(|l| l.location.as_deref() == Some("")) {
            errors.push(FieldError::new("lines", "a location, when given, must not be empty"));
        }
        let sourced = self.lines.iter().any(|l| l.location.is_none());
        let lines = reserve_lines(self.lines, &mut errors);
        let call = match self.fulfillment {
            Some(fulfillment) => ReserveCall::Sourced {
                request: SourcingRequest {
                    channel: self.channel,
                    lines,
                    fulfillment: fulfillment.into(),
                    allow_split: self.allow_split.unwrap_or(true),
                },
                customer: self.customer,
                ttl_seconds,
            },
            None => {
                if sourced {
                    errors.push(FieldError::new("fulfillment", "is required when a line has no location"));
                }
                if self.allow_split.is_some() {
                    errors.push(FieldError::new("allow_split", "applies only with a fulfillment"));
                }
                ReserveCall::Located(aisle_engine::ReserveRequest {
                    channel: self.channel,
                    customer: self.customer,
                    ttl_seconds,
                    lines,
                })
            }
        };
        finish(call, errors)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteLineIn {
    #[schemars(pattern(CODE))]
    pub sku: String,
    #[schemars(range(min = 1, max = LINE_QTY_MAX))]
    pub qty: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = examples::quote())]
pub struct QuoteIn {
    #[schemars(pattern(CHANNEL))]
    pub channel: String,
    #[schemars(length(min = 1, max = LINES_PER_REQUEST_MAX))]
    pub lines: Vec<QuoteLineIn>,
    pub fulfillment: FulfillmentIn,
    pub allow_split: Option<bool>,
}

impl QuoteIn {
    pub fn into_request(self) -> Result<SourcingRequest, ApiError> {
        let mut errors = Vec::new();
        let lines = self
            .lines
            .into_iter()
            .map(|l| ReserveLineIn { sku: l.sku, qty: l.qty, location: None })
            .collect::<Vec<_>>();
        let lines = reserve_lines(lines, &mut errors);
        let request = SourcingRequest {
            channel: self.channel,
            lines,
            fulfillment: self.fulfillment.into(),
            allow_split: self.allow_split.unwrap_or(true),
        };
        finish(request, errors)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QuoteLineOut {
    pub sku: String,
    pub qty: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ShipmentOut {
    pub location: String,
    pub distance_km: f64,
    pub lines: Vec<QuoteLineOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QuoteOut {
    pub fulfillable: bool,
    pub shipments: Vec<ShipmentOut>,
    pub shortfalls: Vec<crate::problem::ShortfallOut>,
}

impl From<Quote> for QuoteOut {
    fn from(q: Quote) -> Self {
        QuoteOut {
            fulfillable: q.fulfillable,
            shipments: q
                .shipments
                .into_iter()
                .map(|s| ShipmentOut {
                    location: s.location,
                    // Metres are precise enough for a quote.
                    distance_km: (s.distance_km * 1000.0).round() / 1000.0,
                    lines: s.lines.into_iter().map(|(sku, qty)| QuoteLineOut { sku, qty }).collect(),
                })
                .collect(),
            shortfalls: crate::problem::shortfalls(&q.shortfalls),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendIn {
    #[schemars(range(min = 1, max = TTL_SECONDS_MAX))]
    pub ttl_seconds: i64,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitIn {
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    pub order_ref: Option<String>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LineOut {
    pub sku: String,
    pub qty: u32,
    pub location: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReservationOut {
    pub id: String,
    #[schemars(extend("enum" = ["active", "committed", "fulfilled", "released", "cancelled", "expired"]))]
    pub status: &'static str,
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ref: Option<String>,
    pub lines: Vec<LineOut>,
    /// The flash sale this reservation claims from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_sale: Option<String>,
}

impl From<ReservationView> for ReservationOut {
    fn from(r: ReservationView) -> Self {
        ReservationOut {
            id: r.id.to_string(),
            status: r.status.as_str(),
            channel: r.channel,
            customer: r.customer,
            created_at: rfc3339(r.created_at),
            expires_at: rfc3339(r.expires_at),
            order_ref: r.order_ref,
            lines: r.lines.into_iter().map(|l| LineOut { sku: l.sku, qty: l.qty, location: l.location }).collect(),
            flash_sale: r.flash_sale,
        }
    }
}

// ---- flash sales -----------------------------------------------------------------------

/// Claim hold when the sale does not say: five minutes.
pub const HOLD_SECONDS_DEFAULT: i64 = 300;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// A flash sale. A `code` sent back from a GET must equal the path's code (not listed: the
/// path names the sale).
#[schemars(example = examples::flash_sale())]
pub struct FlashSaleIn {
    #[schemars(skip)]
    pub code: Option<String>,
    #[schemars(pattern(CODE))]
    pub sku: String,
    /// Absent or null: a network pool over every shipping location.
    #[schemars(pattern(CODE))]
    pub location: Option<String>,
    #[schemars(range(min = 1, max = LINE_QTY_MAX))]
    pub quantity: i64,
    #[schemars(extend("format" = "date-time"))]
    pub starts_at: String,
    /// After `starts_at`, at most 31 days later.
    #[schemars(extend("format" = "date-time"))]
    pub ends_at: String,
    /// Default 1.
    #[schemars(range(min = 1, max = PER_CUSTOMER_LIMIT_MAX))]
    pub per_customer_limit: Option<i64>,
    /// Default 300.
    #[schemars(range(min = 1, max = TTL_SECONDS_MAX))]
    pub hold_seconds: Option<i64>,
}

/// A whole number in `1..=max`, or a field error.
fn bounded(field: &str, value: i64, max: u32, errors: &mut Vec<FieldError>) -> u32 {
    match u32::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => v,
        _ => {
            errors.push(FieldError::new(field, format!("must be 1 to {max}")));
            0
        }
    }
}

impl FlashSaleIn {
    pub fn into_def(self, code: &str) -> Result<FlashSaleDef, ApiError> {
        let mut errors = Vec::new();
        if self.code.as_deref().is_some_and(|c| c != code) {
            errors.push(FieldError::new("code", "must match the code in the path"));
        }
        let mut time = |field: &str, text: &str| {
            parse_rfc3339(field, text).unwrap_or_else(|e| {
                errors.push(e);
                0
            })
        };
        let starts_at = time("starts_at", &self.starts_at);
        let ends_at = time("ends_at", &self.ends_at);
        let quantity = bounded("quantity", self.quantity, LINE_QTY_MAX, &mut errors);
        let per_customer_limit =
            bounded("per_customer_limit", self.per_customer_limit.unwrap_or(1), PER_CUSTOMER_LIMIT_MAX, &mut errors);
        let hold_seconds =
            bounded("hold_seconds", self.hold_seconds.unwrap_or(HOLD_SECONDS_DEFAULT), TTL_SECONDS_MAX, &mut errors);
        let def = FlashSaleDef {
            code: code.to_owned(),
            sku: self.sku,
            location: self.location,
            quantity,
            starts_at,
            ends_at,
            per_customer_limit,
            hold_seconds,
        };
        finish(def, errors)
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PoolShareOut {
    pub location: String,
    pub remaining: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FlashSaleOut {
    pub code: String,
    pub sku: String,
    pub location: Option<String>,
    pub quantity: u32,
    pub remaining: u32,
    pub held: u32,
    pub sold: u32,
    #[schemars(extend("enum" = ["scheduled", "active", "sold_out", "ended"]))]
    pub status: &'static str,
    #[schemars(extend("format" = "date-time"))]
    pub starts_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub ends_at: String,
    pub per_customer_limit: u32,
    pub hold_seconds: u32,
    /// Customers holding or having bought units.
    pub customers: u32,
    /// Where the remaining units sit, one entry per pooled cell.
    pub pool: Vec<PoolShareOut>,
}

impl From<FlashSaleView> for FlashSaleOut {
    fn from(v: FlashSaleView) -> Self {
        FlashSaleOut {
            code: v.def.code,
            sku: v.def.sku,
            location: v.def.location,
            quantity: v.def.quantity,
            remaining: v.remaining,
            held: v.held,
            sold: v.sold,
            status: v.status.as_str(),
            starts_at: rfc3339(v.def.starts_at),
            ends_at: rfc3339(v.def.ends_at),
            per_customer_limit: v.def.per_customer_limit,
            hold_seconds: v.def.hold_seconds,
            customers: v.customers,
            pool: v.pool.into_iter().map(|p| PoolShareOut { location: p.location, remaining: p.remaining }).collect(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = examples::claim())]
pub struct ClaimIn {
    #[schemars(length(min = 1, max = CUSTOMER_LEN_MAX), pattern(TEXT_NONEMPTY))]
    pub customer: String,
    /// Default 1.
    #[schemars(range(min = 1, max = PER_CUSTOMER_LIMIT_MAX))]
    pub qty: Option<i64>,
    /// The channel the claim's reservation belongs to; a channel token's own by default,
    /// else `web`.
    #[schemars(pattern(CHANNEL))]
    pub channel: Option<String>,
}

impl ClaimIn {
    pub fn qty(&self) -> Result<u32, ApiError> {
        let mut errors = Vec::new();
        let qty = bounded("qty", self.qty.unwrap_or(1), PER_CUSTOMER_LIMIT_MAX, &mut errors);
        finish(qty, errors)
    }
}

/// The answer to a successful claim.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClaimOut {
    pub reservation_id: String,
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
    #[schemars(extend("enum" = ["active", "committed", "fulfilled", "released", "cancelled", "expired"]))]
    pub status: &'static str,
    pub flash_sale: String,
    pub lines: Vec<LineOut>,
}

impl From<ReservationView> for ClaimOut {
    fn from(r: ReservationView) -> Self {
        ClaimOut {
            reservation_id: r.id.to_string(),
            expires_at: rfc3339(r.expires_at),
            status: r.status.as_str(),
            flash_sale: r.flash_sale.unwrap_or_default(),
            lines: r.lines.into_iter().map(|l| LineOut { sku: l.sku, qty: l.qty, location: l.location }).collect(),
        }
    }
}

// ---- audit trail -----------------------------------------------------------------------

#[derive(Debug, Serialize, JsonSchema)]
pub struct MovementOut {
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    pub sku: String,
    pub location: String,
    pub command: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<String>,
    /// Changes of the cell's quantities.
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub incoming: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_stock: Option<i64>,
}

impl From<aisle_engine::audit::Movement> for MovementOut {
    fn from(m: aisle_engine::audit::Movement) -> Self {
        MovementOut {
            at: rfc3339(m.at),
            sku: m.sku,
            location: m.location,
            command: m.command,
            actor: m.actor,
            reason: m.reason,
            reservation: m.reservation.map(|id| id.to_string()),
            on_hand: m.on_hand,
            reserved: m.reserved,
            committed: m.committed,
            incoming: m.incoming,
            safety_stock: m.safety_stock,
        }
    }
}

/// Engine cursors are bytes; on the wire they are lowercase hex.
pub fn cursor_out(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn cursor_in(text: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::invalid("cursor", "is not a cursor this server gave out");
    if text.len() % 2 != 0 {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()).ok_or_else(bad))
        .collect()
}

// ---- operations ------------------------------------------------------------------------

/// `POST /v1/tokens`. A `channel` token names its channel, a `pos` token its location;
/// `admin` and `ops` tokens name neither.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"properties": {"role": {"enum": ["admin", "ops"]}, "channel": {"type": "null"}, "location": {"type": "null"}}},
    {"properties": {"role": {"const": "channel"}, "channel": {"type": "string"}, "location": {"type": "null"}}, "required": ["channel"]},
    {"properties": {"role": {"const": "pos"}, "location": {"type": "string"}, "channel": {"type": "null"}}, "required": ["location"]}
]))]
pub struct TokenIn {
    #[schemars(length(min = 1, max = TOKEN_NAME_LEN_MAX), pattern(TEXT_NONEMPTY))]
    pub name: String,
    pub role: Role,
    #[schemars(pattern(CHANNEL))]
    pub channel: Option<String>,
    /// An existing location.
    #[schemars(pattern(CODE))]
    pub location: Option<String>,
}

/// `POST /v1/ops/snapshot`: what the snapshot just taken covers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SnapshotOut {
    /// The last log record in the image.
    pub lsn: u64,
    /// The size of the snapshot file.
    pub bytes: u64,
    /// How long taking it took, copy and write.
    pub millis: u64,
}

impl From<&SnapshotInfo> for SnapshotOut {
    fn from(info: &SnapshotInfo) -> Self {
        SnapshotOut {
            lsn: info.lsn,
            bytes: u64::try_from(info.bytes).unwrap_or(u64::MAX),
            millis: u64::try_from(info.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Examples of the main request bodies, shown in `/openapi.json` (and sent by its examples
/// phase in CI); they name the locations and SKUs of README's walkthrough.
mod examples {
    use serde_json::{json, Value};

    pub fn location() -> Value {
        json!({"name": "Causeway Bay", "kind": "store", "lat": 22.28, "lon": 114.18,
               "channels": ["web", "pos"], "pickup": true, "ships": true, "priority": 0})
    }

    pub fn sku() -> Value {
        json!({"name": "Linen tee, M", "price": 19900, "attributes": {"colour": "sand", "size": "M"}})
    }

    pub fn receive() -> Value {
        json!({"location": "HK-CWB", "sku": "TEE-M", "qty": 24, "unit_cost": 6500,
               "lot": {"code": "L2026-11", "expires_on": "2027-11-30"}, "reason": "PO 4471"})
    }

    pub fn adjust() -> Value {
        json!({"location": "HK-CWB", "sku": "TEE-M", "counted": 22, "reason": "count", "note": "monthly count"})
    }

    pub fn reserve() -> Value {
        json!({"channel": "web", "lines": [{"sku": "TEE-M", "qty": 2, "location": "HK-CWB"}],
               "ttl_seconds": 600, "customer": "c-1042"})
    }

    pub fn reserve_sourced() -> Value {
        json!({"channel": "web", "lines": [{"sku": "TEE-M", "qty": 2}],
               "fulfillment": {"type": "ship", "to": {"lat": 22.32, "lon": 114.17}}, "allow_split": true})
    }

    pub fn quote() -> Value {
        json!({"channel": "web", "lines": [{"sku": "TEE-M", "qty": 2}],
               "fulfillment": {"type": "pickup", "location": "HK-CWB"}})
    }

    pub fn flash_sale() -> Value {
        json!({"sku": "SNKR", "location": "HK-WH", "quantity": 500, "starts_at": "2026-11-11T00:00:00Z",
               "ends_at": "2026-11-12T00:00:00Z", "per_customer_limit": 1, "hold_seconds": 300})
    }

    pub fn claim() -> Value {
        json!({"customer": "c-1042", "qty": 1})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_constant_matches_the_calendar() {
        assert_eq!(OffsetDateTime::UNIX_EPOCH.date().to_julian_day(), UNIX_EPOCH_JULIAN_DAY);
    }

    #[test]
    fn dates_round_trip() {
        for (day, text) in [(0, "1970-01-01"), (20_000, "2024-10-04"), (-1, "1969-12-31")] {
            assert_eq!(date(day), text);
            assert_eq!(parse_date("d", text), Ok(day));
        }
        assert!(parse_date("d", "2024-13-01").is_err());
        assert!(parse_date("d", "tomorrow").is_err());
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn rfc3339_parses_offsets_and_rejects_junk() {
        assert_eq!(parse_rfc3339("t", "2023-11-14T22:13:20.123Z"), Ok(1_700_000_000_123));
        assert_eq!(parse_rfc3339("t", "2023-11-15T06:13:20.123+08:00"), Ok(1_700_000_000_123));
        for bad in ["", "2023-11-14", "1969-12-31T23:59:59Z", "yesterday", "2023-11-14T25:00:00Z"] {
            assert!(parse_rfc3339("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let bytes = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(cursor_in(&cursor_out(&bytes)).ok(), Some(bytes));
        assert!(cursor_in("abc").is_err());
        assert!(cursor_in("zz").is_err());
    }

    #[test]
    fn reservation_ids() {
        assert_eq!(parse_reservation_id("42").ok(), Some(42));
        for bad in ["", "-1", "r_1", "1.0", "99999999999999999999999"] {
            assert!(parse_reservation_id(bad).is_err(), "{bad}");
        }
    }
}
