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

/// The same requests against a server that logs every write: afterwards, a replica recovered
/// from its log and snapshots (the script may have taken some) equals it, as compared by
/// `Engine::canonical_image`, and keeps the invariants.
#[test]
fn handlers_replay() {
    let shared = AssertUnwindSafe(Shared::new());
    budgeted(check!()).for_each(|input: &[u8]| {
        let server = Server::logged(&shared);
        server.run(&mut Cursor::new(input));
        server.check_replay();
    });
}
