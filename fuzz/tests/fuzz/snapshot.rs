//! Snapshot files through `snapshot::decode`, as start-up reads them.

use aisle_engine::kernel::container::{frame, SectionBytes, SectionedBody, HEADER_LEN};
use aisle_engine::snapshot::{self, SnapshotError};
use aisle_fuzz::session::session;
use aisle_fuzz::{budgeted, damage, decode_snapshot, Cursor};
use bolero::check;

/// Header bytes no check covers: the header length field and the reserved zeros after the
/// body's checksum. An edit there leaves the file readable, and it must read the same.
const UNCHECKED: [std::ops::Range<usize>; 2] = [12..16, 36..HEADER_LEN];

/// Decodes `bytes`; what it accepts must be an image that writes and reads back the same.
fn decode_checked(bytes: &[u8]) -> Result<snapshot::Image, SnapshotError> {
    let image = decode_snapshot("snap-fuzz", bytes)?;
    let again = snapshot::encode(&image).expect("a decoded image encodes");
    let back = decode_snapshot("snap-fuzz", &again).expect("an image just encoded decodes");
    // Compared as bytes: an image may hold a NaN, which equals nothing.
    let twice = snapshot::encode(&back).expect("a decoded image encodes");
    assert!(twice == again, "the image changed on its way through a file");
    Ok(image)
}

/// The sections of the session's snapshot (name, version, archive).
fn session_sections() -> Vec<SectionBytes> {
    let bytes = &session().snapshot;
    let body = aisle_fuzz::aligned(&bytes[HEADER_LEN..]);
    SectionedBody::decode("snap-session", &body).expect("the session's snapshot has sections").sections
}

/// Arbitrary snapshot files: `Ok` or a `SnapshotError`, never a panic.
///
/// Script: a mode byte, then 0: the rest is the file; 1: the rest is a body framed with a
/// valid header and checksum (format version chosen), so the archive itself is fuzzed; 2: a
/// sectioned body whose sections (known or unknown names, any version) hold arbitrary bytes
/// or a section of the session's snapshot with a few edits.
#[test]
fn snapshot_decode() {
    let sections = session_sections();
    let names: Vec<String> = sections.iter().map(|s| s.name.clone()).chain(["orders".to_owned()]).collect();
    budgeted(check!()).for_each(|input: &[u8]| {
        let mut c = Cursor::new(input);
        let file = match c.below(3) {
            0 => c.rest().to_vec(),
            1 => {
                let any = c.u32();
                let version = *c.pick(&[snapshot::VERSION, 3, 2, 1, any]);
                let lsn = u64::from(c.u8());
                frame(version, lsn, c.rest())
            }
            _ => {
                let lsn = u64::from(c.u8());
                let mut body = SectionedBody { lsn, taken_at: 0, sections: Vec::new() };
                for _ in 0..c.below(6) {
                    let section = if c.bool() {
                        let mut section = c.pick(&sections).clone();
                        damage(&mut section.bytes, &mut c);
                        section
                    } else {
                        let name = c.pick(&names).clone();
                        let any = c.u32();
                        let version = *c.pick(&[1, 1, 2, 0, any]);
                        SectionBytes { name, version, bytes: c.bytes_up_to(512) }
                    };
                    body.sections.push(section);
                }
                let header_lsn = if c.one_in(8) { lsn + 1 } else { lsn };
                let mut file = body.encode(snapshot::VERSION).expect("a body encodes");
                file[16..24].copy_from_slice(&header_lsn.to_le_bytes());
                file
            }
        };
        let _ = decode_checked(&file);
    });
}

/// The session's real snapshot with a few edits (bit flips, bytes set, runs zeroed or copied,
/// the end cut or extended): refused, or, when the edits all fell on bytes no check covers,
/// read as exactly the image that was written.
#[test]
fn snapshot_damage() {
    let session = session();
    budgeted(check!()).for_each(|input: &[u8]| {
        let mut c = Cursor::new(input);
        let mut bytes = session.snapshot.clone();
        damage(&mut bytes, &mut c);
        if let Ok(image) = decode_checked(&bytes) {
            assert_eq!(image, session.image, "a damaged snapshot was read as another image");
            assert_eq!(bytes.len(), session.snapshot.len(), "a snapshot of another length was accepted");
            for (at, (now, was)) in bytes.iter().zip(&session.snapshot).enumerate() {
                let covered = !UNCHECKED.iter().any(|range| range.contains(&at));
                assert!(now == was || !covered, "byte {at} changed and the snapshot was still accepted");
            }
        }
    });
}
