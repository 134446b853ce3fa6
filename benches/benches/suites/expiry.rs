//! The expiry sweep: releasing 10,000 due holds.

use std::sync::Arc;

use aisle_benches::{request, seed, ACTOR};
use aisle_engine::time::ManualClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Engine, EngineConfig, Storage};
use criterion::{BatchSize, Criterion, Throughput};

const HOLDS: usize = 10_000;

pub fn bench(c: &mut Criterion) {
    let clock = ManualClock::new(1_750_000_000_000);
    let (storage, _, _) = Storage::memory();
    let config = EngineConfig::manual(Durability::None, Arc::new(clock.clone()));
    let (engine, _) = Engine::open(config, storage).expect("opens");
    seed(&engine, 16, 1024, 1_000_000);
    let ctx = Context::actor(ACTOR);
    let mut group = c.benchmark_group("expiry");
    group.throughput(Throughput::Elements(HOLDS as u64));
    group.bench_function("sweep_10k_due_holds", |b| {
        b.iter_batched(
            || {
                for n in 0..HOLDS {
                    let _ = engine.reserve(ctx, request(&[(n % 1024, n % 16, 1)])).expect("reserve");
                }
                clock.advance_ms(601_000);
            },
            |()| assert_eq!(engine.expire_due().expect("sweep"), HOLDS),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}
