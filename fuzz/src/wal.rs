//! The log segment format written out again from `docs/wal-format.md`, independently of the
//! engine's `wal::format`: the targets build segments with it (valid frames need a checksum)
//! and use its walk as the reference the engine's recovery is compared with.

use std::collections::BTreeMap;
use std::ops::Range;

use aisle_engine::wal::Lsn;

pub const MAGIC: [u8; 8] = *b"AISLEWAL";
pub const VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 32;
pub const FRAME_HEADER_LEN: usize = 16;
pub const FRAME_ALIGN: usize = 16;

pub fn segment_name(first_lsn: Lsn) -> String {
    format!("wal-{first_lsn:020}.seg")
}

pub fn segment_header(first_lsn: Lsn) -> Vec<u8> {
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    header.extend_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header
}

fn frame_crc(lsn: Lsn, len: u32, payload: &[u8]) -> u32 {
    let mut prefix = [0u8; 12];
    prefix[..8].copy_from_slice(&lsn.to_le_bytes());
    prefix[8..].copy_from_slice(&len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&prefix), payload)
}

/// Appends one frame (header, payload, zero padding) to `buf`, which ends at a frame boundary.
pub fn push_frame(buf: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payloads built by the targets are small");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&frame_crc(lsn, len, payload).to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(FRAME_ALIGN), 0);
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The first LSN of a segment whose header verifies.
pub fn header_first_lsn(bytes: &[u8]) -> Option<Lsn> {
    let header = bytes.get(..SEGMENT_HEADER_LEN)?;
    let good = header[..8] == MAGIC
        && u32_at(header, 8)? == VERSION
        && u32_at(header, 12)? as usize == SEGMENT_HEADER_LEN
        && u32_at(header, 24)? == crc32c::crc32c(&header[..24]);
    good.then(|| u64_at(header, 16)).flatten()
}

/// The frame at `at` if it verifies: its LSN and where its payload lies.
pub fn frame_at(bytes: &[u8], at: usize, record_bytes_max: u32) -> Option<(Lsn, Range<usize>)> {
    let len = u32_at(bytes, at)?;
    if len > record_bytes_max {
        return None;
    }
    let crc = u32_at(bytes, at + 4)?;
    let lsn = u64_at(bytes, at + 8)?;
    let start = at + FRAME_HEADER_LEN;
    let payload = start..start + len as usize;
    // The padding must be there too: a frame ends at a multiple of the alignment.
    if bytes.len() < payload.end.next_multiple_of(FRAME_ALIGN) || crc != frame_crc(lsn, len, &bytes[payload.clone()]) {
        return None;
    }
    Some((lsn, payload))
}

/// What a log should replay, read the simple way: segments in LSN order, each from its header,
/// frame after frame while they verify and count up by one; the walk stops at the first thing
/// that is not so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Every record walked over, from the first segment on (LSN and payload).
    pub records: Vec<(Lsn, Vec<u8>)>,
    /// Whether the walk went through every byte of every segment and the log starts where the
    /// snapshot ends or before: then recovery has nothing to cut and nothing to refuse.
    pub clean: bool,
    /// The walk stopped before the last segment: recovery must refuse such a log.
    pub stopped_early: bool,
}

/// Walks `files` (segment name's LSN → bytes) as [`Walk`] says.
pub fn walk(files: &BTreeMap<Lsn, Vec<u8>>, after_lsn: Lsn, record_bytes_max: u32) -> Walk {
    let mut out = Walk { clean: true, ..Walk::default() };
    let mut expected: Option<Lsn> = None;
    let count = files.len();
    for (index, (&name_lsn, bytes)) in files.iter().enumerate() {
        let last = index + 1 == count;
        let stop = |out: &mut Walk| {
            out.clean = false;
            out.stopped_early = !last;
        };
        let Some(first) = header_first_lsn(bytes) else {
            stop(&mut out);
            return out;
        };
        let in_sequence = match expected {
            Some(e) => e == first,
            None => first <= after_lsn.saturating_add(1),
        };
        if first != name_lsn || !in_sequence {
            stop(&mut out);
            return out;
        }
        let mut next = first;
        let mut at = SEGMENT_HEADER_LEN;
        while at < bytes.len() {
            match frame_at(bytes, at, record_bytes_max) {
                Some((lsn, payload)) if lsn == next => {
                    out.records.push((lsn, bytes[payload.clone()].to_vec()));
                    next += 1;
                    at = payload.end.next_multiple_of(FRAME_ALIGN);
                }
                _ => {
                    stop(&mut out);
                    return out;
                }
            }
        }
        expected = Some(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_segment_walks_clean_and_a_flip_stops_it() {
        let mut bytes = segment_header(1);
        for (lsn, payload) in [(1, &b"first"[..]), (2, b""), (3, &[9u8; 40])] {
            push_frame(&mut bytes, lsn, payload);
        }
        let files = BTreeMap::from([(1, bytes.clone())]);
        let walked = walk(&files, 0, 1 << 20);
        assert!(walked.clean);
        assert_eq!(walked.records.len(), 3);
        assert_eq!(walked.records[0], (1, b"first".to_vec()));

        bytes[SEGMENT_HEADER_LEN + FRAME_HEADER_LEN] ^= 1;
        let walked = walk(&BTreeMap::from([(1, bytes)]), 0, 1 << 20);
        assert!(!walked.clean && !walked.stopped_early && walked.records.is_empty());
    }

    #[test]
    fn a_gap_between_segments_stops_early() {
        let mut one = segment_header(1);
        push_frame(&mut one, 1, b"a");
        let two = segment_header(3);
        let walked = walk(&BTreeMap::from([(1, one), (3, two)]), 0, 1 << 20);
        assert!(!walked.clean && !walked.stopped_early, "the gap is found in the last segment");
        assert_eq!(walked.records.len(), 1);
    }
}
