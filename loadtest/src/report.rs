//! The final report: a table on stdout and the same figures as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::check::{FlashClient, FlashFinal, Verdict};
use crate::driver::{Load, RunResult};
use crate::stats::{KindSummary, Percentiles};

/// A flash sale's two sides: what the client counted and what the backend holds.
#[derive(Debug, Clone, Serialize)]
pub struct FlashSides {
    pub client: FlashClient,
    pub backend: FlashFinal,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Names the target in comparisons.
    pub label: String,
    /// How the target makes writes durable, as it reports it (Redis `appendfsync`,
    /// PostgreSQL `synchronous_commit`, aisle's WAL fsyncs during the run).
    pub durability: Option<String>,
    pub scenario: String,
    pub target: String,
    /// `aisle`, `redis` or `postgres`.
    pub backend: String,
    pub prefix: String,
    /// `closed` or `open`.
    pub mode: String,
    pub concurrency: usize,
    /// Open loop: scenario steps per second asked for.
    pub rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Scenario steps finished in the measured window, and per second.
    pub ops: u64,
    pub ops_per_second: f64,
    /// Open loop: steps scheduled in the window, and those no worker got to.
    pub scheduled: Option<u64>,
    pub missed: Option<u64>,
    /// Requests answered (or failed) in the measured window, and per second.
    pub requests: u64,
    pub throughput: f64,
    /// All requests, from the intended start (coordinated omission corrected).
    pub latency_ms: Percentiles,
    /// All requests, from the actual send.
    pub service_ms: Percentiles,
    /// The 2xx answers only, from the intended start.
    pub ok_latency_ms: Percentiles,
    /// The 2xx answers only, from the actual send.
    pub ok_service_ms: Percentiles,
    pub ok: u64,
    pub rejected: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    pub kinds: Vec<KindSummary>,
    /// What the backend says about itself (version, durability settings) and other remarks.
    pub notes: Vec<String>,
    pub flash: Option<FlashSides>,
    pub verdict: Option<Verdict>,
    /// Units oversold (0 unless a check failed); absent when the scenario checks nothing.
    pub oversell: Option<i64>,
    pub passed: bool,
}

/// What the caller knows about the run besides its records.
pub struct RunInfo {
    pub label: String,
    pub durability: Option<String>,
    pub scenario: String,
    pub target: String,
    pub backend: String,
    pub prefix: String,
    pub load: Load,
    pub concurrency: usize,
    pub warmup_s: f64,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(info: RunInfo, run: &RunResult, flash: Option<FlashSides>, verdict: Option<Verdict>) -> Self {
        let (kinds, all) = run.recorder.summarize(run.window);
        let secs = run.window.as_secs_f64().max(1e-9);
        let (mode, rate) = match info.load {
            Load::Closed => ("closed", None),
            Load::Open { rate } => ("open", Some(rate)),
        };
        let open = rate.is_some();
        Report {
            label: info.label,
            durability: info.durability,
            scenario: info.scenario,
            target: info.target,
            backend: info.backend,
            prefix: info.prefix,
            mode: mode.to_owned(),
            concurrency: info.concurrency,
            rate,
            warmup_s: info.warmup_s,
            duration_s: secs,
            ops: run.recorder.ops(),
            ops_per_second: run.recorder.ops() as f64 / secs,
            scheduled: open.then_some(run.scheduled),
            missed: open.then_some(run.missed),
            requests: all.requests,
            throughput: all.per_second,
            latency_ms: all.latency_ms.clone(),
            service_ms: all.service_ms.clone(),
            ok_latency_ms: all.ok_latency_ms.clone(),
            ok_service_ms: all.ok_service_ms.clone(),
            ok: all.ok,
            error_count: all.error_count(),
            rejected: all.rejected.clone(),
            errors: all.errors.clone(),
            kinds,
            notes: info.notes,
            flash,
            oversell: verdict.as_ref().map(|v| v.oversell),
            passed: verdict.as_ref().is_none_or(Verdict::passed),
            verdict,
        }
    }

    /// Process exit status: 1 when a consistency check failed.
    pub fn exit_code(&self) -> i32 {
        self.verdict.as_ref().map_or(0, Verdict::exit_code)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let load = match self.rate {
            Some(rate) => format!("open loop at {rate} steps/s, {} workers", self.concurrency),
            None => format!("closed loop, {} workers", self.concurrency),
        };
        let _ = writeln!(
            s,
            "aisle-loadtest: {} against {} ({}), {load}, {:.0} s measured after {:.0} s warm-up",
            self.scenario, self.target, self.backend, self.duration_s, self.warmup_s
        );
        for note in &self.notes {
            let _ = writeln!(s, "  {note}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "request", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let row = |s: &mut String, name: &str, n: u64, rps: f64, p: &Percentiles| {
            let _ = writeln!(
                s,
                "{name:<10} {n:>10} {rps:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.p50, p.p90, p.p99, p.p999, p.max
            );
        };
        for k in &self.kinds {
            row(&mut s, &k.kind, k.requests, k.per_second, &k.latency_ms);
        }
        row(&mut s, "all", self.requests, self.throughput, &self.latency_ms);
        if self.ok < self.requests {
            row(&mut s, "all 2xx", self.ok, self.ok as f64 / self.duration_s.max(1e-9), &self.ok_latency_ms);
        }
        if self.rate.is_some() {
            let _ = writeln!(s, "latency above counts from each request's intended start; service time (from send):");
            row(&mut s, "all", self.requests, self.throughput, &self.service_ms);
            if self.ok < self.requests {
                row(&mut s, "all 2xx", self.ok, self.ok as f64 / self.duration_s.max(1e-9), &self.ok_service_ms);
            }
            let _ = writeln!(
                s,
                "scheduled {} steps, {} not sent before the end (server or workers too slow)",
                self.scheduled.unwrap_or(0),
                self.missed.unwrap_or(0)
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "steps: {} ({:.0}/s); answers: {} ok", self.ops, self.ops_per_second, self.ok);
        for (label, n) in &self.rejected {
            let _ = writeln!(s, "  rejected {label}: {n}");
        }
        for (label, n) in &self.errors {
            let _ = writeln!(s, "  error {label}: {n}");
        }
        if self.errors.is_empty() {
            let _ = writeln!(s, "  errors: none");
        }
        if let Some(v) = &self.verdict {
            let _ = writeln!(s);
            for c in &v.checks {
                let _ = writeln!(s, "[{}] {}: {}", if c.passed { "ok" } else { "FAIL" }, c.name, c.detail);
            }
            let _ = writeln!(
                s,
                "oversell: {} units; {}",
                v.oversell,
                if v.passed() { "all counts add up" } else { "CONSISTENCY CHECK FAILED" }
            );
        }
        s
    }
}

/// The figures of a saved report that a comparison needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Digest {
    pub label: String,
    pub backend: String,
    pub durability: Option<String>,
    pub scenario: String,
    pub concurrency: usize,
    pub duration_s: f64,
    pub throughput: f64,
    pub ok: u64,
    pub latency_ms: Percentiles,
    pub error_count: u64,
    pub oversell: Option<i64>,
    pub passed: bool,
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_owned()
    }
}

/// A markdown table of several runs (the first aisle run is the reference), followed by
/// the ratios of aisle to Redis with `appendfsync always` and to PostgreSQL.
pub fn comparison_markdown(runs: &[Digest]) -> String {
    let mut s = String::new();
    let aisle = runs.iter().find(|r| r.backend == "aisle");
    if let Some(first) = runs.first() {
        let _ = writeln!(
            s,
            "`{}` scenario, {} connections per target, {:.0} s measured per target, same customer stream.\n",
            first.scenario, first.concurrency, first.duration_s
        );
    }
    let _ = writeln!(
        s,
        "| target | durability | requests/s | won claims/s | p50 ms | p99 ms | errors | oversell | checks | aisle ÷ target (requests/s) |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---|---:|");
    for r in runs {
        let vs = match aisle {
            Some(a) if r.backend != "aisle" => ratio(a.throughput, r.throughput),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {vs} |",
            r.label,
            r.durability.as_deref().unwrap_or("?"),
            thousands(r.throughput),
            thousands(r.ok as f64 / r.duration_s.max(1e-9)),
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.error_count,
            r.oversell.map_or("?".to_owned(), |o| o.to_string()),
            if r.passed { "pass" } else { "FAIL" },
        );
    }
    if let Some(a) = aisle {
        let always =
            runs.iter().find(|r| r.backend == "redis" && r.durability.as_deref() == Some("appendfsync always"));
        let pg = runs.iter().find(|r| r.backend == "postgres");
        let _ = writeln!(s);
        for (name, other) in [("Redis (appendfsync always)", always), ("PostgreSQL", pg)] {
            if let Some(o) = other {
                let _ = writeln!(
                    s,
                    "- aisle / {name}: {} the requests per second, {} the p99 latency",
                    ratio(a.throughput, o.throughput),
                    ratio(a.latency_ms.p99, o.latency_ms.p99)
                );
            }
        }
    }
    s
}
