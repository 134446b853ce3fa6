//! What the engine answers: the [`Outcome`] of every command (what an idempotency key
//! remembers), over each domain's own views.
//!
//! Views are copies taken under the locks, so a caller never holds engine locks while it
//! serialises a response. They are also what an idempotency key remembers, so they archive.

use rkyv::{Archive, Deserialize, Serialize};

pub use crate::stock::views::*;

/// The result of a command, as an idempotency key remembers it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A catalog entry was written; `created` is false when it replaced one.
    Put {
        created: bool,
    },
    Cell(CellView),
    Reservation(ReservationView),
    FlashSale {
        created: bool,
        view: crate::flash::FlashSaleView,
    },
    /// Boxed, like the next one: the archived enum must not grow (see `command.rs`'s tests).
    Transfer(Box<crate::transfer::TransferView>),
    Replenishment(Box<crate::transfer::ReplenishmentView>),
    /// How many entries a [`crate::command::Command::Prune`] forgot.
    Pruned {
        idempotency: u64,
        reservations: u64,
        /// Finished entries of the registered domains (transfers, replenishment requests).
        finished: u64,
    },
}
