//! Flash sales over HTTP: a stampede of distinct customers on one pool (exact winners, limits
//! honoured, counters adding up, the cell outside the pool untouched), claims that expire back
//! into the pool, a sale that ends and gives its remainder back to the cell, and kill -9 in
//! the middle of a stampede.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{runtime, Server, ADMIN};

const LOC: &str = "HK-TST";
const SKU: &str = "SNKR-42";
const CLIENTS: usize = 200;
const CUSTOMERS: usize = 20_000;
const POOL: u64 = 1_000;
/// Units in the cell that are not in the pool: no claim may touch them.
const OUTSIDE_POOL: u64 = 500;
/// The crash test's pool: large enough that it does not sell out before the kill.
const CRASH_POOL: u64 = 200_000;

/// Now plus `seconds`, as RFC 3339 UTC.
fn rfc3339_in(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time in range formats")
}

async fn put_sale(server: &Server, code: &str, quantity: u64, limit: u64, hold_seconds: u64, ends_in: i64) -> Value {
    let body = json!({"sku": SKU, "location": LOC, "quantity": quantity, "starts_at": rfc3339_in(-60),
                      "ends_at": rfc3339_in(ends_in), "per_customer_limit": limit, "hold_seconds": hold_seconds});
    let answer = server.admin("PUT", &format!("/v1/flash-sales/{code}"), Some(body)).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body
}

async fn sale(server: &Server, code: &str) -> Value {
    let answer = server.admin("GET", &format!("/v1/flash-sales/{code}"), None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let n = |field: &str| answer.body[field].as_u64().unwrap_or_else(|| panic!("{field} in {answer:?}"));
    assert_eq!(n("remaining") + n("held") + n("sold"), n("quantity"), "counters add up: {answer:?}");
    answer.body
}

fn n(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or_else(|| panic!("{field} in {value}"))
}

/// One claim as the test sends it: `(status, problem code, reservation id)`.
async fn claim(
    server: &Server,
    code: &str,
    customer: &str,
    qty: u64,
    key: Option<&str>,
) -> (u16, String, Option<String>) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    let body = serde_json::to_vec(&json!({"customer": customer, "qty": qty})).expect("json");
    loop {
        let answer = server
            .raw_with("POST", &format!("/v1/flash-sales/{code}/claims"), Some(ADMIN), Some(body.clone()), &headers)
            .await;
        if answer.status == 503 {
            // Back-pressure: the server asked for a retry; nothing was claimed.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let id = answer.body["reservation_id"].as_str().map(str::to_owned);
        return (answer.status, answer.code().to_owned(), id);
    }
}

/// Every customer claims once; every 10th retries its claim with the same Idempotency-Key and
/// must get the same answer; every 7th claims a second time as a new request.
/// Returns each winner's reservation ids.
async fn stampede(server: Arc<Server>, code: &'static str, qty: u64) -> HashMap<String, Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let won: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (server, next, won) = (server.clone(), next.clone(), won.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CUSTOMERS {
                    break;
                }
                let customer = format!("cust-{i:05}");
                let key = format!("claim-{code}-{i}");
                let first = claim(&server, code, &customer, qty, (i % 10 == 0).then_some(key.as_str())).await;
                assert!(
                    first.0 == 201 || (first.0 == 409 && (first.1 == "sold_out" || first.1 == "per_customer_limit")),
                    "{customer}: {first:?}"
                );
                let mut ids: Vec<String> = first.2.clone().into_iter().collect();
                assert_eq!(ids.len(), usize::from(first.0 == 201), "{customer}: {first:?}");
                if i % 10 == 0 {
                    let retry = claim(&server, code, &customer, qty, Some(&key)).await;
                    assert_eq!(retry, first, "{customer}: a retry with the same key answers the same");
                }
                if i % 7 == 0 {
                    let again = claim(&server, code, &customer, qty, None).await;
                    if let Some(id) = again.2.clone().filter(|_| again.0 == 201) {
                        ids.push(id);
                    } else {
                        assert_eq!(again.0, 409, "{customer}: {again:?}");
                    }
                }
                if !ids.is_empty() {
                    won.lock().expect("winners").insert(customer, ids);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let won = won.lock().expect("winners").clone();
    won
}

fn check_stampede(won: &HashMap<String, Vec<String>>, qty: u64, limit: u64) {
    let total: u64 = won.values().map(|ids| ids.len() as u64 * qty).sum();
    assert_eq!(total, POOL, "demand exceeds supply, so exactly the pool is claimed");
    if let Some((customer, ids)) = won.iter().find(|(_, ids)| ids.len() as u64 * qty > limit) {
        panic!("{customer} won {ids:?} of {qty} units each, over the limit of {limit}");
    }
}

async fn check_counters(server: &Server, code: &str, held: u64, sold: u64, customers: usize) {
    let sale = sale(server, code).await;
    assert_eq!((n(&sale, "remaining"), n(&sale, "held"), n(&sale, "sold")), (POOL - held - sold, held, sold), "{sale}");
    assert_eq!(n(&sale, "customers"), customers as u64, "{sale}");
    let cell = server.cell(SKU, LOC).await;
    assert_eq!(n(&cell, "on_hand"), POOL + OUTSIDE_POOL, "{cell}");
    assert_eq!(n(&cell, "reserved"), POOL - sold, "the pool and the held claims are reserved: {cell}");
    assert_eq!(n(&cell, "committed"), sold, "{cell}");
    assert_eq!(n(&cell, "available"), OUTSIDE_POOL, "the cell outside the pool is untouched: {cell}");
}

fn run_stampede(code: &'static str, limit: u64, qty: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Arc::new(Server::start(dir.path()));
        server.seed(LOC, SKU, (POOL + OUTSIDE_POOL) as u32).await;
        let created = put_sale(&server, code, POOL, limit, 600, 3600).await;
        assert_eq!((created["status"].as_str(), n(&created, "remaining")), (Some("active"), POOL), "{created}");
        let won = stampede(server.clone(), code, qty).await;
        check_stampede(&won, qty, limit);
        check_counters(&server, code, POOL, 0, won.len()).await;
        assert_eq!(sale(&server, code).await["status"], "sold_out");

        // Sold out answers at once, and a winner's order sells its claim.
        assert_eq!(claim(&server, code, "late-comer", 1, None).await.1, "sold_out");
        let metrics = server.raw("GET", "/metrics", None, None).await;
        let text = metrics.body.as_str().unwrap_or_default();
        assert!(text.contains(&format!("aisle_flash_sale_remaining{{sale=\"{code}\"}} 0")), "{text}");
        assert!(text.contains(&format!("aisle_flash_sale_claims_total{{outcome=\"claimed\",sale=\"{code}\"}}")));
        let id = won.values().next().and_then(|ids| ids.first()).expect("a winner").clone();
        let commit = server.admin("POST", &format!("/v1/reservations/{id}/commit"), Some(json!({}))).await;
        assert_eq!((commit.status, commit.body["flash_sale"].as_str()), (200, Some(code)), "{commit:?}");
        check_counters(&server, code, POOL - qty, qty, won.len()).await;
    });
}

#[test]
fn stampede_with_limit_one_sells_exactly_the_pool() {
    run_stampede("DROP-1", 1, 1);
}

#[test]
fn stampede_with_limit_two_and_claims_of_two() {
    run_stampede("DROP-2", 2, 2);
}

#[test]
fn expired_claims_return_to_the_pool_and_an_ended_sale_returns_to_the_cell() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start(dir.path());
        server.seed(LOC, SKU, 10).await;
        // Three units, holds of one second, ending in five to six seconds.
        put_sale(&server, "BLINK", 3, 1, 1, 6).await;
        let mut ids = Vec::new();
        for customer in ["a", "b", "c"] {
            let (status, code, id) = claim(&server, "BLINK", customer, 1, None).await;
            assert_eq!(status, 201, "{customer}: {code}");
            ids.push(id.expect("reservation id"));
        }
        assert_eq!(claim(&server, "BLINK", "d", 1, None).await.1, "sold_out");
        assert_eq!(claim(&server, "BLINK", "a", 1, None).await.1, "sold_out", "sold out is answered first");
        let commit = server.admin("POST", &format!("/v1/reservations/{}/commit", ids[0]), None).await;
        assert_eq!(commit.status, 200, "{commit:?}");

        // The two uncommitted holds expire back into the pool.
        let mut back = Value::Null;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            back = sale(&server, "BLINK").await;
            if n(&back, "held") == 0 {
                break;
            }
        }
        assert_eq!((n(&back, "remaining"), n(&back, "held"), n(&back, "sold")), (2, 0, 1), "{back}");
        let expired = server.admin("GET", &format!("/v1/reservations/{}", ids[1]), None).await;
        assert_eq!(expired.body["status"], "expired");
        assert_eq!(claim(&server, "BLINK", "a", 1, None).await.1, "per_customer_limit", "a bought one");
        let (status, code, _) = claim(&server, "BLINK", "b", 1, None).await;
        assert_eq!(status, 201, "b's hold expired, so b may claim again: {code}");
        let cell = server.cell(SKU, LOC).await;
        assert_eq!((n(&cell, "reserved"), n(&cell, "committed"), n(&cell, "available")), (2, 1, 7), "{cell}");

        // At ends_at the sale closes; the expiry sweep then gives the pool's unsold units back.
        let mut ended = Value::Null;
        let mut cell = Value::Null;
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ended = sale(&server, "BLINK").await;
            cell = server.cell(SKU, LOC).await;
            if ended["status"] == "ended" && n(&cell, "reserved") == 0 {
                break;
            }
        }
        assert_eq!((ended["status"].as_str(), n(&ended, "held")), (Some("ended"), 0), "{ended}");
        assert_eq!(claim(&server, "BLINK", "e", 1, None).await.1, "sale_not_active");
        assert_eq!((n(&cell, "reserved"), n(&cell, "committed"), n(&cell, "available")), (0, 1, 9), "{cell}");
    });
}

#[test]
fn acknowledged_claims_survive_kill_9_mid_stampede() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Arc::new(Server::start(dir.path()));
        server.seed(LOC, SKU, (CRASH_POOL + OUTSIDE_POOL) as u32).await;
        put_sale(&server, "CRASH", CRASH_POOL, 1, 3600, 3600).await;
        let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (server, acked, next) = (server.clone(), acked.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let customer = format!("crash-{}", next.fetch_add(1, Ordering::Relaxed));
                    let body = json!({"customer": customer});
                    let sent = server
                        .client
                        .post(format!("{}/v1/flash-sales/CRASH/claims", server.base))
                        .bearer_auth(ADMIN)
                        .json(&body)
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    if response.status().as_u16() != 201 {
                        continue;
                    }
                    let Ok(value) = response.json::<Value>().await else { break };
                    let id = value["reservation_id"].as_str().expect("reservation_id").to_owned();
                    acked.lock().expect("acked").push((id, customer));
                }
            }));
        }
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").subsec_nanos();
        tokio::time::sleep(Duration::from_millis(150 + u64::from(seed % 300))).await;
        server.signal(nix::sys::signal::Signal::SIGKILL);
        for task in tasks {
            task.await.expect("client task");
        }
        drop(server);
        let acked = acked.lock().expect("acked").clone();
        assert!(!acked.is_empty(), "some claims were acknowledged before the kill");

        let server = Server::start(dir.path());
        for (id, customer) in &acked {
            let answer = server.admin("GET", &format!("/v1/reservations/{id}"), None).await;
            assert_eq!(answer.status, 200, "claim {id} of {customer} lost: {answer:?}");
            assert_eq!(
                (answer.body["status"].as_str(), answer.body["customer"].as_str()),
                (Some("active"), Some(customer.as_str()))
            );
        }
        let after = sale(&server, "CRASH").await;
        let held = n(&after, "held");
        // Claims in flight at the kill may or may not be there, but whole.
        assert!(held >= acked.len() as u64 && held <= acked.len() as u64 + 32, "held {held}, acked {}", acked.len());
        assert_eq!(n(&after, "customers"), held, "limit 1: one unit per customer");
        let cell = server.cell(SKU, LOC).await;
        assert_eq!((n(&cell, "reserved"), n(&cell, "available")), (CRASH_POOL, OUTSIDE_POOL), "{cell}");
        // Claims go on after the restart; an acknowledged winner still may not claim again.
        let (winner, status) = (&acked[0].1, claim(&server, "CRASH", &acked[0].1, 1, None).await);
        assert_eq!(status.1, "per_customer_limit", "{winner}: {status:?}");
        assert_eq!(claim(&server, "CRASH", "after-restart", 1, None).await.0, 201);
        assert_eq!(n(&sale(&server, "CRASH").await, "held"), held + 1);
    });
}
