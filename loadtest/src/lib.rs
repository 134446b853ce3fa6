//! `aisle-loadtest`: drives a running aisle server over HTTP.
//!
//! Empty until the load-test issue lands.
