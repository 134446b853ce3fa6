//! Requests through the real handlers and engine.

use std::panic::AssertUnwindSafe;

use aisle_fuzz::handlers::{Server, Shared};
use aisle_fuzz::{budgeted, Cursor};
use bolero::check;

/// Up to twelve requests (bodies as in `request_bodies`, to every route that takes one, as
/// the admin or another role) and clock moves, against a fresh seeded server: each answer is
/// a success with a JSON body or a client error, and the engine's invariants hold after each.
///
/// Script: see `aisle_fuzz::handlers::Server::run`.
#[test]
fn handlers() {
    // The token store's directory goes when the target ends, whether it passes or fails.
    let shared = AssertUnwindSafe(Shared::new());
    budgeted(check!()).for_each(|input: &[u8]| {
        Server::new(&shared).run(&mut Cursor::new(input));
    });
}
