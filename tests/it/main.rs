//! aisle's black-box integration tests: one binary, a module per area.

mod contract;
mod http_api;
mod http_crash;
mod http_disk_full;
mod http_flash;
mod http_idempotency;
mod http_import;
mod http_ops;
mod http_overload;
mod http_readonly;
mod http_sourcing;
mod http_transfers;
mod kill9;
mod ops_bundle;
mod schemathesis;
mod support;
mod torture;
