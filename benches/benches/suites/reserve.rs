//! Reserve + release, single line and five lines across shards, durability `none`.

use aisle_benches::{request, seeded, ACTOR};
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Storage};
use criterion::{Criterion, Throughput};

pub fn bench(c: &mut Criterion) {
    let (storage, _, _) = Storage::memory();
    let engine = seeded(Durability::None, storage, 16, 1024, 1_000_000);
    let ctx = Context::actor(ACTOR);
    let mut group = c.benchmark_group("reserve");
    group.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    group.bench_function("single_line_reserve_release", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let hold = engine.reserve(ctx, request(&[(n % 1024, n % 16, 1)])).expect("reserve");
            engine.release(ctx, hold.value.id).expect("release")
        })
    });
    group.bench_function("five_lines_across_shards_reserve_release", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let lines: Vec<_> = (0..5).map(|k| ((n + k * 197) % 1024, (n + k) % 16, 1)).collect();
            let hold = engine.reserve(ctx, request(&lines)).expect("reserve");
            engine.release(ctx, hold.value.id).expect("release")
        })
    });
    group.finish();
}
