//! aisle's engine: one inventory truth, in memory, write-ahead logged, sharded by SKU.
//!
//! # Layout
//! Layers, each importing only those below it (ARCHITECTURE.md has the map):
//! - shared leaves: [`model`] (catalog definitions, validation), [`cell`] (a stock cell's
//!   quantities; the one place `available` is computed), [`sourcing`] (the sourcing rules),
//!   [`time`], [`error`], [`limits`];
//! - [`kernel`] (who asks, log or replay, the one lock order), [`wal`] (the write-ahead log),
//!   [`docstore`] (sled behind a small trait);
//! - the domains, one folder each with its commands, state, check/apply, views, snapshot
//!   section and invariant check: `catalog` (locations), [`stock`] (cells, reservations,
//!   sourcing plans, availability, valuation), [`flash`] (flash sales), [`transfer`]
//!   (transfers and replenishment);
//! - [`command`] (every state change as a log record, [`command::LogRecord`]), [`view`] (what
//!   commands answer), [`audit`] (the audit trail, a projection of the durable log),
//!   [`snapshot`] (the file of sections);
//! - `state`: every domain's state and `State::execute`, which claims the idempotency key,
//!   locks, checks, applies and logs one command;
//! - [`engine`]: the [`Engine`] facade (one file per domain for its methods): validation,
//!   durable acknowledgements, recovery, snapshots, retention, the sweepers.
//!
//! # Use
//! ```
//! use std::sync::Arc;
//! use aisle_engine::{Context, Engine, EngineConfig, ReserveRequest, Storage};
//! use aisle_engine::command::{Receive, ReserveLine};
//! use aisle_engine::model::{LocationDef, LocationKind, SkuDef};
//! use aisle_engine::time::SystemClock;
//! use aisle_engine::wal::Durability;
//!
//! let (storage, _, _) = Storage::memory();
//! let config = EngineConfig::manual(Durability::Fsync, Arc::new(SystemClock));
//! let (engine, _report) = Engine::open(config, storage).unwrap();
//! let ctx = Context::actor("example");
//! let store = LocationDef { code: "HK-CWB".into(), name: "Causeway Bay".into(),
//!     kind: LocationKind::Store, lat: 22.28, lon: 114.18, channels: vec!["web".into()],
//!     pickup: true, ships: true, priority: 0 };
//! engine.wait(engine.put_location(ctx, store).unwrap()).unwrap();
//! let sku = SkuDef { code: "TEE-M".into(), name: "Tee M".into(), price: 9900,
//!     attributes: vec![], active: true };
//! engine.wait(engine.put_sku(ctx, sku).unwrap()).unwrap();
//! engine.wait(engine.receive(ctx, Receive { sku: "TEE-M".into(), location: "HK-CWB".into(),
//!     qty: 5, unit_cost: Some(4000), lot: None, reason: None }).unwrap()).unwrap();
//! let hold = engine.wait(engine.reserve(ctx, ReserveRequest { channel: "web".into(),
//!     customer: None, ttl_seconds: Some(600),
//!     lines: vec![ReserveLine { sku: "TEE-M".into(), location: "HK-CWB".into(), qty: 2 }] })
//!     .unwrap()).unwrap();
//! assert_eq!(engine.cell("TEE-M", "HK-CWB").unwrap().available, 3);
//! # let _ = hold;
//! ```
pub mod audit;
mod catalog;
pub mod cell;
pub mod command;
pub mod docstore;
mod domains;
pub mod engine;
pub mod error;
pub mod flash;
pub mod kernel;
pub mod limits;
pub mod model;
pub mod snapshot;
pub mod sourcing;
mod state;
pub mod stock;
pub mod time;
pub mod transfer;
pub mod view;
pub mod wal;

pub use engine::{
    Ack, Engine, EngineConfig, EngineStats, OpenError, OpenReport, ReserveRequest, SnapshotInfo, Storage,
};
pub use error::{EngineError, Result};
pub use state::Context;
pub use stock::{availability, sourced, valuation};
