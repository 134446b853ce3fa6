//! A full disk, end to end: the real binary on a small tmpfs that the test fills. Writes turn
//! into 503 `unavailable` once the log cannot grow, `/readyz` and the log say why, reads go
//! on; after a kill -9, space freed and a restart, every acknowledged write is there and a
//! retry of each refused one with its Idempotency-Key lands exactly once.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); where that is refused the test says so and skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::{runtime, Server};

const LOC: &str = "HK-CWB";
const SKU: &str = "TEE-M";
/// Space left free after filling, so a few hundred writes succeed before the log runs out.
const HEADROOM_BYTES: u64 = 48 << 10;

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status();
        status.is_ok_and(|s| s.success()).then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system at `filler`'s directory, then gives `HEADROOM_BYTES` back.
fn fill(filler: &Path) {
    let mut file = std::fs::File::create(filler).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    let mut written: u64 = 0;
    for size in [chunk.len(), 4096, 64] {
        loop {
            match file.write(&chunk[..size]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => break,
            }
        }
    }
    file.set_len(written.saturating_sub(HEADROOM_BYTES)).expect("give some space back");
    file.sync_all().expect("sync the filler");
}

#[test]
fn a_full_disk_refuses_writes_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("mnt"), "64m") else {
        eprintln!("cannot mount a tmpfs here (needs root): the disk-full test is skipped");
        return;
    };
    let data = tmpfs.0.join("data");
    let log = dir.path().join("server.log");
    let filler = tmpfs.0.join("filler");
    let receive = |key: usize| json!({"location": LOC, "sku": SKU, "qty": 1, "reason": format!("r-{key}")});
    runtime().block_on(async {
        let server = Server::start_logged(&data, &[], &log);
        server.seed(LOC, SKU, 0).await;
        fill(&filler);

        // Receipts with a key each until the log has refused twenty in a row.
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        let mut key = 0;
        while refused.len() < 20 && key < 100_000 {
            let answer = server
                .raw_with(
                    "POST",
                    "/v1/stock/receive",
                    Some(crate::support::ADMIN),
                    Some(receive(key).to_string().into_bytes()),
                    &[("idempotency-key", &format!("k-{key}"))],
                )
                .await;
            match answer.status {
                200 => acked.push(key),
                503 => {
                    assert_eq!(answer.code(), "unavailable", "{answer:?}");
                    assert!(answer.headers.contains_key("retry-after"), "{answer:?}");
                    refused.push(key);
                }
                _ => panic!("a receipt on a full disk answered {answer:?}"),
            }
            key += 1;
        }
        assert!(!acked.is_empty() && refused.len() == 20, "acked {}, refused {}", acked.len(), refused.len());
        println!("disk full after {} acknowledged receipts; {} refused", acked.len(), refused.len());
        let ready = server.raw("GET", "/readyz", None, None).await;
        assert_eq!((ready.status, &ready.body["status"]), (503, &json!("read_only")), "{ready:?}");
        let reason = ready.body["reason"].as_str().unwrap_or_default().to_owned();
        assert!(reason.contains("No space left"), "the reason names the cause: {reason}");
        // Reads go on.
        let cell = server.cell(SKU, LOC).await;
        assert!(cell["on_hand"].as_i64().unwrap_or_default() >= acked.len() as i64, "{cell}");
        server.signal(nix::sys::signal::Signal::SIGKILL);
        drop(server);
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(logged.contains("read-only") && logged.contains("No space left"), "the log says why:\n{logged}");

        // Space freed, restarted: every acknowledged receipt is there, writes are taken again.
        std::fs::remove_file(&filler).expect("free the space");
        let server = Server::start_logged(&data, &[], &log);
        let ready = server.raw("GET", "/readyz", None, None).await;
        assert_eq!(ready.status, 200, "{ready:?}");
        let on_hand = server.cell(SKU, LOC).await["on_hand"].as_i64().unwrap_or_default();
        let sent = (acked.len() + refused.len()) as i64;
        println!("recovered on_hand {on_hand} of {sent} sent ({} acknowledged)", acked.len());
        assert!(
            (acked.len() as i64..=sent).contains(&on_hand),
            "on_hand {on_hand}: {} acknowledged, {} refused",
            acked.len(),
            refused.len()
        );
        // A refused receipt may or may not have reached the log before it failed; its key
        // makes the retry land exactly once either way.
        for &key in refused.iter().chain(acked.iter().take(5)) {
            let answer = server
                .raw_with(
                    "POST",
                    "/v1/stock/receive",
                    Some(crate::support::ADMIN),
                    Some(receive(key).to_string().into_bytes()),
                    &[("idempotency-key", &format!("k-{key}"))],
                )
                .await;
            assert_eq!(answer.status, 200, "retry of k-{key}: {answer:?}");
        }
        let on_hand = server.cell(SKU, LOC).await["on_hand"].as_i64().unwrap_or_default();
        assert_eq!(on_hand, sent, "every key applied exactly once");
        let movements = server.admin("GET", &format!("/v1/stock/movements?sku={SKU}&limit=1000"), None).await;
        assert_eq!(movements.status, 200, "{movements:?}");
    });
    drop(tmpfs);
}
