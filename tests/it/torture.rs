//! Torture: the real server with `fsync` durability, mixed traffic over HTTP (receipts with
//! keys, reservations committed or released, flash-sale claims by distinct customers,
//! transfers created and shipped), killed with SIGKILL at a random moment, restarted, round
//! after round on the same data. After each restart:
//! - every acknowledged write is there: a retried receipt key replays (on_hand unchanged),
//!   every acknowledged reservation, claim and transfer reads back at or past its last
//!   acknowledged status;
//! - nothing is oversold: no cell has `oversold > 0`, and the flash sale's
//!   `sold + held + remaining == quantity` with no more claims than units.
//!
//! `AISLE_TORTURE_ROUNDS` sets the rounds (default 4, so every test run exercises it; the
//! 100-round figures in BENCHMARKS.md come from `AISLE_TORTURE_ROUNDS=100`). Each round
//! prints one line of figures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{runtime, Server, ADMIN};

const LOCS: [&str; 2] = ["HK-CWB", "HK-WH"];
const SKUS: [&str; 2] = ["TEE-M", "SNKR"];
const SALE_UNITS: u64 = 100_000;

/// What the clients were told, durably: the last acknowledged status of each thing.
#[derive(Default)]
struct Acked {
    /// Receipts' idempotency keys.
    receipts: Vec<String>,
    /// Reservation id → last acknowledged status.
    reservations: BTreeMap<String, &'static str>,
    claims: Vec<String>,
    /// Transfer id → last acknowledged status.
    transfers: BTreeMap<String, &'static str>,
    /// Writes refused or unanswered (the kill).
    unanswered: u64,
}

/// One call that never panics: `None` when the server did not answer (it was killed).
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> Option<(u16, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let mut request = client.request(method, format!("{base}{path}")).bearer_auth(ADMIN).json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, body))
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One client: a loop of mixed writes until the server stops answering.
async fn client(base: String, worker: u64, round: usize, acked: Arc<Mutex<Acked>>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ ((worker + 1) * 0x1000_0001) ^ round as u64;
    let mut step = 0u64;
    loop {
        step += 1;
        let pick = xorshift(&mut seed);
        let (sku, loc) = (SKUS[(pick % 2) as usize], LOCS[((pick >> 1) % 2) as usize]);
        let answered = match pick % 10 {
            0..=2 => {
                let key = format!("r{round}-w{worker}-{step}");
                let body = json!({"location": loc, "sku": sku, "qty": 1 + pick % 3});
                let answer = call(&client, &base, "POST", "/v1/stock/receive", body, Some(&key)).await;
                if matches!(answer, Some((200, _))) {
                    acked.lock().expect("ledger").receipts.push(key);
                }
                answer
            }
            3..=5 => {
                // A day to live: none expires (and is pruned once finished) during the run.
                let line = json!({"sku": sku, "qty": 1 + pick % 2, "location": loc});
                let body = json!({"channel": "web", "lines": [line], "ttl_seconds": 86_400});
                let answer = call(&client, &base, "POST", "/v1/reservations", body, None).await;
                if let Some((201, view)) = &answer {
                    let id = view["id"].as_str().unwrap_or_default().to_owned();
                    acked.lock().expect("ledger").reservations.insert(id.clone(), "active");
                    let (path, next) = match (pick >> 8) % 3 {
                        0 => (format!("/v1/reservations/{id}/commit"), "committed"),
                        1 => (format!("/v1/reservations/{id}"), "released"),
                        _ => (String::new(), "active"),
                    };
                    if !path.is_empty() {
                        let method = if next == "released" { "DELETE" } else { "POST" };
                        match call(&client, &base, method, &path, json!({}), None).await {
                            Some((200, _)) => {
                                acked.lock().expect("ledger").reservations.insert(id, next);
                            }
                            None => {
                                // Killed mid-call: the step may or may not have happened.
                                let maybe = if next == "released" { "active, maybe released" } else { "active" };
                                acked.lock().expect("ledger").reservations.insert(id, maybe);
                                return;
                            }
                            _ => {}
                        }
                    }
                }
                answer
            }
            6..=7 => {
                let customer = format!("c-{round}-{worker}-{step}");
                let answer =
                    call(&client, &base, "POST", "/v1/flash-sales/DROP/claims", json!({"customer": customer}), None)
                        .await;
                if let Some((201, view)) = &answer {
                    acked
                        .lock()
                        .expect("ledger")
                        .claims
                        .push(view["reservation_id"].as_str().unwrap_or_default().to_owned());
                }
                answer
            }
            _ => {
                let (from, to) = if pick & 4 == 0 { (LOCS[0], LOCS[1]) } else { (LOCS[1], LOCS[0]) };
                let body = json!({"from": from, "to": to, "lines": [{"sku": sku, "qty": 1}]});
                let answer = call(&client, &base, "POST", "/v1/transfers", body, None).await;
                if let Some((201, view)) = &answer {
                    let id = view["id"].as_str().unwrap_or_default().to_owned();
                    acked.lock().expect("ledger").transfers.insert(id.clone(), "held");
                    if pick & 8 == 0 {
                        match call(&client, &base, "POST", &format!("/v1/transfers/{id}/ship"), json!({}), None).await {
                            Some((200, _)) => {
                                acked.lock().expect("ledger").transfers.insert(id, "shipped");
                            }
                            None => return,
                            _ => {}
                        }
                    }
                }
                answer
            }
        };
        match answered {
            None => {
                acked.lock().expect("ledger").unanswered += 1;
                return;
            }
            Some((status, body)) if status >= 500 && status != 503 => panic!("a {status}: {body}"),
            Some(_) => {}
        }
    }
}

/// Where a status may have gone since it was acknowledged (expiry, the sale's hold time).
fn reached(acked: &str, now: &str) -> bool {
    match acked {
        "active" | "active, maybe released" => {
            matches!(now, "active" | "committed" | "fulfilled" | "released" | "expired" | "cancelled")
        }
        "committed" => matches!(now, "committed" | "fulfilled" | "cancelled"),
        "held" => matches!(now, "held" | "shipped" | "partially_received" | "received" | "cancelled"),
        "shipped" => matches!(now, "shipped" | "partially_received" | "received"),
        other => now == other,
    }
}

#[test]
fn torture_kill_9_under_mixed_traffic_loses_nothing_and_oversells_nothing() {
    let rounds: usize = std::env::var("AISLE_TORTURE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().expect("tempdir");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    runtime().block_on(async {
        let server = Server::start(dir.path());
        for sku in SKUS {
            for loc in LOCS {
                server.seed(loc, sku, 1000).await;
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let at = |d: time::Duration| (now + d).format(&time::format_description::well_known::Rfc3339).expect("time");
        let sale = json!({"sku": "SNKR", "quantity": SALE_UNITS, "starts_at": at(-time::Duration::hours(1)),
                          "ends_at": at(time::Duration::days(2)), "hold_seconds": 3600});
        server
            .admin("POST", "/v1/stock/receive", Some(json!({"location": "HK-WH", "sku": "SNKR", "qty": SALE_UNITS})))
            .await;
        let put = server.admin("PUT", "/v1/flash-sales/DROP", Some(sale)).await;
        assert_eq!(put.status, 201, "{put:?}");
        drop(server);
    });
    println!("round  kill_ms  receipts  holds  claims  transfers  unanswered  start_ms");
    for round in 0..rounds {
        let run_for = Duration::from_millis(200 + xorshift(&mut seed) % 1300);
        runtime().block_on(async {
            let started = Instant::now();
            let server = Server::start(dir.path());
            let recovery = started.elapsed();
            let before = {
                let ledger = acked.lock().expect("ledger");
                let counts = (ledger.receipts.len(), ledger.reservations.len(), ledger.claims.len());
                (counts.0, counts.1, counts.2, ledger.transfers.len(), ledger.unanswered)
            };
            check(&server, &acked).await;
            let clients: Vec<_> =
                (0..6).map(|w| tokio::spawn(client(server.base.clone(), w, round, acked.clone()))).collect();
            tokio::time::sleep(run_for).await;
            server.signal(nix::sys::signal::Signal::SIGKILL);
            for client in clients {
                client.await.expect("a client task");
            }
            drop(server);
            let ledger = acked.lock().expect("ledger");
            println!(
                "{round:>5}  {:>7}  {:>8}  {:>5}  {:>6}  {:>9}  {:>10}  {:>8}",
                run_for.as_millis(),
                ledger.receipts.len() - before.0,
                ledger.reservations.len() - before.1,
                ledger.claims.len() - before.2,
                ledger.transfers.len() - before.3,
                ledger.unanswered - before.4,
                recovery.as_millis()
            );
        });
    }
    runtime().block_on(async {
        let server = Server::start(dir.path());
        check(&server, &acked).await;
    });
}

/// Every acknowledged write is there, and nothing is oversold.
async fn check(server: &Server, acked: &Mutex<Acked>) {
    let (receipts, reservations, claims, transfers) = {
        let ledger = acked.lock().expect("ledger");
        (ledger.receipts.clone(), ledger.reservations.clone(), ledger.claims.clone(), ledger.transfers.clone())
    };
    let on_hand = |stock: &Value| -> Vec<i64> {
        stock["locations"]
            .as_array()
            .map(|cells| cells.iter().map(|c| c["on_hand"].as_i64().unwrap_or(-1)).collect())
            .unwrap_or_default()
    };
    let mut before = Vec::new();
    for sku in SKUS {
        let stock = server.admin("GET", &format!("/v1/stock/{sku}"), None).await;
        assert_eq!(stock.status, 200, "{stock:?}");
        for cell in stock.body["locations"].as_array().expect("cells") {
            assert_eq!(cell["oversold"], 0, "oversold: {cell}");
        }
        before.push(on_hand(&stock.body));
    }
    // An acknowledged receipt's key survived: sent again with another body it is refused as
    // reused (422); a lost key would run the request and receive 999 more units.
    for key in receipts.iter().step_by(7) {
        let body = json!({"location": LOCS[0], "sku": SKUS[0], "qty": 999}).to_string().into_bytes();
        let answer =
            server.raw_with("POST", "/v1/stock/receive", Some(ADMIN), Some(body), &[("idempotency-key", key)]).await;
        assert_eq!(answer.status, 422, "acknowledged receipt {key} was lost: {answer:?}");
    }
    let mut after = Vec::new();
    for sku in SKUS {
        after.push(on_hand(&server.admin("GET", &format!("/v1/stock/{sku}"), None).await.body));
    }
    assert_eq!(before, after, "probing receipt keys changed stock");
    for (id, status) in &reservations {
        let got = server.admin("GET", &format!("/v1/reservations/{id}"), None).await;
        // A released one is finished: kept for an hour, but the oldest go first once a
        // shard holds FINISHED_RESERVATIONS_PER_SHARD_MAX of them (a logged prune).
        if got.status == 404 && status.ends_with("released") {
            continue;
        }
        assert_eq!(got.status, 200, "acknowledged reservation {id} ({status}) is gone: {got:?}");
        let now = got.body["status"].as_str().unwrap_or_default();
        assert!(reached(status, now), "reservation {id} acknowledged {status}, now {now}");
    }
    for id in &claims {
        let got = server.admin("GET", &format!("/v1/reservations/{id}"), None).await;
        assert_eq!((got.status, &got.body["flash_sale"]), (200, &json!("DROP")), "acknowledged claim {id}: {got:?}");
    }
    for (id, status) in &transfers {
        let got = server.admin("GET", &format!("/v1/transfers/{id}"), None).await;
        assert_eq!(got.status, 200, "acknowledged transfer {id} is gone: {got:?}");
        let now = got.body["status"].as_str().unwrap_or_default();
        assert!(reached(status, now), "transfer {id} acknowledged {status}, now {now}");
    }
    let sale = server.admin("GET", "/v1/flash-sales/DROP", None).await.body;
    let (quantity, sold, held, remaining) =
        (sale["quantity"].as_u64(), sale["sold"].as_u64(), sale["held"].as_u64(), sale["remaining"].as_u64());
    assert_eq!(quantity, Some(SALE_UNITS), "{sale}");
    assert_eq!(sold.unwrap_or(0) + held.unwrap_or(0) + remaining.unwrap_or(0), SALE_UNITS, "{sale}");
    assert!(claims.len() as u64 <= SALE_UNITS, "more claims than units");
}
