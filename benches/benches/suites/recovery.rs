//! Recovery: replaying 100,000 reservation records from the log at start-up.

use std::sync::Arc;

use aisle_benches::{request, seed_without_snapshot, ACTOR};
use aisle_engine::time::SystemClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, Storage};
use criterion::{Criterion, Throughput};

const RECORDS: usize = 100_000;

pub fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig::manual(Durability::Async, Arc::new(SystemClock));
    let (engine, _) = Engine::open(config.clone(), Storage::dir(dir.path()).expect("storage")).expect("opens");
    seed_without_snapshot(&engine, 16, 256, 1_000_000);
    let ctx = Context::actor(ACTOR);
    for n in 0..RECORDS {
        let _ = engine.reserve(ctx, request(&[(n % 256, n % 16, 1)])).expect("reserve");
    }
    let total = engine.stats().last_lsn;
    engine.close().expect("close");
    let mut group = c.benchmark_group("recovery");
    group.throughput(Throughput::Elements(total));
    group.sample_size(10);
    group.bench_function("replay_log", |b| {
        b.iter(|| {
            let (engine, report) =
                Engine::open(config.clone(), Storage::dir(dir.path()).expect("storage")).expect("recovers");
            assert_eq!(report.wal.records_replayed, total);
            drop(engine);
        })
    });
    group.finish();
}
