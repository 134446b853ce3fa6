//! The recovery scan run by [`Wal::open`](super::Wal::open): verifies every segment, replays
//! the records after the snapshot, cuts a torn tail, and tells the writer where to continue.

use std::io;

use super::format::{
    decode_segment_header, parse_frame, parse_segment_name, FRAME_ALIGN, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::writer::ClosedSegment;
use super::{LogStorage, Lsn, RecoveryReport, ReplayFn, TornTail, WalError};

/// What the scan leaves behind for the writer.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Segments that stay on disk, oldest first.
    pub segments: Vec<ClosedSegment>,
    /// The LSN the next appended record gets.
    pub next_lsn: Lsn,
    pub report: RecoveryReport,
}

fn io_error<'a>(op: &'static str, file: &'a str) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io { op, file: file.to_owned(), source }
}

fn corrupt(file: &str, offset: usize, reason: impl Into<String>) -> WalError {
    WalError::Corrupt { file: file.to_owned(), offset: offset as u64, reason: reason.into() }
}

/// Whether any frame at or after `from` verifies with an LSN of at least `min_lsn`. A damaged
/// frame followed by a good one cannot be a torn write (a crash only loses a suffix), so it is
/// corruption; with nothing good after it, it is the torn tail of an interrupted write.
fn valid_frame_after(bytes: &[u8], from: usize, min_lsn: Lsn, record_bytes_max: u32) -> bool {
    // Every frame takes at least one alignment unit, so a real frame at `at` cannot be further
    // ahead of `min_lsn` than the units before it; this keeps garbage from costing a crc each.
    let lsn_span = (bytes.len() / FRAME_ALIGN) as u64;
    let mut at = from.next_multiple_of(FRAME_ALIGN);
    while at + FRAME_HEADER_LEN <= bytes.len() {
        let plausible =
            super::format::peek_lsn(bytes, at).is_some_and(|lsn| lsn >= min_lsn && lsn - min_lsn <= lsn_span);
        if plausible && parse_frame(bytes, at, record_bytes_max).is_ok_and(|f| f.lsn >= min_lsn) {
            return true;
        }
        at += FRAME_ALIGN;
    }
    false
}

pub(crate) fn recover(
    storage: &dyn LogStorage,
    record_bytes_max: u32,
    after_lsn: Lsn,
    replay: ReplayFn<'_>,
) -> Result<Recovered, WalError> {
    let mut names: Vec<(Lsn, String)> = storage
        .list()
        .map_err(io_error("list", ""))?
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|lsn| (lsn, name)))
        .collect();
    names.sort_unstable();

    let mut report = RecoveryReport { segments: names.len(), ..RecoveryReport::default() };
    // (first LSN, name, records, bytes) of each segment kept.
    let mut kept: Vec<(Lsn, String, u64, u64)> = Vec::with_capacity(names.len());
    // The LSN the next record must carry; None until the first segment header is read.
    let mut expected: Option<Lsn> = None;
    let count = names.len();

    for (index, (name_lsn, name)) in names.into_iter().enumerate() {
        let last = index + 1 == count;
        let bytes = storage.read(&name).map_err(io_error("read", &name))?;
        let first = match decode_segment_header(&bytes) {
            Ok(first) => first,
            Err(reason) => {
                let min_lsn = expected.unwrap_or(1);
                if last && !valid_frame_after(&bytes, SEGMENT_HEADER_LEN, min_lsn, record_bytes_max) {
                    // Crashed while creating the segment: it never held an acknowledged record.
                    storage.remove(&name).map_err(io_error("remove", &name))?;
                    storage.sync_dir().map_err(io_error("sync dir", &name))?;
                    report.torn_tail = Some(TornTail { file: name, offset: 0, bytes_cut: bytes.len() as u64 });
                    break;
                }
                return Err(corrupt(&name, 0, reason));
            }
        };
        if first != name_lsn {
            return Err(corrupt(
                &name,
                0,
                format!("the header says the first lsn is {first}, the file name says {name_lsn}"),
            ));
        }
        match expected {
            Some(e) if e != first => {
                return Err(corrupt(&name, 0, format!("segment starts at lsn {first}, expected {e}")));
            }
            None if first > after_lsn + 1 => {
                return Err(corrupt(
                    &name,
                    0,
                    format!("the log begins at lsn {first} but the snapshot covers only through {after_lsn}"),
                ));
            }
            _ => {}
        }
        let mut next = first;
        let mut at = SEGMENT_HEADER_LEN;
        let mut bytes_kept = bytes.len() as u64;
        while at < bytes.len() {
            let frame = parse_frame(&bytes, at, record_bytes_max).and_then(|frame| {
                if frame.lsn == next {
                    Ok(frame)
                } else {
                    Err(format!("record has lsn {}, expected {next}", frame.lsn))
                }
            });
            match frame {
                Ok(frame) => {
                    if frame.lsn > after_lsn {
                        let payload = &bytes[frame.payload_at..frame.payload_at + frame.payload_len];
                        debug_assert_eq!(payload.as_ptr() as usize % FRAME_ALIGN, 0);
                        replay(frame.lsn, payload).map_err(|source| WalError::Replay { lsn: frame.lsn, source })?;
                        report.records_replayed += 1;
                    }
                    next += 1;
                    at = frame.next;
                }
                Err(reason) => {
                    if last && !valid_frame_after(&bytes, at + FRAME_ALIGN, next, record_bytes_max) {
                        storage.truncate(&name, at as u64).map_err(io_error("truncate", &name))?;
                        bytes_kept = at as u64;
                        report.torn_tail = Some(TornTail {
                            file: name.clone(),
                            offset: at as u64,
                            bytes_cut: (bytes.len() - at) as u64,
                        });
                        break;
                    }
                    return Err(corrupt(&name, at, reason));
                }
            }
        }
        kept.push((first, name, next - first, bytes_kept));
        expected = Some(next);
    }

    let mut next_lsn = expected.unwrap_or(after_lsn + 1);
    let mut removed_any = false;
    if next_lsn <= after_lsn {
        // The snapshot covers the whole log; continuing after it would leave a gap behind these.
        for (_, name, _, _) in kept.drain(..) {
            storage.remove(&name).map_err(io_error("remove", &name))?;
            removed_any = true;
        }
        next_lsn = after_lsn + 1;
    } else if kept.last().is_some_and(|(_, _, records, _)| *records == 0) {
        // The writer starts a segment with this very name; an empty one holds nothing to keep.
        if let Some((_, name, _, _)) = kept.pop() {
            storage.remove(&name).map_err(io_error("remove", &name))?;
            removed_any = true;
        }
    }
    if removed_any {
        storage.sync_dir().map_err(io_error("sync dir", ""))?;
    }
    report.last_lsn = next_lsn - 1;
    let segments =
        kept.into_iter().map(|(first_lsn, name, _, bytes)| ClosedSegment { first_lsn, name, bytes }).collect();
    Ok(Recovered { segments, next_lsn, report })
}
