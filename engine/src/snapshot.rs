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

use crate::catalog::{self, CatalogSection};
use crate::flash::snapshot::{self as flash_snapshot, FlashSection, SaleImage};
use crate::model::LocationDef;
use crate::stock::snapshot::{self as stock_snapshot, ReservationImage, SkuImage, StockSection};
use crate::time::Timestamp;
use crate::transfer::snapshot::{self as transfer_snapshot, ReplenishmentImage, TransferImage, TransferSection};
use crate::view::Outcome;
use crate::wal::{LogStorage, Lsn};

pub const MAGIC: [u8; 8] = *b"AISLESNP";
/// 2: flash sales, and the sale of each claim. 3: transfers and replenishment requests.
/// 4: one section per domain, each archived on its own with its own version.
pub const VERSION: u32 = 4;
/// The oldest format this build still reads ([`ImageV2`], upgraded on load).
pub const VERSION_READABLE_MIN: u32 = 2;
pub const HEADER_LEN: usize = 48;
/// Bytes of a snapshot written between two syncs of its file.
pub const SNAPSHOT_WRITE_CHUNK_BYTES: usize = 1 << 20;
const _: () = assert!(HEADER_LEN % 16 == 0);
const _: () = assert!(8 + 4 + 4 + 8 + 8 + 4 <= HEADER_LEN);

/// The whole engine state as one value: a header and each domain's section. In a file (format
/// 4) every section is archived on its own, under its name and its own version, so a domain's
/// section can change without touching the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Every log record up to and including this one is reflected in the image.
    pub lsn: Lsn,
    pub taken_at: Timestamp,
    pub catalog: CatalogSection,
    pub stock: StockSection,
    pub flash: FlashSection,
    pub transfers: TransferSection,
    /// Idempotency results (the dispatcher's, across domains).
    pub idempotency: IdempotencySection,
}

/// The section's name in a snapshot file.
pub const IDEMPOTENCY_SECTION: &str = "idempotency";
/// 1: results by scoped key (as in snapshot format 3).
pub const IDEMPOTENCY_SECTION_VERSION: u32 = 1;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IdempotencySection {
    pub results: Vec<IdempotencyImage>,
}

/// One section of a format-4 file: its domain's name and version and its own archive.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SectionBytes {
    pub name: String,
    pub version: u32,
    pub bytes: Vec<u8>,
}

/// The body of a format-4 file.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SectionedBody {
    pub lsn: Lsn,
    pub taken_at: Timestamp,
    pub sections: Vec<SectionBytes>,
}

/// A version 3 image: the whole state in one archive, before sections.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ImageV3 {
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

impl From<ImageV2> for ImageV3 {
    fn from(old: ImageV2) -> Self {
        ImageV3 {
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

impl From<ImageV3> for Image {
    fn from(old: ImageV3) -> Self {
        Image {
            lsn: old.lsn,
            taken_at: old.taken_at,
            catalog: CatalogSection { locations: old.locations },
            stock: StockSection {
                next_reservation_id: old.next_reservation_id,
                skus: old.skus,
                reservations: old.reservations,
            },
            flash: FlashSection { sales: old.sales },
            transfers: TransferSection {
                next_transfer_id: old.next_transfer_id,
                next_replenishment_id: old.next_replenishment_id,
                transfers: old.transfers,
                replenishments: old.replenishments,
            },
            idempotency: IdempotencySection { results: old.idempotency },
        }
    }
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
    /// A section this build does not know, or of a newer version.
    #[error("snapshot {file}: section {name} version {version} is not supported by this build")]
    Section { file: String, name: String, version: u32 },
    #[error("snapshot {file}: {op}: {source}")]
    Io { file: String, op: &'static str, source: std::io::Error },
}

pub fn file_name(lsn: Lsn) -> String {
    format!("snap-{lsn:020}.snap")
}

fn lsn_of(name: &str) -> Option<Lsn> {
    name.strip_prefix("snap-")?.strip_suffix(".snap")?.parse().ok()
}

fn archive<T>(value: &T, lsn: Lsn) -> Result<Vec<u8>, SnapshotError>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rkyv::rancor::Error,
        >,
    >,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(value)
        .map(|bytes| bytes.to_vec())
        .map_err(|e| SnapshotError::Invalid { file: file_name(lsn), reason: format!("encoding: {e}") })
}

/// Encodes an image into the file format above (format 4: sections).
pub fn encode(image: &Image) -> Result<Vec<u8>, SnapshotError> {
    let lsn = image.lsn;
    let section = |name: &str, version: u32, bytes: Vec<u8>| SectionBytes { name: name.to_owned(), version, bytes };
    let body = SectionedBody {
        lsn,
        taken_at: image.taken_at,
        sections: vec![
            section(catalog::SECTION, catalog::SECTION_VERSION, archive(&image.catalog, lsn)?),
            section(stock_snapshot::SECTION, stock_snapshot::SECTION_VERSION, archive(&image.stock, lsn)?),
            section(flash_snapshot::SECTION, flash_snapshot::SECTION_VERSION, archive(&image.flash, lsn)?),
            section(transfer_snapshot::SECTION, transfer_snapshot::SECTION_VERSION, archive(&image.transfers, lsn)?),
            section(IDEMPOTENCY_SECTION, IDEMPOTENCY_SECTION_VERSION, archive(&image.idempotency, lsn)?),
        ],
    };
    let body = archive(&body, lsn)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a format-4 body: every section this build knows, each at a version it reads. A
/// missing section is empty; an unknown one, or one of a newer version, refuses the file
/// (never skipped: the log it covers may be gone).
fn decode_sections(file: &str, body: &[u8]) -> Result<Image, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid { file: file.to_owned(), reason };
    let sectioned =
        rkyv::from_bytes::<SectionedBody, rkyv::rancor::Error>(body).map_err(|e| invalid(format!("decoding: {e}")))?;
    let mut image = Image {
        lsn: sectioned.lsn,
        taken_at: sectioned.taken_at,
        catalog: CatalogSection::default(),
        stock: StockSection::default(),
        flash: FlashSection::default(),
        transfers: TransferSection::default(),
        idempotency: IdempotencySection::default(),
    };
    for section in &sectioned.sections {
        let supported = match section.name.as_str() {
            catalog::SECTION => catalog::SECTION_VERSION,
            stock_snapshot::SECTION => stock_snapshot::SECTION_VERSION,
            flash_snapshot::SECTION => flash_snapshot::SECTION_VERSION,
            transfer_snapshot::SECTION => transfer_snapshot::SECTION_VERSION,
            IDEMPOTENCY_SECTION => IDEMPOTENCY_SECTION_VERSION,
            _ => 0,
        };
        if section.version == 0 || section.version > supported {
            return Err(SnapshotError::Section {
                file: file.to_owned(),
                name: section.name.clone(),
                version: section.version,
            });
        }
        // Each section was archived on its own: give it the alignment rkyv checks.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(section.bytes.len());
        aligned.extend_from_slice(&section.bytes);
        let failed = |e: rkyv::rancor::Error| invalid(format!("decoding section {}: {e}", section.name));
        match section.name.as_str() {
            catalog::SECTION => image.catalog = rkyv::from_bytes(&aligned).map_err(failed)?,
            stock_snapshot::SECTION => image.stock = rkyv::from_bytes(&aligned).map_err(failed)?,
            flash_snapshot::SECTION => image.flash = rkyv::from_bytes(&aligned).map_err(failed)?,
            transfer_snapshot::SECTION => image.transfers = rkyv::from_bytes(&aligned).map_err(failed)?,
            _ => image.idempotency = rkyv::from_bytes(&aligned).map_err(failed)?,
        }
    }
    Ok(image)
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
    let image = match version {
        VERSION => decode_sections(file, body)?,
        3 => rkyv::from_bytes::<ImageV3, rkyv::rancor::Error>(body)
            .map(Image::from)
            .map_err(|e| invalid(format!("decoding: {e}")))?,
        _ => rkyv::from_bytes::<ImageV2, rkyv::rancor::Error>(body)
            .map(|old| Image::from(ImageV3::from(old)))
            .map_err(|e| invalid(format!("decoding: {e}")))?,
    };
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
            Err(e @ (SnapshotError::Version { .. } | SnapshotError::Section { .. })) => return Err(e),
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

    /// A file of format `version` around an already archived body.
    fn file_bytes(version: u32, lsn: Lsn, body: &[u8]) -> rkyv::util::AlignedVec<16> {
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        bytes.extend_from_slice(&lsn.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        bytes.resize(HEADER_LEN, 0);
        bytes.extend_from_slice(body);
        bytes
    }

    fn v2() -> ImageV2 {
        ImageV2 {
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
        }
    }

    /// A file written by an older version (before transfers) loads, with no transfers.
    #[test]
    fn a_version_2_snapshot_is_upgraded() {
        let old = v2();
        let body = rkyv::to_bytes::<rkyv::rancor::Error>(&old).expect("encodes");
        let image = decode("snap-old", &file_bytes(2, old.lsn, &body)).expect("a version 2 snapshot is read");
        assert_eq!(image, Image::from(ImageV3::from(old)));
        assert!(image.transfers.transfers.is_empty() && image.transfers.next_transfer_id == 1);
    }

    /// A file of format 3 (one archive, before sections) loads into the same sections.
    #[test]
    fn a_version_3_snapshot_is_read_into_sections() {
        let mut old = ImageV3::from(v2());
        old.next_transfer_id = 9;
        old.locations.push(crate::model::LocationDef {
            code: "W".into(),
            name: "W".into(),
            kind: crate::model::LocationKind::Warehouse,
            lat: 1.0,
            lon: 2.0,
            channels: vec!["web".into()],
            pickup: false,
            ships: true,
            priority: 0,
        });
        let body = rkyv::to_bytes::<rkyv::rancor::Error>(&old).expect("encodes");
        let image = decode("snap-v3", &file_bytes(3, old.lsn, &body)).expect("a version 3 snapshot is read");
        assert_eq!(image.catalog.locations, old.locations);
        assert_eq!(image.transfers.next_transfer_id, 9);
        assert_eq!(image.stock.next_reservation_id, 7);
        assert_eq!(image.idempotency.results, old.idempotency);
        // And written again as sections, it reads back the same.
        let mut again = rkyv::util::AlignedVec::<16>::new();
        again.extend_from_slice(&encode(&image).expect("encodes"));
        assert_eq!(decode("snap-v4", &again).expect("reads"), image);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let image = Image::from(ImageV3::from(v2()));
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(&encode(&image).expect("encodes"));
        bytes[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert!(matches!(decode("snap-new", &bytes), Err(SnapshotError::Version { .. })));
    }

    /// A section from a newer build (unknown, or a higher version) refuses the file.
    #[test]
    fn a_newer_section_is_refused() {
        for (name, version) in [("stock", stock_snapshot::SECTION_VERSION + 1), ("loyalty", 1)] {
            let body = SectionedBody {
                lsn: 3,
                taken_at: 0,
                sections: vec![SectionBytes { name: name.into(), version, bytes: Vec::new() }],
            };
            let body = rkyv::to_bytes::<rkyv::rancor::Error>(&body).expect("encodes");
            let result = decode("snap-next", &file_bytes(VERSION, 3, &body));
            assert!(matches!(result, Err(SnapshotError::Section { .. })), "{name} v{version}: {result:?}");
        }
    }
}
