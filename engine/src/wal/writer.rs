//! The state shared by appenders, waiters and the writer, and the group commit itself.
//!
//! # Locks
//! - `pending`: the buffer appenders frame their records into. Held only to copy a record in
//!   or to swap the buffer out; never across a syscall.
//! - `segment`: the open segment file and the list of closed ones. Held by whoever writes a
//!   batch (the writer thread, or a caller of `flush`/`rotate`) for the whole write + sync, so
//!   batches reach the file in LSN order. Appenders never take it.
//! - `waiters`: wakers of pending `Durable` futures, plus the condvar blocking waiters sleep on.
//!
//! Lock order: `segment` before `pending`; `waiters` is taken alone.
//!
//! # Publishing
//! A batch advances `written_lsn` (after the write) and `synced_lsn` (after the sync), then
//! takes `waiters` to wake everyone. A waiter checks the LSNs under the same lock before it
//! sleeps, so a publish cannot slip between its check and its sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::format::{encode_segment_header, segment_name, SEGMENT_HEADER_LEN};
use super::{Durability, LogFile, LogStorage, Lsn, WalConfig, WalError, WalStats};

pub(crate) struct Pending {
    pub buf: Vec<u8>,
    pub records: u64,
    /// The writer is (about to be) asleep on `writer_wake`; the first appender to see this
    /// clears it and wakes the writer, so a busy log costs no wake-up syscalls.
    pub writer_idle: bool,
    pub closing: bool,
}

pub(crate) struct Segment {
    /// None once a write or sync on it failed: a failed file is never written or synced again.
    pub file: Option<Box<dyn LogFile>>,
    pub name: String,
    pub first_lsn: Lsn,
    pub len: u64,
    pub records: u64,
    /// Closed segments, oldest first.
    pub closed: Vec<ClosedSegment>,
    /// The other half of the double buffer: swapped with `Pending::buf` for each batch, so
    /// steady-state batching allocates nothing.
    pub spare: Vec<u8>,
}

/// A segment no longer written to, kept until retention lets it go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClosedSegment {
    pub first_lsn: Lsn,
    pub name: String,
    pub bytes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    sync_nanos_total: AtomicU64,
    largest_batch: AtomicU64,
    largest_batch_bytes: AtomicU64,
    segments_created: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Waiters {
    pub wakers: Vec<(Lsn, Waker)>,
}

pub(crate) struct Shared {
    pub storage: Arc<dyn LogStorage>,
    pub config: WalConfig,
    pub pending: Mutex<Pending>,
    pub writer_wake: Condvar,
    pub segment: Mutex<Segment>,
    pub waiters: Mutex<Waiters>,
    pub waiter_wake: Condvar,
    pub last_lsn: AtomicU64,
    pub written_lsn: AtomicU64,
    pub synced_lsn: AtomicU64,
    /// Bytes appended but not yet written; what `admit` compares with `pending_bytes_max`.
    pub pending_bytes: AtomicUsize,
    pub read_only: OnceLock<String>,
    pub closed: AtomicBool,
    pub counters: Counters,
}

impl Shared {
    pub fn new(storage: Arc<dyn LogStorage>, config: WalConfig, segment: Segment, last_lsn: Lsn) -> Self {
        Shared {
            storage,
            config,
            pending: Mutex::new(Pending { buf: Vec::new(), records: 0, writer_idle: false, closing: false }),
            writer_wake: Condvar::new(),
            segment: Mutex::new(segment),
            waiters: Mutex::new(Waiters::default()),
            waiter_wake: Condvar::new(),
            last_lsn: AtomicU64::new(last_lsn),
            written_lsn: AtomicU64::new(last_lsn),
            synced_lsn: AtomicU64::new(last_lsn),
            pending_bytes: AtomicUsize::new(0),
            read_only: OnceLock::new(),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    /// The highest LSN acknowledged as durable under the configured mode.
    pub fn acked_lsn(&self) -> Lsn {
        match self.config.durability {
            Durability::Fsync => self.synced_lsn.load(Ordering::Acquire),
            Durability::Async => self.written_lsn.load(Ordering::Acquire),
            Durability::None => self.last_lsn.load(Ordering::Acquire),
        }
    }

    pub fn read_only_error(&self) -> Option<WalError> {
        self.read_only.get().map(|reason| WalError::ReadOnly { reason: reason.clone() })
    }

    /// The outcome of waiting for `lsn`, or None while it is still in flight.
    pub fn wait_outcome(&self, lsn: Lsn) -> Option<Result<(), WalError>> {
        if lsn <= self.acked_lsn() {
            return Some(Ok(()));
        }
        if let Some(error) = self.read_only_error() {
            return Some(Err(error));
        }
        if self.closed.load(Ordering::Acquire) {
            return Some(Err(WalError::Closed));
        }
        None
    }

    /// Wakes every blocking waiter and the futures whose LSN is now settled.
    pub fn wake_waiters(&self) {
        let acked = self.acked_lsn();
        let settled = self.read_only.get().is_some() || self.closed.load(Ordering::Acquire);
        let mut ready = Vec::new();
        {
            let mut waiters = self.waiters.lock();
            self.waiter_wake.notify_all();
            let mut i = 0;
            while i < waiters.wakers.len() {
                if settled || waiters.wakers[i].0 <= acked {
                    ready.push(waiters.wakers.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
        }
        // Outside the lock: a waker may poll its future right away, which takes the lock.
        for waker in ready {
            waker.wake();
        }
    }

    /// Makes the log read-only after a failed write or sync on the current segment.
    fn poison(&self, segment: &mut Segment, op: &str, file: &str, error: &std::io::Error) -> WalError {
        let reason = format!("{op} of {file} failed: {error}");
        if self.read_only.set(reason).is_ok() {
            if let (Some(observer), Some(reason)) = (&self.config.observer, self.read_only.get()) {
                observer.read_only(reason);
            }
        }
        segment.file = None;
        segment.spare.clear();
        {
            let mut pending = self.pending.lock();
            pending.buf.clear();
            pending.records = 0;
        }
        self.pending_bytes.store(0, Ordering::Release);
        self.wake_waiters();
        self.read_only_error().unwrap_or_else(|| WalError::ReadOnly { reason: error.to_string() })
    }

    /// Writes everything pending as one batch, syncs if the mode (or `force_sync`) asks,
    /// publishes, and rotates if the segment is full.
    pub fn commit(&self, segment: &mut Segment, force_sync: bool) -> Result<(), WalError> {
        if let Some(error) = self.read_only_error() {
            return Err(error);
        }
        let records = {
            let mut pending = self.pending.lock();
            std::mem::swap(&mut pending.buf, &mut segment.spare);
            std::mem::take(&mut pending.records)
        };
        // Every record in the swapped-out buffer is at or below this, and the buffer holds
        // everything up to it that was not written before: LSNs are assigned under that lock.
        let batch_last = self.written_lsn.load(Ordering::Acquire) + records;
        let Some(file) = segment.file.as_mut() else {
            return Err(WalError::Closed);
        };
        let bytes = segment.spare.len();
        if bytes > 0 {
            if let Err(error) = file.write_all(&segment.spare) {
                let name = segment.name.clone();
                return Err(self.poison(segment, "write", &name, &error));
            }
            segment.spare.clear();
            segment.len += bytes as u64;
            segment.records += records;
            self.written_lsn.store(batch_last, Ordering::Release);
            self.pending_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        let sync = self.sync_segment(segment, force_sync || self.config.durability == Durability::Fsync)?;
        if bytes > 0 {
            let c = &self.counters;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.records.fetch_add(records, Ordering::Relaxed);
            c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            c.largest_batch.fetch_max(records, Ordering::Relaxed);
            c.largest_batch_bytes.fetch_max(bytes as u64, Ordering::Relaxed);
        }
        if bytes > 0 || sync.is_some() {
            self.wake_waiters();
            if let Some(observer) = &self.config.observer {
                observer.batch_written(records, bytes as u64, sync);
            }
        }
        if segment.len >= self.config.segment_bytes_max {
            // The batch itself is durable whatever happens here. A failed create is retried
            // after the next batch; anything worse has made the log read-only already.
            let _ = self.rotate(segment);
        }
        Ok(())
    }

    /// fdatasyncs the segment if asked and anything written is unsynced; returns how long it took.
    fn sync_segment(&self, segment: &mut Segment, wanted: bool) -> Result<Option<Duration>, WalError> {
        let written = self.written_lsn.load(Ordering::Acquire);
        if !wanted || self.synced_lsn.load(Ordering::Acquire) >= written {
            return Ok(None);
        }
        let Some(file) = segment.file.as_mut() else {
            return Err(self.read_only_error().unwrap_or(WalError::Closed));
        };
        let started = Instant::now();
        let result = file.sync_data();
        let took = started.elapsed();
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.counters.sync_nanos_total.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Err(error) = result {
            let name = segment.name.clone();
            return Err(self.poison(segment, "fdatasync", &name, &error));
        }
        self.synced_lsn.store(written, Ordering::Release);
        Ok(Some(took))
    }

    /// Closes the current segment (synced) and starts the next one at the next LSN; a segment
    /// without records is kept as it is. Returns the first LSN of the current segment.
    pub fn rotate(&self, segment: &mut Segment) -> Result<Lsn, WalError> {
        if let Some(error) = self.read_only_error() {
            return Err(error);
        }
        if segment.records == 0 {
            return Ok(segment.first_lsn);
        }
        if let Some(took) = self.sync_segment(segment, true)? {
            if let Some(observer) = &self.config.observer {
                observer.batch_written(0, 0, Some(took));
            }
            self.wake_waiters();
        }
        let first_lsn = self.written_lsn.load(Ordering::Acquire) + 1;
        let name = segment_name(first_lsn);
        let file =
            self.storage.create(&name).map_err(|source| WalError::Io { op: "create", file: name.clone(), source })?;
        let old_name = std::mem::replace(&mut segment.name, name.clone());
        let old_first = std::mem::replace(&mut segment.first_lsn, first_lsn);
        segment.closed.push(ClosedSegment { first_lsn: old_first, name: old_name, bytes: segment.len });
        segment.file = Some(file);
        segment.len = 0;
        segment.records = 0;
        start_segment(&*self.storage, segment).map_err(|(op, error)| self.poison(segment, op, &name, &error))?;
        self.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(first_lsn)
    }

    pub fn stats(&self) -> WalStats {
        let c = &self.counters;
        WalStats {
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            sync_nanos_total: c.sync_nanos_total.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            largest_batch_bytes: c.largest_batch_bytes.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            pending_bytes: self.pending_bytes.load(Ordering::Relaxed) as u64,
        }
    }
}

/// Writes and syncs the header of a freshly created, empty segment and makes its directory
/// entry durable; nothing may be acknowledged in a segment that could vanish in a crash.
pub(crate) fn start_segment(
    storage: &dyn LogStorage,
    segment: &mut Segment,
) -> Result<(), (&'static str, std::io::Error)> {
    let file = segment.file.as_mut().ok_or_else(|| ("write", std::io::Error::other("segment has no open file")))?;
    file.write_all(&encode_segment_header(segment.first_lsn)).map_err(|e| ("write", e))?;
    file.sync_data().map_err(|e| ("fdatasync", e))?;
    storage.sync_dir().map_err(|e| ("directory sync for", e))?;
    segment.len = SEGMENT_HEADER_LEN as u64;
    Ok(())
}

/// A batch at least this large means many writers are waiting: wait [`GROUP_COMMIT_DELAY`]
/// before taking the next batch.
const GROUP_COMMIT_SIBLINGS_MIN: u64 = 8;
const GROUP_COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(50);

/// The body of the "aisle-wal" thread: sleep until there is work, commit a batch, repeat.
pub(crate) fn run(shared: Arc<Shared>) {
    let interval = shared.config.async_sync_interval;
    let lazy_sync = shared.config.durability == Durability::Async;
    // When the oldest unsynced write in Async mode must be synced by.
    let mut sync_due: Option<Instant> = None;
    loop {
        let closing = {
            let mut pending = shared.pending.lock();
            loop {
                if pending.closing || !pending.buf.is_empty() {
                    break;
                }
                pending.writer_idle = true;
                match sync_due {
                    Some(due) if Instant::now() >= due => break,
                    Some(due) => {
                        shared.writer_wake.wait_until(&mut pending, due);
                    }
                    None => shared.writer_wake.wait(&mut pending),
                }
                pending.writer_idle = false;
            }
            pending.writer_idle = false;
            pending.closing
        };
        let force_sync = closing || sync_due.is_some_and(|due| Instant::now() >= due);
        let written_before = shared.written_lsn.load(Ordering::Acquire);
        {
            let mut segment = shared.segment.lock();
            // Errors reach callers through the read-only state; the thread itself just goes on
            // (and idles, as appends are refused) until it is told to close.
            let _ = shared.commit(&mut segment, force_sync);
        }
        if closing {
            break;
        }
        // Under load, the waiters just woken are about to submit again: a short pause lets
        // them join the next batch instead of leaving it to the half that arrived during the
        // fdatasync (two half-full batches per round trip). Idle or light load never waits.
        let batch = shared.written_lsn.load(Ordering::Acquire).saturating_sub(written_before);
        if !lazy_sync && batch >= GROUP_COMMIT_SIBLINGS_MIN {
            std::thread::sleep(GROUP_COMMIT_DELAY);
        }
        let unsynced = shared.synced_lsn.load(Ordering::Acquire) < shared.written_lsn.load(Ordering::Acquire);
        sync_due = match sync_due {
            _ if !lazy_sync || !unsynced || shared.read_only.get().is_some() => None,
            Some(due) => Some(due),
            None => Some(Instant::now() + interval),
        };
    }
    shared.closed.store(true, Ordering::Release);
    shared.wake_waiters();
}
