//! Flash-sale claims on one pool, durability `none`: a claim and the release that puts its
//! unit back (so the pool never runs dry), and the answer to a claim on a sold-out sale.

use aisle_benches::{claim, flash_sale, seeded, ACTOR};
use aisle_engine::wal::Durability;
use aisle_engine::{Context, Storage};
use criterion::{Criterion, Throughput};

pub fn bench(c: &mut Criterion) {
    let (storage, _, _) = Storage::memory();
    let engine = seeded(Durability::None, storage, 1, 1, 1_000_000);
    flash_sale(&engine, "OPEN", 100_000);
    flash_sale(&engine, "GONE", 1);
    let ctx = Context::actor(ACTOR);
    let _ = engine.claim(ctx, claim("GONE", "first")).expect("the only unit");
    let mut group = c.benchmark_group("flash");
    group.throughput(Throughput::Elements(1));
    let customers: Vec<String> = (0..4096).map(|i| format!("customer-{i:05}")).collect();
    let mut n = 0usize;
    group.bench_function("claim_release", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let held = engine.claim(ctx, claim("OPEN", &customers[n % customers.len()])).expect("claim");
            engine.release(ctx, held.value.id).expect("release")
        })
    });
    group.bench_function("sold_out_answer", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            engine.claim(ctx, claim("GONE", &customers[n % customers.len()])).expect_err("sold out")
        })
    });
    group.finish();
}
