//! Behaviour of the log as a whole: round trips, torn tails, corruption, failures, crashes,
//! group commit, rotation and the durability future. Deterministic: payloads come from a
//! seeded generator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use super::format::{frame_size, segment_name, SEGMENT_HEADER_LEN};
use super::*;

/// splitmix64: enough randomness for payloads, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn payload(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

type Replayed = Vec<(Lsn, Vec<u8>)>;

fn config(durability: Durability) -> WalConfig {
    WalConfig { durability, ..WalConfig::default() }
}

fn open_with(
    storage: Arc<dyn LogStorage>,
    config: WalConfig,
    after_lsn: Lsn,
) -> Result<(Wal, RecoveryReport, Replayed), WalError> {
    let mut replayed = Vec::new();
    let mut replay = |lsn: Lsn, bytes: &[u8]| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        assert_eq!(bytes.as_ptr() as usize % 16, 0, "payload of record {lsn} is not 16-aligned");
        replayed.push((lsn, bytes.to_vec()));
        Ok(())
    };
    let (wal, report) = Wal::open(storage, config, after_lsn, &mut replay)?;
    Ok((wal, report, replayed))
}

fn open_mem(mem: &MemStorage, after_lsn: Lsn) -> Result<(Wal, RecoveryReport, Replayed), WalError> {
    open_with(Arc::new(mem.clone()), config(Durability::Fsync), after_lsn)
}

/// Appends every payload (waiting for each) and returns them with their LSNs.
fn append_all(wal: &Wal, payloads: &[Vec<u8>]) -> Replayed {
    payloads
        .iter()
        .map(|payload| {
            let lsn = wal.append(payload).expect("append");
            (lsn, payload.clone())
        })
        .collect()
}

/// A fresh log in `mem` holding `count` records of up to `max_len` bytes, closed cleanly.
fn recorded_log(mem: &MemStorage, seed: u64, count: usize, max_len: usize) -> Replayed {
    let mut rng = Rng(seed);
    let payloads: Vec<Vec<u8>> = (0..count).map(|_| rng.payload(max_len)).collect();
    let (wal, _, replayed) = open_mem(mem, 0).expect("open empty log");
    assert!(replayed.is_empty());
    let written = append_all(&wal, &payloads);
    wal.close().expect("close");
    written
}

#[test]
fn round_trip_preserves_payloads_lsns_and_alignment() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 1, 300, 5000);
    assert_eq!(written.first().map(|r| r.0), Some(1));
    let (wal, report, replayed) = open_mem(&mem, 0).expect("reopen");
    assert_eq!(replayed, written);
    assert_eq!(report.records_replayed, 300);
    assert_eq!(report.last_lsn, 300);
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.segments, 1);
    assert_eq!(wal.last_lsn(), 300);
    assert_eq!(wal.append(b"next").expect("append"), 301);
    wal.close().expect("close");
    assert_eq!(mem.names(), vec![segment_name(1), segment_name(301)]);
}

#[test]
fn segment_bytes_match_the_documented_format() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 2, 3, 40);
    let bytes = mem.file(&segment_name(1)).expect("segment exists");
    assert_eq!(&bytes[..8], b"AISLEWAL");
    assert_eq!(bytes[8..12], 1u32.to_le_bytes());
    assert_eq!(bytes[12..16], 32u32.to_le_bytes());
    assert_eq!(bytes[16..24], 1u64.to_le_bytes());
    assert_eq!(bytes[24..28], crc32c::crc32c(&bytes[..24]).to_le_bytes());
    assert_eq!(bytes[28..32], [0; 4]);
    let mut at = SEGMENT_HEADER_LEN;
    for (lsn, payload) in &written {
        let len = payload.len() as u32;
        assert_eq!(bytes[at..at + 4], len.to_le_bytes());
        let mut covered = lsn.to_le_bytes().to_vec();
        covered.extend_from_slice(&len.to_le_bytes());
        covered.extend_from_slice(payload);
        assert_eq!(bytes[at + 4..at + 8], crc32c::crc32c(&covered).to_le_bytes());
        assert_eq!(bytes[at + 8..at + 16], lsn.to_le_bytes());
        assert_eq!(&bytes[at + 16..at + 16 + payload.len()], &payload[..]);
        assert!(bytes[at + 16 + payload.len()..at + frame_size(payload.len())].iter().all(|b| *b == 0));
        at += frame_size(payload.len());
    }
    assert_eq!(at, bytes.len());
}

#[test]
fn a_cut_at_every_byte_offset_recovers_a_prefix() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 3, 30, 120);
    let name = segment_name(1);
    let full = mem.file(&name).expect("segment exists");
    // Frame boundaries: where each record's frame ends.
    let mut ends = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    for (_, payload) in &written {
        at += frame_size(payload.len());
        ends.push(at);
    }
    assert_eq!(at, full.len());

    for cut in 0..=full.len() {
        let mem = MemStorage::new();
        mem.set_file(&name, full[..cut].to_vec());
        let (wal, report, replayed) = open_mem(&mem, 0).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let whole = ends.iter().filter(|end| **end <= cut).count();
        assert_eq!(replayed, written[..whole], "cut at {cut}");
        let boundary = cut == SEGMENT_HEADER_LEN || ends.contains(&cut);
        let expected_tail = if cut < SEGMENT_HEADER_LEN {
            Some(TornTail { file: name.clone(), offset: 0, bytes_cut: cut as u64 })
        } else if boundary {
            None
        } else {
            let start = if whole == 0 { SEGMENT_HEADER_LEN } else { ends[whole - 1] };
            Some(TornTail { file: name.clone(), offset: start as u64, bytes_cut: (cut - start) as u64 })
        };
        assert_eq!(report.torn_tail, expected_tail, "cut at {cut}");
        assert_eq!(report.last_lsn, whole as u64, "cut at {cut}");

        let more = append_all(&wal, &[b"after".to_vec(), vec![7; 33]]);
        assert_eq!(more[0].0, whole as u64 + 1, "cut at {cut}");
        wal.close().expect("close");
        let (wal, report, replayed) = open_mem(&mem, 0).unwrap_or_else(|e| panic!("second open, cut at {cut}: {e}"));
        let mut expected = written[..whole].to_vec();
        expected.extend(more);
        assert_eq!(replayed, expected, "second open, cut at {cut}");
        assert_eq!(report.torn_tail, None);
        drop(wal);
    }
}

#[test]
fn damage_followed_by_valid_records_is_corruption() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 4, 12, 200);
    let name = segment_name(1);
    let full = mem.file(&name).expect("segment exists");
    let frame_start =
        |index: usize| SEGMENT_HEADER_LEN + written[..index].iter().map(|(_, p)| frame_size(p.len())).sum::<usize>();

    // Record 5 (index 4): a bit in its length, its crc, its lsn and its payload.
    let start = frame_start(4);
    assert!(!written[4].1.is_empty());
    for byte in [start, start + 5, start + 9, start + 16] {
        let mut damaged = full.clone();
        damaged[byte] ^= 0x04;
        mem.set_file(&name, damaged);
        match open_mem(&mem, 0) {
            Err(WalError::Corrupt { file, offset, .. }) => {
                assert_eq!(file, name, "flip at {byte}");
                assert_eq!(offset, start as u64, "flip at {byte}");
            }
            other => panic!("flip at {byte}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn damage_in_the_last_record_is_a_torn_tail() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 5, 12, 200);
    let name = segment_name(1);
    let mut bytes = mem.file(&name).expect("segment exists");
    let last_start = bytes.len() - frame_size(written[11].1.len());
    bytes[last_start + 16] ^= 0x80;
    mem.set_file(&name, bytes.clone());
    let (wal, report, replayed) = open_mem(&mem, 0).expect("a torn tail is not fatal");
    assert_eq!(replayed, written[..11]);
    assert_eq!(
        report.torn_tail,
        Some(TornTail { file: name.clone(), offset: last_start as u64, bytes_cut: (bytes.len() - last_start) as u64 })
    );
    assert_eq!(mem.file(&name).map(|f| f.len()), Some(last_start));
    assert_eq!(wal.append(b"x").expect("append"), 12);
    wal.close().expect("close");
}

#[test]
fn damage_in_a_closed_segment_is_corruption_even_at_its_end() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 6, 5, 50);
    let (wal, _, _) = open_mem(&mem, 0).expect("reopen");
    wal.append(b"in the second segment").expect("append");
    wal.close().expect("close");
    let name = segment_name(1);
    let mut bytes = mem.file(&name).expect("segment exists");
    let last_start = bytes.len() - frame_size(written[4].1.len());
    bytes[last_start + 4] ^= 1;
    mem.set_file(&name, bytes);
    match open_mem(&mem, 0) {
        Err(WalError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (name, last_start as u64));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_torn_header_on_the_last_segment_removes_it() {
    let mem = MemStorage::new();
    let written = recorded_log(&mem, 7, 4, 50);
    let torn = segment_name(5);
    mem.set_file(&torn, b"AISLEWAL\x01\x00".to_vec());
    let (wal, report, replayed) = open_mem(&mem, 0).expect("open");
    assert_eq!(replayed, written);
    assert_eq!(report.torn_tail, Some(TornTail { file: torn.clone(), offset: 0, bytes_cut: 10 }));
    assert_eq!(wal.append(b"x").expect("append"), 5);
    wal.close().expect("close");
    assert_eq!(mem.file(&torn).map(|f| f.len()), Some(SEGMENT_HEADER_LEN + frame_size(1)));
}

#[test]
fn segments_must_be_consecutive() {
    let mem = MemStorage::new();
    recorded_log(&mem, 8, 4, 50);
    let (wal, _, _) = open_mem(&mem, 0).expect("reopen");
    wal.append(b"five").expect("append");
    wal.close().expect("close");
    // Renaming the second segment as if it started later leaves lsn 5 out of sequence.
    let bytes = mem.file(&segment_name(5)).expect("second segment");
    mem.set_file(&segment_name(7), bytes);
    LogStorage::remove(&mem, &segment_name(5)).expect("remove");
    match open_mem(&mem, 0) {
        Err(WalError::Corrupt { file, offset: 0, .. }) => assert_eq!(file, segment_name(7)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn after_lsn_skips_and_a_missing_range_is_corruption() {
    let mem = MemStorage::new();
    let storage: Arc<dyn LogStorage> = Arc::new(mem.clone());
    let cfg = WalConfig { segment_bytes_max: SEGMENT_BYTES_MIN, ..config(Durability::Fsync) };
    let (wal, _, _) = open_with(storage.clone(), cfg.clone(), 0).expect("open");
    let mut rng = Rng(9);
    let first: Vec<Vec<u8>> = (0..10).map(|_| rng.payload(100)).collect();
    let written = append_all(&wal, &first);
    wal.flush().expect("flush");
    assert_eq!(wal.rotate().expect("rotate"), 11);
    let second: Vec<Vec<u8>> = (0..10).map(|_| rng.payload(100)).collect();
    let written: Replayed = written.into_iter().chain(append_all(&wal, &second)).collect();
    wal.flush().expect("flush");
    wal.close().expect("close");

    let (wal, report, replayed) = open_with(storage.clone(), cfg.clone(), 4).expect("open after 4");
    assert_eq!(replayed, written[4..]);
    assert_eq!(report.records_replayed, 16);
    // Removing segment 1 (records 1..=10) is allowed once a snapshot covers 10.
    assert_eq!(wal.remove_through(9).expect("remove through 9"), 0);
    assert_eq!(wal.remove_through(10).expect("remove through 10"), 1);
    wal.close().expect("close");
    assert!(!mem.names().contains(&segment_name(1)));

    match open_with(storage.clone(), cfg.clone(), 5) {
        Err(WalError::Corrupt { file, offset: 0, reason }) => {
            assert_eq!(file, segment_name(11), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let (wal, _, replayed) = open_with(storage.clone(), cfg.clone(), 10).expect("open after 10");
    assert_eq!(replayed, written[10..]);
    wal.close().expect("close");

    // A snapshot past the end of the log: nothing to replay, numbering continues after it.
    let (wal, report, replayed) = open_with(storage.clone(), cfg.clone(), 25).expect("open after 25");
    assert!(replayed.is_empty());
    assert_eq!(report.last_lsn, 25);
    assert_eq!(wal.append(b"26").expect("append"), 26);
    wal.close().expect("close");
    let (wal, _, replayed) = open_with(storage, cfg, 25).expect("reopen after 25");
    assert_eq!(replayed, vec![(26, b"26".to_vec())]);
    drop(wal);
}

#[test]
fn a_replay_error_aborts_open() {
    let mem = MemStorage::new();
    recorded_log(&mem, 10, 5, 10);
    let mut replay = |lsn: Lsn, _: &[u8]| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if lsn == 3 {
            Err("bad record".into())
        } else {
            Ok(())
        }
    };
    match Wal::open(Arc::new(mem), config(Durability::Fsync), 0, &mut replay) {
        Err(WalError::Replay { lsn: 3, source }) => assert_eq!(source.to_string(), "bad record"),
        other => panic!("expected Replay, got {other:?}"),
    }
}

#[test]
fn a_failed_sync_makes_the_log_read_only_and_is_never_retried() {
    let mem = MemStorage::new();
    let (wal, _, _) = open_mem(&mem, 0).expect("open");
    let name = segment_name(1);
    let lsn = wal.append(b"ok").expect("append");
    wal.wait_durable(lsn).expect("durable");
    let syncs_before = mem.sync_calls(&name);

    mem.fail_syncs(true);
    let lsn = wal.append(b"doomed").expect("append");
    match wal.wait_durable(lsn) {
        Err(WalError::ReadOnly { reason }) => assert!(reason.contains(&name), "{reason}"),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    assert_eq!(mem.sync_calls(&name), syncs_before + 1);
    assert!(wal.read_only_reason().is_some_and(|r| r.contains("injected sync failure")));
    assert!(matches!(wal.admit(), Err(WalError::ReadOnly { .. })));
    assert!(matches!(wal.append(b"later"), Err(WalError::ReadOnly { .. })));
    assert!(matches!(wal.wait_durable(lsn), Err(WalError::ReadOnly { .. })));
    assert!(matches!(wal.flush(), Err(WalError::ReadOnly { .. })));
    assert!(matches!(wal.rotate(), Err(WalError::ReadOnly { .. })));
    // Already durable before the failure: still fine.
    wal.wait_durable(1).expect("record 1 stays durable");
    mem.fail_syncs(false);
    assert!(matches!(wal.close(), Err(WalError::ReadOnly { .. })));
    assert_eq!(mem.sync_calls(&name), syncs_before + 1, "no second sync on the failed file");
}

#[test]
fn acknowledged_records_survive_a_crash() {
    let mem = MemStorage::new();
    let (wal, _, _) = open_mem(&mem, 0).expect("open");
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let wal = wal.clone();
            thread::spawn(move || {
                let mut rng = Rng(100 + t);
                let mut acked = Vec::new();
                for i in 0..200 {
                    let payload = rng.payload(300);
                    let lsn = wal.append(&payload).expect("append");
                    // Half are waited for (acknowledged); the rest are left in flight.
                    if i % 2 == 0 {
                        wal.wait_durable(lsn).expect("durable");
                        acked.push((lsn, payload));
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked: Replayed = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    mem.crash();
    drop(wal);

    acked.sort();
    let (_, report, replayed) = open_mem(&mem, 0).expect("reopen after crash");
    assert_eq!(report.torn_tail, None);
    assert!(replayed.len() >= acked.len());
    for (lsn, payload) in &acked {
        let found = replayed.get((*lsn - 1) as usize);
        assert_eq!(found, Some(&(*lsn, payload.clone())), "record {lsn} was acknowledged");
    }
}

#[test]
fn concurrent_waits_are_group_committed_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<dyn LogStorage> = Arc::new(DirStorage::open(dir.path().join("wal")).expect("dir"));
    let (wal, _, _) = open_with(storage.clone(), config(Durability::Fsync), 0).expect("open");
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let wal = wal.clone();
            thread::spawn(move || {
                for i in 0..1000u32 {
                    let mut payload = vec![t; 24];
                    payload.extend_from_slice(&i.to_le_bytes());
                    let lsn = wal.append(&payload).expect("append");
                    wal.wait_durable(lsn).expect("durable");
                    assert!(wal.durable_lsn() >= lsn);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let stats = wal.stats();
    assert_eq!(stats.records, 8000);
    assert_eq!(wal.durable_lsn(), 8000);
    assert!(stats.batches < stats.records, "no grouping: {stats:?}");
    assert!(stats.largest_batch > 1);
    assert!(stats.syncs >= stats.batches);
    let wal = Arc::into_inner(wal).expect("threads are done");
    wal.close().expect("close");

    let (_, report, replayed) = open_with(storage, config(Durability::Fsync), 0).expect("reopen");
    assert_eq!(report.records_replayed, 8000);
    assert!(replayed.iter().enumerate().all(|(i, (lsn, _))| *lsn == i as u64 + 1));
}

#[test]
fn rotation_and_remove_through() {
    let mem = MemStorage::new();
    let storage: Arc<dyn LogStorage> = Arc::new(mem.clone());
    let cfg = WalConfig { segment_bytes_max: SEGMENT_BYTES_MIN, ..config(Durability::Fsync) };
    let (wal, _, _) = open_with(storage.clone(), cfg.clone(), 0).expect("open");
    let mut rng = Rng(11);
    for _ in 0..500 {
        let lsn = wal.append(&rng.payload(100)).expect("append");
        wal.wait_durable(lsn).expect("durable");
    }
    let segments = wal.segment_names();
    assert!(segments.len() > 5, "{segments:?}");
    assert_eq!(wal.stats().segments_created as usize, segments.len() - 1);
    assert_eq!(mem.names(), segments);

    let firsts: Vec<Lsn> = segments.iter().filter_map(|n| format::parse_segment_name(n)).collect();
    let expected_removed = firsts.windows(2).filter(|w| w[1] - 1 <= 250).count();
    assert!(expected_removed > 0);
    assert_eq!(wal.remove_through(250).expect("remove"), expected_removed);
    assert_eq!(wal.remove_through(250).expect("remove again"), 0);
    let remaining_first = firsts[expected_removed];
    assert!(remaining_first <= 251);
    assert_eq!(mem.names().len(), segments.len() - expected_removed);

    // Explicit rotation: everything so far is below the returned LSN; an empty one is kept.
    assert_eq!(wal.rotate().expect("rotate"), 501);
    assert_eq!(wal.rotate().expect("rotate an empty segment"), 501);
    // The current segment is never removed, whatever the LSN.
    let before = mem.names().len();
    let removed = wal.remove_through(u64::MAX).expect("remove all closed");
    assert_eq!(mem.names().len(), before - removed);
    assert_eq!(mem.names(), vec![segment_name(501)]);
    wal.close().expect("close");

    let (wal, report, replayed) = open_with(storage.clone(), cfg.clone(), 500).expect("reopen");
    assert!(replayed.is_empty());
    assert_eq!(report.last_lsn, 500);
    assert_eq!(wal.append(b"x").expect("append"), 501);
    wal.close().expect("close");
}

#[test]
fn rotated_segments_replay_in_order() {
    let mem = MemStorage::new();
    let storage: Arc<dyn LogStorage> = Arc::new(mem.clone());
    let cfg = WalConfig { segment_bytes_max: SEGMENT_BYTES_MIN, ..config(Durability::Async) };
    let (wal, _, _) = open_with(storage.clone(), cfg.clone(), 0).expect("open");
    let mut rng = Rng(12);
    let payloads: Vec<Vec<u8>> = (0..400).map(|_| rng.payload(200)).collect();
    let mut written = Vec::new();
    // Rotation happens between batches; waiting every few records keeps batches small.
    for chunk in payloads.chunks(10) {
        written.extend(append_all(&wal, chunk));
        wal.wait_durable(wal.last_lsn()).expect("written");
    }
    wal.close().expect("close");
    assert!(mem.names().len() > 5);
    let (wal, report, replayed) = open_with(storage, cfg, 0).expect("reopen");
    assert_eq!(replayed, written);
    assert!(report.segments > 5);
    drop(wal);
}

#[test]
fn admit_reports_busy_while_too_much_is_pending() {
    let mem = MemStorage::new();
    let cfg = WalConfig { pending_bytes_max: 4096, ..config(Durability::Fsync) };
    let (wal, _, _) = open_with(Arc::new(mem), cfg, 0).expect("open");
    wal.admit().expect("empty log admits");
    let lsn = {
        // Holding the segment stalls the writer, so appends pile up.
        let _stall = wal.shared.segment.lock();
        wal.append(&[1; 3000]).expect("append");
        wal.admit().expect("under the bound");
        let lsn = wal.append(&[2; 3000]).expect("append overshoots: the bound is soft");
        assert!(matches!(wal.admit(), Err(WalError::Busy)));
        lsn
    };
    wal.wait_durable(lsn).expect("durable");
    wal.admit().expect("drained");
    assert!(matches!(
        wal.append(&vec![0; (1 << 20) + 1]),
        Err(WalError::RecordTooLarge { len, max: 1_048_576 }) if len == (1 << 20) + 1
    ));
    wal.close().expect("close");
}

struct ThreadWaker {
    thread: thread::Thread,
    wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor: poll, park until woken, repeat.
fn block_on<F: std::future::Future>(future: F, waker: &Arc<ThreadWaker>) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(waker.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

#[test]
fn the_durable_future_resolves_when_the_writer_commits() {
    let mem = MemStorage::new();
    let (wal, _, _) = open_mem(&mem, 0).expect("open");
    let waker = Arc::new(ThreadWaker { thread: thread::current(), wakes: AtomicUsize::new(0) });
    let mut future = {
        let _stall = wal.shared.segment.lock();
        let lsn = wal.append(b"async").expect("append");
        let mut future = Box::pin(wal.durable(lsn));
        let w = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&w);
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wal.shared.waiters.lock().wakers.len(), 1, "a re-poll adds no waker");
        future
    };
    block_on(future.as_mut(), &waker).expect("durable");
    assert!(waker.wakes.load(Ordering::SeqCst) >= 1, "resolved by a wake, not by polling");
    // Already durable: ready on the first poll.
    block_on(wal.durable(1), &waker).expect("durable");

    // A failure settles futures too.
    mem.fail_syncs(true);
    let lsn = wal.append(b"doomed").expect("append");
    assert!(matches!(block_on(wal.durable(lsn), &waker), Err(WalError::ReadOnly { .. })));
}

#[test]
fn async_mode_acknowledges_writes_and_flush_syncs() {
    let mem = MemStorage::new();
    let cfg = WalConfig { async_sync_interval: Duration::from_millis(5), ..config(Durability::Async) };
    let (wal, _, _) = open_with(Arc::new(mem.clone()), cfg, 0).expect("open");
    let name = segment_name(1);
    let lsn = wal.append(b"a").expect("append");
    wal.wait_durable(lsn).expect("written");
    // The timer syncs without being asked.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wal.shared.synced_lsn.load(Ordering::Acquire) < lsn {
        assert!(std::time::Instant::now() < deadline, "the async sync never came");
        thread::sleep(Duration::from_millis(1));
    }
    let lsn = wal.append(b"b").expect("append");
    wal.flush().expect("flush");
    assert!(wal.shared.synced_lsn.load(Ordering::Acquire) >= lsn);
    assert!(mem.sync_calls(&name) >= 2);
    wal.close().expect("close");
}

#[test]
fn none_mode_touches_no_files() {
    let mem = MemStorage::new();
    let (wal, report, replayed) = open_with(Arc::new(mem.clone()), config(Durability::None), 7).expect("open");
    assert!(replayed.is_empty());
    assert_eq!(report.last_lsn, 7);
    let lsn = wal.append(b"x").expect("append");
    assert_eq!(lsn, 8);
    assert_eq!(wal.durable_lsn(), 8);
    wal.wait_durable(lsn).expect("durable");
    block_on(wal.durable(lsn), &Arc::new(ThreadWaker { thread: thread::current(), wakes: AtomicUsize::new(0) }))
        .expect("durable");
    wal.flush().expect("flush");
    assert_eq!(wal.rotate().expect("rotate"), 9);
    assert_eq!(wal.remove_through(8).expect("remove"), 0);
    wal.close().expect("close");
    assert!(mem.names().is_empty());
}

#[test]
fn observer_sees_every_batch() {
    #[derive(Default)]
    struct Count {
        records: std::sync::atomic::AtomicU64,
        synced: std::sync::atomic::AtomicU64,
    }
    impl WalObserver for Count {
        fn batch_written(&self, records: u64, _bytes: u64, sync: Option<Duration>) {
            self.records.fetch_add(records, Ordering::SeqCst);
            if sync.is_some() {
                self.synced.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let count = Arc::new(Count::default());
    let cfg = WalConfig { observer: Some(count.clone()), ..config(Durability::Fsync) };
    let (wal, _, _) = open_with(Arc::new(MemStorage::new()), cfg, 0).expect("open");
    for i in 0..50u8 {
        let lsn = wal.append(&[i]).expect("append");
        wal.wait_durable(lsn).expect("durable");
    }
    wal.close().expect("close");
    assert_eq!(count.records.load(Ordering::SeqCst), 50);
    assert!(count.synced.load(Ordering::SeqCst) >= 1);
}

#[test]
fn config_validation_and_durability_names() {
    WalConfig::default().validate().expect("defaults are valid");
    for bad in [
        WalConfig { segment_bytes_max: 100, ..WalConfig::default() },
        WalConfig { record_bytes_max: 0, ..WalConfig::default() },
        WalConfig { pending_bytes_max: 0, ..WalConfig::default() },
        WalConfig { durability: Durability::Async, async_sync_interval: Duration::ZERO, ..WalConfig::default() },
    ] {
        assert!(matches!(bad.validate(), Err(WalError::InvalidConfig(_))), "{bad:?}");
    }
    for mode in [Durability::Fsync, Durability::Async, Durability::None] {
        assert_eq!(mode.to_string().parse::<Durability>().expect("round trip"), mode);
    }
    assert!("FSYNC".parse::<Durability>().is_err());
    assert_eq!(Durability::default(), Durability::Fsync);
}
