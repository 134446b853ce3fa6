//! Request handlers, one module per area, and what they share: the parsed [`Call`], the
//! [`Reply`], JSON parsing and durable acknowledgement.

mod admin;
pub mod availability;
pub mod catalog;
mod flash;
pub mod import;
mod reservations;
pub mod transfers;

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
        json_object(&self.body)
    }

    /// Like [`Call::json`], but no body at all means the type's default.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            Ok(T::default())
        } else {
            self.json()
        }
    }

    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        form_urlencoded::parse(self.query.unwrap_or_default().as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
    }
}

/// Reads a JSON object into `T`. Every body of the API is an object: an array is refused
/// (serde would read it into a struct by field position). A whole number written with a
/// fraction (`5.0`, as JSON Schema's `integer` allows) is read as the integer it is.
pub fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| ApiError::malformed("body", e.to_string());
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::malformed("body", "must be a JSON object"));
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        // Rare: parse again as a value, make integral floats integers, and read that.
        Err(e) if e.is_data() => {
            let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
            if !integral_floats_to_integers(&mut value) {
                return Err(malformed(e));
            }
            serde_json::from_value(value).map_err(malformed)
        }
        Err(e) => Err(malformed(e)),
    }
}

/// Rewrites every number that is a whole float within `i64` as an integer; returns whether
/// it rewrote any.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(float) if !number.is_i64() && !number.is_u64() && float.fract() == 0.0 && float.abs() < 9.0e15 => {
                // Below 2^53 every whole float is exact.
                *value = Value::from(float as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => {
            let mut rewrote = false;
            for item in items {
                rewrote |= integral_floats_to_integers(item);
            }
            rewrote
        }
        Value::Object(map) => {
            let mut rewrote = false;
            for item in map.values_mut() {
                rewrote |= integral_floats_to_integers(item);
            }
            rewrote
        }
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::ReceiveIn;

    #[test]
    fn bodies_are_objects_and_whole_floats_are_integers() {
        let read = |body: &str| json_object::<ReceiveIn>(body.as_bytes());
        let ok = read(r#"{"location": "L", "sku": "S", "qty": 5.0, "unit_cost": 12.0}"#).expect("whole floats read");
        assert_eq!((ok.qty, ok.unit_cost), (5, Some(12)));
        for bad in [r#"{"location": "L", "sku": "S", "qty": 5.5}"#, r#"["L", "S", 5, null, null, null]"#, "", "\r"] {
            assert!(matches!(read(bad), Err(ApiError::Malformed(_))), "{bad:?} must be refused");
        }
    }
}
