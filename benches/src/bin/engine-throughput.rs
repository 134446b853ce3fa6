//! Measures the engine figures of `BENCHMARKS.md` that criterion's per-iteration timing does
//! not fit: multi-threaded throughput, group-commit batching, replay rate, snapshot and
//! recovery of a million cells, and memory per cell.
//!
//! Usage: `cargo run --release -p aisle-benches --bin engine-throughput [area...]`
//! where an area is one of `pairs`, `fsync`, `latency`, `flash`, `replay`, `cells` (all when none
//! is given).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_benches::{claim, flash_sale, request, rss_bytes, seeded, ACTOR};
use aisle_engine::time::SystemClock;
use aisle_engine::wal::{Durability, WalStats};
use aisle_engine::{Context, Engine, EngineConfig, Storage};

// The one `unsafe` in the workspace: a global allocator must implement `GlobalAlloc`. It only
// forwards to mimalloc and counts live bytes, for the memory-per-cell figure.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Counting;
    pub static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
    /// Counting only while the memory figure is taken: a shared counter bumped on every
    /// allocation would slow the throughput figures measured by the same binary.
    pub static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    fn add(bytes: usize) {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn sub(bytes: usize) {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    // SAFETY: every call is forwarded unchanged to mimalloc, which upholds GlobalAlloc's
    // contract; the counter has no effect on the memory handed out.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size());
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            sub(layout.size());
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size());
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size);
            sub(layout.size());
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const RUN: Duration = Duration::from_secs(3);

fn main() {
    let areas: Vec<String> = std::env::args().skip(1).collect();
    let wants = |area: &str| areas.is_empty() || areas.iter().any(|a| a == area);
    if wants("pairs") {
        pairs();
    }
    if wants("fsync") {
        fsync_threads(64);
        fsync_tasks(64);
    }
    if wants("latency") {
        fsync_latency();
    }
    if wants("flash") {
        flash_claims();
    }
    if wants("replay") {
        replay();
    }
    if wants("cells") {
        cells();
    }
}

/// Runs `work` on `threads` threads for [`RUN`]; returns operations per second.
fn run_threads(threads: usize, work: impl Fn(usize, &AtomicBool) -> u64 + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (stop, done, work) = (&stop, &done, &work);
            scope.spawn(move || done.fetch_add(work(t, stop), Ordering::Relaxed));
        }
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
    });
    done.into_inner() as f64 / started.elapsed().as_secs_f64()
}

/// Single-line reserve + release pairs per second, durability `none`.
fn pairs() {
    let (storage, _, _) = Storage::memory();
    let engine = seeded(Durability::None, storage, 16, 1024, 1_000_000);
    for threads in [1, 2] {
        let rate = run_threads(threads, |t, stop| {
            let ctx = Context::actor(ACTOR);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sku = (n as usize * 7 + t * 131) % 1024;
                let hold = engine.reserve(ctx, request(&[(sku, (n % 16) as usize, 1)])).expect("reserve");
                let _ = engine.release(ctx, hold.value.id).expect("release");
                n += 1;
            }
            n
        });
        println!("pairs durability=none threads={threads}: {rate:.0} reserve+release pairs/s");
    }
}

/// Reservations per second with durability `fsync` and `submitters` OS threads, each blocking
/// until its reservation is durable.
fn fsync_threads(submitters: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = seeded(Durability::Fsync, Storage::dir(dir.path()).expect("storage"), 16, 1024, 1_000_000);
    let before = engine.stats().wal;
    let started = Instant::now();
    let rate = run_threads(submitters, |t, stop| {
        let ctx = Context::actor(ACTOR);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let sku = (n as usize * 13 + t * 31) % 1024;
            let ack = engine.reserve(ctx, request(&[(sku, t % 16, 1)])).expect("reserve");
            engine.wait(ack).expect("durable");
            n += 1;
        }
        n
    });
    report_fsync(&format!("threads={submitters}"), rate, started.elapsed(), &before, &engine.stats().wal);
    engine.close().expect("close");
}

/// The same with `submitters` async tasks on a two-worker tokio runtime awaiting
/// `Engine::durable`: how the HTTP front submits.
fn fsync_tasks(submitters: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = seeded(Durability::Fsync, Storage::dir(dir.path()).expect("storage"), 16, 1024, 1_000_000);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let before = engine.stats().wal;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let done = runtime.block_on(async {
        let tasks: Vec<_> = (0..submitters)
            .map(|t| {
                let (engine, stop) = (engine.clone(), stop.clone());
                tokio::spawn(async move {
                    let ctx = Context::actor(ACTOR);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let sku = (n as usize * 13 + t * 31) % 1024;
                        let ack = engine.reserve(ctx, request(&[(sku, t % 16, 1)])).expect("reserve");
                        if let Some(lsn) = ack.lsn {
                            engine.durable(lsn).await.expect("durable");
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        tokio::time::sleep(RUN).await;
        stop.store(true, Ordering::Relaxed);
        let mut done = 0;
        for task in tasks {
            done += task.await.expect("task");
        }
        done
    });
    let elapsed = started.elapsed();
    let rate = done as f64 / elapsed.as_secs_f64();
    report_fsync(&format!("tasks={submitters}"), rate, elapsed, &before, &engine.stats().wal);
    engine.close().expect("close");
}

fn report_fsync(label: &str, rate: f64, elapsed: Duration, before: &WalStats, after: &WalStats) {
    let batches = after.batches - before.batches;
    let records = after.records - before.records;
    let syncs = after.syncs - before.syncs;
    println!(
        "fsync {label}: {rate:.0} reservations/s, {:.0} fsyncs/s, {:.1} records per batch (largest {}), mean fsync {:.3} ms",
        syncs as f64 / elapsed.as_secs_f64(),
        records as f64 / batches.max(1) as f64,
        after.largest_batch,
        (after.sync_nanos_total - before.sync_nanos_total) as f64 / syncs.max(1) as f64 / 1e6,
    );
}

/// One submitter, durability `fsync`: the latency of reserve + durable ack, percentiles.
fn fsync_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = seeded(Durability::Fsync, Storage::dir(dir.path()).expect("storage"), 16, 1024, 1_000_000);
    let ctx = Context::actor(ACTOR);
    let mut samples: Vec<Duration> = (0..2000usize)
        .map(|n| {
            let started = Instant::now();
            let ack = engine.reserve(ctx, request(&[(n % 1024, n % 16, 1)])).expect("reserve");
            engine.wait(ack).expect("durable");
            started.elapsed()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "fsync latency, one submitter: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    engine.close().expect("close");
}

/// Units in each measured pool: the most one sale may hold.
const FLASH_POOL: u32 = 1_000_000;

/// Claims per second on one pool of [`FLASH_POOL`] units by distinct customers (limit 1),
/// until it sells out: durability `none` on 2 threads, then `fsync` with 64 async submitters;
/// then the rate of sold-out answers.
fn flash_claims() {
    let (storage, _, _) = Storage::memory();
    let engine = seeded(Durability::None, storage, 1, 1, FLASH_POOL);
    flash_sale(&engine, "DROP", FLASH_POOL);
    let sold = AtomicU64::new(0);
    let started = Instant::now();
    let customers = FLASH_POOL as usize + 1000;
    std::thread::scope(|scope| {
        for t in 0..2usize {
            let (engine, sold) = (&engine, &sold);
            scope.spawn(move || {
                let ctx = Context::actor(ACTOR);
                let mut name = String::with_capacity(16);
                for i in (t..customers).step_by(2) {
                    name.clear();
                    std::fmt::Write::write_fmt(&mut name, format_args!("c{i}")).expect("formatting");
                    match engine.claim(ctx, claim("DROP", &name)) {
                        Ok(_) => {
                            sold.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let sold = sold.into_inner();
    println!(
        "flash durability=none threads=2: {sold} claims in {:.3} s = {:.0} claims/s",
        elapsed.as_secs_f64(),
        sold as f64 / elapsed.as_secs_f64()
    );
    let refusals = run_threads(2, |t, stop| {
        let ctx = Context::actor(ACTOR);
        let name = format!("late-{t}");
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let _ = engine.claim(ctx, claim("DROP", &name)).expect_err("sold out");
            n += 1;
        }
        n
    });
    println!("flash sold-out answers threads=2: {refusals:.0} answers/s");

    let dir = tempfile::tempdir().expect("tempdir");
    let engine = seeded(Durability::Fsync, Storage::dir(dir.path()).expect("storage"), 1, 1, FLASH_POOL);
    flash_sale(&engine, "DROP", FLASH_POOL);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let before = engine.stats().wal;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done: u64 = runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (engine, next) = (engine.clone(), next.clone());
                tokio::spawn(async move {
                    let ctx = Context::actor(ACTOR);
                    let mut n = 0u64;
                    let deadline = Instant::now() + RUN;
                    while Instant::now() < deadline {
                        let customer = format!("c{}", next.fetch_add(1, Ordering::Relaxed));
                        let Ok(ack) = engine.claim(ctx, claim("DROP", &customer)) else { break };
                        if let Some(lsn) = ack.lsn {
                            engine.durable(lsn).await.expect("durable");
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            done += task.await.expect("task");
        }
        done
    });
    let elapsed = started.elapsed();
    report_fsync("flash claims tasks=64", done as f64 / elapsed.as_secs_f64(), elapsed, &before, &engine.stats().wal);
    engine.close().expect("close");
}

/// Log records replayed per second at start-up (no snapshot), with and without rebuilding the
/// audit trail's index of the replayed records.
fn replay() {
    for audit in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = || {
            let mut storage = Storage::dir(dir.path()).expect("storage");
            if !audit {
                storage.documents = None;
            }
            storage
        };
        let config = EngineConfig::manual(Durability::Async, Arc::new(SystemClock));
        let (engine, _) = Engine::open(config.clone(), storage()).expect("opens");
        aisle_benches::seed_without_snapshot(&engine, 16, 1024, 1_000_000);
        let ctx = Context::actor(ACTOR);
        for n in 0..1_000_000usize {
            let _ = engine.reserve(ctx, request(&[(n % 1024, n % 16, 1)])).expect("reserve");
        }
        engine.close().expect("close");
        let started = Instant::now();
        let (engine, report) = Engine::open(config, storage()).expect("recovers");
        let elapsed = started.elapsed();
        let records = report.wal.records_replayed;
        println!(
            "replay audit={audit}: {records} records in {:.3} s = {:.0} records/s",
            elapsed.as_secs_f64(),
            records as f64 / elapsed.as_secs_f64()
        );
        drop(engine);
    }
}

/// Memory per cell, and snapshot + recovery time, at 1,000,000 cells.
fn cells() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rss_before = rss_bytes().unwrap_or(0);
    // Frees of blocks allocated before counting started would underflow the counter: the
    // figure is the growth of live bytes over the seeding, which allocates far more than it
    // frees of older blocks.
    counting::ENABLED.store(true, Ordering::Relaxed);
    let live_before = counting::LIVE_BYTES.load(Ordering::Relaxed);
    // Durability `none`: the figure is the engine's state, not log buffers or the audit index.
    let config = EngineConfig::manual(Durability::None, Arc::new(SystemClock));
    let storage = || {
        let mut storage = Storage::dir(dir.path()).expect("storage");
        // No log, so no audit trail: keep sled's fixed-size cache out of a per-cell figure.
        storage.documents = None;
        storage
    };
    let (engine, _) = Engine::open(config.clone(), storage()).expect("opens");
    // 10,000 SKUs × 100 locations.
    aisle_benches::seed_without_snapshot(&engine, 100, 10_000, 50);
    let rss_after = rss_bytes().unwrap_or(0);
    let live_after = counting::LIVE_BYTES.load(Ordering::Relaxed);
    counting::ENABLED.store(false, Ordering::Relaxed);
    let cells = 1_000_000u64;
    println!(
        "memory: {:.1} bytes per cell (live heap bytes allocated while creating {cells} cells)",
        (live_after.saturating_sub(live_before)) as f64 / cells as f64
    );
    println!(
        "memory: {:.1} bytes per cell (RSS growth while creating {cells} cells, SKU entries and maps included)",
        (rss_after.saturating_sub(rss_before)) as f64 / cells as f64
    );
    let info = engine.snapshot().expect("snapshot");
    println!(
        "snapshot: {} cells, {} bytes in {:.3} s, writes paused {:.1} ms",
        info.cells,
        info.bytes,
        info.duration.as_secs_f64(),
        info.pause.as_secs_f64() * 1e3
    );
    // The same with a million live holds: what a snapshot in the middle of a sale costs.
    let ctx = Context::actor(ACTOR);
    for n in 0..1_000_000usize {
        let _ = engine.reserve(ctx, request(&[(n % 10_000, (n / 10_000) % 100, 1)])).expect("reserve");
    }
    let info = engine.snapshot().expect("snapshot");
    println!(
        "snapshot with 1,000,000 active reservations: {} bytes in {:.3} s, writes paused {:.1} ms",
        info.bytes,
        info.duration.as_secs_f64(),
        info.pause.as_secs_f64() * 1e3
    );
    drop(engine);
    let started = Instant::now();
    let (engine, report) = Engine::open(config, storage()).expect("recovers");
    println!(
        "recovery: snapshot of {cells} cells + {} log records in {:.3} s",
        report.wal.records_replayed,
        started.elapsed().as_secs_f64()
    );
    drop(engine);
}
