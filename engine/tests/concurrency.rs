//! Many threads hammer one hot SKU; the engine must grant exactly the units there are.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aisle_engine::command::ReserveLine;
use aisle_engine::error::EngineError;
use aisle_engine::time::SystemClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};

const THREADS: usize = 32;
const ON_HAND: u32 = 5_000;

fn hammer(engine: &Engine, qty_of: impl Fn(usize, usize) -> u32 + Sync) -> (u64, u64) {
    let granted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (engine, granted, refused, qty_of) = (engine, &granted, &refused, &qty_of);
            scope.spawn(move || {
                let ctx = Context::actor("hammer");
                for i in 0.. {
                    let qty = qty_of(t, i);
                    let request = ReserveRequest {
                        channel: "web".into(),
                        customer: None,
                        ttl_seconds: Some(600),
                        lines: vec![ReserveLine { sku: "HOT".into(), location: "WH".into(), qty }],
                    };
                    match engine.reserve(ctx, request) {
                        Ok(ack) => {
                            engine.wait(ack).expect("durable");
                            granted.fetch_add(u64::from(qty), Ordering::Relaxed);
                        }
                        Err(EngineError::InsufficientStock(_)) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            if engine.cell("HOT", "WH").expect("cell").available == 0 {
                                return;
                            }
                        }
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            });
        }
    });
    (granted.into_inner(), refused.into_inner())
}

#[test]
fn thirty_two_threads_get_exactly_the_units_on_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::dir(dir.path()).expect("storage");
    let config = EngineConfig::manual(Durability::Fsync, Arc::new(SystemClock));
    let (engine, _) = Engine::open(config.clone(), storage).expect("opens");
    common::seed(&engine, &["WH"], &["HOT"], ON_HAND);

    // Mixed sizes so the last units are contested by requests that do not fit.
    let (granted, refused) = hammer(&engine, |t, i| 1 + ((t + i) % 3) as u32);
    assert_eq!(granted, u64::from(ON_HAND), "exactly on_hand units granted");
    assert!(refused >= THREADS as u64, "every thread saw the end of stock");
    let cell = engine.cell("HOT", "WH").expect("cell");
    assert_eq!((cell.reserved, cell.available), (i64::from(ON_HAND), 0));
    engine.check_invariants().expect("invariants");
    engine.close().expect("close");

    // And the log agrees after a restart.
    let (engine, _) = Engine::open(config, Storage::dir(dir.path()).expect("storage")).expect("recovers");
    assert_eq!(engine.cell("HOT", "WH").expect("cell").reserved, i64::from(ON_HAND));
    engine.check_invariants().expect("invariants after recovery");
}

#[test]
fn reservations_catalog_writes_and_snapshots_interleave_without_deadlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig::manual(Durability::Async, Arc::new(SystemClock));
    let (engine, _) = Engine::open(config, Storage::dir(dir.path()).expect("storage")).expect("opens");
    common::seed(&engine, &["WH", "ST"], &["A", "B", "C", "D"], 100_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(800);
    std::thread::scope(|scope| {
        for t in 0..4usize {
            let engine = &engine;
            scope.spawn(move || {
                let ctx = Context::actor("checkout");
                let skus = ["A", "B", "C", "D"];
                let mut i = 0usize;
                while std::time::Instant::now() < deadline {
                    let lines = vec![
                        ReserveLine { sku: skus[(t + i) % 4].into(), location: "WH".into(), qty: 1 },
                        ReserveLine { sku: skus[(t + i + 1) % 4].into(), location: "ST".into(), qty: 1 },
                    ];
                    let request = ReserveRequest { channel: "web".into(), customer: None, ttl_seconds: None, lines };
                    let view = engine.wait(engine.reserve(ctx, request).expect("reserve")).expect("durable");
                    if i % 2 == 0 {
                        engine.wait(engine.release(ctx, view.id).expect("release")).expect("durable");
                    }
                    i += 1;
                }
            });
        }
        let engine = &engine;
        scope.spawn(move || {
            let mut n = 0;
            while std::time::Instant::now() < deadline {
                let location = common::location(&format!("NEW-{}", n % 7));
                engine.wait(engine.put_location(Context::actor("admin"), location).expect("put")).expect("durable");
                n += 1;
            }
        });
        scope.spawn(move || {
            while std::time::Instant::now() < deadline {
                engine.snapshot().expect("snapshot");
            }
        });
    });
    engine.check_invariants().expect("invariants");
}
