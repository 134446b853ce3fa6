//! aisle's fuzz targets, one `#[test]` each (one binary, as for the other integration tests).
//! Each takes bytes and reads them as a script (`aisle_fuzz::Cursor`); its seeds are in
//! `__fuzz__/<module>__<target>/corpus/`. See the `aisle-fuzz` crate documentation for how
//! long they run and how to run them longer.

mod bodies;
mod corpus;
mod handlers;
mod snapshot;
mod wal;
