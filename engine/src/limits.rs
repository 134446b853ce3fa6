//! Every bound the engine enforces, in one place.
//!
//! Names carry the qualifier last (`lines_per_request_max`) so a reader can grep for `_max`.
//! The HTTP front validates against the same constants; the engine re-checks them because it
//! is the last line of defence for what reaches the log.

/// Lines in one reservation, transfer or import record.
pub const LINES_PER_REQUEST_MAX: usize = 100;
/// Units on one line (SPEC §3: `qty` 1..=1,000,000).
pub const LINE_QTY_MAX: u32 = 1_000_000;
/// Magnitude of an adjustment delta or a counted quantity.
pub const ADJUST_QTY_MAX: i64 = 1_000_000_000;
/// Length of a SKU, location or lot code (SPEC §2: `[A-Za-z0-9._-]{1,64}`).
pub const CODE_LEN_MAX: usize = 64;
/// Length of a channel name (`web`, `app`, `pos`, ...).
pub const CHANNEL_LEN_MAX: usize = 32;
/// Length of a customer reference carried on a reservation.
pub const CUSTOMER_LEN_MAX: usize = 128;
/// Length of an `Idempotency-Key` (SPEC §4: 1..=128 printable chars).
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
/// Length of an actor name (token name) recorded in the audit trail.
pub const ACTOR_LEN_MAX: usize = 128;
/// Length of a free-text note or order reference.
pub const NOTE_LEN_MAX: usize = 512;
/// Length of a display name of a SKU or location.
pub const NAME_LEN_MAX: usize = 256;
/// Attributes on one SKU, and the length of each key and value.
pub const ATTRIBUTES_MAX: usize = 64;
pub const ATTRIBUTE_LEN_MAX: usize = 256;
/// Channels one location sells to.
pub const CHANNELS_PER_LOCATION_MAX: usize = 16;
/// Lots tracked in one stock cell.
pub const LOTS_PER_CELL_MAX: usize = 256;
/// Reservation time-to-live in seconds (SPEC §4: 1..=86,400, default 600).
pub const TTL_SECONDS_MAX: u32 = 86_400;
pub const TTL_SECONDS_DEFAULT: u32 = 600;
/// Unit cost in minor currency units.
pub const UNIT_COST_MAX: u64 = 1_000_000_000_000;
/// Bytes of one bulk-import body (`POST /v1/stock/import`, streamed, never held whole).
pub const IMPORT_BODY_BYTES_MAX: usize = 2 << 30;
/// Bytes of one import line; a longer line is rejected on its own, the import goes on.
pub const IMPORT_LINE_BYTES_MAX: usize = 64 << 10;
/// Rejected lines an import report lists; past it only the counts grow.
pub const IMPORT_ERRORS_MAX: usize = 1000;
/// How long idempotency keys and their results are kept (SPEC §3: 24 h).
pub const IDEMPOTENCY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// How long finished (released, expired, fulfilled, cancelled) reservations stay readable
/// before they are pruned from memory.
pub const FINISHED_RESERVATION_RETENTION_MS: i64 = 60 * 60 * 1000;
/// Finished reservations kept per shard; past it the oldest are pruned at once, so memory
/// stays bounded however fast holds come and go.
pub const FINISHED_RESERVATIONS_PER_SHARD_MAX: usize = 4096;
/// Expiries released per shard in one sweep step, so a sweep never holds a shard for long.
pub const EXPIRIES_PER_SWEEP_STEP_MAX: usize = 1024;
/// Flash sales kept at once.
pub const FLASH_SALES_MAX: usize = 10_000;
/// Units one customer may hold or buy in one flash sale.
pub const PER_CUSTOMER_LIMIT_MAX: u32 = 1_000;
/// Longest flash sale, start to end (31 days).
pub const FLASH_SALE_WINDOW_MS_MAX: i64 = 31 * 24 * 60 * 60 * 1000;
/// Claims released per sale in one sweep step.
pub const CLAIM_EXPIRIES_PER_SWEEP_STEP_MAX: usize = 4096;
/// Open transfers (held, shipped, partially received); creating more is refused (409) until
/// some finish.
pub const OPEN_TRANSFERS_MAX: usize = 100_000;
/// Finished (received, cancelled) transfers kept; past it the oldest are pruned at once.
pub const FINISHED_TRANSFERS_MAX: usize = 100_000;
/// Open (requested) replenishment requests; more are refused (409) until some are decided.
pub const OPEN_REPLENISHMENTS_MAX: usize = 100_000;
/// Decided (approved, rejected) replenishment requests kept; past it the oldest are pruned.
pub const FINISHED_REPLENISHMENTS_MAX: usize = 100_000;
/// How long finished transfers and decided replenishments stay readable (30 days).
pub const FINISHED_TRANSFER_RETENTION_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// Replenishment suggestions in one page.
pub const SUGGESTIONS_PAGE_MAX: usize = 1000;
/// Shards: a power of two so a hash maps to a shard with a mask.
pub const SHARDS_MAX: usize = 4096;
/// Stock cells one SKU may have (one per location).
pub const LOCATIONS_MAX: usize = 65_536;

const _: () = assert!(LINE_QTY_MAX as i64 <= ADJUST_QTY_MAX);
// A merged line (every line of a request for one cell) still fits a u32.
const _: () = assert!((LINE_QTY_MAX as u64) * (LINES_PER_REQUEST_MAX as u64) <= u32::MAX as u64);
const _: () = assert!(SHARDS_MAX.is_power_of_two());
const _: () = assert!(TTL_SECONDS_DEFAULT <= TTL_SECONDS_MAX);

/// SKUs one availability call may ask about.
pub const AVAILABILITY_SKUS_MAX: usize = 100;
/// Nearby locations one availability answer may list per SKU.
pub const AVAILABILITY_NEARBY_MAX: usize = 50;
