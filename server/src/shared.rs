//! [`App`]: what every request shares (the engine, the token store, the metrics, limits and
//! request budgets).
//! The request path that uses it is `app.rs`; handlers read it from here, so the two import
//! each other in no circle.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use aisle_engine::Engine;

use crate::auth::TokenStore;
use crate::budget::Budgets;
use crate::metrics::Metrics;

pub struct App {
    pub engine: Engine,
    pub tokens: Arc<TokenStore>,
    pub metrics: Metrics,
    pub body_bytes_max: usize,
    /// The per-token request budgets' rates (each token's bucket is in its record).
    pub budgets: Budgets,
    /// Set when shutdown starts: `/readyz` turns 503 so load balancers stop sending.
    pub stopping: AtomicBool,
    pub(crate) next_request_id: AtomicU64,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("engine", &self.engine).finish_non_exhaustive()
    }
}

impl App {
    pub fn new(
        engine: Engine,
        tokens: Arc<TokenStore>,
        metrics: Metrics,
        body_bytes_max: usize,
        budgets: Budgets,
    ) -> Self {
        App {
            engine,
            tokens,
            metrics,
            body_bytes_max,
            budgets,
            stopping: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
        }
    }
}
