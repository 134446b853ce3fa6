//! Shared set-up for aisle's benchmarks: a seeded engine and a few measuring helpers.
//!
//! The criterion suites (`benches/benches.rs`) time single operations; the `engine-throughput`
//! binary measures the figures in `BENCHMARKS.md` that need many threads or a large state.

use std::sync::Arc;

use aisle_engine::command::{Receive, ReserveLine};
use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
use aisle_engine::time::SystemClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};

pub const ACTOR: &str = "bench";

pub fn location(code: &str) -> LocationDef {
    LocationDef {
        code: code.into(),
        name: code.into(),
        kind: LocationKind::Warehouse,
        lat: 22.3,
        lon: 114.2,
        channels: vec!["web".into()],
        pickup: true,
        ships: true,
        priority: 0,
    }
}

pub fn sku_code(i: usize) -> String {
    format!("SKU-{i:07}")
}

pub fn location_code(i: usize) -> String {
    format!("LOC-{i:04}")
}

/// An engine with `locations` × `skus` cells of `qty` units each.
pub fn seeded(durability: Durability, storage: Storage, locations: usize, skus: usize, qty: u32) -> Engine {
    let config = EngineConfig::manual(durability, Arc::new(SystemClock));
    let (engine, _) = Engine::open(config, storage).expect("engine opens");
    seed(&engine, locations, skus, qty);
    engine
}

pub fn seed(engine: &Engine, locations: usize, skus: usize, qty: u32) {
    seed_without_snapshot(engine, locations, skus, qty);
    // Make the set-up durable and drop its log before measuring anything.
    let _ = engine.snapshot().map(|_| ());
}

pub fn seed_without_snapshot(engine: &Engine, locations: usize, skus: usize, qty: u32) {
    let ctx = Context::actor(ACTOR);
    for l in 0..locations {
        let _ = engine.put_location(ctx, location(&location_code(l))).expect("location");
    }
    for s in 0..skus {
        let code = sku_code(s);
        let def = SkuDef { code: code.clone(), name: code.clone(), price: 100, attributes: vec![], active: true };
        let _ = engine.put_sku(ctx, def).expect("sku");
        for l in 0..locations {
            let receive = Receive {
                sku: code.clone(),
                location: location_code(l),
                qty,
                unit_cost: Some(10),
                lot: None,
                reason: None,
            };
            let _ = engine.receive(ctx, receive).expect("receive");
        }
    }
}

pub fn request(lines: &[(usize, usize, u32)]) -> ReserveRequest {
    ReserveRequest {
        channel: "web".into(),
        customer: None,
        ttl_seconds: Some(600),
        lines: lines
            .iter()
            .map(|&(s, l, qty)| ReserveLine { sku: sku_code(s), location: location_code(l), qty })
            .collect(),
    }
}

/// Resident set size of this process in bytes (Linux), for memory-per-cell figures.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Opens a flash sale of `quantity` units of SKU 0 at location 0, open for an hour, limit 1.
pub fn flash_sale(engine: &Engine, code: &str, quantity: u32) {
    let now = aisle_engine::time::Clock::now(&SystemClock);
    let def = aisle_engine::flash::FlashSaleDef {
        code: code.into(),
        sku: sku_code(0),
        location: Some(location_code(0)),
        quantity,
        starts_at: now - 1,
        ends_at: now + 3_600_000,
        per_customer_limit: 1,
        hold_seconds: 600,
    };
    let ack = engine.put_flash_sale(Context::actor(ACTOR), def).expect("flash sale");
    engine.wait(ack).expect("durable");
}

/// A claim of one unit by `customer`.
pub fn claim(sale: &str, customer: &str) -> aisle_engine::flash::ClaimRequest {
    aisle_engine::flash::ClaimRequest { sale: sale.into(), channel: "web".into(), customer: customer.into(), qty: 1 }
}
