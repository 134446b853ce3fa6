//! JSON request bodies generated from a short description of each request type ([`Field`],
//! [`Kind`]): mostly well-formed values near the type's rules (the codes a test server knows,
//! quantities at and past their bounds, dates and times around the edges), sometimes a value of
//! the wrong type, a missing or an unknown field, or bytes edited after rendering.

use serde_json::{Map, Value};

use crate::Cursor;

/// What a field holds, as the API documents it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A SKU's code.
    Sku,
    /// A location's code.
    Location,
    /// Any other code (a lot's, a sale's).
    Code,
    Channel,
    /// Free text of at most `max` characters.
    Text {
        max: usize,
    },
    Customer,
    Int {
        min: i64,
        max: i64,
    },
    Uint {
        max: u64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339.
    Time,
    Enum(&'static [&'static str]),
    Object(&'static [Field]),
    Array {
        of: &'static Kind,
        max: usize,
    },
    /// A SKU's attributes: a string-to-string map.
    Attributes,
    /// An object whose `type` names one of the variants, each with its own fields.
    Tagged(&'static [(&'static str, &'static [Field])]),
}

/// One field of an object.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub presence: Presence,
}

/// How often a field is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Nearly always (31 in 32).
    Required,
    /// Two times in three.
    Often,
    /// One time in four.
    Rare,
}

pub const fn req(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, presence: Presence::Required }
}

pub const fn opt(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, presence: Presence::Often }
}

pub const fn rare(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, presence: Presence::Rare }
}

/// The SKUs and locations the handlers target's server knows (and codes of other things).
pub const SKUS: &[&str] = &["TEE-M", "SNKR"];
pub const LOCATIONS: &[&str] = &["HK-WH", "HK-CWB"];
const CODES: &[&str] = &["L1", "DROP", "L2026-11"];
/// Codes nothing has, and strings that are no codes at all.
const CODES_ODD: &[&str] = &["NEW-1", "tee-m", "", "HK WH", "é", "A/B", "0", "-", "SKU\u{0}"];
const CHANNELS: &[&str] = &["web", "pos", "app"];
const CHANNELS_ODD: &[&str] = &["", "WEB", "we b", "web\n", "x-y_z.1"];
const TEXTS: &[&str] =
    &["", "Causeway Bay", "PO 4471", "é ü 中文", "tab\there", "nul\u{0}byte", "line\nbreak", "\u{202e}"];
const CUSTOMERS: &[&str] = &["c-1042", "c-7", "", " ", "\u{7f}", "customer with spaces"];
const DATES: &[&str] = &["2027-11-30", "2026-11-11", "1970-01-01", "2024-02-29"];
const DATES_ODD: &[&str] = &[
    "2023-02-29",
    "0000-01-01",
    "9999-12-31",
    "-0001-01-01",
    "2026-13-01",
    "2026-1-1",
    "20261111",
    "",
    "+10000-01-01",
];
const TIMES: &[&str] = &[
    "2026-11-11T00:00:00Z",
    "2026-11-12T00:00:00Z",
    "2026-11-11T12:00:00Z",
    "2026-11-11T20:00:00+08:00",
    "2026-11-11T11:59:59.999Z",
    "2026-12-20T00:00:00Z",
    "2026-11-11T18:00:00Z",
    "2026-11-13T00:00:00Z",
];
const TIMES_ODD: &[&str] = &[
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999Z",
    "2026-06-30T23:59:60Z",
    "2026-11-11",
    "2026-11-11T00:00:00+25:00",
    "0000-01-01T00:00:00Z",
    "2026-11-11T00:00:00.0000000001Z",
    "",
];
const KEYS_ODD: &[&str] = &["extra", "Code", "qty ", "", "__proto__"];
/// Bytes an edit inserts: JSON's punctuation and the numbers and escapes parsers trip on.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "-",
    "0",
    "1e999",
    "-0",
    "1.0",
    "9007199254740993",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    " ",
    "\\",
    "1e-999",
    "18446744073709551616",
    "-9223372036854775809",
    "\u{fffd}",
];

fn long(c: &mut Cursor, max: usize) -> String {
    let n = match c.below(3) {
        0 => max,
        1 => max + 1,
        _ => c.below(max + 2),
    };
    "x".repeat(n)
}

/// Mostly small numbers (quantities a seeded server has stock for), then any number in range,
/// the bounds, just past them, and the extremes.
fn int(c: &mut Cursor, min: i64, max: i64) -> i64 {
    match c.below(16) {
        0..=7 => {
            let small = c.below(10) as i64;
            let small = if min < 0 { small - 5 } else { min.saturating_add(small) };
            small.clamp(min, max)
        }
        8..=10 => {
            let span = max.abs_diff(min).saturating_add(1);
            min.saturating_add_unsigned(c.u64() % span.max(1))
        }
        11 => min,
        12 => max,
        13 => min.saturating_sub(1),
        14 => max.saturating_add(1),
        _ => *c.pick(&[0, -1, i64::MIN, i64::MAX]),
    }
}

/// A number as JSON: usually an integer, sometimes the same value written as a float (`5.0`,
/// which the API accepts for a whole number).
fn number(c: &mut Cursor, value: i64) -> Value {
    if c.one_in(8) && value.unsigned_abs() < (1 << 53) {
        Value::from(value as f64)
    } else {
        Value::from(value)
    }
}

fn wrong_type(c: &mut Cursor) -> Value {
    match c.below(10) {
        0 => Value::Null,
        1 => Value::Bool(true),
        2 => Value::from(0),
        3 => Value::from(-1),
        4 => Value::from(1.5),
        5 => Value::from(""),
        6 => Value::from("1"),
        7 => Value::Array(vec![]),
        8 => Value::Object(Map::new()),
        _ => serde_json::json!([1, {"a": null}]),
    }
}

/// A code from `known` (7 in 8), else an odd one or one just within or past the length limit.
fn code(c: &mut Cursor, known: &[&str]) -> String {
    match c.below(16) {
        14 => c.pick(CODES_ODD).to_string(),
        15 => format!("C{}", long(c, aisle_engine::limits::CODE_LEN_MAX - 1)),
        _ => c.pick(known).to_string(),
    }
}

/// A value of `kind`: well-formed 15 times in 16 (most of those within the rules), else of
/// the wrong type or null.
pub fn value(kind: Kind, c: &mut Cursor) -> Value {
    match c.below(32) {
        30 => return wrong_type(c),
        31 => return Value::Null,
        _ => {}
    }
    match kind {
        Kind::Sku => Value::from(code(c, SKUS)),
        Kind::Location => Value::from(code(c, LOCATIONS)),
        Kind::Code => Value::from(code(c, CODES)),
        Kind::Channel => Value::from(match c.below(16) {
            14 => c.pick(CHANNELS_ODD).to_string(),
            15 => long(c, aisle_engine::limits::CHANNEL_LEN_MAX),
            _ => c.pick(CHANNELS).to_string(),
        }),
        Kind::Text { max } => Value::from(match c.below(8) {
            7 => long(c, max),
            _ => c.pick(TEXTS).to_string(),
        }),
        Kind::Customer => Value::from(match c.below(8) {
            7 => long(c, aisle_engine::limits::CUSTOMER_LEN_MAX),
            _ => c.pick(CUSTOMERS).to_string(),
        }),
        Kind::Int { min, max } => {
            let v = int(c, min, max);
            number(c, v)
        }
        Kind::Uint { max } => match c.below(16) {
            13 => Value::from(u64::MAX),
            14 => Value::from(max.saturating_add(1)),
            15 => Value::from(max),
            n if n < 8 => Value::from(n as u64 * 100),
            _ => Value::from(c.u64() % max.saturating_add(1).max(1)),
        },
        Kind::Float { min, max } => Value::from(match c.below(16) {
            11 => min,
            12 => max,
            13 => min - 0.001,
            14 => max + 0.001,
            15 => *c.pick(&[1e308, -1e308, f64::MIN_POSITIVE, -0.0]),
            _ => min + (max - min) * (f64::from(c.u16()) / f64::from(u16::MAX)),
        }),
        Kind::Bool => Value::Bool(c.bool()),
        Kind::Date => Value::from(if c.one_in(8) { *c.pick(DATES_ODD) } else { *c.pick(DATES) }),
        Kind::Time => Value::from(if c.one_in(8) { *c.pick(TIMES_ODD) } else { *c.pick(TIMES) }),
        Kind::Enum(names) => Value::from(match c.below(16) {
            14 => c.pick(names).to_uppercase(),
            15 => String::new(),
            _ => c.pick(names).to_string(),
        }),
        Kind::Object(fields) => object(fields, c),
        Kind::Array { of, max } => {
            let n = match c.below(32) {
                0..=15 => 1,
                16..=23 => 2,
                24..=27 => 3,
                28 | 29 => 0,
                30 => max,
                _ => max + 1,
            };
            Value::Array((0..n).map(|_| value(*of, c)).collect())
        }
        Kind::Attributes => {
            let n = match c.below(16) {
                15 => aisle_engine::limits::ATTRIBUTES_MAX + 1,
                n => n % 4,
            };
            let max = aisle_engine::limits::ATTRIBUTE_LEN_MAX;
            let mut map = Map::new();
            for i in 0..n {
                let key = match c.below(16) {
                    14 => String::new(),
                    15 => long(c, max),
                    _ => format!("k{i}"),
                };
                let text = value(Kind::Text { max }, c);
                map.insert(key, text);
            }
            Value::Object(map)
        }
        Kind::Tagged(variants) => {
            let (tag, fields) = *c.pick(variants);
            let mut out = object(fields, c);
            if let Value::Object(map) = &mut out {
                match c.below(16) {
                    14 => {}
                    15 => {
                        map.insert("type".into(), Value::from("teleport"));
                    }
                    _ => {
                        map.insert("type".into(), Value::from(tag));
                    }
                }
            }
            out
        }
    }
}

/// An object with `fields`, each as often as its [`Presence`] says, now and then with a field
/// the type does not have.
pub fn object(fields: &[Field], c: &mut Cursor) -> Value {
    let mut map = Map::new();
    for field in fields {
        let present = match field.presence {
            Presence::Required => !c.one_in(32),
            Presence::Often => !c.one_in(3),
            Presence::Rare => c.one_in(4),
        };
        if present {
            map.insert(field.name.into(), value(field.kind, c));
        }
    }
    if c.one_in(32) {
        let key = c.pick(KEYS_ODD).to_string();
        map.insert(key, wrong_type(c));
    }
    Value::Object(map)
}

/// A value's bytes: compact or pretty, and now and then edited afterwards.
pub fn render(value: &Value, c: &mut Cursor) -> Vec<u8> {
    let rendered = if c.one_in(8) { serde_json::to_vec_pretty(value) } else { serde_json::to_vec(value) };
    let mut bytes = rendered.expect("a serde_json::Value always renders");
    if c.one_in(6) {
        edit(&mut bytes, c);
    }
    bytes
}

/// One to four byte edits: delete, insert a token, overwrite with a token, duplicate a run,
/// cut the end.
pub fn edit(bytes: &mut Vec<u8>, c: &mut Cursor) {
    for _ in 0..=c.below(4) {
        let at = c.below(bytes.len() + 1);
        match c.below(5) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => {
                let token = c.pick(TOKENS).as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            2 => {
                let token = c.pick(TOKENS).as_bytes();
                let end = (at + token.len()).min(bytes.len());
                bytes.splice(at..end, token.iter().copied());
            }
            3 => {
                let end = (at + 1 + c.below(16)).min(bytes.len());
                let run = bytes[at..end].to_vec();
                bytes.splice(at..at, run);
            }
            _ => bytes.truncate(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[Field] = &[req("sku", Kind::Sku), req("qty", Kind::Int { min: 1, max: 10 })];
    const BODY: &[Field] = &[
        req("channel", Kind::Channel),
        req("lines", Kind::Array { of: &Kind::Object(LINE), max: 3 }),
        opt("note", Kind::Text { max: 8 }),
    ];

    #[test]
    fn an_empty_script_gives_the_plain_object() {
        let value = object(BODY, &mut Cursor::new(&[0; 256]));
        // Every choice 0 is the plain one: every field present with the first value of each
        // list, one line.
        let plain = serde_json::json!({"channel": "web", "lines": [{"sku": "TEE-M", "qty": 1}], "note": ""});
        assert_eq!(value, plain);
    }

    #[test]
    fn scripts_reach_wrong_types_missing_fields_and_edits() {
        let mut seen_wrong = false;
        let mut seen_missing = false;
        for seed in 0u32..2000 {
            let bytes: Vec<u8> =
                (0..64u32).map(|i| (seed.wrapping_mul(2_654_435_761).rotate_left(i) >> 7) as u8).collect();
            let value = object(BODY, &mut Cursor::new(&bytes));
            let map = value.as_object().expect("an object");
            seen_missing |= !map.contains_key("channel");
            seen_wrong |= map.get("channel").is_some_and(|v| !v.is_string());
        }
        assert!(seen_wrong && seen_missing);
    }
}
