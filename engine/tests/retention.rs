//! The log outlives snapshots: a segment goes only when every consumer (recovery's snapshot,
//! the audit trail) has passed it and it is older than `log_retention`, or while the log is
//! over `log_retention_bytes`, oldest first.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aisle_engine::command::Receive;
use aisle_engine::time::ManualClock;
use aisle_engine::wal::{Durability, MemStorage};
use aisle_engine::{Context, Engine, EngineConfig, Storage};

fn open(retention: Duration, bytes_max: u64) -> (Engine, MemStorage) {
    let (storage, wal, _snapshots) = Storage::memory();
    let mut config = EngineConfig::manual(Durability::Fsync, Arc::new(ManualClock::new(1_750_000_000_000)));
    config.wal.segment_bytes_max = 4096;
    config.log_retention = retention;
    config.log_retention_bytes = bytes_max;
    let (engine, _) = Engine::open(config, storage).expect("opens");
    common::seed(&engine, &["W1"], &["TEE"], 0);
    (engine, wal)
}

fn receive_many(engine: &Engine, count: usize) {
    for _ in 0..count {
        let receive =
            Receive { sku: "TEE".into(), location: "W1".into(), qty: 1, unit_cost: None, lot: None, reason: None };
        engine.wait(engine.receive(Context::actor("clerk"), receive).expect("receive")).expect("durable");
    }
}

fn age_every_segment(wal: &MemStorage, by: Duration) {
    let old = SystemTime::now() - by;
    for name in wal.names() {
        wal.set_modified(&name, old);
    }
}

#[test]
fn a_snapshot_no_longer_deletes_the_log_it_covers() {
    let (engine, wal) = open(Duration::from_secs(7 * 86_400), 1 << 30);
    receive_many(&engine, 300);
    let segments = wal.names().len();
    assert!(segments > 3, "small segments: {segments}");
    let info = engine.snapshot().expect("snapshot");
    assert_eq!(info.wal_segments_removed, 0);
    let stats = engine.stats();
    assert_eq!(stats.log_oldest_retained_lsn, 1, "the whole log is kept for 7 days");
    assert!(stats.log_retained_bytes > 3 * 4096, "{}", stats.log_retained_bytes);
    // Young segments stay however often retention runs.
    assert_eq!(engine.apply_log_retention().expect("retention"), 0);

    // A week later the segments the snapshot covers go; the log after it stays.
    receive_many(&engine, 100);
    age_every_segment(&wal, Duration::from_secs(8 * 86_400));
    assert!(engine.apply_log_retention().expect("retention") > 0);
    let oldest = engine.stats().log_oldest_retained_lsn;
    assert!(oldest > 1 && oldest <= info.lsn + 1, "oldest kept {oldest}, snapshot at {}", info.lsn);
    drop(engine);
}

#[test]
fn the_size_bound_drops_the_oldest_passed_segments_first_and_never_unpassed_ones() {
    let bound = 4 * 4096;
    let (engine, wal) = open(Duration::from_secs(7 * 86_400), bound);
    receive_many(&engine, 300);
    let info = engine.snapshot().expect("snapshot");
    assert!(info.wal_segments_removed > 0, "over the bound, passed segments go at once");
    let stats = engine.stats();
    assert!(stats.log_retained_bytes <= bound + 4096 * 2, "{} bytes kept", stats.log_retained_bytes);
    assert!(stats.log_oldest_retained_lsn <= info.lsn + 1);

    // Past the snapshot nothing goes, however large or old the log grows.
    receive_many(&engine, 300);
    age_every_segment(&wal, Duration::from_secs(30 * 86_400));
    engine.apply_log_retention().expect("retention");
    assert!(engine.stats().log_oldest_retained_lsn <= info.lsn + 1, "records after the snapshot are kept");
}
