//! Transfers and replenishment over HTTP through the real binary: the lifecycle with exact
//! bodies and statuses, every refusal (404, 409, 422, 400, 403) leaving state as it was, the
//! audit trail, replenishment approval into a transfer, and suggestions.

use serde_json::{json, Value};

use crate::support::{runtime, Answer, Server};

/// (code, lat, lon): a warehouse out of town and two stores.
const NETWORK: [(&str, f64, f64); 3] = [("WH", 22.355, 114.105), ("S1", 22.282, 114.158), ("S2", 22.319, 114.169)];

async fn build(server: &Server, stock: &[(&str, &str, u32, Option<u64>)]) {
    for (code, lat, lon) in NETWORK {
        let body = json!({"name": code, "kind": "store", "lat": lat, "lon": lon, "channels": ["web", "pos"],
                          "pickup": true, "ships": true});
        let answer = server.admin("PUT", &format!("/v1/locations/{code}"), Some(body)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    for sku in ["TEE", "CAP", "MUG"] {
        let answer = server.admin("PUT", &format!("/v1/skus/{sku}"), Some(json!({"name": sku, "price": 1000}))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    for (sku, location, qty, cost) in stock {
        let mut body = json!({"location": location, "sku": sku, "qty": qty});
        if let Some(cost) = cost {
            body["unit_cost"] = json!(cost);
        }
        let answer = server.admin("POST", "/v1/stock/receive", Some(body)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

/// The body without its time members, after checking each is an RFC 3339 UTC time.
fn timeless(answer: &Answer, times: &[&str]) -> Value {
    let mut body = answer.body.clone();
    for name in times {
        let time = body[*name].as_str().unwrap_or_else(|| panic!("{name} in {answer:?}"));
        assert!(time.ends_with('Z') && time.contains('T'), "{name}: {time}");
        body.as_object_mut().expect("an object").remove(*name);
    }
    body
}

/// (on_hand, reserved, incoming, available) of a cell.
async fn q(server: &Server, sku: &str, location: &str) -> (i64, i64, i64, i64) {
    let cell = server.cell(sku, location).await;
    let get = |name: &str| cell[name].as_i64().expect("a quantity");
    (get("on_hand"), get("reserved"), get("incoming"), get("available"))
}

async fn token(server: &Server, body: Value) -> String {
    let made = server.admin("POST", "/v1/tokens", Some(body)).await;
    assert_eq!(made.status, 201, "{made:?}");
    made.body["secret"].as_str().expect("secret").to_owned()
}

#[test]
fn transfer_lifecycle_with_exact_bodies_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        build(&server, &[("TEE", "WH", 10, Some(100)), ("CAP", "WH", 5, None), ("TEE", "S1", 5, Some(200))]).await;

        let body = json!({"from": "WH", "to": "S1", "note": "weekly",
                          "lines": [{"sku": "TEE", "qty": 4}, {"sku": "CAP", "qty": 2}]});
        let bytes = serde_json::to_vec(&body).expect("json");
        let key = [("Idempotency-Key", "move-1")];
        let created =
            server.raw_with("POST", "/v1/transfers", Some(crate::support::ADMIN), Some(bytes.clone()), &key).await;
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(
            timeless(&created, &["created_at"]),
            json!({"id": "1", "status": "held", "from": "WH", "to": "S1", "note": "weekly",
                   "lines": [{"sku": "TEE", "qty": 4, "shipped": 0, "received": 0},
                             {"sku": "CAP", "qty": 2, "shipped": 0, "received": 0}]})
        );
        let retried = server.raw_with("POST", "/v1/transfers", Some(crate::support::ADMIN), Some(bytes), &key).await;
        assert_eq!((retried.status, &retried.body), (201, &created.body), "a retry answers the first result");
        assert_eq!(q(&server, "TEE", "WH").await, (10, 4, 0, 6), "held once");
        assert_eq!(server.admin("GET", "/v1/transfers/1", None).await.body, created.body);

        let shipped = server.admin("POST", "/v1/transfers/1/ship", None).await;
        assert_eq!(shipped.status, 200, "{shipped:?}");
        assert_eq!(
            timeless(&shipped, &["created_at", "shipped_at"]),
            json!({"id": "1", "status": "shipped", "from": "WH", "to": "S1", "note": "weekly",
                   "lines": [{"sku": "TEE", "qty": 4, "shipped": 4, "received": 0, "unit_cost": 100},
                             {"sku": "CAP", "qty": 2, "shipped": 2, "received": 0}]})
        );
        assert_eq!(q(&server, "TEE", "WH").await, (6, 0, 0, 6));
        assert_eq!(q(&server, "TEE", "S1").await, (5, 0, 4, 5));
        let again = server.admin("POST", "/v1/transfers/1/ship", Some(json!({}))).await;
        assert_eq!((again.status, again.code()), (409, "conflict"), "{again:?}");
        let cancel = server.admin("DELETE", "/v1/transfers/1", None).await;
        assert_eq!((cancel.status, cancel.code()), (409, "conflict"), "shipped: too late to cancel");

        let part =
            server.admin("POST", "/v1/transfers/1/receive", Some(json!({"lines": [{"sku": "TEE", "qty": 1}]}))).await;
        assert_eq!((part.status, part.body["status"].as_str()), (200, Some("partially_received")), "{part:?}");
        assert_eq!(part.body["lines"][0]["received"], 1);
        assert!(part.body["received_at"].is_string());
        for (bad, status, code, field) in [
            (json!({"lines": [{"sku": "TEE", "qty": 4}]}), 409, "conflict", None),
            // Not on the transfer: a conflict with the transfer as it is.
            (json!({"lines": [{"sku": "MUG", "qty": 1}]}), 409, "conflict", None),
            (json!({"lines": [{"sku": "TEE", "qty": 0}]}), 422, "invalid_request", Some("lines[0].qty")),
            (json!({"lines": []}), 422, "invalid_request", Some("lines")),
            (json!({"lines": [{"sku": "TEE", "qty": 1, "lot": "x"}]}), 400, "invalid_request", None),
        ] {
            let refused = server.admin("POST", "/v1/transfers/1/receive", Some(bad.clone())).await;
            assert_eq!((refused.status, refused.code()), (status, code), "{bad}: {refused:?}");
            if let Some(field) = field {
                assert_eq!(refused.body["errors"][0]["field"], field, "{refused:?}");
            }
        }
        assert_eq!(q(&server, "TEE", "S1").await, (6, 0, 3, 6), "refusals changed nothing");
        let done = server.admin("POST", "/v1/transfers/1/receive", None).await;
        assert_eq!(done.status, 200, "{done:?}");
        assert_eq!(
            timeless(&done, &["created_at", "shipped_at", "received_at"]),
            json!({"id": "1", "status": "received", "from": "WH", "to": "S1", "note": "weekly",
                   "lines": [{"sku": "TEE", "qty": 4, "shipped": 4, "received": 4, "unit_cost": 100},
                             {"sku": "CAP", "qty": 2, "shipped": 2, "received": 2}]})
        );
        let s1 = server.cell("TEE", "S1").await;
        assert_eq!(
            (s1["on_hand"].as_i64(), s1["incoming"].as_i64(), s1["avg_cost"].as_i64()),
            (Some(9), Some(0), Some(156))
        );
        let again = server.admin("POST", "/v1/transfers/1/receive", None).await;
        assert_eq!((again.status, again.code()), (409, "conflict"));

        // Cancel before shipping; a repeat answers the same.
        let second = server
            .admin(
                "POST",
                "/v1/transfers",
                Some(json!({"from": "WH", "to": "S2",
            "lines": [{"sku": "TEE", "qty": 2}]})),
            )
            .await;
        // Ids are opaque: the retried create above drew one too.
        let id = second.body["id"].as_str().expect("id").to_owned();
        assert_eq!(second.status, 201, "{second:?}");
        let cancelled = server.admin("DELETE", &format!("/v1/transfers/{id}"), None).await;
        assert_eq!(
            timeless(&cancelled, &["created_at", "cancelled_at"]),
            json!({"id": id, "status": "cancelled", "from": "WH", "to": "S2",
                   "lines": [{"sku": "TEE", "qty": 2, "shipped": 0, "received": 0}]})
        );
        let repeat = server.admin("DELETE", &format!("/v1/transfers/{id}"), None).await;
        assert_eq!((repeat.status, &repeat.body), (200, &cancelled.body));
        assert_eq!(q(&server, "TEE", "WH").await, (6, 0, 0, 6));

        // Refused creates change nothing.
        let short = server
            .admin(
                "POST",
                "/v1/transfers",
                Some(json!({"from": "WH", "to": "S1",
                "lines": [{"sku": "TEE", "qty": 100}, {"sku": "CAP", "qty": 3}]})),
            )
            .await;
        assert_eq!((short.status, short.code()), (409, "insufficient_stock"), "{short:?}");
        assert_eq!(
            short.body["shortfalls"],
            json!([{"sku": "TEE", "location": "WH", "requested": 100, "available": 6}]),
            "CAP has its 3"
        );
        for (bad, status, code) in [
            (json!({"from": "WH", "to": "WH", "lines": [{"sku": "TEE", "qty": 1}]}), 422, "invalid_request"),
            (json!({"from": "WH", "to": "S1", "lines": [{"sku": "TEE", "qty": -1}]}), 422, "invalid_request"),
            (json!({"from": "WH", "to": "S1", "lines": []}), 422, "invalid_request"),
            (json!({"from": "WH", "to": "NOWHERE", "lines": [{"sku": "TEE", "qty": 1}]}), 404, "not_found"),
            (json!({"from": "WH", "to": "S1", "lines": [{"sku": "HAT", "qty": 1}]}), 404, "not_found"),
            (
                json!({"from": "WH", "to": "S1", "lines": [{"sku": "TEE", "qty": 1}], "priority": 1}),
                400,
                "invalid_request",
            ),
        ] {
            let refused = server.admin("POST", "/v1/transfers", Some(bad.clone())).await;
            assert_eq!((refused.status, refused.code()), (status, code), "{bad}: {refused:?}");
        }
        assert_eq!(q(&server, "TEE", "WH").await, (6, 0, 0, 6));
        for (method, path) in [
            ("GET", "/v1/transfers/999"),
            ("GET", "/v1/transfers/abc"),
            ("POST", "/v1/transfers/999/ship"),
            ("POST", "/v1/transfers/999/receive"),
            ("DELETE", "/v1/transfers/999"),
        ] {
            let missing = server.admin(method, path, None).await;
            assert_eq!((missing.status, missing.code()), (404, "not_found"), "{method} {path}: {missing:?}");
        }

        // Roles: writes are admin-only; a POS token reads transfers from or to its store.
        let ops = token(&server, json!({"name": "grafana", "role": "ops"})).await;
        let web = token(&server, json!({"name": "shop", "role": "channel", "channel": "web"})).await;
        let till_s1 = token(&server, json!({"name": "till-s1", "role": "pos", "location": "S1"})).await;
        let till_s2 = token(&server, json!({"name": "till-s2", "role": "pos", "location": "S2"})).await;
        let create = json!({"from": "WH", "to": "S1", "lines": [{"sku": "TEE", "qty": 1}]});
        for (method, path, who, body, status) in [
            ("POST", "/v1/transfers", &ops, Some(create.clone()), 403),
            ("POST", "/v1/transfers", &till_s1, Some(create), 403),
            ("POST", "/v1/transfers/1/receive", &till_s1, None, 403),
            ("DELETE", "/v1/transfers/1", &web, None, 403),
            ("GET", "/v1/transfers/1", &web, None, 403),
            ("GET", "/v1/transfers/1", &till_s2, None, 403),
            ("GET", "/v1/transfers/1", &till_s1, None, 200),
            ("GET", "/v1/transfers/1", &ops, None, 200),
        ] {
            let answer = server.call(method, path, who, body).await;
            assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
            if status == 403 {
                assert_eq!(answer.code(), "forbidden");
            }
        }

        // The audit trail has every step at the destination, with the transfer as reason.
        let mut trail = Vec::new();
        for _ in 0..50 {
            let page = server.admin("GET", "/v1/stock/movements?sku=TEE&location=S1", None).await;
            trail = page.body["items"].as_array().cloned().unwrap_or_default();
            if trail.len() >= 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let steps: Vec<(&str, i64, i64, &str)> = trail
            .iter()
            .map(|m| {
                let reason = m["reason"].as_str().unwrap_or_default();
                (
                    m["command"].as_str().unwrap_or_default(),
                    m["on_hand"].as_i64().unwrap_or(0),
                    m["incoming"].as_i64().unwrap_or(0),
                    reason,
                )
            })
            .filter(|step| step.0.starts_with("transfer_"))
            .collect();
        assert_eq!(
            steps,
            [
                ("transfer_ship", 0, 4, "transfer 1"),
                ("transfer_receive", 1, -1, "transfer 1"),
                ("transfer_receive", 3, -3, "transfer 1")
            ]
        );
    });
}

#[test]
fn replenishment_approval_and_suggestions() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        build(&server, &[("TEE", "WH", 50, None), ("TEE", "S2", 8, None), ("TEE", "S1", 2, None)]).await;
        let policy =
            server.admin("PATCH", "/v1/stock/TEE/S1", Some(json!({"reorder_point": 10, "reorder_qty": 4}))).await;
        assert_eq!(policy.status, 200, "{policy:?}");

        let suggested = server.admin("GET", "/v1/replenishments/suggestions?location=S1", None).await;
        assert_eq!(suggested.status, 200, "{suggested:?}");
        let distance = suggested.body["items"][0]["source"]["distance_km"].as_f64().expect("distance");
        assert!((distance - 9.0).abs() < 3.0, "WH is about 9 km from S1: {distance}");
        assert_eq!(
            suggested.body,
            json!({"items": [{"sku": "TEE", "location": "S1", "available": 2, "incoming": 0, "on_order": 0,
                              "reorder_point": 10, "reorder_qty": 4, "suggested_qty": 8,
                              "source": {"location": "WH", "available": 50, "distance_km": distance}}]}),
            "both WH and S2 have all 8: the most available wins"
        );

        let asked = server
            .admin("POST", "/v1/replenishments", Some(json!({"location": "S1", "lines": [{"sku": "TEE", "qty": 8}]})))
            .await;
        assert_eq!(asked.status, 201, "{asked:?}");
        assert_eq!(
            timeless(&asked, &["created_at"]),
            json!({"id": "1", "status": "requested", "location": "S1", "lines": [{"sku": "TEE", "qty": 8}]})
        );
        assert_eq!(server.admin("GET", "/v1/replenishments/1", None).await.body, asked.body);
        let suggested = server.admin("GET", "/v1/replenishments/suggestions?location=S1", None).await;
        assert_eq!(suggested.body, json!({"items": []}), "the open request covers it");
        assert_eq!(q(&server, "TEE", "WH").await, (50, 0, 0, 50), "a request holds nothing");

        let approved = server.admin("POST", "/v1/replenishments/1/approve", None).await;
        assert_eq!(approved.status, 200, "{approved:?}");
        assert_eq!(
            timeless(&approved, &["created_at", "decided_at"]),
            json!({"id": "1", "status": "approved", "location": "S1", "from": "WH", "transfer_id": "1",
                   "lines": [{"sku": "TEE", "qty": 8}]})
        );
        let transfer = server.admin("GET", "/v1/transfers/1", None).await;
        assert_eq!(
            timeless(&transfer, &["created_at"]),
            json!({"id": "1", "status": "held", "from": "WH", "to": "S1", "note": "replenishment 1",
                   "replenishment_id": "1", "lines": [{"sku": "TEE", "qty": 8, "shipped": 0, "received": 0}]})
        );
        assert_eq!(q(&server, "TEE", "WH").await, (50, 8, 0, 42));
        let again = server.admin("POST", "/v1/replenishments/1/approve", Some(json!({}))).await;
        assert_eq!((again.status, again.code()), (409, "conflict"));

        // Short everywhere: 409, and the request stays requested until rejected.
        let big = server
            .admin(
                "POST",
                "/v1/replenishments",
                Some(json!({"location": "S1", "from": "S2",
                "lines": [{"sku": "TEE", "qty": 1000}], "note": "opening"})),
            )
            .await;
        assert_eq!((big.status, big.body["from"].as_str()), (201, Some("S2")), "{big:?}");
        let short = server.admin("POST", "/v1/replenishments/2/approve", Some(json!({"from": "WH"}))).await;
        assert_eq!((short.status, short.code()), (409, "insufficient_stock"), "{short:?}");
        assert_eq!(
            short.body["shortfalls"],
            json!([{"sku": "TEE", "location": "WH", "requested": 1000, "available": 42}])
        );
        assert_eq!(server.admin("GET", "/v1/replenishments/2", None).await.body["status"], "requested");
        let same = server.admin("POST", "/v1/replenishments/2/approve", Some(json!({"from": "S1"}))).await;
        assert_eq!((same.status, same.code()), (409, "conflict"), "{same:?}");
        let rejected = server.admin("POST", "/v1/replenishments/2/reject", Some(json!({"reason": "too many"}))).await;
        assert_eq!(
            timeless(&rejected, &["created_at", "decided_at"]),
            json!({"id": "2", "status": "rejected", "location": "S1", "from": "S2", "note": "opening",
                   "reason": "too many", "lines": [{"sku": "TEE", "qty": 1000}]})
        );
        let repeat = server.admin("POST", "/v1/replenishments/2/reject", None).await;
        assert_eq!((repeat.status, &repeat.body), (200, &rejected.body));
        let late = server.admin("POST", "/v1/replenishments/2/approve", None).await;
        assert_eq!((late.status, late.code()), (409, "conflict"));

        for (method, path, body, status, code) in [
            (
                "POST",
                "/v1/replenishments",
                json!({"location": "S1", "from": "S1", "lines": [{"sku": "TEE", "qty": 1}]}),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/replenishments",
                json!({"location": "S1", "lines": [{"sku": "TEE", "qty": 0}]}),
                422,
                "invalid_request",
            ),
            (
                "POST",
                "/v1/replenishments",
                json!({"location": "NOWHERE", "lines": [{"sku": "TEE", "qty": 1}]}),
                404,
                "not_found",
            ),
            ("POST", "/v1/replenishments/77/approve", json!({}), 404, "not_found"),
            ("POST", "/v1/replenishments/77/reject", json!({}), 404, "not_found"),
        ] {
            let refused = server.admin(method, path, Some(body.clone())).await;
            assert_eq!((refused.status, refused.code()), (status, code), "{path} {body}: {refused:?}");
        }

        // Every location, paged; bad parameters; POS tokens see their own store's only.
        server.admin("PATCH", "/v1/stock/TEE/S2", Some(json!({"reorder_point": 20, "reorder_qty": 1}))).await;
        server.admin("PATCH", "/v1/stock/CAP/WH", Some(json!({"reorder_point": 3, "reorder_qty": 3}))).await;
        let first = server.admin("GET", "/v1/replenishments/suggestions?limit=1", None).await;
        assert_eq!(first.body["items"][0]["location"], "S2", "{first:?}");
        assert_eq!(first.body["items"][0]["suggested_qty"], 12);
        let cursor = first.body["next_cursor"].as_str().expect("a next page").to_owned();
        let second =
            server.admin("GET", &format!("/v1/replenishments/suggestions?limit=1&cursor={cursor}"), None).await;
        assert_eq!(
            (second.body["items"][0]["location"].as_str(), second.body["items"][0]["sku"].as_str()),
            (Some("WH"), Some("CAP")),
            "{second:?}"
        );
        assert!(second.body.get("next_cursor").is_none(), "{second:?}");
        assert!(second.body["items"][0].get("source").is_none(), "nobody else has caps");
        for query in ["limit=0", "limit=5000", "cursor=zz", "color=red"] {
            let bad = server.admin("GET", &format!("/v1/replenishments/suggestions?{query}"), None).await;
            assert_eq!((bad.status, bad.code()), (422, "invalid_request"), "{query}: {bad:?}");
        }
        let unknown = server.admin("GET", "/v1/replenishments/suggestions?location=NOWHERE", None).await;
        assert_eq!(unknown.status, 404);
        let till = token(&server, json!({"name": "till-s2", "role": "pos", "location": "S2"})).await;
        let own = server.call("GET", "/v1/replenishments/suggestions", &till, None).await;
        assert_eq!((own.status, own.body["items"].as_array().map(Vec::len)), (200, Some(1)), "{own:?}");
        let other = server.call("GET", "/v1/replenishments/suggestions?location=S1", &till, None).await;
        assert_eq!((other.status, other.code()), (403, "forbidden"));
        let request = json!({"location": "S2", "lines": [{"sku": "TEE", "qty": 1}]});
        let refused = server.call("POST", "/v1/replenishments", &till, Some(request)).await;
        assert_eq!(refused.status, 403, "{refused:?}");
        assert_eq!(server.call("GET", "/v1/replenishments/2", &till, None).await.status, 200, "from S2");
        assert_eq!(server.call("GET", "/v1/replenishments/1", &till, None).await.status, 403);
    });
}
