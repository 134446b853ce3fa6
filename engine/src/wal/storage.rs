//! Where log (and snapshot) files live: the [`LogStorage`] trait, a real directory
//! ([`DirStorage`]), and an in-memory file system that can simulate crashes ([`MemStorage`]).
//!
//! # Durability model
//! Both implementations follow the same assumptions, which the recovery rules depend on:
//! - `sync_data` on a file makes every byte previously written to it durable;
//! - a crash loses only writes not yet synced, and may tear the tail (a prefix of the unsynced
//!   bytes may survive);
//! - creating, renaming or removing a file is durable only after `sync_dir`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rkyv::util::AlignedVec;

/// Everything the write-ahead log and the snapshotter do to files, so tests can substitute an
/// in-memory file system that loses unsynced data on demand.
pub trait LogStorage: Send + Sync + std::fmt::Debug {
    /// Names of the files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole file, 16-byte aligned in memory so records can be read in place.
    fn read(&self, name: &str) -> io::Result<AlignedVec<16>>;
    /// A new empty file; an error if one with that name exists.
    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>>;
    /// Cuts the file to `len` bytes; the new length is durable on return.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes earlier creates, renames and removes durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// When the file was last written (the age log retention goes by).
    fn modified(&self, name: &str) -> io::Result<std::time::SystemTime>;
}

/// A file opened for appending.
pub trait LogFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: everything written so far is durable on success.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Files in a directory of the real file system.
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Uses `dir`, creating it (and its parents) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(DirStorage { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn at(&self, name: &str) -> io::Result<PathBuf> {
        // Names come from our own code, but a separator would escape the directory.
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid file name {name:?}")));
        }
        Ok(self.dir.join(name))
    }
}

struct DirFile(File);

impl LogFile for DirFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl LogStorage for DirStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<AlignedVec<16>> {
        let mut file = File::open(self.at(name)?)?;
        let len = file.metadata()?.len();
        let mut bytes = AlignedVec::with_capacity(usize::try_from(len).unwrap_or(0));
        bytes.extend_from_reader(&mut file)?;
        Ok(bytes)
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(self.at(name)?)?;
        Ok(Box::new(DirFile(file)))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.at(name)?)?;
        file.set_len(len)?;
        // sync_all, not sync_data: the new length is metadata.
        file.sync_all()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.at(name)?)
    }

    fn modified(&self, name: &str) -> io::Result<std::time::SystemTime> {
        fs::metadata(self.at(name)?)?.modified()
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.at(from)?, self.at(to)?)
    }

    fn sync_dir(&self) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(&self.dir)?.sync_all()
        }
        // Directories cannot be opened for syncing elsewhere; entries are durable with the files.
        #[cfg(not(unix))]
        {
            Ok(())
        }
    }
}

/// An in-memory file system for crash tests. Clones share the same files.
///
/// Each file tracks the bytes written and the length synced; the directory tracks the entries
/// as they are now and as they were at the last `sync_dir`. [`MemStorage::crash`] keeps only
/// what is durable: the entries of the last `sync_dir` (so a file created but never dir-synced
/// vanishes, and an unsynced remove or rename is undone), each cut to its synced length. File
/// handles opened before a crash fail afterwards, as the process that held them is gone.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<MemFs>>,
}

type FileId = u64;

#[derive(Debug, Default)]
struct MemFs {
    next_id: FileId,
    /// Bumped by every crash; handles from an earlier generation are dead.
    generation: u64,
    fail_syncs: bool,
    entries: BTreeMap<String, FileId>,
    durable_entries: BTreeMap<String, FileId>,
    files: HashMap<FileId, MemFile>,
}

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    synced: usize,
    sync_calls: u64,
    /// Last write; `None` reads as the Unix epoch (a file set up by a test).
    modified: Option<std::time::SystemTime>,
}

impl MemFs {
    fn file(&self, name: &str) -> io::Result<&MemFile> {
        self.entries.get(name).and_then(|id| self.files.get(id)).ok_or_else(|| not_found(name))
    }

    fn file_mut(&mut self, name: &str) -> io::Result<&mut MemFile> {
        self.entries.get(name).and_then(|id| self.files.get_mut(id)).ok_or_else(|| not_found(name))
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name:?}"))
}

impl MemStorage {
    pub fn new() -> Self {
        MemStorage::default()
    }

    /// Simulates a power loss: every unsynced byte and unsynced directory change is lost.
    pub fn crash(&self) {
        let mut fs = self.inner.lock();
        fs.generation += 1;
        fs.entries = fs.durable_entries.clone();
        let live: std::collections::HashSet<FileId> = fs.entries.values().copied().collect();
        fs.files.retain(|id, _| live.contains(id));
        for file in fs.files.values_mut() {
            file.data.truncate(file.synced);
        }
    }

    /// The current contents of a file, synced or not.
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.inner.lock().file(name).ok().map(|f| f.data.clone())
    }

    /// Replaces (or creates) a file with `bytes`, durably, as if written and synced earlier.
    pub fn set_file(&self, name: &str, bytes: Vec<u8>) {
        let mut fs = self.inner.lock();
        let id = match fs.entries.get(name) {
            Some(&id) => id,
            None => {
                let id = fs.next_id;
                fs.next_id += 1;
                id
            }
        };
        let synced = bytes.len();
        let file = fs.files.entry(id).or_default();
        file.data = bytes;
        file.synced = synced;
        fs.entries.insert(name.to_owned(), id);
        fs.durable_entries.insert(name.to_owned(), id);
    }

    /// Makes a file look last written at `at` (for log retention tests).
    pub fn set_modified(&self, name: &str, at: std::time::SystemTime) {
        let mut fs = self.inner.lock();
        if let Some(id) = fs.entries.get(name).copied() {
            if let Some(file) = fs.files.get_mut(&id) {
                file.modified = Some(at);
            }
        }
    }

    /// Names of the files present now, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.lock().entries.keys().cloned().collect()
    }

    /// From now on, every `sync_data` fails (while `fail` is true).
    pub fn fail_syncs(&self, fail: bool) {
        self.inner.lock().fail_syncs = fail;
    }

    /// How many times `sync_data` was called on the file now named `name`, failures included.
    pub fn sync_calls(&self, name: &str) -> u64 {
        self.inner.lock().file(name).map_or(0, |f| f.sync_calls)
    }
}

struct MemHandle {
    fs: Arc<Mutex<MemFs>>,
    id: FileId,
    generation: u64,
}

impl MemHandle {
    fn with_file<T>(&self, op: impl FnOnce(&mut MemFile, bool) -> io::Result<T>) -> io::Result<T> {
        let mut fs = self.fs.lock();
        if fs.generation != self.generation {
            return Err(io::Error::other("the storage crashed; this handle is stale"));
        }
        let fail_syncs = fs.fail_syncs;
        match fs.files.get_mut(&self.id) {
            Some(file) => op(file, fail_syncs),
            // Removed and collected: like writing to an unlinked file, nothing to keep.
            None => op(&mut MemFile::default(), fail_syncs),
        }
    }
}

impl LogFile for MemHandle {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with_file(|file, _| {
            file.data.extend_from_slice(buf);
            file.modified = Some(std::time::SystemTime::now());
            Ok(())
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with_file(|file, fail| {
            file.sync_calls += 1;
            if fail {
                return Err(io::Error::other("injected sync failure"));
            }
            file.synced = file.data.len();
            Ok(())
        })
    }
}

impl LogStorage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    fn read(&self, name: &str) -> io::Result<AlignedVec<16>> {
        let fs = self.inner.lock();
        let file = fs.file(name)?;
        let mut bytes = AlignedVec::with_capacity(file.data.len());
        bytes.extend_from_slice(&file.data);
        Ok(bytes)
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let mut fs = self.inner.lock();
        if fs.entries.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("file {name:?} exists")));
        }
        let id = fs.next_id;
        fs.next_id += 1;
        fs.files.insert(id, MemFile::default());
        fs.entries.insert(name.to_owned(), id);
        Ok(Box::new(MemHandle { fs: self.inner.clone(), id, generation: fs.generation }))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut fs = self.inner.lock();
        let file = fs.file_mut(name)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        file.data.resize(len, 0);
        file.synced = len;
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut fs = self.inner.lock();
        fs.entries.remove(name).map(|_| ()).ok_or_else(|| not_found(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut fs = self.inner.lock();
        let id = fs.entries.remove(from).ok_or_else(|| not_found(from))?;
        fs.entries.insert(to.to_owned(), id);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut fs = self.inner.lock();
        fs.durable_entries = fs.entries.clone();
        Ok(())
    }

    fn modified(&self, name: &str) -> io::Result<std::time::SystemTime> {
        Ok(self.inner.lock().file(name)?.modified.unwrap_or(std::time::UNIX_EPOCH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_crash_keeps_only_durable_state() {
        let mem = MemStorage::new();
        let mut a = mem.create("a").expect("create a");
        a.write_all(b"hello").expect("write");
        a.sync_data().expect("sync");
        a.write_all(b" world").expect("write");
        mem.sync_dir().expect("sync dir");
        let mut b = mem.create("b").expect("create b");
        b.write_all(b"lost").expect("write");
        b.sync_data().expect("sync");
        mem.remove("a").expect("remove");
        mem.crash();
        assert_eq!(mem.names(), vec!["a".to_owned()]);
        assert_eq!(mem.file("a").as_deref(), Some(&b"hello"[..]));
        assert!(a.write_all(b"x").is_err(), "handles do not outlive a crash");
    }

    #[test]
    fn dir_storage_basics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = DirStorage::open(dir.path().join("wal")).expect("open");
        let mut file = storage.create("x").expect("create");
        assert!(storage.create("x").is_err());
        file.write_all(&[1; 100]).expect("write");
        file.sync_data().expect("sync");
        storage.sync_dir().expect("sync dir");
        let bytes = storage.read("x").expect("read");
        assert_eq!(bytes.len(), 100);
        assert_eq!(bytes.as_ptr() as usize % 16, 0);
        storage.truncate("x", 10).expect("truncate");
        assert_eq!(storage.read("x").expect("read").len(), 10);
        storage.rename("x", "y").expect("rename");
        assert_eq!(storage.list().expect("list"), vec!["y".to_owned()]);
        storage.remove("y").expect("remove");
        assert!(storage.at("../evil").is_err());
    }
}
