//! The write-ahead log: every state change is appended here before it is acknowledged, and
//! replayed from here (after the newest snapshot) at start-up.
//!
//! # Shape
//! - [`Wal::append`] frames a record into an in-memory pending buffer under a short mutex and
//!   returns its LSN; it makes no syscall unless the writer thread is asleep.
//! - One writer thread ("aisle-wal") group-commits: it swaps the pending buffer out, writes it
//!   to the current segment in one write, fdatasyncs once, publishes the new durable LSN and
//!   wakes every waiter. Batches grow by themselves under load.
//! - [`Wal::wait_durable`] (blocking) and [`Wal::durable`] (a future) wait for an LSN.
//! - [`Wal::open`] runs recovery (see `reader`), then continues in a new segment.
//!
//! Submodules: `format` (bytes on disk), `storage` (files, real and simulated), `reader`
//! (recovery scan), `writer` (shared state, group commit, the writer thread).
//!
//! # Storage assumptions
//! fdatasync on a file makes all previously written bytes of that file durable. A crash loses
//! only writes not yet synced, and may tear the tail: a prefix of the unsynced bytes may
//! survive. Creating, renaming or removing a file is durable after fsync of the directory.
//! Hence a damaged frame at the end of the last segment, with nothing valid after it, is an
//! interrupted write (cut away at open), while damage anywhere else is corruption.
//!
//! # Failures
//! A failed write or fdatasync is never retried on the same file (after a failed fdatasync the
//! kernel may have dropped the dirty pages and a retry could falsely succeed). The log becomes
//! read-only instead: unsynced waiters, and every later admit/append/wait, get
//! [`WalError::ReadOnly`] with a reason naming the file and the error.

mod format;
mod reader;
mod storage;
mod writer;

#[cfg(test)]
mod tests;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

pub use storage::{DirStorage, LogFile, LogStorage, MemStorage};

use format::{frame_size, push_frame, segment_name, SEGMENT_HEADER_LEN};
use writer::{Segment, Shared};

/// Log sequence number: the first record ever is 1, and each record is one more than the last.
pub type Lsn = u64;

/// What callback [`Wal::open`] feeds each replayed record to.
pub type ReplayFn<'a> = &'a mut dyn FnMut(Lsn, &[u8]) -> Result<(), Box<dyn StdError + Send + Sync>>;

/// When an appended record counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After fdatasync: survives power loss.
    #[default]
    Fsync,
    /// After the write syscall: survives a process crash; synced every `async_sync_interval`.
    Async,
    /// Nothing is written at all; records are durable at once. For tests and benchmarks.
    None,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Async => "async",
            Durability::None => "none",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = WalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "async" => Ok(Durability::Async),
            "none" => Ok(Durability::None),
            other => Err(WalError::InvalidConfig(format!("durability must be fsync, async or none, not {other:?}"))),
        }
    }
}

/// Told about every batch the writer commits, for metrics.
pub trait WalObserver: Send + Sync {
    /// `sync` is how long the fdatasync took, if the batch was synced. A sync without new
    /// records (Async mode's timer, rotation) is reported with `records == 0`.
    fn batch_written(&self, records: u64, bytes: u64, sync: Option<Duration>);
    /// The log turned read-only (a write or sync failed); called once, with the reason that
    /// `/readyz` shows.
    fn read_only(&self, _reason: &str) {}
}

/// How the log behaves; see [`WalConfig::validate`] for the accepted ranges.
#[derive(Clone)]
pub struct WalConfig {
    pub durability: Durability,
    /// A segment is closed and a new one started once a batch takes it to this size.
    pub segment_bytes_max: u64,
    /// [`Wal::admit`] answers Busy while more than this many bytes wait to be written.
    pub pending_bytes_max: usize,
    /// Largest record payload accepted (and, at recovery, believed).
    pub record_bytes_max: u32,
    /// In Async mode, the longest a written record stays unsynced.
    pub async_sync_interval: Duration,
    pub observer: Option<Arc<dyn WalObserver>>,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            durability: Durability::Fsync,
            segment_bytes_max: 64 << 20,
            pending_bytes_max: 64 << 20,
            record_bytes_max: 1 << 20,
            async_sync_interval: Duration::from_millis(10),
            observer: None,
        }
    }
}

impl fmt::Debug for WalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalConfig")
            .field("durability", &self.durability)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("pending_bytes_max", &self.pending_bytes_max)
            .field("record_bytes_max", &self.record_bytes_max)
            .field("async_sync_interval", &self.async_sync_interval)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// Smallest accepted `segment_bytes_max`; below it rotation would dominate.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest accepted `record_bytes_max`; a frame's padded length must stay far from u32 limits.
pub const RECORD_BYTES_LIMIT: u32 = 1 << 30;

impl WalConfig {
    pub fn validate(&self) -> Result<(), WalError> {
        let invalid = |msg: String| Err(WalError::InvalidConfig(msg));
        if self.segment_bytes_max < SEGMENT_BYTES_MIN {
            return invalid(format!("segment_bytes_max must be at least {SEGMENT_BYTES_MIN}"));
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > RECORD_BYTES_LIMIT {
            return invalid(format!("record_bytes_max must be between 1 and {RECORD_BYTES_LIMIT}"));
        }
        if self.pending_bytes_max == 0 {
            return invalid("pending_bytes_max must be positive".into());
        }
        if self.durability == Durability::Async && self.async_sync_interval.is_zero() {
            return invalid("async_sync_interval must be positive".into());
        }
        Ok(())
    }
}

/// Which closed log segments [`Wal::remove_retained`] may delete: only those whose records are
/// all at or below `through` (every consumer of the log has passed them), and of those only
/// the ones last written at or before `older_than` (None: any), or, while the log takes more
/// than `bytes_max` bytes, the oldest ones whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub through: Lsn,
    pub older_than: Option<std::time::SystemTime>,
    pub bytes_max: u64,
}

/// A frame at the end of the last segment that recovery cut away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: String,
    /// Where the file was cut (0: the whole file was removed, its header being torn).
    pub offset: u64,
    pub bytes_cut: u64,
}

/// What [`Wal::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records passed to the replay callback (those after `after_lsn`).
    pub records_replayed: u64,
    /// The LSN of the last record in the log (or `after_lsn`, whichever is higher).
    pub last_lsn: Lsn,
    pub torn_tail: Option<TornTail>,
    /// Segment files found.
    pub segments: usize,
}

/// Writer counters since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    pub syncs: u64,
    pub sync_nanos_total: u64,
    /// Most records written by one batch.
    pub largest_batch: u64,
    pub largest_batch_bytes: u64,
    /// Segments started by rotation.
    pub segments_created: u64,
    /// Bytes appended but not yet written, now.
    pub pending_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{op} {file}: {source}")]
    Io {
        op: &'static str,
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("write-ahead log corrupt: {file} at byte {offset}: {reason}")]
    Corrupt { file: String, offset: u64, reason: String },
    #[error("write-ahead log is read-only: {reason}")]
    ReadOnly { reason: String },
    #[error("write-ahead log is busy; too many bytes waiting to be written")]
    Busy,
    #[error("record of {len} bytes exceeds the maximum of {max}")]
    RecordTooLarge { len: usize, max: u32 },
    #[error("replaying record {lsn}: {source}")]
    Replay {
        lsn: Lsn,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("write-ahead log is closed")]
    Closed,
    #[error("invalid write-ahead log configuration: {0}")]
    InvalidConfig(String),
}

/// The write-ahead log. Send + Sync; share it behind an `Arc`.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("durability", &self.shared.config.durability)
            .field("last_lsn", &self.last_lsn())
            .field("durable_lsn", &self.durable_lsn())
            .finish()
    }
}

impl Wal {
    /// Recovers the log in `storage`: verifies every segment, cuts a torn tail, feeds each
    /// record after `after_lsn` (what the loaded snapshot covers) to `replay` in order, and
    /// starts a new segment for appends. With [`Durability::None`] storage is not touched and
    /// numbering continues after `after_lsn`.
    pub fn open(
        storage: Arc<dyn LogStorage>,
        config: WalConfig,
        after_lsn: Lsn,
        replay: ReplayFn<'_>,
    ) -> Result<(Wal, RecoveryReport), WalError> {
        config.validate()?;
        if config.durability == Durability::None {
            let segment = Segment {
                file: None,
                name: String::new(),
                first_lsn: after_lsn + 1,
                len: 0,
                records: 0,
                closed: Vec::new(),
                spare: Vec::new(),
            };
            let report = RecoveryReport { last_lsn: after_lsn, ..RecoveryReport::default() };
            let shared = Arc::new(Shared::new(storage, config, segment, after_lsn));
            return Ok((Wal { shared, writer: None }, report));
        }

        let recovered = reader::recover(&*storage, config.record_bytes_max, after_lsn, replay)?;
        let first_lsn = recovered.next_lsn;
        let name = segment_name(first_lsn);
        let file = storage.create(&name).map_err(|source| WalError::Io { op: "create", file: name.clone(), source })?;
        let mut segment = Segment {
            file: Some(file),
            name: name.clone(),
            first_lsn,
            len: 0,
            records: 0,
            closed: recovered.segments,
            spare: Vec::new(),
        };
        writer::start_segment(&*storage, &mut segment).map_err(|(op, source)| WalError::Io {
            op,
            file: name.clone(),
            source,
        })?;
        let shared = Arc::new(Shared::new(storage, config, segment, first_lsn - 1));
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("aisle-wal".into())
            .spawn(move || writer::run(thread_shared))
            .map_err(|source| WalError::Io { op: "spawn writer thread for", file: name, source })?;
        Ok((Wal { shared, writer: Some(writer) }, recovered.report))
    }

    /// The cheap check to make before applying a command: ReadOnly after a failed write or
    /// sync, Busy while more than `pending_bytes_max` bytes wait to be written. A soft bound:
    /// records admitted concurrently may overshoot it.
    pub fn admit(&self) -> Result<(), WalError> {
        if let Some(error) = self.shared.read_only_error() {
            return Err(error);
        }
        if self.shared.pending_bytes.load(Ordering::Relaxed) > self.shared.config.pending_bytes_max {
            return Err(WalError::Busy);
        }
        Ok(())
    }

    /// Queues `payload` as the next record and returns its LSN. Not durable yet: wait for it
    /// with [`Wal::wait_durable`] or [`Wal::durable`].
    pub fn append(&self, payload: &[u8]) -> Result<Lsn, WalError> {
        let shared = &*self.shared;
        let max = shared.config.record_bytes_max;
        if payload.len() > max as usize {
            return Err(WalError::RecordTooLarge { len: payload.len(), max });
        }
        if shared.config.durability == Durability::None {
            return Ok(shared.last_lsn.fetch_add(1, Ordering::AcqRel) + 1);
        }
        let (lsn, wake) = {
            let mut pending = shared.pending.lock();
            // Checked under the lock: poisoning clears the buffer under it, so a record is
            // either refused here or dropped (and its waiter failed) by the poisoning.
            if let Some(error) = shared.read_only_error() {
                return Err(error);
            }
            if pending.closing {
                return Err(WalError::Closed);
            }
            let lsn = shared.last_lsn.load(Ordering::Relaxed) + 1;
            push_frame(&mut pending.buf, lsn, payload);
            pending.records += 1;
            shared.last_lsn.store(lsn, Ordering::Release);
            // Under the lock, so the writer's subtraction after the write never comes first.
            shared.pending_bytes.fetch_add(frame_size(payload.len()), Ordering::AcqRel);
            (lsn, std::mem::take(&mut pending.writer_idle))
        };
        if wake {
            shared.writer_wake.notify_one();
        }
        Ok(lsn)
    }

    /// Blocks until `lsn` is durable as the mode defines it (Fsync: synced; Async: written;
    /// None: at once). Waiting for an LSN not appended yet blocks until it is, and is durable.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        let shared = &*self.shared;
        if let Some(outcome) = shared.wait_outcome(lsn) {
            return outcome;
        }
        let mut waiters = shared.waiters.lock();
        loop {
            if let Some(outcome) = shared.wait_outcome(lsn) {
                return outcome;
            }
            shared.waiter_wake.wait(&mut waiters);
        }
    }

    /// A future resolving when `lsn` is durable, like [`Wal::wait_durable`]. It does not
    /// borrow the log, so it can be moved into a spawned task.
    pub fn durable(&self, lsn: Lsn) -> Durable {
        Durable { shared: self.shared.clone(), lsn, registered: None }
    }

    /// The highest LSN acknowledged as durable under the configured mode.
    pub fn durability(&self) -> Durability {
        self.shared.config.durability
    }

    pub fn durable_lsn(&self) -> Lsn {
        self.shared.acked_lsn()
    }

    /// A handle that reads the durable LSN without borrowing the log, for projections that
    /// may only consume durable records.
    pub fn durable_watch(&self) -> DurableWatch {
        DurableWatch { shared: self.shared.clone() }
    }

    /// The LSN of the last record appended (or recovered).
    pub fn last_lsn(&self) -> Lsn {
        self.shared.last_lsn.load(Ordering::Acquire)
    }

    /// Writes and fdatasyncs everything appended so far, in every mode but None.
    pub fn flush(&self) -> Result<(), WalError> {
        let shared = &*self.shared;
        if shared.config.durability == Durability::None {
            return Ok(());
        }
        let target = self.last_lsn();
        if shared.synced_lsn.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        {
            let mut segment = shared.segment.lock();
            if shared.synced_lsn.load(Ordering::Acquire) < target {
                shared.commit(&mut segment, true)?;
            }
        }
        if shared.synced_lsn.load(Ordering::Acquire) >= target {
            Ok(())
        } else {
            Err(shared.read_only_error().unwrap_or(WalError::Closed))
        }
    }

    /// Writes and syncs what is pending, closes the current segment and starts a new one.
    /// Returns the first LSN of the new segment: every record appended before the call is
    /// below it. If the current segment holds no records it is kept and its first LSN returned.
    pub fn rotate(&self) -> Result<Lsn, WalError> {
        let shared = &*self.shared;
        if shared.config.durability == Durability::None {
            return Ok(self.last_lsn() + 1);
        }
        let mut segment = shared.segment.lock();
        shared.commit(&mut segment, true)?;
        shared.rotate(&mut segment)
    }

    /// Deletes the closed segments all of whose records are at or below `lsn` (never the
    /// current segment), whatever their age; see [`Wal::remove_retained`].
    pub fn remove_through(&self, lsn: Lsn) -> Result<usize, WalError> {
        self.remove_retained(&Retention { through: lsn, older_than: None, bytes_max: 0 })
    }

    /// Deletes the closed segments that `retention` lets go (never the current segment),
    /// oldest first so a crash midway leaves a consecutive log, then syncs the directory.
    /// Returns how many were deleted.
    pub fn remove_retained(&self, retention: &Retention) -> Result<usize, WalError> {
        let shared = &*self.shared;
        if shared.config.durability == Durability::None {
            return Ok(0);
        }
        let mut removed = 0;
        {
            let mut segment = shared.segment.lock();
            let mut retained: u64 = segment.closed.iter().map(|closed| closed.bytes).sum::<u64>() + segment.len;
            while let Some(oldest) = segment.closed.first() {
                let next_first = segment.closed.get(1).map_or(segment.first_lsn, |next| next.first_lsn);
                if next_first - 1 > retention.through {
                    break;
                }
                let old_enough = match retention.older_than {
                    None => true,
                    Some(cutoff) => {
                        let modified = shared.storage.modified(&oldest.name).map_err(|source| WalError::Io {
                            op: "stat",
                            file: oldest.name.clone(),
                            source,
                        })?;
                        modified <= cutoff
                    }
                };
                if !old_enough && retained <= retention.bytes_max {
                    break;
                }
                shared.storage.remove(&oldest.name).map_err(|source| WalError::Io {
                    op: "remove",
                    file: oldest.name.clone(),
                    source,
                })?;
                retained -= oldest.bytes;
                segment.closed.remove(0);
                removed += 1;
            }
        }
        if removed > 0 {
            shared.storage.sync_dir().map_err(|source| WalError::Io {
                op: "sync dir after removing segments from",
                file: String::new(),
                source,
            })?;
        }
        Ok(removed)
    }

    /// Bytes of log kept on disk (every segment, the current one included) and the LSN of the
    /// oldest record kept.
    pub fn retained(&self) -> (u64, Lsn) {
        if self.shared.config.durability == Durability::None {
            return (0, self.last_lsn() + 1);
        }
        let segment = self.shared.segment.lock();
        let bytes = segment.closed.iter().map(|closed| closed.bytes).sum::<u64>() + segment.len;
        let oldest = segment.closed.first().map_or(segment.first_lsn, |closed| closed.first_lsn);
        (bytes, oldest)
    }

    /// Why the log takes no more records, if it does not.
    pub fn read_only_reason(&self) -> Option<String> {
        self.shared.read_only.get().cloned()
    }

    pub fn stats(&self) -> WalStats {
        self.shared.stats()
    }

    /// Names of the segment files in use, oldest first (the last is the one being written).
    pub fn segment_names(&self) -> Vec<String> {
        if self.shared.config.durability == Durability::None {
            return Vec::new();
        }
        let segment = self.shared.segment.lock();
        let mut names: Vec<String> = segment.closed.iter().map(|closed| closed.name.clone()).collect();
        names.push(segment.name.clone());
        names
    }

    /// Flushes, stops the writer thread and waits for it.
    pub fn close(mut self) -> Result<(), WalError> {
        let flushed = self.flush();
        self.stop_writer();
        flushed
    }

    fn stop_writer(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.shared.pending.lock().closing = true;
            self.shared.writer_wake.notify_one();
            // A panicked writer has nothing left to flush; the waiters are settled below.
            let _ = writer.join();
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake_waiters();
    }
}

impl Drop for Wal {
    /// Stops the writer, which writes and syncs what is pending on its way out (best effort).
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// Reads the log's durable LSN; see [`Wal::durable_watch`].
#[derive(Clone)]
pub struct DurableWatch {
    shared: Arc<Shared>,
}

impl DurableWatch {
    /// The highest LSN durable under the configured mode; it never moves after a failed sync.
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.acked_lsn()
    }
}

impl fmt::Debug for DurableWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableWatch").field("durable_lsn", &self.durable_lsn()).finish()
    }
}

/// Resolves when an LSN is durable; see [`Wal::durable`].
pub struct Durable {
    shared: Arc<Shared>,
    lsn: Lsn,
    /// The waker last left in the writer's list, so re-polls with the same one add nothing.
    registered: Option<Waker>,
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable").field("lsn", &self.lsn).finish()
    }
}

impl Future for Durable {
    type Output = Result<(), WalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.shared.wait_outcome(self.lsn) {
            return Poll::Ready(outcome);
        }
        let shared = self.shared.clone();
        let mut waiters = shared.waiters.lock();
        // Again under the lock: the writer publishes before it takes this lock to wake.
        if let Some(outcome) = shared.wait_outcome(self.lsn) {
            return Poll::Ready(outcome);
        }
        if !self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            waiters.wakers.push((self.lsn, cx.waker().clone()));
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

// Used only to assert, at compile time, the thread-safety the engine relies on.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Wal>();
    send_sync::<Durable>();
};

// A segment at its minimum size must still have room for frames after its header.
const _: () = assert!(SEGMENT_HEADER_LEN as u64 + 16 <= SEGMENT_BYTES_MIN);
