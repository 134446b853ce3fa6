//! The HTTP API through the real binary: success paths, every error code, bad input (state
//! unchanged, server still serving), role boundaries, idempotency, operations routes.

use serde_json::{json, Value};

use crate::support::{runtime, Server, ADMIN};

const LOC: &str = "HK-CWB";
const SKU: &str = "TEE-M";

#[test]
fn catalog_stock_and_reservation_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        let location = json!({"name": "Causeway Bay", "kind": "store", "lat": 22.28, "lon": 114.18,
                              "channels": ["web"], "pickup": true, "ships": false, "priority": 1});
        let put = server.admin("PUT", &format!("/v1/locations/{LOC}"), Some(location.clone())).await;
        assert_eq!((put.status, put.body["kind"].as_str()), (201, Some("store")), "{put:?}");
        let put = server.admin("PUT", &format!("/v1/locations/{LOC}"), Some(location)).await;
        assert_eq!(put.status, 200, "a replace is 200");
        let got = server.admin("GET", &format!("/v1/locations/{LOC}"), None).await;
        assert_eq!(got.body["channels"], json!(["web"]));
        let list = server.admin("GET", "/v1/locations", None).await;
        assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));

        for code in ["A-1", "A-2", "A-3", "B-1", SKU] {
            let put = server
                .admin(
                    "PUT",
                    &format!("/v1/skus/{code}"),
                    Some(json!({"name": code, "price": 100, "attributes": {"size": "M"}})),
                )
                .await;
            assert_eq!(put.status, 201, "{put:?}");
        }
        let page = server.admin("GET", "/v1/skus?prefix=A-&limit=2", None).await;
        assert_eq!(page.body["items"].as_array().map(Vec::len), Some(2), "{page:?}");
        let cursor = page.body["next_cursor"].as_str().expect("a next page").to_owned();
        let page = server.admin("GET", &format!("/v1/skus?prefix=A-&limit=2&cursor={cursor}"), None).await;
        assert_eq!(page.body["items"][0]["code"], "A-3");
        assert!(page.body.get("next_cursor").is_none(), "{page:?}");
        let sku = server.admin("GET", &format!("/v1/skus/{SKU}"), None).await;
        assert_eq!((sku.body["price"].as_i64(), sku.body["active"].as_bool()), (Some(100), Some(true)));

        let cell = server
            .admin(
                "POST",
                "/v1/stock/receive",
                Some(json!({"location": LOC, "sku": SKU, "qty": 10, "unit_cost": 400,
                            "lot": {"code": "L1", "expires_on": "2999-12-31"}, "reason": "po-1"})),
            )
            .await;
        assert_eq!((cell.status, cell.body["on_hand"].as_i64()), (200, Some(10)), "{cell:?}");
        assert_eq!(cell.body["lots"][0]["expires_on"], "2999-12-31");
        let cell = server
            .admin(
                "POST",
                "/v1/stock/adjust",
                Some(json!({"location": LOC, "sku": SKU, "delta": -2, "reason": "damage"})),
            )
            .await;
        assert_eq!(cell.body["on_hand"], 8, "{cell:?}");
        let cell = server
            .admin(
                "POST",
                "/v1/stock/adjust",
                Some(json!({"location": LOC, "sku": SKU, "counted": 9, "reason": "count"})),
            )
            .await;
        assert_eq!(cell.body["on_hand"], 9, "{cell:?}");
        let cell = server
            .admin("PATCH", &format!("/v1/stock/{SKU}/{LOC}"), Some(json!({"safety_stock": 1, "reorder_point": 3})))
            .await;
        assert_eq!((cell.body["available"].as_i64(), cell.body["reorder_point"].as_i64()), (Some(8), Some(3)));

        let hold = server
            .admin(
                "POST",
                "/v1/reservations",
                Some(json!({"channel": "web", "customer": "c-1", "ttl_seconds": 60,
                            "lines": [{"sku": SKU, "qty": 3, "location": LOC}]})),
            )
            .await;
        assert_eq!((hold.status, hold.body["status"].as_str()), (201, Some("active")), "{hold:?}");
        let id = hold.body["id"].as_str().expect("string id").to_owned();
        assert!(hold.body["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{hold:?}");
        assert_eq!(server.cell(SKU, LOC).await["reserved"], 3);

        let path = format!("/v1/reservations/{id}");
        assert_eq!(server.admin("GET", &path, None).await.body["lines"][0]["qty"], 3);
        let extended = server.admin("POST", &format!("{path}/extend"), Some(json!({"ttl_seconds": 600}))).await;
        assert_eq!(extended.status, 200, "{extended:?}");
        assert!(extended.body["expires_at"].as_str() > hold.body["expires_at"].as_str());
        let committed = server.admin("POST", &format!("{path}/commit"), Some(json!({"order_ref": "o-1"}))).await;
        assert_eq!(committed.body["status"], "committed", "{committed:?}");
        let fulfilled = server.admin("POST", &format!("{path}/fulfill"), None).await;
        assert_eq!(fulfilled.body["status"], "fulfilled", "{fulfilled:?}");
        let cell = server.cell(SKU, LOC).await;
        assert_eq!(
            (cell["on_hand"].as_i64(), cell["reserved"].as_i64(), cell["committed"].as_i64()),
            (Some(6), Some(0), Some(0))
        );

        // Release, then release again: harmless.
        let hold = server
            .admin(
                "POST",
                "/v1/reservations",
                Some(json!({"channel": "web", "lines": [{"sku": SKU, "qty": 2, "location": LOC}]})),
            )
            .await;
        let path = format!("/v1/reservations/{}", hold.body["id"].as_str().expect("id"));
        for _ in 0..2 {
            let released = server.admin("DELETE", &path, None).await;
            assert_eq!((released.status, released.body["status"].as_str()), (200, Some("released")), "{released:?}");
        }
        // A finished reservation cannot be committed.
        assert_eq!(server.admin("POST", &format!("{path}/commit"), None).await.code(), "conflict");

        // The audit trail: receive, two adjusts, policy, two holds and their transitions.
        // Movements are indexed a few milliseconds after the acknowledgement: poll briefly.
        let path = format!("/v1/stock/movements?sku={SKU}&location={LOC}&limit=3");
        let mut page = server.admin("GET", &path, None).await;
        for _ in 0..100 {
            if page.body["items"].as_array().is_some_and(|items| items.len() == 3) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            page = server.admin("GET", &path, None).await;
        }
        assert_eq!(page.status, 200, "{page:?}");
        let first = &page.body["items"][0];
        assert_eq!((first["command"].as_str(), first["on_hand"].as_i64()), (Some("receive"), Some(10)), "{page:?}");
        assert_eq!(first["actor"], "env-admin");
        let cursor = page.body["next_cursor"].as_str().expect("more movements").to_owned();
        let next = server.admin("GET", &format!("{path}&cursor={cursor}"), None).await;
        assert_eq!(next.status, 200, "{next:?}");
        assert_ne!(next.body["items"][0], page.body["items"][0]);
        let bad = server.admin("GET", "/v1/stock/movements?cursor=xyz", None).await;
        assert_eq!((bad.status, bad.code()), (422, "invalid_request"));

        let stock = server.admin("GET", &format!("/v1/stock/{SKU}"), None).await;
        assert_eq!(
            (stock.body["total"]["on_hand"].as_i64(), stock.body["locations"][0]["location"].as_str()),
            (Some(6), Some(LOC))
        );
    });
}

#[test]
fn idempotency_keys_replay_the_first_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 10).await;
        let body = |qty: u32| {
            Some(
                serde_json::to_vec(&json!({"channel": "web", "lines": [{"sku": SKU, "qty": qty, "location": LOC}]}))
                    .expect("json"),
            )
        };
        let key = [("Idempotency-Key", "checkout-42")];
        let first = server.raw_with("POST", "/v1/reservations", Some(ADMIN), body(2), &key).await;
        let again = server.raw_with("POST", "/v1/reservations", Some(ADMIN), body(2), &key).await;
        assert_eq!(first.status, 201, "{first:?}");
        assert_eq!(again.status, 201, "{again:?}");
        assert_eq!(first.body["id"], again.body["id"]);
        assert_eq!(server.cell(SKU, LOC).await["reserved"], 2, "the retry changed nothing");
        let other = server.raw_with("POST", "/v1/reservations", Some(ADMIN), body(3), &key).await;
        assert_eq!((other.status, other.code()), (422, "invalid_request"), "{other:?}");
        assert_eq!(other.body["errors"][0]["field"], "Idempotency-Key", "{other:?}");
        let bad_key = "k".repeat(129);
        let bad =
            server.raw_with("POST", "/v1/reservations", Some(ADMIN), body(1), &[("Idempotency-Key", &bad_key)]).await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_request"), "{bad:?}");
        assert_eq!(server.cell(SKU, LOC).await["reserved"], 2);
    });
}

/// Every row: request → status and problem code; afterwards the cell is unchanged and the
/// server still answers.
#[test]
fn bad_input_is_rejected_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 100).await;
        let before = server.cell(SKU, LOC).await;
        let reserve = |lines: Value| json!({"channel": "web", "lines": lines}).to_string();
        let line = |sku: &str, qty: Value, location: &str| json!({"sku": sku, "qty": qty, "location": location});
        let long = "X".repeat(65);
        let long_sku_path = format!("/v1/skus/{long}");
        let many: Vec<Value> = (0..101).map(|_| line(SKU, json!(1), LOC)).collect();
        let huge = format!("{{\"channel\": \"web\", \"customer\": \"{}\", \"lines\": []}}", "x".repeat(1 << 20));
        let cases: Vec<(&str, &str, String, u16, &str)> = vec![
            ("POST", "/v1/reservations", "{not json".into(), 400, "invalid_request"),
            ("POST", "/v1/reservations", "".into(), 400, "invalid_request"),
            ("POST", "/v1/reservations", json!({"channel": 7, "lines": []}).to_string(), 400, "invalid_request"),
            (
                "POST",
                "/v1/reservations",
                json!({"channel": "web", "lines": [], "color": "red"}).to_string(),
                400,
                "invalid_request",
            ),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!("1"), LOC)])), 400, "invalid_request"),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!(1e30), LOC)])), 400, "invalid_request"),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!(0), LOC)])), 422, "invalid_request"),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!(-1), LOC)])), 422, "invalid_request"),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!(1_000_001), LOC)])), 422, "invalid_request"),
            (
                "POST",
                "/v1/reservations",
                reserve(json!([line(SKU, json!(5_000_000_000i64), LOC)])),
                422,
                "invalid_request",
            ),
            ("POST", "/v1/reservations", reserve(json!([])), 422, "invalid_request"),
            ("POST", "/v1/reservations", reserve(Value::Array(many)), 422, "invalid_request"),
            ("POST", "/v1/reservations", reserve(json!([line(&long, json!(1), LOC)])), 422, "invalid_request"),
            ("POST", "/v1/reservations", reserve(json!([line("NOPE", json!(1), LOC)])), 404, "not_found"),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!(1), "NOWHERE")])), 404, "not_found"),
            ("POST", "/v1/reservations", reserve(json!([line(SKU, json!(101), LOC)])), 409, "insufficient_stock"),
            (
                "POST",
                "/v1/reservations",
                json!({"channel": "web", "ttl_seconds": 0, "lines": [line(SKU, json!(1), LOC)]}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/reservations",
                json!({"channel": "web", "ttl_seconds": 86_401, "lines": [line(SKU, json!(1), LOC)]}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/reservations",
                json!({"channel": "WEB!", "lines": [line(SKU, json!(1), LOC)]}).to_string(),
                422,
                "invalid_request",
            ),
            ("POST", "/v1/reservations", huge, 413, "payload_too_large"),
            (
                "POST",
                "/v1/stock/receive",
                json!({"location": LOC, "sku": SKU, "qty": 0}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/stock/receive",
                json!({"location": LOC, "sku": SKU, "qty": -5}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/stock/receive",
                json!({"location": LOC, "sku": "NOPE", "qty": 1}).to_string(),
                404,
                "not_found",
            ),
            (
                "POST",
                "/v1/stock/receive",
                json!({"location": LOC, "sku": SKU, "qty": 1, "lot": {"code": "L", "expires_on": "31/12/2030"}})
                    .to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/stock/adjust",
                json!({"location": LOC, "sku": SKU, "delta": 1, "counted": 1, "reason": "count"}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/stock/adjust",
                json!({"location": LOC, "sku": SKU, "delta": 1, "reason": "theft"}).to_string(),
                422,
                "invalid_request",
            ),
            ("PATCH", "/v1/stock/TEE-M/HK-CWB", json!({"safety_stock": -1}).to_string(), 422, "invalid_request"),
            ("PUT", "/v1/skus/TEE-M", json!({"name": "x", "price": -1}).to_string(), 422, "invalid_request"),
            ("PUT", &long_sku_path, json!({"name": "x", "price": 1}).to_string(), 422, "invalid_request"),
            (
                "PUT",
                "/v1/skus/OTHER",
                json!({"code": "DIFFERENT", "name": "x", "price": 1}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "PUT",
                "/v1/locations/X",
                json!({"name": "x", "kind": "castle", "lat": 0, "lon": 0}).to_string(),
                422,
                "invalid_request",
            ),
            (
                "PUT",
                "/v1/locations/X",
                json!({"name": "x", "kind": "store", "lat": 91, "lon": 0}).to_string(),
                422,
                "invalid_request",
            ),
            ("GET", "/v1/skus?limit=0", String::new(), 422, "invalid_request"),
            ("GET", "/v1/skus/NOPE", String::new(), 404, "not_found"),
            ("GET", "/v1/locations/NOPE", String::new(), 404, "not_found"),
            ("GET", "/v1/stock/NOPE", String::new(), 404, "not_found"),
            ("GET", "/v1/stock/TEE-M/NOWHERE", String::new(), 404, "not_found"),
            ("GET", "/v1/reservations/abc", String::new(), 404, "not_found"),
            ("GET", "/v1/reservations/999999", String::new(), 404, "not_found"),
            ("DELETE", "/v1/reservations/999999", String::new(), 404, "not_found"),
            ("GET", "/v1/nothing-here", String::new(), 404, "not_found"),
            ("DELETE", "/v1/skus/TEE-M", String::new(), 405, "method_not_allowed"),
            ("POST", "/v1/sourcing/quote", json!({}).to_string(), 400, "invalid_request"),
            (
                "POST",
                "/v1/sourcing/quote",
                json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1}], "fulfillment": {"type": "teleport"}})
                    .to_string(),
                400,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/sourcing/quote",
                json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1}],
                       "fulfillment": {"type": "ship", "to": {"lat": 91.0, "lon": 0.0}}})
                .to_string(),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/sourcing/quote",
                json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1}],
                       "fulfillment": {"type": "pickup", "location": "NOWHERE"}})
                .to_string(),
                404,
                "not_found",
            ),
            (
                "POST",
                "/v1/reservations",
                json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1}]}).to_string(),
                422,
                "invalid_request",
            ),
            ("GET", "/v1/availability?skus=TEE-M&near=north", String::new(), 422, "invalid_request"),
            ("PUT", "/v1/flash-sales/S1", json!({}).to_string(), 400, "invalid_request"),
            (
                "PUT",
                "/v1/flash-sales/S1",
                json!({"sku": SKU, "location": "HK-CWB", "quantity": 0, "starts_at": "2020-01-01T00:00:00Z",
                       "ends_at": "2099-01-01T00:00:00Z"})
                .to_string(),
                422,
                "invalid_request",
            ),
            (
                "PUT",
                "/v1/flash-sales/S1",
                json!({"sku": SKU, "location": "HK-CWB", "quantity": 5, "starts_at": "2099-01-01T00:00:00Z",
                       "ends_at": "2020-01-01T00:00:00Z"})
                .to_string(),
                422,
                "invalid_request",
            ),
            (
                "PUT",
                "/v1/flash-sales/S1",
                json!({"sku": SKU, "location": "HK-CWB", "quantity": 5, "starts_at": "soon",
                       "ends_at": "2099-01-01T00:00:00Z", "hold_seconds": -3})
                .to_string(),
                422,
                "invalid_request",
            ),
            ("POST", "/v1/flash-sales/NOPE/claims", json!({"customer": "c1"}).to_string(), 404, "not_found"),
            (
                "POST",
                "/v1/flash-sales/NOPE/claims",
                json!({"customer": "c1", "qty": 0}).to_string(),
                422,
                "invalid_request",
            ),
            ("POST", "/v1/flash-sales/NOPE/claims", json!({"qty": 1}).to_string(), 400, "invalid_request"),
            ("GET", "/v1/flash-sales/NOPE", String::new(), 404, "not_found"),
        ];
        for (method, path, body, status, code) in cases {
            let shown = if body.len() > 120 { format!("{}…", &body[..120]) } else { body.clone() };
            let body = (!body.is_empty() || method != "GET").then(|| body.into_bytes());
            let answer = server.raw(method, path, Some(ADMIN), body).await;
            assert_eq!((answer.status, answer.code()), (status, code), "{method} {path} {shown}: {answer:?}");
            let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok());
            assert_eq!(content_type, Some("application/problem+json"), "{method} {path}");
            assert_eq!(answer.body["type"], format!("/problems/{code}"));
            assert_eq!(answer.body["status"], status);
            if code == "invalid_request" && status == 422 {
                assert!(answer.body["errors"][0]["field"].is_string(), "{answer:?}");
            }
            if code == "insufficient_stock" {
                assert_eq!(answer.body["shortfalls"][0]["available"], 100, "{answer:?}");
            }
            assert_eq!(server.cell(SKU, LOC).await, before, "{method} {path} changed state");
        }
        assert_eq!(server.raw("GET", "/healthz", None, None).await.status, 200);
    });
}

/// Method, path, bearer secret, body, expected status.
type RoleCase<'a> = (&'a str, &'a str, Option<&'a str>, Option<Value>, u16);

#[test]
fn roles_and_token_bindings() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 50).await;
        server.seed("HK-TST", SKU, 50).await;
        let token = |body: Value| async {
            let made = server.admin("POST", "/v1/tokens", Some(body)).await;
            assert_eq!(made.status, 201, "{made:?}");
            (made.body["id"].as_str().expect("id").to_owned(), made.body["secret"].as_str().expect("secret").to_owned())
        };
        let (_, ops) = token(json!({"name": "grafana", "role": "ops"})).await;
        let (web_id, web) = token(json!({"name": "shop", "role": "channel", "channel": "web"})).await;
        let (_, pos) = token(json!({"name": "till-1", "role": "pos", "location": LOC})).await;
        for bad in [
            json!({"name": "x", "role": "channel"}),
            json!({"name": "x", "role": "ops", "channel": "web"}),
            json!({"name": "", "role": "ops"}),
        ] {
            let answer = server.admin("POST", "/v1/tokens", Some(bad.clone())).await;
            assert_eq!((answer.status, answer.code()), (422, "invalid_request"), "{bad}: {answer:?}");
        }
        // A POS token for a location that does not exist names a missing resource.
        let nowhere = json!({"name": "x", "role": "pos", "location": "NOWHERE"});
        let answer = server.admin("POST", "/v1/tokens", Some(nowhere)).await;
        assert_eq!((answer.status, answer.code()), (404, "not_found"), "{answer:?}");

        let hold = |channel: &str, location: &str| {
            json!({"channel": channel, "lines": [{"sku": SKU, "qty": 1, "location": location}]})
        };
        let sku_body = json!({"name": "x", "price": 1});
        let receive = |location: &str| json!({"location": location, "sku": SKU, "qty": 1});
        let cases: Vec<RoleCase> = vec![
            ("GET", "/v1/skus", None, None, 401),
            ("GET", "/v1/skus", Some("aisle_0000_nope"), None, 401),
            ("GET", "/v1/skus", Some("garbage"), None, 401),
            ("GET", "/v1/skus", Some(&ops), None, 200),
            ("GET", "/v1/stock/TEE-M", Some(&ops), None, 200),
            ("PUT", "/v1/skus/NEW", Some(&ops), Some(sku_body.clone()), 403),
            ("POST", "/v1/reservations", Some(&ops), Some(hold("web", LOC)), 403),
            ("POST", "/v1/tokens", Some(&ops), Some(json!({"name": "x", "role": "admin"})), 403),
            ("PUT", "/v1/skus/NEW", Some(&web), Some(sku_body.clone()), 403),
            ("GET", "/v1/stock/TEE-M", Some(&web), None, 403),
            ("POST", "/v1/reservations", Some(&web), Some(hold("app", LOC)), 403),
            ("POST", "/v1/reservations", Some(&web), Some(hold("web", LOC)), 201),
            ("POST", "/v1/stock/receive", Some(&web), Some(receive(LOC)), 403),
            ("POST", "/v1/stock/receive", Some(&pos), Some(receive(LOC)), 200),
            ("POST", "/v1/stock/receive", Some(&pos), Some(receive("HK-TST")), 403),
            ("POST", "/v1/reservations", Some(&pos), Some(hold("pos", "HK-TST")), 403),
            ("POST", "/v1/reservations", Some(&pos), Some(hold("pos", LOC)), 201),
            ("POST", "/v1/stock/adjust", Some(&pos), Some(json!({"location": LOC, "sku": SKU, "delta": 1, "reason": "found"})), 403),
        ];
        for (method, path, token, body, status) in cases {
            let bytes = body.map(|b| serde_json::to_vec(&b).expect("json"));
            let answer = server.raw(method, path, token, bytes).await;
            assert_eq!(answer.status, status, "{method} {path} as {token:?}: {answer:?}");
            let code = match status {
                401 => "unauthorized",
                403 => "forbidden",
                _ => "",
            };
            assert_eq!(answer.code(), code, "{answer:?}");
        }

        // A channel token sees only its channel's reservations.
        let admin_hold = server.admin("POST", "/v1/reservations", Some(hold("app", LOC))).await;
        let path = format!("/v1/reservations/{}", admin_hold.body["id"].as_str().expect("id"));
        assert_eq!(server.call("GET", &path, &web, None).await.status, 403);
        assert_eq!(server.call("DELETE", &path, &web, None).await.status, 403);
        assert_eq!(server.call("GET", &path, &ops, None).await.status, 200);
        assert_eq!(server.call("DELETE", &path, &ops, None).await.status, 403);

        // Revocation is immediate, and survives a restart.
        assert_eq!(server.admin("DELETE", &format!("/v1/tokens/{web_id}"), None).await.status, 204);
        assert_eq!(server.call("GET", "/v1/skus", &web, None).await.status, 401);
        assert_eq!(server.admin("DELETE", &format!("/v1/tokens/{web_id}"), None).await.status, 404);
        let status = server.terminate();
        assert!(status.success(), "graceful shutdown exits 0: {status:?}");
        let server = Server::start(dir.path());
        assert_eq!(server.call("GET", "/v1/skus", &web, None).await.status, 401);
        assert_eq!(server.call("GET", "/v1/skus", &ops, None).await.status, 200, "tokens persist");
    });
}

#[test]
fn first_start_writes_the_admin_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aisle-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("AISLE_ADMIN_TOKEN")
        .env("AISLE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut printed = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if line.starts_with("listening on ") {
            break;
        }
        printed = line.rsplit(' ').next().map(str::to_owned);
    }
    let _ = child.kill();
    let _ = child.wait();
    let path = dir.path().join("admin.token");
    let secret = std::fs::read_to_string(&path).expect("admin.token exists");
    assert_eq!(printed.as_deref(), Some(secret.trim()), "the token is printed once on first start");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn operations_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 5).await;
        let health = server.raw("GET", "/healthz", None, None).await;
        assert_eq!(health.status, 200);
        assert!(health.headers.contains_key("x-request-id"), "{health:?}");
        assert_eq!(server.raw("GET", "/readyz", None, None).await.status, 200);

        let doc = server.raw("GET", "/openapi.json", None, None).await;
        assert_eq!(doc.body["openapi"], "3.1.0");
        for route in aisle_server::router::ROUTES.iter().filter(|r| r.template.starts_with("/v1/")) {
            let op = &doc.body["paths"][route.template][route.method.to_lowercase()];
            assert!(op.is_object(), "{} {} is missing from /openapi.json", route.method, route.template);
        }

        let metrics = server.raw("GET", "/metrics", None, None).await;
        assert_eq!(metrics.status, 200);
        let text = metrics.body.as_str().expect("text").to_owned();
        for name in [
            "aisle_http_requests_total",
            "aisle_http_request_duration_seconds_bucket",
            "aisle_active_reservations",
            "aisle_wal_fsync_duration_seconds_bucket",
            "aisle_wal_batch_records_bucket",
            "aisle_wal_bytes_total",
            "aisle_snapshot_duration_seconds",
            "aisle_recovery_duration_seconds",
            "aisle_wal_retained_bytes",
            "aisle_wal_oldest_retained_lsn",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "{name} missing from /metrics");
        }
        assert!(text.contains("route=\"/v1/skus/{code}\""), "routes are labelled by template");
        assert!(!text.contains(SKU), "no label carries a SKU");

        if let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
            let out = child.wait_with_output().expect("promtool runs");
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// 64 clients take 1 unit each from 1,000 until sold out: exactly 1,000 holds, never more.
#[test]
fn stampede_never_oversells() {
    const UNITS: u32 = 1000;
    const CLIENTS: usize = 64;
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = std::sync::Arc::new(Server::start(dir.path()));
        server.seed(LOC, SKU, UNITS).await;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let (mut granted, mut refused) = (0u32, 0u32);
                let body = json!({"channel": "web", "lines": [{"sku": SKU, "qty": 1, "location": LOC}]});
                loop {
                    let answer = server.admin("POST", "/v1/reservations", Some(body.clone())).await;
                    match (answer.status, answer.code()) {
                        (201, _) => granted += 1,
                        (409, "insufficient_stock") => {
                            refused += 1;
                            break;
                        }
                        other => panic!("unexpected answer {other:?}: {answer:?}"),
                    }
                }
                (granted, refused)
            }));
        }
        let mut granted = 0;
        for task in tasks {
            let (g, refused) = task.await.expect("client task");
            assert_eq!(refused, 1);
            granted += g;
        }
        assert_eq!(granted, UNITS);
        let cell = server.cell(SKU, LOC).await;
        assert_eq!((cell["reserved"].as_i64(), cell["available"].as_i64()), (Some(i64::from(UNITS)), Some(0)));
        let metrics = server.raw("GET", "/metrics", None, None).await;
        let text = metrics.body.as_str().unwrap_or_default().to_owned();
        assert!(text.contains(&format!("aisle_active_reservations {UNITS}")), "{text}");
    });
}

/// Holds expire by themselves (the engine's sweeper), and settings come from a config file.
#[test]
fn reservations_expire_and_config_file_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("aisle.toml");
    std::fs::write(&config, "durability = \"async\"\nconnections_max = 64\n").expect("write config");
    let data = dir.path().join("data");
    runtime().block_on(async {
        let server = Server::start_with(&data, &["--config", config.to_str().expect("utf-8 path")]);
        server.seed(LOC, SKU, 5).await;
        let hold = server
            .admin(
                "POST",
                "/v1/reservations",
                Some(json!({"channel": "web", "ttl_seconds": 1, "lines": [{"sku": SKU, "qty": 2, "location": LOC}]})),
            )
            .await;
        assert_eq!(hold.status, 201, "{hold:?}");
        let path = format!("/v1/reservations/{}", hold.body["id"].as_str().expect("id"));
        let mut status = String::new();
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            status = server.admin("GET", &path, None).await.body["status"].as_str().unwrap_or_default().to_owned();
            if status == "expired" {
                break;
            }
        }
        assert_eq!(status, "expired");
        assert_eq!(server.cell(SKU, LOC).await["reserved"], 0);
        let extend = server.admin("POST", &format!("{path}/extend"), Some(json!({"ttl_seconds": 60}))).await;
        assert_eq!((extend.status, extend.code()), (409, "conflict"), "{extend:?}");
    });
    assert!(data.join("wal").is_dir(), "the data directory came from the environment");
}

/// With `connections_max = 1`, a second connection is answered 503 at once (not left waiting
/// in the backlog) and closed; once the first one closes, new connections are served again.
#[test]
fn connections_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start_with(dir.path(), &["--connections-max", "1"]);
        let url = format!("{}/healthz", server.base);
        let client = |timeout_ms| {
            reqwest::Client::builder().timeout(std::time::Duration::from_millis(timeout_ms)).build().expect("client")
        };
        // The first client's keep-alive connection holds the only slot.
        let first = client(5000);
        assert_eq!(first.get(&url).send().await.expect("first").status(), 200);
        let second = client(2000).get(&url).send().await.expect("a second connection is answered at once");
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        assert_eq!(second.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
        // The first connection is still served.
        assert_eq!(first.get(&url).send().await.expect("first again").status(), 200);
        // Dropping the first client closes its connection and frees the slot; until the server
        // has seen the close, a new connection is still answered 503 at once, never left waiting.
        drop(first);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let answer = client(2000).get(&url).send().await.expect("answered at once");
            if answer.status() == 200 {
                break;
            }
            assert_eq!(answer.status(), 503);
            assert!(std::time::Instant::now() < deadline, "served once the slot is free");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
}
