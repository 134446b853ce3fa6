//! Commands: every state change of the engine, exactly as the write-ahead log records it.
//!
//! A [`LogRecord`] carries the time it was executed, who asked, an optional idempotency tag and
//! one [`Command`]. Records hold everything replay needs (ids, expiry times, the clock reading),
//! so replaying a log applies the same changes in the same order without consulting a clock.
//!
//! **Growing the log:** the archived [`Command`] enum is tagged by declaration order, so new
//! commands (orders that commit stock together with loyalty points and coupon uses, flash-sale
//! claims, transfers) are added as new variants at the end. Old logs stay readable; one record
//! remains one atomic step however many parts it has.

use rkyv::{Archive, Deserialize, Serialize};

pub use crate::flash::Claim;
use crate::flash::FlashSaleDef;
use crate::model::{LocationDef, SkuDef};
pub use crate::stock::commands::*;
use crate::time::Timestamp;
use crate::transfer::{CreateTransfer, RequestReplenishment, TransferLine};

/// The header of every log record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When the command was executed (engine clock, ms since the epoch).
    pub at: Timestamp,
    /// Who asked: a token name, `system` for expiries.
    pub actor: String,
    pub idempotency: Option<IdempotencyTag>,
    pub command: Command,
}

/// An idempotency key with a fingerprint of the request it was first used for.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyTag {
    pub key: String,
    pub fingerprint: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Command {
    PutLocation(LocationDef),
    PutSku(SkuDef),
    Receive(Receive),
    Adjust(Adjust),
    SetCellPolicy(CellPolicy),
    Reserve(Reserve),
    Extend {
        id: u64,
        expires_at: Timestamp,
    },
    Commit {
        id: u64,
        order_ref: Option<String>,
    },
    Fulfill {
        id: u64,
    },
    /// An active reservation is let go by its owner.
    Release {
        id: u64,
    },
    /// A committed reservation is cancelled: its committed units are freed.
    Cancel {
        id: u64,
    },
    /// An active reservation reached `expires_at`.
    Expire {
        id: u64,
    },
    /// A flash sale is created or changed; its pool is carved out of stock.
    PutFlashSale(FlashSaleDef),
    /// A customer claims units of a flash sale's pool: a reservation with the sale's hold time.
    Claim(Claim),
    /// A flash sale reached `ends_at`: its unclaimed units go back to the cell(s).
    EndFlashSale {
        code: String,
    },
    /// A reservation with lines to source. Never logged: it is planned under the shard locks
    /// and logged as the [`Command::Reserve`] it resolves to.
    ReserveSourced(ReserveSourced),
    /// A transfer is created: its lines are held at the source ([`crate::transfer`]).
    CreateTransfer(CreateTransfer),
    /// A held transfer leaves its source and is in transit to its destination.
    ShipTransfer {
        id: u64,
    },
    /// Units of a shipped transfer arrive. Logged with the lines received; an empty list (a
    /// receipt of everything outstanding) is resolved under the locks before it is logged.
    ReceiveTransfer {
        id: u64,
        lines: Vec<TransferLine>,
    },
    /// A held transfer is cancelled: its hold is released.
    CancelTransfer {
        id: u64,
    },
    /// A location asks for stock; nothing is held.
    RequestReplenishment(RequestReplenishment),
    /// A request is approved and becomes transfer `transfer_id` from `from`. Logged with the
    /// source resolved (`Some`), so replay never chooses again.
    ApproveReplenishment {
        id: u64,
        transfer_id: u64,
        from: Option<String>,
    },
    RejectReplenishment {
        id: u64,
        reason: Option<String>,
    },
    /// Forgets what has outlived its retention as of the record's time: idempotency results,
    /// finished reservations, transfers and replenishment requests. Logged (by the sweeper) so
    /// that a replica replaying the log forgets exactly the same things at the same point.
    Prune,
}

impl Command {
    /// The reservation and status change of a hold transition (commit, fulfil, release,
    /// cancel, expire).
    pub fn transition(&self) -> Option<(u64, crate::stock::Transition)> {
        use crate::stock::Transition;
        Some(match self {
            Command::Commit { id, .. } => (*id, Transition::Commit),
            Command::Fulfill { id } => (*id, Transition::Fulfill),
            Command::Release { id } => (*id, Transition::Release),
            Command::Cancel { id } => (*id, Transition::Cancel),
            Command::Expire { id } => (*id, Transition::Expire),
            _ => return None,
        })
    }

    /// Short name for the audit trail and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::PutLocation(_) => "put_location",
            Command::PutSku(_) => "put_sku",
            Command::Receive(_) => "receive",
            Command::Adjust(_) => "adjust",
            Command::SetCellPolicy(_) => "set_policy",
            Command::Reserve(_) => "reserve",
            Command::Extend { .. } => "extend",
            Command::Commit { .. } => "commit",
            Command::Fulfill { .. } => "fulfill",
            Command::Release { .. } => "release",
            Command::Cancel { .. } => "cancel",
            Command::Expire { .. } => "expire",
            Command::PutFlashSale(_) => "put_flash_sale",
            Command::Claim(_) => "claim",
            Command::EndFlashSale { .. } => "end_flash_sale",
            Command::ReserveSourced(_) => "reserve",
            Command::CreateTransfer(_) => "transfer_create",
            Command::ShipTransfer { .. } => "transfer_ship",
            Command::ReceiveTransfer { .. } => "transfer_receive",
            Command::CancelTransfer { .. } => "transfer_cancel",
            Command::RequestReplenishment(_) => "replenishment_request",
            Command::ApproveReplenishment { .. } => "replenishment_approve",
            Command::RejectReplenishment { .. } => "replenishment_reject",
            Command::Prune => "prune",
        }
    }
}

/// Encodes a record for the log.
pub fn encode(record: &LogRecord) -> Result<rkyv::util::AlignedVec<16>, rkyv::rancor::Error> {
    rkyv::to_bytes::<rkyv::rancor::Error>(record)
}

thread_local! {
    static ENCODE_BUFFER: std::cell::RefCell<rkyv::util::AlignedVec<16>> = Default::default();
}

/// Encodes a record into a per-thread buffer and hands the bytes to `use_bytes`: the hot
/// path appends every record to the log and needs no allocation of its own for it.
pub fn with_encoded<T>(record: &LogRecord, use_bytes: impl FnOnce(&[u8]) -> T) -> Result<T, rkyv::rancor::Error> {
    ENCODE_BUFFER.with(|cell| {
        let mut buffer = cell.take();
        buffer.clear();
        let buffer = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(record, buffer)?;
        let result = use_bytes(&buffer);
        cell.replace(buffer);
        Ok(result)
    })
}

/// Decodes (and validates) a record read back from the log.
pub fn decode(bytes: &[u8]) -> Result<LogRecord, rkyv::rancor::Error> {
    rkyv::from_bytes::<LogRecord, rkyv::rancor::Error>(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = LogRecord {
            at: 1_700_000_000_000,
            actor: "checkout".into(),
            idempotency: Some(IdempotencyTag { key: "k-1".into(), fingerprint: 42 }),
            command: Command::Reserve(Reserve {
                id: 7,
                channel: "web".into(),
                customer: None,
                expires_at: 1_700_000_600_000,
                lines: vec![ReserveLine { sku: "SKU-1".into(), location: "HK-WH".into(), qty: 3 }],
            }),
        };
        let bytes = encode(&record).expect("encodes");
        assert_eq!(decode(&bytes).expect("decodes"), record);
    }

    /// rkyv finds a record's root at a fixed distance from its end: a new variant larger than
    /// every old one would grow the archived enum and make every existing log unreadable.
    #[test]
    fn new_commands_keep_the_archived_size() {
        assert_eq!(std::mem::size_of::<ArchivedCommand>(), 88);
        assert_eq!(std::mem::size_of::<crate::view::ArchivedOutcome>(), 120);
    }
}
