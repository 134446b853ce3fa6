//! The [`Engine`] methods of `crate::sourced`: request validation and the commands or queries they run.
//! They live in the facade so that the domain module never imports the engine.

use crate::command::{Command, ReserveSourced};
use crate::engine::{check_hold_terms, merge_lines, Ack, Engine};
use crate::error::{EngineError, Result};
use crate::model::{check_channel, finish};
use crate::state::Context;
use crate::stock::sourced::*;
use crate::view::ReservationView;
use std::sync::atomic::Ordering;

impl Engine {
    /// What sourcing `request` would do now; changes nothing and logs nothing.
    pub fn quote(&self, request: &SourcingRequest) -> Result<Quote> {
        let mut errors = Vec::new();
        check_channel("channel", &request.channel, &mut errors);
        let lines = merge_lines(request.lines.clone(), true, &mut errors);
        finish(errors).map_err(EngineError::Invalid)?;
        let state = &self.inner.state;
        let shards = lines.iter().map(|line| state.stock.shard_of(&line.sku)).collect();
        let guards = state.stock.lock(shards);
        let basket = Basket {
            channel: &request.channel,
            lines: &lines,
            fulfillment: &request.fulfillment,
            allow_split: request.allow_split,
        };
        let planned = state.stock.plan_basket(&state.catalog, self.now(), basket, &guards)?;
        drop(guards);
        let shipments = planned
            .plan
            .shipments
            .iter()
            .map(|shipment| QuoteShipment {
                location: planned.code(shipment.site).to_owned(),
                distance_km: shipment.distance_km,
                lines: planned
                    .plan
                    .allocations_of(shipment)
                    .iter()
                    .map(|a| (planned.skus[a.line].0.clone(), a.qty))
                    .collect(),
            })
            .collect();
        Ok(Quote { fulfillable: planned.plan.fulfillable, shortfalls: shortfalls(&planned), shipments })
    }

    /// Reserves a basket whose lines without a location are sourced (SPEC §3), all in one
    /// atomic command; located lines are held where they say.
    pub fn reserve_sourced(
        &self,
        ctx: Context<'_>,
        request: SourcingRequest,
        customer: Option<String>,
        ttl_seconds: Option<u32>,
    ) -> Result<Ack<ReservationView>> {
        let mut errors = Vec::new();
        let ttl = check_hold_terms(&request.channel, customer.as_deref(), ttl_seconds, &mut errors);
        let lines = merge_lines(request.lines, true, &mut errors);
        finish(errors).map_err(EngineError::Invalid)?;
        let at = self.now();
        let id = self.inner.state.stock.next_reservation_id.fetch_add(1, Ordering::Relaxed);
        let command = Command::ReserveSourced(ReserveSourced {
            id,
            channel: request.channel,
            customer,
            expires_at: at + i64::from(ttl) * 1000,
            lines,
            fulfillment: request.fulfillment,
            allow_split: request.allow_split,
        });
        let ack = self.submit(ctx, at, command)?;
        match ack.value {
            crate::view::Outcome::Reservation(view) => Ok(Ack { value: view, lsn: ack.lsn }),
            other => Err(EngineError::Internal(format!("expected a reservation, got {other:?}"))),
        }
    }
}
