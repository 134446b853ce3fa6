//! Catalog (locations, SKUs) and stock cells: `/v1/locations`, `/v1/skus`, `/v1/stock`.

use std::sync::Arc;

use aisle_engine::command::CellPolicy;
use aisle_engine::error::Entity;
use aisle_engine::limits::CODE_LEN_MAX;
use aisle_engine::EngineError;
use hyper::StatusCode;
use schemars::JsonSchema;

use super::{Call, Reply};
use crate::dto::{
    cursor_in, cursor_out, AdjustIn, CellOut, CellPolicyIn, LocationIn, LocationOut, MovementOut, Page, ReceiveIn,
    SkuIn, SkuOut, SkuStockOut,
};
use crate::problem::ApiError;
use crate::shared::App;

/// SKUs per page when `limit` is not given, and the most a page may hold.
pub const SKUS_PAGE_DEFAULT: usize = 100;
pub const SKUS_PAGE_MAX: usize = 1000;
/// Movements per page when `limit` is not given, and the most a page may hold.
pub const MOVEMENTS_PAGE_DEFAULT: usize = 100;
pub const MOVEMENTS_PAGE_MAX: usize = 1000;

pub(super) fn put_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

pub fn list_locations(app: &Arc<App>) -> Result<Reply, ApiError> {
    let mut items: Vec<LocationOut> = app.engine.locations().into_iter().map(LocationOut::from).collect();
    items.sort_by(|a, b| a.code.cmp(&b.code));
    Reply::json(StatusCode::OK, &Page { items, next_cursor: None })
}

pub async fn put_location(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let def = call.json::<LocationIn>()?.into_def(call.param(0))?;
    let ack = app.engine.put_location(call.context()?, def)?;
    let created = app.durable(ack).await?;
    let stored = app
        .engine
        .location(call.param(0))
        .ok_or_else(|| ApiError::Internal("a location just written is missing".into()))?;
    Reply::json(put_status(created), &LocationOut::from(stored))
}

pub fn get_location(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let code = call.param(0);
    let def = app.engine.location(code).ok_or_else(|| EngineError::not_found(Entity::Location, code))?;
    Reply::json(StatusCode::OK, &LocationOut::from(def))
}

pub fn list_skus(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let mut prefix = String::new();
    let mut cursor = None;
    let mut limit = SKUS_PAGE_DEFAULT;
    for (key, value) in call.query_pairs() {
        match key.as_str() {
            "prefix" if value.chars().count() <= CODE_LEN_MAX => prefix = value,
            "prefix" => return Err(ApiError::invalid("prefix", format!("must be at most {CODE_LEN_MAX} characters"))),
            "cursor" if !value.is_empty() => cursor = Some(value),
            "cursor" => {}
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=SKUS_PAGE_MAX).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("must be 1 to {SKUS_PAGE_MAX}")))?;
            }
            other => return Err(ApiError::invalid(other, "unknown query parameter")),
        }
    }
    // One more than asked tells whether another page follows.
    let mut items: Vec<SkuOut> =
        app.engine.skus(&prefix, cursor.as_deref(), limit + 1).into_iter().map(SkuOut::from).collect();
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|s| s.code.clone())
    } else {
        None
    };
    Reply::json(StatusCode::OK, &Page { items, next_cursor })
}

pub async fn put_sku(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let def = call.json::<SkuIn>()?.into_def(call.param(0))?;
    let ack = app.engine.put_sku(call.context()?, def)?;
    let created = app.durable(ack).await?;
    let stored =
        app.engine.sku(call.param(0)).ok_or_else(|| ApiError::Internal("a SKU just written is missing".into()))?;
    Reply::json(put_status(created), &SkuOut::from(stored))
}

pub fn get_sku(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let code = call.param(0);
    let def = app.engine.sku(code).ok_or_else(|| EngineError::not_found(Entity::Sku, code))?;
    Reply::json(StatusCode::OK, &SkuOut::from(def))
}

pub async fn receive(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let receive = call.json::<ReceiveIn>()?.into_command()?;
    call.principal()?.check_location(&receive.location)?;
    let ack = app.engine.receive(call.context()?, receive)?;
    Reply::json(StatusCode::OK, &CellOut::from(app.durable(ack).await?))
}

pub async fn adjust(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let adjust = call.json::<AdjustIn>()?.into_command()?;
    let ack = app.engine.adjust(call.context()?, adjust)?;
    Reply::json(StatusCode::OK, &CellOut::from(app.durable(ack).await?))
}

pub async fn patch_cell(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: CellPolicyIn = call.json()?;
    let policy = CellPolicy {
        sku: call.param(0).to_owned(),
        location: call.param(1).to_owned(),
        safety_stock: body.safety_stock,
        reorder_point: body.reorder_point,
        reorder_qty: body.reorder_qty,
    };
    let ack = app.engine.set_cell_policy(call.context()?, policy)?;
    Reply::json(StatusCode::OK, &CellOut::from(app.durable(ack).await?))
}

pub fn get_stock(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let stock = app.engine.stock(call.param(0))?;
    let mut locations: Vec<CellOut> = stock.locations.into_iter().map(CellOut::from).collect();
    locations.sort_by(|a, b| a.location.cmp(&b.location));
    Reply::json(StatusCode::OK, &SkuStockOut { sku: stock.sku, total: stock.total.into(), locations })
}

pub fn get_cell(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let cell = app.engine.cell(call.param(0), call.param(1))?;
    Reply::json(StatusCode::OK, &CellOut::from(cell))
}

/// A code given to filter a list by: a 422 naming the parameter when it cannot be a code.
pub(crate) fn code_filter(field: &str, value: String) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    aisle_engine::model::check_code(field, &value, &mut errors);
    match errors.is_empty() {
        true => Ok(value),
        false => Err(EngineError::Invalid(errors).into()),
    }
}

/// The audit trail, oldest first. A POS token reads only its own location's movements.
pub async fn movements(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let (mut sku, mut location, mut cursor) = (None, None, None);
    let mut limit = MOVEMENTS_PAGE_DEFAULT;
    for (key, value) in call.query_pairs() {
        match key.as_str() {
            "sku" if !value.is_empty() => sku = Some(code_filter("sku", value)?),
            "location" if !value.is_empty() => location = Some(code_filter("location", value)?),
            "cursor" if !value.is_empty() => cursor = Some(cursor_in(&value)?),
            "sku" | "location" | "cursor" => {}
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MOVEMENTS_PAGE_MAX).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", format!("must be 1 to {MOVEMENTS_PAGE_MAX}")))?;
            }
            other => return Err(ApiError::invalid(other, "unknown query parameter")),
        }
    }
    let principal = call.principal()?;
    if let Some(own) = principal.location.as_deref() {
        if location.as_deref() != Some(own) {
            return Err(ApiError::Forbidden(format!("this token reads movements at location={own} only")));
        }
    }
    let engine = app.engine.clone();
    // The trail is read from the document store (disk): keep it off the async workers.
    let page = tokio::task::spawn_blocking(move || {
        let query = aisle_engine::audit::MovementQuery {
            sku: sku.as_deref(),
            location: location.as_deref(),
            cursor: cursor.as_deref(),
            limit,
        };
        engine.movements(&query)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let items: Vec<MovementOut> = page.movements.into_iter().map(MovementOut::from).collect();
    Reply::json(StatusCode::OK, &Page { items, next_cursor: page.next.as_deref().map(cursor_out) })
}

#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct LocationValueOut {
    location: String,
    skus: u64,
    on_hand: i64,
    value: i128,
}

#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct ValuationOut {
    locations: Vec<LocationValueOut>,
    on_hand: i64,
    /// Minor currency units, like every amount in the API.
    value: i128,
}

/// `GET /v1/stock/valuation?location=`: on hand × moving-average cost, per location.
pub fn valuation(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let mut location = None;
    for (key, value) in call.query_pairs() {
        match key.as_str() {
            "location" => location = Some(value),
            other => return Err(ApiError::invalid(other, "is not a parameter of this route")),
        }
    }
    let report = app.engine.valuation(location.as_deref())?;
    let out = ValuationOut {
        locations: report
            .locations
            .into_iter()
            .map(|l| LocationValueOut { location: l.location, skus: l.skus, on_hand: l.on_hand, value: l.value })
            .collect(),
        on_hand: report.on_hand,
        value: report.value,
    };
    Reply::json(StatusCode::OK, &out)
}
