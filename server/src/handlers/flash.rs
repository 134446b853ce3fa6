//! `/v1/flash-sales`: define a sale, claim from it, watch it.
//!
//! A claim's reservation belongs to a channel: the body's `channel`, else a channel token's
//! own, else `web`. A POS token claims only from sales pooled at its own location.

use std::sync::Arc;

use aisle_engine::error::Conflict;
use aisle_engine::flash::ClaimRequest;
use aisle_engine::EngineError;
use hyper::StatusCode;

use super::catalog::put_status;
use super::{Call, Reply};
use crate::auth::Role;
use crate::dto::{ClaimIn, ClaimOut, FlashSaleIn, FlashSaleOut};
use crate::problem::ApiError;
use crate::shared::App;

/// Channel of a claim when neither the body nor the token names one.
pub const DEFAULT_CLAIM_CHANNEL: &str = "web";

pub async fn put(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let def = call.json::<FlashSaleIn>()?.into_def(call.param(0))?;
    let (created, view) = app.durable(app.engine.put_flash_sale(call.context()?, def)?).await?;
    Reply::json(put_status(created), &FlashSaleOut::from(view))
}

pub fn get(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let view = app.engine.flash_sale(call.param(0))?;
    Reply::json(StatusCode::OK, &FlashSaleOut::from(view))
}

pub async fn claim(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let sale = call.param(0);
    let body: ClaimIn = call.json()?;
    let qty = body.qty()?;
    let principal = call.principal()?;
    let channel = body.channel.or_else(|| principal.channel.clone()).unwrap_or_else(|| DEFAULT_CLAIM_CHANNEL.into());
    principal.check_channel(&channel)?;
    if principal.role == Role::Pos {
        // Only POS tokens pay for this look-up; everyone else stays on the lock-free path.
        let view = app.engine.flash_sale(sale)?;
        match &view.def.location {
            Some(location) => principal.check_location(location)?,
            None => return Err(ApiError::Forbidden("a POS token claims only from its own location's sales".into())),
        }
    }
    let request = ClaimRequest { sale: sale.to_owned(), channel, customer: body.customer, qty };
    let outcome = match app.engine.claim(call.context()?, request) {
        Ok(ack) => app.durable(ack).await,
        Err(e) => Err(e.into()),
    };
    let label = match &outcome {
        Ok(_) => Some("claimed"),
        Err(ApiError::Engine(EngineError::Conflict(conflict))) => Some(match conflict {
            Conflict::SoldOut { .. } => "sold_out",
            Conflict::PerCustomerLimit { .. } => "per_customer_limit",
            Conflict::SaleNotActive { .. } => "sale_not_active",
            _ => "conflict",
        }),
        Err(ApiError::Engine(EngineError::Invalid(_))) => Some("invalid"),
        Err(ApiError::Engine(EngineError::Busy | EngineError::ReadOnly { .. })) => Some("unavailable"),
        // An unknown sale gets no series: its code came from the client.
        Err(ApiError::Engine(EngineError::NotFound { .. })) => None,
        Err(_) => Some("error"),
    };
    if let Some(label) = label {
        app.metrics.flash_sale_claim(sale, label);
    }
    Reply::json(StatusCode::CREATED, &ClaimOut::from(outcome?))
}
