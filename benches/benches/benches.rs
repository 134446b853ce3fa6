//! aisle's criterion benchmarks: one binary, a module per area.
//!
//! `cargo bench -p aisle-benches` runs them all; `cargo bench -p aisle-benches -- reserve`
//! runs one area. Multi-threaded throughput figures come from the `engine-throughput` binary.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod suites;

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = suites::reserve::bench, suites::flash::bench, suites::expiry::bench, suites::wal::bench, suites::recovery::bench
}
criterion_main!(benches);
