//! A child process for the kill -9 test: opens an engine on a data directory with `fsync`
//! durability and reserves from several threads as fast as it can, printing one line per
//! acknowledged (durable) reservation: `ack <id> <qty>`. The parent kills it at a random moment.
//!
//! In `receive` mode each thread receives one unit at a time instead and prints
//! `ack <sku> 1` per acknowledged receipt (the audit-trail test compares the trail with the log).
//!
//! Usage: `crash_writer <data-dir> <threads> [reserve|receive]`

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aisle_engine::command::{Receive, ReserveLine};
use aisle_engine::error::EngineError;
use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
use aisle_engine::time::SystemClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};

pub const SKUS: [&str; 4] = ["K1", "K2", "K3", "K4"];
pub const ON_HAND: u32 = 1_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("data dir"));
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(8);
    let receive_mode = args.next().as_deref() == Some("receive");
    let mut config = EngineConfig::manual(Durability::Fsync, Arc::new(SystemClock));
    // Snapshots happen in the middle of the load too.
    config.snapshot_every_records = 5_000;
    let (engine, _) = Engine::open(config, Storage::dir(&dir).expect("storage")).expect("recovers");
    let ctx = Context::actor("crash-writer");
    if engine.location("W").is_none() {
        let def = LocationDef {
            code: "W".into(),
            name: "W".into(),
            kind: LocationKind::Warehouse,
            lat: 0.0,
            lon: 0.0,
            channels: vec!["web".into()],
            pickup: false,
            ships: true,
            priority: 0,
        };
        engine.wait(engine.put_location(ctx, def).expect("location")).expect("durable");
        for sku in SKUS {
            let def = SkuDef { code: sku.into(), name: sku.into(), price: 1, attributes: vec![], active: true };
            engine.wait(engine.put_sku(ctx, def).expect("sku")).expect("durable");
            let receive = Receive {
                sku: sku.into(),
                location: "W".into(),
                qty: ON_HAND,
                unit_cost: None,
                lot: None,
                reason: None,
            };
            engine.wait(engine.receive(ctx, receive).expect("receive")).expect("durable");
        }
    }
    println!("ready");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (engine, out) = (&engine, out.clone());
            scope.spawn(move || {
                if receive_mode {
                    receive_forever(engine, ctx, SKUS[t % SKUS.len()], &out);
                }
                for i in 0usize.. {
                    // One- and two-line reservations across shards.
                    let mut lines = vec![ReserveLine { sku: SKUS[(t + i) % 4].into(), location: "W".into(), qty: 1 }];
                    if i % 3 == 0 {
                        lines.push(ReserveLine { sku: SKUS[(t + i + 1) % 4].into(), location: "W".into(), qty: 2 });
                    }
                    let qty: u32 = lines.iter().map(|l| l.qty).sum();
                    let request =
                        ReserveRequest { channel: "web".into(), customer: None, ttl_seconds: Some(86_400), lines };
                    match engine.reserve(ctx, request).and_then(|ack| engine.wait(ack)) {
                        Ok(view) => {
                            let mut out = out.lock().expect("stdout");
                            let _ = writeln!(out, "ack {} {qty}", view.id);
                            let _ = out.flush();
                        }
                        Err(EngineError::InsufficientStock(_)) => return,
                        Err(e) => panic!("reserve failed: {e}"),
                    }
                }
            });
        }
    });
}

/// One unit at a time into `sku` at W, printing `ack <sku> 1` once each receipt is durable.
fn receive_forever(engine: &Engine, ctx: Context<'_>, sku: &str, out: &Mutex<std::io::Stdout>) -> ! {
    loop {
        let receive =
            Receive { sku: sku.into(), location: "W".into(), qty: 1, unit_cost: Some(100), lot: None, reason: None };
        match engine.receive(ctx, receive).and_then(|ack| engine.wait(ack)) {
            Ok(_) => {
                let mut out = out.lock().expect("stdout");
                let _ = writeln!(out, "ack {sku} 1");
                let _ = out.flush();
            }
            Err(EngineError::Busy) => std::thread::yield_now(),
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}
