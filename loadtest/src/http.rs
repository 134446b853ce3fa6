//! A minimal keep-alive HTTP/1.1 client: one hyper connection per worker over a tokio
//! `TcpStream`, reopened after any failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::stats::Outcome;
use crate::BoxError;

/// Where requests go and how they authenticate.
#[derive(Debug)]
pub struct Endpoint {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl Endpoint {
    /// `url` is `http://host:port` (a path, if any, is ignored).
    pub fn new(url: &str, token: Option<&str>, timeout: Duration) -> Result<Arc<Self>, BoxError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// targets are served"))?;
        let authority = rest.split('/').next().unwrap_or_default().to_owned();
        if authority.is_empty() {
            return Err(format!("{url}: no host").into());
        }
        let authority = if authority.contains(':') { authority } else { format!("{authority}:80") };
        let auth = match token {
            Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| "token is not a valid header")?),
            None => None,
        };
        Ok(Arc::new(Endpoint { authority, auth, timeout }))
    }
}

/// An answer: status and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Deserialize)]
struct ProblemCode {
    code: Option<String>,
}

impl Reply {
    /// The problem `code` of an error body, if it has one.
    pub fn problem_code(&self) -> Option<String> {
        serde_json::from_slice::<ProblemCode>(&self.body).ok().and_then(|p| p.code)
    }

    /// Classifies the answer: 2xx is ok, 409 a business rejection, anything else an error.
    pub fn outcome(&self) -> Outcome {
        if self.status.is_success() {
            return Outcome::Ok;
        }
        let label = match self.problem_code() {
            Some(code) => format!("{} {code}", self.status.as_u16()),
            None => self.status.as_u16().to_string(),
        };
        if self.status == StatusCode::CONFLICT {
            Outcome::Rejected(label)
        } else {
            Outcome::Error(label)
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("timeout")]
    Timeout,
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
}

impl HttpError {
    /// The label the report counts it under.
    pub fn outcome(&self) -> Outcome {
        Outcome::Error(
            match self {
                HttpError::Connect(_) => "connect error",
                HttpError::Http(_) | HttpError::Request(_) => "io error",
                HttpError::Timeout => "timeout",
            }
            .to_owned(),
        )
    }

    /// True when the request may have reached the server and taken effect.
    pub fn maybe_applied(&self) -> bool {
        !matches!(self, HttpError::Connect(_))
    }
}

/// One keep-alive connection.
pub struct Conn {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(endpoint: Arc<Endpoint>) -> Self {
        Conn { endpoint, sender: None }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let stream = TcpStream::connect(&self.endpoint.authority).await.map_err(HttpError::Connect)?;
        stream.set_nodelay(true).map_err(HttpError::Connect)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; errors surface on send.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole answer, within the endpoint's timeout.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Reply, HttpError> {
        let timeout = self.endpoint.timeout;
        match tokio::time::timeout(timeout, self.send_inner(method, path, body)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(HttpError::Timeout)
            }
        }
    }

    async fn send_inner(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Reply, HttpError> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut builder = Request::builder().method(method).uri(path).header(HOST, self.endpoint.authority.as_str());
        if let Some(auth) = &self.endpoint.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let request = match body {
            Some(body) => builder.header(CONTENT_TYPE, "application/json").body(Full::new(body))?,
            None => builder.body(Full::new(Bytes::new()))?,
        };
        let response = sender.send_request(request).await?;
        let status = response.status();
        // The server closes after this answer (a connection refused at its cap, a 413): the
        // next request opens a new connection rather than failing on this one.
        let closing = response.headers().get(CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response.into_body().collect().await?.to_bytes();
        if !closing {
            self.sender = Some(sender);
        }
        Ok(Reply { status, body })
    }

    /// Sends a JSON body and requires one of `expect`; for set-up and final reads.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        expect: &[u16],
    ) -> Result<Reply, BoxError> {
        let body = match body {
            Some(v) => Some(Bytes::from(serde_json::to_vec(v)?)),
            None => None,
        };
        let reply = self.send(method.clone(), path, body).await.map_err(|e| format!("{method} {path}: {e}"))?;
        if !expect.contains(&reply.status.as_u16()) {
            return Err(format!("{method} {path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body)).into());
        }
        Ok(reply)
    }
}

/// The WAL counters of aisle's `/metrics` (no token needed).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WalCounters {
    pub fsyncs: f64,
    pub fsync_seconds: f64,
    pub records: f64,
}

impl WalCounters {
    /// Parses the Prometheus text of `/metrics`.
    pub fn parse(text: &str) -> Self {
        let mut c = WalCounters::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(' ') else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            match name {
                "aisle_wal_fsync_duration_seconds_count" => c.fsyncs = value,
                "aisle_wal_fsync_duration_seconds_sum" => c.fsync_seconds = value,
                "aisle_wal_batch_records_sum" => c.records = value,
                _ => {}
            }
        }
        c
    }

    /// Reads them from the server; `None` when `/metrics` cannot be read.
    pub async fn read(endpoint: &Arc<Endpoint>) -> Option<Self> {
        let mut conn = Conn::new(endpoint.clone());
        let reply = conn.send(Method::GET, "/metrics", None).await.ok()?;
        reply.status.is_success().then(|| WalCounters::parse(&String::from_utf8_lossy(&reply.body)))
    }

    /// What the WAL did between `before` and `self`, in words.
    pub fn since(&self, before: &WalCounters) -> String {
        let fsyncs = self.fsyncs - before.fsyncs;
        if fsyncs <= 0.0 {
            return "WAL: no fsync during the run (durability none?)".to_owned();
        }
        format!(
            "WAL: {fsyncs:.0} fsyncs, {:.1} records/fsync, {:.2} ms/fsync",
            (self.records - before.records) / fsyncs,
            (self.fsync_seconds - before.fsync_seconds) * 1000.0 / fsyncs
        )
    }
}
