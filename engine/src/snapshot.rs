//! Snapshots: the whole engine state as one image, and the registry of its sections.
//!
//! The file is the kernel's container ([`crate::kernel::container`]): a checksummed header and,
//! from format 4 on, one section per domain, each with its own name and version. [`sections!`]
//! below is **the one list of sections**: it declares [`Image`] and how it is written and read.
//! Formats 2 and 3 (one archive of the whole state) are still read and upgraded.

use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::catalog::CatalogSection;
use crate::domains::{registered_domains, DomainCaptures, Domains};
use crate::flash::snapshot::{FlashSection, SaleImage};
use crate::kernel::container;
pub use crate::kernel::container::{Loaded, SectionBytes, SectionedBody, SnapshotError};
use crate::kernel::domain::Domain;
use crate::model::LocationDef;
use crate::stock::snapshot::{ReservationImage, SkuImage, StockSection};
use crate::time::Timestamp;
use crate::transfer::snapshot::{ReplenishmentImage, TransferImage, TransferSection};
use crate::view::Outcome;
use crate::wal::{LogStorage, Lsn};

/// 2: flash sales, and the sale of each claim. 3: transfers and replenishment requests.
/// 4: one section per domain, each archived on its own with its own version.
pub const VERSION: u32 = 4;
/// The oldest format this build still reads ([`ImageV2`], upgraded on load).
pub const VERSION_READABLE_MIN: u32 = 2;

/// Declares [`Image`] (a header and one field per section) and writes and reads its sections.
/// A new domain's snapshot is one line here: its field and its [`container::Section`] type.
macro_rules! sections {
    ($($field:ident: $section:ty,)*) => {
        /// The whole engine state as one value: a header and each domain's section.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Image {
            /// Every log record up to and including this one is reflected in the image.
            pub lsn: Lsn,
            pub taken_at: Timestamp,
            $(pub $field: $section,)*
        }

        impl Image {
            /// An image with every section empty.
            pub fn empty(lsn: Lsn, taken_at: Timestamp) -> Image {
                Image { lsn, taken_at, $($field: <$section>::default(),)* }
            }

            fn sections(&self) -> Result<Vec<SectionBytes>, String> {
                Ok(vec![$(SectionBytes::of(&self.$field)?,)*])
            }

            /// Reads one section into its field; a section no field takes refuses the file
            /// (never skipped: the log it covers may be gone).
            fn read_section(&mut self, file: &str, section: &SectionBytes) -> Result<(), SnapshotError> {
                $(if let Some(read) = section.read::<$section>(file) {
                    self.$field = read?;
                    return Ok(());
                })*
                Err(SnapshotError::Section { file: file.to_owned(), name: section.name.clone(), version: section.version })
            }
        }
    };
}

/// The hand-wired sections, then each registered domain's ([`crate::domains`]).
macro_rules! image_with_domains {
    ($($field:ident: $domain:ty => $section:ty,)*) => {
        sections! {
            catalog: CatalogSection,
            stock: StockSection,
            flash: FlashSection,
            idempotency: IdempotencySection,
            $($field: $section,)*
        }

        impl Image {
            /// Builds the registered domains' sections from their captures (no lock held).
            pub(crate) fn set_domains(&mut self, captures: DomainCaptures) {
                $(self.$field = <$domain as Domain>::into_section(captures.$field);)*
            }

            /// Restores every registered domain from its section (start-up only).
            pub(crate) fn restore_domains(&self, domains: &Domains, location_codes: &[Arc<str>]) {
                $(domains.$field.restore(&self.$field, location_codes);)*
            }

            /// Puts the registered domains' sections in their canonical order.
            pub(crate) fn canonicalize_domains(&mut self) {
                $(<$domain as Domain>::canonicalize(&mut self.$field);)*
            }
        }
    };
}

registered_domains!(image_with_domains);

/// Idempotency results (the dispatcher's, across domains).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IdempotencySection {
    pub results: Vec<IdempotencyImage>,
}

// 1: results by scoped key (as in snapshot format 3).
crate::kernel::container::snapshot_section!(IdempotencySection, "idempotency", 1);

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

/// Encodes an image into a file (format 4: sections).
pub fn encode(image: &Image) -> Result<Vec<u8>, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid { file: container::file_name(image.lsn), reason };
    let body = SectionedBody { lsn: image.lsn, taken_at: image.taken_at, sections: image.sections().map_err(invalid)? };
    body.encode(VERSION)
}

/// Verifies and decodes a snapshot file's bytes (which must start 16-byte aligned).
pub fn decode(file: &str, bytes: &[u8]) -> Result<Image, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid { file: file.to_owned(), reason };
    let (version, lsn, body) = container::unframe(file, bytes, VERSION_READABLE_MIN..=VERSION)?;
    let image = match version {
        VERSION => {
            let body = SectionedBody::decode(file, body)?;
            let mut image = Image::empty(body.lsn, body.taken_at);
            for section in &body.sections {
                image.read_section(file, section)?;
            }
            image
        }
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

/// Writes a snapshot durably; returns the file's name and size.
pub fn write(storage: &Arc<dyn LogStorage>, image: &Image) -> Result<(String, usize), SnapshotError> {
    let bytes = encode(image)?;
    let name = container::write_file(storage, image.lsn, &bytes)?;
    Ok((name, bytes.len()))
}

/// Loads the newest snapshot that verifies.
pub fn load_newest(storage: &Arc<dyn LogStorage>) -> Result<Loaded<Image>, SnapshotError> {
    container::load_newest(storage, decode)
}

pub use container::remove_older;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::container::Section;

    /// A file of format `version` around an already archived body.
    fn file_bytes(version: u32, lsn: Lsn, body: &[u8]) -> rkyv::util::AlignedVec<16> {
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(&container::frame(version, lsn, body));
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
        for (name, version) in [("stock", StockSection::VERSION + 1), ("loyalty", 1)] {
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
