//! `POST /v1/ops/snapshot`: admin only; answers the LSN the image covers, its size and how long
//! it took; the state it captured (and the log after it) survive kill -9 and a restart. (A
//! read-only engine takes no snapshot: `http_readonly`.)

use serde_json::{json, Value};

use crate::support::{runtime, Server, ADMIN};

const LOC: &str = "OPS-LOC";
const SKU: &str = "OPS-SKU";

fn hold(qty: u32) -> Value {
    json!({"channel": "web", "ttl_seconds": 86_400, "lines": [{"sku": SKU, "qty": qty, "location": LOC}]})
}

#[test]
fn snapshot_is_admin_only_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        // Three writes (location, SKU, receipt) and two holds.
        server.seed(LOC, SKU, 20).await;
        let mut held = Vec::new();
        for qty in [2, 3] {
            let made = server.admin("POST", "/v1/reservations", Some(hold(qty))).await;
            assert_eq!(made.status, 201, "{made:?}");
            held.push(made.body["id"].as_str().expect("id").to_owned());
        }
        let writes = 5;

        let token = |body: Value| {
            let server = &server;
            async move {
                let made = server.admin("POST", "/v1/tokens", Some(body)).await;
                assert_eq!(made.status, 201, "{made:?}");
                made.body["secret"].as_str().expect("secret").to_owned()
            }
        };
        let ops = token(json!({"name": "grafana", "role": "ops"})).await;
        let web = token(json!({"name": "shop", "role": "channel", "channel": "web"})).await;
        for (who, secret) in [("ops", ops.as_str()), ("channel", web.as_str())] {
            let refused = server.raw("POST", "/v1/ops/snapshot", Some(secret), None).await;
            assert_eq!((refused.status, refused.code()), (403, "forbidden"), "{who}: {refused:?}");
        }
        let anonymous = server.raw("POST", "/v1/ops/snapshot", None, None).await;
        assert_eq!((anonymous.status, anonymous.code()), (401, "unauthorized"), "{anonymous:?}");
        let junk = server.admin("POST", "/v1/ops/snapshot", Some(json!({"now": true}))).await;
        assert_eq!((junk.status, junk.code()), (400, "invalid_request"), "{junk:?}");

        let taken = server.raw("POST", "/v1/ops/snapshot", Some(ADMIN), None).await;
        assert_eq!(taken.status, 200, "{taken:?}");
        let mut fields: Vec<&str> = taken.body.as_object().expect("an object").keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["bytes", "lsn", "millis"], "{taken:?}");
        let lsn = taken.body["lsn"].as_u64().expect("lsn");
        assert!(lsn >= writes, "the snapshot covers every write made before it: {taken:?}");
        assert!(taken.body["bytes"].as_u64().expect("bytes") > 0, "{taken:?}");
        assert!(taken.body["millis"].is_u64(), "{taken:?}");
        // `{}` is an empty body too.
        let again = server.admin("POST", "/v1/ops/snapshot", Some(json!({}))).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert!(again.body["lsn"].as_u64().expect("lsn") >= lsn);

        // One write after the snapshot: recovery needs the image and the log after it.
        let receipt =
            server.admin("POST", "/v1/stock/receive", Some(json!({"location": LOC, "sku": SKU, "qty": 4}))).await;
        assert_eq!(receipt.status, 200, "{receipt:?}");
        let cell_before = server.cell(SKU, LOC).await;
        assert_eq!((cell_before["on_hand"].as_i64(), cell_before["reserved"].as_i64()), (Some(24), Some(5)));

        server.signal(nix::sys::signal::Signal::SIGKILL);
        drop(server);
        let server = Server::start(dir.path());
        assert_eq!(server.cell(SKU, LOC).await, cell_before, "the cell after the restart");
        for (id, qty) in held.iter().zip([2, 3]) {
            let got = server.admin("GET", &format!("/v1/reservations/{id}"), None).await;
            assert_eq!((got.status, got.body["status"].as_str()), (200, Some("active")), "{got:?}");
            assert_eq!(got.body["lines"][0]["qty"], qty);
        }
        let sku = server.call("GET", &format!("/v1/skus/{SKU}"), &ops, None).await;
        assert_eq!(sku.status, 200, "{sku:?}");
        let later = server.admin("POST", "/v1/ops/snapshot", None).await;
        assert_eq!(later.status, 200, "{later:?}");
        assert!(later.body["lsn"].as_u64().expect("lsn") > lsn, "the receipt after the first snapshot: {later:?}");
    });
}
