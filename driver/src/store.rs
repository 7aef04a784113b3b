//! The [`Store`] trait: where a node keeps what must outlive a message (DHT records, the routing
//! table, the LSN cache, metric histories).
//!
//! Keys live in named tables ("records", "routing", ...). What later implementations must do:
//! * **Persistent** (an embedded database): make every `put` and `remove` durable before
//!   returning, so a crash right after loses nothing acknowledged; reopen the same tables on
//!   restart; report a full disk or a corrupt file as [`StoreError`], never panic.
//! * All implementations: `scan` returns entries in ascending key order, so callers can page.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use crate::dht::{
    persist::{RECORDS_TABLE, ROUTING_TABLE},
    Saved, StoreOp,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing storage failed.
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The backing storage is corrupt or was written by an incompatible version.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// A size or count limit would be exceeded.
    #[error("store is full: {0}")]
    Full(String),
}

/// A key-value store with named tables.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value under `key` in `table`.
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets `key` in `table` to `value`, replacing any earlier value.
    async fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key` from `table`; returns whether it was there.
    async fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StoreError>;
    /// Every entry of `table` in ascending key order.
    async fn scan(&self, table: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
}

#[async_trait]
impl<T: Store + ?Sized> Store for Arc<T> {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(table, key).await
    }
    async fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        (**self).put(table, key, value).await
    }
    async fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        (**self).remove(table, key).await
    }
    async fn scan(&self, table: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        (**self).scan(table).await
    }
}

/// Carries out one write a sans-IO machine asked for ([`Machine::poll_store`](crate::driver::Machine::poll_store)).
pub async fn apply<S: Store + ?Sized>(store: &S, op: &StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::Put { table, key, value } => store.put(table, key, value).await,
        StoreOp::Remove { table, key } => store.remove(table, key).await.map(|_| ()),
    }
}

/// Reads what the DHT saved in `store`, to hand to
/// [`Node::dht_restore`](crate::overlay::Node::dht_restore) at startup. Entries that do not
/// decode are skipped (see [`Saved::from_tables`]).
pub async fn load_dht<S: Store + ?Sized>(store: &S) -> Result<Saved, StoreError> {
    let records = store.scan(RECORDS_TABLE).await?;
    let contacts = store.scan(ROUTING_TABLE).await?;
    Ok(Saved::from_tables(&records, &contacts))
}

type Tables = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// An in-memory [`Store`]; clones share the same data. Nothing survives the process.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryStore {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Every mutation is a single map operation, so a poisoned lock holds consistent data.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(table).and_then(|t| t.get(key)).cloned())
    }

    async fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.lock().entry(table.to_owned()).or_default().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    async fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.lock().get_mut(table).is_some_and(|t| t.remove(key).is_some()))
    }

    async fn scan(&self, table: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .get(table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_tables_are_separate_and_ordered() {
        let s = MemoryStore::new();
        s.put("a", b"2", b"two").await.unwrap();
        s.put("a", b"1", b"one").await.unwrap();
        s.put("b", b"1", b"other").await.unwrap();
        assert_eq!(s.get("a", b"1").await.unwrap().as_deref(), Some(&b"one"[..]));
        let keys: Vec<_> = s.scan("a").await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"1".to_vec(), b"2".to_vec()]);
        assert!(s.remove("a", b"1").await.unwrap());
        assert!(!s.remove("a", b"1").await.unwrap());
        assert_eq!(s.get("b", b"1").await.unwrap().as_deref(), Some(&b"other"[..]));
        assert!(s.scan("missing").await.unwrap().is_empty());
    }
}
