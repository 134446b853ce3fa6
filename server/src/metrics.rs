//! Prometheus metrics: the registry, the HTTP and reservation counters, and the WAL observer
//! the engine reports each committed batch to. What the engine counts itself (holds, snapshots,
//! the retained log, read-only) and the data directory's free space are read at scrape time.
//!
//! Labels are bounded: `route` is a route template from the router table (or `unmatched`),
//! never a path with a SKU, customer or token in it.
//!
//! `ops/` holds the Grafana dashboard and the Prometheus alerts built on these names; a test
//! (`tests/it/ops_bundle.rs`) fails when they name a metric this registry does not serve.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aisle_engine::flash::FlashSaleView;
use aisle_engine::wal::WalObserver;
use aisle_engine::EngineStats;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request latency buckets, seconds: 50 µs to 5 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// fdatasync buckets, seconds: 10 µs to 1 s.
const FSYNC_BUCKETS: &[f64] = &[0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1.0];
/// Records per batch: powers of four up to the largest batches group commit makes.
const BATCH_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// Requests answered 429 because their token was over its budget (no token label).
    pub rate_limited: IntCounter,
    /// Connections being served (at most `connections_max`).
    pub open_connections: IntGauge,
    /// Connections that arrived at the cap and were answered 503.
    pub connections_refused: IntCounter,
    /// Connections closed unanswered: the cap and the refusal slots were all taken.
    pub connections_dropped: IntCounter,
    pub reservations: IntCounterVec,
    pub active_reservations: IntGauge,
    pub flash_sale_claims: IntCounterVec,
    pub flash_sale_remaining: IntGaugeVec,
    pub wal_fsync: Histogram,
    pub wal_batch_records: Histogram,
    pub wal_bytes: IntCounter,
    pub snapshot_duration: Gauge,
    pub recovery_duration: Gauge,
    pub wal_retained_bytes: IntGauge,
    pub wal_oldest_retained_lsn: IntGauge,
    /// The configured `log_retention_bytes`, so alerts can compare the retained log with it.
    pub wal_retention_limit_bytes: IntGauge,
    pub read_only: IntGauge,
    pub snapshots: IntCounter,
    pub snapshot_failures: IntCounter,
    pub last_snapshot_success: Gauge,
    pub data_dir_free_bytes: IntGauge,
    pub data_dir_size_bytes: IntGauge,
    /// The directory whose file system `data_dir_*` describe.
    data_dir: PathBuf,
    /// Held while gauges and counters are brought up to the engine's figures, so that two
    /// scrapes at once cannot both add the same difference to a counter.
    refresh: Arc<Mutex<()>>,
}

impl Metrics {
    /// The registry for a server whose files are under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("aisle_http_requests_total", "HTTP requests answered, by route template, method and status."),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("aisle_http_request_duration_seconds", "Time to answer an HTTP request, by route.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let rate_limited = IntCounter::new(
            "aisle_http_rate_limited_total",
            "Requests answered 429 rate_limited because their token was over its request budget.",
        )?;
        let open_connections =
            IntGauge::new("aisle_http_open_connections", "HTTP connections being served (at most connections_max).")?;
        let connections_refused = IntCounter::new(
            "aisle_http_connections_refused_total",
            "Connections that arrived while connections_max were open; answered 503 unavailable and closed.",
        )?;
        let connections_dropped = IntCounter::new(
            "aisle_http_connections_dropped_total",
            "Connections closed unanswered because the connection cap and the refusal slots were all taken.",
        )?;
        let reservations = IntCounterVec::new(
            Opts::new("aisle_reservations_total", "Reservation requests and transitions, by outcome."),
            &["outcome"],
        )?;
        let active_reservations = IntGauge::new("aisle_active_reservations", "Reservations currently holding stock.")?;
        let flash_sale_claims = IntCounterVec::new(
            Opts::new("aisle_flash_sale_claims_total", "Flash-sale claims, by sale and outcome."),
            &["sale", "outcome"],
        )?;
        let flash_sale_remaining = IntGaugeVec::new(
            Opts::new("aisle_flash_sale_remaining", "Units left in a flash sale's pool (not held, not sold)."),
            &["sale"],
        )?;
        let wal_fsync = Histogram::with_opts(
            HistogramOpts::new("aisle_wal_fsync_duration_seconds", "Duration of each write-ahead log fdatasync.")
                .buckets(FSYNC_BUCKETS.to_vec()),
        )?;
        let wal_batch_records = Histogram::with_opts(
            HistogramOpts::new("aisle_wal_batch_records", "Records written per write-ahead log batch (group commit).")
                .buckets(BATCH_BUCKETS.to_vec()),
        )?;
        let wal_bytes = IntCounter::new("aisle_wal_bytes_total", "Bytes written to the write-ahead log.")?;
        let snapshot_duration =
            Gauge::new("aisle_snapshot_duration_seconds", "Duration of the last snapshot (0 before the first).")?;
        let recovery_duration =
            Gauge::new("aisle_recovery_duration_seconds", "Duration of start-up recovery (snapshot load and replay).")?;
        let wal_retained_bytes = IntGauge::new(
            "aisle_wal_retained_bytes",
            "Bytes of write-ahead log kept on disk (retained for the change feed, followers and rebuilds).",
        )?;
        let wal_oldest_retained_lsn =
            IntGauge::new("aisle_wal_oldest_retained_lsn", "LSN of the oldest write-ahead log record kept on disk.")?;
        let wal_retention_limit_bytes = IntGauge::new(
            "aisle_wal_retention_limit_bytes",
            "Configured cap on the retained write-ahead log (log_retention_bytes); the oldest passed segments go past it.",
        )?;
        let read_only = IntGauge::new(
            "aisle_read_only",
            "1 while the engine refuses writes after a log I/O error (GET /readyz says why), else 0.",
        )?;
        let snapshots = IntCounter::new("aisle_snapshots_total", "Snapshots written since start.")?;
        let snapshot_failures = IntCounter::new("aisle_snapshot_failures_total", "Snapshots that failed since start.")?;
        let last_snapshot_success = Gauge::new(
            "aisle_last_snapshot_success_timestamp_seconds",
            "Unix time the newest snapshot on disk was taken (written since start or recovered from); 0 if none.",
        )?;
        let data_dir_free_bytes = IntGauge::new(
            "aisle_data_dir_free_bytes",
            "Bytes the server may still use on the data directory's file system.",
        )?;
        let data_dir_size_bytes =
            IntGauge::new("aisle_data_dir_size_bytes", "Size in bytes of the data directory's file system.")?;
        registry.register(Box::new(wal_retention_limit_bytes.clone()))?;
        registry.register(Box::new(read_only.clone()))?;
        registry.register(Box::new(snapshots.clone()))?;
        registry.register(Box::new(snapshot_failures.clone()))?;
        registry.register(Box::new(last_snapshot_success.clone()))?;
        registry.register(Box::new(data_dir_free_bytes.clone()))?;
        registry.register(Box::new(data_dir_size_bytes.clone()))?;
        registry.register(Box::new(wal_retained_bytes.clone()))?;
        registry.register(Box::new(wal_oldest_retained_lsn.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(connections_dropped.clone()))?;
        registry.register(Box::new(reservations.clone()))?;
        registry.register(Box::new(active_reservations.clone()))?;
        registry.register(Box::new(flash_sale_claims.clone()))?;
        registry.register(Box::new(flash_sale_remaining.clone()))?;
        registry.register(Box::new(wal_fsync.clone()))?;
        registry.register(Box::new(wal_batch_records.clone()))?;
        registry.register(Box::new(wal_bytes.clone()))?;
        registry.register(Box::new(snapshot_duration.clone()))?;
        registry.register(Box::new(recovery_duration.clone()))?;
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            rate_limited,
            open_connections,
            connections_refused,
            connections_dropped,
            reservations,
            active_reservations,
            flash_sale_claims,
            flash_sale_remaining,
            wal_fsync,
            wal_batch_records,
            wal_bytes,
            snapshot_duration,
            recovery_duration,
            wal_retained_bytes,
            wal_oldest_retained_lsn,
            wal_retention_limit_bytes,
            read_only,
            snapshots,
            snapshot_failures,
            last_snapshot_success,
            data_dir_free_bytes,
            data_dir_size_bytes,
            data_dir,
            refresh: Arc::new(Mutex::new(())),
        })
    }

    /// The WAL observer to put in the engine's configuration.
    pub fn wal_observer(&self) -> Arc<dyn WalObserver> {
        Arc::new(WalMetrics {
            fsync: self.wal_fsync.clone(),
            batch_records: self.wal_batch_records.clone(),
            bytes: self.wal_bytes.clone(),
        })
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests.with_label_values(&[route, method, status_label(status)]).inc();
        self.http_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    pub fn reservation(&self, outcome: &str) {
        self.reservations.with_label_values(&[outcome]).inc();
    }

    /// Counts a claim's outcome. Only called for sales that exist, so the `sale` label's
    /// values are the operator's sale codes, never whatever a client typed.
    pub fn flash_sale_claim(&self, sale: &str, outcome: &str) {
        self.flash_sale_claims.with_label_values(&[sale, outcome]).inc();
    }

    /// Renders the text exposition format, refreshing gauges read from the engine first.
    pub fn render(&self, stats: &EngineStats, sales: &[FlashSaleView]) -> Result<Vec<u8>, prometheus::Error> {
        let refreshing = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        self.active_reservations.set(stats.active_reservations);
        for sale in sales {
            self.flash_sale_remaining.with_label_values(&[sale.def.code.as_str()]).set(i64::from(sale.remaining));
        }
        self.snapshot_duration.set(stats.last_snapshot_duration.as_secs_f64());
        self.wal_retained_bytes.set(i64::try_from(stats.log_retained_bytes).unwrap_or(i64::MAX));
        self.wal_oldest_retained_lsn.set(i64::try_from(stats.log_oldest_retained_lsn).unwrap_or(i64::MAX));
        self.read_only.set(i64::from(stats.read_only_reason.is_some()));
        catch_up(&self.snapshots, stats.snapshots_taken);
        catch_up(&self.snapshot_failures, stats.snapshot_failures);
        self.last_snapshot_success.set(stats.last_snapshot_at as f64 / 1000.0);
        match nix::sys::statvfs::statvfs(&self.data_dir) {
            Ok(fs) => {
                let fragment = fs.fragment_size();
                let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(fragment)).unwrap_or(i64::MAX);
                self.data_dir_free_bytes.set(bytes(fs.blocks_available()));
                self.data_dir_size_bytes.set(bytes(fs.blocks()));
            }
            // The last figures stay; the log and snapshot writes will say more if the disk is gone.
            Err(e) => tracing::debug!(error = %e, dir = %self.data_dir.display(), "statvfs of the data directory"),
        }
        drop(refreshing);
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// Moves a counter that mirrors an engine total up to it (the engine's totals never go down).
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

/// Status codes as static labels, so a label never allocates.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        501 => "501",
        503 => "503",
        _ => "other",
    }
}

struct WalMetrics {
    fsync: Histogram,
    batch_records: Histogram,
    bytes: IntCounter,
}

impl WalObserver for WalMetrics {
    fn batch_written(&self, records: u64, bytes: u64, sync: Option<Duration>) {
        // Timer syncs without records are reported with records == 0: count the sync only.
        if records > 0 {
            self.batch_records.observe(records as f64);
        }
        self.bytes.inc_by(bytes);
        if let Some(sync) = sync {
            self.fsync.observe(sync.as_secs_f64());
        }
    }

    fn read_only(&self, reason: &str) {
        // Once, when it happens: every write from now on is refused with 503 until a restart.
        tracing::error!(reason, "the write-ahead log is read-only: writes are refused until the server restarts");
    }
}
