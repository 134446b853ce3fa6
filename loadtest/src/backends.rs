//! The same flash sale on Redis 7 and on PostgreSQL, for comparison with aisle.
//!
//! Redis: one Lua script (sent with EVALSHA) checks the customer's count against the limit
//! and the remaining units, then decrements and counts, atomically. Durability is whatever
//! the server's `appendfsync` says; the report names it.
//!
//! PostgreSQL: one transaction per claim, `synchronous_commit = on`: the customer's row is
//! inserted or raised only while it stays within the limit (`INSERT ... ON CONFLICT DO
//! UPDATE ... WHERE`), then the one hot sale row is decremented only if enough remain.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio_postgres::{Client, NoTls, Statement};

use crate::check::FlashFinal;
use crate::flash::{Effect, FlashShared};
use crate::stats::Outcome;
use crate::BoxError;

/// Returns the units left after the claim, -1 when sold out, -2 past the customer's limit.
const CLAIM_LUA: &str = r"
local qty = tonumber(ARGV[2])
local had = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if had + qty > tonumber(ARGV[3]) then return -2 end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left < qty then return -1 end
redis.call('DECRBY', KEYS[1], qty)
redis.call('HINCRBY', KEYS[2], ARGV[1], qty)
return left - qty
";

/// Returns {sum, max} of the units recorded per customer.
const TOTALS_LUA: &str = r"
local sum, max = 0, 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local n = tonumber(v)
  sum = sum + n
  if n > max then max = n end
end
return {sum, max}
";

fn rejected(label: &str) -> (Outcome, Effect) {
    (Outcome::Rejected(label.to_owned()), Effect::Nothing)
}

/// Keys of one run's sale in Redis.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    remaining: String,
    customers: String,
    quantity: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> Self {
        RedisKeys {
            remaining: format!("aisle-lt:{prefix}:remaining"),
            customers: format!("aisle-lt:{prefix}:customers"),
            quantity: format!("aisle-lt:{prefix}:quantity"),
        }
    }
}

/// Opens a connection of its own (one per worker, like the HTTP workers).
pub async fn redis_connect(url: &str, timeout: Duration) -> Result<MultiplexedConnection, BoxError> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(timeout));
    Ok(client.get_multiplexed_async_connection_with_config(&config).await?)
}

/// One worker's Redis connection.
pub struct RedisClaimer {
    conn: MultiplexedConnection,
    keys: RedisKeys,
    script: redis::Script,
}

impl RedisClaimer {
    pub fn new(conn: MultiplexedConnection, keys: RedisKeys) -> Self {
        RedisClaimer { conn, keys, script: redis::Script::new(CLAIM_LUA) }
    }

    pub async fn claim(&mut self, customer: &str, qty: u32, limit: u32) -> (Outcome, Effect) {
        let result: redis::RedisResult<i64> = self
            .script
            .key(&self.keys.remaining)
            .key(&self.keys.customers)
            .arg(customer)
            .arg(qty)
            .arg(limit)
            .invoke_async(&mut self.conn)
            .await;
        match result {
            Ok(n) if n >= 0 => (Outcome::Ok, Effect::Won),
            Ok(-1) => rejected("sold_out"),
            Ok(-2) => rejected("per_customer_limit"),
            Ok(n) => (Outcome::Error(format!("script returned {n}")), Effect::Nothing),
            Err(e) if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() => {
                (Outcome::Error("redis io error".into()), Effect::Unknown)
            }
            Err(e) => (Outcome::Error(format!("redis {:?}", e.kind())), Effect::Nothing),
        }
    }
}

/// Puts the sale into Redis and returns notes on its durability settings.
pub async fn redis_setup(url: &str, shared: &FlashShared) -> Result<Vec<String>, BoxError> {
    let mut conn = redis_connect(url, Duration::from_secs(10)).await?;
    let keys = RedisKeys::new(&shared.prefix);
    let _: () = redis::cmd("SET").arg(&keys.remaining).arg(shared.cfg.quantity).query_async(&mut conn).await?;
    let _: () = redis::cmd("SET").arg(&keys.quantity).arg(shared.cfg.quantity).query_async(&mut conn).await?;
    let _: () = redis::cmd("DEL").arg(&keys.customers).query_async(&mut conn).await?;
    let mut notes = Vec::new();
    for key in ["appendonly", "appendfsync"] {
        let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(key).query_async(&mut conn).await?;
        notes.push(format!("{key} {}", pair.get(1).map(String::as_str).unwrap_or("?")));
    }
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    if let Some(v) = info.lines().find_map(|l| l.strip_prefix("redis_version:")) {
        notes.insert(0, format!("redis {}", v.trim()));
    }
    Ok(notes)
}

/// The `appendfsync` policy the Redis at `url` runs with.
pub fn redis_fsync_of(notes: &[String]) -> Option<&str> {
    notes.iter().find_map(|n| n.strip_prefix("appendfsync "))
}

/// Reads the sale's final state from Redis.
pub async fn redis_final(url: &str, shared: &FlashShared) -> Result<FlashFinal, BoxError> {
    let mut conn = redis_connect(url, Duration::from_secs(30)).await?;
    let keys = RedisKeys::new(&shared.prefix);
    let quantity: i64 = redis::cmd("GET").arg(&keys.quantity).query_async(&mut conn).await?;
    let remaining: i64 = redis::cmd("GET").arg(&keys.remaining).query_async(&mut conn).await?;
    let (sum, max): (i64, i64) = redis::Script::new(TOTALS_LUA).key(&keys.customers).invoke_async(&mut conn).await?;
    Ok(FlashFinal {
        quantity,
        remaining,
        held: 0,
        sold: quantity - remaining,
        per_customer_limit: i64::from(shared.cfg.per_customer_limit),
        status: None,
        customer_units_max: Some(max),
        customer_units_total: Some(sum),
    })
}

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS aisle_lt_sale (
  code text PRIMARY KEY,
  quantity integer NOT NULL,
  remaining integer NOT NULL,
  per_customer_limit integer NOT NULL
);
CREATE TABLE IF NOT EXISTS aisle_lt_claim (
  code text NOT NULL,
  customer text NOT NULL,
  units integer NOT NULL,
  PRIMARY KEY (code, customer)
);";

const PG_CLAIM_CUSTOMER: &str = "
INSERT INTO aisle_lt_claim AS c (code, customer, units) VALUES ($1, $2, $3)
ON CONFLICT (code, customer) DO UPDATE SET units = c.units + EXCLUDED.units
WHERE c.units + EXCLUDED.units <= $4
RETURNING units";

const PG_CLAIM_SALE: &str = "
UPDATE aisle_lt_sale SET remaining = remaining - $2
WHERE code = $1 AND remaining >= $2
RETURNING remaining";

async fn pg_connect(url: &str) -> Result<Client, BoxError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // Ends with the client; its errors surface on the client's calls.
        let _ = connection.await;
    });
    client.batch_execute("SET synchronous_commit = on").await?;
    Ok(client)
}

struct PgConn {
    client: Client,
    customer: Statement,
    sale: Statement,
}

/// One worker's PostgreSQL connection, reopened after a failure.
pub struct PgClaimer {
    url: String,
    limit: i32,
    conn: Option<PgConn>,
}

impl PgClaimer {
    pub async fn connect(url: &str, limit: u32) -> Result<Self, BoxError> {
        let mut c = PgClaimer { url: url.to_owned(), limit: i32::try_from(limit)?, conn: None };
        c.conn = Some(c.open().await?);
        Ok(c)
    }

    async fn open(&self) -> Result<PgConn, BoxError> {
        let client = pg_connect(&self.url).await?;
        let customer = client.prepare(PG_CLAIM_CUSTOMER).await?;
        let sale = client.prepare(PG_CLAIM_SALE).await?;
        Ok(PgConn { client, customer, sale })
    }

    pub async fn claim(&mut self, code: &str, customer: &str, qty: u32) -> (Outcome, Effect) {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            match self.open().await {
                Ok(c) => self.conn = Some(c),
                Err(_) => return (Outcome::Error("connect error".into()), Effect::Nothing),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return (Outcome::Error("connect error".into()), Effect::Nothing);
        };
        let qty = i32::try_from(qty).unwrap_or(i32::MAX);
        match claim_tx(conn, code, customer, qty, self.limit).await {
            Ok(result) => result,
            Err((e, effect)) => {
                let label = match e.code() {
                    Some(state) => format!("postgres {}", state.code()),
                    None => "postgres io error".to_owned(),
                };
                (Outcome::Error(label), effect)
            }
        }
    }
}

/// One claim transaction. An error at COMMIT leaves the outcome unknown; before it, nothing
/// was committed.
async fn claim_tx(
    conn: &mut PgConn,
    code: &str,
    customer: &str,
    qty: i32,
    limit: i32,
) -> Result<(Outcome, Effect), (tokio_postgres::Error, Effect)> {
    let none = |e| (e, Effect::Nothing);
    let tx = conn.client.transaction().await.map_err(none)?;
    if tx.query_opt(&conn.customer, &[&code, &customer, &qty, &limit]).await.map_err(none)?.is_none() {
        tx.rollback().await.map_err(none)?;
        return Ok(rejected("per_customer_limit"));
    }
    if tx.query_opt(&conn.sale, &[&code, &qty]).await.map_err(none)?.is_none() {
        tx.rollback().await.map_err(none)?;
        return Ok(rejected("sold_out"));
    }
    tx.commit().await.map_err(|e| (e, Effect::Unknown))?;
    Ok((Outcome::Ok, Effect::Won))
}

/// Creates the tables (once) and the sale row; returns notes on durability settings.
pub async fn pg_setup(url: &str, shared: &FlashShared) -> Result<Vec<String>, BoxError> {
    let client = pg_connect(url).await?;
    client.batch_execute(PG_SCHEMA).await?;
    let quantity = i32::try_from(shared.cfg.quantity)?;
    let limit = i32::try_from(shared.cfg.per_customer_limit)?;
    client
        .execute(
            "INSERT INTO aisle_lt_sale (code, quantity, remaining, per_customer_limit) VALUES ($1, $2, $2, $3)",
            &[&shared.code, &quantity, &limit],
        )
        .await?;
    let mut notes = Vec::new();
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    notes.push(format!("postgresql {version}"));
    for setting in ["fsync", "synchronous_commit", "wal_sync_method"] {
        let value: String = client.query_one(&format!("SHOW {setting}"), &[]).await?.get(0);
        notes.push(format!("{setting} {value}"));
    }
    Ok(notes)
}

/// `synchronous_commit` and `fsync` from the notes of [`pg_setup`].
pub fn pg_durability_of(notes: &[String]) -> Option<String> {
    let get = |key: &str| notes.iter().find_map(|n| n.strip_prefix(key).map(str::trim));
    Some(format!("synchronous_commit {}, fsync {}", get("synchronous_commit ")?, get("fsync ")?))
}

/// Reads the sale's final state from PostgreSQL.
pub async fn pg_final(url: &str, shared: &FlashShared) -> Result<FlashFinal, BoxError> {
    let client = pg_connect(url).await?;
    let sale = client
        .query_one("SELECT quantity, remaining, per_customer_limit FROM aisle_lt_sale WHERE code = $1", &[&shared.code])
        .await?;
    let totals = client
        .query_one(
            "SELECT COALESCE(SUM(units), 0)::bigint, COALESCE(MAX(units), 0)::bigint FROM aisle_lt_claim WHERE code = $1",
            &[&shared.code],
        )
        .await?;
    let quantity = i64::from(sale.get::<_, i32>(0));
    let remaining = i64::from(sale.get::<_, i32>(1));
    Ok(FlashFinal {
        quantity,
        remaining,
        held: 0,
        sold: quantity - remaining,
        per_customer_limit: i64::from(sale.get::<_, i32>(2)),
        status: None,
        customer_units_max: Some(totals.get(1)),
        customer_units_total: Some(totals.get(0)),
    })
}
