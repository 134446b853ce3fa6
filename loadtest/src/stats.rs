//! Latency histograms and outcome counts, recorded per worker and merged after the run.
//!
//! Two histograms per request kind:
//! - `latency`: from the request's *intended* start to its answer. In an open-loop run a
//!   worker that is behind schedule sends late, and that lateness is part of what a user
//!   waiting for the answer sees (coordinated-omission correction).
//! - `service`: from the moment the request was actually sent to its answer.
//!
//! In a closed-loop run both are the same. `ok_latency` and `ok_service` are the same two of
//! the 2xx answers only: under overload the fast refusals (429, 503) would otherwise hide how
//! long the requests that were served took.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram holds, in microseconds (one hour); longer ones saturate.
const LATENCY_US_MAX: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .expect("1 µs .. 1 h with 3 significant figures is a valid histogram")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// A business answer that is no failure of the system (409 `sold_out`, `insufficient_stock`, ...).
    Rejected(String),
    /// Anything else: 5xx, 503 back-pressure, unexpected 4xx, I/O errors, timeouts.
    Error(String),
}

impl Outcome {
    /// The label it is counted under in the report.
    pub fn label(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected(l) | Outcome::Error(l) => l,
        }
    }
}

/// Live counters the progress bar reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Clone)]
struct KindStats {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ok_latency: Histogram<u64>,
    ok_service: Histogram<u64>,
    ok: u64,
    rejected: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

impl KindStats {
    fn new() -> Self {
        KindStats {
            latency: histogram(),
            service: histogram(),
            ok_latency: histogram(),
            ok_service: histogram(),
            ok: 0,
            rejected: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &KindStats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.ok_latency.add(&other.ok_latency);
        let _ = self.ok_service.add(&other.ok_service);
        self.ok += other.ok;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// One worker's record of the run (or the merge of all of them).
pub struct Recorder {
    /// False during warm-up: requests are sent but not counted.
    pub measuring: bool,
    kinds: BTreeMap<&'static str, KindStats>,
    ops: u64,
    live: std::sync::Arc<Live>,
}

impl Recorder {
    pub fn new(live: std::sync::Arc<Live>) -> Self {
        Recorder { measuring: false, kinds: BTreeMap::new(), ops: 0, live }
    }

    /// Records one request of `kind`: intended start, actual send, answer.
    pub fn record(&mut self, kind: &'static str, outcome: &Outcome, intended: Instant, sent: Instant, done: Instant) {
        self.live.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Error(_)) {
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        if !self.measuring {
            return;
        }
        let stats = self.kinds.entry(kind).or_insert_with(KindStats::new);
        let latency = micros(done.saturating_duration_since(intended.min(sent)));
        stats.latency.saturating_record(latency);
        let service = micros(done.saturating_duration_since(sent));
        stats.service.saturating_record(service);
        match outcome {
            Outcome::Ok => {
                stats.ok += 1;
                stats.ok_latency.saturating_record(latency);
                stats.ok_service.saturating_record(service);
            }
            Outcome::Rejected(l) => *stats.rejected.entry(l.clone()).or_default() += 1,
            Outcome::Error(l) => *stats.errors.entry(l.clone()).or_default() += 1,
        }
    }

    /// Counts one finished scenario step (an operation of one or more requests).
    pub fn op_done(&mut self) {
        if self.measuring {
            self.ops += 1;
        }
    }

    pub fn ops(&self) -> u64 {
        self.ops
    }

    pub fn merge(&mut self, other: &Recorder) {
        for (kind, stats) in &other.kinds {
            self.kinds.entry(kind).or_insert_with(KindStats::new).merge(stats);
        }
        self.ops += other.ops;
    }

    /// Summaries per kind plus an `all` row, over a measured window of `window`.
    pub fn summarize(&self, window: Duration) -> (Vec<KindSummary>, KindSummary) {
        let secs = window.as_secs_f64().max(1e-9);
        let mut all = KindStats::new();
        let mut rows = Vec::new();
        for (kind, stats) in &self.kinds {
            all.merge(stats);
            rows.push(KindSummary::of(kind, stats, secs));
        }
        (rows, KindSummary::of("all", &all, secs))
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles { p50: 0.0, p90: 0.0, p99: 0.0, p999: 0.0, max: 0.0, mean: 0.0 };
        }
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// What the report says about one kind of request.
#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    pub kind: String,
    pub requests: u64,
    pub per_second: f64,
    /// From the intended start (coordinated omission corrected).
    pub latency_ms: Percentiles,
    /// From the actual send.
    pub service_ms: Percentiles,
    /// `latency_ms` of the 2xx answers only.
    pub ok_latency_ms: Percentiles,
    /// `service_ms` of the 2xx answers only.
    pub ok_service_ms: Percentiles,
    pub ok: u64,
    pub rejected: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
}

impl KindSummary {
    fn of(kind: &str, s: &KindStats, secs: f64) -> Self {
        let requests = s.latency.len();
        KindSummary {
            kind: kind.to_owned(),
            requests,
            per_second: requests as f64 / secs,
            latency_ms: Percentiles::of(&s.latency),
            service_ms: Percentiles::of(&s.service),
            ok_latency_ms: Percentiles::of(&s.ok_latency),
            ok_service_ms: Percentiles::of(&s.ok_service),
            ok: s.ok,
            rejected: s.rejected.clone(),
            errors: s.errors.clone(),
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}
