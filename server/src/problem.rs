//! Errors as the HTTP edge sees them, and the one table that turns them into RFC 9457
//! problem+json responses.
//!
//! **Architecture Invariant:** every engine error becomes a status and a problem code in
//! [`ApiError::parts`] and nowhere else. Internal details (storage failures, bugs) are logged
//! and never shown to the client.

use aisle_engine::error::{Conflict, FieldError, Shortfall};
use aisle_engine::EngineError;
use hyper::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

/// Every problem `code` this server answers with (SPEC §4), as `/openapi.json` lists them.
pub const PROBLEM_CODES: &[&str] = &[
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "insufficient_stock",
    "sold_out",
    "per_customer_limit",
    "sale_not_active",
    "payload_too_large",
    "rate_limited",
    "unavailable",
    "not_implemented",
    "internal",
];

/// Seconds a client is told to wait after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON of the expected shape (syntax, types, unknown fields): 400.
    #[error("malformed request: {}", .0.first().map_or("", |e| e.message.as_str()))]
    Malformed(Vec<FieldError>),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists with other methods; holds the `Allow` header value.
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The token is over its request budget (`budget.rs`); a request is allowed again in
    /// this many seconds: 429.
    #[error("this token is over its request budget; retry in {0} s")]
    RateLimited(u64),
    /// A connection arrived while `connections_max` were open: answered 503 and closed.
    #[error("the server has as many connections open as it serves; retry later")]
    ConnectionsFull,
    /// A failure of the server itself (token store I/O, a bug): 500, logged, never detailed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Malformed(vec![FieldError::new(field, message)])
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Engine(EngineError::invalid(field, message))
    }
}

/// The JSON body of a problem response (RFC 9457).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    #[schemars(range(min = 400, max = 599))]
    pub status: u16,
    pub detail: String,
    #[schemars(extend("enum" = PROBLEM_CODES))]
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shortfalls: Vec<ShortfallOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FieldErrorOut {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ShortfallOut {
    pub sku: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub requested: u64,
    pub available: u64,
}

/// What a problem response is made of, before serialisation.
#[derive(Debug)]
pub struct Parts {
    pub status: StatusCode,
    pub problem: Problem,
    /// `Retry-After` seconds, for 429s and 503s.
    pub retry_after: Option<u64>,
    /// `Allow` header value, for 405s.
    pub allow: Option<String>,
    /// Whether the server must log the error (a 500 is always a bug or an I/O failure).
    pub log: bool,
    /// Whether the connection closes after this answer (`Connection: close`).
    pub close: bool,
}

fn field_errors(errors: &[FieldError]) -> Vec<FieldErrorOut> {
    errors.iter().map(|e| FieldErrorOut { field: e.field.clone(), message: e.message.clone() }).collect()
}

pub fn shortfalls(list: &[Shortfall]) -> Vec<ShortfallOut> {
    list.iter()
        .map(|s| ShortfallOut {
            sku: s.sku.clone(),
            location: s.location.clone(),
            requested: s.requested,
            available: s.available,
        })
        .collect()
}

impl ApiError {
    /// The one table from errors to status, code and extra members.
    pub fn parts(&self) -> Parts {
        use StatusCode as S;
        let mut errors = Vec::new();
        let mut short = Vec::new();
        let mut retry_after = None;
        let mut allow = None;
        let mut detail = self.to_string();
        let mut log = false;
        let mut close = false;
        let (status, code, title) = match self {
            ApiError::Malformed(list) => {
                errors = field_errors(list);
                (S::BAD_REQUEST, "invalid_request", "Malformed request")
            }
            ApiError::Engine(EngineError::Invalid(list)) => {
                errors = field_errors(list);
                (S::UNPROCESSABLE_ENTITY, "invalid_request", "Invalid request")
            }
            ApiError::Engine(EngineError::NotFound { .. }) | ApiError::NotFound(_) => {
                (S::NOT_FOUND, "not_found", "Not found")
            }
            ApiError::Engine(EngineError::InsufficientStock(list)) => {
                short = shortfalls(list);
                (S::CONFLICT, "insufficient_stock", "Insufficient stock")
            }
            ApiError::Engine(EngineError::Conflict(conflict)) => match conflict {
                Conflict::SoldOut { .. } => (S::CONFLICT, "sold_out", "Sold out"),
                Conflict::PerCustomerLimit { .. } => (S::CONFLICT, "per_customer_limit", "Per-customer limit reached"),
                Conflict::SaleNotActive { .. } => (S::CONFLICT, "sale_not_active", "Sale not active"),
                // SPEC §3: the same key with another method, path or body is the caller's
                // mistake, named on the header; a retry of one still running is a conflict.
                Conflict::IdempotencyKeyReused => {
                    detail = conflict.to_string();
                    errors = vec![FieldErrorOut {
                        field: "Idempotency-Key".into(),
                        message: "already used by this token with a different method, path or body".into(),
                    }];
                    (S::UNPROCESSABLE_ENTITY, "invalid_request", "Invalid request")
                }
                Conflict::IdempotencyKeyInProgress => (S::CONFLICT, "conflict", "Idempotency-Key conflict"),
                Conflict::ReservationState { .. } | Conflict::Other(_) => (S::CONFLICT, "conflict", "Conflict"),
            },
            ApiError::Engine(EngineError::Busy) => {
                retry_after = Some(RETRY_AFTER_SECONDS);
                (S::SERVICE_UNAVAILABLE, "unavailable", "Busy")
            }
            ApiError::Engine(EngineError::ReadOnly { .. }) => {
                // The reason names files and errno values: the log has it, readyz says it.
                detail = "the engine takes no writes (storage failure); see /readyz".into();
                retry_after = Some(RETRY_AFTER_SECONDS);
                log = true;
                (S::SERVICE_UNAVAILABLE, "unavailable", "Read-only")
            }
            ApiError::ShuttingDown => {
                retry_after = Some(RETRY_AFTER_SECONDS);
                (S::SERVICE_UNAVAILABLE, "unavailable", "Shutting down")
            }
            ApiError::RateLimited(seconds) => {
                retry_after = Some((*seconds).max(1));
                (S::TOO_MANY_REQUESTS, "rate_limited", "Rate limited")
            }
            ApiError::ConnectionsFull => {
                retry_after = Some(RETRY_AFTER_SECONDS);
                close = true;
                (S::SERVICE_UNAVAILABLE, "unavailable", "Too many connections")
            }
            ApiError::Engine(EngineError::Storage(_) | EngineError::Internal(_)) | ApiError::Internal(_) => {
                detail = "internal error; it has been logged".into();
                log = true;
                (S::INTERNAL_SERVER_ERROR, "internal", "Internal error")
            }
            ApiError::Unauthorized => (S::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::MethodNotAllowed(methods) => {
                allow = Some(methods.clone());
                (S::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed")
            }
            ApiError::PayloadTooLarge(_) => {
                // The rest of an oversized body may still be on its way: do not reuse the connection.
                close = true;
                (S::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large")
            }
            ApiError::NotImplemented(_) => (S::NOT_IMPLEMENTED, "not_implemented", "Not implemented"),
        };
        Parts {
            status,
            problem: Problem {
                kind: format!("/problems/{code}"),
                title,
                status: status.as_u16(),
                detail,
                code,
                errors,
                shortfalls: short,
            },
            retry_after,
            allow,
            log,
            close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_engine::error::Entity;

    #[test]
    fn table() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::malformed("body", "expected value"), 400, "invalid_request"),
            (ApiError::invalid("qty", "must be 1 to 1000000"), 422, "invalid_request"),
            (EngineError::not_found(Entity::Sku, "X").into(), 404, "not_found"),
            (EngineError::InsufficientStock(vec![]).into(), 409, "insufficient_stock"),
            (EngineError::Conflict(Conflict::IdempotencyKeyReused).into(), 422, "invalid_request"),
            (EngineError::Conflict(Conflict::IdempotencyKeyInProgress).into(), 409, "conflict"),
            (EngineError::from(Conflict::SoldOut { sale: "DROP".into(), remaining: 0 }).into(), 409, "sold_out"),
            (
                EngineError::from(Conflict::PerCustomerLimit { sale: "DROP".into(), limit: 1, already: 1 }).into(),
                409,
                "per_customer_limit",
            ),
            (
                EngineError::from(Conflict::SaleNotActive { sale: "DROP".into(), status: "ended" }).into(),
                409,
                "sale_not_active",
            ),
            (EngineError::Busy.into(), 503, "unavailable"),
            (EngineError::ReadOnly { reason: "disk".into() }.into(), 503, "unavailable"),
            (EngineError::Storage("eio".into()).into(), 500, "internal"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::Forbidden("no".into()), 403, "forbidden"),
            (ApiError::PayloadTooLarge(1), 413, "payload_too_large"),
            (ApiError::NotImplemented("x"), 501, "not_implemented"),
            (ApiError::RateLimited(3), 429, "rate_limited"),
            (ApiError::ConnectionsFull, 503, "unavailable"),
        ];
        for (error, status, code) in cases {
            let parts = error.parts();
            assert_eq!(parts.status.as_u16(), status, "{error}");
            assert_eq!(parts.problem.code, code, "{error}");
            assert!(PROBLEM_CODES.contains(&code), "{code} is missing from PROBLEM_CODES");
            assert_eq!(parts.problem.kind, format!("/problems/{code}"));
            assert_eq!(parts.retry_after.is_some(), status == 503 || status == 429, "{error}");
            assert_eq!(parts.close, status == 413 || matches!(error, ApiError::ConnectionsFull), "{error}");
        }
        assert_eq!(ApiError::RateLimited(3).parts().retry_after, Some(3));
        assert_eq!(ApiError::RateLimited(0).parts().retry_after, Some(1), "never less than 1 s");
    }

    #[test]
    fn a_reused_idempotency_key_names_the_header() {
        let parts = ApiError::Engine(Conflict::IdempotencyKeyReused.into()).parts();
        let fields: Vec<&str> = parts.problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["Idempotency-Key"]);
        assert!(ApiError::Engine(Conflict::IdempotencyKeyInProgress.into()).parts().problem.errors.is_empty());
    }

    #[test]
    fn internals_are_not_shown() {
        let parts = ApiError::Engine(EngineError::Storage("/secret/path: EIO".into())).parts();
        assert!(!parts.problem.detail.contains("secret"));
        assert!(parts.log);
    }
}
