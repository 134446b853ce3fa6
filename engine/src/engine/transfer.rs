//! The [`Engine`] methods of `crate::transfer`: request validation and the commands or queries they run.
//! They live in the facade so that the domain module never imports the engine.

use crate::command::Command;
use crate::engine::{Ack, Engine};
use crate::error::{EngineError, FieldError, Result};
use crate::limits::*;
use crate::model::{check_code, finish};
use crate::state::Context;
use crate::time::day_of;
use crate::transfer::*;
use crate::view::Outcome;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Engine {
    /// Creates a transfer, holding every line at `from` or none (409 `InsufficientStock`).
    pub fn create_transfer(&self, ctx: Context<'_>, request: TransferRequest) -> Result<Ack<TransferView>> {
        let TransferRequest { from, to, lines, note } = request;
        let mut errors = Vec::new();
        check_code("from", &from, &mut errors);
        check_code("to", &to, &mut errors);
        if from == to {
            errors.push(FieldError::new("to", "must differ from from"));
        }
        let lines = merge_transfer_lines(lines, &mut errors);
        check_note("note", &note, &mut errors);
        finish(errors).map_err(EngineError::Invalid)?;
        let id = self.inner.state.domains.transfers.next_transfer_id.fetch_add(1, Ordering::Relaxed);
        let command = Command::CreateTransfer(CreateTransfer { id, from, to, lines, note });
        into_transfer(self.submit(ctx, self.now(), command)?)
    }

    /// A held transfer leaves its source: `from.on_hand` drops, `to.incoming` rises.
    pub fn ship_transfer(&self, ctx: Context<'_>, id: u64) -> Result<Ack<TransferView>> {
        into_transfer(self.submit(ctx, self.now(), Command::ShipTransfer { id })?)
    }

    /// Receives some units of a shipped transfer (`None`: everything outstanding).
    pub fn receive_transfer(
        &self,
        ctx: Context<'_>,
        id: u64,
        lines: Option<Vec<TransferLine>>,
    ) -> Result<Ack<TransferView>> {
        let lines = match lines {
            None => Vec::new(),
            Some(lines) => {
                let mut errors = Vec::new();
                let lines = merge_transfer_lines(lines, &mut errors);
                finish(errors).map_err(EngineError::Invalid)?;
                lines
            }
        };
        into_transfer(self.submit(ctx, self.now(), Command::ReceiveTransfer { id, lines })?)
    }

    /// Cancels a held transfer, releasing its hold; repeating it is harmless. A shipped one
    /// cannot be cancelled (409).
    pub fn cancel_transfer(&self, ctx: Context<'_>, id: u64) -> Result<Ack<TransferView>> {
        let cancelled = || self.transfer(id).filter(|view| view.status == TransferStatus::Cancelled);
        // The earlier cancel may not be durable yet: answer once everything logged so far is.
        let repeat = |view| Ack { value: view, lsn: Some(self.inner.wal.last_lsn()).filter(|lsn| *lsn > 0) };
        if let Some(view) = cancelled() {
            return Ok(repeat(view));
        }
        match self.submit(ctx, self.now(), Command::CancelTransfer { id }) {
            Err(EngineError::Conflict(e)) => cancelled().map(repeat).ok_or(EngineError::Conflict(e)),
            other => into_transfer(other?),
        }
    }

    pub fn transfer(&self, id: u64) -> Option<TransferView> {
        self.inner.state.domains.transfers.book.lock().transfers.get(&id).map(Transfer::view)
    }

    /// A location asks for stock; nothing is held.
    pub fn request_replenishment(
        &self,
        ctx: Context<'_>,
        request: ReplenishmentRequest,
    ) -> Result<Ack<ReplenishmentView>> {
        let ReplenishmentRequest { location, from, lines, note } = request;
        let mut errors = Vec::new();
        check_code("location", &location, &mut errors);
        if let Some(from) = &from {
            check_code("from", from, &mut errors);
            if *from == location {
                errors.push(FieldError::new("from", "must differ from location"));
            }
        }
        let lines = merge_transfer_lines(lines, &mut errors);
        check_note("note", &note, &mut errors);
        finish(errors).map_err(EngineError::Invalid)?;
        let id = self.inner.state.domains.transfers.next_replenishment_id.fetch_add(1, Ordering::Relaxed);
        let command = Command::RequestReplenishment(RequestReplenishment { id, location, from, lines, note });
        into_replenishment(self.submit(ctx, self.now(), command)?)
    }

    /// Approves a request: its transfer is created (source: `from`, else the request's, else
    /// the best source) in the same command, or nothing changes (409 when stock is short).
    pub fn approve_replenishment(
        &self,
        ctx: Context<'_>,
        id: u64,
        from: Option<String>,
    ) -> Result<Ack<ReplenishmentView>> {
        if let Some(from) = &from {
            let mut errors = Vec::new();
            check_code("from", from, &mut errors);
            finish(errors).map_err(EngineError::Invalid)?;
        }
        let transfer_id = self.inner.state.domains.transfers.next_transfer_id.fetch_add(1, Ordering::Relaxed);
        into_replenishment(self.submit(ctx, self.now(), Command::ApproveReplenishment { id, transfer_id, from })?)
    }

    /// Rejects a request; repeating it is harmless.
    pub fn reject_replenishment(
        &self,
        ctx: Context<'_>,
        id: u64,
        reason: Option<String>,
    ) -> Result<Ack<ReplenishmentView>> {
        let mut errors = Vec::new();
        check_note("reason", &reason, &mut errors);
        finish(errors).map_err(EngineError::Invalid)?;
        let rejected = || self.replenishment(id).filter(|view| view.status == ReplenishmentStatus::Rejected);
        let repeat = |view| Ack { value: view, lsn: Some(self.inner.wal.last_lsn()).filter(|lsn| *lsn > 0) };
        if let Some(view) = rejected() {
            return Ok(repeat(view));
        }
        match self.submit(ctx, self.now(), Command::RejectReplenishment { id, reason }) {
            Err(EngineError::Conflict(e)) => rejected().map(repeat).ok_or(EngineError::Conflict(e)),
            other => into_replenishment(other?),
        }
    }

    pub fn replenishment(&self, id: u64) -> Option<ReplenishmentView> {
        self.inner.state.domains.transfers.book.lock().replenishments.get(&id).map(Replenishment::view)
    }

    /// Cells below their reorder point (at `location`, or everywhere), in (location, SKU) order
    /// after `after`, at most `limit`; see [`Suggestion`]. A cell is listed when `available <
    /// reorder_point` and `available + incoming + on_order < reorder_point`; it is suggested
    /// `max(reorder_qty, reorder_point - available - incoming - on_order)` units. Inactive SKUs
    /// are skipped. The source is the best other location ([`crate::transfer::TransferScope::best_source`]'s order)
    /// for that quantity. Read shard by shard: a consistent answer per SKU, not a snapshot of
    /// the network.
    pub fn replenishment_suggestions(
        &self,
        location: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<SuggestionPage> {
        let state = &self.inner.state;
        let today = day_of(self.now());
        let limit = limit.clamp(1, SUGGESTIONS_PAGE_MAX);
        let on_order = state.domains.transfers.book.lock().on_order();
        let (codes, points) = {
            let table = state.catalog.locations.read();
            (table.codes.clone(), table.points.clone())
        };
        let only = match location {
            Some(code) => Some(state.catalog.location_id(code)?),
            None => None,
        };
        // The `limit + 1` smallest keys seen so far: one more tells whether a page follows.
        let mut found: BTreeMap<(Arc<str>, Arc<str>), Suggestion> = BTreeMap::new();
        for shard in state.stock.shards.iter() {
            let shard = shard.lock();
            for entry in shard.skus.values().filter(|entry| entry.def.active) {
                for (id, cell) in &entry.cells {
                    let (Some(code), Some(here)) = (codes.get(*id as usize), points.get(*id as usize)) else {
                        continue;
                    };
                    if only.is_some_and(|only| only != *id) || cell.reorder_point <= 0 {
                        continue;
                    }
                    if after.is_some_and(|(loc, sku)| (&**code, &*entry.code) <= (loc, sku)) {
                        continue;
                    }
                    let available = cell.available(today);
                    let ordered = on_order.get(&(entry.code.clone(), *id)).copied().unwrap_or(0);
                    if available >= cell.reorder_point || available + cell.incoming + ordered >= cell.reorder_point {
                        continue;
                    }
                    let key = (code.clone(), entry.code.clone());
                    if found.len() > limit && found.last_key_value().is_some_and(|(last, _)| *last < key) {
                        continue;
                    }
                    let suggested = cell.reorder_qty.max(cell.reorder_point - available - cell.incoming - ordered);
                    let source = entry
                        .cells
                        .iter()
                        .filter(|(other, _)| other != id)
                        .filter_map(|(other, cell)| {
                            let available = cell.available(today);
                            (available > 0).then_some(Candidate {
                                id: *other,
                                code: codes.get(*other as usize)?,
                                fills: available >= suggested,
                                available,
                                distance_km: here.distance_km(points.get(*other as usize)?),
                            })
                        })
                        .min_by(better_source)
                        .map(|c| SuggestedSource {
                            location: c.code.to_owned(),
                            available: c.available,
                            distance_km: c.distance_km,
                        });
                    found.insert(
                        key,
                        Suggestion {
                            sku: entry.code.to_string(),
                            location: code.to_string(),
                            available,
                            incoming: cell.incoming,
                            on_order: ordered,
                            reorder_point: cell.reorder_point,
                            reorder_qty: cell.reorder_qty,
                            suggested_qty: suggested,
                            source,
                        },
                    );
                    if found.len() > limit + 1 {
                        found.pop_last();
                    }
                }
            }
        }
        let mut items: Vec<Suggestion> = found.into_values().collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| (last.location.clone(), last.sku.clone()))
        } else {
            None
        };
        Ok(SuggestionPage { items, next })
    }
}

fn into_transfer(ack: Ack<Outcome>) -> Result<Ack<TransferView>> {
    match ack.value {
        Outcome::Transfer(view) => Ok(Ack { value: *view, lsn: ack.lsn }),
        other => Err(EngineError::Internal(format!("expected a transfer, got {other:?}"))),
    }
}

fn into_replenishment(ack: Ack<Outcome>) -> Result<Ack<ReplenishmentView>> {
    match ack.value {
        Outcome::Replenishment(view) => Ok(Ack { value: *view, lsn: ack.lsn }),
        other => Err(EngineError::Internal(format!("expected a replenishment, got {other:?}"))),
    }
}
