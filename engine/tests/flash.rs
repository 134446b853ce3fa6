//! Flash sales in the engine: unit cases (expiry back to the pool, the end back to the cell,
//! network pools, recovery) and a property test of random claim / commit / release / expire /
//! end histories against a small model, checking SPEC invariant 5 (and 1, 2) after every step.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use aisle_engine::command::Receive;
use aisle_engine::error::{Conflict, EngineError};
use aisle_engine::flash::{ClaimRequest, FlashSaleDef, FlashSaleView, SaleStatus};
use aisle_engine::time::{Clock, ManualClock};
use aisle_engine::view::ReservationStatus;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};
use proptest::prelude::*;

const START: i64 = 1_750_000_000_000;
const SKU: &str = "DROP";
const LOCATIONS: [&str; 3] = ["L0", "L1", "L2"];

fn open(clock: &ManualClock, storage: &Storage) -> Engine {
    let config = EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone()));
    Engine::open(config, storage.clone()).expect("opens").0
}

fn setup(qty: u32) -> (ManualClock, Storage, Engine) {
    let clock = ManualClock::new(START);
    let (storage, _, _) = Storage::memory();
    let engine = open(&clock, &storage);
    common::seed(&engine, &LOCATIONS, &[SKU], qty);
    (clock, storage, engine)
}

fn def(
    code: &str,
    location: Option<&str>,
    quantity: u32,
    limit: u32,
    hold_seconds: u32,
    ends_in_ms: i64,
) -> FlashSaleDef {
    FlashSaleDef {
        code: code.into(),
        sku: SKU.into(),
        location: location.map(str::to_owned),
        quantity,
        starts_at: START - 1,
        ends_at: START + ends_in_ms,
        per_customer_limit: limit,
        hold_seconds,
    }
}

fn put(engine: &Engine, def: FlashSaleDef) -> Result<FlashSaleView, EngineError> {
    let ack = engine.put_flash_sale(Context::actor("test"), def)?;
    Ok(engine.wait(ack)?.1)
}

fn claim(engine: &Engine, sale: &str, customer: &str, qty: u32) -> Result<u64, EngineError> {
    let request = ClaimRequest { sale: sale.into(), channel: "web".into(), customer: customer.into(), qty };
    let ack = engine.claim(Context::actor("test"), request)?;
    Ok(engine.wait(ack)?.id)
}

fn reserved(engine: &Engine, location: &str) -> (i64, i64, i64) {
    let cell = engine.cell(SKU, location).expect("cell");
    (cell.reserved, cell.committed, cell.available)
}

#[test]
fn a_claim_holds_from_the_pool_and_expiry_gives_it_back() {
    let (clock, _, engine) = setup(10);
    let view = put(&engine, def("S", Some("L0"), 4, 1, 30, 3_600_000)).expect("sale");
    assert_eq!((view.status, view.remaining), (SaleStatus::Active, 4));
    assert_eq!(reserved(&engine, "L0"), (4, 0, 6), "the pool is reserved in its cell");
    let a = claim(&engine, "S", "a", 1).expect("a claims");
    assert_eq!(reserved(&engine, "L0"), (4, 0, 6), "a claim moves units inside the pool only");
    assert!(matches!(claim(&engine, "S", "a", 1), Err(EngineError::Conflict(Conflict::PerCustomerLimit { .. }))));
    let view = engine.reservation(a).expect("claim");
    assert_eq!((view.flash_sale.as_deref(), view.status), (Some("S"), ReservationStatus::Active));
    clock.advance_ms(30_000);
    assert_eq!(engine.expire_due().expect("sweep"), 1);
    let sale = engine.flash_sale("S").expect("sale");
    assert_eq!((sale.remaining, sale.held, sale.sold, sale.customers), (4, 0, 0, 0));
    claim(&engine, "S", "a", 1).expect("a's hold expired, so a may claim again");
    engine.check_invariants().expect("invariants");
}

#[test]
fn sold_out_then_the_end_returns_the_unsold_pool_to_the_cell() {
    let (clock, _, engine) = setup(10);
    put(&engine, def("S", Some("L1"), 3, 2, 600, 60_000)).expect("sale");
    let a = claim(&engine, "S", "a", 2).expect("a");
    claim(&engine, "S", "b", 1).expect("b");
    match claim(&engine, "S", "c", 1) {
        Err(EngineError::Conflict(Conflict::SoldOut { remaining: 0, .. })) => {}
        other => panic!("expected sold out, got {other:?}"),
    }
    engine.wait(engine.commit(Context::actor("test"), a, None).expect("commit")).expect("durable");
    assert_eq!(reserved(&engine, "L1"), (1, 2, 7));
    let released = engine.release(Context::actor("test"), claim_id(&engine, "b")).expect("release");
    engine.wait(released).expect("durable");
    assert_eq!(engine.flash_sale("S").expect("sale").remaining, 1, "a released claim goes back to the pool");
    assert_eq!(reserved(&engine, "L1"), (1, 2, 7));
    clock.advance_ms(60_000);
    assert!(matches!(claim(&engine, "S", "d", 1), Err(EngineError::Conflict(Conflict::SaleNotActive { .. }))));
    engine.expire_due().expect("sweep ends the sale");
    let sale = engine.flash_sale("S").expect("sale");
    assert_eq!((sale.status, sale.remaining, sale.held, sale.sold), (SaleStatus::Ended, 1, 0, 2));
    assert_eq!(reserved(&engine, "L1"), (0, 2, 8), "the unsold unit is back in the cell");
    engine.check_invariants().expect("invariants");
}

fn claim_id(engine: &Engine, customer: &str) -> u64 {
    (1..1000)
        .find(|id| engine.reservation(*id).is_some_and(|r| r.customer.as_deref() == Some(customer)))
        .expect("the customer's claim")
}

#[test]
fn a_network_pool_is_carved_from_the_shipping_cells_with_most_stock() {
    let (_, _, engine) = setup(0);
    for (location, qty) in [("L0", 5), ("L1", 20), ("L2", 8)] {
        let receive =
            Receive { sku: SKU.into(), location: location.into(), qty, unit_cost: None, lot: None, reason: None };
        engine.wait(engine.receive(Context::actor("t"), receive).expect("receive")).expect("durable");
    }
    let view = put(&engine, def("NET", None, 25, 1, 60, 60_000)).expect("network sale");
    let pool: Vec<(&str, u32)> = view.pool.iter().map(|p| (p.location.as_str(), p.remaining)).collect();
    assert_eq!(pool, vec![("L1", 20), ("L2", 5)]);
    assert!(matches!(put(&engine, def("BIG", None, 9, 1, 60, 60_000)), Err(EngineError::InsufficientStock(_))));
    engine.check_invariants().expect("invariants");
}

#[test]
fn sales_and_claims_survive_snapshot_and_restart() {
    let (clock, storage, engine) = setup(50);
    put(&engine, def("S", Some("L2"), 10, 3, 60, 600_000)).expect("sale");
    for (customer, qty) in [("a", 3), ("b", 2)] {
        claim(&engine, "S", customer, qty).expect("claim");
    }
    engine.snapshot().expect("snapshot");
    claim(&engine, "S", "c", 1).expect("claim after the snapshot");
    let before = engine.flash_sale("S").expect("sale");
    engine.close().expect("close");
    let engine = open(&clock, &storage);
    assert_eq!(engine.flash_sale("S").expect("sale"), before);
    assert!(matches!(claim(&engine, "S", "a", 1), Err(EngineError::Conflict(Conflict::PerCustomerLimit { .. }))));
    clock.advance_ms(60_000);
    assert_eq!(engine.expire_due().expect("sweep"), 3, "claim expiries are recovered");
    assert_eq!(engine.flash_sale("S").expect("sale").remaining, 10);
    engine.check_invariants().expect("invariants");
}

// ---- property test ---------------------------------------------------------------------

const SALES: [&str; 2] = ["S0", "S1"];
const CUSTOMERS: u8 = 5;

#[derive(Debug, Clone)]
enum Op {
    Receive { loc: usize, qty: u32 },
    Reserve { loc: usize, qty: u32 },
    Put { sale: usize, quantity: u32, limit: u32, hold: u32, starts_in: i64, ends_in: i64 },
    Claim { sale: usize, customer: u8, qty: u32, key: Option<u8> },
    Commit { pick: usize },
    Release { pick: usize },
    Fulfill { pick: usize },
    Advance { ms: i64 },
    Sweep,
    Snapshot,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, 1..15u32).prop_map(|(loc, qty)| Op::Receive { loc, qty }),
        1 => (0..3usize, 1..6u32).prop_map(|(loc, qty)| Op::Reserve { loc, qty }),
        2 => (0..2usize, 1..12u32, 1..4u32, 1..60u32, prop_oneof![Just(-1i64), 1..20_000i64], 1..200_000i64)
            .prop_map(|(sale, quantity, limit, hold, starts_in, ends_in)| Op::Put { sale, quantity, limit, hold, starts_in, ends_in }),
        8 => (0..2usize, 0..CUSTOMERS, 1..3u32, proptest::option::of(0..3u8))
            .prop_map(|(sale, customer, qty, key)| Op::Claim { sale, customer, qty, key }),
        2 => any::<usize>().prop_map(|pick| Op::Commit { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Fulfill { pick }),
        2 => (1_000..40_000i64).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Sweep),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone)]
struct MSale {
    quantity: u32,
    remaining: u32,
    held: u32,
    sold: u32,
    starts_at: i64,
    ends_at: i64,
    limit: u32,
    hold_ms: i64,
    ended: bool,
    customers: BTreeMap<u8, u32>,
}

impl MSale {
    fn open(&self, now: i64) -> bool {
        !self.ended && now >= self.starts_at && now < self.ends_at
    }
}

#[derive(Debug, Clone)]
struct MClaim {
    id: u64,
    sale: usize,
    customer: u8,
    qty: u32,
    expires_at: i64,
    status: ReservationStatus,
}

struct Harness {
    clock: ManualClock,
    storage: Storage,
    engine: Option<Engine>,
    sales: [Option<MSale>; 2],
    claims: Vec<MClaim>,
    keys: BTreeMap<u8, (usize, u8, u32, u64)>,
}

impl Harness {
    fn new() -> Harness {
        let (clock, storage, engine) = setup(10);
        Harness { clock, storage, engine: Some(engine), sales: [None, None], claims: Vec::new(), keys: BTreeMap::new() }
    }

    fn engine(&self) -> Engine {
        self.engine.clone().expect("open")
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn pick(&self, pick: usize) -> Option<MClaim> {
        (!self.claims.is_empty()).then(|| self.claims[pick % self.claims.len()].clone())
    }

    /// Units of a claim leave `held` or `sold` and go back to the pool's count.
    fn unclaim(&mut self, claim: &MClaim, from_sold: bool) {
        let sale = self.sales[claim.sale].as_mut().expect("the claim's sale");
        if from_sold {
            sale.sold -= claim.qty;
        } else {
            sale.held -= claim.qty;
        }
        sale.remaining += claim.qty;
        let count = sale.customers.entry(claim.customer).or_default();
        *count -= claim.qty;
        if *count == 0 {
            sale.customers.remove(&claim.customer);
        }
    }

    fn set_status(&mut self, id: u64, status: ReservationStatus) {
        if let Some(claim) = self.claims.iter_mut().find(|c| c.id == id) {
            claim.status = status;
        }
    }

    fn step(&mut self, op: &Op) {
        let ctx = Context::actor("test");
        let now = self.now();
        let engine = self.engine();
        match op.clone() {
            Op::Receive { loc, qty } => {
                let receive = Receive {
                    sku: SKU.into(),
                    location: LOCATIONS[loc].into(),
                    qty,
                    unit_cost: None,
                    lot: None,
                    reason: None,
                };
                engine.wait(engine.receive(ctx, receive).expect("receive")).expect("durable");
            }
            Op::Reserve { loc, qty } => {
                let request = ReserveRequest {
                    channel: "web".into(),
                    customer: None,
                    ttl_seconds: Some(600),
                    lines: vec![aisle_engine::command::ReserveLine {
                        sku: SKU.into(),
                        location: LOCATIONS[loc].into(),
                        qty,
                    }],
                };
                match engine.reserve(ctx, request) {
                    Ok(ack) => {
                        engine.wait(ack).expect("durable");
                    }
                    Err(EngineError::InsufficientStock(_)) => {}
                    Err(e) => panic!("reserve: {e:?}"),
                }
            }
            Op::Put { sale, quantity, limit, hold, starts_in, ends_in } => {
                let location = (sale == 0).then_some("L0");
                let mut def = def(SALES[sale], location, quantity, limit, hold, 0);
                def.starts_at = now + starts_in;
                def.ends_at = now + starts_in.max(0) + ends_in;
                let result = put(&engine, def.clone());
                let Some(model) = self.sales[sale].clone() else {
                    match result {
                        Ok(view) => {
                            assert_eq!((view.remaining, view.held, view.sold), (quantity, 0, 0));
                            self.sales[sale] = Some(MSale {
                                quantity,
                                remaining: quantity,
                                held: 0,
                                sold: 0,
                                starts_at: def.starts_at,
                                ends_at: def.ends_at,
                                limit,
                                hold_ms: i64::from(hold) * 1000,
                                ended: false,
                                customers: BTreeMap::new(),
                            });
                        }
                        Err(EngineError::InsufficientStock(_)) => {}
                        Err(e) => panic!("create {def:?}: {e:?}"),
                    }
                    return;
                };
                let most = model.customers.values().copied().max().unwrap_or(0);
                let shrink = model.quantity.saturating_sub(quantity);
                if model.ended || most > limit || shrink > model.remaining {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{model:?} {def:?}: {result:?}");
                    return;
                }
                match result {
                    Ok(view) => {
                        let m = self.sales[sale].as_mut().expect("model");
                        m.remaining = m.remaining + quantity - m.quantity;
                        m.quantity = quantity;
                        m.limit = limit;
                        m.hold_ms = i64::from(hold) * 1000;
                        m.starts_at = def.starts_at;
                        m.ends_at = def.ends_at;
                        assert_eq!((view.remaining, view.held, view.sold), (m.remaining, m.held, m.sold));
                    }
                    Err(EngineError::InsufficientStock(_)) => {
                        assert!(quantity > model.quantity, "only growth needs stock")
                    }
                    Err(e) => panic!("change {def:?}: {e:?}"),
                }
            }
            Op::Claim { sale, customer, qty, key } => {
                let request = ClaimRequest {
                    sale: SALES[sale].into(),
                    channel: "web".into(),
                    customer: format!("c{customer}"),
                    qty,
                };
                let fingerprint = (sale as u64) << 40 | u64::from(customer) << 20 | u64::from(qty);
                let key_text = key.map(|k| format!("claim-key-{k}"));
                let ctx = match &key_text {
                    Some(k) => ctx.with_key(k, fingerprint),
                    None => ctx,
                };
                let result = engine.claim(ctx, request).and_then(|ack| engine.wait(ack));
                if let Some((first_sale, first_customer, first_qty, id)) = key.and_then(|k| self.keys.get(&k).copied())
                {
                    if (first_sale, first_customer, first_qty) == (sale, customer, qty) {
                        let view = result.expect("a retry returns the first result");
                        assert_eq!(view.id, id, "invariant 4: the same claim, not a new one");
                    } else {
                        assert!(matches!(result, Err(EngineError::Conflict(Conflict::IdempotencyKeyReused))));
                    }
                    return;
                }
                let Some(model) = self.sales[sale].as_mut() else {
                    assert!(matches!(result, Err(EngineError::NotFound { .. })), "{result:?}");
                    return;
                };
                let already = model.customers.get(&customer).copied().unwrap_or(0);
                let expected = if !model.open(now) {
                    "sale_not_active"
                } else if model.remaining < qty {
                    "sold_out"
                } else if already + qty > model.limit {
                    "per_customer_limit"
                } else {
                    "claimed"
                };
                let got = match &result {
                    Ok(_) => "claimed",
                    Err(EngineError::Conflict(Conflict::SaleNotActive { .. })) => "sale_not_active",
                    Err(EngineError::Conflict(Conflict::SoldOut { .. })) => "sold_out",
                    Err(EngineError::Conflict(Conflict::PerCustomerLimit { .. })) => "per_customer_limit",
                    Err(e) => panic!("claim: {e:?}"),
                };
                assert_eq!(got, expected, "{model:?} claim {qty} by c{customer} at {now}");
                if let Ok(view) = result {
                    model.remaining -= qty;
                    model.held += qty;
                    *model.customers.entry(customer).or_default() += qty;
                    assert!(model.customers[&customer] <= model.limit, "invariant 5");
                    self.claims.push(MClaim {
                        id: view.id,
                        sale,
                        customer,
                        qty,
                        expires_at: now + model.hold_ms,
                        status: ReservationStatus::Active,
                    });
                    assert_eq!(view.expires_at, now + model.hold_ms);
                    if let Some(k) = key {
                        self.keys.insert(k, (sale, customer, qty, view.id));
                    }
                }
            }
            Op::Commit { pick } => {
                let Some(claim) = self.pick(pick) else { return };
                let result = engine.commit(ctx, claim.id, None);
                if claim.status == ReservationStatus::Active {
                    engine.wait(result.expect("commit")).expect("durable");
                    let sale = self.sales[claim.sale].as_mut().expect("sale");
                    sale.held -= claim.qty;
                    sale.sold += claim.qty;
                    self.set_status(claim.id, ReservationStatus::Committed);
                } else {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                }
            }
            Op::Fulfill { pick } => {
                let Some(claim) = self.pick(pick) else { return };
                let result = engine.fulfill(ctx, claim.id);
                if claim.status == ReservationStatus::Committed {
                    engine.wait(result.expect("fulfill")).expect("durable");
                    self.set_status(claim.id, ReservationStatus::Fulfilled);
                } else {
                    assert!(matches!(result, Err(EngineError::Conflict(_))), "{result:?}");
                }
            }
            Op::Release { pick } => {
                let Some(claim) = self.pick(pick) else { return };
                engine.wait(engine.release(ctx, claim.id).expect("release is harmless")).expect("durable");
                match claim.status {
                    ReservationStatus::Active => {
                        self.unclaim(&claim, false);
                        self.set_status(claim.id, ReservationStatus::Released);
                    }
                    ReservationStatus::Committed => {
                        self.unclaim(&claim, true);
                        self.set_status(claim.id, ReservationStatus::Cancelled);
                    }
                    _ => {}
                }
            }
            Op::Advance { ms } => self.clock.advance_ms(ms),
            Op::Sweep => {
                engine.expire_due().expect("sweep");
                let due: Vec<MClaim> = self
                    .claims
                    .iter()
                    .filter(|c| c.status == ReservationStatus::Active && c.expires_at <= now)
                    .cloned()
                    .collect();
                for claim in due {
                    self.unclaim(&claim, false);
                    self.set_status(claim.id, ReservationStatus::Expired);
                }
                for sale in self.sales.iter_mut().flatten() {
                    if now >= sale.ends_at {
                        sale.ended = true;
                    }
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
    }

    fn check(&self) {
        let engine = self.engine();
        engine.check_invariants().expect("invariants 1, 2 and 5");
        let now = self.now();
        for (i, model) in self.sales.iter().enumerate() {
            let Some(model) = model else { continue };
            let view = engine.flash_sale(SALES[i]).expect("sale");
            assert_eq!(
                (view.def.quantity, view.remaining, view.held, view.sold, view.customers as usize),
                (model.quantity, model.remaining, model.held, model.sold, model.customers.len()),
                "sale {i}"
            );
            assert_eq!(view.remaining + view.held + view.sold, view.def.quantity, "invariant 5");
            let ended = model.ended || now >= model.ends_at;
            assert_eq!(view.status == SaleStatus::Ended, ended, "status of sale {i}: {view:?}");
            let cells_hold: i64 = LOCATIONS.iter().map(|l| engine.cell(SKU, l).expect("cell").available).sum();
            assert!(cells_hold >= 0, "invariant 1");
        }
        for claim in &self.claims {
            let view = engine.reservation(claim.id).expect("claim is kept");
            assert_eq!(view.status, claim.status, "claim {}", claim.id);
            assert_eq!(view.lines.iter().map(|l| l.qty).sum::<u32>(), claim.qty);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_flash_sale_histories_keep_invariant_5(ops in proptest::collection::vec(op(), 1..100)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.step(op);
            harness.check();
        }
    }
}
