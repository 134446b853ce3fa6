//! `POST /v1/stock/import` through the real binary: the exact report of a mixed import (bad
//! JSON, unknown field, invalid value, unknown SKU, blank and over-long lines), cells that show
//! exactly the applied lines, a body far past the 1 MiB limit of other routes, and roles.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::support::{runtime, Answer, Server, ADMIN};

const LOC: &str = "HK-IMP";
const OTHER: &str = "HK-TWO";

/// Posts `body` as NDJSON unless `headers` name another content type.
async fn import(server: &Server, token: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let mut request = server.client.post(format!("{}/v1/stock/import", server.base)).bearer_auth(token).body(body);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        request = request.header("content-type", "application/x-ndjson");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("a JSON answer");
    Answer { status, body, headers }
}

#[test]
fn mixed_import_reports_bad_lines_and_applies_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, "A", 0).await;
        server.seed(LOC, "B", 0).await;
        let overlong = format!(r#"{{"location":"{LOC}","sku":"A","qty":1,"reason":"{}"}}"#, "x".repeat(70_000));
        let lines = [
            json!({"op": "receive", "location": LOC, "sku": "A", "qty": 10, "unit_cost": 100}).to_string(),
            json!({"location": LOC, "sku": "B", "qty": 5}).to_string(),
            format!(r#"{{"location":"{LOC}","sku":"A","#),
            json!({"location": LOC, "sku": "A", "qty": 1, "colour": "red"}).to_string(),
            "   ".to_owned(),
            json!({"location": LOC, "sku": "A", "qty": -3}).to_string(),
            json!({"location": LOC, "sku": "NOPE", "qty": 1}).to_string(),
            json!({"location": LOC, "sku": "A", "delta": -2, "reason": "damage"}).to_string(),
            overlong,
            json!({"op": "adjust", "location": LOC, "sku": "B", "counted": 7, "reason": "count"}).to_string(),
            json!({"op": "receive", "location": LOC, "sku": "B", "qty": 1, "delta": 1}).to_string(),
            json!({"location": LOC, "sku": "A", "qty": 1, "lot": {"code": "L1", "expires_on": "2999-01-01"}})
                .to_string(),
        ];
        // CRLF line ends, and no end after the last line.
        let body = lines.join("\r\n").into_bytes();
        let answer = import(&server, ADMIN, body, &[]).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let report = &answer.body;
        assert_eq!(
            (&report["lines"], &report["applied"], &report["rejected"], &report["errors_truncated"]),
            (&json!(11), &json!(5), &json!(6), &json!(false)),
            "{report:#}"
        );
        let errors = report["errors"].as_array().expect("errors");
        let got: Vec<(u64, &str)> =
            errors.iter().map(|e| (e["line"].as_u64().expect("line"), e["code"].as_str().expect("code"))).collect();
        assert_eq!(
            got,
            [
                (3, "invalid_request"),
                (4, "invalid_request"),
                (6, "invalid_request"),
                (7, "not_found"),
                (9, "payload_too_large"),
                (11, "invalid_request"),
            ],
            "{report:#}"
        );
        let message = |i: usize| errors[i]["message"].as_str().expect("message").to_owned();
        assert!(message(1).contains("colour"), "{}", message(1));
        assert!(message(2).starts_with("qty:"), "{}", message(2));
        assert!(message(3).contains("NOPE"), "{}", message(3));
        assert!(message(5).contains("delta"), "{}", message(5));

        let a = server.cell("A", LOC).await;
        assert_eq!((a["on_hand"].as_i64(), a["lots"][0]["qty"].as_i64()), (Some(9), Some(1)), "{a:#}");
        assert_eq!(server.cell("B", LOC).await["on_hand"], 7);
        // Every applied line is one movement in the trail, indexed a few milliseconds later.
        let path = format!("/v1/stock/movements?location={LOC}&limit=1000");
        let mut trail = server.admin("GET", &path, None).await;
        for _ in 0..100 {
            if trail.body["items"].as_array().is_some_and(|items| items.len() >= 5) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            trail = server.admin("GET", &path, None).await;
        }
        assert_eq!(trail.body["items"].as_array().map(Vec::len), Some(5), "{:#}", trail.body);

        // An empty body is an empty report; an Idempotency-Key is refused (imports add up).
        let empty = import(&server, ADMIN, Vec::new(), &[]).await;
        assert_eq!((empty.status, &empty.body["lines"]), (200, &json!(0)), "{empty:?}");
        let keyed = import(&server, ADMIN, b"{}\n".to_vec(), &[("idempotency-key", "k-1")]).await;
        assert_eq!((keyed.status, keyed.code()), (400, "invalid_request"), "{keyed:?}");
        let csv = import(&server, ADMIN, b"a,b\n".to_vec(), &[("content-type", "text/csv")]).await;
        assert_eq!(csv.status, 400, "{csv:?}");
        assert_eq!(server.cell("A", LOC).await["on_hand"], 9, "refused imports change nothing");
    });
}

#[test]
fn a_body_far_past_the_body_limit_is_streamed() {
    const LINES: usize = 50_000;
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, "A", 0).await;
        server.seed(OTHER, "B", 0).await;
        let mut body = String::new();
        for i in 0..LINES {
            let line = match i % 4 {
                0 => format!(r#"{{"location":"{LOC}","sku":"A","qty":3,"unit_cost":250,"reason":"po-{i}"}}"#),
                1 => format!(r#"{{"op":"receive","location":"{OTHER}","sku":"B","qty":2,"reason":"po-{i}"}}"#),
                2 => format!(r#"{{"location":"{LOC}","sku":"A","delta":-1,"reason":"damage","note":"line {i}"}}"#),
                _ => format!(r#"{{"location":"{OTHER}","sku":"NOPE","qty":1,"reason":"po-{i}"}}"#),
            };
            writeln!(body, "{line}").expect("write to a string");
        }
        assert!(body.len() > 3 << 20, "well past the 1 MiB limit: {} bytes", body.len());
        let answer = import(&server, ADMIN, body.into_bytes(), &[]).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let quarter = LINES as u64 / 4;
        let report = &answer.body;
        assert_eq!(
            (&report["lines"], &report["applied"], &report["rejected"], &report["errors_truncated"]),
            (&json!(LINES), &json!(3 * quarter), &json!(quarter), &json!(true)),
            "{}",
            report["errors"][0]
        );
        let errors = report["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1000, "the report lists the first 1000");
        assert_eq!((&errors[0]["line"], &errors[999]["line"]), (&json!(4), &json!(4000)));
        assert_eq!(server.cell("A", LOC).await["on_hand"].as_u64(), Some(2 * quarter));
        assert_eq!(server.cell("B", OTHER).await["on_hand"].as_u64(), Some(2 * quarter));

        // Applied means durable: after a restart the cells are the same.
        let status = server.terminate();
        assert!(status.success(), "{status:?}");
        let server = Server::start(dir.path());
        assert_eq!(server.cell("A", LOC).await["on_hand"].as_u64(), Some(2 * quarter));
    });
}

#[test]
fn only_admin_tokens_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, "A", 0).await;
        let line = format!(r#"{{"location":"{LOC}","sku":"A","qty":1}}"#).into_bytes();
        for token in [json!({"name": "till", "role": "pos", "location": LOC}), json!({"name": "g", "role": "ops"})] {
            let made = server.admin("POST", "/v1/tokens", Some(token)).await;
            assert_eq!(made.status, 201, "{made:?}");
            let secret = made.body["secret"].as_str().expect("secret");
            let answer = import(&server, secret, line.clone(), &[]).await;
            assert_eq!((answer.status, answer.code()), (403, "forbidden"), "{answer:?}");
        }
        let answer = import(&server, "not-a-token", line.clone(), &[]).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(server.cell("A", LOC).await["on_hand"], 0);
        assert_eq!(import(&server, ADMIN, line, &[]).await.body["applied"], 1);
    });
}

/// The 1M-line figure: 1,000 SKUs × 10 locations, nine receives to one adjust, fsync durability.
/// `cargo test --release -p aisle-tests --test it -- --ignored --nocapture import_a_million_lines`
#[test]
#[ignore = "a measurement (about 100 MB of NDJSON), not a check for every run"]
fn import_a_million_lines() {
    const LINES: usize = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        for l in 0..10 {
            let location = json!({"name": "w", "kind": "warehouse", "lat": 22.3, "lon": 114.2,
                                  "channels": ["web"], "pickup": false, "ships": true});
            let put = server.admin("PUT", &format!("/v1/locations/LOC-{l:02}"), Some(location)).await;
            assert_eq!(put.status, 201, "{put:?}");
        }
        for s in 0..1000 {
            let put = server.admin("PUT", &format!("/v1/skus/SKU-{s:04}"), Some(json!({"name": "s", "price": 100}))).await;
            assert_eq!(put.status, 201, "{put:?}");
        }
        let mut body = String::with_capacity(LINES * 100);
        for i in 0..LINES {
            // Ten lines per cell (nine receives, then an adjust), all 10,000 cells in turn.
            let cell = (i / 10) % 10_000;
            let (sku, loc) = (cell % 1000, cell / 1000);
            if i % 10 == 9 {
                writeln!(body, r#"{{"op":"adjust","location":"LOC-{loc:02}","sku":"SKU-{sku:04}","delta":-1,"reason":"damage"}}"#)
            } else {
                let qty = i % 50 + 1;
                writeln!(body, r#"{{"op":"receive","location":"LOC-{loc:02}","sku":"SKU-{sku:04}","qty":{qty},"unit_cost":250,"reason":"po-{}"}}"#, i / 1000)
            }
            .expect("write to a string");
        }
        let bytes = body.len();
        let started = std::time::Instant::now();
        let answer = import(&server, ADMIN, body.into_bytes(), &[]).await;
        let elapsed = started.elapsed();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!((&answer.body["applied"], &answer.body["rejected"]), (&json!(LINES), &json!(0)), "{:#}", answer.body);
        println!(
            "imported {LINES} lines ({bytes} bytes) in {elapsed:.2?}: applied {}, rejected {}",
            answer.body["applied"], answer.body["rejected"]
        );
    });
}
