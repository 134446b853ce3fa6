//! The projection pipeline: how anything derived from the log reaches the document store.
//!
//! A projection (the audit trail today; order documents, customer indexes and the change
//! feed's cursors later) derives items from each applied record, live and in replay, and hands
//! them to [`Pipeline::send`]. One writer thread per projection stores them.
//!
//! **Architecture Invariant:** a projection follows the durable log. The writer holds back
//! every item whose record is past the WAL's durable LSN ([`DurableWatch`]), so a crash or a
//! failed fsync never leaves an item for a record that is not in the log (whose LSN would then
//! be given to another record). Each batch is stored atomically together with the
//! projection's applied LSN (tree [`PROJECTIONS_TREE`], key [`Projection::NAME`]); items are
//! keyed by their record's LSN, so replaying a record rewrites its items instead of
//! duplicating them. [`Pipeline::flush_through`] moves the applied LSN to a point the caller
//! knows every record up to has been handed over (a snapshot's LSN).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::Mutex;

use crate::docstore::DocumentStore;
use crate::wal::{DurableWatch, Lsn};

/// Where every projection stores the LSN it has applied through, in the same batch as its data.
pub const PROJECTIONS_TREE: &str = "projections";
/// Items stored in one batch, at most.
const BATCH_ITEMS_MAX: usize = 4096;
/// How often the writer looks at the durable LSN while items wait for it.
const DURABLE_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// One write of a batch: tree, key, value.
pub type Entry = (&'static str, Vec<u8>, Vec<u8>);

/// What a projection derives and how it is stored.
pub trait Projection: Send + 'static {
    /// What one record yields (e.g. one movement per touched cell); knows its record's LSN.
    type Item: Send + 'static;
    /// The projection's name: its writer thread's and its applied-LSN key's.
    const NAME: &'static str;
    /// Items waiting for the writer, at most; past it [`Pipeline::has_room`] says no.
    const QUEUE_MAX: usize;
    fn lsn(item: &Self::Item) -> Lsn;
    /// The store entries of durable items, given in LSN order (a record's items together, in
    /// the order they were sent). Keys must be a function of the record, never of time.
    fn entries(&mut self, items: &[Self::Item], out: &mut Vec<Entry>);
}

enum Message<T> {
    Items(Vec<T>),
    /// Store every durable item received so far and make the store durable; with an LSN,
    /// every record through it is known to be delivered, and the applied LSN moves to it.
    Flush(Option<Lsn>, Sender<std::io::Result<()>>),
}

/// A running projection: its queue, its writer thread and what it has done.
pub struct Pipeline<P: Projection> {
    /// Taken on drop, which ends the writer.
    sender: Option<Sender<Message<P::Item>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    queued: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
    store: Arc<dyn DocumentStore>,
    /// Set once the log is open; until then (replay) every record handed over is durable.
    durable: Arc<OnceLock<DurableWatch>>,
}

impl<P: Projection> std::fmt::Debug for Pipeline<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("name", &P::NAME).field("queued", &self.queued).finish()
    }
}

impl<P: Projection> Pipeline<P> {
    /// Starts the projection's writer thread.
    pub fn start(store: Arc<dyn DocumentStore>, projection: P) -> Self {
        let (sender, receiver) = channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(Mutex::new(None));
        let durable = Arc::new(OnceLock::new());
        let writer = Writer {
            projection,
            store: store.clone(),
            queued: queued.clone(),
            written: written.clone(),
            failure: failure.clone(),
            durable: durable.clone(),
        };
        // The writer ends when the pipeline (the only sender) is dropped; drop joins it, so
        // the store is closed when the engine is.
        let writer = std::thread::Builder::new()
            .name(format!("aisle-{}", P::NAME))
            .spawn(move || writer.run(receiver))
            .expect("spawning a projection writer");
        Pipeline { sender: Some(sender), writer: Some(writer), queued, written, failure, store, durable }
    }

    /// From now on only items of durable records are stored (called once the log is open).
    pub fn follow(&self, watch: DurableWatch) {
        let _ = self.durable.set(watch);
    }

    /// The LSN the stored projection is complete through (0 when nothing was ever flushed).
    pub fn applied_lsn(&self) -> std::io::Result<Lsn> {
        let value = self.store.get(PROJECTIONS_TREE, P::NAME.as_bytes())?;
        Ok(value.and_then(|bytes| bytes.try_into().ok()).map_or(0, u64::from_be_bytes))
    }

    /// Whether the queue has room; checked before a command is applied.
    pub fn has_room(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < P::QUEUE_MAX
    }

    /// Queues the items of one applied record.
    pub fn send(&self, items: Vec<P::Item>) {
        if items.is_empty() {
            return;
        }
        self.queued.fetch_add(items.len(), Ordering::Relaxed);
        if let Some(sender) = &self.sender {
            let _ = sender.send(Message::Items(items));
        }
    }

    /// Waits until every item queued so far whose record is durable is stored, and the store
    /// is durable.
    pub fn flush(&self) -> std::io::Result<()> {
        self.send_flush(None)
    }

    /// Like [`Pipeline::flush`], for a caller that knows every record through `lsn` has been
    /// handed over and is durable (a snapshot, whose locks saw them applied): the applied LSN
    /// moves to `lsn`.
    pub fn flush_through(&self, lsn: Lsn) -> std::io::Result<()> {
        self.send_flush(Some(lsn))
    }

    fn send_flush(&self, through: Option<Lsn>) -> std::io::Result<()> {
        let (done, wait) = channel::bounded(1);
        let stopped = || std::io::Error::other(format!("the {} projection writer has stopped", P::NAME));
        self.sender.as_ref().ok_or_else(stopped)?.send(Message::Flush(through, done)).map_err(|_| stopped())?;
        wait.recv().map_err(|_| stopped())?
    }

    /// Items stored since start.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Why the projection could not be written, if it could not.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }

    /// The store it writes to, for its readers.
    pub fn store(&self) -> &dyn DocumentStore {
        &*self.store
    }
}

impl<P: Projection> Drop for Pipeline<P> {
    fn drop(&mut self) {
        // Closing the channel lets the writer store what is queued, then stop.
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread's side of a pipeline.
struct Writer<P: Projection> {
    projection: P,
    store: Arc<dyn DocumentStore>,
    queued: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
    durable: Arc<OnceLock<DurableWatch>>,
}

impl<P: Projection> Writer<P> {
    fn durable_lsn(&self) -> Lsn {
        self.durable.get().map_or(Lsn::MAX, DurableWatch::durable_lsn)
    }

    fn run(mut self, receiver: Receiver<Message<P::Item>>) {
        // Received but not yet durable, in no particular order.
        let mut waiting: Vec<P::Item> = Vec::new();
        let mut entries = Vec::new();
        let mut open = true;
        while open {
            // With nothing held back, sleep until a message comes; otherwise look at the
            // durable LSN again soon.
            let first = if waiting.is_empty() {
                receiver.recv().ok()
            } else {
                match receiver.recv_timeout(DURABLE_POLL) {
                    Ok(message) => Some(message),
                    Err(channel::RecvTimeoutError::Timeout) => None,
                    Err(channel::RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            };
            if first.is_none() && waiting.is_empty() {
                break;
            }
            let mut flushes = Vec::new();
            let mut next = first;
            while let Some(message) = next.take() {
                match message {
                    Message::Items(items) => waiting.extend(items),
                    Message::Flush(through, done) => flushes.push((through, done)),
                }
                if waiting.len() < BATCH_ITEMS_MAX {
                    next = receiver.try_recv().ok();
                }
            }
            let durable = self.durable_lsn();
            // A stable sort: a record's items stay in the order they were sent.
            waiting.sort_by_key(P::lsn);
            let held_back = waiting.split_off(waiting.partition_point(|item| P::lsn(item) <= durable));
            let stored = waiting.len();
            self.projection.entries(&waiting, &mut entries);
            waiting = held_back;
            let applied = flushes.iter().filter_map(|(through, _)| *through).filter(|&lsn| lsn <= durable).max();
            if let Some(applied) = applied {
                entries.push((PROJECTIONS_TREE, P::NAME.as_bytes().to_vec(), applied.to_be_bytes().to_vec()));
            }
            let mut written = Ok(());
            if !entries.is_empty() {
                if let Err(e) = self.store.put_batch(&entries) {
                    let reason = format!("writing the {} projection: {e}", P::NAME);
                    *self.failure.lock() = Some(reason.clone());
                    written = Err(reason);
                }
                entries.clear();
            }
            self.queued.fetch_sub(stored, Ordering::Relaxed);
            self.written.fetch_add(stored as u64, Ordering::Relaxed);
            if !flushes.is_empty() {
                let result = written.and_then(|()| self.store.flush().map_err(|e| e.to_string()));
                for (through, done) in flushes {
                    let answer = match (&result, through) {
                        (Err(e), _) => Err(std::io::Error::other(e.clone())),
                        (Ok(()), Some(lsn)) if lsn > durable => Err(std::io::Error::other(format!(
                            "the {} projection cannot pass lsn {durable}: the log is not durable beyond it",
                            P::NAME
                        ))),
                        (Ok(()), _) => Ok(()),
                    };
                    let _ = done.send(answer);
                }
            }
        }
    }
}
