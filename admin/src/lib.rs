//! aisle's server-rendered HTML admin (templates, handlers, static CSS and tiny JS).
//!
//! Empty until the admin issue lands.
