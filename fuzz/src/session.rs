//! A short real session of the engine, run once: its log segments, records and snapshot are
//! the valid inputs the log and snapshot targets start from (and the corpus's valid seeds).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use aisle_engine::command::{Adjust, AdjustChange, AdjustReason, CellPolicy, LogRecord, LotRef, Receive, ReserveLine};
use aisle_engine::flash::{ClaimRequest, FlashSaleDef};
use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
use aisle_engine::snapshot::Image;
use aisle_engine::time::{ManualClock, Timestamp};
use aisle_engine::transfer::{ReplenishmentRequest, TransferLine, TransferRequest};
use aisle_engine::wal::{Durability, Lsn, WalConfig, SEGMENT_BYTES_MIN};
use aisle_engine::{Ack, Context, Engine, EngineConfig, ReserveRequest, Storage};

use crate::wal;

/// 2026-11-11T12:00:00Z: the session's clock, and the handlers target's.
pub const T0: Timestamp = 1_794_398_400_000;
const HOUR_MS: i64 = 3_600_000;

/// What the session left behind.
#[derive(Debug)]
pub struct Session {
    /// Log segments by their first LSN (the segment size is the smallest allowed, so there
    /// are several).
    pub segments: BTreeMap<Lsn, Vec<u8>>,
    /// Every record in the log, by LSN: the payload bytes and the record they decode to.
    pub records: BTreeMap<Lsn, (Vec<u8>, LogRecord)>,
    /// The snapshot taken half-way, as written.
    pub snapshot: Vec<u8>,
    pub snapshot_name: String,
    /// That snapshot decoded.
    pub image: Image,
}

/// The session, run on first use.
pub fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(run)
}

fn location(code: &str, kind: LocationKind, lat: f64, lon: f64) -> LocationDef {
    LocationDef {
        code: code.into(),
        name: format!("{code} site"),
        kind,
        lat,
        lon,
        channels: vec!["web".into(), "pos".into()],
        pickup: true,
        ships: true,
        priority: 0,
    }
}

fn sku(code: &str, price: i64) -> SkuDef {
    SkuDef {
        code: code.into(),
        name: format!("{code} item"),
        price,
        attributes: vec![("size".into(), "M".into())],
        active: true,
    }
}

fn receive(sku: &str, location: &str, qty: u32) -> Receive {
    Receive {
        sku: sku.into(),
        location: location.into(),
        qty,
        unit_cost: Some(4000),
        lot: Some(LotRef { code: "L-1".into(), expires_on: 21_000 }),
        reason: Some("PO 1".into()),
    }
}

/// Waits for a step of the session; the session is fixed, so a failure is a bug here.
fn done<T>(engine: &Engine, what: &str, ack: aisle_engine::Result<Ack<T>>) -> T {
    ack.and_then(|ack| engine.wait(ack)).unwrap_or_else(|e| panic!("session step {what}: {e}"))
}

fn run() -> Session {
    let (storage, wal_files, snapshot_files) = Storage::memory();
    let clock = ManualClock::new(T0);
    let mut config = EngineConfig::manual(Durability::Fsync, Arc::new(clock.clone()));
    config.wal = WalConfig { segment_bytes_max: SEGMENT_BYTES_MIN, ..config.wal };
    let (engine, _) = Engine::open(config, storage).expect("the session's engine opens");
    let ctx = Context::actor("fuzz-seed");
    let e = &engine;
    done(e, "location", e.put_location(ctx, location("HK-WH", LocationKind::Warehouse, 22.35, 114.12)));
    done(e, "location", e.put_location(ctx, location("HK-CWB", LocationKind::Store, 22.28, 114.18)));
    done(e, "sku", e.put_sku(ctx, sku("TEE-M", 19_900)));
    done(e, "sku", e.put_sku(ctx, sku("SNKR", 99_900)));
    done(e, "receive", e.receive(ctx, receive("TEE-M", "HK-WH", 50)));
    done(e, "receive", e.receive(ctx, receive("SNKR", "HK-WH", 20)));
    done(e, "receive", e.receive(ctx, receive("TEE-M", "HK-CWB", 6)));
    let reserve = |key: &str, qty: u32| ReserveRequest {
        channel: "web".into(),
        customer: Some(format!("c-{key}")),
        ttl_seconds: Some(600),
        lines: vec![ReserveLine { sku: "TEE-M".into(), location: "HK-WH".into(), qty }],
    };
    let held = done(e, "reserve", e.reserve(ctx.with_key("k-1", 1), reserve("1", 2)));
    done(e, "commit", e.commit(ctx, held.id, Some("order-1".into())));
    done(e, "fulfil", e.fulfill(ctx, held.id));
    let adjust = Adjust {
        sku: "TEE-M".into(),
        location: "HK-CWB".into(),
        change: AdjustChange::Counted(5),
        reason: AdjustReason::Count,
        lot: None,
        note: Some("shelf count".into()),
    };
    done(e, "adjust", e.adjust(ctx, adjust));
    let policy = CellPolicy {
        sku: "TEE-M".into(),
        location: "HK-CWB".into(),
        safety_stock: Some(1),
        reorder_point: Some(4),
        reorder_qty: Some(12),
    };
    done(e, "policy", e.set_cell_policy(ctx, policy));
    let sale = FlashSaleDef {
        code: "DROP".into(),
        sku: "SNKR".into(),
        location: Some("HK-WH".into()),
        quantity: 10,
        starts_at: T0 - HOUR_MS,
        ends_at: T0 + HOUR_MS,
        per_customer_limit: 1,
        hold_seconds: 300,
    };
    done(e, "sale", e.put_flash_sale(ctx, sale));
    let claim = ClaimRequest { sale: "DROP".into(), channel: "web".into(), customer: "c-7".into(), qty: 1 };
    done(e, "claim", e.claim(ctx, claim));
    let transfer = TransferRequest {
        from: "HK-WH".into(),
        to: "HK-CWB".into(),
        lines: vec![TransferLine { sku: "TEE-M".into(), qty: 5 }],
        note: Some("restock".into()),
    };
    let moved = done(e, "transfer", e.create_transfer(ctx, transfer));
    done(e, "ship", e.ship_transfer(ctx, moved.id));
    done(e, "receive transfer", e.receive_transfer(ctx, moved.id, None));
    let asked = ReplenishmentRequest {
        location: "HK-CWB".into(),
        from: None,
        lines: vec![TransferLine { sku: "TEE-M".into(), qty: 3 }],
        note: None,
    };
    let asked = done(e, "replenishment", e.request_replenishment(ctx, asked));
    done(e, "approve", e.approve_replenishment(ctx, asked.id, None));
    let snapshot = e.snapshot().expect("the session's snapshot");
    // Records after the snapshot, so recovery replays some.
    let held = done(e, "reserve", e.reserve(ctx.with_key("k-2", 2), reserve("2", 1)));
    done(e, "release", e.release(ctx, held.id));
    done(e, "receive", e.receive(ctx, receive("SNKR", "HK-CWB", 4)));
    clock.advance_ms(2 * HOUR_MS);
    e.expire_due().expect("expiry");
    engine.check_invariants().expect("the session keeps the invariants");
    engine.close().expect("the session's engine closes");

    let segments: BTreeMap<Lsn, Vec<u8>> = wal_files
        .names()
        .into_iter()
        .filter_map(|name| {
            let lsn = name.strip_prefix("wal-")?.strip_suffix(".seg")?.parse().ok()?;
            Some((lsn, wal_files.file(&name)?))
        })
        .collect();
    let walked = wal::walk(&segments, 0, 1 << 20);
    assert!(walked.clean, "the session's log walks clean");
    let records = walked
        .records
        .into_iter()
        .map(|(lsn, payload)| {
            let record = crate::decode_record(&payload).expect("a record the engine wrote decodes");
            (lsn, (payload, record))
        })
        .collect();
    let bytes = snapshot_files.file(&snapshot.file).expect("the snapshot file exists");
    let image = crate::decode_snapshot(&snapshot.file, &bytes).expect("the session's snapshot decodes");
    Session { segments, records, snapshot: bytes, snapshot_name: snapshot.file, image }
}
