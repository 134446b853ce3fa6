//! [`Engine`]: the handle the rest of aisle holds. It validates requests, turns them into log
//! records, runs them through [`State::execute`], and hands back an [`Ack`] whose LSN the caller
//! waits on (blocking with [`Engine::wait`], or as a future with [`Engine::durable`]) before it
//! tells anyone the write happened. It also owns recovery, snapshots and the expiry sweeper.

mod availability;
mod flash;
mod sourced;
mod transfer;
mod valuation;

use std::cmp::Reverse;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::audit::{AuditLog, MovementPage, MovementQuery};
use crate::catalog::CatalogSection;
use crate::command::{
    Adjust, AdjustChange, CellPolicy, Command, IdempotencyTag, LogRecord, Receive, Reserve, ReserveLine,
};
use crate::docstore::{DocumentStore, MemoryStore, SledStore};
use crate::domains::DomainCaptures;
use crate::error::{EngineError, Entity, FieldError, Result};
use crate::flash::snapshot::FlashCapture;
pub use crate::kernel::Ack;
use crate::limits::*;
use crate::model::{check_channel, check_code, check_text, finish, LocationDef, SkuDef};
use crate::snapshot::{self, IdempotencyImage, IdempotencySection, Image};
use crate::state::{Context, LocId, Sink, State};
use crate::stock::snapshot::StockCapture;
use crate::stock::HoldLedger;
use crate::time::{day_of, Clock, SystemClock, Timestamp};
use crate::view::{CellView, Outcome, ReservationStatus, ReservationView, SkuStock, StockTotals};
use crate::wal::{
    DirStorage, Durability, LogStorage, Lsn, MemStorage, RecoveryReport, Retention, Wal, WalConfig, WalError, WalStats,
};

/// Everything the engine is configured with; built by the binary, validated here.
#[derive(Clone)]
pub struct EngineConfig {
    /// Number of shards (a power of two).
    pub shards: usize,
    pub wal: WalConfig,
    /// Take a snapshot after this many log records (0: never by count).
    pub snapshot_every_records: u64,
    /// Take a snapshot at least this often when anything changed (None: never by time).
    pub snapshot_interval: Option<Duration>,
    /// How often the sweeper releases expired holds (None: only when `expire_due` is called).
    pub expiry_sweep_interval: Option<Duration>,
    pub clock: Arc<dyn Clock>,
    /// Also record holds (reserve, release, expire) in the audit trail, not only stock
    /// movements. Off by default: holds are the hot path and their history is on the
    /// reservation.
    pub audit_holds: bool,
    /// Log segments every consumer has passed are kept at least this long (by their last
    /// write), for the change feed, followers and rebuilding projections.
    pub log_retention: Duration,
    /// ... unless the log takes more than this many bytes: then the oldest passed segments go.
    pub log_retention_bytes: u64,
}

/// How long passed log segments are kept by default.
pub const LOG_RETENTION_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How many bytes of passed log are kept at most by default.
pub const LOG_RETENTION_BYTES_DEFAULT: u64 = 4 << 30;
/// How often the snapshotter applies log retention between snapshots.
const LOG_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("shards", &self.shards)
            .field("durability", &self.wal.durability)
            .field("snapshot_every_records", &self.snapshot_every_records)
            .field("snapshot_interval", &self.snapshot_interval)
            .field("expiry_sweep_interval", &self.expiry_sweep_interval)
            .field("audit_holds", &self.audit_holds)
            .field("log_retention", &self.log_retention)
            .field("log_retention_bytes", &self.log_retention_bytes)
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 64,
            wal: WalConfig::default(),
            // A snapshot pauses writers for the copy (~0.1 s per 250,000 live holds); replay runs
            // at ~1 M records/s, so this bounds recovery to a few seconds.
            snapshot_every_records: 4_000_000,
            snapshot_interval: Some(Duration::from_secs(300)),
            expiry_sweep_interval: Some(Duration::from_millis(100)),
            clock: Arc::new(SystemClock),
            audit_holds: false,
            log_retention: LOG_RETENTION_DEFAULT,
            log_retention_bytes: LOG_RETENTION_BYTES_DEFAULT,
        }
    }
}

impl EngineConfig {
    /// A configuration for tests: manual sweeps and snapshots, the given durability.
    pub fn manual(durability: Durability, clock: Arc<dyn Clock>) -> Self {
        EngineConfig {
            shards: 16,
            wal: WalConfig { durability, ..WalConfig::default() },
            snapshot_every_records: 0,
            snapshot_interval: None,
            expiry_sweep_interval: None,
            clock,
            audit_holds: false,
            log_retention: LOG_RETENTION_DEFAULT,
            log_retention_bytes: LOG_RETENTION_BYTES_DEFAULT,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !self.shards.is_power_of_two() || self.shards > SHARDS_MAX {
            return Err(format!("shards must be a power of two up to {SHARDS_MAX}"));
        }
        self.wal.validate().map_err(|e| e.to_string())
    }
}

/// Where the engine keeps its files: the log's segments and the snapshots.
#[derive(Clone, Debug)]
pub struct Storage {
    pub wal: Arc<dyn LogStorage>,
    pub snapshots: Arc<dyn LogStorage>,
    /// Where the audit trail is indexed; none means no trail.
    pub documents: Option<Arc<dyn DocumentStore>>,
}

impl Storage {
    /// `<data_dir>/wal` and `<data_dir>/snapshots` on the real file system.
    pub fn dir(data_dir: &Path) -> std::io::Result<Self> {
        Ok(Storage {
            wal: Arc::new(DirStorage::open(data_dir.join("wal"))?),
            snapshots: Arc::new(DirStorage::open(data_dir.join("snapshots"))?),
            documents: Some(Arc::new(SledStore::open(&data_dir.join("docs"))?)),
        })
    }

    /// In memory, for tests that simulate crashes.
    pub fn memory() -> (Self, MemStorage, MemStorage) {
        let wal = MemStorage::default();
        let snapshots = MemStorage::default();
        let documents: Arc<dyn DocumentStore> = Arc::new(MemoryStore::default());
        let storage =
            Storage { wal: Arc::new(wal.clone()), snapshots: Arc::new(snapshots.clone()), documents: Some(documents) };
        (storage, wal, snapshots)
    }
}

/// What start-up found and did.
#[derive(Debug)]
pub struct OpenReport {
    pub snapshot: Option<String>,
    pub snapshot_lsn: Lsn,
    pub skipped_snapshots: Vec<String>,
    pub wal: RecoveryReport,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// A reservation request as a caller states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    pub channel: String,
    pub customer: Option<String>,
    pub ttl_seconds: Option<u32>,
    pub lines: Vec<ReserveLine>,
}

/// Engine-wide counters for metrics and readiness.
#[derive(Debug, Clone)]
pub struct EngineStats {
    pub active_reservations: i64,
    pub last_lsn: Lsn,
    pub durable_lsn: Lsn,
    pub last_snapshot_lsn: Lsn,
    pub snapshots_taken: u64,
    /// Snapshots that failed since start (the snapshotter retries at its next turn).
    pub snapshot_failures: u64,
    /// When the newest snapshot on disk was taken (engine clock): the last one written, or
    /// the one recovered from; 0 while there is none.
    pub last_snapshot_at: Timestamp,
    pub last_snapshot_duration: Duration,
    pub wal: WalStats,
    pub read_only_reason: Option<String>,
    /// Movements stored in the audit trail since start.
    pub audit_movements_written: u64,
    /// Why the audit trail could not be written, if it could not.
    pub audit_failure: Option<String>,
    /// The LSN the stored audit trail is complete through (moved by each snapshot).
    pub audit_applied_lsn: Lsn,
    /// Bytes of log kept on disk, and the LSN of the oldest record kept.
    pub log_retained_bytes: u64,
    pub log_oldest_retained_lsn: Lsn,
}

/// What a finished snapshot covered.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub file: String,
    pub lsn: Lsn,
    pub bytes: usize,
    pub cells: usize,
    pub wal_segments_removed: usize,
    pub duration: Duration,
    /// How long every write waited while the state was copied (all shard locks held).
    pub pause: Duration,
}

pub(crate) struct Inner {
    pub(crate) state: State,
    pub(crate) wal: Wal,
    pub(crate) config: EngineConfig,
    storage: Storage,
    snapshot_lock: Mutex<()>,
    last_snapshot_lsn: AtomicU64,
    snapshots_taken: AtomicU64,
    snapshot_failures: AtomicU64,
    last_snapshot_at: AtomicI64,
    last_snapshot_nanos: AtomicU64,
    stopping: AtomicBool,
    wakeup: (Mutex<()>, Condvar),
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The inventory engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.inner.config).finish()
    }
}

pub(crate) const SYSTEM_ACTOR: &str = "system";
/// How often the sweeper looks for things past their retention.
const PRUNE_CHECK_INTERVAL: Duration = Duration::from_secs(60);

impl Engine {
    /// Recovers from the newest valid snapshot plus the log after it, then starts the
    /// background sweeper and snapshotter the configuration asks for.
    pub fn open(config: EngineConfig, storage: Storage) -> std::result::Result<(Engine, OpenReport), OpenError> {
        config.validate().map_err(OpenError::Config)?;
        let started = Instant::now();
        let loaded = snapshot::load_newest(&storage.snapshots)?;
        let audit = match (&storage.documents, config.wal.durability) {
            (Some(store), Durability::Fsync | Durability::Async) => {
                Some(AuditLog::start(store.clone(), config.audit_holds))
            }
            _ => None,
        };
        let state = State::new(config.shards, audit);
        let snapshot_lsn = loaded.image.as_ref().map_or(0, |image| image.lsn);
        if let Some(image) = &loaded.image {
            restore(&state, image);
        }
        let mut replay =
            |lsn: Lsn, bytes: &[u8]| -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let record = crate::command::decode(bytes)?;
                state.execute(&record, Sink::Replay(lsn))?;
                Ok(())
            };
        let (wal, wal_report) = Wal::open(storage.wal.clone(), config.wal.clone(), snapshot_lsn, &mut replay)?;
        if let Some(audit) = &state.audit {
            audit.follow(wal.durable_watch());
        }
        let inner = Arc::new(Inner {
            state,
            wal,
            config,
            storage,
            snapshot_lock: Mutex::new(()),
            last_snapshot_lsn: AtomicU64::new(snapshot_lsn),
            snapshots_taken: AtomicU64::new(0),
            snapshot_failures: AtomicU64::new(0),
            last_snapshot_at: AtomicI64::new(loaded.image.as_ref().map_or(0, |image| image.taken_at)),
            last_snapshot_nanos: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            wakeup: (Mutex::new(()), Condvar::new()),
            threads: Mutex::new(Vec::new()),
        });
        let engine = Engine { inner };
        engine.start_background();
        let report = OpenReport {
            snapshot: loaded.file,
            snapshot_lsn,
            skipped_snapshots: loaded.skipped,
            wal: wal_report,
            duration: started.elapsed(),
        };
        Ok((engine, report))
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.config.clock.now()
    }

    /// Logs and applies one command built at time `at`.
    pub(crate) fn submit(&self, ctx: Context<'_>, at: Timestamp, command: Command) -> Result<Ack<Outcome>> {
        check_context(&ctx)?;
        self.inner.wal.admit()?;
        if self.inner.state.audit.as_ref().is_some_and(|audit| !audit.has_room()) {
            return Err(EngineError::Busy);
        }
        let record = LogRecord {
            at,
            actor: ctx.actor.to_owned(),
            idempotency: ctx.idempotency.map(|(key, fingerprint)| IdempotencyTag { key: key.to_owned(), fingerprint }),
            command,
        };
        let (value, lsn) = self.inner.state.execute(&record, Sink::Log(&self.inner.wal))?;
        Ok(Ack { value, lsn })
    }

    /// Blocks until the write is durable (per the durability mode), then returns its value.
    pub fn wait<T>(&self, ack: Ack<T>) -> Result<T> {
        if let Some(lsn) = ack.lsn {
            self.inner.wal.wait_durable(lsn)?;
        }
        Ok(ack.value)
    }

    /// Resolves when `lsn` is durable; for async callers (the HTTP front). Owned, so it can be
    /// moved into a task; it needs no runtime (a plain `std::task::Waker` drives it).
    pub fn durable(&self, lsn: Lsn) -> crate::wal::Durable {
        self.inner.wal.durable(lsn)
    }

    pub fn put_location(&self, ctx: Context<'_>, def: LocationDef) -> Result<Ack<bool>> {
        def.validate().map_err(EngineError::Invalid)?;
        let ack = self.submit(ctx, self.now(), Command::PutLocation(def))?;
        Ok(ack.map(|outcome| matches!(outcome, Outcome::Put { created: true })))
    }

    pub fn put_sku(&self, ctx: Context<'_>, def: SkuDef) -> Result<Ack<bool>> {
        def.validate().map_err(EngineError::Invalid)?;
        let ack = self.submit(ctx, self.now(), Command::PutSku(def))?;
        Ok(ack.map(|outcome| matches!(outcome, Outcome::Put { created: true })))
    }

    pub fn receive(&self, ctx: Context<'_>, receive: Receive) -> Result<Ack<CellView>> {
        let mut errors = Vec::new();
        check_cell_ref(&receive.sku, &receive.location, &mut errors);
        if receive.qty == 0 || receive.qty > LINE_QTY_MAX {
            errors.push(FieldError::new("qty", format!("must be 1 to {LINE_QTY_MAX}")));
        }
        if receive.unit_cost.is_some_and(|cost| cost > UNIT_COST_MAX) {
            errors.push(FieldError::new("unit_cost", format!("must be at most {UNIT_COST_MAX}")));
        }
        if let Some(lot) = &receive.lot {
            check_code("lot.code", &lot.code, &mut errors);
        }
        if let Some(reason) = &receive.reason {
            check_text("reason", reason, NOTE_LEN_MAX, &mut errors);
        }
        finish(errors).map_err(EngineError::Invalid)?;
        into_cell(self.submit(ctx, self.now(), Command::Receive(receive))?)
    }

    pub fn adjust(&self, ctx: Context<'_>, adjust: Adjust) -> Result<Ack<CellView>> {
        let mut errors = Vec::new();
        check_cell_ref(&adjust.sku, &adjust.location, &mut errors);
        match adjust.change {
            // Not `delta.abs()`: it overflows on i64::MIN (a panic in debug builds; in release
            // it stays negative and passed this check).
            AdjustChange::Delta(delta) if delta == 0 || !(-ADJUST_QTY_MAX..=ADJUST_QTY_MAX).contains(&delta) => {
                errors.push(FieldError::new("delta", format!("must be non-zero and at most {ADJUST_QTY_MAX} in size")))
            }
            AdjustChange::Counted(counted) if !(0..=ADJUST_QTY_MAX).contains(&counted) => {
                errors.push(FieldError::new("counted", format!("must be 0 to {ADJUST_QTY_MAX}")))
            }
            _ => {}
        }
        if let Some(lot) = &adjust.lot {
            check_code("lot.code", &lot.code, &mut errors);
        }
        if let Some(note) = &adjust.note {
            check_text("note", note, NOTE_LEN_MAX, &mut errors);
        }
        finish(errors).map_err(EngineError::Invalid)?;
        into_cell(self.submit(ctx, self.now(), Command::Adjust(adjust))?)
    }

    pub fn set_cell_policy(&self, ctx: Context<'_>, policy: CellPolicy) -> Result<Ack<CellView>> {
        let mut errors = Vec::new();
        check_cell_ref(&policy.sku, &policy.location, &mut errors);
        for (field, value) in [
            ("safety_stock", policy.safety_stock),
            ("reorder_point", policy.reorder_point),
            ("reorder_qty", policy.reorder_qty),
        ] {
            if value.is_some_and(|v| !(0..=ADJUST_QTY_MAX).contains(&v)) {
                errors.push(FieldError::new(field, format!("must be 0 to {ADJUST_QTY_MAX}")));
            }
        }
        finish(errors).map_err(EngineError::Invalid)?;
        into_cell(self.submit(ctx, self.now(), Command::SetCellPolicy(policy))?)
    }

    /// Holds stock on every line or on none (lines for the same cell are merged).
    pub fn reserve(&self, ctx: Context<'_>, request: ReserveRequest) -> Result<Ack<ReservationView>> {
        let ReserveRequest { channel, customer, ttl_seconds, lines } = request;
        let mut errors = Vec::new();
        let ttl = check_hold_terms(&channel, customer.as_deref(), ttl_seconds, &mut errors);
        let lines = merge_lines(lines, false, &mut errors);
        finish(errors).map_err(EngineError::Invalid)?;
        let at = self.now();
        let id = self.inner.state.stock.next_reservation_id.fetch_add(1, Ordering::Relaxed);
        let command =
            Command::Reserve(Reserve { id, channel, customer, expires_at: at + i64::from(ttl) * 1000, lines });
        into_reservation(self.submit(ctx, at, command)?)
    }

    /// Moves an active reservation's expiry to `ttl_seconds` from now.
    pub fn extend(&self, ctx: Context<'_>, id: u64, ttl_seconds: u32) -> Result<Ack<ReservationView>> {
        if ttl_seconds == 0 || ttl_seconds > TTL_SECONDS_MAX {
            return Err(EngineError::invalid("ttl_seconds", format!("must be 1 to {TTL_SECONDS_MAX}")));
        }
        let at = self.now();
        let expires_at = at + i64::from(ttl_seconds) * 1000;
        into_reservation(self.submit(ctx, at, Command::Extend { id, expires_at })?)
    }

    /// An active reservation becomes committed (an order was placed for it).
    pub fn commit(&self, ctx: Context<'_>, id: u64, order_ref: Option<String>) -> Result<Ack<ReservationView>> {
        if let Some(order_ref) = &order_ref {
            let mut errors = Vec::new();
            check_text("order_ref", order_ref, NOTE_LEN_MAX, &mut errors);
            finish(errors).map_err(EngineError::Invalid)?;
        }
        into_reservation(self.submit(ctx, self.now(), Command::Commit { id, order_ref })?)
    }

    /// A committed reservation's units leave: `on_hand` and `committed` drop.
    pub fn fulfill(&self, ctx: Context<'_>, id: u64) -> Result<Ack<ReservationView>> {
        into_reservation(self.submit(ctx, self.now(), Command::Fulfill { id })?)
    }

    /// Releases an active reservation or cancels a committed one; repeating it is harmless.
    pub fn release(&self, ctx: Context<'_>, id: u64) -> Result<Ack<ReservationView>> {
        loop {
            let status = self
                .inner
                .state
                .stock
                .reservations
                .get(&id)
                .map(|r| r.status)
                .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
            let command = match status {
                ReservationStatus::Active => Command::Release { id },
                ReservationStatus::Committed => Command::Cancel { id },
                _ => {
                    let view = self
                        .reservation(id)
                        .ok_or_else(|| EngineError::not_found(Entity::Reservation, id.to_string()))?;
                    return Ok(Ack { value: view, lsn: None });
                }
            };
            match self.submit(ctx, self.now(), command) {
                // It changed state under us (expired, committed): look again.
                Err(EngineError::Conflict(crate::error::Conflict::ReservationState { .. })) => continue,
                other => return into_reservation(other?),
            }
        }
    }

    /// Releases holds whose `expires_at` has passed; returns how many expired.
    pub fn expire_due(&self) -> Result<usize> {
        let state = &self.inner.state;
        let now = self.now();
        let mut expired = 0;
        for shard in 0..state.stock.shards.len() {
            let due = pop_due(&mut state.stock.shards[shard].lock().expiries, now, EXPIRIES_PER_SWEEP_STEP_MAX);
            let (done, failed) = self.expire_each(&due, now);
            expired += done;
            if let Some((rest, e)) = failed {
                // Put back what was not expired so a later sweep retries it.
                state.stock.shards[shard].lock().expiries.extend(due[rest..].iter().map(|&entry| Reverse(entry)));
                return Err(e);
            }
        }
        expired += self.expire_claims_and_end_sales(now)?;
        Ok(expired)
    }

    /// Logs a [`Command::Prune`] if anything has outlived its retention (idempotency results,
    /// finished reservations, transfers and replenishment requests); returns whether it did.
    /// Pruning is a logged command so that a replica replaying the log forgets exactly what
    /// this engine forgot.
    pub fn prune_due(&self) -> Result<bool> {
        let now = self.now();
        if !self.inner.state.prunable(now) {
            return Ok(false);
        }
        let ack = self.submit(Context::actor(SYSTEM_ACTOR), now, Command::Prune)?;
        self.wait(ack)?;
        Ok(true)
    }

    /// Logs an expiry for each `due` hold that is still active and due; returns how many
    /// expired and, on a failure that must stop the sweep, the index it stopped at and why.
    pub(crate) fn expire_each(
        &self,
        due: &[(Timestamp, u64)],
        now: Timestamp,
    ) -> (usize, Option<(usize, EngineError)>) {
        let state = &self.inner.state;
        let mut expired = 0;
        for (i, &(_, id)) in due.iter().enumerate() {
            let live = state
                .stock
                .reservations
                .get(&id)
                .is_some_and(|r| r.status == ReservationStatus::Active && r.expires_at <= now);
            if !live {
                continue;
            }
            match self.submit(Context::actor(SYSTEM_ACTOR), now, Command::Expire { id }) {
                Ok(_) => expired += 1,
                // Finished or extended meanwhile: nothing to do.
                Err(EngineError::Conflict(_)) | Err(EngineError::NotFound { .. }) => {}
                Err(e) => return (expired, Some((i, e))),
            }
        }
        (expired, None)
    }

    /// A page of the audit trail, oldest first. Movements appear a few milliseconds after
    /// their command is acknowledged; [`Engine::flush_audit`] waits for them.
    pub fn movements(&self, query: &MovementQuery<'_>) -> Result<MovementPage> {
        let audit = self.inner.state.audit.as_ref().ok_or_else(|| {
            EngineError::Storage("no audit trail is kept without durability or a document store".into())
        })?;
        audit.query(query).map_err(|e| EngineError::Storage(format!("reading the audit trail: {e}")))
    }

    /// Waits until every movement so far is stored: makes the log durable through its last
    /// record (the trail follows only durable records), then flushes the trail. A read-only
    /// log stays where it is, and the trail is flushed through what is durable.
    pub fn flush_audit(&self) -> Result<()> {
        match self.inner.wal.flush() {
            Ok(()) | Err(WalError::ReadOnly { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match &self.inner.state.audit {
            Some(audit) => audit.flush().map_err(|e| EngineError::Storage(format!("flushing the audit trail: {e}"))),
            None => Ok(()),
        }
    }

    pub fn reservation(&self, id: u64) -> Option<ReservationView> {
        let reservation = self.inner.state.stock.reservations.get(&id)?.clone();
        Some(self.inner.state.stock.view(&reservation))
    }

    pub fn location(&self, code: &str) -> Option<LocationDef> {
        let table = self.inner.state.catalog.locations.read();
        table.id(code).map(|id| table.defs[id as usize].clone())
    }

    pub fn locations(&self) -> Vec<LocationDef> {
        self.inner.state.catalog.locations.read().defs.clone()
    }

    pub fn sku(&self, code: &str) -> Option<SkuDef> {
        let state = &self.inner.state;
        let shard = state.stock.shards[state.stock.shard_of(code)].lock();
        shard.skus.get(code).map(|entry| SkuDef::clone(&entry.def))
    }

    /// SKUs in code order, starting after `after`, with an optional prefix.
    pub fn skus(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<SkuDef> {
        let mut found: Vec<SkuDef> = Vec::new();
        for shard in self.inner.state.stock.shards.iter() {
            let shard = shard.lock();
            found.extend(
                shard
                    .skus
                    .values()
                    .filter(|e| e.def.code.starts_with(prefix) && after.is_none_or(|a| e.def.code.as_str() > a))
                    .map(|e| SkuDef::clone(&e.def)),
            );
        }
        found.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        found.truncate(limit);
        found
    }

    /// One cell; a cell that never held stock reads as zeros.
    pub fn cell(&self, sku: &str, location: &str) -> Result<CellView> {
        let state = &self.inner.state;
        let location_id = state.catalog.location_id(location)?;
        let today = day_of(self.now());
        let shard = state.stock.shards[state.stock.shard_of(sku)].lock();
        let entry = shard.skus.get(sku).ok_or_else(|| EngineError::not_found(Entity::Sku, sku))?;
        let empty = crate::cell::Cell::default();
        let cell = entry.cell(location_id).unwrap_or(&empty);
        Ok(CellView::of(sku, location, cell, today))
    }

    /// One SKU at every location that has a cell, with totals.
    pub fn stock(&self, sku: &str) -> Result<SkuStock> {
        let state = &self.inner.state;
        let today = day_of(self.now());
        let cells: Vec<(LocId, crate::cell::Cell)> = {
            let shard = state.stock.shards[state.stock.shard_of(sku)].lock();
            let entry = shard.skus.get(sku).ok_or_else(|| EngineError::not_found(Entity::Sku, sku))?;
            entry.cells.clone()
        };
        let table = state.catalog.locations.read();
        let mut total = StockTotals::default();
        let locations = cells
            .iter()
            .map(|(location, cell)| {
                let view = CellView::of(sku, table.code(*location), cell, today);
                total.add(&view);
                view
            })
            .collect();
        Ok(SkuStock { sku: sku.to_owned(), total, locations })
    }

    pub fn stats(&self) -> EngineStats {
        let inner = &self.inner;
        let retained = inner.wal.retained();
        EngineStats {
            active_reservations: inner.state.stock.active_reservations.load(Ordering::Relaxed),
            last_lsn: inner.wal.last_lsn(),
            durable_lsn: inner.wal.durable_lsn(),
            last_snapshot_lsn: inner.last_snapshot_lsn.load(Ordering::Relaxed),
            snapshots_taken: inner.snapshots_taken.load(Ordering::Relaxed),
            snapshot_failures: inner.snapshot_failures.load(Ordering::Relaxed),
            last_snapshot_at: inner.last_snapshot_at.load(Ordering::Relaxed),
            last_snapshot_duration: Duration::from_nanos(inner.last_snapshot_nanos.load(Ordering::Relaxed)),
            wal: inner.wal.stats(),
            read_only_reason: inner.wal.read_only_reason(),
            audit_movements_written: inner.state.audit.as_ref().map_or(0, |audit| audit.written()),
            audit_failure: inner.state.audit.as_ref().and_then(|audit| audit.failure()),
            audit_applied_lsn: inner.state.audit.as_ref().and_then(|audit| audit.applied_lsn().ok()).unwrap_or(0),
            log_retained_bytes: retained.0,
            log_oldest_retained_lsn: retained.1,
        }
    }

    /// Why the engine takes no writes, if it does not.
    pub fn read_only_reason(&self) -> Option<String> {
        self.inner.wal.read_only_reason()
    }

    /// Writes a snapshot of the whole state now and deletes the log it covers. A failure is
    /// counted (`EngineStats::snapshot_failures`): the snapshotter thread has no one to tell.
    pub fn snapshot(&self) -> Result<SnapshotInfo> {
        let taken = self.take_snapshot();
        if taken.is_err() {
            self.inner.snapshot_failures.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    fn take_snapshot(&self) -> Result<SnapshotInfo> {
        let inner = &self.inner;
        let _one_at_a_time = inner.snapshot_lock.lock();
        let started = Instant::now();
        let captured = capture(&inner.state, &inner.wal);
        let captured_lsn = captured.lsn;
        let pause = started.elapsed();
        let now = self.now();
        // The image may reflect records not yet synced; never publish it ahead of the log.
        inner.wal.flush()?;
        // Start-up replays only the log after the image: the trail derived from what the
        // image covers must be stored first.
        if let Some(audit) = &inner.state.audit {
            audit
                .flush_through(captured_lsn)
                .map_err(|e| EngineError::Storage(format!("flushing the audit trail: {e}")))?;
        }
        // Building, encoding and writing the image takes seconds of CPU at a million holds; on a
        // small machine that would starve the request path, so it runs on a thread at the
        // lowest priority (after the copy: a low-priority thread must never hold the locks).
        let storage = &inner.storage.snapshots;
        let (lsn, cells, (file, bytes)) = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("aisle-snapshot-write".into())
                .spawn_scoped(scope, move || {
                    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
                    let image = into_image(captured, now);
                    let cells: usize = image.stock.skus.iter().map(|s| s.cells.len()).sum();
                    snapshot::write(storage, &image).map(|written| (image.lsn, cells, written))
                })
                .map_err(|e| EngineError::Storage(format!("starting the snapshot writer: {e}")))?
                .join()
                .map_err(|_| EngineError::Internal("the snapshot writer panicked".into()))?
                .map_err(|e| EngineError::Storage(e.to_string()))
        })?;
        inner.wal.rotate()?;
        inner.last_snapshot_lsn.store(lsn, Ordering::Relaxed);
        let wal_segments_removed = self.apply_log_retention()?;
        snapshot::remove_older(&inner.storage.snapshots, lsn);
        let duration = started.elapsed();
        inner.snapshots_taken.fetch_add(1, Ordering::Relaxed);
        inner.last_snapshot_at.store(now, Ordering::Relaxed);
        inner.last_snapshot_nanos.store(duration.as_nanos() as u64, Ordering::Relaxed);
        Ok(SnapshotInfo { file, lsn, bytes, cells, wal_segments_removed, duration, pause })
    }

    /// The whole state as a snapshot image in a canonical order, with `taken_at` zero, so that
    /// two engines can be compared: one recovered from snapshot + log must equal the one that
    /// wrote them. The id allocators (`next_*_id`) are left out (zero): a refused request uses
    /// up an id without a log record, so they are a bound, not state.
    pub fn canonical_image(&self) -> Image {
        let mut image = into_image(capture(&self.inner.state, &self.inner.wal), 0);
        image.stock.next_reservation_id = 0;
        image.canonicalize_domains();
        image.stock.skus.sort_unstable_by(|a, b| a.def.code.cmp(&b.def.code));
        image.stock.reservations.sort_unstable_by_key(|r| r.id);
        image.idempotency.results.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        image.flash.sales.sort_unstable_by(|a, b| a.def.code.cmp(&b.def.code));
        for sale in &mut image.flash.sales {
            sale.customers.sort_unstable();
        }
        image
    }

    /// Deletes the log segments that every consumer has passed and that retention lets go
    /// (older than `log_retention`, or the oldest while the log is over `log_retention_bytes`).
    /// The consumers today: recovery (the last snapshot) and the audit trail (its applied LSN).
    /// Returns how many segments went.
    pub fn apply_log_retention(&self) -> Result<usize> {
        let inner = &self.inner;
        let mut through = inner.last_snapshot_lsn.load(Ordering::Relaxed);
        if let Some(audit) = &inner.state.audit {
            let applied =
                audit.applied_lsn().map_err(|e| EngineError::Storage(format!("reading the audit trail: {e}")))?;
            through = through.min(applied);
        }
        let older_than = std::time::SystemTime::now().checked_sub(inner.config.log_retention);
        let retention = Retention {
            through,
            older_than: Some(older_than.unwrap_or(std::time::UNIX_EPOCH)),
            bytes_max: inner.config.log_retention_bytes,
        };
        Ok(inner.wal.remove_retained(&retention)?)
    }

    /// Checks SPEC invariant 2 and each cell's own consistency over the whole state:
    /// `reserved` is the sum of active holds (reservations, open flash-sale pools, held
    /// transfers), `committed` the sum of committed lines, and `incoming` the units shipped but
    /// not yet received by the transfers into the cell.
    pub fn check_invariants(&self) -> Result<(), String> {
        let state = &self.inner.state;
        // Each registered domain's own consistency, under its own lock.
        state.domains.check()?;
        // The lock order: shards, then the sales, then the transfer book.
        let guards = state.stock.lock_all();
        let sales = state.flash.all_sales();
        let sale_states: Vec<_> = sales.iter().map(|sale| sale.state.lock()).collect();
        let book = state.domains.transfers.book.lock();
        // Each domain that holds stock checks itself and counts its holds; the stock domain
        // then checks every cell against the count.
        let mut holds = HoldLedger::default();
        crate::flash::check_sales(&sale_states, &state.stock)?;
        crate::flash::count_holds(&sale_states, &mut holds);
        book.count_holds(&mut holds);
        state.stock.check(&guards, holds)
    }

    /// Stops the background threads, then flushes and syncs the log.
    pub fn close(self) -> Result<()> {
        self.stop_background();
        self.inner.wal.flush()?;
        Ok(())
    }

    fn start_background(&self) {
        let config = &self.inner.config;
        let mut threads = self.inner.threads.lock();
        if let Some(every) = config.expiry_sweep_interval {
            let weak = Arc::downgrade(&self.inner);
            threads.push(spawn("aisle-expiry", move || {
                let mut last_prune = Instant::now();
                while let Some(engine) = weak.upgrade().map(|inner| Engine { inner }) {
                    if engine.pause(every) {
                        break;
                    }
                    let _ = engine.expire_due();
                    if last_prune.elapsed() > PRUNE_CHECK_INTERVAL {
                        let _ = engine.prune_due();
                        last_prune = Instant::now();
                    }
                }
            }));
        }
        if config.snapshot_every_records > 0 || config.snapshot_interval.is_some() {
            let weak = Arc::downgrade(&self.inner);
            let check_every = Duration::from_millis(200);
            threads.push(spawn("aisle-snapshot", move || {
                let mut last = Instant::now();
                let mut last_retention = Instant::now();
                while let Some(engine) = weak.upgrade().map(|inner| Engine { inner }) {
                    if engine.pause(check_every) {
                        break;
                    }
                    let inner = &engine.inner;
                    let since = inner.wal.last_lsn().saturating_sub(inner.last_snapshot_lsn.load(Ordering::Relaxed));
                    let by_count =
                        inner.config.snapshot_every_records > 0 && since >= inner.config.snapshot_every_records;
                    let by_time =
                        inner.config.snapshot_interval.is_some_and(|every| last.elapsed() >= every) && since > 0;
                    if (by_count || by_time) && inner.wal.read_only_reason().is_none() {
                        let _ = engine.snapshot();
                        last = Instant::now();
                    } else if last_retention.elapsed() >= LOG_RETENTION_CHECK_INTERVAL {
                        // Segments age out between snapshots too.
                        let _ = engine.apply_log_retention();
                        last_retention = Instant::now();
                    }
                }
            }));
        }
    }

    /// Sleeps up to `period`; true when the engine is stopping.
    fn pause(&self, period: Duration) -> bool {
        let (lock, condvar) = &self.inner.wakeup;
        let mut guard = lock.lock();
        if !self.inner.stopping.load(Ordering::Acquire) {
            condvar.wait_for(&mut guard, period);
        }
        self.inner.stopping.load(Ordering::Acquire)
    }

    fn stop_background(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        {
            let _guard = self.inner.wakeup.0.lock();
            self.inner.wakeup.1.notify_all();
        }
        let threads: Vec<_> = self.inner.threads.lock().drain(..).collect();
        for thread in threads {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name.into()).spawn(body).expect("spawning an engine thread")
}

fn check_context(ctx: &Context<'_>) -> Result<()> {
    let mut errors = Vec::new();
    if ctx.actor.is_empty() || ctx.actor.len() > ACTOR_LEN_MAX {
        errors.push(FieldError::new("actor", format!("must be 1 to {ACTOR_LEN_MAX} bytes")));
    }
    if let Some((key, _)) = ctx.idempotency {
        if key.is_empty()
            || key.len() > IDEMPOTENCY_KEY_LEN_MAX
            || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            errors.push(FieldError::new(
                "Idempotency-Key",
                format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable characters"),
            ));
        }
    }
    finish(errors).map_err(EngineError::Invalid)
}

fn check_cell_ref(sku: &str, location: &str, errors: &mut Vec<FieldError>) {
    check_code("sku", sku, errors);
    check_code("location", location, errors);
}

/// Validates lines and merges those for the same cell, keeping first-seen order.
/// Takes the entries of an expiry heap that are due at `now`, at most `max` of them.
pub(crate) fn pop_due(
    heap: &mut std::collections::BinaryHeap<Reverse<(Timestamp, u64)>>,
    now: Timestamp,
    max: usize,
) -> Vec<(Timestamp, u64)> {
    let mut due = Vec::new();
    while let Some(Reverse((at, id))) = heap.peek().copied() {
        if at > now || due.len() >= max {
            break;
        }
        heap.pop();
        due.push((at, id));
    }
    due
}

/// Checks what every hold states besides its lines: channel, customer and TTL; returns the
/// TTL in seconds (the default when none is given).
pub(crate) fn check_hold_terms(
    channel: &str,
    customer: Option<&str>,
    ttl_seconds: Option<u32>,
    errors: &mut Vec<FieldError>,
) -> u32 {
    check_channel("channel", channel, errors);
    if let Some(customer) = customer {
        if customer.is_empty() {
            errors.push(FieldError::new("customer", "must not be empty"));
        }
        check_text("customer", customer, CUSTOMER_LEN_MAX, errors);
    }
    let ttl = ttl_seconds.unwrap_or(TTL_SECONDS_DEFAULT);
    if ttl == 0 || ttl > TTL_SECONDS_MAX {
        errors.push(FieldError::new("ttl_seconds", format!("must be 1 to {TTL_SECONDS_MAX}")));
    }
    ttl
}

/// Checks a hold's lines and merges them per (sku, location). With `sourced`, a line may have
/// an empty location: it is to be sourced.
pub(crate) fn merge_lines(lines: Vec<ReserveLine>, sourced: bool, errors: &mut Vec<FieldError>) -> Vec<ReserveLine> {
    if lines.is_empty() || lines.len() > LINES_PER_REQUEST_MAX {
        errors.push(FieldError::new("lines", format!("must hold 1 to {LINES_PER_REQUEST_MAX} lines")));
        return lines;
    }
    let mut merged: Vec<ReserveLine> = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        check_code(&format!("lines[{i}].sku"), &line.sku, errors);
        if !(sourced && line.location.is_empty()) {
            check_code(&format!("lines[{i}].location"), &line.location, errors);
        }
        if line.qty == 0 || line.qty > LINE_QTY_MAX {
            errors.push(FieldError::new(format!("lines[{i}].qty"), format!("must be 1 to {LINE_QTY_MAX}")));
            continue;
        }
        match merged.iter_mut().find(|m| m.sku == line.sku && m.location == line.location) {
            // Each line is bounded, so a merged one is at most LINES_PER_REQUEST_MAX times that.
            Some(m) => m.qty += line.qty,
            None => merged.push(line),
        }
    }
    merged
}

fn into_cell(ack: Ack<Outcome>) -> Result<Ack<CellView>> {
    match ack.value {
        Outcome::Cell(cell) => Ok(Ack { value: cell, lsn: ack.lsn }),
        other => Err(EngineError::Internal(format!("expected a cell, got {other:?}"))),
    }
}

fn into_reservation(ack: Ack<Outcome>) -> Result<Ack<ReservationView>> {
    match ack.value {
        Outcome::Reservation(view) => Ok(Ack { value: view, lsn: ack.lsn }),
        other => Err(EngineError::Internal(format!("expected a reservation, got {other:?}"))),
    }
}

/// One SKU's cells by location.
/// The whole state copied with every lock held: each domain's capture (shared pointers and
/// plain values) and the idempotency results. [`into_image`] then builds the archivable image
/// with no lock held.
struct Captured {
    lsn: Lsn,
    catalog: CatalogSection,
    stock: StockCapture,
    flash: FlashCapture,
    domains: DomainCaptures,
    idempotency: Vec<(Box<str>, u64, Timestamp, Arc<Outcome>)>,
}

fn capture(state: &State, wal: &Wal) -> Captured {
    // The lock order: shards, then each sale's mutex, then the registered domains' locks (the
    // transfer book), then the location table (commands read the table while holding their
    // shards; taking them the other way round here could deadlock behind a waiting location
    // writer).
    let guards = state.stock.lock_all();
    // No sale is created without a shard lock, so the table cannot grow under this copy.
    let flash = state.flash.capture();
    let domains = state.domains.capture();
    let catalog = state.catalog.capture();
    // Every record appended so far was appended under one of the locks now held.
    let lsn = wal.last_lsn();
    let stock = state.stock.capture(&guards);
    let idempotency = state.idempotency.results();
    Captured { lsn, catalog, stock, flash, domains, idempotency }
}

fn into_image(captured: Captured, now: Timestamp) -> Image {
    let results = captured
        .idempotency
        .into_iter()
        .map(|(key, fingerprint, at, outcome)| IdempotencyImage {
            key: key.into_string(),
            fingerprint,
            at,
            outcome: Outcome::clone(&outcome),
        })
        .collect();
    let mut image = Image::empty(captured.lsn, now);
    image.catalog = captured.catalog;
    image.stock = captured.stock.into_section();
    image.flash = captured.flash.into_section();
    image.idempotency = IdempotencySection { results };
    image.set_domains(captured.domains);
    image
}

/// Rebuilds the state from an image (start-up only; nothing else is running): each domain
/// restores its section, the catalog first (the others name locations by index).
fn restore(state: &State, image: &Image) {
    let location_codes = state.catalog.restore(&image.catalog);
    state.flash.restore(&image.flash);
    state.stock.restore(&image.stock, &location_codes, &|code| state.flash.shared_code(code));
    state.flash.restore_claim_expiries(&state.stock);
    image.restore_domains(&state.domains, &location_codes);
    for entry in &image.idempotency.results {
        state.idempotency.restore(&entry.key, entry.fingerprint, entry.at, entry.outcome.clone());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.wal.flush();
    }
}
