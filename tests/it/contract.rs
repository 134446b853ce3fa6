//! Every answer the HTTP tests receive is checked against `/openapi.json`: its status must be
//! documented for the route, and its body must match the documented schema of that status
//! (formats included). A handler that answers a shape or a status the document does not
//! describe fails whichever test made the call.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};

/// The document the server serves, built from the same code.
fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(aisle_server::openapi::document)
}

/// Compiled validators by (method, template, status, media type); `None`: no body documented.
type Validators = HashMap<(String, String, u16, String), Option<std::sync::Arc<jsonschema::Validator>>>;

fn validator(method: &str, template: &str, status: u16, media: &str) -> Option<std::sync::Arc<jsonschema::Validator>> {
    static CACHE: OnceLock<Mutex<Validators>> = OnceLock::new();
    let key = (method.to_owned(), template.to_owned(), status, media.to_owned());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().expect("validator cache").get(&key) {
        return found.clone();
    }
    let doc = document();
    let operation = &doc["paths"][template][method.to_lowercase()];
    let answer = &operation["responses"][status.to_string()];
    assert!(answer.is_object(), "{method} {template} answered {status}, which /openapi.json does not document for it");
    let compiled = match &answer["content"] {
        Value::Null => None,
        content => {
            let schema = &content[media]["schema"];
            assert!(schema.is_object(), "{method} {template} {status}: no {media} schema in /openapi.json");
            // The schema's references point into the document's components.
            let root = json!({"components": doc["components"], "allOf": [schema]});
            let built = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("{method} {template} {status}: the schema does not compile: {e}"));
            Some(std::sync::Arc::new(built))
        }
    };
    cache.lock().expect("validator cache").insert(key, compiled.clone());
    compiled
}

/// Checks one answer against the document. Paths outside `/v1`, unknown paths and wrong
/// methods (404/405 from the router itself) are not operations of the document.
pub fn check(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &Value) {
    let path = path.split('?').next().unwrap_or_default();
    if !path.starts_with("/v1/") {
        return;
    }
    let Ok(found) = aisle_server::router::find(method, path) else { return };
    let template = found.route.template;
    let media = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim();
    match validator(method, template, status, media) {
        None => assert!(body.is_null(), "{method} {template} {status}: a body where none is documented: {body}"),
        Some(validator) => {
            let errors: Vec<String> =
                validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {status}: the answer does not match /openapi.json:\n  {}\nbody: {body}",
                errors.join("\n  ")
            );
        }
    }
}

#[test]
fn the_served_document_is_the_one_checked_and_checks_bite() {
    // A served answer that breaks the document must fail the check.
    let good = json!({"lsn": 1, "bytes": 2, "millis": 3});
    check("POST", "/v1/ops/snapshot", 200, Some("application/json"), &good);
    for (status, media, body) in [
        (200, "application/json", json!({"lsn": "1", "bytes": 2, "millis": 3})),
        (200, "application/json", json!({"lsn": 1, "bytes": 2})),
        (418, "application/json", good.clone()),
        (409, "application/problem+json", json!({"code": "nope"})),
    ] {
        let caught = std::panic::catch_unwind(|| check("POST", "/v1/ops/snapshot", status, Some(media), &body));
        assert!(caught.is_err(), "{status} {body} should not pass the contract check");
    }
    let cell = json!({"sku": "S", "location": "L", "on_hand": 1, "reserved": 0, "committed": 0, "safety_stock": 0,
                      "incoming": 0, "expired": 0, "available": 1, "oversold": 0, "avg_cost": 0,
                      "reorder_point": 0, "reorder_qty": 0, "lots": [{"code": "L1", "expires_on": "not a date", "qty": 1}]});
    let caught = std::panic::catch_unwind(|| check("GET", "/v1/stock/S/L", 200, Some("application/json"), &cell));
    assert!(caught.is_err(), "a date that is not a date breaks the documented format");
}

#[test]
fn the_server_serves_this_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::runtime().block_on(async {
        let server = crate::support::Server::start(dir.path());
        let served = server.raw("GET", "/openapi.json", None, None).await;
        assert_eq!(served.status, 200);
        assert_eq!(&served.body, document(), "the served document differs from the one the tests check against");
    });
}
