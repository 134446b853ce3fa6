//! Small parts of the tool: option parsing, the customer stream, the comparison table.

use std::time::Duration;

use aisle_loadtest::aisle::Mix;
use aisle_loadtest::cli::parse_duration;
use aisle_loadtest::flash::{worker_rng, CustomerStream};
use aisle_loadtest::http::WalCounters;
use aisle_loadtest::report::{comparison_markdown, Digest};
use aisle_loadtest::stats::Percentiles;

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("soon").is_err());
}

#[test]
fn mixes_parse_and_reject_nonsense() {
    assert_eq!(Mix::parse("checkout=30,pos=60,flash=10"), Ok(Mix { checkout: 30, pos: 60, flash: 10 }));
    assert_eq!(Mix::parse("pos=1"), Ok(Mix { checkout: 0, pos: 1, flash: 0 }));
    assert!(Mix::parse("pos=0").is_err());
    assert!(Mix::parse("browse=5").is_err());
    assert!(Mix::parse("pos").is_err());
}

#[test]
fn customer_streams_are_disjoint_per_worker_and_repeatable() {
    let draw = |worker: usize| {
        let mut rng = worker_rng(7, worker);
        let mut s = CustomerStream::new(worker, 4, 1000, 0.0);
        (0..10).map(|_| s.next(&mut rng)).collect::<Vec<_>>()
    };
    assert_eq!(draw(1), vec![1, 5, 9, 13, 17, 21, 25, 29, 33, 37]);
    assert_eq!(draw(1), draw(1));
    // Repeats come from the worker's own customers; past the end every claim is a repeat.
    let mut rng = worker_rng(7, 0);
    let mut s = CustomerStream::new(0, 2, 6, 0.5);
    let seen: Vec<u64> = (0..50).map(|_| s.next(&mut rng)).collect();
    assert!(seen.iter().all(|c| [0, 2, 4].contains(c)), "{seen:?}");
}

#[test]
fn wal_counters_come_from_prometheus_text() {
    let text = "# HELP x\naisle_wal_batch_records_sum 300\naisle_wal_batch_records_count 10\n\
                aisle_wal_fsync_duration_seconds_sum 0.02\naisle_wal_fsync_duration_seconds_count 10\n";
    let c = WalCounters::parse(text);
    assert_eq!(c, WalCounters { fsyncs: 10.0, fsync_seconds: 0.02, records: 300.0 });
    assert_eq!(c.since(&WalCounters::default()), "WAL: 10 fsyncs, 30.0 records/fsync, 2.00 ms/fsync");
}

fn digest(label: &str, backend: &str, durability: &str, throughput: f64, p99: f64) -> Digest {
    Digest {
        label: label.into(),
        backend: backend.into(),
        durability: Some(durability.into()),
        scenario: "flash".into(),
        concurrency: 64,
        duration_s: 20.0,
        throughput,
        ok: (throughput * 20.0) as u64,
        latency_ms: Percentiles { p50: 1.0, p90: 2.0, p99, p999: 9.0, max: 10.0, mean: 1.0 },
        error_count: 0,
        oversell: Some(0),
        passed: true,
    }
}

#[test]
fn comparison_table_has_the_ratios() {
    let table = comparison_markdown(&[
        digest("aisle", "aisle", "WAL", 12_000.0, 10.0),
        digest("Redis", "redis", "appendfsync always", 6_000.0, 20.0),
        digest("Redis", "redis", "appendfsync everysec", 24_000.0, 5.0),
        digest("PostgreSQL", "postgres", "synchronous_commit on, fsync on", 600.0, 200.0),
    ]);
    assert!(table.contains("| aisle | WAL | 12,000 | 12,000 |"), "{table}");
    assert!(table.contains("aisle / Redis (appendfsync always): 2.00× the requests per second, 0.50× the p99"));
    assert!(table.contains("aisle / PostgreSQL: 20.00× the requests per second"), "{table}");
    assert!(table.contains("| 0.50× |"), "{table}");
}
