//! Prometheus metrics: the registry, the HTTP and reservation counters, and the WAL observer
//! the engine reports each committed batch to.
//!
//! Labels are bounded: `route` is a route template from the router table (or `unmatched`),
//! never a path with a SKU, customer or token in it.

use std::sync::Arc;
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
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
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
        registry.register(Box::new(wal_retained_bytes.clone()))?;
        registry.register(Box::new(wal_oldest_retained_lsn.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
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
        self.active_reservations.set(stats.active_reservations);
        for sale in sales {
            self.flash_sale_remaining.with_label_values(&[sale.def.code.as_str()]).set(i64::from(sale.remaining));
        }
        self.snapshot_duration.set(stats.last_snapshot_duration.as_secs_f64());
        self.wal_retained_bytes.set(i64::try_from(stats.log_retained_bytes).unwrap_or(i64::MAX));
        self.wal_oldest_retained_lsn.set(i64::try_from(stats.log_oldest_retained_lsn).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
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
}
