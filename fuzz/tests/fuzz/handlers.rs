//! Requests through the real handlers and engine.

use aisle_fuzz::handlers::Server;
use aisle_fuzz::{budgeted, Cursor};
use bolero::check;

/// Up to twelve requests (bodies as in `request_bodies`, to every route that takes one, as
/// the admin or another role) and clock moves, against a fresh seeded server: each answer is
/// a success with a JSON body or a client error, and the engine's invariants hold after each.
///
/// Script: see `aisle_fuzz::handlers::Server::run`.
#[test]
fn handlers() {
    budgeted(check!()).for_each(|input: &[u8]| {
        Server::new().run(&mut Cursor::new(input));
    });
}
