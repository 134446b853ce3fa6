//! `aisle-loadtest`: drives a running aisle server over HTTP and checks that nothing was
//! oversold; runs the same flash sale against Redis and PostgreSQL for comparison.
//!
//! - [`driver`]: closed- and open-loop scheduling (open loop corrects for coordinated omission).
//! - [`stats`]: HdrHistogram latencies and outcome counts; [`report`]: the table and JSON.
//! - [`aisle`]: the `checkout`, `pos` and `mixed` scenarios; [`flash`]: the `flash` scenario on
//!   every target; [`backends`]: its Redis and PostgreSQL versions.
//! - [`check`]: consistency checks of a backend's final state against the client's counts.
//! - [`http`]: a keep-alive hyper client, one connection per worker.

pub mod aisle;
pub mod backends;
pub mod check;
pub mod cli;
pub mod driver;
pub mod flash;
pub mod http;
pub mod report;
pub mod stats;

/// Errors of set-up and final reads, reported as text.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
