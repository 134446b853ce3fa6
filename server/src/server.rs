//! Start-up, the accept loop and graceful shutdown.
//!
//! Start-up: validate the configuration, recover the engine (off the async workers: it reads
//! and replays files), open the token store, bind, then print `listening on ADDR` on stdout.
//! The accept loop holds one semaphore permit per open connection (`connections_max`). A
//! connection that arrives when none is left is still accepted and answered at once: 503
//! `unavailable` with `Retry-After` and `Connection: close` (not left waiting in the kernel's
//! backlog). Those answers have their own small cap (`REFUSING_CONNECTIONS_MAX`) and time
//! limit; past that cap a connection is closed unanswered, so a flood of connections costs a
//! bounded amount of memory and file descriptors.
//! Shutdown (the `shutdown` future resolves, e.g. on SIGTERM or Ctrl-C): stop accepting, mark
//! not ready, let in-flight requests finish (up to `shutdown_grace`), then flush and sync the
//! log with `Engine::close`.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aisle_engine::{Engine, EngineConfig, OpenError, Storage};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::app::problem_response;
use crate::auth::{TokenStore, TokenStoreError};
use crate::budget::Budgets;
use crate::config::{ConfigError, ServerConfig};
use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::shared::App;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Connections past `connections_max` being answered 503 at once; past this they are closed
/// unanswered. Each costs a socket and a few KiB while its request is read and answered.
const REFUSING_CONNECTIONS_MAX: usize = 256;
/// How long a refused connection may take to send its request headers before it is closed.
const REFUSAL_HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest a refused connection is kept, answer included.
const REFUSAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("recovery failed: {0}")]
    Open(#[from] OpenError),
    #[error(transparent)]
    Tokens(#[from] TokenStoreError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("closing the engine: {0}")]
    Close(#[from] aisle_engine::EngineError),
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs the server until `shutdown` resolves, then shuts down gracefully.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServerError::DataDir { path: data_dir.clone(), source })?;
    let dir = data_dir.clone();
    let storage = tokio::task::spawn_blocking(move || Storage::dir(&dir))
        .await?
        .map_err(|source| ServerError::DataDir { path: data_dir.clone(), source })?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    serve(config, storage, listener, shutdown).await
}

/// Serves on a bound listener with the engine on `storage`; `run` is this with the data
/// directory's files. Tests use it to put the engine on storage they can make fail.
pub async fn serve(
    config: ServerConfig,
    storage: Storage,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServerError::DataDir { path: data_dir.clone(), source })?;

    let metrics = Metrics::new(data_dir.clone())?;
    metrics.wal_retention_limit_bytes.set(i64::try_from(config.log_retention_bytes).unwrap_or(i64::MAX));
    let mut engine_config = EngineConfig::default();
    engine_config.wal.durability = config.durability;
    engine_config.wal.observer = Some(metrics.wal_observer());
    engine_config.log_retention = config.log_retention;
    engine_config.log_retention_bytes = config.log_retention_bytes;
    let (engine, report) =
        tokio::task::spawn_blocking(move || -> Result<_, ServerError> { Ok(Engine::open(engine_config, storage)?) })
            .await??;
    metrics.recovery_duration.set(report.duration.as_secs_f64());
    tracing::info!(
        snapshot = ?report.snapshot,
        records_replayed = report.wal.records_replayed,
        torn_tail = ?report.wal.torn_tail,
        millis = report.duration.as_millis() as u64,
        durability = %config.durability,
        "engine recovered"
    );

    let tokens = Arc::new(TokenStore::open(&data_dir, config.admin_token.as_deref())?);
    if let Some((secret, path)) = tokens.bootstrap()? {
        // SPEC §5: printed once, on the first start only; the file keeps it for the operator.
        println!("admin token (also written to {}): {secret}", path.display());
    }

    let local = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    tracing::info!(address = %local, "listening");
    // Machine-readable for scripts and tests that bind port 0.
    println!("listening on {local}");
    let _ = std::io::stdout().flush();

    let budgets = Budgets::new(config.token_rate_per_second, config.admin_token_rate_per_second, config.token_burst);
    let app = Arc::new(App::new(engine.clone(), tokens, metrics, config.body_bytes_max, budgets));
    let connections = Arc::new(Semaphore::new(config.connections_max));
    let refusing = Arc::new(Semaphore::new(REFUSING_CONNECTIONS_MAX));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.keep_alive(true).timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let mut refusal = http1::Builder::new();
    refusal.keep_alive(false).timer(TokioTimer::new()).header_read_timeout(REFUSAL_HEADER_READ_TIMEOUT);

    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                refuse(&app.metrics, &refusing, &refusal, stream);
                continue;
            }
            Err(TryAcquireError::Closed) => break,
        };
        let open = app.metrics.open_connections.clone();
        open.inc();
        let app = app.clone();
        let service = service_fn(move |request| app.clone().handle(request));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            open.dec();
            drop(permit);
        });
    }

    tracing::info!("shutting down: no new connections, draining in-flight requests");
    app.stopping.store(true, Ordering::Release);
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "in-flight requests did not finish in time");
    }
    drop(app);
    tokio::task::spawn_blocking(move || engine.close()).await??;
    tracing::info!("engine closed; bye");
    Ok(())
}

/// Answers a connection that arrived at the cap: reads its first request, answers 503 with
/// `Retry-After` and `Connection: close`, closes. Reading the request first lets the client
/// see the answer to the request it sent (a response before the request confuses clients, and
/// closing on unread bytes resets the connection). Past `REFUSING_CONNECTIONS_MAX` such
/// connections at once, or after `REFUSAL_TIMEOUT`, the connection is closed unanswered.
fn refuse(metrics: &Metrics, refusing: &Arc<Semaphore>, http: &http1::Builder, stream: tokio::net::TcpStream) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        metrics.connections_dropped.inc();
        return;
    };
    metrics.connections_refused.inc();
    let service = service_fn(|_request| async {
        let response = problem_response(&ApiError::ConnectionsFull, 0, "refused").unwrap_or_else(|e| {
            tracing::error!(error = %e, "building the 503 of a refused connection failed");
            let mut fallback = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            *fallback.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
            fallback
        });
        Ok::<_, Infallible>(response)
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::spawn(async move {
        if let Ok(Err(e)) = tokio::time::timeout(REFUSAL_TIMEOUT, connection).await {
            tracing::debug!(error = %e, "a refused connection ended with an error");
        }
        drop(permit);
    });
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
