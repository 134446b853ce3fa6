//! The [`Engine`] methods of `crate::valuation`: request validation and the commands or queries they run.
//! They live in the facade so that the domain module never imports the engine.

use crate::cell::COST_SCALE;
use crate::engine::Engine;
use crate::error::Result;
use crate::state::LocId;
use crate::stock::valuation::*;
use rustc_hash::FxHashMap;

impl Engine {
    /// Values the stock on hand at every location, or at `location` only.
    pub fn valuation(&self, location: Option<&str>) -> Result<Valuation> {
        let state = &self.inner.state;
        let only: Option<LocId> = match location {
            Some(code) => Some(state.catalog.location_id(code)?),
            None => None,
        };
        // (skus, units, value in millionths of a minor unit)
        let mut sums: FxHashMap<LocId, (u64, i64, i128)> = FxHashMap::default();
        for shard in state.stock.shards.iter() {
            let shard = shard.lock();
            for entry in shard.skus.values() {
                for (id, cell) in &entry.cells {
                    if cell.on_hand <= 0 || only.is_some_and(|only| only != *id) {
                        continue;
                    }
                    let sum = sums.entry(*id).or_default();
                    sum.0 += 1;
                    sum.1 += cell.on_hand;
                    sum.2 += i128::from(cell.on_hand) * i128::from(cell.avg_cost_micros);
                }
            }
        }
        let table = state.catalog.locations.read();
        let mut locations: Vec<LocationValue> = sums
            .into_iter()
            .map(|(id, (skus, on_hand, micros))| LocationValue {
                location: table.code(id).to_owned(),
                skus,
                on_hand,
                value: (micros + COST_SCALE as i128 / 2) / COST_SCALE as i128,
            })
            .collect();
        locations.sort_unstable_by(|a, b| a.location.cmp(&b.location));
        Ok(Valuation {
            on_hand: locations.iter().map(|l| l.on_hand).sum(),
            value: locations.iter().map(|l| l.value).sum(),
            locations,
        })
    }
}
