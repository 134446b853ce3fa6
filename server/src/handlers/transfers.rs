//! `/v1/transfers` and `/v1/replenishments`: stock moved between locations, stores asking for
//! it, and suggestions of what to ask for. The JSON shapes of this area live here.
//!
//! Writes are admin-only (the route table's `StockWrite`). Reads (`StockRead`) are open to ops
//! and to POS tokens for their own location: a transfer from or to it, a request by or from it,
//! and its own suggestions (a POS token asking without `location` gets its own).
//!
//! Ids are decimal strings. Statuses: a new transfer or request answers 201, every other
//! write 200. Suggestions are paged in (location, SKU) order with an opaque `cursor`.

use std::sync::Arc;

use aisle_engine::error::FieldError;
use aisle_engine::limits::{LINES_PER_REQUEST_MAX, LINE_QTY_MAX, NOTE_LEN_MAX, SUGGESTIONS_PAGE_MAX};
use aisle_engine::transfer::{
    ReplenishmentRequest, ReplenishmentView, Suggestion, TransferLine, TransferRequest, TransferView,
};
use aisle_engine::EngineError;
use hyper::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Call, Reply};
use crate::auth::{Principal, Role};
use crate::dto::{cursor_in, cursor_out, rfc3339, Empty, LotOut, Page};
use crate::problem::ApiError;
use crate::schema::{CODE, TEXT};
use crate::shared::App;

/// Suggestions per page when `limit` is not given.
pub const SUGGESTIONS_PAGE_DEFAULT: usize = 100;

// ---- JSON ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferLineIn {
    #[schemars(pattern(CODE))]
    pub sku: String,
    #[schemars(range(min = 1, max = LINE_QTY_MAX))]
    pub qty: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
/// `to` differs from `from`.
pub struct TransferIn {
    #[schemars(pattern(CODE))]
    pub from: String,
    #[schemars(pattern(CODE))]
    pub to: String,
    #[schemars(length(min = 1, max = LINES_PER_REQUEST_MAX))]
    pub lines: Vec<TransferLineIn>,
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferReceiveIn {
    /// Absent: everything outstanding.
    #[schemars(length(min = 1, max = LINES_PER_REQUEST_MAX))]
    pub lines: Option<Vec<TransferLineIn>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplenishmentIn {
    #[schemars(pattern(CODE))]
    pub location: String,
    #[schemars(length(min = 1, max = LINES_PER_REQUEST_MAX))]
    pub lines: Vec<TransferLineIn>,
    /// The location asked to send the stock; absent: decided at approval.
    #[schemars(pattern(CODE))]
    pub from: Option<String>,
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveIn {
    /// The source; absent: the request's, else the best one.
    #[schemars(pattern(CODE))]
    pub from: Option<String>,
}

#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectIn {
    #[schemars(length(max = NOTE_LEN_MAX), pattern(TEXT))]
    pub reason: Option<String>,
}

/// Lines with quantities range-checked (a negative or huge `qty` is a 422 naming the field).
pub fn lines_in(lines: Vec<TransferLineIn>) -> Result<Vec<TransferLine>, ApiError> {
    let mut errors = Vec::new();
    let lines = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let qty = u32::try_from(line.qty).ok().filter(|q| (1..=LINE_QTY_MAX).contains(q)).unwrap_or_else(|| {
                errors.push(FieldError::new(format!("lines[{i}].qty"), format!("must be 1 to {LINE_QTY_MAX}")));
                0
            });
            TransferLine { sku: line.sku, qty }
        })
        .collect();
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(ApiError::Engine(EngineError::Invalid(errors)))
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TransferLineOut {
    pub sku: String,
    pub qty: u32,
    pub shipped: u32,
    pub received: u32,
    /// The source's average unit cost when shipped, minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<u64>,
    /// The lots the shipped units came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lots: Vec<LotOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TransferOut {
    pub id: String,
    #[schemars(extend("enum" = ["held", "shipped", "partially_received", "received", "cancelled"]))]
    pub status: &'static str,
    pub from: String,
    pub to: String,
    pub lines: Vec<TransferLineOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub shipped_at: Option<String>,
    /// The last receipt's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub received_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub cancelled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replenishment_id: Option<String>,
}

impl From<TransferView> for TransferOut {
    fn from(t: TransferView) -> Self {
        TransferOut {
            id: t.id.to_string(),
            status: t.status.as_str(),
            from: t.from,
            to: t.to,
            lines: t
                .lines
                .into_iter()
                .map(|l| TransferLineOut {
                    sku: l.sku,
                    qty: l.qty,
                    shipped: l.shipped,
                    received: l.received,
                    unit_cost: l.unit_cost,
                    lots: l.lots.into_iter().map(LotOut::from).collect(),
                })
                .collect(),
            note: t.note,
            created_at: rfc3339(t.created_at),
            shipped_at: t.shipped_at.map(rfc3339),
            received_at: t.received_at.map(rfc3339),
            cancelled_at: t.cancelled_at.map(rfc3339),
            replenishment_id: t.replenishment.map(|id| id.to_string()),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReplenishmentLineOut {
    pub sku: String,
    pub qty: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReplenishmentOut {
    pub id: String,
    #[schemars(extend("enum" = ["requested", "approved", "rejected"]))]
    pub status: &'static str,
    pub location: String,
    /// The requested source; once approved, the transfer's source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub lines: Vec<ReplenishmentLineOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<ReplenishmentView> for ReplenishmentOut {
    fn from(r: ReplenishmentView) -> Self {
        ReplenishmentOut {
            id: r.id.to_string(),
            status: r.status.as_str(),
            location: r.location,
            from: r.from,
            lines: r.lines.into_iter().map(|l| ReplenishmentLineOut { sku: l.sku, qty: l.qty }).collect(),
            note: r.note,
            created_at: rfc3339(r.created_at),
            decided_at: r.decided_at.map(rfc3339),
            transfer_id: r.transfer.map(|id| id.to_string()),
            reason: r.reason,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceOut {
    pub location: String,
    pub available: i64,
    pub distance_km: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SuggestionOut {
    pub sku: String,
    pub location: String,
    pub available: i64,
    pub incoming: i64,
    /// Held transfers to the cell and open requests for it.
    pub on_order: i64,
    pub reorder_point: i64,
    pub reorder_qty: i64,
    pub suggested_qty: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceOut>,
}

impl From<Suggestion> for SuggestionOut {
    fn from(s: Suggestion) -> Self {
        SuggestionOut {
            sku: s.sku,
            location: s.location,
            available: s.available,
            incoming: s.incoming,
            on_order: s.on_order,
            reorder_point: s.reorder_point,
            reorder_qty: s.reorder_qty,
            suggested_qty: s.suggested_qty,
            source: s.source.map(|source| SourceOut {
                location: source.location,
                available: source.available,
                // Metres are precise enough.
                distance_km: (source.distance_km * 1000.0).round() / 1000.0,
            }),
        }
    }
}

// ---- access and ids ----------------------------------------------------------------------

/// Ids are decimal strings; anything else names nothing.
fn parse_id(kind: &str, text: &str) -> Result<u64, ApiError> {
    let not_found = || ApiError::NotFound(format!("{kind} {text:?} not found"));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found());
    }
    text.parse().map_err(|_| not_found())
}

/// 403 unless the token may see something at one of `locations`.
fn check_any_location(principal: &Principal, locations: &[&str]) -> Result<(), ApiError> {
    match locations.iter().find(|location| principal.check_location(location).is_ok()) {
        Some(_) => Ok(()),
        None => principal.check_location(locations.first().copied().unwrap_or_default()),
    }
}

fn load_transfer(app: &Arc<App>, call: &Call<'_>) -> Result<(u64, TransferView), ApiError> {
    let id = parse_id("transfer", call.param(0))?;
    let view = app.engine.transfer(id).ok_or_else(|| ApiError::NotFound(format!("transfer {id} not found")))?;
    check_any_location(call.principal()?, &[&view.from, &view.to])?;
    Ok((id, view))
}

fn load_replenishment(app: &Arc<App>, call: &Call<'_>) -> Result<(u64, ReplenishmentView), ApiError> {
    let id = parse_id("replenishment", call.param(0))?;
    let view =
        app.engine.replenishment(id).ok_or_else(|| ApiError::NotFound(format!("replenishment {id} not found")))?;
    let mut places = vec![view.location.as_str()];
    places.extend(view.from.as_deref());
    check_any_location(call.principal()?, &places)?;
    Ok((id, view))
}

fn transfer_reply(status: StatusCode, view: TransferView) -> Result<Reply, ApiError> {
    Reply::json(status, &TransferOut::from(view))
}

fn replenishment_reply(status: StatusCode, view: ReplenishmentView) -> Result<Reply, ApiError> {
    Reply::json(status, &ReplenishmentOut::from(view))
}

// ---- transfers -----------------------------------------------------------------------------

pub async fn create(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: TransferIn = call.json()?;
    let request = TransferRequest { from: body.from, to: body.to, lines: lines_in(body.lines)?, note: body.note };
    let view = app.durable(app.engine.create_transfer(call.context()?, request)?).await?;
    transfer_reply(StatusCode::CREATED, view)
}

pub fn get(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let (_, view) = load_transfer(app, &call)?;
    transfer_reply(StatusCode::OK, view)
}

pub async fn ship(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let Empty {} = call.json_or_default()?;
    let (id, _) = load_transfer(app, &call)?;
    let view = app.durable(app.engine.ship_transfer(call.context()?, id)?).await?;
    transfer_reply(StatusCode::OK, view)
}

pub async fn receive(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: TransferReceiveIn = call.json_or_default()?;
    let lines = body.lines.map(lines_in).transpose()?;
    let (id, _) = load_transfer(app, &call)?;
    let view = app.durable(app.engine.receive_transfer(call.context()?, id, lines)?).await?;
    transfer_reply(StatusCode::OK, view)
}

pub async fn cancel(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let (id, _) = load_transfer(app, &call)?;
    let view = app.durable(app.engine.cancel_transfer(call.context()?, id)?).await?;
    transfer_reply(StatusCode::OK, view)
}

// ---- replenishments ------------------------------------------------------------------------

pub async fn request(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: ReplenishmentIn = call.json()?;
    let request = ReplenishmentRequest {
        location: body.location,
        from: body.from,
        lines: lines_in(body.lines)?,
        note: body.note,
    };
    let view = app.durable(app.engine.request_replenishment(call.context()?, request)?).await?;
    replenishment_reply(StatusCode::CREATED, view)
}

pub fn get_replenishment(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let (_, view) = load_replenishment(app, &call)?;
    replenishment_reply(StatusCode::OK, view)
}

pub async fn approve(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: ApproveIn = call.json_or_default()?;
    let (id, _) = load_replenishment(app, &call)?;
    let view = app.durable(app.engine.approve_replenishment(call.context()?, id, body.from)?).await?;
    replenishment_reply(StatusCode::OK, view)
}

pub async fn reject(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: RejectIn = call.json_or_default()?;
    let (id, _) = load_replenishment(app, &call)?;
    let view = app.durable(app.engine.reject_replenishment(call.context()?, id, body.reason)?).await?;
    replenishment_reply(StatusCode::OK, view)
}

/// `GET /v1/replenishments/suggestions?location=&limit=&cursor=`.
pub fn suggestions(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let mut location: Option<String> = None;
    let mut limit = SUGGESTIONS_PAGE_DEFAULT;
    let mut after: Option<(String, String)> = None;
    for (key, value) in call.query_pairs() {
        match key.as_str() {
            "location" if !value.is_empty() => location = Some(super::catalog::code_filter("location", value)?),
            "location" => {}
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=SUGGESTIONS_PAGE_MAX).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("must be 1 to {SUGGESTIONS_PAGE_MAX}")))?;
            }
            "cursor" if value.is_empty() => {}
            "cursor" => {
                let bytes = cursor_in(&value)?;
                let text = String::from_utf8(bytes).ok();
                let pair = text.as_deref().and_then(|t| t.split_once('\0'));
                let (loc, sku) =
                    pair.ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this server gave out"))?;
                after = Some((loc.to_owned(), sku.to_owned()));
            }
            other => return Err(ApiError::invalid(other, "unknown query parameter")),
        }
    }
    let principal = call.principal()?;
    if principal.role == Role::Pos {
        match (&location, &principal.location) {
            (Some(asked), _) => principal.check_location(asked)?,
            (None, Some(own)) => location = Some(own.clone()),
            (None, None) => return Err(ApiError::Forbidden("this POS token is bound to no location".into())),
        }
    }
    let after_ref = after.as_ref().map(|(loc, sku)| (loc.as_str(), sku.as_str()));
    let page = app.engine.replenishment_suggestions(location.as_deref(), after_ref, limit)?;
    let next_cursor = page.next.map(|(loc, sku)| cursor_out(format!("{loc}\0{sku}").as_bytes()));
    let items: Vec<SuggestionOut> = page.items.into_iter().map(SuggestionOut::from).collect();
    Reply::json(StatusCode::OK, &Page { items, next_cursor })
}
