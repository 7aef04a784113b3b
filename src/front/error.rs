//! What can go wrong starting a node or a master: one variant per step, each naming what to fix.

use std::{net::SocketAddr, path::PathBuf};

use crate::{wire::ErrorMessage, KeyFileError, StoreError, TransportError};

/// Why a node or master did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be created or written.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file could not be read, written or understood.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: KeyFileError,
    },
    /// The key file can be read by others than its owner (as ssh, we refuse to use it).
    #[error(
        "key file {path} has mode {mode:o}; it must be readable by its owner only (chmod 600)"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A state file in the data directory is not what this version wrote.
    #[error("{path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The node has no certificate and no enrollment link with a token to get one.
    #[error(
        "this node is not enrolled yet: start it once with an enrollment link (`--join LINK`)"
    )]
    NotEnrolled,
    /// The node was given a link for another network than the one it is enrolled in.
    #[error("the link names another network than the one this node is enrolled in ({path})")]
    OtherNetwork {
        /// The file holding the enrolled network.
        path: PathBuf,
    },
    /// The socket could not be bound (port in use, address not on this host, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: TransportError,
    },
    /// The master's tokens directory could not be opened.
    #[error(transparent)]
    Tokens(#[from] super::TokenError),
    /// The persistent store could not be opened or read.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
    /// The master refused the enrollment (a used or unknown token, a policy).
    #[error("the master refused to enroll this node: {0}")]
    EnrollmentRefused(String),
    /// The master did not answer the enrollment in time (unreachable, or a wrong address).
    #[error("no answer from the master at {masters:?} within {secs} s")]
    EnrollmentTimeout {
        /// Where we asked.
        masters: Vec<SocketAddr>,
        /// How long we waited.
        secs: u64,
    },
}

impl StartError {
    pub(crate) fn data_dir(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StartError::DataDir { path: path.into(), source }
    }

    pub(crate) fn refused(error: &ErrorMessage) -> Self {
        StartError::EnrollmentRefused(format!("{:?}: {}", error.code, error.detail))
    }
}
