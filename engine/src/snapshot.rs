//! Snapshots: the whole engine state as one rkyv image in a checksummed file.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! 0      8       12       16        24          32        36       48
//! | magic | version | header | lsn     | body len  | body crc | zeros  | body (rkyv Image) ...
//! ```
//!
//! The body starts 16-byte aligned so it can be validated and read in place. A snapshot is
//! written to a temporary name, synced, renamed to `snap-{lsn:020}.snap` and the directory
//! synced; a reader trusts only files whose header and body checksum verify, so a snapshot torn
//! by a crash is skipped and the previous one is used with a longer WAL replay.

use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::cell::{Cell, Lot};
use crate::flash::FlashSaleDef;
use crate::model::{LocationDef, SkuDef};
use crate::time::Timestamp;
use crate::transfer::{ReplenishmentStatus, TransferLine, TransferStatus};
use crate::view::{Outcome, ReservationStatus};
use crate::wal::{LogStorage, Lsn};

pub const MAGIC: [u8; 8] = *b"AISLESNP";
/// 2: flash sales, and the sale of each claim. 3: transfers and replenishment requests.
pub const VERSION: u32 = 3;
/// The oldest format this build still reads ([`ImageV2`], upgraded on load).
pub const VERSION_READABLE_MIN: u32 = 2;
pub const HEADER_LEN: usize = 48;
/// Bytes of a snapshot written between two syncs of its file.
pub const SNAPSHOT_WRITE_CHUNK_BYTES: usize = 1 << 20;
const _: () = assert!(HEADER_LEN % 16 == 0);
const _: () = assert!(8 + 4 + 4 + 8 + 8 + 4 <= HEADER_LEN);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Image {
    /// Every log record up to and including this one is reflected in the image.
    pub lsn: Lsn,
    pub taken_at: Timestamp,
    pub next_reservation_id: u64,
    pub locations: Vec<LocationDef>,
    pub skus: Vec<SkuImage>,
    pub reservations: Vec<ReservationImage>,
    pub idempotency: Vec<IdempotencyImage>,
    pub sales: Vec<SaleImage>,
    pub next_transfer_id: u64,
    pub next_replenishment_id: u64,
    pub transfers: Vec<TransferImage>,
    pub replenishments: Vec<ReplenishmentImage>,
}

/// A version 2 image: everything but transfers. Its parts are unchanged since, so it is read
/// as is and upgraded with no transfers.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ImageV2 {
    pub lsn: Lsn,
    pub taken_at: Timestamp,
    pub next_reservation_id: u64,
    pub locations: Vec<LocationDef>,
    pub skus: Vec<SkuImage>,
    pub reservations: Vec<ReservationImage>,
    pub idempotency: Vec<IdempotencyImage>,
    pub sales: Vec<SaleImage>,
}

impl From<ImageV2> for Image {
    fn from(old: ImageV2) -> Self {
        Image {
            lsn: old.lsn,
            taken_at: old.taken_at,
            next_reservation_id: old.next_reservation_id,
            locations: old.locations,
            skus: old.skus,
            reservations: old.reservations,
            idempotency: old.idempotency,
            sales: old.sales,
            next_transfer_id: 1,
            next_replenishment_id: 1,
            transfers: Vec::new(),
            replenishments: Vec::new(),
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TransferLineImage {
    pub sku: String,
    pub qty: u32,
    pub shipped: u32,
    pub received: u32,
    pub unit_cost: Option<u64>,
    pub lots: Vec<Lot>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TransferImage {
    pub id: u64,
    /// Location indices.
    pub from: u32,
    pub to: u32,
    pub lines: Vec<TransferLineImage>,
    pub status: TransferStatus,
    pub note: Option<String>,
    pub created_at: Timestamp,
    pub shipped_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub replenishment: Option<u64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReplenishmentImage {
    pub id: u64,
    /// Location indices.
    pub location: u32,
    pub from: Option<u32>,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
    pub status: ReplenishmentStatus,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub transfer: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SaleImage {
    pub def: FlashSaleDef,
    /// (location index, units remaining in the pool), in claim order.
    pub pool: Vec<(u32, u32)>,
    pub held: u32,
    pub sold: u32,
    pub ended: bool,
    /// Held plus sold units per customer.
    pub customers: Vec<(String, u32)>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SkuImage {
    pub def: SkuDef,
    /// (location index, cell), sorted by location index.
    pub cells: Vec<(u32, Cell)>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HeldLineImage {
    pub sku: String,
    pub location: u32,
    pub qty: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReservationImage {
    pub id: u64,
    pub channel: String,
    pub customer: Option<String>,
    pub lines: Vec<HeldLineImage>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub status: ReservationStatus,
    pub order_ref: Option<String>,
    pub finished_at: Option<Timestamp>,
    /// The flash sale it is a claim on.
    pub sale: Option<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyImage {
    pub key: String,
    pub fingerprint: u64,
    pub at: Timestamp,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {file}: {reason}")]
    Invalid { file: String, reason: String },
    /// Written by another version of aisle: never skipped, since the log it covers is gone.
    #[error(
        "snapshot {file}: format version {found} is not supported (this build reads {VERSION_READABLE_MIN} to {VERSION})"
    )]
    Version { file: String, found: u32 },
    #[error("snapshot {file}: {op}: {source}")]
    Io { file: String, op: &'static str, source: std::io::Error },
}

pub fn file_name(lsn: Lsn) -> String {
    format!("snap-{lsn:020}.snap")
}

fn lsn_of(name: &str) -> Option<Lsn> {
    name.strip_prefix("snap-")?.strip_suffix(".snap")?.parse().ok()
}

/// Encodes an image into the file format above.
pub fn encode(image: &Image) -> Result<Vec<u8>, SnapshotError> {
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(image)
        .map_err(|e| SnapshotError::Invalid { file: file_name(image.lsn), reason: format!("encoding: {e}") })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&image.lsn.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Verifies and decodes a snapshot file's bytes (which must start 16-byte aligned).
pub fn decode(file: &str, bytes: &[u8]) -> Result<Image, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid { file: file.to_owned(), reason };
    if bytes.len() < HEADER_LEN {
        return Err(invalid(format!("{} bytes is shorter than the header", bytes.len())));
    }
    if bytes[0..8] != MAGIC {
        return Err(invalid("bad magic".into()));
    }
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let version = u32_at(8);
    if !(VERSION_READABLE_MIN..=VERSION).contains(&version) {
        return Err(SnapshotError::Version { file: file.to_owned(), found: version });
    }
    let lsn = u64_at(16);
    let body_len = u64_at(24) as usize;
    let body = bytes
        .get(HEADER_LEN..)
        .filter(|body| body.len() == body_len)
        .ok_or_else(|| invalid(format!("body is {} bytes, header says {body_len}", bytes.len() - HEADER_LEN)))?;
    if crc32c::crc32c(body) != u32_at(32) {
        return Err(invalid("body checksum mismatch".into()));
    }
    let image = if version == VERSION {
        rkyv::from_bytes::<Image, rkyv::rancor::Error>(body)
    } else {
        rkyv::from_bytes::<ImageV2, rkyv::rancor::Error>(body).map(Image::from)
    }
    .map_err(|e| invalid(format!("decoding: {e}")))?;
    if image.lsn != lsn {
        return Err(invalid("header and body disagree on the lsn".into()));
    }
    Ok(image)
}

/// Writes a snapshot durably: temp file, sync, rename, sync the directory. Returns the file's
/// name and size.
pub fn write(storage: &Arc<dyn LogStorage>, image: &Image) -> Result<(String, usize), SnapshotError> {
    let name = file_name(image.lsn);
    let temp = format!("{name}.tmp");
    let io = |op: &'static str| {
        let file = name.clone();
        move |source| SnapshotError::Io { file, op, source }
    };
    let bytes = encode(image)?;
    let _ = storage.remove(&temp);
    let mut file = storage.create(&temp).map_err(io("create"))?;
    // Written and synced a chunk at a time: a snapshot is hundreds of megabytes, and letting
    // it pile up as dirty pages makes the file system flush it all inside some later WAL
    // fdatasync (ext4 data=ordered), stalling acknowledged writes for hundreds of ms.
    for chunk in bytes.chunks(SNAPSHOT_WRITE_CHUNK_BYTES) {
        file.write_all(chunk).map_err(io("write"))?;
        file.sync_data().map_err(io("sync"))?;
    }
    if bytes.is_empty() {
        file.sync_data().map_err(io("sync"))?;
    }
    drop(file);
    storage.rename(&temp, &name).map_err(io("rename"))?;
    storage.sync_dir().map_err(io("sync dir"))?;
    Ok((name, bytes.len()))
}

/// What loading found: the image used and the snapshots skipped as invalid.
#[derive(Debug, Default)]
pub struct Loaded {
    pub image: Option<Image>,
    pub file: Option<String>,
    pub skipped: Vec<String>,
}

/// Loads the newest snapshot that verifies.
pub fn load_newest(storage: &Arc<dyn LogStorage>) -> Result<Loaded, SnapshotError> {
    let mut names: Vec<(Lsn, String)> = storage
        .list()
        .map_err(|source| SnapshotError::Io { file: String::new(), op: "list", source })?
        .into_iter()
        .filter_map(|name| lsn_of(&name).map(|lsn| (lsn, name)))
        .collect();
    names.sort_unstable_by_key(|(lsn, _)| std::cmp::Reverse(*lsn));
    let mut loaded = Loaded::default();
    for (_, name) in names {
        let bytes = match storage.read(&name) {
            Ok(bytes) => bytes,
            Err(e) => {
                loaded.skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        match decode(&name, &bytes) {
            Ok(image) => {
                loaded.image = Some(image);
                loaded.file = Some(name);
                return Ok(loaded);
            }
            Err(e @ SnapshotError::Version { .. }) => return Err(e),
            Err(e) => loaded.skipped.push(e.to_string()),
        }
    }
    Ok(loaded)
}

/// Removes snapshots older than `keep_lsn` and leftover temporary files.
pub fn remove_older(storage: &Arc<dyn LogStorage>, keep_lsn: Lsn) -> usize {
    let Ok(names) = storage.list() else { return 0 };
    let mut removed = 0;
    for name in names {
        let stale = name.ends_with(".tmp") || lsn_of(&name).is_some_and(|lsn| lsn < keep_lsn);
        if stale && storage.remove(&name).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        let _ = storage.sync_dir();
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written by the previous version (before transfers) loads, with no transfers.
    #[test]
    fn a_version_2_snapshot_is_upgraded() {
        let old = ImageV2 {
            lsn: 42,
            taken_at: 1_700_000_000_000,
            next_reservation_id: 7,
            locations: Vec::new(),
            skus: Vec::new(),
            reservations: Vec::new(),
            idempotency: vec![IdempotencyImage {
                key: "k".into(),
                fingerprint: 1,
                at: 5,
                outcome: Outcome::Put { created: true },
            }],
            sales: Vec::new(),
        };
        let body = rkyv::to_bytes::<rkyv::rancor::Error>(&old).expect("encodes");
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        bytes.extend_from_slice(&old.lsn.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        bytes.resize(HEADER_LEN, 0);
        bytes.extend_from_slice(&body);
        let image = decode("snap-old", &bytes).expect("a version 2 snapshot is read");
        assert_eq!(image, Image::from(old));
        assert!(image.transfers.is_empty() && image.next_transfer_id == 1);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let image = Image::from(ImageV2 {
            lsn: 1,
            taken_at: 0,
            next_reservation_id: 1,
            locations: Vec::new(),
            skus: Vec::new(),
            reservations: Vec::new(),
            idempotency: Vec::new(),
            sales: Vec::new(),
        });
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(&encode(&image).expect("encodes"));
        bytes[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert!(matches!(decode("snap-new", &bytes), Err(SnapshotError::Version { .. })));
    }
}
