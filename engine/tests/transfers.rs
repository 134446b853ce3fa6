//! Transfers and replenishment in the engine: the lifecycle (hold, ship, partial receipts,
//! cancel), refusals that change nothing, lots and costs carried along, snapshot and restart,
//! replenishment approval and suggestions, the audit trail, and a property test of random
//! histories checking after every step that transfers conserve `on_hand + incoming` per SKU
//! over the network and keep SPEC invariants 1 and 2.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use aisle_engine::audit::MovementQuery;
use aisle_engine::command::{Adjust, AdjustChange, AdjustReason, CellPolicy, LotRef, Receive, ReserveLine};
use aisle_engine::error::{Conflict, EngineError, Entity};
use aisle_engine::model::{LocationDef, LocationKind};
use aisle_engine::time::{Clock, ManualClock, MS_PER_DAY};
use aisle_engine::transfer::{
    ReplenishmentRequest, ReplenishmentStatus, ReplenishmentView, TransferLine, TransferRequest, TransferStatus,
    TransferView,
};
use aisle_engine::view::CellView;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};
use proptest::prelude::*;

const START: i64 = 1_750_000_000_000;

fn ctx() -> Context<'static> {
    Context::actor("test")
}

fn open(clock: &ManualClock, storage: &Storage) -> Engine {
    let config = EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone()));
    Engine::open(config, storage.clone()).expect("opens").0
}

/// (code, lat, lon): a warehouse far out, two stores near each other in Hong Kong.
const NETWORK: [(&str, f64, f64); 3] = [("WH", 22.355, 114.105), ("S1", 22.282, 114.158), ("S2", 22.319, 114.169)];

fn setup() -> (ManualClock, Storage, Engine) {
    let clock = ManualClock::new(START);
    let (storage, _, _) = Storage::memory();
    let engine = open(&clock, &storage);
    for (code, lat, lon) in NETWORK {
        let def = LocationDef { kind: LocationKind::Store, lat, lon, ..common::location(code) };
        engine.wait(engine.put_location(ctx(), def).expect("location")).expect("durable");
    }
    for sku in ["TEE", "CAP", "MUG"] {
        engine.wait(engine.put_sku(ctx(), common::sku(sku)).expect("sku")).expect("durable");
    }
    (clock, storage, engine)
}

fn receive(engine: &Engine, sku: &str, location: &str, qty: u32, cost: Option<u64>) {
    let receive = Receive { sku: sku.into(), location: location.into(), qty, unit_cost: cost, lot: None, reason: None };
    engine.wait(engine.receive(ctx(), receive).expect("receive")).expect("durable");
}

fn lines(lines: &[(&str, u32)]) -> Vec<TransferLine> {
    lines.iter().map(|(sku, qty)| TransferLine { sku: (*sku).into(), qty: *qty }).collect()
}

fn create(engine: &Engine, from: &str, to: &str, items: &[(&str, u32)]) -> Result<TransferView, EngineError> {
    let request = TransferRequest { from: from.into(), to: to.into(), lines: lines(items), note: None };
    engine.wait(engine.create_transfer(ctx(), request)?)
}

fn ship(engine: &Engine, id: u64) -> Result<TransferView, EngineError> {
    engine.wait(engine.ship_transfer(ctx(), id)?)
}

fn receive_transfer(engine: &Engine, id: u64, items: Option<&[(&str, u32)]>) -> Result<TransferView, EngineError> {
    engine.wait(engine.receive_transfer(ctx(), id, items.map(lines))?)
}

fn cancel(engine: &Engine, id: u64) -> Result<TransferView, EngineError> {
    engine.wait(engine.cancel_transfer(ctx(), id)?)
}

fn cell(engine: &Engine, sku: &str, location: &str) -> CellView {
    engine.cell(sku, location).expect("cell")
}

/// (on_hand, reserved, incoming, available) of a cell.
fn q(engine: &Engine, sku: &str, location: &str) -> (i64, i64, i64, i64) {
    let c = cell(engine, sku, location);
    (c.on_hand, c.reserved, c.incoming, c.available)
}

/// `on_hand + incoming` of a SKU over the network.
fn network(engine: &Engine, sku: &str) -> i64 {
    engine.stock(sku).expect("stock").locations.iter().map(|c| c.on_hand + c.incoming).sum()
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, EngineError>) -> bool {
    matches!(result, Err(EngineError::Conflict(Conflict::Other(_))))
}

#[test]
fn hold_ship_two_partial_receipts_with_cost_and_conservation() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 10, Some(100));
    receive(&engine, "TEE", "S1", 5, Some(200));
    let total = network(&engine, "TEE");

    let held = create(&engine, "WH", "S1", &[("TEE", 4)]).expect("create");
    assert_eq!((held.status, held.from.as_str(), held.to.as_str()), (TransferStatus::Held, "WH", "S1"));
    assert_eq!((held.lines[0].qty, held.lines[0].shipped, held.lines[0].received), (4, 0, 0));
    assert_eq!(q(&engine, "TEE", "WH"), (10, 4, 0, 6), "the units are held at the source");
    assert_eq!(q(&engine, "TEE", "S1"), (5, 0, 0, 5));
    assert_eq!(network(&engine, "TEE"), total);
    engine.check_invariants().expect("invariants after create");

    let shipped = ship(&engine, held.id).expect("ship");
    assert_eq!((shipped.status, shipped.shipped_at.is_some()), (TransferStatus::Shipped, true));
    assert_eq!((shipped.lines[0].shipped, shipped.lines[0].unit_cost), (4, Some(100)));
    assert_eq!(q(&engine, "TEE", "WH"), (6, 0, 0, 6), "the units left the shelf");
    assert_eq!(q(&engine, "TEE", "S1"), (5, 0, 4, 5), "in transit, not sellable");
    assert_eq!(network(&engine, "TEE"), total);
    engine.check_invariants().expect("invariants after ship");
    assert!(is_conflict(&ship(&engine, held.id)), "shipping twice");
    assert!(is_conflict(&cancel(&engine, held.id)), "a shipped transfer cannot be cancelled");

    let part = receive_transfer(&engine, held.id, Some(&[("TEE", 1)])).expect("first receipt");
    assert_eq!((part.status, part.lines[0].received), (TransferStatus::PartiallyReceived, 1));
    assert_eq!(q(&engine, "TEE", "S1"), (6, 0, 3, 6));
    assert_eq!(cell(&engine, "TEE", "S1").avg_cost, 183, "(5 × 200 + 1 × 100) / 6");
    assert!(is_conflict(&receive_transfer(&engine, held.id, Some(&[("TEE", 4)]))), "more than outstanding");
    assert_eq!(q(&engine, "TEE", "S1"), (6, 0, 3, 6), "a refused receipt changes nothing");
    // A SKU the transfer does not carry conflicts with the transfer as it is.
    let not_on_it = receive_transfer(&engine, held.id, Some(&[("CAP", 1)]));
    assert!(is_conflict(&not_on_it) && format!("{not_on_it:?}").contains("CAP is not on transfer"), "{not_on_it:?}");

    let part = receive_transfer(&engine, held.id, Some(&[("TEE", 2)])).expect("second receipt");
    assert_eq!((part.status, part.lines[0].received), (TransferStatus::PartiallyReceived, 3));
    let done = receive_transfer(&engine, held.id, None).expect("the rest");
    assert_eq!((done.status, done.lines[0].received), (TransferStatus::Received, 4));
    assert_eq!(q(&engine, "TEE", "S1"), (9, 0, 0, 9));
    assert_eq!(network(&engine, "TEE"), total);
    assert!(is_conflict(&receive_transfer(&engine, held.id, None)), "nothing left to receive");
    assert!(is_conflict(&cancel(&engine, held.id)));
    assert_eq!(engine.transfer(held.id), Some(done));
    engine.check_invariants().expect("invariants after receipt");
}

#[test]
fn cancel_before_shipping_releases_the_hold_and_repeats_harmlessly() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 10, None);
    receive(&engine, "CAP", "WH", 3, None);
    let t = create(&engine, "WH", "S2", &[("TEE", 6), ("CAP", 3), ("TEE", 1)]).expect("create");
    assert_eq!(t.lines.len(), 2, "lines of one SKU are merged");
    assert_eq!(t.lines[0].qty, 7);
    assert_eq!(q(&engine, "CAP", "WH"), (3, 3, 0, 0));
    let cancelled = cancel(&engine, t.id).expect("cancel");
    assert_eq!((cancelled.status, cancelled.cancelled_at.is_some()), (TransferStatus::Cancelled, true));
    assert_eq!(q(&engine, "TEE", "WH"), (10, 0, 0, 10));
    assert_eq!(q(&engine, "CAP", "WH"), (3, 0, 0, 3));
    let again = engine.cancel_transfer(ctx(), t.id).expect("repeat");
    assert_eq!(engine.wait(again).expect("durable"), cancelled, "a repeated cancel answers the same");
    assert!(is_conflict(&ship(&engine, t.id)));
    assert!(is_conflict(&receive_transfer(&engine, t.id, None)));
    assert!(matches!(cancel(&engine, 999), Err(EngineError::NotFound { entity: Entity::Transfer, .. })));
    engine.check_invariants().expect("invariants");
}

#[test]
fn refusals_change_nothing() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 5, None);
    receive(&engine, "CAP", "WH", 5, None);
    match create(&engine, "WH", "S1", &[("TEE", 5), ("CAP", 6), ("MUG", 1)]) {
        Err(EngineError::InsufficientStock(shortfalls)) => {
            let got: Vec<_> = shortfalls.iter().map(|s| (s.sku.as_str(), s.requested, s.available)).collect();
            assert_eq!(got, [("CAP", 6, 5), ("MUG", 1, 0)]);
            assert!(shortfalls.iter().all(|s| s.location.as_deref() == Some("WH")));
        }
        other => panic!("expected insufficient stock, got {other:?}"),
    }
    assert_eq!(q(&engine, "TEE", "WH"), (5, 0, 0, 5), "all lines or none");
    assert!(matches!(
        create(&engine, "WH", "NOWHERE", &[("TEE", 1)]),
        Err(EngineError::NotFound { entity: Entity::Location, .. })
    ));
    assert!(matches!(
        create(&engine, "WH", "S1", &[("HAT", 1)]),
        Err(EngineError::NotFound { entity: Entity::Sku, .. })
    ));
    assert!(matches!(create(&engine, "WH", "WH", &[("TEE", 1)]), Err(EngineError::Invalid(_))));
    assert!(matches!(create(&engine, "WH", "S1", &[("TEE", 0)]), Err(EngineError::Invalid(_))));
    assert!(matches!(create(&engine, "WH", "S1", &[]), Err(EngineError::Invalid(_))));
    // A count finds fewer units than held: shipping is refused until someone sorts it out.
    let t = create(&engine, "WH", "S1", &[("TEE", 4)]).expect("create");
    let count = Adjust {
        sku: "TEE".into(),
        location: "WH".into(),
        change: AdjustChange::Counted(2),
        reason: AdjustReason::Count,
        lot: None,
        note: None,
    };
    engine.wait(engine.adjust(ctx(), count).expect("count")).expect("durable");
    assert!(matches!(ship(&engine, t.id), Err(EngineError::InsufficientStock(_))));
    assert_eq!(engine.transfer(t.id).expect("kept").status, TransferStatus::Held);
    cancel(&engine, t.id).expect("cancel");
    engine.check_invariants().expect("invariants");
}

#[test]
fn lots_travel_earliest_expiring_first() {
    let (clock, _, engine) = setup();
    let today = (clock.now() / MS_PER_DAY) as i32;
    for (code, days, qty) in [("LATE", 90, 5), ("SOON", 10, 3)] {
        let lot = Some(LotRef { code: code.into(), expires_on: today + days });
        let receive = Receive { sku: "MUG".into(), location: "WH".into(), qty, unit_cost: None, lot, reason: None };
        engine.wait(engine.receive(ctx(), receive).expect("receive")).expect("durable");
    }
    let t = create(&engine, "WH", "S1", &[("MUG", 4)]).expect("create");
    let shipped = ship(&engine, t.id).expect("ship");
    let lots: Vec<_> = shipped.lines[0].lots.iter().map(|l| (l.code.as_str(), l.qty)).collect();
    assert_eq!(lots, [("SOON", 3), ("LATE", 1)]);
    receive_transfer(&engine, t.id, Some(&[("MUG", 2)])).expect("part");
    let arrived: Vec<_> = cell(&engine, "MUG", "S1").lots.iter().map(|l| (l.code.clone(), l.qty)).collect();
    assert_eq!(arrived, [("SOON".to_owned(), 2)]);
    receive_transfer(&engine, t.id, None).expect("rest");
    let arrived: Vec<_> = cell(&engine, "MUG", "S1").lots.iter().map(|l| (l.code.clone(), l.qty)).collect();
    assert_eq!(arrived, [("SOON".to_owned(), 3), ("LATE".to_owned(), 1)]);
    engine.check_invariants().expect("invariants");
}

#[test]
fn idempotent_create_returns_the_first_transfer() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 5, None);
    let request = TransferRequest { from: "WH".into(), to: "S1".into(), lines: lines(&[("TEE", 2)]), note: None };
    let keyed = ctx().with_key("t-1", 77);
    let first = engine.wait(engine.create_transfer(keyed, request.clone()).expect("first")).expect("durable");
    let again = engine.wait(engine.create_transfer(keyed, request).expect("retry")).expect("durable");
    assert_eq!(first, again);
    assert_eq!(q(&engine, "TEE", "WH"), (5, 2, 0, 3), "held once");
}

/// Everything observable about transfers, replenishments and cells.
fn digest(engine: &Engine, transfers: u64, replenishments: u64) -> String {
    let mut out = common::digest(engine, &["TEE", "CAP", "MUG"], 0);
    for id in 1..=transfers {
        out.push_str(&format!("{:?}\n", engine.transfer(id)));
    }
    for id in 1..=replenishments {
        out.push_str(&format!("{:?}\n", engine.replenishment(id)));
    }
    out
}

#[test]
fn transfers_and_requests_survive_snapshot_replay_and_restart() {
    for snapshot in [false, true] {
        let (clock, storage, engine) = setup();
        receive(&engine, "TEE", "WH", 20, Some(300));
        receive(&engine, "CAP", "S2", 20, None);
        let held = create(&engine, "WH", "S1", &[("TEE", 2)]).expect("held");
        let shipped = create(&engine, "WH", "S2", &[("TEE", 3)]).expect("to ship");
        ship(&engine, shipped.id).expect("ship");
        let partial = create(&engine, "S2", "S1", &[("CAP", 5)]).expect("partial");
        ship(&engine, partial.id).expect("ship");
        receive_transfer(&engine, partial.id, Some(&[("CAP", 2)])).expect("part");
        if snapshot {
            engine.snapshot().expect("snapshot");
        }
        let cancelled = create(&engine, "WH", "S2", &[("TEE", 1)]).expect("to cancel");
        cancel(&engine, cancelled.id).expect("cancel");
        let request =
            ReplenishmentRequest { location: "S1".into(), from: None, lines: lines(&[("TEE", 2)]), note: None };
        let asked = engine.wait(engine.request_replenishment(ctx(), request.clone()).expect("ask")).expect("durable");
        let approved = engine.wait(engine.request_replenishment(ctx(), request).expect("ask")).expect("durable");
        engine.wait(engine.approve_replenishment(ctx(), approved.id, None).expect("approve")).expect("durable");
        let before = digest(&engine, 6, 2);
        engine.close().expect("close");

        let engine = open(&clock, &storage);
        assert_eq!(digest(&engine, 6, 2), before, "snapshot {snapshot}");
        engine.check_invariants().expect("invariants after restart");
        // Ids go on, and every state can move on.
        let next = create(&engine, "WH", "S2", &[("TEE", 1)]).expect("new transfer");
        assert_eq!(next.id, 6);
        ship(&engine, held.id).expect("ship after restart");
        receive_transfer(&engine, partial.id, None).expect("receive after restart");
        receive_transfer(&engine, shipped.id, None).expect("receive after restart");
        assert_eq!(cell(&engine, "TEE", "S2").avg_cost, 300);
        let approved_again = engine.approve_replenishment(ctx(), asked.id, None).expect("approve");
        assert_eq!(engine.wait(approved_again).expect("durable").transfer, Some(7));
        engine.check_invariants().expect("invariants");
    }
}

// ---- replenishment ------------------------------------------------------------------------

fn ask(engine: &Engine, location: &str, from: Option<&str>, items: &[(&str, u32)]) -> ReplenishmentView {
    let request = ReplenishmentRequest {
        location: location.into(),
        from: from.map(str::to_owned),
        lines: lines(items),
        note: None,
    };
    engine.wait(engine.request_replenishment(ctx(), request).expect("request")).expect("durable")
}

fn approve(engine: &Engine, id: u64, from: Option<&str>) -> Result<ReplenishmentView, EngineError> {
    engine.wait(engine.approve_replenishment(ctx(), id, from.map(str::to_owned))?)
}

#[test]
fn approval_picks_the_best_source_and_creates_the_transfer_atomically() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 8, None);
    receive(&engine, "TEE", "S2", 8, None);
    receive(&engine, "CAP", "WH", 2, None);
    let asked = ask(&engine, "S1", None, &[("TEE", 5)]);
    assert_eq!((asked.status, asked.transfer), (ReplenishmentStatus::Requested, None));
    assert_eq!(q(&engine, "TEE", "WH"), (8, 0, 0, 8), "a request holds nothing");
    // Equal stock at WH and S2: the nearer store wins.
    let approved = approve(&engine, asked.id, None).expect("approve");
    assert_eq!((approved.status, approved.from.as_deref()), (ReplenishmentStatus::Approved, Some("S2")));
    let transfer = engine.transfer(approved.transfer.expect("transfer id")).expect("transfer");
    assert_eq!((transfer.from.as_str(), transfer.to.as_str()), ("S2", "S1"));
    assert_eq!((transfer.status, transfer.replenishment), (TransferStatus::Held, Some(asked.id)));
    assert_eq!(q(&engine, "TEE", "S2"), (8, 5, 0, 3));
    assert!(is_conflict(&approve(&engine, asked.id, None)), "approved once");
    // Now WH has the most; a line nobody can fill keeps the request requested.
    let both = ask(&engine, "S1", None, &[("TEE", 4), ("CAP", 3)]);
    assert!(matches!(approve(&engine, both.id, None), Err(EngineError::InsufficientStock(_))));
    assert_eq!(engine.replenishment(both.id).expect("kept").status, ReplenishmentStatus::Requested);
    assert_eq!(q(&engine, "TEE", "WH"), (8, 0, 0, 8), "nothing held");
    // The request's own source, then an approval's, win over the ranking.
    let from_s2 = ask(&engine, "S1", Some("S2"), &[("TEE", 3)]);
    assert_eq!(approve(&engine, from_s2.id, None).expect("approve").from.as_deref(), Some("S2"));
    let overridden = ask(&engine, "S1", Some("S2"), &[("TEE", 1)]);
    assert_eq!(approve(&engine, overridden.id, Some("WH")).expect("approve").from.as_deref(), Some("WH"));
    // The requesting store cannot be its own source: a conflict with the stored request.
    assert!(is_conflict(&approve(&engine, both.id, Some("S1"))));
    // Rejection, repeated harmlessly; no approving it afterwards.
    let rejected = engine.wait(engine.reject_replenishment(ctx(), both.id, Some("no stock".into())).expect("reject"));
    let rejected = rejected.expect("durable");
    assert_eq!((rejected.status, rejected.reason.as_deref()), (ReplenishmentStatus::Rejected, Some("no stock")));
    let again = engine.reject_replenishment(ctx(), both.id, None).expect("repeat");
    assert_eq!(engine.wait(again).expect("durable"), rejected);
    assert!(is_conflict(&approve(&engine, both.id, None)));
    assert!(matches!(
        engine.reject_replenishment(ctx(), asked.id, None),
        Err(EngineError::Conflict(Conflict::Other(_)))
    ));
    assert!(matches!(approve(&engine, 99, None), Err(EngineError::NotFound { entity: Entity::Replenishment, .. })));
    // No stock anywhere else: 409 naming no location.
    match approve(&engine, ask(&engine, "WH", None, &[("MUG", 1)]).id, None) {
        Err(EngineError::InsufficientStock(s)) => assert_eq!((s[0].location.as_deref(), s[0].available), (None, 0)),
        other => panic!("expected insufficient stock, got {other:?}"),
    }
    engine.check_invariants().expect("invariants");
}

fn policy(engine: &Engine, sku: &str, location: &str, point: i64, qty: i64) {
    let policy = CellPolicy {
        sku: sku.into(),
        location: location.into(),
        reorder_point: Some(point),
        reorder_qty: Some(qty),
        ..CellPolicy::default()
    };
    engine.wait(engine.set_cell_policy(ctx(), policy).expect("policy")).expect("durable");
}

#[test]
fn suggestions_count_incoming_and_on_order_and_name_the_best_source() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 50, None);
    receive(&engine, "TEE", "S2", 6, None);
    receive(&engine, "TEE", "S1", 2, None);
    receive(&engine, "CAP", "S1", 9, None);
    policy(&engine, "TEE", "S1", 10, 4);
    policy(&engine, "CAP", "S1", 5, 5); // above its reorder point: not listed
    policy(&engine, "TEE", "S2", 20, 1);
    let page = engine.replenishment_suggestions(Some("S1"), None, 100).expect("suggestions");
    assert_eq!(page.items.len(), 1, "{page:?}");
    let s = &page.items[0];
    assert_eq!((s.sku.as_str(), s.available, s.incoming, s.on_order), ("TEE", 2, 0, 0));
    assert_eq!(s.suggested_qty, 8, "max(reorder_qty 4, 10 - 2)");
    let source = s.source.as_ref().expect("a source");
    assert_eq!((source.location.as_str(), source.available), ("WH", 50), "only WH has 8");
    assert!(source.distance_km > 5.0);

    // Units in transit count, and so do held transfers and open requests.
    let t = create(&engine, "S2", "S1", &[("TEE", 3)]).expect("transfer");
    let s = &engine.replenishment_suggestions(Some("S1"), None, 100).expect("suggestions").items[0];
    assert_eq!((s.on_order, s.suggested_qty), (3, 5));
    ship(&engine, t.id).expect("ship");
    let s = &engine.replenishment_suggestions(Some("S1"), None, 100).expect("suggestions").items[0];
    assert_eq!((s.incoming, s.on_order, s.suggested_qty), (3, 0, 5));
    ask(&engine, "S1", None, &[("TEE", 5)]);
    assert!(engine.replenishment_suggestions(Some("S1"), None, 100).expect("suggestions").items.is_empty());

    // Every location, paged in (location, SKU) order.
    let all = engine.replenishment_suggestions(None, None, 100).expect("all");
    let keys: Vec<_> = all.items.iter().map(|s| (s.location.as_str(), s.sku.as_str())).collect();
    assert_eq!(keys, [("S2", "TEE")]);
    assert_eq!(all.items[0].source.as_ref().map(|s| s.location.as_str()), Some("WH"));
    policy(&engine, "CAP", "WH", 3, 3);
    policy(&engine, "MUG", "S2", 1, 1);
    let first = engine.replenishment_suggestions(None, None, 2).expect("page 1");
    let keys: Vec<_> = first.items.iter().map(|s| (s.location.as_str(), s.sku.as_str())).collect();
    assert_eq!(keys, [("S2", "MUG"), ("S2", "TEE")]);
    let (loc, sku) = first.next.clone().expect("more");
    let second = engine.replenishment_suggestions(None, Some((&loc, &sku)), 2).expect("page 2");
    let keys: Vec<_> = second.items.iter().map(|s| (s.location.as_str(), s.sku.as_str())).collect();
    assert_eq!((keys, second.next), (vec![("WH", "CAP")], None));
    assert_eq!(second.items[0].source.as_ref().map(|s| (s.location.as_str(), s.available)), Some(("S1", 9)));
    assert!(first.items[0].source.is_none(), "no one has mugs");
    assert!(matches!(engine.replenishment_suggestions(Some("NOWHERE"), None, 10), Err(EngineError::NotFound { .. })));
}

#[test]
fn every_transfer_step_is_in_the_audit_trail() {
    let (_, _, engine) = setup();
    receive(&engine, "TEE", "WH", 10, None);
    let t = create(&engine, "WH", "S1", &[("TEE", 4)]).expect("create");
    ship(&engine, t.id).expect("ship");
    receive_transfer(&engine, t.id, Some(&[("TEE", 1)])).expect("part");
    receive_transfer(&engine, t.id, None).expect("rest");
    let c = create(&engine, "WH", "S2", &[("TEE", 2)]).expect("create");
    cancel(&engine, c.id).expect("cancel");
    engine.flush_audit().expect("flush");
    let query = MovementQuery { sku: Some("TEE"), location: None, cursor: None, limit: 100 };
    let page = engine.movements(&query).expect("movements");
    let mut got: Vec<_> = page
        .movements
        .iter()
        .filter(|m| m.command != "receive")
        .map(|m| (m.command.as_str(), m.location.as_str(), m.on_hand, m.reserved, m.incoming, m.reason.clone()))
        .collect();
    got.sort();
    let reason = |id: u64| Some(format!("transfer {id}"));
    let (a, b) = (reason(t.id), reason(c.id));
    let mut want = vec![
        ("transfer_create", "WH", 0, 4, 0, a.clone()),
        ("transfer_ship", "WH", -4, -4, 0, a.clone()),
        ("transfer_ship", "S1", 0, 0, 4, a.clone()),
        ("transfer_receive", "S1", 1, 0, -1, a.clone()),
        ("transfer_receive", "S1", 3, 0, -3, a),
        ("transfer_create", "WH", 0, 2, 0, b.clone()),
        ("transfer_cancel", "WH", 0, -2, 0, b),
    ];
    want.sort();
    assert_eq!(got, want);
    // The trail reconciles with the cells.
    for location in ["WH", "S1", "S2"] {
        let c = cell(&engine, "TEE", location);
        let moved = page.movements.iter().filter(|m| m.location == location);
        let (on_hand, incoming) = moved.fold((0, 0), |(o, i), m| (o + m.on_hand, i + m.incoming));
        assert_eq!((on_hand, incoming), (c.on_hand, c.incoming), "{location}");
    }
}

// ---- property test ----------------------------------------------------------------------

const SKUS: [&str; 2] = ["A", "B"];
const LOCS: [&str; 3] = ["L0", "L1", "L2"];

#[derive(Debug, Clone)]
enum Op {
    Receive { sku: usize, loc: usize, qty: u32 },
    Adjust { sku: usize, loc: usize, delta: i64 },
    Reserve { sku: usize, loc: usize, qty: u32 },
    Release { pick: usize },
    Create { from: usize, to: usize, a: u32, b: u32 },
    Ship { pick: usize },
    ReceivePart { pick: usize, line: usize, qty: u32 },
    ReceiveAll { pick: usize },
    Cancel { pick: usize },
    Snapshot,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..2usize, 0..3usize, 1..12u32).prop_map(|(sku, loc, qty)| Op::Receive { sku, loc, qty }),
        1 => (0..2usize, 0..3usize, prop_oneof![-6..0i64, 1..6i64])
            .prop_map(|(sku, loc, delta)| Op::Adjust { sku, loc, delta }),
        1 => (0..2usize, 0..3usize, 1..5u32).prop_map(|(sku, loc, qty)| Op::Reserve { sku, loc, qty }),
        1 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        4 => (0..3usize, 0..3usize, 0..6u32, 0..6u32).prop_map(|(from, to, a, b)| Op::Create { from, to, a, b }),
        3 => any::<usize>().prop_map(|pick| Op::Ship { pick }),
        3 => (any::<usize>(), 0..2usize, 1..5u32).prop_map(|(pick, line, qty)| Op::ReceivePart { pick, line, qty }),
        1 => any::<usize>().prop_map(|pick| Op::ReceiveAll { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Restart),
    ]
}

/// What the model expects of a transfer.
#[derive(Debug, Clone)]
struct MTransfer {
    id: u64,
    from: usize,
    /// (sku index, qty, received)
    lines: Vec<(usize, u32, u32)>,
    status: TransferStatus,
}

struct Harness {
    clock: ManualClock,
    storage: Storage,
    engine: Option<Engine>,
    /// Expected `on_hand + incoming` per SKU over the network.
    totals: [i64; 2],
    transfers: Vec<MTransfer>,
    reservations: Vec<u64>,
}

impl Harness {
    fn new() -> Harness {
        let clock = ManualClock::new(START);
        let (storage, _, _) = Storage::memory();
        let engine = open(&clock, &storage);
        common::seed(&engine, &LOCS, &SKUS, 5);
        Harness { clock, storage, engine: Some(engine), totals: [15, 15], transfers: Vec::new(), reservations: vec![] }
    }

    fn engine(&self) -> Engine {
        self.engine.clone().expect("open")
    }

    fn cells(&self) -> BTreeMap<(usize, usize), CellView> {
        let engine = self.engine();
        let mut out = BTreeMap::new();
        for (s, sku) in SKUS.iter().enumerate() {
            for (l, loc) in LOCS.iter().enumerate() {
                out.insert((s, l), cell(&engine, sku, loc));
            }
        }
        out
    }

    fn pick(&self, pick: usize) -> Option<MTransfer> {
        (!self.transfers.is_empty()).then(|| self.transfers[pick % self.transfers.len()].clone())
    }

    fn set(&mut self, id: u64, change: impl FnOnce(&mut MTransfer)) {
        if let Some(t) = self.transfers.iter_mut().find(|t| t.id == id) {
            change(t);
        }
    }

    /// Applies one op; returns whether it may change `on_hand + incoming` (and oversell).
    fn step(&mut self, op: &Op) -> bool {
        let engine = self.engine();
        let before = self.cells();
        match op.clone() {
            Op::Receive { sku, loc, qty } => {
                receive(&engine, SKUS[sku], LOCS[loc], qty, Some(100));
                self.totals[sku] += i64::from(qty);
                return true;
            }
            Op::Adjust { sku, loc, delta } => {
                let adjust = Adjust {
                    sku: SKUS[sku].into(),
                    location: LOCS[loc].into(),
                    change: AdjustChange::Delta(delta),
                    reason: AdjustReason::Other,
                    lot: None,
                    note: None,
                };
                match engine.adjust(ctx(), adjust) {
                    Ok(ack) => {
                        engine.wait(ack).expect("durable");
                        self.totals[sku] += delta;
                    }
                    Err(EngineError::Conflict(_)) => assert!(before[&(sku, loc)].on_hand + delta < 0),
                    Err(e) => panic!("adjust: {e:?}"),
                }
                return true;
            }
            Op::Reserve { sku, loc, qty } => {
                let request = ReserveRequest {
                    channel: "web".into(),
                    customer: None,
                    ttl_seconds: Some(600),
                    lines: vec![ReserveLine { sku: SKUS[sku].into(), location: LOCS[loc].into(), qty }],
                };
                match engine.reserve(ctx(), request) {
                    Ok(ack) => self.reservations.push(engine.wait(ack).expect("durable").id),
                    Err(EngineError::InsufficientStock(_)) => {}
                    Err(e) => panic!("reserve: {e:?}"),
                }
            }
            Op::Release { pick } => {
                if !self.reservations.is_empty() {
                    let id = self.reservations.swap_remove(pick % self.reservations.len());
                    engine.wait(engine.release(ctx(), id).expect("release")).expect("durable");
                }
            }
            Op::Create { from, to, a, b } => {
                let items: Vec<(usize, u32)> = [(0, a), (1, b)].into_iter().filter(|(_, qty)| *qty > 0).collect();
                let named: Vec<(&str, u32)> = items.iter().map(|(s, qty)| (SKUS[*s], *qty)).collect();
                let result = create(&engine, LOCS[from], LOCS[to], &named);
                let fits = items.iter().all(|(s, qty)| before[&(*s, from)].available >= i64::from(*qty));
                match result {
                    Ok(view) => {
                        assert!(from != to && !items.is_empty() && fits, "{view:?}");
                        assert_eq!(view.status, TransferStatus::Held);
                        let lines = items.iter().map(|(s, qty)| (*s, *qty, 0)).collect();
                        self.transfers.push(MTransfer { id: view.id, from, lines, status: TransferStatus::Held });
                    }
                    Err(EngineError::Invalid(_)) => assert!(from == to || items.is_empty()),
                    Err(EngineError::InsufficientStock(_)) => assert!(!fits),
                    Err(e) => panic!("create: {e:?}"),
                }
            }
            Op::Ship { pick } => {
                let Some(t) = self.pick(pick) else { return false };
                let result = ship(&engine, t.id);
                if t.status != TransferStatus::Held {
                    assert!(is_conflict(&result), "{result:?}");
                    return false;
                }
                let on_shelf = t.lines.iter().all(|(s, qty, _)| before[&(*s, t.from)].on_hand >= i64::from(*qty));
                match result {
                    Ok(view) => {
                        assert!(on_shelf);
                        assert_eq!(view.status, TransferStatus::Shipped);
                        self.set(t.id, |t| t.status = TransferStatus::Shipped);
                    }
                    Err(EngineError::InsufficientStock(_)) => assert!(!on_shelf),
                    Err(e) => panic!("ship: {e:?}"),
                }
            }
            Op::ReceivePart { pick, line, qty } => {
                let Some(t) = self.pick(pick) else { return false };
                let Some(&(sku, shipped, received)) = t.lines.get(line % t.lines.len()) else { return false };
                let result = receive_transfer(&engine, t.id, Some(&[(SKUS[sku], qty)]));
                let receivable = matches!(t.status, TransferStatus::Shipped | TransferStatus::PartiallyReceived);
                if !receivable || qty > shipped - received {
                    assert!(is_conflict(&result), "{t:?} receiving {qty}: {result:?}");
                    return false;
                }
                let view = result.expect("receipt");
                self.set(t.id, |t| {
                    let line = t.lines.iter_mut().find(|l| l.0 == sku).expect("line");
                    line.2 += qty;
                    let done = t.lines.iter().all(|(_, qty, received)| qty == received);
                    t.status = if done { TransferStatus::Received } else { TransferStatus::PartiallyReceived };
                });
                assert_eq!(Some(view.status), self.transfers.iter().find(|m| m.id == t.id).map(|m| m.status));
            }
            Op::ReceiveAll { pick } => {
                let Some(t) = self.pick(pick) else { return false };
                let result = receive_transfer(&engine, t.id, None);
                if !matches!(t.status, TransferStatus::Shipped | TransferStatus::PartiallyReceived) {
                    assert!(is_conflict(&result), "{result:?}");
                    return false;
                }
                assert_eq!(result.expect("receipt").status, TransferStatus::Received);
                self.set(t.id, |t| {
                    t.status = TransferStatus::Received;
                    t.lines.iter_mut().for_each(|line| line.2 = line.1);
                });
            }
            Op::Cancel { pick } => {
                let Some(t) = self.pick(pick) else { return false };
                let result = cancel(&engine, t.id);
                match t.status {
                    TransferStatus::Held | TransferStatus::Cancelled => {
                        assert_eq!(result.expect("cancel").status, TransferStatus::Cancelled);
                        self.set(t.id, |t| t.status = TransferStatus::Cancelled);
                    }
                    _ => assert!(is_conflict(&result), "{result:?}"),
                }
            }
            Op::Snapshot => {
                engine.snapshot().expect("snapshot");
            }
            Op::Restart => {
                drop(engine);
                self.engine.take().expect("open").close().expect("close");
                self.engine = Some(open(&self.clock, &self.storage));
            }
        }
        // Transfers, holds and restarts never oversell a cell that was not already.
        for (key, after) in self.cells() {
            assert!(after.oversold <= before[&key].oversold, "{op:?} oversold {after:?}");
        }
        false
    }

    fn check(&self) {
        let engine = self.engine();
        engine.check_invariants().expect("invariants 1 and 2");
        for (s, sku) in SKUS.iter().enumerate() {
            assert_eq!(network(&engine, sku), self.totals[s], "on_hand + incoming of {sku} is conserved");
        }
        for cell in self.cells().values() {
            assert!(cell.available >= 0 && cell.incoming >= 0, "{cell:?}");
        }
        for t in &self.transfers {
            let view = engine.transfer(t.id).expect("kept");
            assert_eq!(view.status, t.status, "transfer {}", t.id);
            let received: Vec<u32> = view.lines.iter().map(|l| l.received).collect();
            assert_eq!(received, t.lines.iter().map(|l| l.2).collect::<Vec<_>>());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_transfer_histories_conserve_stock_and_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.step(op);
            harness.check();
        }
    }
}
