//! Property test: random histories of every command against a small reference model.
//!
//! The model is deliberately naive (plain maps, linear scans) and written without looking at
//! the engine's data structures. After every step the engine must agree with it on every cell
//! and every reservation, and SPEC invariants 1, 2 and 4 must hold. Histories include clock
//! jumps (expiries, lots going out of date), snapshots and restarts from the same storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use aisle_engine::command::{Adjust, AdjustChange, AdjustReason, CellPolicy, LotRef, Receive, ReserveLine};
use aisle_engine::error::EngineError;
use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
use aisle_engine::time::{day_of, ManualClock, MS_PER_DAY};
use aisle_engine::view::ReservationStatus;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};
use proptest::prelude::*;

const SKUS: usize = 4;
const LOCATIONS: usize = 3;
const START: i64 = 1_750_000_000_000;

fn sku(i: usize) -> String {
    format!("SKU-{i}")
}
fn loc(i: usize) -> String {
    format!("LOC-{i}")
}

#[derive(Debug, Clone)]
enum Op {
    Receive { sku: usize, loc: usize, qty: u32, lot: Option<(u8, i32)> },
    Adjust { sku: usize, loc: usize, change: AdjustChange },
    Safety { sku: usize, loc: usize, qty: i64 },
    Reserve { lines: Vec<(usize, usize, u32)>, ttl: u32, key: Option<u8> },
    Extend { pick: usize, ttl: u32 },
    Commit { pick: usize },
    Fulfill { pick: usize },
    Release { pick: usize },
    Advance { ms: i64 },
    Sweep,
    Snapshot,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SKUS, 0..LOCATIONS, 1..20u32, proptest::option::of((0..3u8, -2..4i32)))
            .prop_map(|(sku, loc, qty, lot)| Op::Receive { sku, loc, qty, lot }),
        2 => (0..SKUS, 0..LOCATIONS, prop_oneof![(-10..10i64).prop_map(AdjustChange::Delta), (0..25i64).prop_map(AdjustChange::Counted)])
            .prop_map(|(sku, loc, change)| Op::Adjust { sku, loc, change }),
        1 => (0..SKUS, 0..LOCATIONS, 0..5i64).prop_map(|(sku, loc, qty)| Op::Safety { sku, loc, qty }),
        6 => (proptest::collection::vec((0..SKUS, 0..LOCATIONS, 1..8u32), 1..4), 1..120u32, proptest::option::of(0..4u8))
            .prop_map(|(lines, ttl, key)| Op::Reserve { lines, ttl, key }),
        1 => (any::<usize>(), 1..120u32).prop_map(|(pick, ttl)| Op::Extend { pick, ttl }),
        2 => any::<usize>().prop_map(|pick| Op::Commit { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Fulfill { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        2 => prop_oneof![1_000..90_000i64, Just(MS_PER_DAY)].prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Sweep),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone, Default, PartialEq)]
struct MCell {
    on_hand: i64,
    reserved: i64,
    committed: i64,
    safety: i64,
    /// (expires_on, code, qty), kept sorted.
    lots: Vec<(i32, String, i64)>,
}

impl MCell {
    fn expired(&self, today: i32) -> i64 {
        self.lots.iter().filter(|l| l.0 < today).map(|l| l.2).sum()
    }
    fn available_raw(&self, today: i32) -> i64 {
        self.on_hand - self.reserved - self.committed - self.safety - self.expired(today)
    }
    fn untracked(&self) -> i64 {
        self.on_hand - self.lots.iter().map(|l| l.2).sum::<i64>()
    }
    /// Takes `n` units out of lots in list order (expired ones sort first).
    fn drain_lots(&mut self, mut n: i64) {
        for lot in &mut self.lots {
            let take = n.min(lot.2);
            lot.2 -= take;
            n -= take;
        }
        self.lots.retain(|l| l.2 > 0);
    }
    fn ship(&mut self, qty: i64, today: i32) {
        self.on_hand -= qty;
        let mut left = qty;
        for lot in self.lots.iter_mut().filter(|l| l.0 >= today) {
            let take = left.min(lot.2);
            lot.2 -= take;
            left -= take;
        }
        self.lots.retain(|l| l.2 > 0);
        if self.untracked() < 0 {
            let n = -self.untracked();
            self.drain_lots(n);
        }
    }
    fn remove(&mut self, qty: i64) {
        self.on_hand -= qty;
        if self.untracked() < 0 {
            let n = -self.untracked();
            self.drain_lots(n);
        }
    }
}

#[derive(Debug, Clone)]
struct MRes {
    id: u64,
    lines: Vec<(usize, usize, u32)>,
    expires_at: i64,
    status: ReservationStatus,
}

/// What a key was first used for: (reservation id, request lines, ttl).
type FirstUse = (u64, Vec<(usize, usize, u32)>, u32);

#[derive(Default)]
struct Model {
    cells: BTreeMap<(usize, usize), MCell>,
    reservations: Vec<MRes>,
    /// Idempotency key -> (reservation id, request lines).
    keys: BTreeMap<u8, FirstUse>,
}

struct Harness {
    clock: ManualClock,
    storage: Storage,
    engine: Option<Engine>,
    model: Model,
}

fn config(clock: &ManualClock) -> EngineConfig {
    EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone()))
}

impl Harness {
    fn new() -> Self {
        let clock = ManualClock::new(START);
        let (storage, _, _) = Storage::memory();
        let (engine, _) = Engine::open(config(&clock), storage.clone()).expect("opens");
        let ctx = Context::actor("test");
        for l in 0..LOCATIONS {
            let def = LocationDef {
                code: loc(l),
                name: format!("Location {l}"),
                kind: LocationKind::Store,
                lat: 22.3,
                lon: 114.2,
                channels: vec!["web".into()],
                pickup: true,
                ships: true,
                priority: 0,
            };
            engine.wait(engine.put_location(ctx, def).expect("location")).expect("durable");
        }
        for s in 0..SKUS {
            let def = SkuDef { code: sku(s), name: format!("Sku {s}"), price: 100, attributes: vec![], active: true };
            engine.wait(engine.put_sku(ctx, def).expect("sku")).expect("durable");
        }
        Harness { clock, storage, engine: Some(engine), model: Model::default() }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine is open")
    }

    fn today(&self) -> i32 {
        day_of(aisle_engine::time::Clock::now(&self.clock))
    }

    fn pick(&self, pick: usize) -> Option<MRes> {
        if self.model.reservations.is_empty() {
            None
        } else {
            Some(self.model.reservations[pick % self.model.reservations.len()].clone())
        }
    }

    fn step(&mut self, op: &Op) {
        let ctx = Context::actor("test");
        let today = self.today();
        let now = aisle_engine::time::Clock::now(&self.clock);
        match op.clone() {
            Op::Receive { sku: s, loc: l, qty, lot } => {
                let lot = lot.map(|(code, offset)| LotRef {
                    code: format!("LOT{code}"),
                    expires_on: day_of(START) + offset + code as i32,
                });
                let engine = self.engine().clone();
                let result = engine.receive(
                    ctx,
                    Receive { sku: sku(s), location: loc(l), qty, unit_cost: Some(10), lot: lot.clone(), reason: None },
                );
                let cell = self.model.cells.entry((s, l)).or_default();
                let conflict =
                    lot.as_ref().is_some_and(|lot| cell.lots.iter().any(|m| m.1 == lot.code && m.0 != lot.expires_on));
                // The cell already holds the lot with another expiry: a conflict with its state.
                if conflict {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                    return;
                }
                engine.wait(result.expect("receive")).expect("durable");
                cell.on_hand += i64::from(qty);
                if let Some(lot) = lot {
                    match cell.lots.iter_mut().find(|m| m.1 == lot.code) {
                        Some(m) => m.2 += i64::from(qty),
                        None => {
                            cell.lots.push((lot.expires_on, lot.code, i64::from(qty)));
                            cell.lots.sort();
                        }
                    }
                }
            }
            Op::Adjust { sku: s, loc: l, change } => {
                let engine = self.engine().clone();
                let result = engine.adjust(
                    ctx,
                    Adjust {
                        sku: sku(s),
                        location: loc(l),
                        change,
                        reason: AdjustReason::Count,
                        lot: None,
                        note: None,
                    },
                );
                let cell = self.model.cells.entry((s, l)).or_default();
                let delta = match change {
                    AdjustChange::Delta(d) => d,
                    AdjustChange::Counted(c) => c - cell.on_hand,
                };
                if matches!(change, AdjustChange::Delta(0)) {
                    assert!(matches!(result, Err(EngineError::Invalid(_))), "{change:?} on {cell:?}: {result:?}");
                    return;
                }
                // Below zero depends on the cell, not on the request: a conflict.
                if cell.on_hand + delta < 0 {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{change:?} on {cell:?}: {result:?}");
                    return;
                }
                engine.wait(result.expect("adjust")).expect("durable");
                if delta > 0 {
                    cell.on_hand += delta;
                } else {
                    cell.remove(-delta);
                }
            }
            Op::Safety { sku: s, loc: l, qty } => {
                let engine = self.engine().clone();
                let policy =
                    CellPolicy { sku: sku(s), location: loc(l), safety_stock: Some(qty), ..CellPolicy::default() };
                engine.wait(engine.set_cell_policy(ctx, policy).expect("policy")).expect("durable");
                self.model.cells.entry((s, l)).or_default().safety = qty;
            }
            Op::Reserve { lines, ttl, key } => {
                let request = ReserveRequest {
                    channel: "web".into(),
                    customer: None,
                    ttl_seconds: Some(ttl),
                    lines: lines
                        .iter()
                        .map(|&(s, l, qty)| ReserveLine { sku: sku(s), location: loc(l), qty })
                        .collect(),
                };
                let key_text = key.map(|k| format!("key-{k}"));
                let fingerprint = lines.iter().fold(u64::from(ttl), |h, &(s, l, q)| {
                    h.wrapping_mul(31).wrapping_add((s * 100 + l * 10) as u64 + u64::from(q))
                });
                let ctx = match &key_text {
                    Some(k) => ctx.with_key(k, fingerprint),
                    None => ctx,
                };
                let engine = self.engine().clone();
                let result = engine.reserve(ctx, request);
                if let Some(k) = key {
                    if let Some((id, first_lines, first_ttl)) = self.model.keys.get(&k).cloned() {
                        if first_lines == lines && first_ttl == ttl {
                            let view = engine.wait(result.expect("a retry returns the first result")).expect("durable");
                            assert_eq!(view.id, id, "invariant 4: same key, same reservation");
                        } else {
                            assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                        }
                        return;
                    }
                }
                // Merge lines per cell, as the engine does.
                let mut merged: Vec<(usize, usize, u32)> = Vec::new();
                for &(s, l, q) in &lines {
                    match merged.iter_mut().find(|m| m.0 == s && m.1 == l) {
                        Some(m) => m.2 += q,
                        None => merged.push((s, l, q)),
                    }
                }
                let fits = merged.iter().all(|&(s, l, q)| {
                    self.model.cells.get(&(s, l)).map_or(0, |c| c.available_raw(today).max(0)) >= i64::from(q)
                });
                if !fits {
                    match result {
                        Err(EngineError::InsufficientStock(shortfalls)) => assert!(!shortfalls.is_empty()),
                        other => panic!("expected insufficient stock, got {other:?}"),
                    }
                    return;
                }
                let view = engine.wait(result.expect("reserve fits")).expect("durable");
                assert_eq!(view.status, ReservationStatus::Active);
                for &(s, l, q) in &merged {
                    let cell = self.model.cells.entry((s, l)).or_default();
                    cell.reserved += i64::from(q);
                    assert!(cell.available_raw(today) >= 0, "invariant 1");
                }
                self.model.reservations.push(MRes {
                    id: view.id,
                    lines: merged,
                    expires_at: now + i64::from(ttl) * 1000,
                    status: ReservationStatus::Active,
                });
                if let Some(k) = key {
                    self.model.keys.insert(k, (view.id, lines, ttl));
                }
            }
            Op::Extend { pick, ttl } => {
                let Some(r) = self.pick(pick) else { return };
                let engine = self.engine().clone();
                let result = engine.extend(ctx, r.id, ttl);
                if r.status == ReservationStatus::Active {
                    engine.wait(result.expect("extend")).expect("durable");
                    self.set(r.id, |m| m.expires_at = now + i64::from(ttl) * 1000);
                } else {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                }
            }
            Op::Commit { pick } => {
                let Some(r) = self.pick(pick) else { return };
                let engine = self.engine().clone();
                let result = engine.commit(ctx, r.id, None);
                if r.status == ReservationStatus::Active {
                    engine.wait(result.expect("commit")).expect("durable");
                    self.move_lines(&r, |c, q| {
                        c.reserved -= q;
                        c.committed += q;
                    });
                    self.set(r.id, |m| m.status = ReservationStatus::Committed);
                } else {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                }
            }
            Op::Fulfill { pick } => {
                let Some(r) = self.pick(pick) else { return };
                let engine = self.engine().clone();
                let result = engine.fulfill(ctx, r.id);
                if r.status == ReservationStatus::Committed {
                    engine.wait(result.expect("fulfill")).expect("durable");
                    self.move_lines(&r, |c, q| {
                        c.committed -= q;
                        let shipped = q.min(c.on_hand);
                        c.ship(shipped, today);
                    });
                    self.set(r.id, |m| m.status = ReservationStatus::Fulfilled);
                } else {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                }
            }
            Op::Release { pick } => {
                let Some(r) = self.pick(pick) else { return };
                let engine = self.engine().clone();
                let view = engine.wait(engine.release(ctx, r.id).expect("release is harmless")).expect("durable");
                match r.status {
                    ReservationStatus::Active => {
                        self.move_lines(&r, |c, q| c.reserved -= q);
                        self.set(r.id, |m| m.status = ReservationStatus::Released);
                    }
                    ReservationStatus::Committed => {
                        self.move_lines(&r, |c, q| c.committed -= q);
                        self.set(r.id, |m| m.status = ReservationStatus::Cancelled);
                    }
                    other => assert_eq!(view.status, other, "repeating a release changes nothing"),
                }
            }
            Op::Advance { ms } => self.clock.advance_ms(ms),
            Op::Sweep => {
                let expired = self.engine().expire_due().expect("sweep");
                let due: Vec<MRes> = self
                    .model
                    .reservations
                    .iter()
                    .filter(|r| r.status == ReservationStatus::Active && r.expires_at <= now)
                    .cloned()
                    .collect();
                assert_eq!(expired, due.len(), "every due hold expires, no other");
                for r in due {
                    self.move_lines(&r, |c, q| c.reserved -= q);
                    self.set(r.id, |m| m.status = ReservationStatus::Expired);
                }
            }
            Op::Snapshot => {
                self.engine().snapshot().expect("snapshot");
            }
            Op::Restart => {
                let engine = self.engine.take().expect("open");
                engine.close().expect("close");
                let (engine, _) = Engine::open(config(&self.clock), self.storage.clone()).expect("recovers");
                self.engine = Some(engine);
            }
        }
    }

    fn set(&mut self, id: u64, change: impl FnOnce(&mut MRes)) {
        if let Some(r) = self.model.reservations.iter_mut().find(|r| r.id == id) {
            change(r);
        }
    }

    fn move_lines(&mut self, r: &MRes, change: impl Fn(&mut MCell, i64)) {
        for &(s, l, q) in &r.lines {
            change(self.model.cells.entry((s, l)).or_default(), i64::from(q));
        }
    }

    fn check(&self) {
        let engine = self.engine().clone();
        engine.check_invariants().expect("invariant 2");
        let today = self.today();
        for s in 0..SKUS {
            for l in 0..LOCATIONS {
                let view = engine.cell(&sku(s), &loc(l)).expect("cell");
                let model = self.model.cells.get(&(s, l)).cloned().unwrap_or_default();
                let lots: Vec<(i32, String, i64)> =
                    view.lots.iter().map(|lot| (lot.expires_on, lot.code.clone(), lot.qty)).collect();
                assert_eq!(
                    (view.on_hand, view.reserved, view.committed, view.safety_stock, lots),
                    (model.on_hand, model.reserved, model.committed, model.safety, model.lots.clone()),
                    "cell {s}/{l}"
                );
                assert_eq!(view.available, model.available_raw(today).max(0), "available of {s}/{l}");
                assert!(view.available >= 0);
            }
        }
        for r in &self.model.reservations {
            let view = engine.reservation(r.id).expect("reservation is kept");
            assert_eq!(view.status, r.status, "status of reservation {}", r.id);
            assert_eq!(view.expires_at, r.expires_at, "expiry of reservation {}", r.id);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.step(op);
            harness.check();
        }
    }
}
