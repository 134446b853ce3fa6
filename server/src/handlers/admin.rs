//! Operations (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/v1/ops/snapshot`) and
//! tokens (`/v1/tokens`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aisle_engine::error::{Entity, FieldError};
use aisle_engine::model::{check_channel, check_code, check_text};
use aisle_engine::EngineError;
use bytes::Bytes;
use hyper::StatusCode;

use super::{Call, Reply};
use crate::auth::{Role, TOKEN_NAME_LEN_MAX};
use crate::dto::{Empty, SnapshotOut, TokenIn};
use crate::problem::ApiError;
use crate::shared::App;

pub fn healthz() -> Result<Reply, ApiError> {
    Reply::json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

pub fn readyz(app: &Arc<App>) -> Result<Reply, ApiError> {
    if app.stopping.load(Ordering::Acquire) {
        return Err(ApiError::ShuttingDown);
    }
    match app.engine.read_only_reason() {
        // Ops need the reason (SPEC §3: say why in /readyz); it names a file and an OS error,
        // nothing secret. Writes get the generic problem; this probe gets the cause.
        Some(reason) => {
            Reply::json(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({"status": "read_only", "reason": reason}))
        }
        None => Reply::json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
    }
}

pub fn metrics(app: &Arc<App>) -> Result<Reply, ApiError> {
    let body = app
        .metrics
        .render(&app.engine.stats(), &app.engine.flash_sales())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Reply { status: StatusCode::OK, content_type: "text/plain; version=0.0.4; charset=utf-8", body: body.into() })
}

pub fn openapi() -> Result<Reply, ApiError> {
    let body = serde_json::to_vec_pretty(&crate::openapi::document()).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Reply { status: StatusCode::OK, content_type: "application/json", body: Bytes::from(body) })
}

/// Takes a snapshot now. Copying the state holds every shard for a moment and writing the
/// image takes seconds at scale, so it runs on a blocking thread, never on a worker.
pub async fn snapshot(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let Empty {} = call.json_or_default()?;
    // A read-only engine may still have nothing unsynced; it takes no snapshot either (503).
    if let Some(reason) = app.engine.read_only_reason() {
        return Err(EngineError::ReadOnly { reason }.into());
    }
    let engine = app.engine.clone();
    let info = tokio::task::spawn_blocking(move || engine.snapshot())
        .await
        .map_err(|e| ApiError::Internal(format!("the snapshot task failed: {e}")))??;
    tracing::info!(
        lsn = info.lsn,
        bytes = info.bytes,
        millis = info.duration.as_millis() as u64,
        "snapshot taken on request"
    );
    Reply::json(StatusCode::OK, &SnapshotOut::from(&info))
}

pub async fn create_token(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let body: TokenIn = call.json()?;
    let mut errors = Vec::new();
    if body.name.is_empty() {
        errors.push(FieldError::new("name", "must not be empty"));
    }
    check_text("name", &body.name, TOKEN_NAME_LEN_MAX, &mut errors);
    match (body.role, &body.channel) {
        (Role::Channel, Some(channel)) => check_channel("channel", channel, &mut errors),
        (Role::Channel, None) => errors.push(FieldError::new("channel", "a channel token needs a channel")),
        (_, Some(_)) => errors.push(FieldError::new("channel", "only channel tokens have a channel")),
        (_, None) => {}
    }
    match (body.role, &body.location) {
        (Role::Pos, Some(location)) => {
            check_code("location", location, &mut errors);
            if errors.is_empty() && app.engine.location(location).is_none() {
                return Err(EngineError::not_found(Entity::Location, location.as_str()).into());
            }
        }
        (Role::Pos, None) => errors.push(FieldError::new("location", "a pos token needs a location")),
        (_, Some(_)) => errors.push(FieldError::new("location", "only pos tokens have a location")),
        (_, None) => {}
    }
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors).into());
    }
    let token = app.tokens.create(body.name, body.role, body.channel, body.location).await?;
    tracing::info!(token_id = %token.id, role = token.role.as_str(), "token created");
    Reply::json(StatusCode::CREATED, &token)
}

pub async fn revoke_token(app: &Arc<App>, call: Call<'_>) -> Result<Reply, ApiError> {
    let id = call.param(0);
    if app.tokens.revoke(id).await? {
        tracing::info!(token_id = %id, "token revoked");
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    } else {
        Err(ApiError::NotFound(format!("token {id:?} not found")))
    }
}
