//! The audit trail: every change to a stock cell, with time, command, actor and reason.
//!
//! Movements are derived from log records as they are applied (live and in replay) and go
//! through the kernel's projection pipeline ([`crate::kernel::projection`]), which stores them
//! in the [`DocumentStore`] under two indexes: by cell (SKU, location, LSN) and by LSN; a
//! location-only listing filters the LSN index.
//!
//! **Architecture Invariant:** the trail is a projection of the durable log: the pipeline
//! stores only movements of durable records, each batch atomically with the trail's applied
//! LSN (tree `projections`, key `audit`), keyed by the record's LSN so replay rewrites rather
//! than duplicates. Before a snapshot is published the trail is flushed through the snapshot's
//! LSN ([`AuditLog::flush_through`]): start-up replays the log after the snapshot, so nothing
//! the trail lacks is ever behind it.
//!
//! What is recorded: every change of `on_hand`, `committed`, `incoming` and the cell policy
//! (receipts, adjustments, counts, commits, fulfilments, cancellations), and every step of a
//! transfer (`transfer_create`, `transfer_ship`, `transfer_receive`, `transfer_cancel`, and
//! `replenishment_approve`, which creates one), reason `transfer <id>`. Holds — `reserve`,
//! `release`, `expire` — change only `reserved` and come and go by the hundred thousand a
//! second in a flash sale; their history lives on the reservation itself (status, times), and
//! they enter the trail only when [`AuditLog::start`] is told to record holds
//! (`EngineConfig::audit_holds`), at a cost in throughput measured in BENCHMARKS.md.
//!
//! Listing is eventually consistent by a few milliseconds: a movement is visible once the
//! writer has stored it. Without durability (`Durability::None`) nothing is logged and there is
//! no trail.

use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::command::{AdjustChange, Command, LogRecord};
use crate::docstore::DocumentStore;
use crate::flash::PoolReturn;
use crate::kernel::projection::{Entry, Pipeline, Projection};
use crate::time::Timestamp;
use crate::view::Outcome;
use crate::wal::{DurableWatch, Lsn};

/// Movements waiting for the writer; past it writes are refused with `Busy`.
pub const AUDIT_QUEUE_MAX: usize = 1_000_000;

const BY_CELL: &str = "movements_by_cell";
/// Entries a location-only listing examines per page before it answers with what it found.
const LOCATION_SCAN_MAX: usize = 100_000;
const BY_LSN: &str = "movements_by_lsn";

/// One change to one cell.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub lsn: Lsn,
    pub at: Timestamp,
    pub sku: String,
    pub location: String,
    /// The command's name (`receive`, `adjust`, `reserve`, `commit`, ...).
    pub command: String,
    pub actor: String,
    pub reason: Option<String>,
    pub reservation: Option<u64>,
    /// Changes of the cell's quantities.
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub incoming: i64,
    /// The cell's safety stock after a policy change.
    pub safety_stock: Option<i64>,
}

/// Which movements to list.
#[derive(Debug, Clone, Default)]
pub struct MovementQuery<'a> {
    pub sku: Option<&'a str>,
    pub location: Option<&'a str>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<&'a [u8]>,
    pub limit: usize,
}

/// A page of movements, oldest first, and the cursor for the next one.
#[derive(Debug, Clone, Default)]
pub struct MovementPage {
    pub movements: Vec<Movement>,
    pub next: Option<Vec<u8>>,
}

/// The audit trail's projection: movements, stored under the cell and the LSN indexes.
#[derive(Debug, Default)]
struct Trail;

impl Projection for Trail {
    type Item = Movement;
    /// Also the key of the trail's applied LSN (`projections`/`audit`).
    const NAME: &'static str = "audit";
    const QUEUE_MAX: usize = AUDIT_QUEUE_MAX;

    fn lsn(movement: &Movement) -> Lsn {
        movement.lsn
    }

    fn entries(&mut self, movements: &[Movement], out: &mut Vec<Entry>) {
        // A record's movements arrive together, in order: number them within the record.
        let mut index: u16 = 0;
        let mut last_lsn = None;
        for movement in movements {
            index = if last_lsn == Some(movement.lsn) { index + 1 } else { 0 };
            last_lsn = Some(movement.lsn);
            let Ok(value) = rkyv::to_bytes::<rkyv::rancor::Error>(movement) else { continue };
            let value = value.to_vec();
            let order = [&movement.lsn.to_be_bytes()[..], &index.to_be_bytes()].concat();
            let (sku, location) = (movement.sku.as_bytes(), movement.location.as_bytes());
            out.push((BY_CELL, [sku, &[0], location, &[0], &order].concat(), value.clone()));
            out.push((BY_LSN, order, value));
        }
    }
}

/// The audit trail: its pipeline and what it records.
pub(crate) struct AuditLog {
    pipeline: Pipeline<Trail>,
    holds: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("pipeline", &self.pipeline).finish()
    }
}

impl AuditLog {
    /// Starts the writer; `holds` also records reserve, release and expire.
    pub fn start(store: Arc<dyn DocumentStore>, holds: bool) -> Self {
        AuditLog { pipeline: Pipeline::start(store, Trail), holds }
    }

    /// From now on only movements of durable records are stored (called once the log is open).
    pub fn follow(&self, watch: DurableWatch) {
        self.pipeline.follow(watch);
    }

    /// The LSN the stored trail is complete through (0 when nothing was ever flushed).
    pub fn applied_lsn(&self) -> std::io::Result<Lsn> {
        self.pipeline.applied_lsn()
    }

    /// Whether the queue has room; checked before a command is applied.
    pub fn has_room(&self) -> bool {
        self.pipeline.has_room()
    }

    /// Queues the movements of one applied record.
    pub fn record(&self, lsn: Lsn, record: &LogRecord, outcome: &Outcome, hint: &AuditHint) {
        if !self.holds && is_hold(&record.command) {
            return;
        }
        self.pipeline.send(movements_of(lsn, record, outcome, hint));
    }

    /// Waits until every movement queued so far whose record is durable is stored, and the
    /// store is durable.
    pub fn flush(&self) -> std::io::Result<()> {
        self.pipeline.flush()
    }

    /// Moves the trail's applied LSN to `lsn`, through which every record has been handed over
    /// and is durable (a snapshot's); see [`Pipeline::flush_through`].
    pub fn flush_through(&self, lsn: Lsn) -> std::io::Result<()> {
        self.pipeline.flush_through(lsn)
    }

    pub fn written(&self) -> u64 {
        self.pipeline.written()
    }

    pub fn failure(&self) -> Option<String> {
        self.pipeline.failure()
    }

    pub fn query(&self, query: &MovementQuery<'_>) -> std::io::Result<MovementPage> {
        let limit = query.limit.max(1);
        let (tree, prefix) = match (query.sku, query.location) {
            (Some(sku), Some(location)) => (BY_CELL, [sku.as_bytes(), &[0], location.as_bytes(), &[0]].concat()),
            (Some(sku), None) => (BY_CELL, [sku.as_bytes(), &[0]].concat()),
            (None, Some(location)) => return self.query_location(location, query.cursor, limit),
            (None, None) => (BY_LSN, Vec::new()),
        };
        let entries = self.pipeline.store().scan(tree, &prefix, query.cursor, limit)?;
        let next = if entries.len() == limit { entries.last().map(|(key, _)| key.clone()) } else { None };
        let movements = entries.iter().map(|(_, value)| decode(value)).collect::<Result<Vec<_>, _>>()?;
        Ok(MovementPage { movements, next })
    }

    /// Walks the LSN index for one location's movements, a bounded stretch per page.
    fn query_location(&self, location: &str, cursor: Option<&[u8]>, limit: usize) -> std::io::Result<MovementPage> {
        let mut movements = Vec::new();
        let mut cursor = cursor.map(<[u8]>::to_vec);
        let mut examined = 0;
        while movements.len() < limit && examined < LOCATION_SCAN_MAX {
            let entries = self.pipeline.store().scan(BY_LSN, &[], cursor.as_deref(), 1024)?;
            let Some((last, _)) = entries.last() else {
                return Ok(MovementPage { movements, next: None });
            };
            cursor = Some(last.clone());
            examined += entries.len();
            for (key, value) in entries {
                let movement = decode(&value)?;
                if movement.location == location {
                    movements.push(movement);
                    if movements.len() == limit {
                        return Ok(MovementPage { movements, next: Some(key) });
                    }
                }
            }
        }
        Ok(MovementPage { movements, next: cursor })
    }
}

fn decode(bytes: &[u8]) -> std::io::Result<Movement> {
    // Values come back from the store unaligned; copy into an aligned buffer to validate.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<Movement, rkyv::rancor::Error>(&aligned).map_err(std::io::Error::other)
}

/// Whether a command only takes or gives back a hold (changes nothing but `reserved`).
fn is_hold(command: &Command) -> bool {
    matches!(
        command,
        Command::Reserve(_)
            | Command::Release { .. }
            | Command::Expire { .. }
            | Command::Extend { .. }
            | Command::Claim(_)
    )
}

/// What the audit needs to know about an applied command that its record and outcome do not
/// say, captured under the command's locks.
#[derive(Debug, Clone, Default)]
pub(crate) enum AuditHint {
    #[default]
    None,
    /// A count: what was on hand before it.
    OnHandBefore(i64),
    /// A flash sale's pool changed: each pooled cell's `reserved` moved by this much.
    Pool(Vec<(String, i64)>),
    /// A claim changed status; this is where freed units went.
    Claim(PoolReturn),
}

/// The movements one applied record caused, one per touched cell.
pub(crate) fn movements_of(lsn: Lsn, record: &LogRecord, outcome: &Outcome, hint: &AuditHint) -> Vec<Movement> {
    let base = |sku: &str, location: &str| Movement {
        lsn,
        at: record.at,
        sku: sku.to_owned(),
        location: location.to_owned(),
        command: record.command.kind().to_owned(),
        actor: record.actor.clone(),
        reason: None,
        reservation: None,
        on_hand: 0,
        reserved: 0,
        committed: 0,
        incoming: 0,
        safety_stock: None,
    };
    match (&record.command, outcome) {
        (Command::Receive(receive), _) => vec![Movement {
            on_hand: i64::from(receive.qty),
            reason: receive.reason.clone(),
            ..base(&receive.sku, &receive.location)
        }],
        (Command::Adjust(adjust), Outcome::Cell(cell)) => {
            let delta = match adjust.change {
                AdjustChange::Delta(delta) => delta,
                AdjustChange::Counted(_) => match hint {
                    AuditHint::OnHandBefore(before) => cell.on_hand - before,
                    _ => cell.on_hand,
                },
            };
            let reason = match &adjust.note {
                Some(note) => format!("{}: {note}", adjust.reason.as_str()),
                None => adjust.reason.as_str().to_owned(),
            };
            vec![Movement { on_hand: delta, reason: Some(reason), ..base(&adjust.sku, &adjust.location) }]
        }
        (Command::SetCellPolicy(policy), Outcome::Cell(cell)) => vec![Movement {
            safety_stock: Some(cell.safety_stock),
            reason: Some("policy".into()),
            ..base(&policy.sku, &policy.location)
        }],
        (
            Command::Reserve(_)
            | Command::Commit { .. }
            | Command::Fulfill { .. }
            | Command::Release { .. }
            | Command::Cancel { .. }
            | Command::Expire { .. },
            Outcome::Reservation(view),
        ) => view
            .lines
            .iter()
            .map(|line| {
                let qty = i64::from(line.qty);
                let (on_hand, reserved, committed) =
                    match (record.command.transition().map(|(_, transition)| transition.rule()), hint) {
                        (Some((_, _, change)), AuditHint::Claim(back)) => change.for_claim(*back).deltas(qty),
                        (Some((_, _, change)), _) => change.deltas(qty),
                        (None, _) => (0, qty, 0),
                    };
                Movement {
                    reservation: Some(view.id),
                    reason: view.order_ref.clone().filter(|_| matches!(record.command, Command::Commit { .. })),
                    on_hand,
                    reserved,
                    committed,
                    ..base(&line.sku, &line.location)
                }
            })
            // A claim released into its open pool leaves its cells as they were.
            .filter(|movement| (movement.on_hand, movement.reserved, movement.committed) != (0, 0, 0))
            .collect(),
        (Command::PutFlashSale(_) | Command::EndFlashSale { .. }, Outcome::FlashSale { view, .. }) => {
            let AuditHint::Pool(changes) = hint else { return Vec::new() };
            let (code, sku) = (&view.def.code, &view.def.sku);
            changes
                .iter()
                .filter(|(_, delta)| *delta != 0)
                .map(|(location, delta)| Movement {
                    reserved: *delta,
                    reason: Some(format!("flash sale {code}")),
                    ..base(sku, location)
                })
                .collect()
        }
        (
            Command::CreateTransfer(_) | Command::ShipTransfer { .. } | Command::CancelTransfer { .. },
            Outcome::Transfer(view),
        ) => {
            let reason = format!("transfer {}", view.id);
            let mut movements = Vec::with_capacity(view.lines.len() * 2);
            for line in &view.lines {
                let qty = i64::from(line.qty);
                let at = |location: &str| Movement { reason: Some(reason.clone()), ..base(&line.sku, location) };
                match record.command {
                    Command::CreateTransfer(_) => movements.push(Movement { reserved: qty, ..at(&view.from) }),
                    Command::CancelTransfer { .. } => movements.push(Movement { reserved: -qty, ..at(&view.from) }),
                    _ => {
                        movements.push(Movement { on_hand: -qty, reserved: -qty, ..at(&view.from) });
                        movements.push(Movement { incoming: qty, ..at(&view.to) });
                    }
                }
            }
            movements
        }
        // The record names what arrived (a receipt of everything is logged resolved).
        (Command::ReceiveTransfer { lines, .. }, Outcome::Transfer(view)) => lines
            .iter()
            .map(|line| Movement {
                on_hand: i64::from(line.qty),
                incoming: -i64::from(line.qty),
                reason: Some(format!("transfer {}", view.id)),
                ..base(&line.sku, &view.to)
            })
            .collect(),
        (Command::ApproveReplenishment { transfer_id, .. }, Outcome::Replenishment(view)) => {
            let Some(from) = &view.from else { return Vec::new() };
            view.lines
                .iter()
                .map(|line| Movement {
                    reserved: i64::from(line.qty),
                    reason: Some(format!("transfer {transfer_id}")),
                    ..base(&line.sku, from)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}
