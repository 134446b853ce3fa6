//! [`App`]: the state every request shares, and [`App::handle`], the path of one request:
//! route, authenticate, take one request from the token's budget (429 past it), check the
//! role, read the bounded body (or, on streaming routes, leave it to the handler), dispatch,
//! answer, measure.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use aisle_engine::limits::IDEMPOTENCY_KEY_LEN_MAX;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
};
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::auth::Area;
use crate::handlers::{dispatch, Call, Reply};
use crate::problem::ApiError;
use crate::router;
pub use crate::shared::App;

/// Bytes of an oversized body read and thrown away before answering 413, so the client
/// sees the answer instead of a reset; past this the connection is simply closed.
const OVERSIZE_DRAIN_BYTES_MAX: usize = 16 << 20;

/// Methods as bounded metric labels.
fn method_label(method: &hyper::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let bad = || {
        ApiError::malformed("Idempotency-Key", format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable characters"))
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// Why reading a body stopped.
enum BodyError {
    TooLarge,
    /// The client went away or sent garbage framing; nobody is left to answer.
    Broken(String),
}

/// Reads at most `max` bytes; past that, drains (bounded) and reports `TooLarge`.
async fn read_body(mut body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > OVERSIZE_DRAIN_BYTES_MAX as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buffer = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= max {
                buffer.extend_from_slice(&data);
            } else if seen > OVERSIZE_DRAIN_BYTES_MAX {
                return Err(BodyError::TooLarge);
            }
        }
    }
    if seen > max {
        return Err(BodyError::TooLarge);
    }
    Ok(buffer.freeze())
}

/// What an `Idempotency-Key` guards: the method, the concrete path with its query string and
/// the body (SPEC §3). The same key with another request is refused, not replayed.
fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> u64 {
    let mut hash = Sha256::new();
    // A path holds no NUL byte, so the fields cannot run into each other.
    for part in [method.as_bytes(), path_and_query.as_bytes()] {
        hash.update(part);
        hash.update([0]);
    }
    hash.update(body);
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The key the engine keeps for a client's `Idempotency-Key`: the key bound to the token's id
/// (SPEC §3), so two tokens never share a key, even tokens with the same name. The engine
/// also scopes it by actor (the token's name), which the id already determines.
///
/// A digest rather than `<id><sep><key>`: the engine accepts keys of at most
/// [`IDEMPOTENCY_KEY_LEN_MAX`] printable characters, and a client's key may use all of them.
fn scoped_key(token_id: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(token_id.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    hash.finalize().iter().fold(String::with_capacity(64), |mut out, byte| {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
        out
    })
}

impl App {
    /// Answers one request; every failure becomes a problem+json response.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let started = Instant::now();
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let (route, result) = match router::find(method.as_str(), &path) {
            Ok(matched) => {
                let template = matched.route.template;
                (template, self.serve(matched, request).await)
            }
            Err(e) => ("unmatched", Err(e)),
        };
        let response = match result {
            Ok(reply) => Response::builder()
                .status(reply.status)
                .header(CONTENT_TYPE, reply.content_type)
                .body(Full::new(reply.body)),
            Err(error) => problem_response(&error, id, route),
        };
        let mut response = response.unwrap_or_else(|e| {
            tracing::error!(request_id = id, error = %e, "building a response failed");
            let mut fallback = Response::new(Full::new(Bytes::new()));
            *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        });
        // Lets a client quote the id that the server's logs carry for this request.
        response.headers_mut().insert("x-request-id", HeaderValue::from(id));
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        self.metrics.observe_request(route, method_label(&method), status, elapsed);
        tracing::debug!(request_id = id, method = %method, route, status, micros = elapsed.as_micros() as u64, "request");
        Ok(response)
    }

    async fn serve(
        self: &Arc<Self>,
        matched: router::Matched<'_>,
        request: Request<Incoming>,
    ) -> Result<Reply, ApiError> {
        let route = matched.route;
        let principal = if route.area == Area::Public {
            None
        } else {
            let secret = bearer(request.headers()).ok_or(ApiError::Unauthorized)?;
            let principal = self.tokens.authenticate(secret).ok_or(ApiError::Unauthorized)?;
            // Every authenticated request costs its token, whatever it asks for (SPEC §5).
            if let Err(seconds) = self.budgets.admit(principal.role, &principal.bucket) {
                self.metrics.rate_limited.inc();
                return Err(ApiError::RateLimited(seconds));
            }
            if !route.area.allows(principal.role) {
                return Err(ApiError::Forbidden(format!(
                    "a {} token may not {} {}",
                    principal.role.as_str(),
                    route.method,
                    route.template
                )));
            }
            Some(principal)
        };
        let idempotency_key = match (idempotency_key(request.headers())?, &principal) {
            (Some(key), Some(principal)) => Some(scoped_key(&principal.id, &key)),
            (key, _) => key,
        };
        let query = request.uri().query().map(str::to_owned);
        let path_and_query =
            request.uri().path_and_query().map_or_else(|| request.uri().path(), |p| p.as_str()).to_owned();
        let method = request.method().clone();
        // A streaming route reads its body itself, under its own limits.
        let (body, request) = if route.stream {
            (Bytes::new(), Some(request))
        } else {
            match read_body(request.into_body(), self.body_bytes_max).await {
                Ok(body) => (body, None),
                Err(BodyError::TooLarge) => return Err(ApiError::PayloadTooLarge(self.body_bytes_max)),
                Err(BodyError::Broken(e)) => return Err(ApiError::malformed("body", e)),
            }
        };
        let call = Call {
            fingerprint: fingerprint(method.as_str(), &path_and_query, &body),
            params: matched.params,
            query: query.as_deref(),
            body,
            principal,
            idempotency_key,
            request,
        };
        dispatch(self, route, call).await
    }
}

/// The problem+json answer to `error` (also the 503 of a connection refused at the cap).
pub(crate) fn problem_response(
    error: &ApiError,
    request_id: u64,
    route: &str,
) -> Result<Response<Full<Bytes>>, hyper::http::Error> {
    let parts = error.parts();
    if parts.log {
        tracing::error!(request_id, route, error = %error, "request failed");
    }
    let body = serde_json::to_vec(&parts.problem).unwrap_or_default();
    let mut builder = Response::builder()
        .status(parts.status)
        .header(CONTENT_TYPE, "application/problem+json")
        .header(CONTENT_LENGTH, body.len());
    if let Some(seconds) = parts.retry_after {
        builder = builder.header(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(allow) = parts.allow {
        builder = builder.header(ALLOW, allow);
    }
    if parts.close {
        builder = builder.header(CONNECTION, "close");
    }
    builder.body(Full::new(Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys() {
        let mut headers = HeaderMap::new();
        assert!(matches!(idempotency_key(&headers), Ok(None)));
        for (key, ok) in [("abc-123", true), ("with space", true), ("", false), (&"k".repeat(129), false)] {
            headers.insert("idempotency-key", HeaderValue::from_str(key).expect("header value"));
            assert_eq!(idempotency_key(&headers).is_ok(), ok, "{key:?}");
        }
    }

    #[test]
    fn bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
