//! WAL group commit: append a batch of records and wait for one fdatasync, by batch size.

use std::sync::Arc;

use aisle_engine::wal::{DirStorage, Durability, Wal, WalConfig};
use criterion::{BenchmarkId, Criterion, Throughput};

pub fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(DirStorage::open(dir.path()).expect("storage"));
    let config = WalConfig { durability: Durability::Fsync, ..WalConfig::default() };
    let mut replay = |_: u64, _: &[u8]| Ok(());
    let (wal, _) = Wal::open(storage, config, 0, &mut replay).expect("wal opens");
    let payload = [7u8; 120];
    let mut group = c.benchmark_group("wal_group_commit");
    for batch in [1u64, 16, 256, 4096] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let mut last = 0;
                for _ in 0..batch {
                    last = wal.append(&payload).expect("append");
                }
                wal.wait_durable(last).expect("durable");
            })
        });
    }
    group.finish();
}
