//! The on-disk format of a log segment (version 1): the segment header, the record frame,
//! and segment file names. Pure functions over bytes; no I/O.
//!
//! ```text
//! segment header (32 bytes)
//!   magic "AISLEWAL" | version u32 | header length u32 | first_lsn u64 | crc32c u32 | reserved u32
//! frame (16-byte header, then the payload, then zero padding to a multiple of 16)
//!   len u32 | crc u32 = crc32c(lsn LE ‖ len LE ‖ payload) | lsn u64 | payload | padding
//! ```
//! All integers are little-endian. Frames start at multiples of 16 from the start of the file,
//! so every payload starts at a 16-byte-aligned file offset.

use std::mem::size_of;

use super::Lsn;

pub(crate) const MAGIC: [u8; 8] = *b"AISLEWAL";
pub(crate) const VERSION: u32 = 1;

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + MAGIC.len();
const HEADER_LEN_AT: usize = VERSION_AT + size_of::<u32>();
const FIRST_LSN_AT: usize = HEADER_LEN_AT + size_of::<u32>();
const HEADER_CRC_AT: usize = FIRST_LSN_AT + size_of::<Lsn>();
const RESERVED_AT: usize = HEADER_CRC_AT + size_of::<u32>();
/// Length of the segment header; frames start right after it.
pub(crate) const SEGMENT_HEADER_LEN: usize = RESERVED_AT + size_of::<u32>();

const FRAME_LEN_AT: usize = 0;
const FRAME_CRC_AT: usize = FRAME_LEN_AT + size_of::<u32>();
const FRAME_LSN_AT: usize = FRAME_CRC_AT + size_of::<u32>();
/// Length of a frame header; the payload follows it.
pub(crate) const FRAME_HEADER_LEN: usize = FRAME_LSN_AT + size_of::<Lsn>();
/// Frames (and therefore payloads) start at multiples of this from the start of the file.
pub(crate) const FRAME_ALIGN: usize = 16;

const _: () = assert!(SEGMENT_HEADER_LEN == 32);
const _: () = assert!(HEADER_CRC_AT == 24, "the header crc covers exactly the 24 bytes before it");
const _: () = assert!(FRAME_HEADER_LEN == 16);
const _: () = assert!(FRAME_ALIGN.is_power_of_two());
// The first frame must be aligned, and an aligned frame start plus the header must leave the
// payload aligned: that is what lets the engine read payloads in place.
const _: () = assert!(SEGMENT_HEADER_LEN % FRAME_ALIGN == 0);
const _: () = assert!(FRAME_HEADER_LEN % FRAME_ALIGN == 0);

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; size_of::<u32>()];
    raw.copy_from_slice(&bytes[at..at + size_of::<u32>()]);
    u32::from_le_bytes(raw)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; size_of::<u64>()];
    raw.copy_from_slice(&bytes[at..at + size_of::<u64>()]);
    u64::from_le_bytes(raw)
}

pub(crate) fn align_up(n: usize) -> usize {
    (n + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// The file name of the segment whose first record is `first_lsn`.
pub(crate) fn segment_name(first_lsn: Lsn) -> String {
    format!("wal-{first_lsn:020}.seg")
}

/// The first LSN encoded in a segment file name, or None if the name is not a segment's.
pub(crate) fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn encode_segment_header(first_lsn: Lsn) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
    header[VERSION_AT..HEADER_LEN_AT].copy_from_slice(&VERSION.to_le_bytes());
    header[HEADER_LEN_AT..FIRST_LSN_AT].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    header[FIRST_LSN_AT..HEADER_CRC_AT].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&header[..HEADER_CRC_AT]);
    header[HEADER_CRC_AT..RESERVED_AT].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Verifies a segment header and returns its first LSN; the error says what is wrong.
pub(crate) fn decode_segment_header(bytes: &[u8]) -> Result<Lsn, String> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(format!("segment header is {} bytes, expected {SEGMENT_HEADER_LEN}", bytes.len()));
    }
    if bytes[MAGIC_AT..VERSION_AT] != MAGIC {
        return Err("bad magic".into());
    }
    let crc = u32_at(bytes, HEADER_CRC_AT);
    if crc != crc32c::crc32c(&bytes[..HEADER_CRC_AT]) {
        return Err("segment header checksum mismatch".into());
    }
    let version = u32_at(bytes, VERSION_AT);
    if version != VERSION {
        return Err(format!("unsupported format version {version}"));
    }
    let header_len = u32_at(bytes, HEADER_LEN_AT);
    if header_len as usize != SEGMENT_HEADER_LEN {
        return Err(format!("unexpected header length {header_len}"));
    }
    Ok(u64_at(bytes, FIRST_LSN_AT))
}

/// The frame checksum: crc32c over (lsn LE ‖ len LE ‖ payload). Computed in one pass with
/// the hardware instruction; appenders do it under the pending lock, where the LSN is known.
fn frame_crc(lsn: Lsn, len: u32, payload: &[u8]) -> u32 {
    let mut prefix = [0u8; size_of::<Lsn>() + size_of::<u32>()];
    prefix[..size_of::<Lsn>()].copy_from_slice(&lsn.to_le_bytes());
    prefix[size_of::<Lsn>()..].copy_from_slice(&len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&prefix), payload)
}

/// Bytes a frame with a payload of `payload_len` occupies, padding included.
pub(crate) fn frame_size(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + align_up(payload_len)
}

/// Appends a whole frame (header, payload, padding) to `buf`, which must end at a frame
/// boundary. `payload.len()` must fit in a u32 (the caller checks `record_bytes_max`).
pub(crate) fn push_frame(buf: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    debug_assert_eq!(buf.len() % FRAME_ALIGN, 0);
    let len = u32::try_from(payload.len()).expect("record length was checked against record_bytes_max");
    let crc = frame_crc(lsn, len, payload);
    buf.reserve(frame_size(payload.len()));
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align_up(buf.len()), 0);
}

/// The LSN field of the frame header at `at`, unverified; None if the header is cut short.
pub(crate) fn peek_lsn(bytes: &[u8], at: usize) -> Option<Lsn> {
    (at + FRAME_HEADER_LEN <= bytes.len()).then(|| u64_at(bytes, at + FRAME_LSN_AT))
}

/// A frame that verified: its LSN, where its payload is, and where the next frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub lsn: Lsn,
    pub payload_at: usize,
    pub payload_len: usize,
    pub next: usize,
}

/// Parses and verifies the frame at `at` (a multiple of [`FRAME_ALIGN`]). The error says why
/// the bytes there are not a valid frame; the caller decides whether that is a torn tail.
pub(crate) fn parse_frame(bytes: &[u8], at: usize, record_bytes_max: u32) -> Result<Frame, String> {
    debug_assert_eq!(at % FRAME_ALIGN, 0);
    let remaining = bytes.len().saturating_sub(at);
    if remaining < FRAME_HEADER_LEN {
        return Err(format!("short frame header ({remaining} bytes)"));
    }
    let len = u32_at(bytes, at + FRAME_LEN_AT);
    if len > record_bytes_max {
        return Err(format!("record length {len} exceeds the maximum {record_bytes_max}"));
    }
    let payload_len = len as usize;
    let size = frame_size(payload_len);
    if size > remaining {
        return Err(format!("frame of {size} bytes runs past the end of the file"));
    }
    let lsn = u64_at(bytes, at + FRAME_LSN_AT);
    let payload_at = at + FRAME_HEADER_LEN;
    let payload = &bytes[payload_at..payload_at + payload_len];
    let crc = u32_at(bytes, at + FRAME_CRC_AT);
    if crc != frame_crc(lsn, len, payload) {
        return Err("record checksum mismatch".into());
    }
    Ok(Frame { lsn, payload_at, payload_len, next: at + size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = encode_segment_header(42);
        assert_eq!(decode_segment_header(&header), Ok(42));
        assert!(decode_segment_header(&header[..31]).is_err());
        for byte in 0..HEADER_CRC_AT + 4 {
            let mut damaged = header;
            damaged[byte] ^= 0x10;
            assert!(decode_segment_header(&damaged).is_err(), "byte {byte}");
        }
    }

    #[test]
    fn frame_crc_covers_lsn_len_and_payload() {
        for payload in [&b""[..], b"x", b"0123456789abcdef", &[7u8; 100]] {
            let mut buf = Vec::new();
            push_frame(&mut buf, 9, payload);
            assert_eq!(buf.len(), frame_size(payload.len()));
            assert_eq!(buf.len() % FRAME_ALIGN, 0);
            let mut direct = Vec::new();
            direct.extend_from_slice(&9u64.to_le_bytes());
            direct.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            direct.extend_from_slice(payload);
            assert_eq!(u32_at(&buf, FRAME_CRC_AT), crc32c::crc32c(&direct));
            let frame = parse_frame(&buf, 0, 1 << 20).expect("a frame just written parses");
            assert_eq!(frame.lsn, 9);
            assert_eq!(&buf[frame.payload_at..frame.payload_at + frame.payload_len], payload);
            assert!(parse_frame(&buf, 0, payload.len() as u32).is_ok());
            if !payload.is_empty() {
                assert!(parse_frame(&buf, 0, payload.len() as u32 - 1).is_err());
            }
        }
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_name(1), "wal-00000000000000000001.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("wal-1.seg"), None);
        assert_eq!(parse_segment_name("wal-0000000000000000000x.seg"), None);
        assert_eq!(parse_segment_name("snapshot-00000000000000000001.snap"), None);
    }
}
