//! The data directory: what a node or master keeps between runs.
//!
//! | file | what | written |
//! |---|---|---|
//! | `node.key`, `master.key` | the identity's secret keys (mode 0600) | once, on first start |
//! | `network` | the enrollment link without its token: master addresses, network key | on join |
//! | `node.cert` | the node's certificate (CBOR) | on each enrollment |
//! | `state.redb` | node: DHT records and routing table; master: certificates issued, the revocation list, the node registry (the persistent `Store`) | as they change |
//! | `tokens/` | (master) enrollment tokens, one file each | on create and use |
//! | `lsn-cache` | LSNs seen on this LAN, newest first | as they change |
//!
//! Small files are replaced atomically (write a temporary file, sync, rename), so a crash
//! leaves the old or the new content, never a torn one.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use super::StartError;
use crate::{trust::Certificate, Identity};

/// The data directory, created on first use (mode 0700 on Unix).
#[derive(Clone, Debug)]
pub(crate) struct DataDir(PathBuf);

impl DataDir {
    pub(crate) fn open(path: &Path) -> Result<Self, StartError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(path).map_err(|e| StartError::data_dir(path, e))?;
        Ok(DataDir(path.to_path_buf()))
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The identity in `name`, generated on first start; refused when others can read it.
    pub(crate) fn identity(&self, name: &str) -> Result<Identity, StartError> {
        let path = self.file(name);
        let identity = Identity::load_or_generate(&path)
            .map_err(|source| StartError::KeyFile { path: path.clone(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let mode = fs::metadata(&path).map_err(|e| StartError::data_dir(&path, e))?.mode();
            if mode & 0o077 != 0 {
                return Err(StartError::KeyFilePermissions { path, mode: mode & 0o7777 });
            }
        }
        Ok(identity)
    }

    /// The text in `name`, or `None` when the file does not exist.
    pub(crate) fn read_text(&self, name: &str) -> Result<Option<String>, StartError> {
        let path = self.file(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StartError::data_dir(path, e)),
        }
    }

    /// The certificate in `node.cert`, if any.
    pub(crate) fn certificate(&self) -> Result<Option<Certificate>, StartError> {
        let path = self.file(CERT_FILE);
        match fs::read(&path) {
            Ok(bytes) => Certificate::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| StartError::Corrupt { path, detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StartError::data_dir(path, e)),
        }
    }

    /// Replaces `name` with `bytes` atomically.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StartError> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename is durable once the directory is synced.
            fs::File::open(&self.0)?.sync_all()
        };
        write().map_err(|e| StartError::data_dir(path, e))
    }
}

/// The node's certificate file.
pub(crate) const CERT_FILE: &str = "node.cert";
/// The enrolled network (the link without its token).
pub(crate) const NETWORK_FILE: &str = "network";
/// The persistent store.
pub(crate) const STATE_FILE: &str = "state.redb";
/// The LAN discovery cache.
pub(crate) const LSN_CACHE_FILE: &str = "lsn-cache";
