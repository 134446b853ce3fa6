//! The seed inputs committed for each target (`tests/fuzz/__fuzz__/<target>/corpus/`), made by
//! `cargo run -p aisle-fuzz --bin aisle-fuzz-corpus`: real log records, segments and the
//! snapshot of [`crate::session`], every request type's examples, and short scripts for the
//! damage and handlers targets. Seeds named `valid-…` are inputs the decoders must accept;
//! the corpus test checks that they still are. Files named `regression-…` are inputs that
//! found a bug, kept as found (the writer leaves files it did not make alone).

use std::path::PathBuf;

use crate::bodies::TYPES;
use crate::handlers::OPS;
use crate::session::session;

/// The targets, by their corpus directory's name (bolero's `<module>__<test>`).
pub const TARGETS: &[&str] = &[
    "wal__wal_record",
    "wal__wal_segment",
    "wal__wal_damage",
    "snapshot__snapshot_decode",
    "snapshot__snapshot_damage",
    "bodies__request_bodies",
    "handlers__handlers",
    "handlers__handlers_replay",
];

/// One seed: its target, file name and bytes.
#[derive(Debug, Clone)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Where a target's corpus lives.
pub fn dir(target: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fuzz", "__fuzz__", target, "corpus"].iter().collect()
}

fn seed(target: &'static str, name: impl Into<String>, parts: &[&[u8]]) -> Seed {
    Seed { target, name: name.into(), bytes: parts.concat() }
}

/// Every seed (see the module documentation).
pub fn seeds() -> Vec<Seed> {
    let session = session();
    let mut out = Vec::new();

    // wal_record: mode 0, then the payload.
    for (lsn, (payload, record)) in &session.records {
        let name = format!("valid-{lsn:02}-{}", record.command.kind());
        out.push(seed("wal__wal_record", name, &[&[0], payload]));
    }
    if let Some((payload, _)) = session.records.values().next() {
        out.push(seed("wal__wal_record", "cut-record", &[&[0], &payload[..payload.len() / 2]]));
        out.push(seed("wal__wal_record", "edited-record", &[&[1, 0, 0, 5, 0, 0, 0, 1, 0xff]]));
    }
    out.push(seed("wal__wal_record", "empty", &[&[0]]));

    // wal_segment: mode 0, then one segment file; mode 1, then a script.
    for (lsn, bytes) in &session.segments {
        out.push(seed("wal__wal_segment", format!("valid-segment-{lsn:02}"), &[&[0], bytes]));
        out.push(seed("wal__wal_segment", format!("torn-segment-{lsn:02}"), &[&[0], &bytes[..bytes.len() - 7]]));
    }
    out.push(seed("wal__wal_segment", "header-only", &[&[0], &crate::wal::segment_header(1)]));
    out.push(seed("wal__wal_segment", "script-three-segments", &[&[1, 0, 0, 0, 0, 2, 0, 0, 0, 4]]));
    out.push(seed("wal__wal_segment", "script-wrong-first-lsn", &[&[1, 0, 0, 0, 0, 1, 6, 0, 0, 3]]));

    // wal_damage: where the snapshot ends, then each edit: how many rounds, the segment, whether
    // to drop it, then the edit (see `damage`: count, offset, kind, argument).
    let segments = session.segments.len() as u8;
    let last = segments.saturating_sub(1);
    out.push(seed("wal__wal_damage", "flip-first-frame", &[&[0, 0, 0, 0, 0, 40, 0, 0, 0, 0, 3]]));
    out.push(seed("wal__wal_damage", "cut-last-segment", &[&[0, 0, last, 0, 0, 100, 0, 0, 0, 4]]));
    out.push(seed("wal__wal_damage", "cut-first-segment", &[&[0, 0, 0, 0, 0, 100, 0, 0, 0, 4]]));
    out.push(seed("wal__wal_damage", "drop-first-segment", &[&[0, 0, 0, 15]]));
    out.push(seed("wal__wal_damage", "zero-header", &[&[0, 0, last, 0, 0, 0, 0, 0, 0, 2, 31]]));
    out.push(seed(
        "wal__wal_damage",
        "after-snapshot",
        &[&[3, 12, 0, 0, 0, 0, 0, 0, 0, 0, last, 0, 0, 60, 0, 0, 0, 1, 7]],
    ));

    // snapshot_decode: mode 0, then the file; mode 1, then a body framed as version 4; mode 2, a
    // script for sections.
    let file = &session.snapshot;
    let header = aisle_engine::kernel::container::HEADER_LEN;
    out.push(seed("snapshot__snapshot_decode", "valid-snapshot", &[&[0], file]));
    out.push(seed("snapshot__snapshot_decode", "cut-snapshot", &[&[0], &file[..file.len() / 2]]));
    out.push(seed("snapshot__snapshot_decode", "header-only", &[&[0], &file[..header]]));
    let lsn = u8::try_from(session.image.lsn).expect("the session's snapshot lsn fits a byte");
    out.push(seed("snapshot__snapshot_decode", "valid-framed-body", &[&[1, 0, 0, 0, 0, 0, lsn], &file[header..]]));
    out.push(seed("snapshot__snapshot_decode", "script-sections", &[&[2, 7, 3, 1, 0, 0, 0, 0, 0, 2, 0, 9, 0]]));

    // snapshot_damage: a script for `damage`.
    out.push(seed("snapshot__snapshot_damage", "flip-magic", &[&[0; 8]]));
    out.push(seed("snapshot__snapshot_damage", "flip-reserved", &[&[0, 40, 0, 0, 0, 0, 0]]));
    out.push(seed("snapshot__snapshot_damage", "cut-body", &[&[0, 0, 1, 0, 0, 4]]));
    out.push(seed("snapshot__snapshot_damage", "append", &[&[0, 0, 0, 0, 0, 5, 8, 1, 2, 3, 4, 5, 6, 7, 8]]));

    // request_bodies: the type's index, mode 0, then the body.
    for (index, kind) in TYPES.iter().enumerate() {
        let index = u8::try_from(index).expect("fewer than 256 request types");
        for (n, example) in kind.examples.iter().enumerate() {
            out.push(seed(
                "bodies__request_bodies",
                format!("valid-{}-{n}", kind.name),
                &[&[index, 0], example.as_bytes()],
            ));
        }
        out.push(seed("bodies__request_bodies", format!("array-{}", kind.name), &[&[index, 0], b"[]"]));
    }

    // handlers and handlers_replay: one request of each op with its plain generated body, as
    // the admin; and a script of three steps.
    let snapshot =
        u8::try_from(OPS.iter().position(|op| op.path == "/v1/ops/snapshot").unwrap_or(0)).expect("fewer than 256 ops");
    for (index, op) in OPS.iter().enumerate() {
        let index = u8::try_from(index).expect("fewer than 256 ops");
        let name = format!("{}-{}", op.method, op.path.trim_start_matches('/').replace(['/', '{', '}'], "_"));
        for target in ["handlers__handlers", "handlers__handlers_replay"] {
            out.push(seed(target, name.to_lowercase(), &[&[0, 0, index], &[0; 253]]));
        }
    }
    let mut script = vec![2, 0, 6];
    script.extend([0; 64]);
    script.extend([0, snapshot, 0, 0, 0]);
    script.extend([9, 3]);
    script.extend([0; 128]);
    out.push(seed("handlers__handlers_replay", "script-three-steps", &[&script]));
    out
}
