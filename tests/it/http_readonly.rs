//! An fsync failure, end to end: the server runs in-process on storage the test can make
//! fail; after the failure every write answers 503 `unavailable` with `Retry-After`, `/readyz`
//! says why, reads go on, and the acknowledged writes are the ones that survive.

use std::sync::Arc;

use aisle_engine::time::SystemClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Engine, EngineConfig, Storage};
use aisle_server::config::ServerConfig;
use serde_json::{json, Value};

const ADMIN: &str = "readonly-test-admin-secret-0123";

async fn call(client: &reqwest::Client, base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, format!("{base}{path}")).bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").is_some();
    let text = response.text().await.expect("body");
    let mut body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if retry_after {
        body["retry_after_header"] = json!(true);
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_turns_writes_into_503_and_readyz_false() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, wal, snapshots) = Storage::memory();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut config = ServerConfig::new(listener.local_addr().expect("address"), dir.path().into());
    config.admin_token = Some(ADMIN.into());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aisle_server::server::serve(config, storage, listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let location =
        json!({"name": "W", "kind": "warehouse", "lat": 0.0, "lon": 0.0, "channels": ["web"], "ships": true});
    assert_eq!(call(&client, &base, "PUT", "/v1/locations/W", Some(location)).await.0, 201);
    assert_eq!(call(&client, &base, "PUT", "/v1/skus/S", Some(json!({"name": "S", "price": 100}))).await.0, 201);
    let receive = json!({"location": "W", "sku": "S", "qty": 10});
    assert_eq!(call(&client, &base, "POST", "/v1/stock/receive", Some(receive)).await.0, 200);
    let hold = json!({"channel": "web", "lines": [{"sku": "S", "qty": 2, "location": "W"}]});
    let (status, first) = call(&client, &base, "POST", "/v1/reservations", Some(hold.clone())).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(client.get(format!("{base}/readyz")).send().await.expect("readyz").status(), 200);

    wal.fail_syncs(true);
    let (status, problem) = call(&client, &base, "POST", "/v1/reservations", Some(hold.clone())).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "unavailable");
    assert_eq!(problem["retry_after_header"], true);
    // Later writes are refused before they touch anything.
    let (status, problem) = call(&client, &base, "POST", "/v1/reservations", Some(hold)).await;
    assert_eq!((status, problem["code"].as_str()), (503, Some("unavailable")), "{problem}");
    let ready = client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.expect("body");
    assert!(reason.contains("wal-"), "readyz names the failed file: {reason}");
    let (status, cell) = call(&client, &base, "GET", "/v1/stock/S/W", None).await;
    assert_eq!(status, 200, "reads go on: {cell}");
    // Nor does it take a snapshot (POST /v1/ops/snapshot) ahead of a log it cannot sync.
    let (status, problem) = call(&client, &base, "POST", "/v1/ops/snapshot", None).await;
    assert_eq!((status, problem["code"].as_str()), (503, Some("unavailable")), "{problem}");
    assert_eq!(problem["retry_after_header"], true);

    let _ = stop.send(());
    let _ = server.await.expect("server task");
    // After a crash, only the acknowledged hold is there.
    wal.crash();
    wal.fail_syncs(false);
    let storage = Storage { wal: Arc::new(wal), snapshots: Arc::new(snapshots), documents: None };
    let config = EngineConfig::manual(Durability::Fsync, Arc::new(SystemClock));
    let (engine, _) = Engine::open(config, storage).expect("recovers");
    let id: u64 = first["id"].as_str().expect("id").parse().expect("decimal id");
    assert!(engine.reservation(id).is_some());
    assert_eq!(engine.cell("S", "W").expect("cell").reserved, 2);
}
