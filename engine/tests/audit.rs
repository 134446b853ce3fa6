//! The audit trail lists every change to a cell with time, command, actor and reason, and
//! survives a restart (including the part that was only in the log when the process stopped).

mod common;

use std::sync::Arc;

use aisle_engine::audit::{Movement, MovementQuery};
use aisle_engine::command::{Adjust, AdjustChange, AdjustReason, Receive, ReserveLine};
use aisle_engine::time::ManualClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};

fn open(dir: &std::path::Path, clock: &ManualClock, holds: bool) -> Engine {
    let mut config = EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone()));
    config.audit_holds = holds;
    Engine::open(config, Storage::dir(dir).expect("storage")).expect("opens").0
}

fn trail(engine: &Engine, sku: Option<&str>, location: Option<&str>) -> Vec<Movement> {
    engine.flush_audit().expect("flush");
    let mut all = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let query = MovementQuery { sku, location, cursor: cursor.as_deref(), limit: 3 };
        let page = engine.movements(&query).expect("movements");
        all.extend(page.movements);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

/// (command, location, actor, on_hand, reserved, committed, reason) of each movement.
type Summary = (String, String, String, i64, i64, i64, Option<String>);

fn summary(movements: &[Movement]) -> Vec<Summary> {
    movements
        .iter()
        .map(|m| {
            (
                m.command.clone(),
                m.location.clone(),
                m.actor.clone(),
                m.on_hand,
                m.reserved,
                m.committed,
                m.reason.clone(),
            )
        })
        .collect()
}

#[test]
fn every_stock_movement_is_listed_with_time_command_actor_and_reason_and_survives_restart() {
    check_trail(false);
}

#[test]
fn holds_are_listed_too_when_configured() {
    check_trail(true);
}

fn check_trail(holds: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_750_000_000_000);
    let engine = open(dir.path(), &clock, holds);
    common::seed(&engine, &["W1", "W2"], &["TEE"], 0);
    let clerk = Context::actor("clerk");
    let checkout = Context::actor("checkout");
    let receive = Receive {
        sku: "TEE".into(),
        location: "W1".into(),
        qty: 10,
        unit_cost: Some(500),
        lot: None,
        reason: Some("PO-77".into()),
    };
    engine.wait(engine.receive(clerk, receive).expect("receive")).expect("durable");
    let count = Adjust {
        sku: "TEE".into(),
        location: "W1".into(),
        change: AdjustChange::Counted(8),
        reason: AdjustReason::Count,
        lot: None,
        note: Some("cycle count".into()),
    };
    engine.wait(engine.adjust(clerk, count).expect("adjust")).expect("durable");
    let lines = vec![ReserveLine { sku: "TEE".into(), location: "W1".into(), qty: 3 }];
    let request = ReserveRequest { channel: "web".into(), customer: None, ttl_seconds: Some(60), lines };
    let hold = engine.wait(engine.reserve(checkout, request).expect("reserve")).expect("durable");
    engine.wait(engine.commit(checkout, hold.id, Some("SO-1".into())).expect("commit")).expect("durable");
    engine.wait(engine.fulfill(clerk, hold.id).expect("fulfill")).expect("durable");
    clock.advance_ms(5_000);
    let receive_w2 =
        Receive { sku: "TEE".into(), location: "W2".into(), qty: 4, unit_cost: None, lot: None, reason: None };
    engine.wait(engine.receive(clerk, receive_w2).expect("receive")).expect("durable");

    let mut expected: Vec<Summary> = vec![
        ("receive".into(), "W1".into(), "clerk".into(), 10, 0, 0, Some("PO-77".into())),
        ("adjust".into(), "W1".into(), "clerk".into(), -2, 0, 0, Some("count: cycle count".into())),
        ("reserve".into(), "W1".into(), "checkout".into(), 0, 3, 0, None),
        ("commit".into(), "W1".into(), "checkout".into(), 0, -3, 3, Some("SO-1".into())),
        ("fulfill".into(), "W1".into(), "clerk".into(), -3, 0, -3, None),
    ];
    if !holds {
        expected.retain(|m| m.0 != "reserve");
    }
    let holds_count = usize::from(holds);
    let w1 = trail(&engine, Some("TEE"), Some("W1"));
    assert_eq!(summary(&w1), expected);
    assert!(w1.iter().all(|m| m.at == 1_750_000_000_000), "time of each change");
    assert!(w1.windows(2).all(|w| w[0].lsn < w[1].lsn), "oldest first");
    let w2 = trail(&engine, None, Some("W2"));
    assert_eq!(summary(&w2), vec![("receive".into(), "W2".into(), "clerk".into(), 4, 0, 0, None)]);
    assert_eq!(w2[0].at, 1_750_000_005_000);
    assert_eq!(trail(&engine, Some("TEE"), None).len(), 5 + holds_count);
    assert_eq!(trail(&engine, None, None).len(), 5 + holds_count);

    // A snapshot flushes the trail before the log goes; the rest comes back from the log.
    engine.snapshot().expect("snapshot");
    let lines = vec![ReserveLine { sku: "TEE".into(), location: "W2".into(), qty: 1 }];
    let request = ReserveRequest { channel: "web".into(), customer: None, ttl_seconds: Some(60), lines };
    engine.wait(engine.reserve(checkout, request).expect("reserve")).expect("durable");
    let count = Adjust {
        sku: "TEE".into(),
        location: "W2".into(),
        change: AdjustChange::Delta(-1),
        reason: AdjustReason::Damage,
        lot: None,
        note: None,
    };
    engine.wait(engine.adjust(clerk, count).expect("adjust")).expect("durable");
    drop(engine);
    let engine = open(dir.path(), &clock, holds);
    let all = trail(&engine, Some("TEE"), None);
    assert_eq!(all.len(), 6 + 2 * holds_count, "nothing lost or doubled by restart: {all:#?}");
    assert_eq!(summary(&all[..expected.len()]), expected);
}

#[test]
fn flash_sale_movements_add_up_to_the_cell() {
    use aisle_engine::flash::{ClaimRequest, FlashSaleDef};
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_750_000_000_000);
    let engine = open(dir.path(), &clock, true);
    common::seed(&engine, &["A", "B"], &["DROP"], 5);
    let ctx = Context::actor("ops");
    let def = FlashSaleDef {
        code: "S".into(),
        sku: "DROP".into(),
        location: None,
        quantity: 8,
        starts_at: 1_749_999_000_000,
        ends_at: 1_750_000_060_000,
        per_customer_limit: 2,
        hold_seconds: 30,
    };
    engine.wait(engine.put_flash_sale(ctx, def.clone()).expect("sale")).expect("durable");
    engine.wait(engine.put_flash_sale(ctx, FlashSaleDef { quantity: 7, ..def }).expect("shrink")).expect("durable");
    let mut ids = Vec::new();
    for customer in ["a", "b", "c"] {
        let claim = ClaimRequest { sale: "S".into(), channel: "web".into(), customer: customer.into(), qty: 2 };
        ids.push(engine.wait(engine.claim(ctx, claim).expect("claim")).expect("durable").id);
    }
    engine.wait(engine.commit(ctx, ids[0], None).expect("commit")).expect("durable");
    engine.wait(engine.release(ctx, ids[1]).expect("release into the pool")).expect("durable");
    clock.advance_ms(60_000);
    engine.expire_due().expect("c's claim expires, then the sale ends");
    for location in ["A", "B"] {
        let moved = trail(&engine, Some("DROP"), Some(location));
        let cell = engine.cell("DROP", location).expect("cell");
        let sum = |f: fn(&Movement) -> i64| moved.iter().map(f).sum::<i64>();
        assert_eq!(
            (sum(|m| m.on_hand), sum(|m| m.reserved), sum(|m| m.committed)),
            (cell.on_hand, cell.reserved, cell.committed),
            "{location}: {:?}",
            summary(&moved)
        );
    }
    let all = trail(&engine, Some("DROP"), None);
    assert!(all.iter().any(|m| m.command == "end_flash_sale" && m.reason.as_deref() == Some("flash sale S")));
    assert!(all.iter().all(|m| m.command != "claim"), "a claim moves units inside the pool only");
}

/// The trail is a projection of the durable log: a record appended but never synced (its fsync
/// failed) leaves no movement, even after the trail is flushed.
#[test]
fn nothing_past_the_durable_lsn_reaches_the_trail_when_fsync_fails() {
    let (storage, wal, _snapshots) = Storage::memory();
    let clock = ManualClock::new(1_750_000_000_000);
    let (engine, _) = Engine::open(EngineConfig::manual(Durability::Fsync, Arc::new(clock)), storage).expect("opens");
    common::seed(&engine, &["W1"], &["TEE"], 0);
    let clerk = Context::actor("clerk");
    let receive =
        || Receive { sku: "TEE".into(), location: "W1".into(), qty: 3, unit_cost: None, lot: None, reason: None };
    engine.wait(engine.receive(clerk, receive()).expect("receive")).expect("durable");
    wal.fail_syncs(true);
    let ack = engine.receive(clerk, receive()).expect("applied in memory, not yet acknowledged");
    assert!(engine.wait(ack).is_err(), "the failed sync is reported");
    engine.flush_audit().expect("flush");
    let durable = engine.stats().durable_lsn;
    let movements = trail(&engine, None, None);
    assert!(movements.iter().all(|m| m.lsn <= durable), "a movement past durable lsn {durable}: {movements:?}");
    assert_eq!(movements.iter().filter(|m| m.command == "receive").count(), 1, "{movements:?}");
}

/// A snapshot stores the trail through its LSN, in the same atomic batch as the applied LSN.
#[test]
fn a_snapshot_moves_the_trails_applied_lsn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_750_000_000_000);
    let engine = open(dir.path(), &clock, false);
    common::seed(&engine, &["W1"], &["TEE"], 4);
    assert_eq!(engine.stats().audit_applied_lsn, 0);
    let info = engine.snapshot().expect("snapshot");
    assert_eq!(engine.stats().audit_applied_lsn, info.lsn);
    drop(engine);
    assert_eq!(open(dir.path(), &clock, false).stats().audit_applied_lsn, info.lsn, "stored, not just in memory");
}
