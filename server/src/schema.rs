//! The value rules of the API's JSON as JSON Schema, named once: the `#[schemars(...)]`
//! attributes of the request and response types use these, and `/openapi.json` carries them,
//! so a client (or a fuzzer) that follows the document sends what the server accepts.
//!
//! Each pattern states what the engine checks (`aisle_engine::model`); the tests below hold
//! both to the same examples.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// A code (SKU, location, lot, flash sale): 1 to 64 of letters, digits, `.`, `_`, `-`.
pub const CODE: &str = r"^[A-Za-z0-9._-]{1,64}$";
/// A channel: 1 to 32 of `a-z`, `0-9`, `_`, `-`.
pub const CHANNEL: &str = r"^[a-z0-9_-]{1,32}$";
/// Free text: no control characters.
pub const TEXT: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// A non-empty free text (a customer reference).
pub const TEXT_NONEMPTY: &str = r"^[^\u0000-\u001F\u007F-\u009F]+$";
/// A calendar date, `YYYY-MM-DD`.
pub const DATE: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// Hex of the bytes of a cursor (movements).
pub const HEX: &str = r"^([0-9a-fA-F]{2})*$";

/// Declares a type that only describes a string (a path or query value) in the document;
/// the handlers parse the value themselves.
macro_rules! described {
    ($(#[$doc:meta])* $name:ident => $schema:tt) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

described!(
    /// A SKU, location or flash-sale code.
    Code => {"type": "string", "pattern": CODE}
);
described!(
    /// A code to filter by; empty: no filter.
    CodeFilter => {"type": "string", "pattern": "^([A-Za-z0-9._-]{1,64})?$"}
);
described!(
    /// A channel name.
    Channel => {"type": "string", "pattern": CHANNEL}
);
described!(
    /// A decimal id (reservations, transfers, replenishment requests).
    DecimalId => {"type": "string", "pattern": "^[0-9]{1,19}$"}
);
described!(
    /// A token's id, as `POST /v1/tokens` answered it.
    TokenId => {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_-]+$"}
);
described!(
    /// The `next_cursor` of the previous page of movements.
    HexCursor => {"type": "string", "pattern": HEX}
);
described!(
    /// The `next_cursor` of the previous page of SKUs: the last code listed.
    CodeCursor => {"type": "string"}
);
described!(
    /// The `next_cursor` of the previous page of suggestions: hex of the last location and
    /// SKU listed, separated by a zero byte.
    PairCursor => {"type": "string", "pattern": "^(([2-7][0-9a-f])+00([2-7][0-9a-f])+)?$"}
);
described!(
    /// A SKU code prefix.
    Prefix => {"type": "string", "maxLength": 64}
);
described!(
    /// Comma-separated SKU codes.
    SkuList => {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}(,[A-Za-z0-9._-]{1,64}){0,99}$"}
);
described!(
    /// `lat,lon` in degrees.
    LatLon => {"type": "string", "pattern": "^-?([0-8]?[0-9](\\.[0-9]{1,6})?|90(\\.0{1,6})?),-?(1[0-7][0-9]|[0-9]?[0-9])(\\.[0-9]{1,6})?$"}
);

/// A page size: 1 to `MAX` (0 to `MAX` with `ZERO`).
#[derive(Debug)]
pub struct Limit<const MAX: usize, const ZERO: bool = false>;

impl<const MAX: usize, const ZERO: bool> JsonSchema for Limit<MAX, ZERO> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Limit{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": if ZERO { 0 } else { 1 }, "maximum": MAX})
    }
}

#[cfg(test)]
mod tests {
    use aisle_engine::model::{check_channel, check_code, check_text};

    /// Whether `text` matches `pattern` as a JSON Schema validator reads it (ECMA-262).
    fn matches(pattern: &str, text: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        jsonschema::is_valid(&schema, &serde_json::json!(text))
    }

    #[test]
    fn patterns_accept_what_the_engine_accepts() {
        let long = "x".repeat(64);
        let longer = "x".repeat(65);
        for text in ["SKU-1", "a.b_c-D9", "", "has space", "ü", "web", "pos-2", "Web", &long, &longer] {
            let mut errors = Vec::new();
            check_code("f", text, &mut errors);
            assert_eq!(matches(super::CODE, text), errors.is_empty(), "code {text:?}");
            let mut errors = Vec::new();
            check_channel("f", text, &mut errors);
            assert_eq!(matches(super::CHANNEL, text), errors.is_empty(), "channel {text:?}");
        }
        for text in ["plain", "名前 ü", "tab\there", "nul\0", "del\u{7f}", "c1\u{85}", ""] {
            let mut errors = Vec::new();
            check_text("f", text, 1000, &mut errors);
            assert_eq!(matches(super::TEXT, text), errors.is_empty(), "text {text:?}");
        }
    }
}
