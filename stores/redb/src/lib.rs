//! # fleetmesh-redb
//!
//! A persistent [`Store`] for fleetmesh on [redb](https://docs.rs/redb): a pure-Rust, embedded,
//! ACID key-value database in a single file. No server, no C library, no build script.
//!
//! * **Durable on every write.** Each `put` and `remove` is its own write transaction,
//!   committed with redb's default `Durability::Immediate` (the file is synced before the
//!   commit returns), so a crash right after a call loses nothing it acknowledged. A `remove`
//!   that finds nothing commits nothing.
//! * **Tables on demand.** A fleetmesh table is a redb table of the same name, `&[u8] → &[u8]`,
//!   created by its first `put`; reading a table that does not exist yet is an empty result,
//!   not an error. Keys are ordered bytewise, so `scan` returns ascending keys as the trait
//!   requires.
//! * **Errors, not panics.** I/O failures become [`StoreError::Io`]; a file that is not a redb
//!   database, fails redb's header checks, or was written by an incompatible redb version
//!   becomes [`StoreError::Corrupt`]; a value too large for redb becomes [`StoreError::Full`].
//!   redb checksums its header but not every page, and damage it does not detect can make it
//!   panic; such a panic (while opening, or inside a call) is caught and reported as
//!   [`StoreError::Corrupt`] too. Damage inside a value can go unnoticed, as with any store
//!   without per-page checksums; DHT records carry their own signatures.
//! * **Off the async threads.** redb calls block (a commit waits for the disk), so every call
//!   runs on tokio's blocking pool (`spawn_blocking`): use the store from inside a tokio
//!   runtime, as the fleetmesh driver does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fleetmesh_driver::StoreError> {
//! use fleetmesh_driver::Store;
//! use fleetmesh_redb::RedbStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store = RedbStore::open(dir.path().join("node.redb"))?;
//! store.put("records", b"key", b"value").await?;
//! assert_eq!(store.get("records", b"key").await?.as_deref(), Some(&b"value"[..]));
//! # Ok(())
//! # }
//! ```

use std::{any::Any, fmt, io, panic, path::Path, sync::Arc};

use async_trait::async_trait;
use fleetmesh_driver::{Store, StoreError};
use redb::{Database, ReadableTable, TableDefinition, TableError};

/// A [`Store`] in one redb database file. Clones share the database.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

impl RedbStore {
    /// Opens the database at `path`, creating the file if it does not exist. Blocks while redb
    /// checks the file (and repairs it after an unclean shutdown); call it before the runtime
    /// starts serving, or inside `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // redb reports what it detects as errors but may panic on damage it does not detect
        // (it has no page checksums); opening runs the repair walk after an unclean shutdown.
        let opened = panic::catch_unwind(|| Database::create(path)).map_err(corrupt_panic)?;
        Ok(RedbStore { db: Arc::new(opened.map_err(map_err)?) })
    }

    fn get_blocking(db: &Database, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = db.begin_read().map_err(map_err)?;
        let table = match tx.open_table(table(name)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(map_err(e)),
        };
        let value = table.get(key).map_err(map_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn put_blocking(db: &Database, name: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let tx = db.begin_write().map_err(map_err)?;
        {
            let mut table = tx.open_table(table(name)).map_err(map_err)?;
            table.insert(key, value).map_err(map_err)?;
        }
        tx.commit().map_err(map_err)
    }

    fn remove_blocking(db: &Database, name: &str, key: &[u8]) -> Result<bool, StoreError> {
        // Look first in a read transaction: removing nothing needs no write (and no sync).
        if Self::get_blocking(db, name, key)?.is_none() {
            return Ok(false);
        }
        let tx = db.begin_write().map_err(map_err)?;
        let removed = {
            let mut table = tx.open_table(table(name)).map_err(map_err)?;
            let removed = table.remove(key).map_err(map_err)?;
            removed.is_some()
        };
        tx.commit().map_err(map_err)?;
        Ok(removed)
    }

    fn scan_blocking(db: &Database, name: &str) -> Result<Entries, StoreError> {
        let tx = db.begin_read().map_err(map_err)?;
        let table = match tx.open_table(table(name)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(map_err(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(map_err)? {
            let (k, v) = entry.map_err(map_err)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Runs `f` on the database on tokio's blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(corrupt_panic(e.into_panic())),
            Err(e) => Err(StoreError::Io(io::Error::other(format!("store task failed: {e}")))),
        }
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        self.blocking(move |db| Self::get_blocking(db, &table, &key)).await
    }

    async fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (table, key, value) = (table.to_owned(), key.to_vec(), value.to_vec());
        self.blocking(move |db| Self::put_blocking(db, &table, &key, &value)).await
    }

    async fn remove(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        let (table, key) = (table.to_owned(), key.to_vec());
        self.blocking(move |db| Self::remove_blocking(db, &table, &key)).await
    }

    async fn scan(&self, table: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let table = table.to_owned();
        self.blocking(move |db| Self::scan_blocking(db, &table)).await
    }
}

/// A panic inside redb: its invariants did not hold for what it read, i.e. the file is damaged
/// in a way its checks do not catch.
fn corrupt_panic(payload: Box<dyn Any + Send>) -> StoreError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_owned());
    StoreError::Corrupt(format!("database failed an internal check: {what}"))
}

/// Maps any redb error onto the store's error kinds.
fn map_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        // redb reports a file that does not start with its magic number as invalid data.
        redb::Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            StoreError::Corrupt(format!("not a redb database: {e}"))
        }
        redb::Error::Io(e) => StoreError::Io(e),
        redb::Error::Corrupted(what) => StoreError::Corrupt(what),
        redb::Error::UpgradeRequired(version) => {
            StoreError::Corrupt(format!("written in redb file format {version}, unsupported here"))
        }
        redb::Error::RepairAborted => StoreError::Corrupt("repair aborted".to_owned()),
        redb::Error::TableTypeMismatch { table, .. } => {
            StoreError::Corrupt(format!("table {table} has unexpected key or value types"))
        }
        redb::Error::TableIsMultimap(table) => {
            StoreError::Corrupt(format!("table {table} is a multimap table"))
        }
        redb::Error::ValueTooLarge(size) => {
            StoreError::Full(format!("value of {size} bytes is too large"))
        }
        other => StoreError::Io(io::Error::other(other.to_string())),
    }
}
