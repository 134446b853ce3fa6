//! The committed corpus: every target has seeds, and the valid ones are still accepted (a
//! log record, a snapshot or a request body of this format that no longer reads is a break
//! of compatibility, or a seed to write again with `aisle-fuzz-corpus`).

use aisle_fuzz::bodies::TYPES;
use aisle_fuzz::corpus::{dir, TARGETS};
use aisle_fuzz::{decode_record, decode_snapshot, Cursor};

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let entries = std::fs::read_dir(dir(target)).unwrap_or_else(|e| panic!("{target} has no corpus: {e}"));
    entries
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("a file name").to_owned();
            (name, std::fs::read(&path).expect("a corpus file reads"))
        })
        .collect()
}

#[test]
fn every_target_has_seeds() {
    for target in TARGETS {
        assert!(files(target).len() >= 3, "{target} has fewer than three seeds");
    }
}

#[test]
fn valid_seeds_are_accepted() {
    let valid =
        |target: &str| files(target).into_iter().filter(|(name, _)| name.starts_with("valid-")).collect::<Vec<_>>();
    let records = valid("wal__wal_record");
    assert!(records.len() >= 10, "the session's records are in the corpus");
    for (name, bytes) in records {
        assert!(decode_record(&bytes[1..]).is_ok(), "{name} no longer decodes");
    }
    let snapshots = valid("snapshot__snapshot_decode");
    assert!(!snapshots.is_empty());
    for (name, bytes) in snapshots.iter().filter(|(name, _)| name == "valid-snapshot") {
        assert!(decode_snapshot(name, &bytes[1..]).is_ok(), "{name} no longer decodes");
    }
    let bodies = valid("bodies__request_bodies");
    assert!(bodies.len() >= TYPES.len(), "every request type has a valid body");
    for (name, bytes) in bodies {
        let kind = &TYPES[usize::from(bytes[0])];
        assert!(name.starts_with(&format!("valid-{}-", kind.name)), "{name} is filed under {}", kind.name);
        let read = (kind.read)(&bytes[2..], &mut Cursor::new(&[0; 8]));
        assert!(read.is_ok(), "{name} is no longer accepted: {read:?}");
    }
}
