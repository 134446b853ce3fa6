//! The log: record decoding, and whole segments through recovery (`Wal::open`).

use std::collections::BTreeMap;
use std::sync::Arc;

use aisle_engine::wal::{Durability, Lsn, MemStorage, Wal, WalConfig, WalError};
use aisle_fuzz::session::session;
use aisle_fuzz::wal::{push_frame, segment_header, segment_name, walk, SEGMENT_HEADER_LEN};
use aisle_fuzz::{budgeted, damage, decode_record, Cursor, Edit};
use bolero::check;

/// The largest payload recovery believes here: small, so the length check is reachable.
const RECORD_BYTES_MAX: u32 = 1 << 16;

/// Arbitrary bytes as a record's payload: decoding answers `Ok` or an error, and what it
/// accepts encodes back to a record that decodes the same.
///
/// Script: a mode byte, then 0: the payload itself; 1: a record of the session (by index)
/// with a few edits.
#[test]
fn wal_record() {
    let records: Vec<&Vec<u8>> = session().records.values().map(|(payload, _)| payload).collect();
    budgeted(check!()).for_each(|input: &[u8]| {
        let mut c = Cursor::new(input);
        let edited;
        let payload = match c.below(2) {
            0 => c.rest(),
            _ => {
                let mut bytes = (*c.pick(&records)).clone();
                damage(&mut bytes, &mut c);
                edited = bytes;
                &edited[..]
            }
        };
        if let Ok(record) = decode_record(payload) {
            let again = aisle_engine::command::encode(&record).expect("a decoded record encodes");
            let back = decode_record(&again).expect("a record just encoded decodes");
            // Compared as bytes: a record may hold a NaN, which equals nothing.
            let twice = aisle_engine::command::encode(&back).expect("a decoded record encodes");
            assert_eq!(&twice[..], &again[..], "the record changed on its way through the log");
        }
    });
}

/// Records as recovery replays them: LSN and payload.
type Records = Vec<(Lsn, Vec<u8>)>;

/// Recovery over `files`, with the checks every outcome must pass; what it replayed, if it
/// opened the log.
fn recover(files: &BTreeMap<Lsn, Vec<u8>>, after_lsn: Lsn) -> Option<Records> {
    let storage = MemStorage::new();
    for (lsn, bytes) in files {
        storage.set_file(&segment_name(*lsn), bytes.clone());
    }
    let reference = walk(files, after_lsn, RECORD_BYTES_MAX);
    let expected: Records = reference.records.iter().filter(|(lsn, _)| *lsn > after_lsn).cloned().collect();
    let config =
        WalConfig { durability: Durability::Fsync, record_bytes_max: RECORD_BYTES_MAX, ..WalConfig::default() };
    let open = |replayed: &mut Records| {
        let mut replay = |lsn: Lsn, payload: &[u8]| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            // The log layer carries any payload; whether it decodes is the engine's business,
            // but decoding it must not panic either.
            let _ = decode_record(payload);
            replayed.push((lsn, payload.to_vec()));
            Ok(())
        };
        Wal::open(Arc::new(storage.clone()), config.clone(), after_lsn, &mut replay)
    };
    let mut replayed = Vec::new();
    match open(&mut replayed) {
        Ok((wal, report)) => {
            assert!(!reference.stopped_early, "recovery accepted damage before the last segment: {report:?}");
            assert_eq!(replayed, expected, "recovery replayed other records than the log holds: {report:?}");
            if reference.clean {
                assert_eq!(report.torn_tail, None, "a clean log has no torn tail");
            }
            // Appends go to a new segment named after the next LSN (replacing a removed one).
            let appending = report.last_lsn + 1;
            for (lsn, bytes) in files.iter().filter(|(lsn, _)| **lsn != appending) {
                if let Some(kept) = storage.file(&segment_name(*lsn)) {
                    assert!(bytes.starts_with(&kept), "recovery may only cut a segment, yet {lsn} changed");
                }
            }
            wal.close().expect("a recovered log closes");
            // Recovery converges: a second open finds what the first kept, and nothing to cut.
            let mut again = Vec::new();
            let (wal, second) = open(&mut again).unwrap_or_else(|e| panic!("reopening after recovery: {e}"));
            assert_eq!(again, replayed, "the second recovery replayed other records");
            assert_eq!(second.torn_tail, None, "the second recovery found a torn tail");
            wal.close().expect("a recovered log closes");
            Some(replayed)
        }
        Err(error) => {
            assert!(!reference.clean, "a clean log was refused: {error}");
            assert!(matches!(error, WalError::Corrupt { .. }), "only corruption refuses a log: {error}");
            None
        }
    }
}

/// Whole segments built from a script, through recovery.
///
/// Script: a mode byte, then 0: the rest is one segment file; 1 and up: up to three segments,
/// each a header (valid, or damaged), then frames (valid, out of sequence, damaged, garbage),
/// perhaps cut short; where the snapshot ends is chosen too.
#[test]
fn wal_segment() {
    let records: Vec<&Vec<u8>> = session().records.values().map(|(payload, _)| payload).collect();
    budgeted(check!()).for_each(|input: &[u8]| {
        let mut c = Cursor::new(input);
        let mut files = BTreeMap::new();
        let after_lsn = if c.below(2) == 0 {
            files.insert(1, c.rest().to_vec());
            0
        } else {
            let any = u64::from(c.u8());
            let after_lsn = *c.pick(&[0, 0, 1, 3, 10, any]);
            let any = u64::from(c.u8());
            let mut next: Lsn = *c.pick(&[1, after_lsn + 1, any]);
            for _ in 0..=c.below(3) {
                let first = match c.below(8) {
                    6 => next + 1,
                    7 => next.saturating_sub(1),
                    _ => next,
                };
                let name_lsn = if c.one_in(16) { first + 1 } else { first };
                let mut bytes = segment_header(first);
                if c.one_in(8) {
                    damage(&mut bytes, &mut c);
                }
                let mut lsn = first;
                for _ in 0..c.below(6) {
                    match c.below(8) {
                        5 => {
                            let wrong = lsn + 1 + u64::from(c.u8() % 2);
                            push_frame(&mut bytes, wrong, &c.bytes_up_to(40));
                        }
                        6 => bytes.extend_from_slice(&c.bytes_up_to(48)),
                        7 => {
                            let start = bytes.len();
                            push_frame(&mut bytes, lsn, &c.bytes_up_to(40));
                            let at = start + c.below(bytes.len() - start);
                            bytes[at] ^= 1 << c.below(8);
                            lsn += 1;
                        }
                        n => {
                            let payload = if n < 3 { c.pick(&records).to_vec() } else { c.bytes_up_to(64) };
                            push_frame(&mut bytes, lsn, &payload);
                            lsn += 1;
                        }
                    }
                }
                if c.one_in(4) {
                    let cut = SEGMENT_HEADER_LEN.min(bytes.len()) + c.below(bytes.len() + 1);
                    bytes.truncate(cut);
                }
                files.insert(name_lsn, bytes);
                next = lsn;
            }
            after_lsn
        };
        recover(&files, after_lsn);
    });
}

/// The session's real log, damaged: recovery refuses it or replays a prefix of the records
/// the engine wrote, each exactly as written; a log only cut at its end always opens.
///
/// Script: where the snapshot ends (a mode byte), then one to four edits, each naming a
/// segment and what to do to it (see `aisle_fuzz::damage`), or dropping a segment.
#[test]
fn wal_damage() {
    let session = session();
    let last_lsn = session.records.keys().next_back().copied().unwrap_or(0);
    budgeted(check!()).for_each(|input: &[u8]| {
        let mut c = Cursor::new(input);
        let after_lsn = match c.below(4) {
            3 => c.u64() % (last_lsn + 2),
            _ => 0,
        };
        let mut files = session.segments.clone();
        let newest = files.keys().next_back().copied();
        let mut cut_only_at_end = true;
        for _ in 0..=c.below(4) {
            if files.is_empty() {
                break;
            }
            let lsn = *c.pick(&files.keys().copied().collect::<Vec<_>>());
            if c.one_in(16) {
                files.remove(&lsn);
                cut_only_at_end = false;
                continue;
            }
            let Some(bytes) = files.get_mut(&lsn) else { continue };
            for edit in damage(bytes, &mut c) {
                cut_only_at_end &= Some(lsn) == newest && matches!(edit, Edit::Cut(_));
            }
        }
        let outcome = recover(&files, after_lsn);
        if cut_only_at_end {
            assert!(outcome.is_some(), "a log cut at its end must open (a torn tail)");
        }
        for (lsn, payload) in outcome.unwrap_or_default() {
            let written = session.records.get(&lsn).map(|(bytes, _)| bytes);
            assert_eq!(Some(&payload), written, "record {lsn} was replayed other than written");
        }
    });
}
