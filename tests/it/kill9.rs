//! A real process with `fsync` durability is killed with SIGKILL at random moments; every
//! reservation it reported as acknowledged must be there after recovery, whole.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_engine::audit::MovementQuery;
use aisle_engine::time::SystemClock;
use aisle_engine::view::ReservationStatus;
use aisle_engine::wal::Durability;
use aisle_engine::{Engine, EngineConfig, Storage};

const ROUNDS: usize = 5;

/// Starts `crash_writer` on `dir` with 8 threads in `mode` (`reserve` or `receive`).
fn crash_writer(dir: &std::path::Path, mode: &str) -> (std::process::Child, std::process::ChildStdout) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir)
        .args(["8", mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn crash_writer");
    let stdout = child.stdout.take().expect("stdout");
    (child, stdout)
}

/// The next value of a xorshift sequence: kill moments that vary but replay exactly.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn acknowledged_reservations_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: Vec<(u64, i64)> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..ROUNDS {
        let (mut child, stdout) = crash_writer(dir.path(), "reserve");
        let run_for = Duration::from_millis(150 + next(&mut seed) % 600);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut started = None;
        let mut this_round = 0;
        loop {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(line) if line == "ready" => started = Some(Instant::now()),
                Ok(line) => {
                    let mut parts = line.split(' ').skip(1);
                    let id = parts.next().and_then(|p| p.parse().ok()).expect("id");
                    let qty = parts.next().and_then(|p| p.parse().ok()).expect("qty");
                    acked.push((id, qty));
                    this_round += 1;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("crash_writer exited early"),
            }
            if started.is_some_and(|s| s.elapsed() >= run_for) {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // Lines already written to the pipe were acknowledged before the kill: take them too.
        reader.join().expect("reader");
        acked.extend(rx.try_iter().filter(|l| l.starts_with("ack ")).map(|line| {
            let mut parts = line.split(' ').skip(1);
            (
                parts.next().and_then(|p| p.parse().ok()).expect("id"),
                parts.next().and_then(|p| p.parse().ok()).expect("qty"),
            )
        }));
        assert!(this_round > 0, "round {round}: nothing was acknowledged before the kill");

        let config = EngineConfig::manual(Durability::Fsync, Arc::new(SystemClock));
        let (engine, report) =
            Engine::open(config, Storage::dir(dir.path()).expect("storage")).expect("recovers after kill -9");
        for &(id, qty) in &acked {
            let view = engine
                .reservation(id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged reservation {id} lost ({report:?})"));
            assert_eq!(view.status, ReservationStatus::Active);
            assert_eq!(view.lines.iter().map(|l| i64::from(l.qty)).sum::<i64>(), qty, "reservation {id} is whole");
        }
        engine.check_invariants().unwrap_or_else(|e| panic!("round {round}: {e}"));
        let reserved: i64 = ["K1", "K2", "K3", "K4"].iter().map(|s| engine.cell(s, "W").expect("cell").reserved).sum();
        assert!(reserved >= acked.iter().map(|a| a.1).sum::<i64>(), "reserved covers every acknowledged hold");
        engine.close().expect("close");
    }
}

/// Receipts from 8 threads, SIGKILL at a random moment, then the audit trail must equal the log:
/// no movement for a record the log lacks (the trail only follows durable records), none twice,
/// and per cell the movements add up to what the recovered log says is on hand.
#[test]
fn the_audit_trail_equals_the_log_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut acked = 0i64;
    for round in 0..3 {
        let (mut child, stdout) = crash_writer(dir.path(), "receive");
        let run_for = Duration::from_millis(200 + next(&mut seed) % 600);
        let counter = std::thread::spawn(move || {
            let mut acks = 0i64;
            let mut started = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    started = Some(Instant::now());
                } else if line.starts_with("ack ") {
                    acks += 1;
                }
            }
            (acks, started.is_some())
        });
        std::thread::sleep(Duration::from_millis(300) + run_for);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let (acks, started) = counter.join().expect("reader");
        assert!(started && acks > 0, "round {round}: nothing was acknowledged before the kill");
        acked += acks;

        let config = EngineConfig::manual(Durability::Fsync, Arc::new(SystemClock));
        let (engine, _) =
            Engine::open(config, Storage::dir(dir.path()).expect("storage")).expect("recovers after kill -9");
        engine.flush_audit().expect("flush");
        let last_lsn = engine.stats().last_lsn;
        let mut on_hand_in_trail = 0i64;
        let mut seen = std::collections::HashSet::new();
        for sku in ["K1", "K2", "K3", "K4"] {
            let mut cursor: Option<Vec<u8>> = None;
            let mut sum = 0i64;
            loop {
                let query =
                    MovementQuery { sku: Some(sku), location: Some("W"), cursor: cursor.as_deref(), limit: 1000 };
                let page = engine.movements(&query).expect("movements");
                for movement in &page.movements {
                    assert!(movement.lsn <= last_lsn, "round {round}: movement at lsn {} past the log", movement.lsn);
                    assert!(seen.insert((movement.lsn, sku)), "round {round}: lsn {} listed twice", movement.lsn);
                    sum += movement.on_hand;
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(sum, engine.cell(sku, "W").expect("cell").on_hand, "round {round}: the trail of {sku} adds up");
            on_hand_in_trail += sum;
        }
        let initial = 4 * i64::from(1_000_000u32);
        assert!(on_hand_in_trail - initial >= acked, "round {round}: every acknowledged receipt is in the trail");
        engine.close().expect("close");
    }
}
