//! Request handlers, one module per area, and what they share: the parsed [`Call`], the
//! [`Reply`], JSON parsing and durable acknowledgement.

mod admin;
mod availability;
mod catalog;
mod flash;
mod import;
mod reservations;
mod transfers;

use std::sync::Arc;

use aisle_engine::{Ack, Context, EngineError};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::Principal;
use crate::problem::ApiError;
use crate::router::{Endpoint, Route};
use crate::shared::App;

/// A request after routing, authentication and body reading.
#[derive(Debug)]
pub struct Call<'a> {
    pub params: Vec<&'a str>,
    pub query: Option<&'a str>,
    pub body: Bytes,
    /// `None` only on public routes.
    pub principal: Option<Principal>,
    /// The client's `Idempotency-Key` bound to the token's id (see `app::scoped_key`), as
    /// the engine keeps it.
    pub idempotency_key: Option<String>,
    /// Hash of (method, concrete path with query, body): the same key with another request
    /// is refused (422).
    pub fingerprint: u64,
    /// On [`Route::stream`] routes, the request with its body unread (`body` is then empty).
    pub request: Option<Request<Incoming>>,
}

impl Call<'_> {
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or_default()
    }

    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or(ApiError::Unauthorized)
    }

    /// The engine context: the token's name as actor, plus the idempotency key if any.
    pub fn context(&self) -> Result<Context<'_>, ApiError> {
        let ctx = Context::actor(&self.principal()?.name);
        Ok(match &self.idempotency_key {
            Some(key) => ctx.with_key(key, self.fingerprint),
            None => ctx,
        })
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::malformed("body", e.to_string()))
    }

    /// Like [`Call::json`], but an empty body means the type's default.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            Ok(T::default())
        } else {
            self.json()
        }
    }

    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        form_urlencoded::parse(self.query.unwrap_or_default().as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Reply {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Reply { status, content_type: "application/json", body: body.into() })
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply { status, content_type: "application/json", body: Bytes::new() }
    }
}

impl App {
    /// Waits until the write is durable; only then may it be acknowledged (SPEC invariant 3).
    pub async fn durable<T>(&self, ack: Ack<T>) -> Result<T, ApiError> {
        if let Some(lsn) = ack.lsn {
            self.engine.durable(lsn).await.map_err(EngineError::from)?;
        }
        Ok(ack.value)
    }
}

/// Runs the handler of a matched route.
pub async fn dispatch(app: &Arc<App>, route: &'static Route, call: Call<'_>) -> Result<Reply, ApiError> {
    use Endpoint as E;
    match route.endpoint {
        E::Healthz => admin::healthz(),
        E::Readyz => admin::readyz(app),
        E::Metrics => admin::metrics(app),
        E::OpenApi => admin::openapi(),
        E::CreateToken => admin::create_token(app, call).await,
        E::RevokeToken => admin::revoke_token(app, call).await,
        E::Snapshot => admin::snapshot(app, call).await,
        E::ListLocations => catalog::list_locations(app),
        E::PutLocation => catalog::put_location(app, call).await,
        E::GetLocation => catalog::get_location(app, call),
        E::ListSkus => catalog::list_skus(app, call),
        E::PutSku => catalog::put_sku(app, call).await,
        E::GetSku => catalog::get_sku(app, call),
        E::Receive => catalog::receive(app, call).await,
        E::Adjust => catalog::adjust(app, call).await,
        E::Import => import::import(app, call).await,
        E::PatchCell => catalog::patch_cell(app, call).await,
        E::GetStock => catalog::get_stock(app, call),
        E::GetCell => catalog::get_cell(app, call),
        E::Movements => catalog::movements(app, call).await,
        E::Valuation => catalog::valuation(app, call),
        E::Availability => availability::get(app, call),
        E::Quote => reservations::quote(app, call),
        E::CreateReservation => reservations::create(app, call).await,
        E::GetReservation => reservations::get(app, call),
        E::ExtendReservation => reservations::extend(app, call).await,
        E::CommitReservation => reservations::commit(app, call).await,
        E::FulfillReservation => reservations::fulfill(app, call).await,
        E::ReleaseReservation => reservations::release(app, call).await,
        E::PutFlashSale => flash::put(app, call).await,
        E::ClaimFlashSale => flash::claim(app, call).await,
        E::GetFlashSale => flash::get(app, call),
        E::CreateTransfer => transfers::create(app, call).await,
        E::GetTransfer => transfers::get(app, call),
        E::ShipTransfer => transfers::ship(app, call).await,
        E::ReceiveTransfer => transfers::receive(app, call).await,
        E::CancelTransfer => transfers::cancel(app, call).await,
        E::CreateReplenishment => transfers::request(app, call).await,
        E::GetReplenishment => transfers::get_replenishment(app, call),
        E::ApproveReplenishment => transfers::approve(app, call).await,
        E::RejectReplenishment => transfers::reject(app, call).await,
        E::ReplenishmentSuggestions => transfers::suggestions(app, call),
        E::NotImplemented => Err(ApiError::NotImplemented(route.template)),
    }
}
