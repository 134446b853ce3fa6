//! Every request body of the HTTP API: its JSON shape ([`BodyType::fields`], for the
//! generator), valid examples (the corpus's seeds), and [`BodyType::read`], the path its
//! handler takes before the engine: `json_object` (or "no body is the default"), then the
//! type's conversion and the checks made on it.

use std::sync::{Arc, OnceLock};

use aisle_engine::error::FieldError;
use aisle_engine::limits::{
    ADJUST_QTY_MAX, CHANNELS_PER_LOCATION_MAX, LINES_PER_REQUEST_MAX, LINE_QTY_MAX, NAME_LEN_MAX, NOTE_LEN_MAX,
    PER_CUSTOMER_LIMIT_MAX, TTL_SECONDS_MAX, UNIT_COST_MAX,
};
use aisle_engine::EngineError;
use aisle_server::auth::{Principal, Role, TokenStore};
use aisle_server::dto::{
    ttl, AdjustIn, CellPolicyIn, ClaimIn, CommitIn, Empty, ExtendIn, FlashSaleIn, LocationIn, QuoteIn, ReceiveIn,
    ReserveIn, SkuIn, TokenIn,
};
use aisle_server::handlers::import::ImportLineIn;
use aisle_server::handlers::json_object;
use aisle_server::handlers::transfers::{
    lines_in, ApproveIn, RejectIn, ReplenishmentIn, TransferIn, TransferReceiveIn,
};
use aisle_server::problem::ApiError;
use serde::de::DeserializeOwned;

use crate::json::{opt, rare, req, Field, Kind};
use crate::Cursor;

/// One request type.
#[derive(Debug)]
pub struct BodyType {
    /// The Rust type's name (also its corpus files' prefix).
    pub name: &'static str,
    pub fields: &'static [Field],
    /// Valid bodies.
    pub examples: &'static [&'static str],
    /// Reads `body` as the handler does; the cursor supplies what the handler has besides the
    /// body (the code in the path, the caller).
    pub read: fn(&[u8], &mut Cursor) -> Result<(), ApiError>,
}

const QTY: Kind = Kind::Int { min: 1, max: LINE_QTY_MAX as i64 };
const TTL: Kind = Kind::Int { min: 1, max: TTL_SECONDS_MAX as i64 };
const NOTE: Kind = Kind::Text { max: NOTE_LEN_MAX };
const ADJUST_QTY: Kind = Kind::Int { min: -ADJUST_QTY_MAX, max: ADJUST_QTY_MAX };
const COUNT: Kind = Kind::Int { min: 0, max: ADJUST_QTY_MAX };
const LOT: &[Field] = &[req("code", Kind::Code), req("expires_on", Kind::Date)];
const POINT: &[Field] =
    &[req("lat", Kind::Float { min: -90.0, max: 90.0 }), req("lon", Kind::Float { min: -180.0, max: 180.0 })];
const SHIP: &[Field] = &[req("to", Kind::Object(POINT))];
const PICKUP: &[Field] = &[req("location", Kind::Location)];
const FULFILLMENT: Kind = Kind::Tagged(&[("ship", SHIP), ("pickup", PICKUP)]);
const RESERVE_LINE: &[Field] = &[req("sku", Kind::Sku), req("qty", QTY), opt("location", Kind::Location)];
const QUOTE_LINE: &[Field] = &[req("sku", Kind::Sku), req("qty", QTY)];
const LINES: Kind = Kind::Array { of: &Kind::Object(QUOTE_LINE), max: LINES_PER_REQUEST_MAX };

const LOCATION: &[Field] = &[
    rare("code", Kind::Code),
    req("name", Kind::Text { max: NAME_LEN_MAX }),
    req("kind", Kind::Enum(&["warehouse", "store", "locker"])),
    req("lat", Kind::Float { min: -90.0, max: 90.0 }),
    req("lon", Kind::Float { min: -180.0, max: 180.0 }),
    opt("channels", Kind::Array { of: &Kind::Channel, max: CHANNELS_PER_LOCATION_MAX }),
    opt("pickup", Kind::Bool),
    opt("ships", Kind::Bool),
    opt("priority", Kind::Int { min: i32::MIN as i64, max: i32::MAX as i64 }),
];
const SKU: &[Field] = &[
    rare("code", Kind::Code),
    req("name", Kind::Text { max: NAME_LEN_MAX }),
    req("price", Kind::Int { min: 0, max: i64::MAX }),
    opt("attributes", Kind::Attributes),
    opt("active", Kind::Bool),
];
const RECEIVE: &[Field] = &[
    req("location", Kind::Location),
    req("sku", Kind::Sku),
    req("qty", QTY),
    opt("unit_cost", Kind::Uint { max: UNIT_COST_MAX }),
    opt("lot", Kind::Object(LOT)),
    opt("reason", NOTE),
];
const ADJUST_REASONS: &[&str] = &["count", "damage", "loss", "found", "other"];
const ADJUST: &[Field] = &[
    req("location", Kind::Location),
    req("sku", Kind::Sku),
    opt("delta", ADJUST_QTY),
    rare("counted", COUNT),
    req("reason", Kind::Enum(ADJUST_REASONS)),
    opt("lot", Kind::Object(LOT)),
    opt("note", NOTE),
];
const CELL_POLICY: &[Field] = &[opt("safety_stock", COUNT), opt("reorder_point", COUNT), opt("reorder_qty", COUNT)];
const RESERVE: &[Field] = &[
    req("channel", Kind::Channel),
    req("lines", Kind::Array { of: &Kind::Object(RESERVE_LINE), max: LINES_PER_REQUEST_MAX }),
    opt("ttl_seconds", TTL),
    opt("customer", Kind::Customer),
    opt("fulfillment", FULFILLMENT),
    rare("allow_split", Kind::Bool),
];
const QUOTE: &[Field] = &[
    req("channel", Kind::Channel),
    req("lines", LINES),
    req("fulfillment", FULFILLMENT),
    opt("allow_split", Kind::Bool),
];
const EXTEND: &[Field] = &[req("ttl_seconds", TTL)];
const COMMIT: &[Field] = &[opt("order_ref", NOTE)];
const FLASH_SALE: &[Field] = &[
    rare("code", Kind::Code),
    req("sku", Kind::Sku),
    opt("location", Kind::Location),
    req("quantity", QTY),
    req("starts_at", Kind::Time),
    req("ends_at", Kind::Time),
    opt("per_customer_limit", Kind::Int { min: 1, max: PER_CUSTOMER_LIMIT_MAX as i64 }),
    opt("hold_seconds", TTL),
];
const CLAIM: &[Field] = &[
    req("customer", Kind::Customer),
    opt("qty", Kind::Int { min: 1, max: PER_CUSTOMER_LIMIT_MAX as i64 }),
    opt("channel", Kind::Channel),
];
const TOKEN: &[Field] = &[
    req("name", Kind::Text { max: aisle_server::auth::TOKEN_NAME_LEN_MAX }),
    req("role", Kind::Enum(&["admin", "ops", "channel", "pos"])),
    opt("channel", Kind::Channel),
    opt("location", Kind::Location),
];
const TRANSFER: &[Field] =
    &[req("from", Kind::Location), req("to", Kind::Location), req("lines", LINES), opt("note", NOTE)];
const TRANSFER_RECEIVE: &[Field] = &[opt("lines", LINES)];
const REPLENISHMENT: &[Field] =
    &[req("location", Kind::Location), req("lines", LINES), opt("from", Kind::Location), opt("note", NOTE)];
const APPROVE: &[Field] = &[opt("from", Kind::Location)];
const REJECT: &[Field] = &[opt("reason", NOTE)];
const IMPORT_LINE: &[Field] = &[
    rare("op", Kind::Enum(&["receive", "adjust"])),
    req("location", Kind::Location),
    req("sku", Kind::Sku),
    opt("qty", QTY),
    rare("unit_cost", Kind::Uint { max: UNIT_COST_MAX }),
    rare("lot", Kind::Object(LOT)),
    rare("reason", Kind::Enum(ADJUST_REASONS)),
    rare("delta", ADJUST_QTY),
    rare("counted", COUNT),
    rare("note", NOTE),
];

fn invalid(errors: Vec<FieldError>) -> ApiError {
    ApiError::Engine(EngineError::Invalid(errors))
}

/// `Call::json_or_default`: no body at all is the type's default.
fn json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        json_object(body)
    }
}

/// The code a `PUT` names in its path.
fn path_code(c: &mut Cursor) -> &'static str {
    const CODES: &[&str] = &["HK-CWB", "TEE-M", "DROP", "NEW-1", "A b", "é"];
    CODES[c.below(CODES.len())]
}

/// Callers for the import's location check: an admin and a POS token bound to HK-CWB, made
/// by a real token store (the principal's fields are the store's business).
fn principals() -> &'static [Principal] {
    static PRINCIPALS: OnceLock<Vec<Principal>> = OnceLock::new();
    PRINCIPALS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory for the token store");
        let store = Arc::new(TokenStore::open(dir.path(), None).expect("an empty token store opens"));
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        let make = |name: &str, role, location: Option<&str>| {
            let made = runtime
                .block_on(store.create(name.into(), role, None, location.map(str::to_owned)))
                .expect("the token is created");
            store.authenticate(&made.secret).expect("a token just made authenticates")
        };
        vec![make("fuzz-admin", Role::Admin, None), make("fuzz-pos", Role::Pos, Some("HK-CWB"))]
    })
}

fn read_location(body: &[u8], c: &mut Cursor) -> Result<(), ApiError> {
    json_object::<LocationIn>(body)?.into_def(path_code(c))?.validate().map_err(invalid)
}

fn read_sku(body: &[u8], c: &mut Cursor) -> Result<(), ApiError> {
    json_object::<SkuIn>(body)?.into_def(path_code(c))?.validate().map_err(invalid)
}

fn read_receive(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<ReceiveIn>(body)?.into_command().map(drop)
}

fn read_adjust(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<AdjustIn>(body)?.into_command().map(drop)
}

fn read_cell_policy(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<CellPolicyIn>(body).map(drop)
}

fn read_reserve(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<ReserveIn>(body)?.into_call().map(drop)
}

fn read_quote(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<QuoteIn>(body)?.into_request().map(drop)
}

fn read_extend(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    ttl("ttl_seconds", json_object::<ExtendIn>(body)?.ttl_seconds).map(drop)
}

fn read_commit(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_or_default::<CommitIn>(body).map(drop)
}

fn read_empty(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_or_default::<Empty>(body).map(drop)
}

fn read_flash_sale(body: &[u8], c: &mut Cursor) -> Result<(), ApiError> {
    json_object::<FlashSaleIn>(body)?.into_def(path_code(c)).map(drop)
}

fn read_claim(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<ClaimIn>(body)?.qty().map(drop)
}

fn read_token(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_object::<TokenIn>(body).map(drop)
}

fn read_transfer(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    lines_in(json_object::<TransferIn>(body)?.lines).map(drop)
}

fn read_transfer_receive(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_or_default::<TransferReceiveIn>(body)?.lines.map(lines_in).transpose().map(drop)
}

fn read_replenishment(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    lines_in(json_object::<ReplenishmentIn>(body)?.lines).map(drop)
}

fn read_approve(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_or_default::<ApproveIn>(body).map(drop)
}

fn read_reject(body: &[u8], _: &mut Cursor) -> Result<(), ApiError> {
    json_or_default::<RejectIn>(body).map(drop)
}

fn read_import_line(body: &[u8], c: &mut Cursor) -> Result<(), ApiError> {
    json_object::<ImportLineIn>(body)?.check(c.pick(principals()))
}

/// Every request type of the API.
pub static TYPES: &[BodyType] = &[
    BodyType {
        name: "LocationIn",
        fields: LOCATION,
        examples: &[
            r#"{"name":"Causeway Bay","kind":"store","lat":22.28,"lon":114.18,"channels":["web","pos"],"pickup":true,"ships":true,"priority":0}"#,
            r#"{"code":"HK-CWB","name":"Tsuen Wan DC","kind":"warehouse","lat":22.37,"lon":114.11}"#,
        ],
        read: read_location,
    },
    BodyType {
        name: "SkuIn",
        fields: SKU,
        examples: &[
            r#"{"name":"Linen tee, M","price":19900,"attributes":{"colour":"sand","size":"M"}}"#,
            r#"{"name":"Linen tee","price":0,"attributes":{},"active":false}"#,
        ],
        read: read_sku,
    },
    BodyType {
        name: "ReceiveIn",
        fields: RECEIVE,
        examples: &[
            r#"{"location":"HK-CWB","sku":"TEE-M","qty":24,"unit_cost":6500,"lot":{"code":"L2026-11","expires_on":"2027-11-30"},"reason":"PO 4471"}"#,
            r#"{"location":"HK-WH","sku":"SNKR","qty":5.0}"#,
        ],
        read: read_receive,
    },
    BodyType {
        name: "AdjustIn",
        fields: ADJUST,
        examples: &[
            r#"{"location":"HK-CWB","sku":"TEE-M","counted":22,"reason":"count","note":"monthly count"}"#,
            r#"{"location":"HK-CWB","sku":"TEE-M","delta":-2,"reason":"damage","lot":{"code":"L2026-11","expires_on":"2027-11-30"}}"#,
        ],
        read: read_adjust,
    },
    BodyType {
        name: "CellPolicyIn",
        fields: CELL_POLICY,
        examples: &[r#"{"safety_stock":2,"reorder_point":5,"reorder_qty":20}"#, "{}"],
        read: read_cell_policy,
    },
    BodyType {
        name: "ReserveIn",
        fields: RESERVE,
        examples: &[
            r#"{"channel":"web","lines":[{"sku":"TEE-M","qty":2,"location":"HK-CWB"}],"ttl_seconds":600,"customer":"c-1042"}"#,
            r#"{"channel":"web","lines":[{"sku":"TEE-M","qty":2}],"fulfillment":{"type":"ship","to":{"lat":22.32,"lon":114.17}},"allow_split":true}"#,
            r#"{"channel":"pos","lines":[{"sku":"SNKR","qty":1}],"fulfillment":{"type":"pickup","location":"HK-CWB"}}"#,
        ],
        read: read_reserve,
    },
    BodyType {
        name: "QuoteIn",
        fields: QUOTE,
        examples: &[
            r#"{"channel":"web","lines":[{"sku":"TEE-M","qty":2}],"fulfillment":{"type":"pickup","location":"HK-CWB"}}"#,
            r#"{"channel":"web","lines":[{"sku":"TEE-M","qty":2},{"sku":"SNKR","qty":1}],"fulfillment":{"type":"ship","to":{"lat":22.3,"lon":114.2}},"allow_split":false}"#,
        ],
        read: read_quote,
    },
    BodyType { name: "ExtendIn", fields: EXTEND, examples: &[r#"{"ttl_seconds":900}"#], read: read_extend },
    BodyType {
        name: "CommitIn",
        fields: COMMIT,
        examples: &[r#"{"order_ref":"order-88"}"#, "{}", ""],
        read: read_commit,
    },
    BodyType {
        name: "FlashSaleIn",
        fields: FLASH_SALE,
        examples: &[
            r#"{"sku":"SNKR","location":"HK-WH","quantity":500,"starts_at":"2026-11-11T00:00:00Z","ends_at":"2026-11-12T00:00:00Z","per_customer_limit":1,"hold_seconds":300}"#,
            r#"{"sku":"SNKR","quantity":20,"starts_at":"2026-11-11T08:00:00+08:00","ends_at":"2026-11-11T20:00:00+08:00"}"#,
        ],
        read: read_flash_sale,
    },
    BodyType {
        name: "ClaimIn",
        fields: CLAIM,
        examples: &[r#"{"customer":"c-1042","qty":1}"#, r#"{"customer":"c-7","channel":"app"}"#],
        read: read_claim,
    },
    BodyType {
        name: "TokenIn",
        fields: TOKEN,
        examples: &[
            r#"{"name":"web shop","role":"channel","channel":"web"}"#,
            r#"{"name":"till 3","role":"pos","location":"HK-CWB"}"#,
            r#"{"name":"night ops","role":"ops"}"#,
        ],
        read: read_token,
    },
    BodyType {
        name: "TransferIn",
        fields: TRANSFER,
        examples: &[r#"{"from":"HK-WH","to":"HK-CWB","lines":[{"sku":"TEE-M","qty":5}],"note":"weekly restock"}"#],
        read: read_transfer,
    },
    BodyType {
        name: "TransferReceiveIn",
        fields: TRANSFER_RECEIVE,
        examples: &[r#"{"lines":[{"sku":"TEE-M","qty":2}]}"#, "{}", ""],
        read: read_transfer_receive,
    },
    BodyType {
        name: "ReplenishmentIn",
        fields: REPLENISHMENT,
        examples: &[
            r#"{"location":"HK-CWB","lines":[{"sku":"TEE-M","qty":3}],"from":"HK-WH","note":"running low"}"#,
            r#"{"location":"HK-CWB","lines":[{"sku":"SNKR","qty":1}]}"#,
        ],
        read: read_replenishment,
    },
    BodyType { name: "ApproveIn", fields: APPROVE, examples: &[r#"{"from":"HK-WH"}"#, "{}", ""], read: read_approve },
    BodyType { name: "RejectIn", fields: REJECT, examples: &[r#"{"reason":"no budget"}"#, ""], read: read_reject },
    BodyType {
        name: "ImportLineIn",
        fields: IMPORT_LINE,
        examples: &[
            r#"{"location":"HK-CWB","sku":"TEE-M","qty":10,"unit_cost":6500}"#,
            r#"{"op":"adjust","location":"HK-CWB","sku":"TEE-M","delta":-1,"reason":"loss"}"#,
            r#"{"location":"HK-CWB","sku":"TEE-M","counted":7,"reason":"count","note":"spot check"}"#,
        ],
        read: read_import_line,
    },
    BodyType { name: "Empty", fields: &[], examples: &["{}", ""], read: read_empty },
];

/// The type called `name`.
pub fn by_name(name: &str) -> &'static BodyType {
    TYPES.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no request type {name}"))
}

/// Reads `body` as `kind` and checks the answer: `Ok`, or an error a client caused (a 4xx).
/// A panic or a 5xx is a bug.
pub fn check(kind: &BodyType, body: &[u8], c: &mut Cursor) {
    match (kind.read)(body, c) {
        Ok(()) => {
            // Only an object, or no body where the type has a default, is ever accepted.
            let trimmed = body.trim_ascii_start();
            assert!(
                body.is_empty() || trimmed.first() == Some(&b'{'),
                "{} accepted a body that is not an object: {:?}",
                kind.name,
                String::from_utf8_lossy(body)
            );
        }
        Err(error) => {
            let status = error.parts().status.as_u16();
            assert!(
                (400..500).contains(&status),
                "{} answered {status} ({error}) to the body {:?}",
                kind.name,
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_accepted() {
        for kind in TYPES {
            for example in kind.examples {
                // The first path code and caller: HK-CWB, the admin.
                let read = (kind.read)(example.as_bytes(), &mut Cursor::new(&[0; 8]));
                assert!(read.is_ok(), "{} refused its example {example}: {read:?}", kind.name);
            }
        }
    }

    #[test]
    fn bad_bodies_are_client_errors() {
        for kind in TYPES {
            for body in ["[]", "{", "{\"x\":1}", "\u{0}", "{\"lines\":[{\"qty\":-1}]}"] {
                let read = (kind.read)(body.as_bytes(), &mut Cursor::new(&[0; 8]));
                let status = read.err().map(|e| e.parts().status.as_u16());
                assert!(status.is_some_and(|s| (400..500).contains(&s)), "{} and {body}: {status:?}", kind.name);
            }
        }
    }
}
