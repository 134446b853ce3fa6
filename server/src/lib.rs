//! aisle's HTTP front: routing, auth, JSON, metrics and the thin services.
//!
//! Empty until the HTTP front issue lands; the engine it will call lives in `aisle-engine`.
