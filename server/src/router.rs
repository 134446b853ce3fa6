//! The route table and path matching.
//!
//! **Architecture Invariant:** [`ROUTES`] is the single list of routes. The dispatcher, the
//! role check, the metrics' `route` label and `/openapi.json` all read it, and a test checks
//! that every `/v1` route appears in the OpenAPI document.

use std::sync::OnceLock;

use crate::auth::Area;
use crate::problem::ApiError;

/// What a route does; [`crate::handlers::dispatch`] matches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    ListLocations,
    PutLocation,
    GetLocation,
    ListSkus,
    PutSku,
    GetSku,
    Receive,
    Adjust,
    Import,
    PatchCell,
    GetStock,
    GetCell,
    Movements,
    Valuation,
    Availability,
    Quote,
    CreateReservation,
    GetReservation,
    ExtendReservation,
    CommitReservation,
    FulfillReservation,
    ReleaseReservation,
    PutFlashSale,
    ClaimFlashSale,
    GetFlashSale,
    CreateTransfer,
    GetTransfer,
    ShipTransfer,
    ReceiveTransfer,
    CancelTransfer,
    CreateReplenishment,
    GetReplenishment,
    ApproveReplenishment,
    RejectReplenishment,
    ReplenishmentSuggestions,
    CreateToken,
    RevokeToken,
    Snapshot,
    /// A SPEC route of a later issue: answers 501 problem+json.
    NotImplemented,
}

/// One row of the route table.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    /// Path template; `{name}` matches one non-empty segment.
    pub template: &'static str,
    pub endpoint: Endpoint,
    pub area: Area,
    pub summary: &'static str,
    /// Whether the route takes a JSON body.
    pub body: bool,
    /// Whether it creates something and so documents `Idempotency-Key`.
    pub idempotent: bool,
    /// Whether the handler reads the body itself, as a stream (no whole-body limit, no
    /// buffering); see [`streamed`].
    pub stream: bool,
}

const fn route(
    method: &'static str,
    template: &'static str,
    endpoint: Endpoint,
    area: Area,
    summary: &'static str,
) -> Route {
    let body = matches!(method.as_bytes(), b"POST" | b"PUT" | b"PATCH");
    Route { method, template, endpoint, area, summary, body, idempotent: body, stream: false }
}

/// A POST that acts rather than creates: no body (an empty JSON object is accepted) and no
/// `Idempotency-Key` (repeating it is harmless, so a key is ignored).
const fn action(route: Route) -> Route {
    Route { body: false, idempotent: false, ..route }
}

/// A route whose handler streams the body (bulk import): it is handed the unread request,
/// bounded by its own limits instead of the server's body limit. Not idempotent: it takes
/// no `Idempotency-Key`.
const fn streamed(route: Route) -> Route {
    Route { stream: true, idempotent: false, ..route }
}

use Area as A;
use Endpoint as E;

pub static ROUTES: &[Route] = &[
    route("GET", "/healthz", E::Healthz, A::Public, "The process is up."),
    route("GET", "/readyz", E::Readyz, A::Public, "Recovered and taking writes."),
    route("GET", "/metrics", E::Metrics, A::Public, "Prometheus metrics."),
    route("GET", "/openapi.json", E::OpenApi, A::Public, "This API as OpenAPI 3.1."),
    route("GET", "/v1/locations", E::ListLocations, A::CatalogRead, "List locations."),
    route("PUT", "/v1/locations/{code}", E::PutLocation, A::CatalogWrite, "Create (201) or replace (200) a location."),
    route("GET", "/v1/locations/{code}", E::GetLocation, A::CatalogRead, "One location."),
    route("GET", "/v1/skus", E::ListSkus, A::CatalogRead, "SKUs in code order, cursor-paged."),
    route("PUT", "/v1/skus/{code}", E::PutSku, A::CatalogWrite, "Create (201) or replace (200) a SKU."),
    route("GET", "/v1/skus/{code}", E::GetSku, A::CatalogRead, "One SKU."),
    route("POST", "/v1/stock/receive", E::Receive, A::StockReceive, "Receive units into a cell."),
    route("POST", "/v1/stock/adjust", E::Adjust, A::StockWrite, "Adjust a cell by a delta or a count."),
    streamed(route(
        "POST",
        "/v1/stock/import",
        E::Import,
        A::StockWrite,
        "NDJSON bulk import of receive/adjust lines: the valid ones applied, the rest reported with line numbers.",
    )),
    route("GET", "/v1/stock/movements", E::Movements, A::StockRead, "The audit trail, oldest first, cursor-paged."),
    route("GET", "/v1/stock/valuation", E::Valuation, A::StockRead, "On hand × moving-average cost, per location."),
    route(
        "PATCH",
        "/v1/stock/{sku}/{location}",
        E::PatchCell,
        A::StockWrite,
        "Set a cell's safety stock and reorder policy.",
    ),
    route("GET", "/v1/stock/{sku}", E::GetStock, A::StockRead, "One SKU's stock at every location, with totals."),
    route("GET", "/v1/stock/{sku}/{location}", E::GetCell, A::StockRead, "One stock cell."),
    route(
        "GET",
        "/v1/availability",
        E::Availability,
        A::Availability,
        "Per SKU: stock here, at the nearest locations, and sellable over the network.",
    ),
    route(
        "POST",
        "/v1/sourcing/quote",
        E::Quote,
        A::Reservations,
        "Where a basket would be sourced from; holds nothing.",
    ),
    route("POST", "/v1/reservations", E::CreateReservation, A::Reservations, "Hold stock on every line or none."),
    route("GET", "/v1/reservations/{id}", E::GetReservation, A::ReservationRead, "One reservation."),
    route("POST", "/v1/reservations/{id}/extend", E::ExtendReservation, A::Reservations, "Move the expiry."),
    route("POST", "/v1/reservations/{id}/commit", E::CommitReservation, A::Reservations, "Active becomes committed."),
    route("POST", "/v1/reservations/{id}/fulfill", E::FulfillReservation, A::Reservations, "Committed units leave."),
    route("DELETE", "/v1/reservations/{id}", E::ReleaseReservation, A::Reservations, "Release or cancel; repeatable."),
    route("POST", "/v1/transfers", E::CreateTransfer, A::StockWrite, "Create a transfer: holds its lines at from."),
    route("GET", "/v1/transfers/{id}", E::GetTransfer, A::StockRead, "One transfer."),
    route(
        "POST",
        "/v1/transfers/{id}/ship",
        E::ShipTransfer,
        A::StockWrite,
        "Ship a held transfer: from.on_hand drops, to.incoming rises.",
    ),
    route(
        "POST",
        "/v1/transfers/{id}/receive",
        E::ReceiveTransfer,
        A::StockWrite,
        "Receive some or all outstanding units: incoming becomes on_hand.",
    ),
    route(
        "DELETE",
        "/v1/transfers/{id}",
        E::CancelTransfer,
        A::StockWrite,
        "Cancel a held transfer, releasing its hold; repeatable.",
    ),
    route(
        "POST",
        "/v1/replenishments",
        E::CreateReplenishment,
        A::StockWrite,
        "A location asks for stock: requested, nothing held.",
    ),
    route(
        "GET",
        "/v1/replenishments/suggestions",
        E::ReplenishmentSuggestions,
        A::StockRead,
        "Cells below their reorder point with suggested quantities and the best source, paged.",
    ),
    route("GET", "/v1/replenishments/{id}", E::GetReplenishment, A::StockRead, "One replenishment request."),
    route(
        "POST",
        "/v1/replenishments/{id}/approve",
        E::ApproveReplenishment,
        A::StockWrite,
        "Approve a request: its transfer is created from the chosen or best source.",
    ),
    route(
        "POST",
        "/v1/replenishments/{id}/reject",
        E::RejectReplenishment,
        A::StockWrite,
        "Reject a request; repeatable.",
    ),
    route(
        "PUT",
        "/v1/flash-sales/{code}",
        E::PutFlashSale,
        A::StockWrite,
        "Create (201) or change (200) a flash sale; its pool is carved out of available stock.",
    ),
    route(
        "POST",
        "/v1/flash-sales/{code}/claims",
        E::ClaimFlashSale,
        A::Reservations,
        "Claim units: a reservation held for the sale's hold_seconds.",
    ),
    route(
        "GET",
        "/v1/flash-sales/{code}",
        E::GetFlashSale,
        A::ReservationRead,
        "A sale's quantity, remaining, held, sold, status.",
    ),
    route("POST", "/v1/tokens", E::CreateToken, A::Tokens, "Create a token; the secret is shown once."),
    route("DELETE", "/v1/tokens/{id}", E::RevokeToken, A::Tokens, "Revoke a token at once."),
    action(route(
        "POST",
        "/v1/ops/snapshot",
        E::Snapshot,
        A::Operations,
        "Take a snapshot now; answers the LSN it covers, its size and how long it took.",
    )),
];

/// A matched route and the values of its `{params}`, in template order.
#[derive(Debug)]
pub struct Matched<'p> {
    pub route: &'static Route,
    pub params: Vec<&'p str>,
}

/// Templates to the routes that share them, one per method; built once.
fn table() -> &'static matchit::Router<Vec<&'static Route>> {
    static TABLE: OnceLock<matchit::Router<Vec<&'static Route>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_template: Vec<(&'static str, Vec<&'static Route>)> = Vec::new();
        for route in ROUTES {
            match by_template.iter_mut().find(|(template, _)| *template == route.template) {
                Some((_, routes)) => routes.push(route),
                None => by_template.push((route.template, vec![route])),
            }
        }
        let mut table = matchit::Router::new();
        for (template, routes) in by_template {
            // The route table is static and checked by tests: a conflict is a bug in it.
            table.insert(template, routes).expect("route templates do not conflict");
        }
        table
    })
}

/// Finds the route for a request. Literal segments beat parameters
/// (`/v1/stock/movements` is not the stock of a SKU called `movements`).
pub fn find<'p>(method: &str, path: &'p str) -> Result<Matched<'p>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no route for {path}"));
    let found = table().at(path).map_err(|_| not_found())?;
    if found.params.iter().any(|(_, value)| value.is_empty()) {
        return Err(not_found());
    }
    match found.value.iter().find(|route| route.method == method) {
        Some(route) => Ok(Matched { route, params: found.params.iter().map(|(_, value)| value).collect() }),
        None => {
            let mut allowed: Vec<&str> = found.value.iter().map(|route| route.method).collect();
            allowed.sort_unstable();
            Err(ApiError::MethodNotAllowed(allowed.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let cases: &[(&str, &str, Option<Endpoint>, &[&str])] = &[
            ("GET", "/v1/skus", Some(E::ListSkus), &[]),
            ("GET", "/v1/skus/TEE-M", Some(E::GetSku), &["TEE-M"]),
            ("GET", "/v1/stock/movements", Some(E::Movements), &[]),
            ("GET", "/v1/stock/TEE", Some(E::GetStock), &["TEE"]),
            ("GET", "/v1/stock/TEE/HK", Some(E::GetCell), &["TEE", "HK"]),
            ("PATCH", "/v1/stock/TEE/HK", Some(E::PatchCell), &["TEE", "HK"]),
            ("POST", "/v1/reservations/7/extend", Some(E::ExtendReservation), &["7"]),
            ("DELETE", "/v1/reservations/7", Some(E::ReleaseReservation), &["7"]),
            ("GET", "/v1/replenishments/suggestions", Some(E::ReplenishmentSuggestions), &[]),
            ("GET", "/v1/replenishments/3", Some(E::GetReplenishment), &["3"]),
            ("DELETE", "/v1/transfers/3", Some(E::CancelTransfer), &["3"]),
            ("POST", "/v1/ops/snapshot", Some(E::Snapshot), &[]),
            ("GET", "/v1/skus/", None, &[]),
            ("GET", "/v1/nothing", None, &[]),
            ("GET", "/v1/skus/a/b", None, &[]),
        ];
        for (method, path, endpoint, params) in cases {
            let found = find(method, path);
            assert_eq!(found.as_ref().ok().map(|m| m.route.endpoint), *endpoint, "{method} {path}");
            if let Ok(found) = found {
                assert_eq!(found.params, *params, "{method} {path}");
            }
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        match find("DELETE", "/v1/skus/X") {
            Err(ApiError::MethodNotAllowed(allow)) => assert_eq!(allow, "GET, PUT"),
            other => panic!("expected 405, got {other:?}"),
        }
    }

    #[test]
    fn templates_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.template == b.template), "{} {}", a.method, a.template);
            }
        }
    }
}
