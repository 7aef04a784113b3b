//! The LSN cache: LSNs this node joined, newest first, kept in a small text file so they are
//! tried after a restart (thesis 4.3.1: LAN first, then the cache, then the master).
//!
//! ```text
//! fleetmesh-lan-cache 1
//! <node id in hex, or -> <socket address>
//! ```
//! Every change rewrites the file through a temporary file in the same directory, synced and
//! then renamed over the old one, so a crash leaves the old or the new list, never half of one.

use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use fleetmesh_driver::NodeId;

const HEADER: &str = "fleetmesh-lan-cache 1";

/// Why the cache could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading or writing the file failed.
    #[error("lsn cache i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a cache this version wrote.
    #[error("lsn cache is corrupt at line {line}")]
    Corrupt {
        /// The first bad line (1-based).
        line: usize,
    },
}

/// One cached LSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it was reached.
    pub addr: SocketAddr,
    /// Its id, when known.
    pub id: Option<NodeId>,
}

/// The cached LSNs, newest first, at most `max`.
#[derive(Debug)]
pub(crate) struct LsnCache {
    path: Option<PathBuf>,
    entries: Vec<Entry>,
    max: usize,
}

impl LsnCache {
    /// The cache at `path` (read now; a missing file is an empty cache), or in memory only.
    pub(crate) fn open(path: Option<PathBuf>, max: usize) -> Result<Self, CacheError> {
        let entries = match &path {
            Some(p) => load(p)?,
            None => Vec::new(),
        };
        Ok(LsnCache { path, entries: entries.into_iter().take(max).collect(), max })
    }

    /// Saves to `path` from now on (after a corrupt file was set aside).
    pub(crate) fn with_path(mut self, path: Option<PathBuf>) -> Self {
        self.path = path;
        self
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Puts `entry` first (replacing any entry at its address) and saves.
    pub(crate) fn remember(&mut self, entry: Entry) -> Result<(), CacheError> {
        if self.entries.first() == Some(&entry) {
            return Ok(());
        }
        self.entries.retain(|e| e.addr != entry.addr);
        self.entries.insert(0, entry);
        self.entries.truncate(self.max);
        self.save()
    }

    /// Drops the entry at `addr` and saves.
    pub(crate) fn forget(&mut self, addr: SocketAddr) -> Result<(), CacheError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.addr != addr);
        if self.entries.len() == before {
            return Ok(());
        }
        self.save()
    }

    fn save(&self) -> Result<(), CacheError> {
        let Some(path) = &self.path else { return Ok(()) };
        let mut text = String::from(HEADER);
        text.push('\n');
        for e in &self.entries {
            let id = e.id.map_or_else(|| "-".to_owned(), |id| id.to_string());
            text.push_str(&format!("{id} {}\n", e.addr));
        }
        let tmp = path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Reads the cache file at `path`; a missing file is an empty cache.
pub fn load(path: &Path) -> Result<Vec<Entry>, CacheError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(CacheError::Corrupt { line: 1 });
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let corrupt = CacheError::Corrupt { line: i + 2 };
            let (id, addr) = line.split_once(' ').ok_or(CacheError::Corrupt { line: i + 2 })?;
            let id = match id {
                "-" => None,
                hex => Some(hex.parse().map_err(|_| CacheError::Corrupt { line: i + 2 })?),
            };
            let addr = addr.parse().map_err(|_| corrupt)?;
            Ok(Entry { addr, id })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Entry {
        Entry { addr: SocketAddr::from(([10, 0, 0, n], 4000)), id: Some(NodeId::hash(&[n])) }
    }

    #[test]
    fn survives_reopening_newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lsn-cache");
        let mut cache = LsnCache::open(Some(path.clone()), 3).unwrap();
        for n in 1..=4 {
            cache.remember(entry(n)).unwrap();
        }
        cache.remember(entry(2)).unwrap();
        cache.remember(Entry { addr: "[fe80::1]:4000".parse().unwrap(), id: None }).unwrap();
        cache.forget(entry(4).addr).unwrap();
        let again = LsnCache::open(Some(path.clone()), 3).unwrap();
        assert_eq!(again.entries(), cache.entries());
        assert_eq!(again.entries().len(), 2);
        assert_eq!(again.entries()[1], entry(2));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lsn-cache");
        std::fs::write(&path, "something else\n").unwrap();
        assert!(matches!(load(&path), Err(CacheError::Corrupt { line: 1 })));
        std::fs::write(&path, format!("{HEADER}\n- 10.0.0.1:4000\nzz 10.0.0.2:4000\n")).unwrap();
        assert!(matches!(load(&path), Err(CacheError::Corrupt { line: 3 })));
        assert!(load(&dir.path().join("missing")).unwrap().is_empty());
    }
}
