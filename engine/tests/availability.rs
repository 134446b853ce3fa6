//! Availability: here, the nearest locations with stock (nearest first, limited), and the
//! network total for a channel, from the cells as they stand.

mod common;

use std::sync::Arc;

use aisle_engine::availability::AvailabilityQuery;
use aisle_engine::command::{Receive, ReserveLine};
use aisle_engine::error::EngineError;
use aisle_engine::model::LocationDef;
use aisle_engine::time::ManualClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};

fn engine() -> Engine {
    let clock = ManualClock::new(1_750_000_000_000);
    let (storage, _, _) = Storage::memory();
    let config = EngineConfig::manual(Durability::None, Arc::new(clock));
    Engine::open(config, storage).expect("opens").0
}

/// Locations on a line of longitude, 0.01° (about 1.1 km) apart; `S3` sells to web only.
fn network(engine: &Engine) {
    let ctx = Context::actor("t");
    for i in 0..6 {
        let mut def = LocationDef { lat: 22.0 + f64::from(i) * 0.01, lon: 114.0, ..common::location(&format!("S{i}")) };
        if i == 3 {
            def.channels = vec!["web".into()];
        }
        engine.wait(engine.put_location(ctx, def).expect("location")).expect("durable");
    }
    engine.wait(engine.put_sku(ctx, common::sku("TEE")).expect("sku")).expect("durable");
    engine.wait(engine.put_sku(ctx, common::sku("CAP")).expect("sku")).expect("durable");
    for (location, qty) in [("S1", 4), ("S2", 0), ("S3", 7), ("S4", 2), ("S5", 9)] {
        if qty > 0 {
            let receive =
                Receive { sku: "TEE".into(), location: location.into(), qty, unit_cost: None, lot: None, reason: None };
            engine.wait(engine.receive(ctx, receive).expect("receive")).expect("durable");
        }
    }
}

/// (sku, available here, nearby (location, available), network) of each answer.
type Summary = (String, Option<i64>, Vec<(String, i64)>, i64);

fn summary(engine: &Engine, query: &AvailabilityQuery) -> Vec<Summary> {
    engine
        .availability(query)
        .expect("availability")
        .into_iter()
        .map(|a| {
            let nearby = a.nearby.iter().map(|s| (s.location.clone(), s.available)).collect();
            (a.sku, a.here.map(|h| h.available), nearby, a.network)
        })
        .collect()
}

#[test]
fn here_nearby_and_network() {
    let engine = engine();
    network(&engine);
    let query = AvailabilityQuery {
        skus: vec!["TEE".into(), "CAP".into()],
        location: Some("S0".into()),
        channel: Some("pos".into()),
        limit: 2,
        ..AvailabilityQuery::default()
    };
    assert_eq!(
        summary(&engine, &query),
        vec![("TEE".into(), Some(0), vec![("S1".into(), 4), ("S4".into(), 2)], 15), ("CAP".into(), Some(0), vec![], 0),],
        "S2 has nothing, S3 does not sell to pos"
    );
    // A hold changes the answer at once; `near` moves the origin.
    let hold = ReserveRequest {
        channel: "web".into(),
        customer: None,
        ttl_seconds: None,
        lines: vec![ReserveLine { sku: "TEE".into(), location: "S4".into(), qty: 2 }],
    };
    engine.wait(engine.reserve(Context::actor("t"), hold).expect("reserve")).expect("durable");
    let query = AvailabilityQuery {
        skus: vec!["TEE".into()],
        near: Some((22.05, 114.0)),
        channel: Some("web".into()),
        limit: 5,
        ..AvailabilityQuery::default()
    };
    assert_eq!(
        summary(&engine, &query),
        vec![("TEE".into(), None, vec![("S5".into(), 9), ("S3".into(), 7), ("S1".into(), 4)], 20)]
    );
    let distances: Vec<f64> = engine.availability(&query).expect("availability")[0]
        .nearby
        .iter()
        .map(|s| s.distance_km.expect("distance"))
        .collect();
    assert!(distances[0] < 0.01 && (distances[1] - 2.22).abs() < 0.01, "{distances:?}");
}

#[test]
fn bad_queries_are_refused() {
    let engine = engine();
    network(&engine);
    let unknown = AvailabilityQuery { skus: vec!["NOPE".into()], limit: 5, ..AvailabilityQuery::default() };
    assert!(matches!(engine.availability(&unknown), Err(EngineError::NotFound { .. })));
    let none = AvailabilityQuery::default();
    assert!(matches!(engine.availability(&none), Err(EngineError::Invalid(_))));
    let far = AvailabilityQuery { skus: vec!["TEE".into()], near: Some((95.0, 0.0)), ..AvailabilityQuery::default() };
    assert!(matches!(engine.availability(&far), Err(EngineError::Invalid(_))));
}

#[test]
fn valuation_is_on_hand_times_moving_average_cost() {
    let engine = engine();
    network(&engine);
    let ctx = Context::actor("t");
    for (location, qty, cost) in [("S1", 2, 300), ("S1", 3, 500), ("S5", 1, 1001)] {
        let receive = Receive {
            sku: "CAP".into(),
            location: location.into(),
            qty,
            unit_cost: Some(cost),
            lot: None,
            reason: None,
        };
        engine.wait(engine.receive(ctx, receive).expect("receive")).expect("durable");
    }
    let report = engine.valuation(None).expect("valuation");
    let s1 = report.locations.iter().find(|l| l.location == "S1").expect("S1");
    // CAP at S1: 5 units at (2×300 + 3×500)/5 = 420; TEE has no cost.
    assert_eq!((s1.skus, s1.on_hand, s1.value), (2, 9, 2100));
    assert_eq!(report.value, 2100 + 1001);
    let only = engine.valuation(Some("S5")).expect("valuation");
    assert_eq!(only.locations.len(), 1);
    assert_eq!((only.on_hand, only.value), (10, 1001));
    assert!(matches!(engine.valuation(Some("NOPE")), Err(EngineError::NotFound { .. })));
}
