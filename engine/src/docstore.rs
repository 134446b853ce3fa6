//! A small document-store trait, so the engine's derived indexes (today the audit trail; later
//! the services' documents) do not depend on one storage crate.
//!
//! [`SledStore`] is the embedded default under `<data-dir>/docs`; [`MemoryStore`] serves tests.
//! The WAL is never stored here: it is aisle's own segment files.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

/// Ordered key-value trees.
pub trait DocumentStore: Send + Sync + std::fmt::Debug {
    /// Writes every entry (tree, key, value) atomically: after a crash either all of them are
    /// there or none.
    fn put_batch(&self, entries: &[(&'static str, Vec<u8>, Vec<u8>)]) -> io::Result<()>;
    fn get(&self, tree: &'static str, key: &[u8]) -> io::Result<Option<Vec<u8>>>;
    /// Entries whose key starts with `prefix` and sorts after `after`, in key order.
    fn scan(
        &self,
        tree: &'static str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Makes everything written so far durable.
    fn flush(&self) -> io::Result<()>;
}

/// sled, the embedded default.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store; its cache is kept small because the engine's own state is
    /// what should own the memory.
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let db = sled::Config::new().path(path).cache_capacity(64 << 20).open().map_err(io::Error::other)?;
        Ok(SledStore { db })
    }
}

impl DocumentStore for SledStore {
    fn put_batch(&self, entries: &[(&'static str, Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional as _;
        let mut batches: BTreeMap<&str, sled::Batch> = BTreeMap::new();
        for (tree, key, value) in entries {
            batches.entry(tree).or_default().insert(key.as_slice(), value.as_slice());
        }
        let (names, batches): (Vec<&str>, Vec<sled::Batch>) = batches.into_iter().unzip();
        let trees = names
            .iter()
            .map(|name| self.db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)?;
        // One transaction over every tree touched, so a batch is never half stored.
        trees[..]
            .transaction(|views| {
                for (view, batch) in views.iter().zip(&batches) {
                    view.apply_batch(batch)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| io::Error::other(format!("{e:?}")))
    }

    fn get(&self, tree: &'static str, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let tree = self.db.open_tree(tree).map_err(io::Error::other)?;
        Ok(tree.get(key).map_err(io::Error::other)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        tree: &'static str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let tree = self.db.open_tree(tree).map_err(io::Error::other)?;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        let mut out = Vec::new();
        for entry in tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, value) = entry.map_err(io::Error::other)?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    fn flush(&self) -> io::Result<()> {
        self.db.flush().map(|_| ()).map_err(io::Error::other)
    }
}

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// In memory, for tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    trees: Arc<RwLock<BTreeMap<&'static str, Tree>>>,
}

impl DocumentStore for MemoryStore {
    fn put_batch(&self, entries: &[(&'static str, Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        let mut trees = self.trees.write();
        for (tree, key, value) in entries {
            trees.entry(tree).or_default().insert(key.clone(), value.clone());
        }
        Ok(())
    }

    fn get(&self, tree: &'static str, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.trees.read().get(tree).and_then(|t| t.get(key).cloned()))
    }

    fn scan(
        &self,
        tree: &'static str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let trees = self.trees.read();
        let Some(tree) = trees.get(tree) else { return Ok(Vec::new()) };
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        Ok(tree
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(store: &dyn DocumentStore) {
        let entries: Vec<(&'static str, Vec<u8>, Vec<u8>)> =
            ["a/1", "a/2", "a/3", "b/1"].iter().map(|k| ("t", k.as_bytes().to_vec(), k.as_bytes().to_vec())).collect();
        store.put_batch(&entries).expect("put");
        let keys = |after: Option<&[u8]>, limit| -> Vec<Vec<u8>> {
            store.scan("t", b"a/", after, limit).expect("scan").into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(None, 10), [b"a/1".to_vec(), b"a/2".to_vec(), b"a/3".to_vec()]);
        assert_eq!(keys(Some(b"a/1"), 1), [b"a/2".to_vec()]);
        assert_eq!(store.get("t", b"b/1").expect("get"), Some(b"b/1".to_vec()));
        assert_eq!(store.get("u", b"b/1").expect("get"), None);
        store.flush().expect("flush");
    }

    #[test]
    fn memory_and_sled_agree() {
        check(&MemoryStore::default());
        let dir = tempfile::tempdir().expect("tempdir");
        check(&SledStore::open(dir.path()).expect("sled"));
    }
}
