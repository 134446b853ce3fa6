//! The `flash` scenario: many customers stampede one sale. The same customer stream and the
//! same bookkeeping drive every target (aisle over HTTP, Redis, PostgreSQL); only the claim
//! itself and the final read differ.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use serde_json::json;

use crate::backends::{PgClaimer, RedisClaimer};
use crate::check::{FlashClient, FlashFinal};
use crate::driver::Worker;
use crate::http::{Conn, Endpoint};
use crate::stats::{Outcome, Recorder};
use crate::BoxError;

/// Parameters of a flash sale and its crowd.
#[derive(Debug, Clone)]
pub struct FlashConfig {
    /// Distinct customers in the crowd.
    pub customers: u64,
    /// Units on sale.
    pub quantity: u32,
    pub per_customer_limit: u32,
    /// Units per claim.
    pub claim_qty: u32,
    /// Share of claims by a customer who already tried (hits the per-customer limit).
    pub repeat_ratio: f64,
    /// aisle only: pool the sale over the network (`location: null`) instead of one warehouse.
    pub network_pool: bool,
}

/// Which customer claims next, per worker. Worker `w` of `W` brings fresh customers
/// `w, w + W, w + 2W, ...`; with probability `repeat_ratio` (and always once its fresh ones
/// are used up) one it already sent comes back. With the same seed and worker count the
/// stream is the same on every target.
#[derive(Debug)]
pub struct CustomerStream {
    next_fresh: u64,
    stride: u64,
    total: u64,
    repeat_ratio: f64,
    used: Vec<u64>,
}

impl CustomerStream {
    pub fn new(worker: usize, workers: usize, total: u64, repeat_ratio: f64) -> Self {
        CustomerStream {
            next_fresh: worker as u64,
            stride: workers.max(1) as u64,
            total: total.max(1),
            repeat_ratio,
            used: Vec::new(),
        }
    }

    pub fn next(&mut self, rng: &mut SmallRng) -> u64 {
        let fresh_left = self.next_fresh < self.total;
        if !fresh_left || (!self.used.is_empty() && rng.random_bool(self.repeat_ratio)) {
            if self.used.is_empty() {
                return rng.random_range(0..self.total);
            }
            return self.used[rng.random_range(0..self.used.len())];
        }
        let c = self.next_fresh;
        self.next_fresh += self.stride;
        self.used.push(c);
        c
    }
}

/// What one claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Won,
    Nothing,
    /// The answer was lost: it may have been won.
    Unknown,
}

/// The client's running tally of a sale.
#[derive(Debug)]
pub struct FlashTally {
    won_units: AtomicI64,
    unknown_units: AtomicI64,
    per_customer: Vec<AtomicU32>,
}

impl FlashTally {
    pub fn new(customers: u64) -> Self {
        FlashTally {
            won_units: AtomicI64::new(0),
            unknown_units: AtomicI64::new(0),
            per_customer: (0..customers).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn add(&self, customer: u64, qty: u32, effect: Effect) {
        match effect {
            Effect::Won => {
                self.won_units.fetch_add(i64::from(qty), Ordering::Relaxed);
                if let Some(c) = usize::try_from(customer).ok().and_then(|i| self.per_customer.get(i)) {
                    c.fetch_add(qty, Ordering::Relaxed);
                }
            }
            Effect::Unknown => {
                self.unknown_units.fetch_add(i64::from(qty), Ordering::Relaxed);
            }
            Effect::Nothing => {}
        }
    }

    pub fn summary(&self, limit: u32) -> FlashClient {
        let mut max = 0;
        let mut over = 0;
        for c in &self.per_customer {
            let units = c.load(Ordering::Relaxed);
            max = max.max(units);
            over += i64::from(units > limit);
        }
        FlashClient {
            won_units: self.won_units.load(Ordering::Relaxed),
            unknown_units: self.unknown_units.load(Ordering::Relaxed),
            customer_units_max: i64::from(max),
            customers_over_limit: over,
        }
    }
}

/// A sale as the workers see it: names, parameters and the tally.
#[derive(Debug)]
pub struct FlashShared {
    pub prefix: String,
    pub code: String,
    pub claims_path: String,
    pub cfg: FlashConfig,
    pub tally: FlashTally,
}

impl FlashShared {
    pub fn new(prefix: &str, cfg: FlashConfig) -> Self {
        let code = format!("{prefix}-sale");
        FlashShared {
            prefix: prefix.to_owned(),
            claims_path: format!("/v1/flash-sales/{code}/claims"),
            code,
            tally: FlashTally::new(cfg.customers),
            cfg,
        }
    }

    pub fn customer_name(&self, idx: u64) -> String {
        format!("{}-c{idx}", self.prefix)
    }
}

/// One claim against aisle.
pub async fn aisle_claim(conn: &mut Conn, path: &str, customer: &str, qty: u32) -> (Outcome, Effect) {
    let body = Bytes::from(format!(r#"{{"customer":"{customer}","qty":{qty}}}"#));
    match conn.send(Method::POST, path, Some(body)).await {
        Ok(reply) if reply.status == StatusCode::CREATED => (Outcome::Ok, Effect::Won),
        Ok(reply) => (reply.outcome(), Effect::Nothing),
        Err(e) => (e.outcome(), if e.maybe_applied() { Effect::Unknown } else { Effect::Nothing }),
    }
}

/// A worker's way of claiming on its target.
pub enum Claimer {
    Aisle(Conn),
    Redis(RedisClaimer),
    Postgres(PgClaimer),
}

impl Claimer {
    async fn claim(&mut self, shared: &FlashShared, customer: &str) -> (Outcome, Effect) {
        match self {
            Claimer::Aisle(conn) => aisle_claim(conn, &shared.claims_path, customer, shared.cfg.claim_qty).await,
            Claimer::Redis(r) => r.claim(customer, shared.cfg.claim_qty, shared.cfg.per_customer_limit).await,
            Claimer::Postgres(p) => p.claim(&shared.code, customer, shared.cfg.claim_qty).await,
        }
    }
}

/// Claims one unit-batch per step for ever-new (and sometimes returning) customers.
pub struct FlashWorker {
    claimer: Claimer,
    rng: SmallRng,
    customers: CustomerStream,
    shared: Arc<FlashShared>,
}

impl FlashWorker {
    pub fn new(claimer: Claimer, worker: usize, workers: usize, seed: u64, shared: Arc<FlashShared>) -> Self {
        FlashWorker {
            claimer,
            rng: worker_rng(seed, worker),
            customers: CustomerStream::new(worker, workers, shared.cfg.customers, shared.cfg.repeat_ratio),
            shared,
        }
    }
}

/// The random state of worker `worker` for a run seeded with `seed`.
pub fn worker_rng(seed: u64, worker: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ worker as u64)
}

/// Claims once for the next customer of `customers` and records it.
pub async fn claim_step(
    claim: impl std::future::Future<Output = (Outcome, Effect)>,
    shared: &FlashShared,
    customer: u64,
    start: Instant,
    rec: &mut Recorder,
) {
    let sent = Instant::now();
    let (outcome, effect) = claim.await;
    rec.record("claim", &outcome, start, sent, Instant::now());
    shared.tally.add(customer, shared.cfg.claim_qty, effect);
}

impl Worker for FlashWorker {
    async fn step(&mut self, start: Instant, rec: &mut Recorder) {
        let idx = self.customers.next(&mut self.rng);
        let customer = self.shared.customer_name(idx);
        let claim = self.claimer.claim(&self.shared, &customer);
        claim_step(claim, &self.shared, idx, start, rec).await;
        rec.op_done();
    }
}

/// Creates the sale on aisle: a location, a SKU, the stock, the sale itself.
pub async fn setup_aisle(endpoint: &Arc<Endpoint>, shared: &FlashShared, run_for: Duration) -> Result<(), BoxError> {
    let mut conn = Conn::new(endpoint.clone());
    let prefix = &shared.prefix;
    let location = format!("{prefix}-FL");
    let sku = format!("{prefix}-FLASH");
    let loc_body = json!({"name": "Flash warehouse", "kind": "warehouse", "lat": 22.3, "lon": 114.2,
        "channels": ["web", "pos"], "pickup": false, "ships": true, "priority": 0});
    conn.expect(Method::PUT, &format!("/v1/locations/{location}"), Some(&loc_body), &[200, 201]).await?;
    let sku_body = json!({"name": "Flash item", "price": 9900});
    conn.expect(Method::PUT, &format!("/v1/skus/{sku}"), Some(&sku_body), &[200, 201]).await?;
    let mut left = i64::from(shared.cfg.quantity);
    while left > 0 {
        let qty = left.min(1_000_000);
        let body = json!({"location": location, "sku": sku, "qty": qty});
        conn.expect(Method::POST, "/v1/stock/receive", Some(&body), &[200, 201]).await?;
        left -= qty;
    }
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339);
    // Holds outlive the run so that nothing expires before the final check.
    let hold_seconds = (run_for.as_secs() + 600).clamp(300, 86_400);
    let sale = json!({
        "sku": sku,
        "location": if shared.cfg.network_pool { None } else { Some(location) },
        "quantity": shared.cfg.quantity,
        "starts_at": fmt(now - time::Duration::seconds(5))?,
        "ends_at": fmt(now + time::Duration::seconds(i64::try_from(run_for.as_secs())? + 3600))?,
        "per_customer_limit": shared.cfg.per_customer_limit,
        "hold_seconds": hold_seconds,
    });
    conn.expect(Method::PUT, &format!("/v1/flash-sales/{}", shared.code), Some(&sale), &[200, 201]).await?;
    Ok(())
}

#[derive(Deserialize)]
struct SaleOut {
    quantity: i64,
    remaining: i64,
    held: i64,
    sold: i64,
    status: String,
    per_customer_limit: i64,
}

/// Reads the sale's final state from aisle.
pub async fn final_aisle(endpoint: &Arc<Endpoint>, shared: &FlashShared) -> Result<FlashFinal, BoxError> {
    let mut conn = Conn::new(endpoint.clone());
    let reply = conn.expect(Method::GET, &format!("/v1/flash-sales/{}", shared.code), None, &[200]).await?;
    let s: SaleOut = serde_json::from_slice(&reply.body)?;
    Ok(FlashFinal {
        quantity: s.quantity,
        remaining: s.remaining,
        held: s.held,
        sold: s.sold,
        per_customer_limit: s.per_customer_limit,
        status: Some(s.status),
        customer_units_max: None,
        customer_units_total: None,
    })
}
