//! The transfer domain's snapshot section: transfers, replenishment requests and the id
//! counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::cell::Lot;
use crate::kernel::domain::Domain;
use crate::time::Timestamp;
use crate::transfer::{
    Replenishment, ReplenishmentStatus, Transfer, TransferBook, TransferLine, TransferLineState, TransferStatus,
    Transfers,
};

// Its snapshot section. 1: transfers, replenishments and id counters (as in snapshot format 3).
crate::kernel::container::snapshot_section!(TransferSection, "transfers", 1);

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
pub struct TransferSection {
    pub next_transfer_id: u64,
    pub next_replenishment_id: u64,
    pub transfers: Vec<TransferImage>,
    pub replenishments: Vec<ReplenishmentImage>,
}

impl Default for TransferSection {
    fn default() -> Self {
        TransferSection {
            next_transfer_id: 1,
            next_replenishment_id: 1,
            transfers: Vec::new(),
            replenishments: Vec::new(),
        }
    }
}

/// The book copied under its mutex. Transfers are few next to holds (bounded by
/// `OPEN_TRANSFERS_MAX` and `FINISHED_TRANSFERS_MAX`): a plain copy.
#[derive(Debug)]
pub(crate) struct TransferCapture {
    book: TransferBook,
    next_transfer_id: u64,
    next_replenishment_id: u64,
}

impl Domain for Transfers {
    type Section = TransferSection;
    type Capture = TransferCapture;

    fn capture(&self) -> TransferCapture {
        TransferCapture {
            book: self.book.lock().clone(),
            next_transfer_id: self.next_transfer_id.load(Ordering::Relaxed),
            next_replenishment_id: self.next_replenishment_id.load(Ordering::Relaxed),
        }
    }

    /// Rebuilds the book from its section (start-up only); `location_codes` are the catalog's.
    fn restore(&self, section: &TransferSection, location_codes: &[Arc<str>]) {
        let code = |id: u32| location_codes.get(id as usize).cloned().unwrap_or_else(|| Arc::from("?"));
        let mut book = TransferBook::default();
        for t in &section.transfers {
            let lines = t
                .lines
                .iter()
                .map(|line| TransferLineState {
                    sku: line.sku.as_str().into(),
                    qty: line.qty,
                    shipped: line.shipped,
                    received: line.received,
                    unit_cost: line.unit_cost,
                    lots: line.lots.clone(),
                })
                .collect();
            let transfer = Transfer {
                id: t.id,
                from: t.from,
                to: t.to,
                from_code: code(t.from),
                to_code: code(t.to),
                lines,
                status: t.status,
                note: t.note.as_deref().map(Into::into),
                created_at: t.created_at,
                shipped_at: t.shipped_at,
                received_at: t.received_at,
                cancelled_at: t.cancelled_at,
                replenishment: t.replenishment,
            };
            book.transfers.insert(t.id, transfer);
        }
        for r in &section.replenishments {
            let request = Replenishment {
                id: r.id,
                location: r.location,
                location_code: code(r.location),
                from: r.from.map(|id| (id, code(id))),
                lines: r.lines.iter().map(|line| (line.sku.as_str().into(), line.qty)).collect(),
                note: r.note.as_deref().map(Into::into),
                status: r.status,
                created_at: r.created_at,
                decided_at: r.decided_at,
                transfer: r.transfer,
                reason: r.reason.as_deref().map(Into::into),
            };
            book.replenishments.insert(r.id, request);
        }
        book.reindex();
        *self.book.lock() = book;
        self.next_transfer_id.store(section.next_transfer_id, Ordering::Relaxed);
        self.next_replenishment_id.store(section.next_replenishment_id, Ordering::Relaxed);
    }

    fn into_section(capture: TransferCapture) -> TransferSection {
        capture.into_section()
    }

    fn canonicalize(section: &mut TransferSection) {
        // Transfers and requests are already in id order.
        section.next_transfer_id = 0;
        section.next_replenishment_id = 0;
    }

    fn check(&self) -> Result<(), String> {
        self.book.lock().check()
    }

    fn prunable(&self, now: Timestamp) -> bool {
        self.book.lock().prunable(now)
    }

    fn prune(&self, at: Timestamp) -> u64 {
        self.book.lock().prune(at)
    }
}

impl TransferCapture {
    /// The archivable section (no lock held).
    fn into_section(self) -> TransferSection {
        let mut transfers: Vec<TransferImage> = self
            .book
            .transfers
            .into_values()
            .map(|t| TransferImage {
                id: t.id,
                from: t.from,
                to: t.to,
                lines: t
                    .lines
                    .into_iter()
                    .map(|line| TransferLineImage {
                        sku: line.sku.to_string(),
                        qty: line.qty,
                        shipped: line.shipped,
                        received: line.received,
                        unit_cost: line.unit_cost,
                        lots: line.lots,
                    })
                    .collect(),
                status: t.status,
                note: t.note.map(String::from),
                created_at: t.created_at,
                shipped_at: t.shipped_at,
                received_at: t.received_at,
                cancelled_at: t.cancelled_at,
                replenishment: t.replenishment,
            })
            .collect();
        transfers.sort_unstable_by_key(|t| t.id);
        let mut replenishments: Vec<ReplenishmentImage> = self
            .book
            .replenishments
            .into_values()
            .map(|r| ReplenishmentImage {
                id: r.id,
                location: r.location,
                from: r.from.map(|(id, _)| id),
                lines: r.lines.into_iter().map(|(sku, qty)| TransferLine { sku: sku.to_string(), qty }).collect(),
                note: r.note.map(String::from),
                status: r.status,
                created_at: r.created_at,
                decided_at: r.decided_at,
                transfer: r.transfer,
                reason: r.reason.map(String::from),
            })
            .collect();
        replenishments.sort_unstable_by_key(|r| r.id);
        TransferSection {
            next_transfer_id: self.next_transfer_id,
            next_replenishment_id: self.next_replenishment_id,
            transfers,
            replenishments,
        }
    }
}
