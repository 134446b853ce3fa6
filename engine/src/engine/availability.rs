//! The [`Engine`] methods of `crate::availability`: request validation and the commands or queries they run.
//! They live in the facade so that the domain module never imports the engine.

use crate::engine::Engine;
use crate::error::{EngineError, Entity, FieldError, Result};
use crate::limits::{AVAILABILITY_NEARBY_MAX, AVAILABILITY_SKUS_MAX};
use crate::model::{check_channel, check_code, finish};
use crate::sourcing::GeoPoint;
use crate::state::LocId;
use crate::stock::availability::*;
use crate::time::day_of;

impl Engine {
    /// Availability of each requested SKU; unknown SKUs are a 404 naming the first.
    pub fn availability(&self, query: &AvailabilityQuery) -> Result<Vec<SkuAvailability>> {
        let mut errors = Vec::new();
        if query.skus.is_empty() || query.skus.len() > AVAILABILITY_SKUS_MAX {
            errors.push(FieldError::new("skus", format!("must name 1 to {AVAILABILITY_SKUS_MAX} SKUs")));
        }
        for sku in &query.skus {
            check_code("skus", sku, &mut errors);
        }
        if let Some(location) = &query.location {
            check_code("location", location, &mut errors);
        }
        if let Some(channel) = &query.channel {
            check_channel("channel", channel, &mut errors);
        }
        if let Some((lat, lon)) = query.near {
            if !(lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
            {
                errors.push(FieldError::new("near", "must be lat,lon in degrees"));
            }
        }
        if query.limit > AVAILABILITY_NEARBY_MAX {
            errors.push(FieldError::new("limit", format!("must be 0 to {AVAILABILITY_NEARBY_MAX}")));
        }
        finish(errors).map_err(EngineError::Invalid)?;
        let state = &self.inner.state;
        let today = day_of(self.now());
        let here_id: Option<LocId> = match &query.location {
            Some(code) => Some(state.catalog.location_id(code)?),
            None => None,
        };
        let mut answers = Vec::with_capacity(query.skus.len());
        for sku in &query.skus {
            let shard = state.stock.shards[state.stock.shard_of(sku)].lock();
            let entry = shard.skus.get(sku.as_str()).ok_or_else(|| EngineError::not_found(Entity::Sku, sku))?;
            let table = state.catalog.locations.read();
            let origin: Option<GeoPoint> = match (query.near, here_id) {
                (Some((lat, lon)), _) => Some(GeoPoint::new(lat, lon)),
                (None, Some(id)) => table.points.get(id as usize).copied(),
                (None, None) => None,
            };
            let sells =
                |id: LocId| query.channel.as_deref().is_none_or(|channel| table.defs[id as usize].sells_to(channel));
            let mut network = 0;
            // (rank, location id, available, incoming), kept sorted by rank, at most `limit`.
            let mut nearest: Vec<(f64, LocId, i64, i64)> = Vec::with_capacity(query.limit + 1);
            for (id, cell) in &entry.cells {
                let available = cell.available(today);
                if !sells(*id) {
                    continue;
                }
                network += available;
                if available <= 0 || Some(*id) == here_id || query.limit == 0 {
                    continue;
                }
                let rank = origin.map_or(0.0, |o| o.chord2(&table.points[*id as usize]));
                let at = nearest.partition_point(|(r, other, _, _)| (*r, *other) < (rank, *id));
                if at < query.limit {
                    nearest.insert(at, (rank, *id, available, cell.incoming));
                    nearest.truncate(query.limit);
                }
            }
            let stock = |id: LocId, available: i64, incoming: i64| LocationStock {
                location: table.codes[id as usize].to_string(),
                available,
                incoming,
                distance_km: origin.map(|o| o.distance_km(&table.points[id as usize])),
            };
            let here = here_id.map(|id| {
                let (available, incoming) = entry.cell(id).map_or((0, 0), |c| (c.available(today), c.incoming));
                stock(id, available, incoming)
            });
            let nearby = nearest.iter().map(|&(_, id, available, incoming)| stock(id, available, incoming)).collect();
            answers.push(SkuAvailability { sku: sku.clone(), here, nearby, network });
        }
        Ok(answers)
    }
}
