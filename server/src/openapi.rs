//! `/openapi.json`: an OpenAPI 3.1 document built from the route table ([`ROUTES`]) and the
//! Rust types of every body, so it can miss neither a route nor a field.
//!
//! Each route names its request and response types ([`crate::router::Route::takes`],
//! `answers`) and its query parameters; their JSON Schemas come from `schemars` (requests
//! as they are read, responses as they are written) with the value rules of
//! [`crate::schema`]. Every problem answer is a [`Problem`]. The HTTP tests validate every
//! answer they receive against this document (`tests/it/openapi.rs`), and schemathesis fuzzes
//! the server with it in CI.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::auth::Area;
use crate::problem::Problem;
use crate::router::{Route, ROUTES};
use crate::schema::{Code, DecimalId, TokenId};

/// The problem answers every `/v1` route may give besides its own success.
const PROBLEMS: &[(u16, &str)] = &[
    (400, "Malformed request: not JSON, wrong types, unknown fields, a bad query."),
    (401, "Missing or unknown bearer token."),
    (403, "The token's role, channel or location does not allow this."),
    (404, "Not found."),
    (409, "Conflict: insufficient stock, a state that does not allow this, an idempotency key in use."),
    (413, "The body is over the limit."),
    (422, "Invalid request: `errors` names each field (or `Idempotency-Key` reused for another request)."),
    (429, "Over the token's request budget; see Retry-After."),
    (503, "Busy, read-only, shutting down, or at the connection cap (then the connection closes); see Retry-After."),
];

fn generator(contract: Contract) -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
            settings.contract = contract;
        })
        .into_generator()
}

/// The schema of a path parameter, by its name in the template.
fn path_schema(name: &str, generator: &mut SchemaGenerator) -> Value {
    let schema = match name {
        "id" => DecimalId::json_schema(generator),
        _ => Code::json_schema(generator),
    };
    schema.to_value()
}

fn parameters(route: &Route, requests: &mut SchemaGenerator) -> Vec<Value> {
    let mut list: Vec<Value> = route
        .template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if route.template.starts_with("/v1/tokens/") {
                TokenId::json_schema(requests).to_value()
            } else {
                path_schema(name, requests)
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    for param in route.query {
        list.push(json!({
            "name": param.name, "in": "query", "required": param.required,
            "description": param.description, "schema": (param.schema)(requests).to_value(),
        }));
    }
    if route.idempotent {
        list.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Makes a retry safe: the first request with a key runs, a repeat gets its answer.",
            "schema": {"type": "string", "minLength": 1, "maxLength": aisle_engine::limits::IDEMPOTENCY_KEY_LEN_MAX,
                       "pattern": "^[\\x20-\\x7E]+$"}
        }));
    }
    list
}

fn operation(route: &Route, requests: &mut SchemaGenerator, responses: &mut SchemaGenerator, problem: &Value) -> Value {
    let mut answers = Map::new();
    let success = match route.response {
        Some(schema) => json!({
            "description": route.summary,
            "content": {"application/json": {"schema": schema(responses).to_value()}}
        }),
        None => json!({"description": route.summary}),
    };
    if route.method == "PUT" {
        answers.insert("201".into(), success.clone());
    }
    answers.insert(route.success.to_string(), success);
    for (status, description) in PROBLEMS {
        answers.insert(
            status.to_string(),
            json!({"description": description, "content": {"application/problem+json": {"schema": problem}}}),
        );
    }
    let id = route.template.trim_start_matches('/').replace(['/', '{', '}', '-'], "_");
    let mut operation = json!({
        "summary": route.summary,
        "operationId": format!("{}_{id}", route.method.to_lowercase()),
        "parameters": parameters(route, requests),
        "responses": answers,
    });
    if route.area != Area::Public {
        operation["security"] = json!([{"bearer": []}]);
    }
    if let Some(schema) = route.request {
        let schema = schema(requests).to_value();
        // A body-less action still accepts an empty object; a create needs its body. An
        // empty import is an empty report.
        let required = route.body && !route.stream && !route.request_optional;
        operation["requestBody"] = if route.stream {
            // One object per line; a single line may be sent as plain JSON.
            json!({"required": required, "content": {
                "application/x-ndjson": {"schema": schema.clone()},
                "application/json": {"schema": schema},
            }})
        } else {
            json!({"required": required, "content": {"application/json": {"schema": schema}}})
        };
    }
    operation
}

/// The whole document, for the `/v1` routes.
pub fn document() -> Value {
    let mut requests = generator(Contract::Deserialize);
    let mut responses = generator(Contract::Serialize);
    let problem = responses.subschema_for::<Problem>().to_value();
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES.iter().filter(|r| r.template.starts_with("/v1/")) {
        let operation = operation(route, &mut requests, &mut responses, &problem);
        let entry = paths.entry(route.template.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation;
    }
    let mut schemas = requests.take_definitions(true);
    schemas.extend(responses.take_definitions(true));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "aisle", "version": env!("CARGO_PKG_VERSION"),
                 "description": "One inventory truth: catalog, stock cells, reservations, flash sales and transfers."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_route_is_documented_with_its_bodies() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for route in ROUTES.iter().filter(|r| r.template.starts_with("/v1/")) {
            let op = &doc["paths"][route.template][route.method.to_lowercase()];
            assert!(op.is_object(), "{} {} missing from openapi.json", route.method, route.template);
            if route.body {
                assert!(op["requestBody"].is_object(), "{} {} has no request schema", route.method, route.template);
            }
            let success = &op["responses"][route.success.to_string()];
            assert_eq!(success["content"].is_object(), route.success != 204, "{} {}", route.method, route.template);
        }
    }

    /// Every `$ref` points at a schema the document holds.
    #[test]
    fn references_resolve() {
        fn walk(value: &Value, schemas: &Map<String, Value>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let name = target.strip_prefix("#/components/schemas/").unwrap_or(target);
                        assert!(schemas.contains_key(name), "dangling $ref {target}");
                    }
                    map.values().for_each(|v| walk(v, schemas));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, schemas)),
                _ => {}
            }
        }
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().cloned().unwrap_or_default();
        assert!(schemas.contains_key("Problem") && schemas.contains_key("ReserveIn"), "{:?}", schemas.keys());
        walk(&doc, &schemas);
    }
}
