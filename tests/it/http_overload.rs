//! Overload: a token over its request budget gets 429 `rate_limited` with `Retry-After` and is
//! served again once its bucket refills, while other tokens go on; a connection past
//! `connections_max` is answered 503 `unavailable` with `Retry-After` at once (not left in the
//! kernel's backlog) while the connections already open keep working; a flood of connections
//! is bounded (answered or closed, never piled up).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{runtime, Answer, Server, ADMIN};

/// How soon a refused connection must have its answer: "at once", with room for a busy machine.
const PROMPTLY: Duration = Duration::from_secs(2);

async fn channel_token(server: &Server, name: &str) -> String {
    let made =
        server.admin("POST", "/v1/tokens", Some(json!({"name": name, "role": "channel", "channel": "web"}))).await;
    assert_eq!(made.status, 201, "{made:?}");
    made.body["secret"].as_str().expect("the secret").to_owned()
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    let value = headers.get("retry-after").expect("a Retry-After header");
    value.to_str().expect("ascii").parse().expect("Retry-After in whole seconds")
}

/// A sample's value in the Prometheus text of `/metrics`.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn a_token_over_its_budget_gets_429_until_its_bucket_refills() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        // One request per second after a burst of three; admin tokens stay unlimited (default).
        let server = Server::start_with(dir.path(), &["--token-rate-per-second", "1", "--token-burst", "3"]);
        let shop = channel_token(&server, "shop").await;
        let app = channel_token(&server, "app").await;

        let started = Instant::now();
        let mut answers: Vec<Answer> = Vec::new();
        while answers.len() < 10 && answers.last().is_none_or(|a| a.status == 200) {
            answers.push(server.call("GET", "/v1/locations", &shop, None).await);
        }
        let elapsed = started.elapsed();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses[..3], [200, 200, 200], "the burst is served: {statuses:?}");
        let limited = answers.last().expect("answers");
        assert_eq!(limited.status, 429, "past the burst the token is limited: {statuses:?}");
        // The bucket lets through its burst plus one request per second that passed.
        let served = statuses.len() - 1;
        assert!(served as u64 <= 3 + elapsed.as_secs() + 1, "{served} served in {elapsed:?}");
        assert_eq!(limited.code(), "rate_limited", "{limited:?}");
        assert_eq!(limited.body["type"], "/problems/rate_limited");
        assert_eq!(retry_after(&limited.headers), 1, "a request is due within a second at 1/s");

        // Other tokens are not charged for it; admin tokens are unlimited by default.
        for _ in 0..3 {
            assert_eq!(server.call("GET", "/v1/locations", &app, None).await.status, 200);
        }
        for _ in 0..50 {
            assert_eq!(server.admin("GET", "/v1/locations", None).await.status, 200);
        }
        // Public routes are not budgeted, even when the empty token's header is sent along.
        for path in ["/healthz", "/readyz", "/openapi.json"] {
            let answer = server.raw("GET", path, Some(&shop), None).await;
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
        }
        let metrics = server.raw("GET", "/metrics", Some(&shop), None).await;
        assert_eq!(metrics.status, 200);
        let text = metrics.body.as_str().expect("metrics text");
        assert_eq!(sample(text, "aisle_http_rate_limited_total"), 1.0, "one request was limited");
        assert!(!text.contains(&shop) && !text.contains("shop"), "no label names the token");

        // Waiting as told is enough.
        tokio::time::sleep(Duration::from_secs(retry_after(&limited.headers))).await;
        let again = server.call("GET", "/v1/locations", &shop, None).await;
        assert_eq!(again.status, 200, "served again after Retry-After: {again:?}");
    });
}

#[test]
fn a_write_over_budget_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start_with(dir.path(), &["--token-rate-per-second", "1", "--token-burst", "1"]);
        server.seed("HK-CWB", "TEE", 10).await;
        let shop = channel_token(&server, "shop").await;
        let reserve = json!({"channel": "web", "lines": [{"sku": "TEE", "qty": 1, "location": "HK-CWB"}]});
        let mut held = 0;
        let mut limited = None;
        for _ in 0..10 {
            let answer = server.call("POST", "/v1/reservations", &shop, Some(reserve.clone())).await;
            match answer.status {
                201 => held += 1,
                429 => {
                    limited = Some(answer);
                    break;
                }
                other => panic!("unexpected {other}: {answer:?}"),
            }
        }
        let limited = limited.expect("a burst of 1 at 1/s is soon exhausted");
        assert_eq!(limited.code(), "rate_limited");
        assert_eq!(server.cell("TEE", "HK-CWB").await["reserved"], json!(held), "the 429 reserved nothing");
    });
}

/// An answer read off a raw socket.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn address(server: &Server) -> String {
    server.base.strip_prefix("http://").expect("http base").to_owned()
}

async fn connect(address: &str) -> TcpStream {
    TcpStream::connect(address).await.expect("connect")
}

/// Sends `GET path` as the admin on `stream` and reads one answer (framed by Content-Length),
/// checked against `/openapi.json`.
async fn get(stream: &mut TcpStream, path: &str) -> RawAnswer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: aisle\r\nAuthorization: Bearer {ADMIN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read the answer");
        assert!(n > 0, "the connection closed before an answer: {:?}", String::from_utf8_lossy(&buffer));
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).expect("an ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .expect("a Content-Length");
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read the body");
        assert!(n > 0, "the connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let answer = RawAnswer { status, headers, body };
    crate::contract::check("GET", path, answer.status, answer.header("content-type"), &answer.body);
    answer
}

/// Expects the server to have closed `stream` (end of file) within [`PROMPTLY`].
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(PROMPTLY, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

/// A connection past the cap: its request is answered 503 at once and the connection closed.
async fn refused(address: String) -> RawAnswer {
    let started = Instant::now();
    let mut stream = connect(&address).await;
    let answer = tokio::time::timeout(PROMPTLY, get(&mut stream, "/v1/locations"))
        .await
        .expect("a connection past the cap is answered at once, not left waiting");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["code"], "unavailable", "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    assert!(closed(&mut stream).await, "the server closes a refused connection after its answer");
    assert!(started.elapsed() < PROMPTLY, "refused in {:?}", started.elapsed());
    answer
}

#[test]
fn a_connection_past_the_cap_is_answered_503_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start_with(dir.path(), &["--connections-max", "2"]);
        let address = address(&server);
        // Two keep-alive connections take both slots.
        let mut held = [connect(&address).await, connect(&address).await];
        for stream in &mut held {
            assert_eq!(get(stream, "/v1/locations").await.status, 200);
        }
        // Every further connection is answered 503, several at once too.
        let mut refusals = 0;
        let at_once: Vec<_> = (0..5).map(|_| tokio::spawn(refused(address.clone()))).collect();
        for task in at_once {
            task.await.expect("a refused connection's check");
            refusals += 1;
        }
        // Through the tests' own helper as well (a fresh client, so a fresh connection).
        let fresh = reqwest::Client::builder().timeout(PROMPTLY).build().expect("client");
        let answer = server.call_via(&fresh, "GET", "/v1/locations", Some(ADMIN)).await;
        assert_eq!((answer.status, answer.code()), (503, "unavailable"), "{answer:?}");
        assert_eq!(retry_after(&answer.headers), 1);
        refusals += 1;
        // The connections already open keep working, on the same sockets.
        for stream in &mut held {
            assert_eq!(get(stream, "/v1/locations").await.status, 200);
        }
        // Once one closes, a new connection is served (the server may take a moment to see
        // the close; until then the answer is a prompt 503, never silence).
        let [first, mut second] = held;
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut served = loop {
            let mut stream = connect(&address).await;
            let answer =
                tokio::time::timeout(PROMPTLY, get(&mut stream, "/v1/locations")).await.expect("answered at once");
            if answer.status == 200 {
                break stream;
            }
            assert_eq!(answer.status, 503, "{answer:?}");
            refusals += 1;
            assert!(Instant::now() < deadline, "a freed slot is served again");
        };
        assert_eq!(get(&mut second, "/v1/locations").await.status, 200);
        let metrics = get(&mut served, "/metrics").await;
        let text = metrics.body.as_str().expect("metrics text");
        assert_eq!(sample(text, "aisle_http_connections_refused_total"), refusals as f64);
        assert_eq!(sample(text, "aisle_http_connections_dropped_total"), 0.0);
        assert_eq!(sample(text, "aisle_http_open_connections"), 2.0);
    });
}

#[test]
fn a_flood_of_silent_connections_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let server = Server::start_with(dir.path(), &["--connections-max", "1"]);
        let address = address(&server);
        let mut held = connect(&address).await;
        assert_eq!(get(&mut held, "/v1/locations").await.status, 200);
        // 300 connections that never send a request: the server answers (after reading a
        // request) at most 256 at once and closes the rest at once; the silent ones it
        // answers are closed when their request does not come.
        const FLOOD: usize = 300;
        let mut flood = Vec::with_capacity(FLOOD);
        let started = Instant::now();
        for _ in 0..FLOOD {
            flood.push(connect(&address).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Those past the refusal slots are closed already; the others wait for a request.
        let mut at_once = 0;
        for stream in &mut flood {
            let mut byte = [0u8; 1];
            if matches!(
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await,
                Ok(Ok(0) | Err(_))
            ) {
                at_once += 1;
            }
        }
        assert!(at_once >= FLOOD - 256, "{at_once} of {FLOOD} closed at once");
        // The served connection is not disturbed by the flood.
        assert_eq!(get(&mut held, "/v1/locations").await.status, 200);
        // The rest are closed after the refusal's header time limit, all within a few seconds.
        for stream in &mut flood {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
            assert!(matches!(read, Ok(Ok(0) | Err(_))), "a silent connection is closed eventually");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(flood);
        // The refusal slots are free again: a new connection gets its prompt 503.
        refused(address.clone()).await;
        let metrics = get(&mut held, "/metrics").await;
        let text = metrics.body.as_str().expect("metrics text");
        let refused_total = sample(text, "aisle_http_connections_refused_total");
        let dropped = sample(text, "aisle_http_connections_dropped_total");
        assert_eq!(refused_total + dropped, (FLOOD + 1) as f64, "every connection past the cap is counted once");
        assert!(dropped >= (FLOOD - 256) as f64, "{dropped} dropped");
        assert!(refused_total <= 256.0 + 1.0, "{refused_total} refused");
    });
}
