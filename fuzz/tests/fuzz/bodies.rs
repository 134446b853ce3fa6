//! Every request body, through the parsing and conversion its handler runs before the engine.

use aisle_fuzz::bodies::{check as check_body, TYPES};
use aisle_fuzz::{budgeted, json, Cursor};
use bolero::check;

/// Bodies for every request type: the answer is `Ok` or a client error (4xx), never a panic
/// or a 5xx.
///
/// Script: the type (its index in `bodies::TYPES`), a mode byte, then 0: the rest is the body;
/// 1: one of the type's examples with a few byte edits; 2 and up: a JSON value generated from
/// the type's fields (see `aisle_fuzz::json`). The remaining choices pick the code in the path
/// and the caller where the handler has them.
#[test]
fn request_bodies() {
    budgeted(check!()).for_each(|input: &[u8]| {
        let mut c = Cursor::new(input);
        let kind = c.pick(TYPES);
        let body = match c.below(4) {
            0 => c.rest().to_vec(),
            1 => {
                let mut bytes = c.pick(kind.examples).as_bytes().to_vec();
                json::edit(&mut bytes, &mut c);
                bytes
            }
            _ => {
                let value = json::object(kind.fields, &mut c);
                json::render(&value, &mut c)
            }
        };
        check_body(kind, &body, &mut c);
    });
}
