//! Crash tests through the storage trait: a recorded history's log is cut at every byte offset
//! and has bits flipped; recovery must give exactly the state after a prefix of whole
//! commands (never half a multi-line reservation) or refuse to start, naming file and offset.

mod common;

use std::sync::Arc;

use aisle_engine::command::{Adjust, AdjustChange, AdjustReason, ReserveLine};
use aisle_engine::time::ManualClock;
use aisle_engine::wal::{Durability, LogStorage, MemStorage, WalError};
use aisle_engine::{Context, Engine, EngineConfig, OpenError, ReserveRequest, Storage};

const SKUS: [&str; 4] = ["A", "B", "C", "D"];
const START: i64 = 1_750_000_000_000;

fn config() -> EngineConfig {
    EngineConfig::manual(Durability::Fsync, Arc::new(ManualClock::new(START)))
}

/// Runs a history and returns the digest of the state after each LSN (index = LSN).
fn record_history(engine: &Engine, clock_ms: &ManualClock) -> Vec<String> {
    let ctx = Context::actor("history");
    let mut digests = vec![common::digest(engine, &SKUS, 16)];
    let after = |engine: &Engine, digests: &mut Vec<String>| {
        let lsn = engine.stats().last_lsn as usize;
        while digests.len() <= lsn {
            digests.push(common::digest(engine, &SKUS, 16));
        }
    };
    for loc in ["W1", "W2"] {
        engine.wait(engine.put_location(ctx, common::location(loc)).expect("loc")).expect("durable");
        after(engine, &mut digests);
    }
    for sku in SKUS {
        engine.wait(engine.put_sku(ctx, common::sku(sku)).expect("sku")).expect("durable");
        after(engine, &mut digests);
        for loc in ["W1", "W2"] {
            let receive = aisle_engine::command::Receive {
                sku: sku.into(),
                location: loc.into(),
                qty: 10,
                unit_cost: Some(250),
                lot: None,
                reason: None,
            };
            engine.wait(engine.receive(ctx, receive).expect("receive")).expect("durable");
            after(engine, &mut digests);
        }
    }
    for i in 0..8u32 {
        // Multi-line, multi-shard reservations: all or nothing after a crash.
        let lines = SKUS
            .iter()
            .map(|sku| ReserveLine {
                sku: (*sku).into(),
                location: if i % 2 == 0 { "W1" } else { "W2" }.into(),
                qty: 1 + i % 2,
            })
            .collect();
        let request = ReserveRequest {
            channel: "web".into(),
            customer: Some(format!("c{i}")),
            ttl_seconds: Some(if i == 3 { 60 } else { 3600 }),
            lines,
        };
        // Exactly one hold (i == 3) comes due, so every LSN has its own recorded state.
        let view = engine.wait(engine.reserve(ctx, request).expect("reserve")).expect("durable");
        after(engine, &mut digests);
        match i % 4 {
            0 => {
                engine.wait(engine.commit(ctx, view.id, Some(format!("order-{i}"))).expect("commit")).expect("durable");
                after(engine, &mut digests);
                engine.wait(engine.fulfill(ctx, view.id).expect("fulfill")).expect("durable");
            }
            1 => engine.wait(engine.release(ctx, view.id).expect("release")).map(|_| ()).expect("durable"),
            2 => engine.wait(engine.extend(ctx, view.id, 600).expect("extend")).map(|_| ()).expect("durable"),
            _ => {}
        }
        after(engine, &mut digests);
    }
    let adjust = Adjust {
        sku: "A".into(),
        location: "W1".into(),
        change: AdjustChange::Counted(3),
        reason: AdjustReason::Count,
        lot: None,
        note: None,
    };
    engine.wait(engine.adjust(ctx, adjust).expect("adjust")).expect("durable");
    after(engine, &mut digests);
    clock_ms.advance_ms(120_000);
    assert_eq!(engine.expire_due().expect("sweep"), 1);
    engine.wait(aisle_engine::Ack { value: (), lsn: Some(engine.stats().last_lsn) }).expect("durable");
    after(engine, &mut digests);
    digests
}

fn only_segment(wal: &MemStorage) -> (String, Vec<u8>) {
    let names: Vec<String> = wal.names().into_iter().filter(|n| n.ends_with(".seg")).collect();
    assert_eq!(names.len(), 1, "one segment expected: {names:?}");
    let bytes = wal.file(&names[0]).expect("segment");
    (names[0].clone(), bytes)
}

fn reopen(name: &str, bytes: &[u8], snapshots: Option<&MemStorage>) -> Result<Engine, OpenError> {
    let wal = MemStorage::default();
    wal.set_file(name, bytes.to_vec());
    let storage = Storage {
        wal: Arc::new(wal),
        snapshots: Arc::new(snapshots.cloned().unwrap_or_default()) as Arc<dyn LogStorage>,
        documents: None,
    };
    Engine::open(config(), storage).map(|(engine, _)| engine)
}

#[test]
fn every_cut_of_the_log_recovers_a_prefix_of_whole_commands() {
    let clock = ManualClock::new(START);
    let (storage, wal, _) = Storage::memory();
    let mut cfg = config();
    cfg.clock = Arc::new(clock.clone());
    let (engine, _) = Engine::open(cfg, storage).expect("opens");
    let digests = record_history(&engine, &clock);
    let total = engine.stats().last_lsn as usize;
    engine.close().expect("close");
    let (name, bytes) = only_segment(&wal);

    let mut previous = 0;
    for cut in 0..=bytes.len() {
        let engine = reopen(&name, &bytes[..cut], None).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let recovered = engine.stats().last_lsn as usize;
        assert!(recovered >= previous, "cut at {cut}: fewer records than a shorter cut");
        previous = recovered;
        assert_eq!(
            common::digest(&engine, &SKUS, 16),
            digests[recovered],
            "cut at {cut}: state is not the prefix of {recovered} commands"
        );
        engine.check_invariants().unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
    }
    assert_eq!(previous, total, "the whole log recovers everything");
}

#[test]
fn flipped_bits_are_refused_with_file_and_offset_or_cut_only_at_the_tail() {
    let clock = ManualClock::new(START);
    let (storage, wal, _) = Storage::memory();
    let mut cfg = config();
    cfg.clock = Arc::new(clock.clone());
    let (engine, _) = Engine::open(cfg, storage).expect("opens");
    let digests = record_history(&engine, &clock);
    let total = engine.stats().last_lsn as usize;
    engine.close().expect("close");
    let (name, bytes) = only_segment(&wal);

    let mut refused = 0;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state as usize) % bytes.len();
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (state >> 60 & 7);
        match reopen(&name, &damaged, None) {
            Err(OpenError::Wal(WalError::Corrupt { file, offset, .. })) => {
                assert_eq!(file, name);
                assert!(offset <= at as u64, "reported offset {offset} is after the damage at {at}");
                refused += 1;
            }
            Err(other) => panic!("flip at {at}: unexpected error {other}"),
            Ok(engine) => {
                // Accepted only if the damage cost nothing or only the last record(s).
                let recovered = engine.stats().last_lsn as usize;
                assert_eq!(common::digest(&engine, &SKUS, 16), digests[recovered], "flip at {at}");
                assert!(
                    recovered == total || at as f64 > bytes.len() as f64 * 0.9,
                    "flip at {at} silently dropped records {recovered}..{total}"
                );
            }
        }
    }
    assert!(refused > 300, "mid-log corruption must be refused, only {refused} of 400 were");
}

#[test]
fn snapshot_plus_cut_log_recovers_a_prefix() {
    let clock = ManualClock::new(START);
    let (storage, wal, snapshots) = Storage::memory();
    let mut cfg = config();
    cfg.clock = Arc::new(clock.clone());
    let (engine, _) = Engine::open(cfg, storage).expect("opens");
    common::seed(&engine, &["W1"], &SKUS, 50);
    let info = engine.snapshot().expect("snapshot");
    let digests = record_history_after_snapshot(&engine);
    engine.close().expect("close");
    let names: Vec<String> = wal.names().into_iter().filter(|n| n.ends_with(".seg")).collect();
    let last = names.iter().max().expect("a segment").clone();
    let bytes = wal.file(&last).expect("segment");
    for cut in (0..=bytes.len()).step_by(7) {
        let wal_copy = MemStorage::default();
        for name in &names {
            let content = wal.file(name).expect("segment");
            wal_copy.set_file(name, if *name == last { content[..cut].to_vec() } else { content });
        }
        let storage = Storage { wal: Arc::new(wal_copy), snapshots: Arc::new(snapshots.clone()), documents: None };
        let (engine, report) = Engine::open(config(), storage).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(report.snapshot_lsn, info.lsn);
        let recovered = engine.stats().last_lsn;
        let expected = digests
            .iter()
            .find(|(lsn, _)| *lsn == recovered)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("cut at {cut}: lsn {recovered} not in history"));
        assert_eq!(common::digest(&engine, &SKUS, 16), expected, "cut at {cut}");
    }
}

fn record_history_after_snapshot(engine: &Engine) -> Vec<(u64, String)> {
    let ctx = Context::actor("history");
    let mut digests = vec![(engine.stats().last_lsn, common::digest(engine, &SKUS, 16))];
    for i in 0..6u32 {
        let lines =
            SKUS.iter().map(|sku| ReserveLine { sku: (*sku).into(), location: "W1".into(), qty: 1 + i }).collect();
        let request = ReserveRequest { channel: "web".into(), customer: None, ttl_seconds: None, lines };
        engine.wait(engine.reserve(ctx, request).expect("reserve")).expect("durable");
        digests.push((engine.stats().last_lsn, common::digest(engine, &SKUS, 16)));
    }
    digests
}

#[test]
fn a_failed_fsync_makes_the_engine_read_only_and_says_why() {
    let (storage, wal, snapshots) = Storage::memory();
    let (engine, _) = Engine::open(config(), storage).expect("opens");
    common::seed(&engine, &["W1"], &SKUS, 10);
    let ctx = Context::actor("checkout");
    let request = || ReserveRequest {
        channel: "web".into(),
        customer: None,
        ttl_seconds: None,
        lines: vec![ReserveLine { sku: "A".into(), location: "W1".into(), qty: 1 }],
    };
    let durable = engine.wait(engine.reserve(ctx, request()).expect("reserve")).expect("durable");
    wal.fail_syncs(true);
    let ack = engine.reserve(ctx, request()).expect("applied in memory, not yet acknowledged");
    match engine.wait(ack) {
        Err(aisle_engine::EngineError::ReadOnly { reason }) => assert!(!reason.is_empty()),
        other => panic!("expected read-only, got {other:?}"),
    }
    let reason = engine.read_only_reason().expect("the engine says why");
    assert!(reason.contains("wal-"), "the reason names the file: {reason}");
    assert!(matches!(engine.reserve(ctx, request()), Err(aisle_engine::EngineError::ReadOnly { .. })));
    assert_eq!(engine.cell("A", "W1").expect("reads still work").on_hand, 10);

    // After a crash only the acknowledged reservation is there.
    wal.crash();
    wal.fail_syncs(false);
    let storage = Storage { wal: Arc::new(wal), snapshots: Arc::new(snapshots), documents: None };
    let (engine, _) = Engine::open(config(), storage).expect("recovers");
    assert!(engine.reservation(durable.id).is_some());
    assert_eq!(engine.cell("A", "W1").expect("cell").reserved, 1);
    engine.check_invariants().expect("invariants");
}

/// A snapshot that cannot be written is counted (the snapshotter thread has no caller to tell),
/// and the newest snapshot's time stays that of the last good one, also after a restart.
#[test]
fn a_failed_snapshot_is_counted_and_the_last_good_one_is_remembered() {
    let clock = ManualClock::new(START);
    let mut config = config();
    config.clock = Arc::new(clock.clone());
    let (storage, wal, snapshots) = Storage::memory();
    let (engine, _) = Engine::open(config.clone(), storage).expect("opens");
    let stats = engine.stats();
    assert_eq!((stats.snapshots_taken, stats.snapshot_failures, stats.last_snapshot_at), (0, 0, 0));
    common::seed(&engine, &["W1"], &SKUS, 10);

    engine.snapshot().expect("snapshot");
    let stats = engine.stats();
    assert_eq!((stats.snapshots_taken, stats.snapshot_failures, stats.last_snapshot_at), (1, 0, START));

    clock.advance_ms(60_000);
    snapshots.fail_syncs(true);
    assert!(engine.snapshot().is_err(), "the image cannot be synced");
    assert!(engine.snapshot().is_err(), "nor the second time");
    let stats = engine.stats();
    assert_eq!((stats.snapshots_taken, stats.snapshot_failures, stats.last_snapshot_at), (1, 2, START));
    assert!(engine.read_only_reason().is_none(), "a failed snapshot leaves the log writable");

    snapshots.fail_syncs(false);
    engine.snapshot().expect("snapshot");
    let stats = engine.stats();
    assert_eq!((stats.snapshots_taken, stats.snapshot_failures, stats.last_snapshot_at), (2, 2, START + 60_000));
    engine.close().expect("close");

    // A restart knows when the snapshot it recovered from was taken.
    let storage = Storage { wal: Arc::new(wal), snapshots: Arc::new(snapshots), documents: None };
    let (engine, _) = Engine::open(config, storage).expect("recovers");
    let stats = engine.stats();
    assert_eq!((stats.snapshots_taken, stats.snapshot_failures, stats.last_snapshot_at), (0, 0, START + 60_000));
}
