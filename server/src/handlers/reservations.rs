//! `/v1/reservations`: hold, read, extend, commit, fulfill and release.
//!
//! A channel token acts only on reservations of its channel, a POS token only on
//! reservations whose every line is at its location; both get 403 otherwise.

use std::sync::Arc;

use aisle_engine::command::Fulfillment;
use aisle_engine::view::ReservationView;
use aisle_engine::EngineError;
use hyper::StatusCode;

use super::{Call, Reply};
use crate::auth::{Principal, Role};
use crate::dto::{
    parse_reservation_id, ttl, CommitIn, Empty, ExtendIn, QuoteIn, QuoteOut, ReservationOut, ReserveCall, ReserveIn,
};
use crate::problem::ApiError;
use crate::shared::App;

fn check_access(principal: &Principal, reservation: &ReservationView) -> Result<(), ApiError> {
    principal.check_channel(&reservation.channel)?;
    reservation.lines.iter().try_for_each(|line| principal.check_location(&line.location))
}

/// Finds the reservation in the path and checks the caller may act on it.
fn load(app: &Arc<App>, call: &Call<'_>) -> Result<(u64, ReservationView), ApiError> {
    let id = parse_reservation_id(call.param(0))?;
    let view = app.engine.reservation(id).ok_or_else(|| ApiError::NotFound(format!("reservation {id} not found")))?;
    check_access(call.principal()?, &view)?;
    Ok((id, view))
}

fn reply(status: StatusCode, view: ReservationView) -> Result<Reply, ApiError> {
    Reply::json(status, &ReservationOut::from(view))
}

pub async fn create(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let call_body = call.json::<ReserveIn>()?.into_call()?;
    let principal = call.principal()?;
    let submitted = match call_body {
        ReserveCall::Located(request) => {
            principal.check_channel(&request.channel)?;
            request.lines.iter().try_for_each(|line| principal.check_location(&line.location))?;
            app.engine.reserve(call.context()?, request)
        }
        ReserveCall::Sourced { request, customer, ttl_seconds } => {
            principal.check_channel(&request.channel)?;
            // A POS token sources for its own store: the basket is collected there.
            if let Some(own) = principal.location.as_deref().filter(|_| principal.role == Role::Pos) {
                let pickup_here = matches!(&request.fulfillment, Fulfillment::Pickup { location } if location == own);
                if !pickup_here {
                    return Err(ApiError::Forbidden(format!("a POS token sources only for pickup at {own:?}")));
                }
            }
            app.engine.reserve_sourced(call.context()?, request, customer, ttl_seconds)
        }
    };
    let outcome = match submitted {
        Ok(ack) => app.durable(ack).await,
        Err(e) => Err(e.into()),
    };
    app.metrics.reservation(match &outcome {
        Ok(_) => "created",
        Err(ApiError::Engine(EngineError::InsufficientStock(_))) => "insufficient_stock",
        Err(ApiError::Engine(EngineError::Invalid(_))) => "invalid",
        Err(ApiError::Engine(EngineError::NotFound { .. })) => "not_found",
        Err(ApiError::Engine(EngineError::Conflict(_))) => "conflict",
        Err(ApiError::Engine(EngineError::Busy | EngineError::ReadOnly { .. })) => "unavailable",
        Err(_) => "error",
    });
    reply(StatusCode::CREATED, outcome?)
}

pub fn get(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let (_, view) = load(app, &call)?;
    reply(StatusCode::OK, view)
}

pub async fn extend(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: ExtendIn = call.json()?;
    let seconds = ttl("ttl_seconds", body.ttl_seconds)?;
    let (id, _) = load(app, &call)?;
    let view = app.durable(app.engine.extend(call.context()?, id, seconds)?).await?;
    app.metrics.reservation("extended");
    reply(StatusCode::OK, view)
}

pub async fn commit(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: CommitIn = call.json_or_default()?;
    let (id, _) = load(app, &call)?;
    let view = app.durable(app.engine.commit(call.context()?, id, body.order_ref)?).await?;
    app.metrics.reservation("committed");
    reply(StatusCode::OK, view)
}

pub async fn fulfill(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let Empty {} = call.json_or_default()?;
    let (id, _) = load(app, &call)?;
    let view = app.durable(app.engine.fulfill(call.context()?, id)?).await?;
    app.metrics.reservation("fulfilled");
    reply(StatusCode::OK, view)
}

pub async fn release(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let (id, before) = load(app, &call)?;
    let ack = app.engine.release(call.context()?, id)?;
    let logged = ack.lsn.is_some();
    let view = app.durable(ack).await?;
    if logged && before.status.is_live() {
        app.metrics.reservation(view.status.as_str());
    }
    reply(StatusCode::OK, view)
}

/// `POST /v1/sourcing/quote`: the plan a sourced reservation would get now; holds nothing.
pub fn quote(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let request = call.json::<QuoteIn>()?.into_request()?;
    call.principal()?.check_channel(&request.channel)?;
    let quote = app.engine.quote(&request)?;
    Reply::json(StatusCode::OK, &QuoteOut::from(quote))
}
