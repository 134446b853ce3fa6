//! Sourced reservations in the engine: planned and held in one command, logged as the plain
//! reservation they resolve to (recovery does not plan again), retried by key without a
//! second plan.

mod common;

use std::sync::Arc;

use aisle_engine::command::{Fulfillment, Receive, ReserveLine};
use aisle_engine::error::EngineError;
use aisle_engine::model::LocationDef;
use aisle_engine::sourced::SourcingRequest;
use aisle_engine::time::ManualClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, Storage};

fn open(clock: &ManualClock, storage: &Storage) -> Engine {
    let config = EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone()));
    Engine::open(config, storage.clone()).expect("opens").0
}

fn place(code: &str, lat: f64) -> LocationDef {
    LocationDef { lat, lon: 114.0, ..common::location(code) }
}

fn receive(engine: &Engine, location: &str, qty: u32) {
    let receive =
        Receive { sku: "TEE".into(), location: location.into(), qty, unit_cost: None, lot: None, reason: None };
    engine.wait(engine.receive(Context::actor("t"), receive).expect("receive")).expect("durable");
}

fn basket(qty: u32) -> SourcingRequest {
    SourcingRequest {
        channel: "web".into(),
        lines: vec![ReserveLine { sku: "TEE".into(), location: String::new(), qty }],
        fulfillment: Fulfillment::Ship { lat: 22.0, lon: 114.0 },
        allow_split: true,
    }
}

#[test]
fn a_sourced_reservation_is_logged_resolved_and_survives_restart() {
    let clock = ManualClock::new(1_750_000_000_000);
    let (storage, _, _) = Storage::memory();
    let engine = open(&clock, &storage);
    let ctx = Context::actor("t");
    for (code, lat) in [("NEAR", 22.01), ("FAR", 23.0)] {
        engine.wait(engine.put_location(ctx, place(code, lat)).expect("location")).expect("durable");
    }
    engine.wait(engine.put_sku(ctx, common::sku("TEE")).expect("sku")).expect("durable");
    receive(&engine, "NEAR", 3);
    receive(&engine, "FAR", 10);
    let quote = engine.quote(&basket(5)).expect("quote");
    assert_eq!(quote.shipments.iter().map(|s| s.location.as_str()).collect::<Vec<_>>(), vec!["FAR"]);

    let keyed = ctx.with_key("order-1", 7);
    let first = engine.wait(engine.reserve_sourced(keyed, basket(12), None, None).expect("split")).expect("durable");
    let lines: Vec<(String, u32)> = first.lines.iter().map(|l| (l.location.clone(), l.qty)).collect();
    // Split: the warehouse with most units first, the rest nearby; lines listed nearest first.
    assert_eq!(lines, vec![("NEAR".into(), 2), ("FAR".into(), 10)]);
    let again = engine.wait(engine.reserve_sourced(keyed, basket(12), None, None).expect("retry")).expect("durable");
    assert_eq!(again, first, "a retry returns the first reservation");
    assert!(matches!(
        engine.reserve_sourced(ctx, basket(2), None, None),
        Err(EngineError::InsufficientStock(ref short)) if short[0].available == 1
    ));
    engine.check_invariants().expect("invariants");

    // Recovery replays the resolved reservation: the same lines, the same cells.
    engine.close().expect("close");
    let engine = open(&clock, &storage);
    assert_eq!(engine.reservation(first.id).expect("recovered"), first);
    assert_eq!(engine.cell("TEE", "NEAR").expect("cell").reserved, 2);
    assert_eq!(engine.cell("TEE", "FAR").expect("cell").reserved, 10);
    engine.check_invariants().expect("invariants");
}
