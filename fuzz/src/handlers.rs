//! A server without a socket for the handlers target: the real route table and handlers over
//! an engine in memory (manual clock, nothing logged), seeded with a small catalogue. Each
//! request goes through `router::find` and `handlers::dispatch` as `app.rs` sends it (the
//! role check included); the answer must be a success or a client error, and the engine's
//! invariants must hold after it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use aisle_engine::time::ManualClock;
use aisle_engine::wal::Durability;
use aisle_engine::{Engine, EngineConfig, Storage};
use aisle_server::auth::{Principal, Role, TokenStore};
use aisle_server::budget::Budgets;
use aisle_server::handlers::{dispatch, Call, Reply};
use aisle_server::metrics::Metrics;
use aisle_server::problem::ApiError;
use aisle_server::router;
use aisle_server::shared::App;
use bytes::Bytes;
use tokio::runtime::Runtime;

use crate::bodies::{self, BodyType};
use crate::session::T0;
use crate::{json, Cursor};

/// A request the target can send: method, path template (its `{…}` filled from pools) and
/// the body's type (`None`: no body).
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub body: Option<&'static str>,
}

const fn op(method: &'static str, path: &'static str, body: Option<&'static str>) -> Op {
    Op { method, path, body }
}

/// Every route that takes a body, and the body-less writes that move what they made along
/// (release, cancel).
pub const OPS: &[Op] = &[
    op("PUT", "/v1/locations/{code}", Some("LocationIn")),
    op("PUT", "/v1/skus/{code}", Some("SkuIn")),
    op("POST", "/v1/stock/receive", Some("ReceiveIn")),
    op("POST", "/v1/stock/adjust", Some("AdjustIn")),
    op("PATCH", "/v1/stock/{sku}/{location}", Some("CellPolicyIn")),
    op("POST", "/v1/sourcing/quote", Some("QuoteIn")),
    op("POST", "/v1/reservations", Some("ReserveIn")),
    op("POST", "/v1/reservations/{id}/extend", Some("ExtendIn")),
    op("POST", "/v1/reservations/{id}/commit", Some("CommitIn")),
    op("POST", "/v1/reservations/{id}/fulfill", Some("Empty")),
    op("DELETE", "/v1/reservations/{id}", None),
    op("PUT", "/v1/flash-sales/{code}", Some("FlashSaleIn")),
    op("POST", "/v1/flash-sales/{sale}/claims", Some("ClaimIn")),
    op("POST", "/v1/transfers", Some("TransferIn")),
    op("POST", "/v1/transfers/{id}/ship", Some("Empty")),
    op("POST", "/v1/transfers/{id}/receive", Some("TransferReceiveIn")),
    op("DELETE", "/v1/transfers/{id}", None),
    op("POST", "/v1/replenishments", Some("ReplenishmentIn")),
    op("POST", "/v1/replenishments/{id}/approve", Some("ApproveIn")),
    op("POST", "/v1/replenishments/{id}/reject", Some("RejectIn")),
    op("POST", "/v1/tokens", Some("TokenIn")),
    op("POST", "/v1/ops/snapshot", Some("Empty")),
];

/// The catalogue every run starts from: two locations, two SKUs with stock, a running flash
/// sale, reservations 1 (active) and 2 (committed), transfers 1 (held) and 2 (shipped), and a
/// replenishment request (1).
const SEED: &[(&str, &str, &str)] = &[
    (
        "PUT",
        "/v1/locations/HK-WH",
        r#"{"name":"Tsuen Wan DC","kind":"warehouse","lat":22.37,"lon":114.11,"channels":["web","pos","app"],"ships":true}"#,
    ),
    (
        "PUT",
        "/v1/locations/HK-CWB",
        r#"{"name":"Causeway Bay","kind":"store","lat":22.28,"lon":114.18,"channels":["web","pos"],"pickup":true,"ships":true}"#,
    ),
    ("PUT", "/v1/skus/TEE-M", r#"{"name":"Linen tee, M","price":19900}"#),
    ("PUT", "/v1/skus/SNKR", r#"{"name":"Runner","price":99900}"#),
    ("POST", "/v1/stock/receive", r#"{"location":"HK-WH","sku":"TEE-M","qty":100,"unit_cost":6500}"#),
    (
        "POST",
        "/v1/stock/receive",
        r#"{"location":"HK-CWB","sku":"TEE-M","qty":10,"lot":{"code":"L1","expires_on":"2027-11-30"}}"#,
    ),
    ("POST", "/v1/stock/receive", r#"{"location":"HK-WH","sku":"SNKR","qty":40}"#),
    (
        "PUT",
        "/v1/flash-sales/DROP",
        r#"{"sku":"SNKR","location":"HK-WH","quantity":20,"starts_at":"2026-11-11T00:00:00Z","ends_at":"2026-11-12T00:00:00Z"}"#,
    ),
    ("POST", "/v1/reservations", r#"{"channel":"web","lines":[{"sku":"TEE-M","qty":2,"location":"HK-WH"}]}"#),
    ("POST", "/v1/transfers", r#"{"from":"HK-WH","to":"HK-CWB","lines":[{"sku":"TEE-M","qty":5}]}"#),
    ("POST", "/v1/replenishments", r#"{"location":"HK-CWB","lines":[{"sku":"TEE-M","qty":3}]}"#),
    ("POST", "/v1/reservations", r#"{"channel":"pos","lines":[{"sku":"TEE-M","qty":1,"location":"HK-CWB"}]}"#),
    ("POST", "/v1/reservations/2/commit", r#"{"order_ref":"order-2"}"#),
    ("POST", "/v1/transfers", r#"{"from":"HK-WH","to":"HK-CWB","lines":[{"sku":"SNKR","qty":2}]}"#),
    ("POST", "/v1/transfers/2/ship", ""),
];

/// What the servers of one run share: the token store (in a temporary directory, on tmpfs
/// where there is one, as creating a token rewrites its file), the metrics registry and one
/// caller per role. Dropping it removes the directory.
pub struct Shared {
    tokens: Arc<TokenStore>,
    metrics: Metrics,
    principals: Vec<Principal>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("principals", &self.principals).finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new() -> Self {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary directory for the token store");
        let tokens = Arc::new(TokenStore::open(dir.path(), None).expect("an empty token store opens"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let make = |name: &str, role, channel: Option<&str>, location: Option<&str>| {
            let made = runtime
                .block_on(tokens.create(name.into(), role, channel.map(str::to_owned), location.map(str::to_owned)))
                .expect("the token is created");
            tokens.authenticate(&made.secret).expect("a token just made authenticates")
        };
        let principals = vec![
            make("fuzz-admin", Role::Admin, None, None),
            make("fuzz-web", Role::Channel, Some("web"), None),
            make("fuzz-till", Role::Pos, None, Some("HK-CWB")),
            make("fuzz-ops", Role::Ops, None, None),
        ];
        let metrics = Metrics::new(dir.path().to_owned()).expect("the metrics registry");
        Shared { tokens, metrics, principals, _dir: dir }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

/// One server: a fresh engine seeded with [`SEED`].
pub struct Server<'s> {
    runtime: Runtime,
    app: Arc<App>,
    clock: ManualClock,
    shared: &'s Shared,
    /// Where a logged server's log and snapshots are, and how it was configured (to open a
    /// replica on them).
    logged: Option<(Storage, EngineConfig)>,
}

impl std::fmt::Debug for Server<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("app", &self.app).finish_non_exhaustive()
    }
}

impl<'s> Server<'s> {
    /// A server whose engine logs nothing.
    pub fn new(shared: &'s Shared) -> Self {
        Server::open(shared, Durability::None)
    }

    /// A server whose engine logs every write (fsync durability on in-memory files), so that
    /// [`Server::check_replay`] can recover a replica from its log and snapshots.
    pub fn logged(shared: &'s Shared) -> Self {
        Server::open(shared, Durability::Fsync)
    }

    fn open(shared: &'s Shared, durability: Durability) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let clock = ManualClock::new(T0);
        let config = EngineConfig::manual(durability, Arc::new(clock.clone()));
        // No document store: the audit trail is a projection, not what replay must rebuild.
        let (storage, _, _) = Storage::memory();
        let storage = Storage { documents: None, ..storage };
        let logged = (durability != Durability::None).then(|| (storage.clone(), config.clone()));
        let (engine, _) = Engine::open(config, storage).expect("an engine in memory opens");
        let budgets = Budgets::new(0, 0, 1);
        let app = Arc::new(App::new(engine, shared.tokens.clone(), shared.metrics.clone(), 1 << 20, budgets));
        let server = Server { runtime, app, clock, shared, logged };
        let admin = &shared.principals[0];
        for (method, path, body) in SEED {
            let answer = server.send(method, path, body.as_bytes().to_vec(), admin, None);
            assert!(answer.is_ok(), "seeding {method} {path}: {answer:?}");
        }
        server
    }

    pub fn engine(&self) -> &Engine {
        &self.app.engine
    }

    /// Sends one request as `principal`, as `app.rs` would after reading it.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        principal: &Principal,
        key: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let matched = router::find(method, path)?;
        let route = matched.route;
        if !route.area.allows(principal.role) {
            return Err(ApiError::Forbidden(format!("a {} token may not {method} {path}", principal.role.as_str())));
        }
        let mut hash = DefaultHasher::new();
        (method, path, &body).hash(&mut hash);
        let call = Call {
            params: matched.params,
            query: None,
            body: Bytes::from(body),
            principal: Some(principal.clone()),
            idempotency_key: key.map(|k| format!("{}.{k}", principal.id)),
            fingerprint: hash.finish(),
            request: None,
        };
        self.runtime.block_on(dispatch(&self.app, route, call))
    }

    /// Runs the requests a script asks for, checking each answer and the invariants after it.
    pub fn run(&self, c: &mut Cursor) {
        let principals = &self.shared.principals;
        for _ in 0..=c.below(12) {
            if c.one_in(10) {
                self.tick(c);
                continue;
            }
            let op = *c.pick(OPS);
            let path = fill(op.path, c);
            let body = match op.body {
                Some(name) => body(bodies::by_name(name), c),
                None => Vec::new(),
            };
            // Mostly the admin, so most requests pass the role check and reach the handler.
            let principal = if c.one_in(6) { c.pick(principals) } else { &principals[0] };
            let key = c.one_in(4).then(|| *c.pick(&["k1", "k2", "k3"]));
            let answer = self.send(op.method, &path, body.clone(), principal, key);
            let what =
                || format!("{} {path} as {} with {:?}", op.method, principal.name, String::from_utf8_lossy(&body));
            match &answer {
                Ok(reply) => {
                    let status = reply.status.as_u16();
                    assert!((200..300).contains(&status), "{} answered {status}", what());
                    let json = match reply.body.is_empty() {
                        true => serde_json::Value::Null,
                        false => serde_json::from_slice(&reply.body)
                            .unwrap_or_else(|e| panic!("{} answered a body that is not JSON: {e}", what())),
                    };
                    // The token store is shared by every server of the run: revoke what the
                    // request made, so the store (rewritten on every change) stays small.
                    if let Some(id) = json.get("secret").and(json.get("id")).and_then(|id| id.as_str()) {
                        let revoked = self.runtime.block_on(self.shared.tokens.revoke(id));
                        assert!(matches!(revoked, Ok(true)), "revoking the token just made: {revoked:?}");
                    }
                }
                Err(error) => {
                    let status = error.parts().status.as_u16();
                    assert!(status < 500, "{} answered {status}: {error}", what());
                }
            }
            if let Err(broken) = self.engine().check_invariants() {
                panic!("after {}: {broken}", what());
            }
        }
    }

    /// Log and snapshots determine the state: closes a logged server's engine, recovers a
    /// replica from what it wrote and compares the two. Does nothing for a server that logs
    /// nothing.
    pub fn check_replay(self) {
        let Some((storage, config)) = self.logged else { return };
        let engine = self.app.engine.clone();
        let live = engine.canonical_image();
        drop(self.app);
        engine.close().expect("a logged engine in memory closes");
        let (replica, _) = Engine::open(config, storage).unwrap_or_else(|e| panic!("recovering the replica: {e}"));
        assert!(replica.location("HK-WH").is_some(), "the replica replayed the seed");
        let recovered = replica.canonical_image();
        assert!(recovered == live, "the replica differs from the engine that wrote its log:\n{live:?}\n{recovered:?}");
        if let Err(broken) = replica.check_invariants() {
            panic!("the replica breaks an invariant: {broken}");
        }
    }

    /// Moves the clock and runs the sweeper's logged work (expiries, pruning).
    fn tick(&self, c: &mut Cursor) {
        let ms = *c.pick(&[1_000, 300_000, 3_600_000, 2 * 86_400_000]);
        self.clock.advance_ms(ms);
        let engine = self.engine();
        engine.expire_due().expect("expiring holds in memory cannot fail");
        engine.prune_due().expect("pruning in memory cannot fail");
        if let Err(broken) = engine.check_invariants() {
            panic!("after moving the clock by {ms} ms: {broken}");
        }
    }
}

/// A path with its `{…}` parameters filled: mostly what the seed made, sometimes what it
/// did not or what names nothing.
fn fill(template: &str, c: &mut Cursor) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("a template's braces pair up");
        let value = match &rest[open + 1..close] {
            "code" => c.pick(&["HK-CWB", "HK-WH", "TEE-M", "SNKR", "DROP", "NEW-1", "A%20b", "é"]).to_string(),
            "sku" => c.pick(&["TEE-M", "SNKR", "NEW-1"]).to_string(),
            "location" => c.pick(&["HK-CWB", "HK-WH", "NEW-1"]).to_string(),
            "sale" => c.pick(&["DROP", "NEW-1"]).to_string(),
            _ => match c.below(8) {
                6 => "0".into(),
                7 => c.pick(&["99999999999999999999", "-1", "x"]).to_string(),
                n => (n + 1).to_string(),
            },
        };
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A body for `kind`: usually generated from its fields, sometimes one of its examples edited.
pub fn body(kind: &BodyType, c: &mut Cursor) -> Vec<u8> {
    if c.one_in(16) {
        Vec::new()
    } else if c.one_in(5) && !kind.examples.is_empty() {
        let mut bytes = c.pick(kind.examples).as_bytes().to_vec();
        json::edit(&mut bytes, c);
        bytes
    } else {
        let value = json::object(kind.fields, c);
        json::render(&value, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_every_parameter() {
        let mut c = Cursor::new(&[]);
        for op in OPS {
            let path = fill(op.path, &mut c);
            assert!(!path.contains('{'), "{path}");
            assert!(router::find(op.method, &path).is_ok(), "{} {path} has a route", op.method);
        }
    }

    /// Found by this target in a debug build: `delta.abs()` overflowed on i64::MIN (a panic;
    /// in release builds the value passed the range check and was refused later as a 409).
    #[test]
    fn an_adjustment_by_i64_min_is_an_invalid_request() {
        let shared = Shared::new();
        let server = Server::new(&shared);
        for delta in [i64::MIN, i64::MAX, -1_000_000_001] {
            let body = format!(r#"{{"location":"HK-WH","sku":"TEE-M","delta":{delta},"reason":"loss"}}"#);
            let answer = server.send("POST", "/v1/stock/adjust", body.into_bytes(), &shared.principals[0], None);
            let status = answer.err().map(|e| e.parts().status.as_u16());
            assert_eq!(status, Some(422), "a delta of {delta}");
        }
    }

    #[test]
    fn the_seeded_server_answers_and_keeps_its_invariants() {
        let shared = Shared::new();
        let server = Server::new(&shared);
        // A script of zeros: one request, the first op with its plain body.
        server.run(&mut Cursor::new(&[0; 512]));
        assert!(server.engine().location("HK-WH").is_some());
        let admin = &shared.principals[0];
        let made = server.send("POST", "/v1/reservations/1/commit", Vec::new(), admin, None);
        assert!(made.is_ok(), "the seeded reservation commits: {made:?}");
    }
}
