//! aisle's black-box integration tests: one binary, a module per area.

mod kill9;
