//! The aisle-only scenarios: `checkout` (reserve, then commit or release), `pos` (stock
//! reads) and `mixed` (a blend of those and flash claims), with their catalog set-up and
//! the final check of every cell they touched.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::RngExt;
use rand_distr::{Distribution, Zipf};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::check::{CellClient, CellFinal};
use crate::driver::Worker;
use crate::flash::{aisle_claim, claim_step, worker_rng, CustomerStream, FlashShared};
use crate::http::{Conn, Endpoint, Reply};
use crate::stats::Recorder;
use crate::BoxError;

/// The SKUs and locations a run creates, and the stock of each cell.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub skus: usize,
    pub locations: usize,
    /// Units received into every cell.
    pub stock: i64,
    /// Zipf exponent of SKU popularity (larger: a few SKUs take more of the traffic).
    pub zipf_s: f64,
}

/// How a checkout behaves.
#[derive(Debug, Clone)]
pub struct CheckoutConfig {
    /// Units per reservation: 1 to this, uniformly.
    pub max_qty: u32,
    /// Share of reservations committed; the rest are released.
    pub commit_ratio: f64,
    pub ttl_seconds: u32,
}

/// What a `pos` step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PosRead {
    /// `GET /v1/stock/{sku}/{location}`: one cell.
    Cell,
    /// `GET /v1/availability?skus=(5 SKUs)&location=..&channel=pos&limit=5` (the server answers 501 until
    /// availability lands).
    Availability,
}

/// Weights of the step kinds of an aisle worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub checkout: u32,
    pub pos: u32,
    pub flash: u32,
}

impl Mix {
    /// Parses `checkout=30,pos=60,flash=10`; kinds left out weigh 0.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut mix = Mix { checkout: 0, pos: 0, flash: 0 };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| format!("{part}: expected kind=weight"))?;
            let weight: u32 = weight.trim().parse().map_err(|_| format!("{part}: weight must be a whole number"))?;
            match name.trim() {
                "checkout" => mix.checkout = weight,
                "pos" => mix.pos = weight,
                "flash" => mix.flash = weight,
                other => return Err(format!("{other}: kinds are checkout, pos and flash")),
            }
        }
        if mix.total() == 0 {
            return Err("the mix needs a positive weight".into());
        }
        Ok(mix)
    }

    fn total(&self) -> u32 {
        self.checkout + self.pos + self.flash
    }
}

/// The client's count for one cell, updated by every worker.
#[derive(Debug, Default)]
pub struct CellTally {
    live: AtomicI64,
    committed: AtomicI64,
    unknown_reserve: AtomicI64,
    unknown_finish: AtomicI64,
}

/// A run's catalog: names, popularity and the per-cell tallies.
#[derive(Debug)]
pub struct Catalog {
    pub skus: Vec<String>,
    pub locations: Vec<String>,
    pub stock: i64,
    zipf: Zipf<f64>,
    tallies: Vec<CellTally>,
}

impl Catalog {
    pub fn new(prefix: &str, cfg: &CatalogConfig) -> Result<Self, BoxError> {
        let skus: Vec<String> = (0..cfg.skus.max(1)).map(|i| format!("{prefix}-S{i}")).collect();
        let locations: Vec<String> = (0..cfg.locations.max(1)).map(|i| format!("{prefix}-L{i}")).collect();
        let zipf = Zipf::new(skus.len() as f64, cfg.zipf_s).map_err(|e| format!("zipf: {e}"))?;
        let tallies = (0..skus.len() * locations.len()).map(|_| CellTally::default()).collect();
        Ok(Catalog { skus, locations, stock: cfg.stock, zipf, tallies })
    }

    /// A SKU by popularity (Zipf) and a location uniformly; returns the cell index.
    fn pick(&self, rng: &mut SmallRng) -> usize {
        let rank = self.zipf.sample(rng) as usize;
        let sku = rank.clamp(1, self.skus.len()) - 1;
        sku * self.locations.len() + rng.random_range(0..self.locations.len())
    }

    fn names(&self, cell: usize) -> (&str, &str) {
        let l = self.locations.len();
        (&self.skus[cell / l], &self.locations[cell % l])
    }

    pub fn cells(&self) -> usize {
        self.tallies.len()
    }

    /// The client's count of cell `cell`.
    pub fn client(&self, cell: usize) -> CellClient {
        let t = &self.tallies[cell];
        CellClient {
            received: self.stock,
            live: t.live.load(Ordering::Relaxed),
            committed: t.committed.load(Ordering::Relaxed),
            unknown_reserve: t.unknown_reserve.load(Ordering::Relaxed),
            unknown_finish: t.unknown_finish.load(Ordering::Relaxed),
        }
    }
}

/// A request of a set-up or a final read.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub expect: &'static [u16],
}

/// Sends `calls` over `conns` connections at once; answers come back in order.
pub async fn fan_out(endpoint: &Arc<Endpoint>, conns: usize, calls: Vec<Call>) -> Result<Vec<Reply>, BoxError> {
    let conns = conns.clamp(1, calls.len().max(1));
    let mut lanes: Vec<Vec<(usize, Call)>> = (0..conns).map(|_| Vec::new()).collect();
    let total = calls.len();
    for (i, call) in calls.into_iter().enumerate() {
        lanes[i % conns].push((i, call));
    }
    let mut tasks = Vec::new();
    for lane in lanes {
        let mut conn = Conn::new(endpoint.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(lane.len());
            for (i, call) in lane {
                out.push((i, conn.expect(call.method, &call.path, call.body.as_ref(), call.expect).await?));
            }
            Ok::<_, BoxError>(out)
        }));
    }
    let mut replies: Vec<Option<Reply>> = (0..total).map(|_| None).collect();
    for task in tasks {
        for (i, reply) in task.await.map_err(|e| format!("set-up task: {e}"))?? {
            replies[i] = Some(reply);
        }
    }
    Ok(replies.into_iter().flatten().collect())
}

/// Creates the catalog's locations, SKUs and stock on the server.
pub async fn setup_catalog(endpoint: &Arc<Endpoint>, catalog: &Catalog, conns: usize) -> Result<(), BoxError> {
    let put = |path: String, body: Value| Call { method: Method::PUT, path, body: Some(body), expect: &[200, 201] };
    let n = catalog.locations.len() as f64;
    let mut calls = Vec::new();
    for (i, code) in catalog.locations.iter().enumerate() {
        // Spread over Hong Kong: stores mostly, every tenth a warehouse.
        let kind = if i % 10 == 0 { "warehouse" } else { "store" };
        let (lat, lon) = (22.2 + 0.3 * i as f64 / n, 113.9 + 0.4 * ((i * 7) % 13) as f64 / 13.0);
        calls.push(put(
            format!("/v1/locations/{code}"),
            json!({"name": format!("Location {i}"), "kind": kind, "lat": lat, "lon": lon,
                "channels": ["web", "pos"], "pickup": kind == "store", "ships": true, "priority": 0}),
        ));
    }
    for (i, code) in catalog.skus.iter().enumerate() {
        calls.push(put(format!("/v1/skus/{code}"), json!({"name": format!("Item {i}"), "price": 1000 + i})));
    }
    fan_out(endpoint, conns, calls).await?;
    let mut receives = Vec::new();
    for cell in 0..catalog.cells() {
        let (sku, location) = catalog.names(cell);
        let mut left = catalog.stock;
        while left > 0 {
            let qty = left.min(1_000_000);
            left -= qty;
            receives.push(Call {
                method: Method::POST,
                path: "/v1/stock/receive".into(),
                body: Some(json!({"location": location, "sku": sku, "qty": qty})),
                expect: &[200, 201],
            });
        }
    }
    fan_out(endpoint, conns, receives).await?;
    Ok(())
}

#[derive(Deserialize)]
struct CellOut {
    on_hand: i64,
    reserved: i64,
    committed: i64,
    available: i64,
    oversold: i64,
}

/// Reads every cell of the catalog: `(name, client count, server state)`.
pub async fn final_cells(
    endpoint: &Arc<Endpoint>,
    catalog: &Catalog,
    conns: usize,
) -> Result<Vec<(String, CellClient, CellFinal)>, BoxError> {
    let calls = (0..catalog.cells())
        .map(|cell| {
            let (sku, location) = catalog.names(cell);
            Call { method: Method::GET, path: format!("/v1/stock/{sku}/{location}"), body: None, expect: &[200] }
        })
        .collect();
    let replies = fan_out(endpoint, conns, calls).await?;
    let mut out = Vec::with_capacity(replies.len());
    for (cell, reply) in replies.iter().enumerate() {
        let c: CellOut = serde_json::from_slice(&reply.body)?;
        let (sku, location) = catalog.names(cell);
        let fin = CellFinal {
            on_hand: c.on_hand,
            reserved: c.reserved,
            committed: c.committed,
            available: c.available,
            oversold: c.oversold,
        };
        out.push((format!("{sku}@{location}"), catalog.client(cell), fin));
    }
    Ok(out)
}

/// What every aisle worker shares.
#[derive(Debug)]
pub struct AisleShared {
    pub catalog: Option<Catalog>,
    pub checkout: CheckoutConfig,
    pub pos_read: PosRead,
    pub flash: Option<Arc<FlashShared>>,
    pub mix: Mix,
}

/// A worker of the `checkout`, `pos` and `mixed` scenarios.
pub struct AisleWorker {
    conn: Conn,
    rng: SmallRng,
    customers: Option<CustomerStream>,
    shared: Arc<AisleShared>,
}

impl AisleWorker {
    pub fn new(endpoint: Arc<Endpoint>, worker: usize, workers: usize, seed: u64, shared: Arc<AisleShared>) -> Self {
        let customers =
            shared.flash.as_ref().map(|f| CustomerStream::new(worker, workers, f.cfg.customers, f.cfg.repeat_ratio));
        AisleWorker { conn: Conn::new(endpoint), rng: worker_rng(seed, worker), customers, shared }
    }

    async fn checkout(&mut self, catalog: &Catalog, start: Instant, rec: &mut Recorder) {
        let cfg = &self.shared.checkout;
        let cell = catalog.pick(&mut self.rng);
        let tally = &catalog.tallies[cell];
        let (sku, location) = catalog.names(cell);
        let qty = self.rng.random_range(1..=cfg.max_qty.max(1));
        let units = i64::from(qty);
        let body = format!(
            r#"{{"channel":"web","lines":[{{"sku":"{sku}","qty":{qty},"location":"{location}"}}],"ttl_seconds":{}}}"#,
            cfg.ttl_seconds
        );
        let sent = Instant::now();
        let result = self.conn.send(Method::POST, "/v1/reservations", Some(Bytes::from(body))).await;
        let id = match result {
            Ok(reply) => {
                rec.record("reserve", &reply.outcome(), start, sent, Instant::now());
                if reply.status != StatusCode::CREATED {
                    return;
                }
                tally.live.fetch_add(units, Ordering::Relaxed);
                match serde_json::from_slice::<IdOut>(&reply.body) {
                    Ok(r) => r.id,
                    // Held but unknown: it stays live, and the check counts it as such.
                    Err(_) => return,
                }
            }
            Err(e) => {
                rec.record("reserve", &e.outcome(), start, sent, Instant::now());
                if e.maybe_applied() {
                    tally.unknown_reserve.fetch_add(units, Ordering::Relaxed);
                }
                return;
            }
        };
        let commit = self.rng.random_bool(cfg.commit_ratio);
        let (kind, method, path, body) = if commit {
            ("commit", Method::POST, format!("/v1/reservations/{id}/commit"), Some(Bytes::from_static(b"{}")))
        } else {
            ("release", Method::DELETE, format!("/v1/reservations/{id}"), None)
        };
        let sent = Instant::now();
        match self.conn.send(method, &path, body).await {
            Ok(reply) => {
                rec.record(kind, &reply.outcome(), sent, sent, Instant::now());
                if reply.status.is_success() {
                    tally.live.fetch_sub(units, Ordering::Relaxed);
                    if commit {
                        tally.committed.fetch_add(units, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                rec.record(kind, &e.outcome(), sent, sent, Instant::now());
                if e.maybe_applied() {
                    tally.unknown_finish.fetch_add(units, Ordering::Relaxed);
                }
            }
        }
    }

    async fn read(&mut self, catalog: &Catalog, start: Instant, rec: &mut Recorder) {
        let cell = catalog.pick(&mut self.rng);
        let (sku, location) = catalog.names(cell);
        let path = match self.shared.pos_read {
            PosRead::Cell => format!("/v1/stock/{sku}/{location}"),
            PosRead::Availability => {
                // A POS basket: this SKU and four more (Zipf-popular), nearest five locations.
                let mut skus = sku.to_string();
                for _ in 0..4 {
                    let (other, _) = catalog.names(catalog.pick(&mut self.rng));
                    skus.push(',');
                    skus.push_str(other);
                }
                format!("/v1/availability?skus={skus}&location={location}&channel=pos&limit=5")
            }
        };
        let sent = Instant::now();
        let outcome = match self.conn.send(Method::GET, &path, None).await {
            Ok(reply) => reply.outcome(),
            Err(e) => e.outcome(),
        };
        rec.record("read", &outcome, start, sent, Instant::now());
    }
}

#[derive(Deserialize)]
struct IdOut {
    id: String,
}

impl Worker for AisleWorker {
    async fn step(&mut self, start: Instant, rec: &mut Recorder) {
        let shared = self.shared.clone();
        let mix = shared.mix;
        let mut pick = self.rng.random_range(0..mix.total());
        if pick < mix.checkout {
            if let Some(catalog) = &shared.catalog {
                self.checkout(catalog, start, rec).await;
            }
        } else {
            pick -= mix.checkout;
            if pick < mix.pos {
                if let Some(catalog) = &shared.catalog {
                    self.read(catalog, start, rec).await;
                }
            } else if let (Some(flash), Some(customers)) = (&shared.flash, self.customers.as_mut()) {
                let idx = customers.next(&mut self.rng);
                let customer = flash.customer_name(idx);
                let claim = aisle_claim(&mut self.conn, &flash.claims_path, &customer, flash.cfg.claim_qty);
                claim_step(claim, flash, idx, start, rec).await;
            }
        }
        rec.op_done();
    }
}
