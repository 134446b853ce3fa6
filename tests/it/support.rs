//! Helpers for tests that run the real server: start the binary on `127.0.0.1:0` with a data
//! directory, read the address it prints, and call it over HTTP with one helper.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The runtime every HTTP test drives its clients on: two workers, like the machines CI runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// The admin secret every test server accepts (`AISLE_ADMIN_TOKEN`).
pub const ADMIN: &str = "test-admin-secret-0123456789";
/// How long a server may take to recover and bind.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `aisle serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The problem code of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

impl Server {
    /// Starts the server on `dir` with `fsync` durability.
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, args: &[&str]) -> Server {
        Server::spawn(dir, args, Stdio::inherit())
    }

    /// Like [`Server::start_with`], with the server's log (stderr) appended to `log`.
    pub fn start_logged(dir: &Path, args: &[&str], log: &Path) -> Server {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open the log file");
        Server::spawn(dir, args, Stdio::from(file))
    }

    fn spawn(dir: &Path, args: &[&str], stderr: Stdio) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aisle-server"))
            .arg("serve")
            .args(args)
            .env("AISLE_LISTEN", "127.0.0.1:0")
            .env("AISLE_DATA_DIR", dir)
            .env("AISLE_ADMIN_TOKEN", ADMIN)
            .env("AISLE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn the aisle binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stdout after the address so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        let address = rx.recv_timeout(START_TIMEOUT).expect("the server prints `listening on ADDR`");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        Server { child, base: format!("http://{address}"), client }
    }

    /// One request: `token` as bearer, `body` as raw bytes (already JSON or deliberately not).
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Answer {
        self.raw_with(method, path, token, body, &[]).await
    }

    /// Every answer is checked against `/openapi.json` ([`crate::contract::check`]).
    pub async fn raw_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let answer = self.raw_unchecked(method, path, token, body, headers).await;
        let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok());
        crate::contract::check(method, path, answer.status, content_type, &answer.body);
        answer
    }

    /// Like [`Server::raw_with`], without the contract check (for answers to requests the
    /// document cannot describe, such as a body cut off mid-way).
    pub async fn raw_unchecked(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send_via(&self.client, method, path, token, body, headers).await
    }

    /// A request on `client`'s connections instead of the shared client's (tests that need
    /// connections of their own); checked against `/openapi.json` like [`Server::raw_with`].
    pub async fn call_via(&self, client: &reqwest::Client, method: &str, path: &str, token: Option<&str>) -> Answer {
        let answer = self.send_via(client, method, path, token, None, &[]).await;
        let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok());
        crate::contract::check(method, path, answer.status, content_type, &answer.body);
        answer
    }

    async fn send_via(
        &self,
        client: &reqwest::Client,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer { status, body, headers }
    }

    /// A JSON request as the admin.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, ADMIN, body).await
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("json"));
        self.raw(method, path, Some(token), bytes).await
    }

    /// Creates a location selling to `web` and `pos`, a SKU, and receives `qty` units.
    pub async fn seed(&self, location: &str, sku: &str, qty: u32) {
        let answer = self
            .admin(
                "PUT",
                &format!("/v1/locations/{location}"),
                Some(json!({"name": location, "kind": "store", "lat": 22.28, "lon": 114.18,
                            "channels": ["web", "app", "pos"], "pickup": true, "ships": true})),
            )
            .await;
        assert!(answer.status == 201 || answer.status == 200, "{answer:?}");
        let answer = self.admin("PUT", &format!("/v1/skus/{sku}"), Some(json!({"name": sku, "price": 9900}))).await;
        assert!(answer.status == 201 || answer.status == 200, "{answer:?}");
        if qty > 0 {
            let answer = self
                .admin("POST", "/v1/stock/receive", Some(json!({"location": location, "sku": sku, "qty": qty})))
                .await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
    }

    /// The cell as JSON.
    pub async fn cell(&self, sku: &str, location: &str) -> Value {
        let answer = self.admin("GET", &format!("/v1/stock/{sku}/{location}"), None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }

    /// Sends a signal (SIGKILL for crash tests, SIGTERM for graceful shutdown).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("signal the server");
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("wait for the server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already reaped after kill/terminate; otherwise stop it so no process outlives a test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
