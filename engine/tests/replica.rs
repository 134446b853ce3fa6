//! A replica is an engine opened on a copy of another engine's files: whatever the live engine
//! did, snapshot + retained log must rebuild exactly its state, whatever the replica's clock says.
//!
//! The property test runs random histories (stock, reservations with idempotency keys,
//! transfers, flash-sale claims, clock jumps across every retention, sweeps, logged pruning,
//! snapshots) and after every step opens a replica and compares its canonical image with the
//! live one.

mod common;

use std::sync::Arc;

use aisle_engine::command::{Receive, ReserveLine};
use aisle_engine::flash::{ClaimRequest, FlashSaleDef};
use aisle_engine::snapshot::Image;
use aisle_engine::time::{Clock, ManualClock, MS_PER_DAY};
use aisle_engine::transfer::{TransferLine, TransferRequest};
use aisle_engine::view::ReservationStatus;
use aisle_engine::wal::{Durability, MemStorage};
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};
use proptest::prelude::*;

const START: i64 = 1_750_000_000_000;
const HOUR: i64 = 3_600_000;
const SKUS: [&str; 3] = ["A", "B", "C"];
const LOCATIONS: [&str; 2] = ["WH", "ST"];

struct Live {
    engine: Engine,
    wal: MemStorage,
    snapshots: MemStorage,
    clock: ManualClock,
}

fn open_live() -> Live {
    let (storage, wal, snapshots) = Storage::memory();
    let clock = ManualClock::new(START);
    let (engine, _) =
        Engine::open(EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone())), storage).expect("opens");
    common::seed(&engine, &LOCATIONS, &SKUS, 50);
    Live { engine, wal, snapshots, clock }
}

fn copy(from: &MemStorage) -> MemStorage {
    let to = MemStorage::new();
    for name in from.names() {
        to.set_file(&name, from.file(&name).expect("listed file"));
    }
    to
}

/// Opens an engine on copies of the live engine's files, with a clock `skew_ms` away from the
/// live one: replay must not read it.
fn replica(live: &Live, skew_ms: i64) -> Engine {
    // A replica sees what is durable; sweeps log expiries without waiting for them.
    let last = live.engine.stats().last_lsn;
    live.engine.wait(aisle_engine::Ack { value: (), lsn: Some(last) }).expect("the log is healthy");
    let storage =
        Storage { wal: Arc::new(copy(&live.wal)), snapshots: Arc::new(copy(&live.snapshots)), documents: None };
    let clock = ManualClock::new(live.clock.now() + skew_ms);
    let (engine, _) =
        Engine::open(EngineConfig::manual(Durability::Fsync, Arc::new(clock)), storage).expect("the replica opens");
    engine
}

fn assert_same_state(live: &Engine, replica: &Engine) {
    let (a, b): (Image, Image) = (live.canonical_image(), replica.canonical_image());
    assert_eq!(a.lsn, b.lsn, "the replica replayed to another LSN");
    assert_eq!(a.stock.reservations, b.stock.reservations, "reservations differ");
    assert_eq!(a.idempotency, b.idempotency, "idempotency results differ");
    assert_eq!(a.transfers.transfers, b.transfers.transfers, "transfers differ");
    assert_eq!(a.transfers.replenishments, b.transfers.replenishments, "replenishments differ");
    assert_eq!(a, b, "the replica's state differs");
}

fn ctx_with_key(key: &str) -> Context<'_> {
    Context::actor("checkout").with_key(key, 7)
}

fn reserve(engine: &Engine, key: Option<&str>, sku: &str, qty: u32) -> Option<u64> {
    let ctx = key.map_or(Context::actor("checkout"), ctx_with_key);
    let request = ReserveRequest {
        channel: "web".into(),
        customer: None,
        ttl_seconds: Some(600),
        lines: vec![ReserveLine { sku: sku.into(), location: "WH".into(), qty }],
    };
    let ack = engine.reserve(ctx, request).ok()?;
    engine.wait(ack).ok().map(|view| view.id)
}

#[test]
fn pruning_is_logged_and_a_replica_forgets_the_same_things() {
    let live = open_live();
    let engine = &live.engine;
    let released = reserve(engine, Some("k-1"), "A", 2).expect("reserves");
    engine.wait(engine.release(Context::actor("checkout"), released).expect("releases")).expect("durable");
    let kept = reserve(engine, None, "B", 1).expect("reserves");

    // Nothing is past its retention yet: nothing is logged.
    assert!(!engine.prune_due().expect("prunes"));
    let before = engine.stats().last_lsn;

    // Past the finished reservations' hour, not the idempotency results' day.
    live.clock.advance_ms(2 * HOUR);
    assert!(engine.prune_due().expect("prunes"));
    assert_eq!(engine.stats().last_lsn, before + 1, "pruning is one log record");
    assert!(engine.reservation(released).is_none(), "the finished reservation is forgotten");
    assert_eq!(engine.reservation(kept).map(|r| r.status), Some(ReservationStatus::Active));
    // The key still answers with the first result.
    assert_eq!(reserve(engine, Some("k-1"), "A", 2), Some(released));
    for skew in [0, 40 * MS_PER_DAY, -40 * MS_PER_DAY] {
        let replica = replica(&live, skew);
        assert!(replica.reservation(released).is_none(), "the replica forgot it too (skew {skew})");
        assert_same_state(engine, &replica);
    }

    // Past the idempotency results' day: the key is free again.
    live.clock.advance_ms(25 * HOUR);
    assert!(engine.prune_due().expect("prunes"));
    let again = reserve(engine, Some("k-1"), "A", 2).expect("a new reservation");
    assert_ne!(again, released);
    assert_same_state(engine, &replica(&live, 0));

    // A snapshot, more pruning after it, and a replica from snapshot + log.
    engine.snapshot().expect("snapshot");
    live.clock.advance_ms(25 * HOUR);
    assert!(engine.prune_due().expect("prunes"));
    assert_same_state(engine, &replica(&live, 0));
}

#[derive(Debug, Clone)]
enum Op {
    Receive { sku: usize, qty: u32 },
    Reserve { sku: usize, qty: u32, key: Option<u8> },
    Release { pick: usize },
    Commit { pick: usize },
    Fulfill { pick: usize },
    Transfer { sku: usize, qty: u32 },
    Ship { pick: usize },
    ReceiveTransfer { pick: usize },
    CancelTransfer { pick: usize },
    Claim { customer: u8 },
    Advance { ms: i64 },
    Sweep,
    Prune,
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..SKUS.len(), 1..20u32).prop_map(|(sku, qty)| Op::Receive { sku, qty }),
        5 => (0..SKUS.len(), 1..6u32, proptest::option::of(0..4u8)).prop_map(|(sku, qty, key)| Op::Reserve { sku, qty, key }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Commit { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Fulfill { pick }),
        1 => (0..SKUS.len(), 1..5u32).prop_map(|(sku, qty)| Op::Transfer { sku, qty }),
        1 => any::<usize>().prop_map(|pick| Op::Ship { pick }),
        1 => any::<usize>().prop_map(|pick| Op::ReceiveTransfer { pick }),
        1 => any::<usize>().prop_map(|pick| Op::CancelTransfer { pick }),
        2 => (0..6u8).prop_map(|customer| Op::Claim { customer }),
        2 => prop_oneof![Just(60_000i64), Just(2 * HOUR), Just(25 * HOUR), Just(31 * MS_PER_DAY)]
            .prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Sweep),
        2 => Just(Op::Prune),
        1 => Just(Op::Snapshot),
    ]
}

fn pick<T: Copy>(items: &[T], pick: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[pick % items.len()])
}

fn run(live: &Live, op: &Op, reservations: &mut Vec<u64>, transfers: &mut Vec<u64>) {
    let engine = &live.engine;
    let ctx = Context::actor("ops");
    match *op {
        Op::Receive { sku, qty } => {
            let receive = Receive {
                sku: SKUS[sku].into(),
                location: "WH".into(),
                qty,
                unit_cost: Some(100),
                lot: None,
                reason: None,
            };
            let _ = engine.receive(ctx, receive).map(|ack| engine.wait(ack));
        }
        Op::Reserve { sku, qty, key } => {
            let key = key.map(|k| format!("key-{k}"));
            if let Some(id) = reserve(engine, key.as_deref(), SKUS[sku], qty) {
                reservations.push(id);
            }
        }
        Op::Release { pick: p } => {
            if let Some(id) = pick(reservations, p) {
                let _ = engine.release(ctx, id).map(|ack| engine.wait(ack));
            }
        }
        Op::Commit { pick: p } => {
            if let Some(id) = pick(reservations, p) {
                let _ = engine.commit(ctx, id, Some("order".into())).map(|ack| engine.wait(ack));
            }
        }
        Op::Fulfill { pick: p } => {
            if let Some(id) = pick(reservations, p) {
                let _ = engine.fulfill(ctx, id).map(|ack| engine.wait(ack));
            }
        }
        Op::Transfer { sku, qty } => {
            let request = TransferRequest {
                from: "WH".into(),
                to: "ST".into(),
                lines: vec![TransferLine { sku: SKUS[sku].into(), qty }],
                note: None,
            };
            if let Ok(Ok(view)) = engine.create_transfer(ctx, request).map(|ack| engine.wait(ack)) {
                transfers.push(view.id);
            }
        }
        Op::Ship { pick: p } => {
            if let Some(id) = pick(transfers, p) {
                let _ = engine.ship_transfer(ctx, id).map(|ack| engine.wait(ack));
            }
        }
        Op::ReceiveTransfer { pick: p } => {
            if let Some(id) = pick(transfers, p) {
                let _ = engine.receive_transfer(ctx, id, None).map(|ack| engine.wait(ack));
            }
        }
        Op::CancelTransfer { pick: p } => {
            if let Some(id) = pick(transfers, p) {
                let _ = engine.cancel_transfer(ctx, id).map(|ack| engine.wait(ack));
            }
        }
        Op::Claim { customer } => {
            let request =
                ClaimRequest { sale: "DROP".into(), channel: "web".into(), customer: format!("c-{customer}"), qty: 1 };
            if let Ok(Ok(view)) = engine.claim(ctx, request).map(|ack| engine.wait(ack)) {
                reservations.push(view.id);
            }
        }
        Op::Advance { ms } => live.clock.advance_ms(ms),
        Op::Sweep => {
            let _ = engine.expire_due();
        }
        Op::Prune => {
            engine.prune_due().expect("pruning never fails on a healthy log");
        }
        Op::Snapshot => {
            engine.snapshot().expect("snapshot");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_replica_of_snapshot_and_log_equals_the_live_state(ops in proptest::collection::vec(op(), 1..60)) {
        let live = open_live();
        let sale = FlashSaleDef {
            code: "DROP".into(),
            sku: "C".into(),
            location: Some("WH".into()),
            quantity: 10,
            starts_at: START,
            ends_at: START + 30 * MS_PER_DAY,
            per_customer_limit: 2,
            hold_seconds: 300,
        };
        live.engine.wait(live.engine.put_flash_sale(Context::actor("ops"), sale).expect("sale")).expect("durable");
        let (mut reservations, mut transfers) = (Vec::new(), Vec::new());
        for op in &ops {
            run(&live, op, &mut reservations, &mut transfers);
            live.engine.check_invariants().map_err(TestCaseError::fail)?;
            assert_same_state(&live.engine, &replica(&live, 0));
        }
    }
}
