//! The snapshot container: a checksummed file of named, versioned sections, knowing no domain.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! 0      8       12       16        24          32        36       48
//! | magic | version | header | lsn     | body len  | body crc | zeros  | body (rkyv) ...
//! ```
//!
//! The body starts 16-byte aligned so it can be validated and read in place. From format 4 on
//! the body is a [`SectionedBody`]: each domain's [`Section`] archived on its own under its
//! name and version, so one domain's section can change without touching the others. A
//! snapshot is written to a temporary name, synced, renamed to `snap-{lsn:020}.snap` and the
//! directory synced; a reader trusts only files whose header and body checksum verify, so a
//! snapshot torn by a crash is skipped and the previous one is used with a longer log replay.

use std::ops::RangeInclusive;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::time::Timestamp;
use crate::wal::{LogStorage, Lsn};

pub const MAGIC: [u8; 8] = *b"AISLESNP";
pub const HEADER_LEN: usize = 48;
/// Bytes of a snapshot written between two syncs of its file.
pub const SNAPSHOT_WRITE_CHUNK_BYTES: usize = 1 << 20;
const _: () = assert!(HEADER_LEN % 16 == 0);
const _: () = assert!(8 + 4 + 4 + 8 + 8 + 4 <= HEADER_LEN);

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {file}: {reason}")]
    Invalid { file: String, reason: String },
    /// Written by another version of aisle: never skipped, since the log it covers is gone.
    #[error("snapshot {file}: format version {found} is not supported (this build reads {readable:?})")]
    Version { file: String, found: u32, readable: RangeInclusive<u32> },
    /// A section this build does not know, or of a newer version.
    #[error("snapshot {file}: section {name} version {version} is not supported by this build")]
    Section { file: String, name: String, version: u32 },
    #[error("snapshot {file}: {op}: {source}")]
    Io { file: String, op: &'static str, source: std::io::Error },
}

/// A domain's part of a snapshot. Implemented with [`snapshot_section!`] for a section
/// with one version; a section that changed implements [`Section::read`] by hand and upgrades
/// the older versions it reads.
pub trait Section: Sized + Default {
    /// Its name in the file; never changes.
    const NAME: &'static str;
    /// The version this build writes (and the newest it reads).
    const VERSION: u32;
    fn write(&self) -> Result<Vec<u8>, rkyv::rancor::Error>;
    /// Reads an archive of `version` (at most [`Section::VERSION`]), 16-byte aligned.
    fn read(version: u32, bytes: &[u8]) -> Result<Self, rkyv::rancor::Error>;
}

/// Implements [`Section`] for an rkyv type with one version.
macro_rules! snapshot_section {
    ($section:ty, $name:expr, $version:expr) => {
        impl $crate::kernel::container::Section for $section {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
            fn write(&self) -> Result<Vec<u8>, rkyv::rancor::Error> {
                rkyv::to_bytes::<rkyv::rancor::Error>(self).map(|bytes| bytes.to_vec())
            }
            fn read(_version: u32, bytes: &[u8]) -> Result<Self, rkyv::rancor::Error> {
                rkyv::from_bytes::<Self, rkyv::rancor::Error>(bytes)
            }
        }
    };
}
pub(crate) use snapshot_section;

/// One section of a file: its name and version and its own archive.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SectionBytes {
    pub name: String,
    pub version: u32,
    pub bytes: Vec<u8>,
}

impl SectionBytes {
    pub fn of<S: Section>(section: &S) -> Result<SectionBytes, String> {
        let bytes = section.write().map_err(|e| format!("encoding section {}: {e}", S::NAME))?;
        Ok(SectionBytes { name: S::NAME.to_owned(), version: S::VERSION, bytes })
    }

    /// Reads this section as `S`: `None` when it is another section, an error when it is of a
    /// version `S` does not read.
    pub fn read<S: Section>(&self, file: &str) -> Option<Result<S, SnapshotError>> {
        if self.name != S::NAME {
            return None;
        }
        if self.version == 0 || self.version > S::VERSION {
            return Some(Err(SnapshotError::Section {
                file: file.to_owned(),
                name: self.name.clone(),
                version: self.version,
            }));
        }
        // Each section was archived on its own: give it the alignment rkyv checks.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(self.bytes.len());
        aligned.extend_from_slice(&self.bytes);
        Some(S::read(self.version, &aligned).map_err(|e| SnapshotError::Invalid {
            file: file.to_owned(),
            reason: format!("decoding section {}: {e}", self.name),
        }))
    }
}

/// The body of a sectioned file.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SectionedBody {
    pub lsn: Lsn,
    pub taken_at: Timestamp,
    pub sections: Vec<SectionBytes>,
}

impl SectionedBody {
    /// Header and body, ready to write.
    pub fn encode(&self, version: u32) -> Result<Vec<u8>, SnapshotError> {
        let body = rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .map_err(|e| SnapshotError::Invalid { file: file_name(self.lsn), reason: format!("encoding: {e}") })?;
        Ok(frame(version, self.lsn, &body))
    }

    pub fn decode(file: &str, body: &[u8]) -> Result<SectionedBody, SnapshotError> {
        rkyv::from_bytes::<SectionedBody, rkyv::rancor::Error>(body)
            .map_err(|e| SnapshotError::Invalid { file: file.to_owned(), reason: format!("decoding: {e}") })
    }
}

/// A file's bytes: the header around an archived body.
pub fn frame(version: u32, lsn: Lsn, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(body);
    out
}

/// Verifies a file's header and checksum: its format version, its LSN and its body.
pub fn unframe<'b>(
    file: &str,
    bytes: &'b [u8],
    readable: RangeInclusive<u32>,
) -> Result<(u32, Lsn, &'b [u8]), SnapshotError> {
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
    if !readable.contains(&version) {
        return Err(SnapshotError::Version { file: file.to_owned(), found: version, readable });
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
    Ok((version, lsn, body))
}

pub fn file_name(lsn: Lsn) -> String {
    format!("snap-{lsn:020}.snap")
}

fn lsn_of(name: &str) -> Option<Lsn> {
    name.strip_prefix("snap-")?.strip_suffix(".snap")?.parse().ok()
}

/// Writes a snapshot file durably: temp file, sync, rename, sync the directory. Returns its
/// name.
pub fn write_file(storage: &Arc<dyn LogStorage>, lsn: Lsn, bytes: &[u8]) -> Result<String, SnapshotError> {
    let name = file_name(lsn);
    let temp = format!("{name}.tmp");
    let io = |op: &'static str| {
        let file = name.clone();
        move |source| SnapshotError::Io { file, op, source }
    };
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
    Ok(name)
}

/// What loading found: the image used and the snapshots skipped as invalid.
#[derive(Debug)]
pub struct Loaded<I> {
    pub image: Option<I>,
    pub file: Option<String>,
    pub skipped: Vec<String>,
}

/// Loads the newest snapshot that `decode` accepts. A file of an unknown format or section is
/// never skipped (the log it covers may be gone): it stops the load.
pub fn load_newest<I>(
    storage: &Arc<dyn LogStorage>,
    decode: impl Fn(&str, &[u8]) -> Result<I, SnapshotError>,
) -> Result<Loaded<I>, SnapshotError> {
    let mut names: Vec<(Lsn, String)> = storage
        .list()
        .map_err(|source| SnapshotError::Io { file: String::new(), op: "list", source })?
        .into_iter()
        .filter_map(|name| lsn_of(&name).map(|lsn| (lsn, name)))
        .collect();
    names.sort_unstable_by_key(|(lsn, _)| std::cmp::Reverse(*lsn));
    let mut loaded = Loaded { image: None, file: None, skipped: Vec::new() };
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
