//! The route table and path matching.
//!
//! **Architecture Invariant:** [`ROUTES`] is the single list of routes. The dispatcher, the
//! role check, the metrics' `route` label and `/openapi.json` all read it, and a test checks
//! that every `/v1` route appears in the OpenAPI document.

use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::auth::{Area, NewToken};
use crate::dto::*;
use crate::handlers::availability::AvailabilityOut;
use crate::handlers::catalog::ValuationOut;
use crate::handlers::catalog::{MOVEMENTS_PAGE_MAX, SKUS_PAGE_MAX};
use crate::handlers::import::{ImportLineIn, ImportReport};
use crate::handlers::transfers::{
    ApproveIn, RejectIn, ReplenishmentIn, ReplenishmentOut, SuggestionOut, TransferIn, TransferOut, TransferReceiveIn,
};
use crate::problem::ApiError;
use crate::schema::{Channel, Code, CodeCursor, CodeFilter, HexCursor, LatLon, Limit, PairCursor, Prefix, SkuList};
use aisle_engine::limits::{AVAILABILITY_NEARBY_MAX, SUGGESTIONS_PAGE_MAX};

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

/// Builds a schema (usually a `$ref` to a component) with the document's generator.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`, registered as a component of the document.
fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A query parameter of a route.
#[derive(Debug)]
pub struct QueryParam {
    pub name: &'static str,
    pub required: bool,
    pub schema: SchemaFn,
    pub description: &'static str,
}

const fn query<T: JsonSchema>(name: &'static str, description: &'static str) -> QueryParam {
    QueryParam { name, required: false, schema: schema_of::<T> as SchemaFn, description }
}

const fn required<T: JsonSchema>(name: &'static str, description: &'static str) -> QueryParam {
    QueryParam { required: true, ..query::<T>(name, description) }
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
    /// The body's type (for a streamed route, one NDJSON line's); `None`: no body, or an
    /// empty JSON object.
    pub request: Option<SchemaFn>,
    /// Whether the body may be left out (the handler reads none as the type's default).
    pub request_optional: bool,
    /// The success status; a `PUT` also answers 201 when it creates.
    pub success: u16,
    /// The success answer's type; `None`: no body.
    pub response: Option<SchemaFn>,
    pub query: &'static [QueryParam],
}

const fn route(
    method: &'static str,
    template: &'static str,
    endpoint: Endpoint,
    area: Area,
    summary: &'static str,
) -> Route {
    let body = matches!(method.as_bytes(), b"POST" | b"PUT" | b"PATCH");
    Route {
        method,
        template,
        endpoint,
        area,
        summary,
        body,
        idempotent: body,
        stream: false,
        request: None,
        request_optional: false,
        success: 200,
        response: None,
        query: &[],
    }
}

impl Route {
    /// The request body is a `T`.
    const fn takes<T: JsonSchema>(self) -> Route {
        Route { request: Some(schema_of::<T> as SchemaFn), ..self }
    }

    /// The request body is a `T`, or none at all (read as `T`'s default).
    const fn takes_or_nothing<T: JsonSchema>(self) -> Route {
        Route { request: Some(schema_of::<T> as SchemaFn), request_optional: true, ..self }
    }

    /// The success answer is a `T`.
    const fn answers<T: JsonSchema>(self) -> Route {
        Route { response: Some(schema_of::<T> as SchemaFn), ..self }
    }

    /// It creates: 201.
    const fn created(self) -> Route {
        Route { success: 201, ..self }
    }

    /// It answers 204 with no body.
    const fn no_content(self) -> Route {
        Route { success: 204, response: None, ..self }
    }

    const fn with_query(self, query: &'static [QueryParam]) -> Route {
        Route { query, ..self }
    }
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
    route("GET", "/v1/locations", E::ListLocations, A::CatalogRead, "List locations.").answers::<Page<LocationOut>>(),
    route("PUT", "/v1/locations/{code}", E::PutLocation, A::CatalogWrite, "Create (201) or replace (200) a location.")
        .takes::<LocationIn>()
        .answers::<LocationOut>(),
    route("GET", "/v1/locations/{code}", E::GetLocation, A::CatalogRead, "One location.").answers::<LocationOut>(),
    route("GET", "/v1/skus", E::ListSkus, A::CatalogRead, "SKUs in code order, cursor-paged.")
        .answers::<Page<SkuOut>>()
        .with_query(&[
            query::<Prefix>("prefix", "Only codes starting with this."),
            query::<CodeCursor>("cursor", "The previous page's `next_cursor`."),
            query::<Limit<SKUS_PAGE_MAX>>("limit", "Page size, default 100."),
        ]),
    route("PUT", "/v1/skus/{code}", E::PutSku, A::CatalogWrite, "Create (201) or replace (200) a SKU.")
        .takes::<SkuIn>()
        .answers::<SkuOut>(),
    route("GET", "/v1/skus/{code}", E::GetSku, A::CatalogRead, "One SKU.").answers::<SkuOut>(),
    route("POST", "/v1/stock/receive", E::Receive, A::StockReceive, "Receive units into a cell.")
        .takes::<ReceiveIn>()
        .answers::<CellOut>(),
    route("POST", "/v1/stock/adjust", E::Adjust, A::StockWrite, "Adjust a cell by a delta or a count.")
        .takes::<AdjustIn>()
        .answers::<CellOut>(),
    streamed(route(
        "POST",
        "/v1/stock/import",
        E::Import,
        A::StockWrite,
        "NDJSON bulk import of receive/adjust lines: the valid ones applied, the rest reported with line numbers.",
    ))
    .takes::<ImportLineIn>()
    .answers::<ImportReport>(),
    route("GET", "/v1/stock/movements", E::Movements, A::StockRead, "The audit trail, oldest first, cursor-paged.")
        .answers::<Page<MovementOut>>()
        .with_query(&[
            query::<CodeFilter>("sku", "Only this SKU's movements (empty: every SKU)."),
            query::<CodeFilter>("location", "Only this location's movements (a POS token must give its own)."),
            query::<HexCursor>("cursor", "The previous page's `next_cursor`."),
            query::<Limit<MOVEMENTS_PAGE_MAX>>("limit", "Page size, default 100."),
        ]),
    route("GET", "/v1/stock/valuation", E::Valuation, A::StockRead, "On hand × moving-average cost, per location.")
        .answers::<ValuationOut>()
        .with_query(&[query::<Code>("location", "Only this location.")]),
    route(
        "PATCH",
        "/v1/stock/{sku}/{location}",
        E::PatchCell,
        A::StockWrite,
        "Set a cell's safety stock and reorder policy.",
    )
    .takes::<CellPolicyIn>()
    .answers::<CellOut>(),
    route("GET", "/v1/stock/{sku}", E::GetStock, A::StockRead, "One SKU's stock at every location, with totals.")
        .answers::<SkuStockOut>(),
    route("GET", "/v1/stock/{sku}/{location}", E::GetCell, A::StockRead, "One stock cell.").answers::<CellOut>(),
    route(
        "GET",
        "/v1/availability",
        E::Availability,
        A::Availability,
        "Per SKU: stock here, at the nearest locations, and sellable over the network.",
    )
    .answers::<AvailabilityOut>()
    .with_query(&[
        required::<SkuList>("skus", "The SKUs to look up."),
        query::<Code>("location", "`here`: this location's stock (a POS token's own by default)."),
        query::<LatLon>("near", "Where `nearby` is measured from (default: `location`)."),
        query::<Channel>("channel", "The channel `network` counts for (a channel token's own by default)."),
        query::<Limit<AVAILABILITY_NEARBY_MAX, true>>("limit", "Nearby locations per SKU, default 5."),
    ]),
    route(
        "POST",
        "/v1/sourcing/quote",
        E::Quote,
        A::Reservations,
        "Where a basket would be sourced from; holds nothing.",
    )
    .takes::<QuoteIn>()
    .answers::<QuoteOut>(),
    route("POST", "/v1/reservations", E::CreateReservation, A::Reservations, "Hold stock on every line or none.")
        .takes::<ReserveIn>()
        .answers::<ReservationOut>()
        .created(),
    route("GET", "/v1/reservations/{id}", E::GetReservation, A::ReservationRead, "One reservation.")
        .answers::<ReservationOut>(),
    route("POST", "/v1/reservations/{id}/extend", E::ExtendReservation, A::Reservations, "Move the expiry.")
        .takes::<ExtendIn>()
        .answers::<ReservationOut>(),
    route("POST", "/v1/reservations/{id}/commit", E::CommitReservation, A::Reservations, "Active becomes committed.")
        .takes_or_nothing::<CommitIn>()
        .answers::<ReservationOut>(),
    route("POST", "/v1/reservations/{id}/fulfill", E::FulfillReservation, A::Reservations, "Committed units leave.")
        .takes_or_nothing::<Empty>()
        .answers::<ReservationOut>(),
    route("DELETE", "/v1/reservations/{id}", E::ReleaseReservation, A::Reservations, "Release or cancel; repeatable.")
        .answers::<ReservationOut>(),
    route("POST", "/v1/transfers", E::CreateTransfer, A::StockWrite, "Create a transfer: holds its lines at from.")
        .takes::<TransferIn>()
        .answers::<TransferOut>()
        .created(),
    route("GET", "/v1/transfers/{id}", E::GetTransfer, A::StockRead, "One transfer.").answers::<TransferOut>(),
    route(
        "POST",
        "/v1/transfers/{id}/ship",
        E::ShipTransfer,
        A::StockWrite,
        "Ship a held transfer: from.on_hand drops, to.incoming rises.",
    )
    .takes_or_nothing::<Empty>()
    .answers::<TransferOut>(),
    route(
        "POST",
        "/v1/transfers/{id}/receive",
        E::ReceiveTransfer,
        A::StockWrite,
        "Receive some or all outstanding units: incoming becomes on_hand.",
    )
    .takes_or_nothing::<TransferReceiveIn>()
    .answers::<TransferOut>(),
    route(
        "DELETE",
        "/v1/transfers/{id}",
        E::CancelTransfer,
        A::StockWrite,
        "Cancel a held transfer, releasing its hold; repeatable.",
    )
    .answers::<TransferOut>(),
    route(
        "POST",
        "/v1/replenishments",
        E::CreateReplenishment,
        A::StockWrite,
        "A location asks for stock: requested, nothing held.",
    )
    .takes::<ReplenishmentIn>()
    .answers::<ReplenishmentOut>()
    .created(),
    route(
        "GET",
        "/v1/replenishments/suggestions",
        E::ReplenishmentSuggestions,
        A::StockRead,
        "Cells below their reorder point with suggested quantities and the best source, paged.",
    )
    .answers::<Page<SuggestionOut>>()
    .with_query(&[
        query::<CodeFilter>("location", "Only this location's cells (a POS token's own by default)."),
        query::<PairCursor>("cursor", "The previous page's `next_cursor`."),
        query::<Limit<SUGGESTIONS_PAGE_MAX>>("limit", "Page size, default 100."),
    ]),
    route("GET", "/v1/replenishments/{id}", E::GetReplenishment, A::StockRead, "One replenishment request.")
        .answers::<ReplenishmentOut>(),
    route(
        "POST",
        "/v1/replenishments/{id}/approve",
        E::ApproveReplenishment,
        A::StockWrite,
        "Approve a request: its transfer is created from the chosen or best source.",
    )
    .takes_or_nothing::<ApproveIn>()
    .answers::<ReplenishmentOut>(),
    route(
        "POST",
        "/v1/replenishments/{id}/reject",
        E::RejectReplenishment,
        A::StockWrite,
        "Reject a request; repeatable.",
    )
    .takes_or_nothing::<RejectIn>()
    .answers::<ReplenishmentOut>(),
    route(
        "PUT",
        "/v1/flash-sales/{code}",
        E::PutFlashSale,
        A::StockWrite,
        "Create (201) or change (200) a flash sale; its pool is carved out of available stock.",
    )
    .takes::<FlashSaleIn>()
    .answers::<FlashSaleOut>(),
    route(
        "POST",
        "/v1/flash-sales/{code}/claims",
        E::ClaimFlashSale,
        A::Reservations,
        "Claim units: a reservation held for the sale's hold_seconds.",
    )
    .takes::<ClaimIn>()
    .answers::<ClaimOut>()
    .created(),
    route(
        "GET",
        "/v1/flash-sales/{code}",
        E::GetFlashSale,
        A::ReservationRead,
        "A sale's quantity, remaining, held, sold, status.",
    )
    .answers::<FlashSaleOut>(),
    route("POST", "/v1/tokens", E::CreateToken, A::Tokens, "Create a token; the secret is shown once.")
        .takes::<TokenIn>()
        .answers::<NewToken>()
        .created(),
    route("DELETE", "/v1/tokens/{id}", E::RevokeToken, A::Tokens, "Revoke a token at once.").no_content(),
    action(route(
        "POST",
        "/v1/ops/snapshot",
        E::Snapshot,
        A::Operations,
        "Take a snapshot now; answers the LSN it covers, its size and how long it took.",
    ))
    .takes_or_nothing::<Empty>()
    .answers::<SnapshotOut>(),
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
