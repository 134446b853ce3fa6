//! The catalog domain: where stock can be (locations) and what it is (SKU definitions).
//!
//! Locations live in one small table, read-mostly behind an `RwLock`, indexed densely
//! ([`LocId`]) so cells and holds name a location with 4 bytes. A SKU's definition is stored
//! beside its cells in the SKU's shard ([`crate::stock`]), so a reservation reads both under
//! one lock; its type ([`crate::model::SkuDef`]) and validation are shared model types.

use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};
use rustc_hash::FxHashMap;

use crate::error::{EngineError, Entity, Result};
use crate::kernel::locks::{Rank, RankedRwLock};
use crate::limits::LOCATIONS_MAX;
use crate::model::LocationDef;
use crate::sourcing::GeoPoint;

/// Dense index of a location in the location table; stable for the life of the data.
pub type LocId = u32;

#[derive(Debug, Default)]
pub(crate) struct LocationTable {
    pub by_code: FxHashMap<Box<str>, LocId>,
    pub defs: Vec<LocationDef>,
    /// Shared codes, so held lines can name their location without this table's lock.
    pub codes: Vec<Arc<str>>,
    /// Each location's coordinates, ready for the sourcing planner's distance ranking.
    pub points: Vec<GeoPoint>,
}

impl LocationTable {
    pub fn id(&self, code: &str) -> Option<LocId> {
        self.by_code.get(code).copied()
    }
    pub fn code(&self, id: LocId) -> &str {
        &self.defs[id as usize].code
    }

    pub fn insert(&mut self, def: LocationDef) -> LocId {
        let id = self.defs.len() as LocId;
        self.by_code.insert(def.code.as_str().into(), id);
        self.codes.push(def.code.as_str().into());
        self.points.push(GeoPoint::of(&def));
        self.defs.push(def);
        id
    }

    /// Replaces a location's definition (its code stays).
    pub fn replace(&mut self, id: LocId, def: LocationDef) {
        self.points[id as usize] = GeoPoint::of(&def);
        self.defs[id as usize] = def;
    }
}

/// The catalog's state: the location table.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub locations: RankedRwLock<LocationTable>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog { locations: RankedRwLock::new(Rank::Locations, LocationTable::default()) }
    }
}

impl Catalog {
    pub fn location_id(&self, code: &str) -> Result<LocId> {
        self.locations.read().id(code).ok_or_else(|| EngineError::not_found(Entity::Location, code))
    }

    /// Creates or replaces a location; returns whether it was created. The caller holds the
    /// table's write lock through the log append, so two writes of one location are logged in
    /// apply order.
    pub fn apply_put_location(table: &mut LocationTable, def: &LocationDef) -> Result<bool> {
        Ok(match table.id(&def.code) {
            Some(id) => {
                table.replace(id, def.clone());
                false
            }
            None => {
                if table.defs.len() >= LOCATIONS_MAX {
                    return Err(EngineError::invalid("code", "too many locations"));
                }
                table.insert(def.clone());
                true
            }
        })
    }
}

// Its snapshot section. 1: locations in table order (as in snapshot format 3).
crate::kernel::container::snapshot_section!(CatalogSection, "catalog", 1);

/// The catalog's snapshot section: every location, in table order (their index is their
/// [`LocId`], which cells and holds store).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CatalogSection {
    pub locations: Vec<LocationDef>,
}

impl Catalog {
    /// Copies the table (the caller holds the shards: the lock order).
    pub(crate) fn capture(&self) -> CatalogSection {
        CatalogSection { locations: self.locations.read().defs.clone() }
    }

    /// Rebuilds the table from its section (start-up only); returns the shared location codes.
    pub(crate) fn restore(&self, section: &CatalogSection) -> Vec<Arc<str>> {
        let mut table = self.locations.write();
        *table = LocationTable::default();
        for def in &section.locations {
            table.insert(def.clone());
        }
        table.codes.clone()
    }
}
