//! The engine side of sourcing: quotes and sourced reservations, both planned by
//! [`crate::sourcing`] over the cells as they stand under the basket's shard locks.
//!
//! A sourced reservation is planned and held in one critical section (no plan-then-race), and
//! what reaches the log is the plain [`Command::Reserve`] it resolves to, so replay never
//! plans again and a later change of the planner cannot change history.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::catalog::{Catalog, LocId};
use crate::error::{EngineError, Entity, Result, Shortfall};
use crate::sourcing::{self, Destination, Plan, Scratch, Site};
use crate::stock::commands::{Fulfillment, Reserve, ReserveLine, ReserveSourced};
use crate::stock::{Guards, Stock};
use crate::time::{day_of, Timestamp};

/// A basket to source: quote it, or reserve it.
#[derive(Debug, Clone)]
pub struct SourcingRequest {
    pub channel: String,
    /// Lines with an empty `location` are sourced; the others are held where they say.
    pub lines: Vec<ReserveLine>,
    pub fulfillment: Fulfillment,
    pub allow_split: bool,
}

/// One shipment of a quote.
#[derive(Debug, Clone, PartialEq)]
pub struct QuoteShipment {
    pub location: String,
    pub distance_km: f64,
    /// `(sku, qty)`.
    pub lines: Vec<(String, u32)>,
}

/// What sourcing a basket would do now.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub fulfillable: bool,
    pub shipments: Vec<QuoteShipment>,
    pub shortfalls: Vec<Shortfall>,
}

/// A plan over the sourced lines, with what is needed to name its parts.
pub(crate) struct Planned {
    pub(crate) plan: Plan,
    /// The sourced lines (merged per SKU), in plan line order.
    pub(crate) skus: Vec<(String, u32)>,
    /// Codes of the locations the plan names (shipments and shortfalls), by site.
    pub(crate) codes: Vec<(usize, Arc<str>)>,
}

impl Planned {
    pub(crate) fn code(&self, site: usize) -> &str {
        self.codes.iter().find(|(s, _)| *s == site).map_or("?", |(_, code)| code)
    }
}

/// What [`Stock::plan_basket`] plans: a quote's or a sourced reservation's lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Basket<'a> {
    pub channel: &'a str,
    pub lines: &'a [ReserveLine],
    pub fulfillment: &'a Fulfillment,
    pub allow_split: bool,
}

impl Stock {
    /// Plans the lines without a location of `lines` (the located ones are taken as given and
    /// their units are not offered to the planner), reading cells under `guards`.
    pub(crate) fn plan_basket(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        basket: Basket<'_>,
        guards: &Guards<'_>,
    ) -> Result<Planned> {
        let Basket { channel, lines, fulfillment, allow_split } = basket;
        let today = day_of(at);
        let mut skus: Vec<(String, u32)> = Vec::new();
        for line in lines.iter().filter(|line| line.location.is_empty()) {
            match skus.iter_mut().find(|(sku, _)| *sku == line.sku) {
                Some((_, qty)) => *qty = qty.saturating_add(line.qty),
                None => skus.push((line.sku.clone(), line.qty)),
            }
        }
        let table = catalog.locations.read();
        let sites: Vec<Site<'_>> =
            table.defs.iter().zip(&table.points).map(|(def, point)| Site::new(def, channel, *point)).collect();
        let destination = match fulfillment {
            Fulfillment::Ship { lat, lon } => Destination::Ship { lat: *lat, lon: *lon },
            Fulfillment::Pickup { location } => Destination::Pickup {
                site: table.id(location).ok_or_else(|| EngineError::not_found(Entity::Location, location))? as usize,
            },
        };
        // Units already asked for at a location by the located lines are not on offer.
        let mut taken: FxHashMap<(&str, LocId), i64> = FxHashMap::default();
        for line in lines.iter().filter(|line| !line.location.is_empty()) {
            if let Some(id) = table.id(&line.location) {
                *taken.entry((line.sku.as_str(), id)).or_default() += i64::from(line.qty);
            }
        }
        let mut entries = Vec::with_capacity(skus.len());
        for (sku, _) in &skus {
            let entry = self.sku_ref(guards, sku)?;
            if !entry.def.active {
                return Err(super::inactive(sku));
            }
            entries.push(entry);
        }
        let requested: Vec<u32> = skus.iter().map(|(_, qty)| *qty).collect();
        let available = |line: usize, site: usize| -> u32 {
            let id = site as LocId;
            let held = taken.get(&(skus[line].0.as_str(), id)).copied().unwrap_or(0);
            let free = entries[line].cell(id).map_or(0, |cell| cell.available(today)) - held;
            u32::try_from(free.max(0)).unwrap_or(u32::MAX)
        };
        let plan = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            sourcing::plan(&sites, &requested, available, destination, allow_split, &mut scratch)
        })?;
        // Only the few locations the plan names, not the whole table.
        let named = plan.shipments.iter().map(|s| s.site).chain(plan.shortfalls.iter().filter_map(|s| s.location));
        let mut codes: Vec<(usize, Arc<str>)> = Vec::new();
        for site in named {
            if !codes.iter().any(|(s, _)| *s == site) {
                codes.push((site, table.codes[site].clone()));
            }
        }
        Ok(Planned { plan, skus, codes })
    }

    /// Resolves a sourced reservation into the plain one to apply and log, or the shortfalls.
    pub(crate) fn resolve_sourced(
        &self,
        catalog: &Catalog,
        at: Timestamp,
        request: &ReserveSourced,
        guards: &mut Guards<'_>,
    ) -> Result<Reserve> {
        let basket = Basket {
            channel: &request.channel,
            lines: &request.lines,
            fulfillment: &request.fulfillment,
            allow_split: request.allow_split,
        };
        let planned = self.plan_basket(catalog, at, basket, guards)?;
        if !planned.plan.fulfillable {
            return Err(EngineError::InsufficientStock(shortfalls(&planned)));
        }
        let mut lines: Vec<ReserveLine> =
            request.lines.iter().filter(|line| !line.location.is_empty()).cloned().collect();
        for allocation in &planned.plan.allocations {
            let sku = &planned.skus[allocation.line].0;
            let location = planned.code(allocation.site);
            match lines.iter_mut().find(|line| line.sku == *sku && line.location == *location) {
                Some(line) => line.qty += allocation.qty,
                None => {
                    lines.push(ReserveLine { sku: sku.clone(), location: location.to_owned(), qty: allocation.qty })
                }
            }
        }
        Ok(Reserve {
            id: request.id,
            channel: request.channel.clone(),
            customer: request.customer.clone(),
            expires_at: request.expires_at,
            lines,
        })
    }
}

thread_local! {
    /// The planner's working memory, one per thread that plans.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

pub(crate) fn shortfalls(planned: &Planned) -> Vec<Shortfall> {
    planned
        .plan
        .shortfalls
        .iter()
        .map(|short| Shortfall {
            sku: planned.skus[short.line].0.clone(),
            location: short.location.map(|site| planned.code(site).to_owned()),
            requested: u64::from(short.requested),
            available: u64::from(short.available),
        })
        .collect()
}
