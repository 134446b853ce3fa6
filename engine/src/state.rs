//! The dispatcher: every domain's state ([`State`]) and the one function that changes it,
//! [`State::execute`], live or in replay.
//!
//! A record runs through: claim its idempotency key (scoped, with the request's fingerprint),
//! take its locks in the order of [`crate::kernel::locks`], check and apply through the domains
//! ([`crate::catalog`], [`crate::stock`], [`crate::flash`], [`crate::transfer`]), append it to
//! the log (live), hand it to the audit projection, remember its outcome under the key.
//!
//! **Architecture Invariant:** a command takes the locks of every shard it touches in
//! ascending shard order, checks, applies and appends its log record while holding them, so log
//! order equals apply order for any two commands that touch the same cell, and a multi-SKU
//! command is applied all-or-nothing. There is no lock shared by all reservations. A flash-sale
//! claim takes no shard at all ([`crate::flash`]); a transfer command reads its transfer's SKUs
//! under a short lock of the book before it takes its shards, then the book again.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::audit::{AuditHint, AuditLog};
pub(crate) use crate::catalog::{Catalog, LocId};
use crate::command::{Adjust, AdjustChange, CellPolicy, Command, LogRecord, Receive};
use crate::domains::Domains;
use crate::error::{Conflict, EngineError, Entity, Result};
use crate::flash::{pool_change, FlashSales, FlashScope, PoolReturn, Sale, SaleBook, SaleState};
use crate::kernel::idempotency::{scoped_key, IdempotencyTable};
pub use crate::kernel::Context;
pub(crate) use crate::kernel::Sink;
pub(crate) use crate::stock::{Guards, Stock};
use crate::time::Timestamp;
use crate::transfer::{conflict as transfer_conflict, ReplenishmentStatus, TransferBook, TransferScope};
use crate::view::Outcome;
use crate::wal::{Durability, Lsn};

/// The whole in-memory state. Owned by the engine; the WAL is passed in so replay can use the
/// same code without logging.
#[derive(Debug)]
pub(crate) struct State {
    pub catalog: Catalog,
    pub stock: Stock,
    pub idempotency: IdempotencyTable<Outcome>,
    pub flash: FlashSales,
    /// The domains registered in [`crate::domains`].
    pub domains: Domains,
    /// Where applied records' movements go; `None` when nothing is logged.
    pub audit: Option<AuditLog>,
}

impl State {
    pub fn new(shards: usize, audit: Option<AuditLog>) -> Self {
        State {
            catalog: Catalog::default(),
            stock: Stock::new(shards),
            idempotency: IdempotencyTable::default(),
            flash: FlashSales::default(),
            domains: Domains::default(),
            audit,
        }
    }

    /// Runs one command: claims its idempotency key, locks its shards, checks it, applies it
    /// and (live) appends it to the log — all or nothing.
    pub fn execute(&self, record: &LogRecord, sink: Sink<'_>) -> Result<(Outcome, Option<Lsn>)> {
        let key = record.idempotency.as_ref().map(|tag| scoped_key(&record.actor, &tag.key));
        if let (Sink::Log(_), Some(key), Some(tag)) = (&sink, &key, &record.idempotency) {
            if let Some(done) = self.idempotency.claim(key, tag.fingerprint)? {
                return Ok(done);
            }
        }
        let result = self.execute_locked(record, &sink, key.as_deref());
        if result.is_err() {
            if let Some(key) = &key {
                self.idempotency.abandon(key);
            }
        }
        result
    }

    fn execute_locked(&self, record: &LogRecord, sink: &Sink<'_>, key: Option<&str>) -> Result<(Outcome, Option<Lsn>)> {
        // Catalog writes serialise on the location table; everything else on shards.
        if let Command::PutLocation(def) = &record.command {
            let mut table = self.catalog.locations.write();
            let created = Catalog::apply_put_location(&mut table, def)?;
            let outcome = Outcome::Put { created };
            let lsn = self.finish(record, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if let Command::ReserveSourced(request) = &record.command {
            // Planned and held under the same shard locks: no plan-then-race. The log gets the
            // resolved reservation, so replay never re-plans.
            let mut guards = self.stock.lock(self.shards_of(&record.command)?);
            let reserve = self.stock.resolve_sourced(&self.catalog, record.at, request, &mut guards)?;
            let resolved = LogRecord {
                at: record.at,
                actor: record.actor.clone(),
                idempotency: record.idempotency.clone(),
                command: Command::Reserve(reserve),
            };
            let outcome = self.apply(&resolved, &mut guards, None)?;
            let lsn = self.finish(&resolved, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if let Command::Prune = &record.command {
            let at = record.at;
            // Finished reservations and the registered domains' finished entries are forgotten
            // under every shard (each domain also takes its own lock), so no command that needs
            // a shard can finish one between this record and its effect. One that needs none
            // (rejecting a replenishment request) finishes at its own time, far inside the
            // retention, so it is never among the forgotten whichever goes first.
            let (reservations, finished, lsn) = {
                let mut guards = self.stock.lock_every();
                let (reservations, finished) = (self.stock.prune(at, &mut guards), self.domains.prune(at));
                let pruned = Outcome::Pruned { idempotency: 0, reservations, finished };
                (reservations, finished, self.finish(record, sink, key, &pruned, &AuditHint::None)?)
            };
            // Idempotency results need no shard: a result recorded meanwhile is newer than the
            // cut-off. Scanning the table after the locks are released keeps that scan out of
            // every writer's way.
            let idempotency = self.idempotency.prune(at);
            return Ok((Outcome::Pruned { idempotency, reservations, finished }, lsn));
        }

        if is_transfer_command(&record.command) {
            let mut guards = self.stock.lock(self.shards_of(&record.command)?);
            // Held through the log append: steps of one transfer are logged in apply order.
            let mut book = self.domains.transfers.book.lock();
            let (outcome, resolved) = self.apply_transfer(record, &mut guards, &mut book)?;
            let lsn = self.finish(resolved.as_ref().unwrap_or(record), sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }

        if let Command::Claim(claim) = &record.command {
            // A claim touches its sale's pool only: no shard, so other SKUs never wait on it.
            let sale = self.flash.sale(&claim.sale)?;
            let mut state = sale.state.lock();
            let view = self.flash_scope().apply_claim(record.at, claim, &sale, &mut state)?;
            let outcome = Outcome::Reservation(view);
            let lsn = self.finish(record, sink, key, &outcome, &AuditHint::None)?;
            return Ok((outcome, lsn));
        }
        if let Command::PutFlashSale(def) = &record.command {
            let mut guards = self.stock.lock(smallvec::smallvec![self.stock.shard_of(&def.sku)]);
            // Held through the log append: two writes of one sale are logged in apply order.
            let mut table = self.flash.sales.write();
            let existing = table.get(def.code.as_str()).cloned();
            let mut existing_state = existing.as_ref().map(|sale| sale.state.lock());
            let pool_before =
                existing_state.as_deref().map(|state| self.flash_scope().pool_codes(state)).unwrap_or_default();
            let existing_sale = existing.as_deref().zip(existing_state.as_deref_mut());
            let (created, view, new_sale) =
                self.flash_scope().apply_put_sale(record.at, def, &mut guards, existing_sale, table.len())?;
            let hint = AuditHint::Pool(pool_change(&pool_before, &view));
            let outcome = Outcome::FlashSale { created, view };
            let lsn = self.finish(record, sink, key, &outcome, &hint)?;
            if let Some(sale) = new_sale {
                table.insert(def.code.as_str().into(), sale);
            }
            return Ok((outcome, lsn));
        }

        let sale = self.sale_of(&record.command)?;
        let shards = self.shards_of(&record.command)?;
        let mut guards = self.stock.lock(shards);
        let mut sale_state = sale.as_ref().map(|sale| sale.state.lock());
        let mut sale = sale.as_deref().zip(sale_state.as_deref_mut());
        // A count's movement is the difference to what was on hand before it.
        let mut hint = match &record.command {
            Command::Adjust(Adjust { sku, location, change: AdjustChange::Counted(_), .. }) => {
                let location = self.catalog.locations.read().id(location);
                let entry = self.stock.sku_mut(&mut guards, sku).ok();
                AuditHint::OnHandBefore(
                    entry.zip(location).and_then(|(entry, id)| entry.cell(id)).map_or(0, |cell| cell.on_hand),
                )
            }
            _ => AuditHint::None,
        };
        let outcome = self.apply(record, &mut guards, sale.as_mut().map(|(sale, state)| (*sale, &mut **state)))?;
        if let Some((_, state)) = &sale {
            hint = match (&record.command, &outcome) {
                (Command::EndFlashSale { .. }, Outcome::FlashSale { view, .. }) => AuditHint::Pool(
                    view.pool.iter().map(|share| (share.location.clone(), -i64::from(share.remaining))).collect(),
                ),
                _ => AuditHint::Claim(if state.ended { PoolReturn::ToCell } else { PoolReturn::ToPool }),
            };
        }
        let lsn = self.finish(record, sink, key, &outcome, &hint)?;
        drop(sale_state);
        drop(guards);
        Ok((outcome, lsn))
    }

    fn flash_scope(&self) -> FlashScope<'_> {
        FlashScope { catalog: &self.catalog, stock: &self.stock }
    }

    fn transfer_scope(&self) -> TransferScope<'_> {
        TransferScope { catalog: &self.catalog, stock: &self.stock, transfers: &self.domains.transfers }
    }

    /// Checks and applies one transfer or replenishment command (its shards and the book
    /// locked); on error nothing changed. Returns the outcome and, when the command resolved
    /// something, the record to log instead of the one given.
    pub(crate) fn apply_transfer(
        &self,
        record: &LogRecord,
        guards: &mut Guards<'_>,
        book: &mut TransferBook,
    ) -> Result<(Outcome, Option<LogRecord>)> {
        let at = record.at;
        let resolved = |command: Command| LogRecord {
            at: record.at,
            actor: record.actor.clone(),
            idempotency: record.idempotency.clone(),
            command,
        };
        match &record.command {
            Command::CreateTransfer(create) => {
                let view = self.transfer_scope().create_transfer_in(at, create, None, guards, book)?;
                Ok((Outcome::Transfer(Box::new(view)), None))
            }
            Command::ShipTransfer { id } => {
                Ok((Outcome::Transfer(Box::new(self.transfer_scope().ship_transfer_in(at, *id, guards, book)?)), None))
            }
            Command::ReceiveTransfer { id, lines } => {
                let (view, all) = self.transfer_scope().receive_transfer_in(at, *id, lines, guards, book)?;
                let record = all.map(|lines| resolved(Command::ReceiveTransfer { id: *id, lines }));
                Ok((Outcome::Transfer(Box::new(view)), record))
            }
            Command::CancelTransfer { id } => Ok((
                Outcome::Transfer(Box::new(self.transfer_scope().cancel_transfer_in(at, *id, guards, book)?)),
                None,
            )),
            Command::RequestReplenishment(request) => {
                let view = self.transfer_scope().request_replenishment_in(at, request, guards, book)?;
                Ok((Outcome::Replenishment(Box::new(view)), None))
            }
            Command::ApproveReplenishment { id, transfer_id, from } => {
                let view = self.transfer_scope().approve_in(at, *id, *transfer_id, from.as_deref(), guards, book)?;
                let record = match from {
                    Some(_) => None,
                    None => Some(resolved(Command::ApproveReplenishment {
                        id: *id,
                        transfer_id: *transfer_id,
                        from: view.from.clone(),
                    })),
                };
                Ok((Outcome::Replenishment(Box::new(view)), record))
            }
            Command::RejectReplenishment { id, reason } => {
                let request = book.replenishment_mut(*id)?;
                if request.status != ReplenishmentStatus::Requested {
                    return Err(transfer_conflict(format!(
                        "replenishment {id} is {}; only a requested one can be rejected",
                        request.status.as_str()
                    )));
                }
                request.status = ReplenishmentStatus::Rejected;
                request.decided_at = Some(at);
                request.reason = reason.as_deref().map(Into::into);
                let view = request.view();
                book.replenishment_decided(*id, at);
                Ok((Outcome::Replenishment(Box::new(view)), None))
            }
            _ => Err(EngineError::Internal("not a transfer command".into())),
        }
    }

    /// The flash sale a command touches besides its shards, if any.
    fn sale_of(&self, command: &Command) -> Result<Option<Arc<Sale>>> {
        Ok(match command {
            Command::EndFlashSale { code } => Some(self.flash.sale(code)?),
            Command::Extend { id, .. }
            | Command::Commit { id, .. }
            | Command::Fulfill { id }
            | Command::Release { id }
            | Command::Cancel { id }
            | Command::Expire { id } => {
                let code = self.stock.reservations.get(id).and_then(|r| r.core.sale.clone());
                match code {
                    Some(code) => Some(self.flash.sale(&code)?),
                    None => None,
                }
            }
            _ => None,
        })
    }

    /// Appends the record (live) and remembers the outcome under its idempotency key. Called
    /// with the command's locks held.
    fn finish(
        &self,
        record: &LogRecord,
        sink: &Sink<'_>,
        key: Option<&str>,
        outcome: &Outcome,
        hint: &AuditHint,
    ) -> Result<Option<Lsn>> {
        let lsn = match sink {
            // Nothing is written without durability: skip the encoding too.
            Sink::Log(wal) if wal.durability() == Durability::None => Some(wal.append(&[])?),
            Sink::Log(wal) => Some(
                crate::command::with_encoded(record, |bytes| wal.append(bytes))
                    .map_err(|e| EngineError::Internal(format!("encoding a log record: {e}")))??,
            ),
            Sink::Replay(_) => None,
        };
        if let (Some(audit), Some(lsn)) = (
            &self.audit,
            lsn.or(match sink {
                Sink::Replay(lsn) => Some(*lsn),
                Sink::Log(_) => None,
            }),
        ) {
            audit.record(lsn, record, outcome, hint);
        }
        if let (Some(key), Some(tag)) = (key, &record.idempotency) {
            self.idempotency.remember(key, tag.fingerprint, record.at, lsn, outcome.clone());
        }
        Ok(lsn)
    }

    pub(crate) fn shards_of(&self, command: &Command) -> Result<SmallVec<[usize; 4]>> {
        Ok(match command {
            Command::PutLocation(_) => SmallVec::new(),
            Command::PutSku(def) => smallvec::smallvec![self.stock.shard_of(&def.code)],
            Command::Receive(Receive { sku, .. })
            | Command::Adjust(Adjust { sku, .. })
            | Command::SetCellPolicy(CellPolicy { sku, .. }) => {
                smallvec::smallvec![self.stock.shard_of(sku)]
            }
            Command::Reserve(reserve) => reserve.lines.iter().map(|l| self.stock.shard_of(&l.sku)).collect(),
            Command::ReserveSourced(request) => request.lines.iter().map(|l| self.stock.shard_of(&l.sku)).collect(),
            Command::PutFlashSale(def) => smallvec::smallvec![self.stock.shard_of(&def.sku)],
            Command::Claim(_) => SmallVec::new(),
            Command::EndFlashSale { code } => smallvec::smallvec![self.stock.shard_of(&self.flash.sale(code)?.sku)],
            Command::Extend { id, .. }
            | Command::Commit { id, .. }
            | Command::Fulfill { id }
            | Command::Release { id }
            | Command::Cancel { id }
            | Command::Expire { id } => {
                let reservation = self
                    .stock
                    .reservations
                    .get(id)
                    .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
                reservation.core.lines.iter().map(|l| self.stock.shard_of(&l.sku)).collect()
            }
            Command::CreateTransfer(create) => create.lines.iter().map(|l| self.stock.shard_of(&l.sku)).collect(),
            Command::RequestReplenishment(request) => {
                request.lines.iter().map(|l| self.stock.shard_of(&l.sku)).collect()
            }
            // A transfer's and a request's SKUs never change: read under a short lock, then
            // taken again after the shards (the lock order).
            Command::ShipTransfer { id } | Command::ReceiveTransfer { id, .. } | Command::CancelTransfer { id } => {
                let book = self.domains.transfers.book.lock();
                let transfer =
                    book.transfers.get(id).ok_or_else(|| EngineError::not_found(Entity::Transfer, id.to_string()))?;
                transfer.lines.iter().map(|l| self.stock.shard_of(&l.sku)).collect()
            }
            Command::ApproveReplenishment { id, .. } => {
                let book = self.domains.transfers.book.lock();
                let request = book
                    .replenishments
                    .get(id)
                    .ok_or_else(|| EngineError::not_found(Entity::Replenishment, id.to_string()))?;
                request.lines.iter().map(|(sku, _)| self.stock.shard_of(sku)).collect()
            }
            Command::RejectReplenishment { .. } => SmallVec::new(),
            Command::Prune => (0..self.stock.shards.len()).collect(),
        })
    }

    /// Checks and applies one command whose shards are locked. On error nothing has changed.
    fn apply(
        &self,
        record: &LogRecord,
        guards: &mut Guards<'_>,
        sale: Option<(&Sale, &mut SaleState)>,
    ) -> Result<Outcome> {
        let (stock, catalog, at) = (&self.stock, &self.catalog, record.at);
        match &record.command {
            Command::PutSku(def) => Ok(Outcome::Put { created: stock.apply_put_sku(def, guards)? }),
            Command::Receive(receive) => Ok(Outcome::Cell(stock.apply_receive(catalog, at, receive, guards)?)),
            Command::Adjust(adjust) => Ok(Outcome::Cell(stock.apply_adjust(catalog, at, adjust, guards)?)),
            Command::SetCellPolicy(policy) => Ok(Outcome::Cell(stock.apply_policy(catalog, at, policy, guards)?)),
            Command::Reserve(reserve) => Ok(Outcome::Reservation(stock.apply_reserve(catalog, at, reserve, guards)?)),
            Command::Extend { id, .. } if sale.is_some() => Err(Conflict::Other(format!(
                "reservation {id} is a flash-sale claim; its hold time is the sale's and cannot be extended"
            ))
            .into()),
            Command::Extend { id, expires_at } => {
                Ok(Outcome::Reservation(stock.apply_extend(*id, *expires_at, guards)?))
            }
            Command::Expire { id } if stock.reservations.get(id).is_none_or(|r| r.expires_at > record.at) => {
                Err(Conflict::Other(format!("reservation {id} is not due to expire")).into())
            }
            Command::EndFlashSale { .. } => {
                let (sale, state) =
                    sale.ok_or_else(|| EngineError::Internal("the ending sale is not locked".into()))?;
                let view = self.flash_scope().apply_end_sale(record.at, sale, state, guards)?;
                Ok(Outcome::FlashSale { created: false, view })
            }
            command => {
                let Some((id, transition)) = command.transition() else {
                    return Err(EngineError::Internal("this command runs on its own path".into()));
                };
                let order_ref = match command {
                    Command::Commit { order_ref, .. } => order_ref.as_deref(),
                    _ => None,
                };
                let view = match sale {
                    Some((sale, state)) => {
                        let mut book = SaleBook { sale, state };
                        stock.transition(at, id, transition, order_ref, guards, Some(&mut book))?
                    }
                    None => stock.transition(at, id, transition, order_ref, guards, None)?,
                };
                Ok(Outcome::Reservation(view))
            }
        }
    }

    /// Whether a [`Command::Prune`] at `now` would forget anything; the sweeper logs one only
    /// then, so an idle engine writes nothing.
    pub fn prunable(&self, now: Timestamp) -> bool {
        self.domains.prunable(now) || self.stock.prunable(now) || self.idempotency.prunable(now)
    }
}

/// Whether a command is a transfer or replenishment step, run by `State::apply_transfer`.
pub(crate) fn is_transfer_command(command: &Command) -> bool {
    matches!(
        command,
        Command::CreateTransfer(_)
            | Command::ShipTransfer { .. }
            | Command::ReceiveTransfer { .. }
            | Command::CancelTransfer { .. }
            | Command::RequestReplenishment(_)
            | Command::ApproveReplenishment { .. }
            | Command::RejectReplenishment { .. }
    )
}
