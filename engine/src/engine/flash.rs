//! The [`Engine`] methods of `crate::flash`: request validation and the commands or queries they run.
//! They live in the facade so that the domain module never imports the engine.

use crate::command::{Claim, Command};
use crate::engine::{pop_due, Ack, Engine, SYSTEM_ACTOR};
use crate::error::FieldError;
use crate::error::{EngineError, Result};
use crate::flash::*;
use crate::limits::*;
use crate::model::{check_channel, check_code, check_text, finish};
use crate::state::Context;
use crate::time::Timestamp;
use crate::view::Outcome;
use crate::view::ReservationView;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;

impl Engine {
    /// Creates a flash sale, carving its pool out of `available`, or changes one. The answer
    /// says whether it was created.
    pub fn put_flash_sale(&self, ctx: Context<'_>, def: FlashSaleDef) -> Result<Ack<(bool, FlashSaleView)>> {
        let mut errors = Vec::new();
        check_code("code", &def.code, &mut errors);
        check_code("sku", &def.sku, &mut errors);
        if let Some(location) = &def.location {
            check_code("location", location, &mut errors);
        }
        if def.quantity == 0 || def.quantity > LINE_QTY_MAX {
            errors.push(FieldError::new("quantity", format!("must be 1 to {LINE_QTY_MAX}")));
        }
        if def.per_customer_limit == 0 || def.per_customer_limit > PER_CUSTOMER_LIMIT_MAX {
            errors.push(FieldError::new("per_customer_limit", format!("must be 1 to {PER_CUSTOMER_LIMIT_MAX}")));
        }
        if def.hold_seconds == 0 || def.hold_seconds > TTL_SECONDS_MAX {
            errors.push(FieldError::new("hold_seconds", format!("must be 1 to {TTL_SECONDS_MAX}")));
        }
        let now = self.now();
        if def.ends_at <= def.starts_at {
            errors.push(FieldError::new("ends_at", "must be after starts_at"));
        } else if def.ends_at - def.starts_at > FLASH_SALE_WINDOW_MS_MAX {
            errors.push(FieldError::new("ends_at", "a sale lasts at most 31 days"));
        }
        if def.ends_at <= now {
            errors.push(FieldError::new("ends_at", "must be in the future"));
        }
        finish(errors).map_err(EngineError::Invalid)?;
        let ack = self.submit(ctx, now, Command::PutFlashSale(def))?;
        match ack.value {
            Outcome::FlashSale { created, view } => Ok(Ack { value: (created, view), lsn: ack.lsn }),
            other => Err(EngineError::Internal(format!("expected a flash sale, got {other:?}"))),
        }
    }

    /// Claims units of a flash sale: a reservation held for the sale's `hold_seconds`. A sold
    /// out or closed sale answers without a lock or a log write.
    pub fn claim(&self, ctx: Context<'_>, request: ClaimRequest) -> Result<Ack<ReservationView>> {
        let ClaimRequest { sale, channel, customer, qty } = request;
        let mut errors = Vec::new();
        check_code("sale", &sale, &mut errors);
        check_channel("channel", &channel, &mut errors);
        if customer.is_empty() {
            errors.push(FieldError::new("customer", "must not be empty"));
        }
        check_text("customer", &customer, CUSTOMER_LEN_MAX, &mut errors);
        if qty == 0 || qty > PER_CUSTOMER_LIMIT_MAX {
            errors.push(FieldError::new("qty", format!("must be 1 to {PER_CUSTOMER_LIMIT_MAX}")));
        }
        finish(errors).map_err(EngineError::Invalid)?;
        let at = self.now();
        // A retry with an Idempotency-Key must get its first answer, not today's early one.
        if ctx.idempotency.is_none() {
            if let Some(refusal) = self.inner.state.flash.sale(&sale)?.early_refusal(at, qty) {
                return Err(refusal);
            }
        }
        let id = self.inner.state.stock.next_reservation_id.fetch_add(1, Ordering::Relaxed);
        let ack = self.submit(ctx, at, Command::Claim(Claim { sale, id, channel, customer, qty }))?;
        match ack.value {
            Outcome::Reservation(view) => Ok(Ack { value: view, lsn: ack.lsn }),
            other => Err(EngineError::Internal(format!("expected a reservation, got {other:?}"))),
        }
    }

    /// One flash sale as it stands now.
    pub fn flash_sale(&self, code: &str) -> Result<FlashSaleView> {
        let state = &self.inner.state;
        let sale = state.flash.sale(code)?;
        let sale_state = sale.state.lock();
        Ok(sale.view(&sale_state, self.now(), &state.catalog.locations.read().codes))
    }

    /// Every flash sale, by code.
    pub fn flash_sales(&self) -> Vec<FlashSaleView> {
        let state = &self.inner.state;
        let now = self.now();
        // Lock order: a sale's mutex before the location table.
        state
            .flash
            .all_sales()
            .iter()
            .map(|sale| {
                let sale_state = sale.state.lock();
                sale.view(&sale_state, now, &state.catalog.locations.read().codes)
            })
            .collect()
    }

    /// Expires due claims and ends sales past `ends_at`; returns how many claims expired.
    pub(crate) fn expire_claims_and_end_sales(&self, now: Timestamp) -> Result<usize> {
        let state = &self.inner.state;
        let mut expired = 0;
        for sale in state.flash.all_sales() {
            let (due, end) = {
                let mut sale_state = sale.state.lock();
                let due = pop_due(&mut sale_state.expiries, now, CLAIM_EXPIRIES_PER_SWEEP_STEP_MAX);
                (due, !sale_state.ended && now >= sale_state.def.ends_at)
            };
            let (done, failed) = self.expire_each(&due, now);
            expired += done;
            if let Some((rest, e)) = failed {
                sale.state.lock().expiries.extend(due[rest..].iter().map(|&entry| Reverse(entry)));
                return Err(e);
            }
            if end {
                let command = Command::EndFlashSale { code: sale.code.to_string() };
                match self.submit(Context::actor(SYSTEM_ACTOR), now, command) {
                    Ok(_) | Err(EngineError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(expired)
    }
}
