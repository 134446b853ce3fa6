//! Tests of the load-test tool itself, offline: the open-loop scheduler against a slow fake
//! server, and the oversell checks (unit level and through a whole run against a fake aisle
//! that oversells).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_loadtest::check::{check_cells, check_flash, CellClient, CellFinal, FlashClient, FlashFinal};
use aisle_loadtest::cli::{self, Args};
use aisle_loadtest::driver::{self, Load, LoadConfig, RunResult, Worker};
use aisle_loadtest::http::{Conn, Endpoint};
use aisle_loadtest::stats::Recorder;
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves HTTP/1.1 on a free loopback port; every request goes to `handle`.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(Method, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (StatusCode, String)> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handle = handle.clone();
                    async move {
                        let (status, body) = handle(req.method().clone(), req.uri().path().to_owned()).await;
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = status;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// A worker that GETs `/` once per step.
struct GetWorker {
    conn: Conn,
}

impl Worker for GetWorker {
    async fn step(&mut self, start: Instant, rec: &mut Recorder) {
        let sent = Instant::now();
        let outcome = match self.conn.send(Method::GET, "/", None).await {
            Ok(reply) => reply.outcome(),
            Err(e) => e.outcome(),
        };
        rec.record("get", &outcome, start, sent, Instant::now());
        rec.op_done();
    }
}

const SERVICE: Duration = Duration::from_millis(50);

/// Runs `workers` GET workers at `rate` per second for `secs` against a server that takes
/// 50 ms per request; returns the result and the number of requests the server saw.
async fn open_loop(rate: f64, workers: usize, secs: u64) -> (RunResult, u64) {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let addr = serve(move |_, _| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(SERVICE).await;
            (StatusCode::OK, "{}".to_owned())
        }
    })
    .await;
    let endpoint = Endpoint::new(&format!("http://{addr}"), None, Duration::from_secs(10)).expect("endpoint");
    let cfg = LoadConfig {
        load: Load::Open { rate },
        warmup: Duration::ZERO,
        duration: Duration::from_secs(secs),
        progress: false,
    };
    let workers = (0..workers).map(|_| GetWorker { conn: Conn::new(endpoint.clone()) }).collect();
    let result = driver::run(&cfg, workers).await;
    (result, seen.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate_against_a_slow_server() {
    // 100/s at 50 ms each needs 5 requests in flight; 20 workers are plenty.
    let (result, seen) = open_loop(100.0, 20, 2).await;
    let (_, all) = result.recorder.summarize(result.window);
    assert_eq!(result.scheduled, 200);
    assert!((185..=201).contains(&seen), "server saw {seen} requests, expected about 200");
    assert!((185..=200).contains(&all.requests), "recorded {} requests", all.requests);
    assert!(result.missed <= 15, "{} slots missed although workers were free", result.missed);
    // Keeping up: latency is about the service time.
    assert!(all.latency_ms.p50 >= 49.0, "p50 {} below the server's 50 ms", all.latency_ms.p50);
    assert!(all.latency_ms.p99 < 250.0, "p99 {} although the schedule was kept", all.latency_ms.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_queueing_to_latency_when_the_server_is_slower_than_the_schedule() {
    // Two workers at 50 ms serve 40/s; the schedule asks 100/s. Slot k is due at k×10 ms
    // but sent at about k×25 ms, so by the end requests wait well over a second.
    let (result, seen) = open_loop(100.0, 2, 2).await;
    let (_, all) = result.recorder.summarize(result.window);
    assert!(seen <= 90, "two workers cannot send {seen} requests of 50 ms in 2 s");
    assert!(result.missed >= 100, "only {} of 200 slots missed", result.missed);
    // Each request itself took about 50 ms ...
    assert!(all.service_ms.p99 < 200.0, "service p99 {}", all.service_ms.p99);
    // ... but counted from when it was due, the late ones waited much longer. Measured from
    // the actual send, this p99 would equal the service p99 and fail here.
    assert!(all.latency_ms.p99 > 700.0, "corrected p99 {} ms does not show the queue", all.latency_ms.p99);
    assert!(
        all.latency_ms.p99 > 5.0 * all.service_ms.p99,
        "corrected p99 {} vs service p99 {}",
        all.latency_ms.p99,
        all.service_ms.p99
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_runs_back_to_back() {
    let addr = serve(|_, _| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        (StatusCode::OK, "{}".to_owned())
    })
    .await;
    let endpoint = Endpoint::new(&format!("http://{addr}"), None, Duration::from_secs(10)).expect("endpoint");
    let cfg = LoadConfig {
        load: Load::Closed,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        progress: false,
    };
    let workers = (0..4).map(|_| GetWorker { conn: Conn::new(endpoint.clone()) }).collect();
    let result = driver::run(&cfg, workers).await;
    let (_, all) = result.recorder.summarize(result.window);
    // 4 workers × ~1 s / ~10-11 ms, warm-up excluded.
    assert!((200..=420).contains(&all.requests), "{} requests", all.requests);
    assert!(all.latency_ms.p50 >= 9.9, "p50 {}", all.latency_ms.p50);
}

fn sale(quantity: i64, remaining: i64, held: i64, sold: i64) -> FlashFinal {
    FlashFinal {
        quantity,
        remaining,
        held,
        sold,
        per_customer_limit: 1,
        status: Some("sold_out".into()),
        customer_units_max: None,
        customer_units_total: None,
    }
}

fn won(units: i64) -> FlashClient {
    FlashClient { won_units: units, unknown_units: 0, customer_units_max: 1, customers_over_limit: 0 }
}

#[test]
fn flash_check_passes_when_everything_adds_up() {
    let v = check_flash(&won(100), &sale(100, 0, 60, 40));
    assert_eq!(v.oversell, 0);
    assert!(v.passed(), "{v:?}");
    assert_eq!(v.exit_code(), 0);
    let v = check_flash(&won(30), &sale(100, 70, 30, 0));
    assert!(v.passed(), "{v:?}");
}

#[test]
fn flash_check_detects_a_backend_that_holds_more_than_it_had() {
    let v = check_flash(&won(110), &sale(100, 0, 70, 40));
    assert_eq!(v.oversell, 10);
    assert!(!v.passed());
    assert_eq!(v.exit_code(), 1);
}

#[test]
fn flash_check_detects_client_wins_beyond_the_quantity() {
    // The backend's own books look tidy, yet clients were told they won 105 of 100 units.
    let v = check_flash(&won(105), &sale(100, 0, 100, 0));
    assert_eq!(v.oversell, 5);
    assert_eq!(v.exit_code(), 1);
}

#[test]
fn flash_check_detects_pools_that_do_not_add_up_and_greedy_customers() {
    let v = check_flash(&won(50), &sale(100, 60, 50, 0));
    assert_eq!(v.oversell, 0);
    assert!(!v.passed(), "remaining + held + sold = 110 of 100 must fail");
    let mut client = won(50);
    client.customer_units_max = 2;
    client.customers_over_limit = 1;
    let v = check_flash(&client, &sale(100, 50, 50, 0));
    assert!(!v.passed(), "a customer with 2 units under a limit of 1 must fail");
    let v = check_flash(&won(50), &sale(100, 52, 48, 0));
    assert!(!v.passed(), "client won 50, backend holds 48: the counts do not add up");
}

#[test]
fn flash_check_accepts_unknown_outcomes_within_their_range() {
    let client = FlashClient { won_units: 40, unknown_units: 5, customer_units_max: 1, customers_over_limit: 0 };
    assert!(check_flash(&client, &sale(100, 57, 43, 0)).passed());
    assert!(!check_flash(&client, &sale(100, 54, 46, 0)).passed());
}

#[test]
fn cell_check_detects_a_planted_oversell() {
    let client = CellClient { received: 10, live: 4, committed: 8, unknown_reserve: 0, unknown_finish: 0 };
    let good = CellFinal { on_hand: 10, reserved: 2, committed: 8, available: 0, oversold: 0 };
    assert!(check_cells(&[("a@x".into(), CellClient { live: 2, ..client }, good)]).passed());
    let bad = CellFinal { on_hand: 10, reserved: 4, committed: 8, available: -2, oversold: 0 };
    let v = check_cells(&[("a@x".into(), client, bad)]);
    assert_eq!(v.oversell, 2);
    assert_eq!(v.exit_code(), 1);
}

/// A fake aisle that takes every set-up call and answers every claim with 201 however
/// many units it has, then reports a tidy-looking sale of `QUANTITY` units: the client's
/// own count must expose the oversell.
const QUANTITY: i64 = 20;

async fn fake_aisle(honest: bool) -> SocketAddr {
    let claimed = Arc::new(AtomicI64::new(0));
    serve(move |method, path| {
        let claimed = claimed.clone();
        async move {
            if path.ends_with("/claims") {
                let n = claimed.fetch_add(1, Ordering::Relaxed);
                if honest && n >= QUANTITY {
                    claimed.fetch_sub(1, Ordering::Relaxed);
                    return (StatusCode::CONFLICT, r#"{"code":"sold_out","status":409}"#.to_owned());
                }
                return (StatusCode::CREATED, r#"{"reservation_id":"1"}"#.to_owned());
            }
            if method == Method::GET && path.starts_with("/v1/flash-sales/") {
                let taken = claimed.load(Ordering::Relaxed).min(QUANTITY);
                let body = format!(
                    r#"{{"quantity":{QUANTITY},"remaining":{},"held":{taken},"sold":0,"status":"active","per_customer_limit":1}}"#,
                    QUANTITY - taken
                );
                return (StatusCode::OK, body);
            }
            (StatusCode::CREATED, "{}".to_owned())
        }
    })
    .await
}

fn flash_args(addr: SocketAddr) -> Args {
    Args::parse_from([
        "aisle-loadtest",
        "--target",
        &format!("http://{addr}"),
        "--token",
        "test-token-0123456789",
        "--scenario",
        "flash",
        "--concurrency",
        "4",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--quantity",
        &QUANTITY.to_string(),
        "--customers",
        "1000",
        "--repeat-ratio",
        "0",
        "--quiet",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_an_overselling_server_fails() {
    let addr = fake_aisle(false).await;
    let report = cli::run(flash_args(addr)).await.expect("the run completes");
    assert!(report.oversell.expect("flash checks oversell") > 0, "{}", report.table());
    assert!(!report.passed);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_an_honest_server_passes() {
    let addr = fake_aisle(true).await;
    let report = cli::run(flash_args(addr)).await.expect("the run completes");
    assert_eq!(report.oversell, Some(0), "{}", report.table());
    assert!(report.passed, "{}", report.table());
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_connection_close_is_followed_by_a_new_connection() {
    // Like aisle's answer to a connection past its cap: one answer, `Connection: close`.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    let connections = Arc::new(AtomicU64::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"{\"code\":\"unavailable\"}")));
                    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    resp.headers_mut()
                        .insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
                    Ok::<_, Infallible>(resp)
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    let endpoint = Endpoint::new(&format!("http://{addr}"), None, Duration::from_secs(10)).expect("endpoint");
    let mut conn = Conn::new(endpoint);
    for i in 0..200 {
        let reply = conn.send(Method::GET, "/", None).await.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(connections.load(Ordering::Relaxed), 200, "one connection per answer");
}
