//! `/openapi.json`: an OpenAPI 3.1 document built from the route table, so it cannot miss a
//! route. Bodies are described loosely (`object`); the paths, methods, parameters, auth and
//! error responses are exact.

use serde_json::{json, Map, Value};

use crate::auth::Area;
use crate::router::{Endpoint, ROUTES};

fn parameters(template: &str, idempotent: bool) -> Vec<Value> {
    let mut list: Vec<Value> = template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if idempotent {
        list.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "schema": {"type": "string", "minLength": 1, "maxLength": aisle_engine::limits::IDEMPOTENCY_KEY_LEN_MAX}
        }));
    }
    let query: &[&str] = match template {
        "/v1/skus" => &["prefix", "cursor", "limit"],
        "/v1/stock/movements" => &["sku", "location", "cursor", "limit"],
        "/v1/replenishments/suggestions" => &["location", "cursor", "limit"],
        _ => &[],
    };
    for name in query {
        list.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}}));
    }
    list
}

fn problem_ref() -> Value {
    json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
}

/// The whole document, for the `/v1` routes.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES.iter().filter(|r| r.template.starts_with("/v1/")) {
        let success = match (route.method, route.endpoint) {
            (_, Endpoint::NotImplemented) => "501",
            ("PUT", _) => "200",
            (
                _,
                Endpoint::CreateReservation
                | Endpoint::ClaimFlashSale
                | Endpoint::CreateToken
                | Endpoint::CreateTransfer
                | Endpoint::CreateReplenishment,
            ) => "201",
            (_, Endpoint::RevokeToken) => "204",
            _ => "200",
        };
        let mut responses = Map::new();
        responses.insert(success.into(), json!({"description": route.summary, "content": {"application/json": {}}}));
        if route.method == "PUT" {
            responses.insert("201".into(), json!({"description": "created"}));
        }
        for (status, description) in [
            ("400", "malformed request"),
            ("401", "missing or unknown token"),
            ("403", "the token's role, channel or location does not allow this"),
            ("404", "not found"),
            ("409", "conflict or insufficient stock"),
            ("413", "body over the limit"),
            ("422", "invalid request"),
            ("503", "busy, read-only or shutting down; see Retry-After"),
        ] {
            responses.insert(status.into(), json!({"description": description, "content": problem_ref()}));
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{}_{}", route.method.to_lowercase(), route.template.trim_start_matches('/').replace(['/', '{', '}', '-'], "_")),
            "parameters": parameters(route.template, route.idempotent),
            "responses": responses,
        });
        if route.area != Area::Public {
            operation["security"] = json!([{"bearer": []}]);
        }
        if route.stream {
            // One JSON object per line.
            operation["requestBody"] =
                json!({"required": true, "content": {"application/x-ndjson": {"schema": {"type": "object"}}}});
        } else if route.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(route.template.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "aisle", "version": env!("CARGO_PKG_VERSION"),
                 "description": "One inventory truth: catalog, stock cells and reservations."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {
                "type": "object",
                "required": ["type", "title", "status", "code"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"}, "code": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "message": {"type": "string"}}}},
                    "shortfalls": {"type": "array", "items": {"type": "object", "properties": {
                        "sku": {"type": "string"}, "location": {"type": "string"},
                        "requested": {"type": "integer"}, "available": {"type": "integer"}}}}
                }
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_route_is_documented() {
        let doc = document();
        for route in ROUTES.iter().filter(|r| r.template.starts_with("/v1/")) {
            let op = &doc["paths"][route.template][route.method.to_lowercase()];
            assert!(op.is_object(), "{} {} missing from openapi.json", route.method, route.template);
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
