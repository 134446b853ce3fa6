//! aisle's HTTP front: tokio + hyper 1, JSON in and out, problem+json errors, bearer tokens,
//! Prometheus metrics. It converts at the edge and calls `aisle-engine`, which knows nothing
//! of HTTP.
//!
//! # Layout
//! - [`cli`]: flags, environment and config file → [`config::ServerConfig`]; the binary's entry.
//! - [`server`]: start-up (recovery, token bootstrap, bind), the accept loop, graceful shutdown.
//! - [`app`]: the path of one request: route, authenticate, bounded body, dispatch, measure.
//! - [`router`]: **the** route table; dispatch, roles, metrics labels and OpenAPI all read it.
//! - [`handlers`]: one module per area (catalog and stock, reservations, operations and tokens).
//! - [`dto`]: JSON request and response shapes and their conversion to engine types.
//! - [`problem`]: API errors and the one table mapping them to problem+json.
//! - [`auth`]: roles, what each may do, and the persistent token store.
//! - [`budget`]: per-token request budgets (a lock-free token bucket in each token's record).
//! - [`metrics`]: the Prometheus registry and the WAL observer.
//! - [`openapi`]: `/openapi.json`, generated from the route table and the JSON types.
//! - [`schema`]: the value rules (patterns) the JSON types' schemas share.

pub mod app;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod config;
pub mod dto;
pub mod handlers;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod router;
pub mod schema;
pub mod server;
pub mod shared;
