//! What `fleetmesh master` and `fleetmesh node` share: their errors, their runtime, and how a
//! config file is read with the command line's flags on top.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::config::{self, ConfigError};

/// Why a daemon stopped with an error (exit status 1).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    /// The config file is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The node or master did not start; the message names the step and what to fix.
    #[error(transparent)]
    Start(#[from] fleetmesh::StartError),
    /// The master's admin API did not start.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// The node or master stopped by itself (its driver ended: a socket failed).
    #[error("the {0} stopped unexpectedly; see the log above")]
    Stopped(&'static str),
}

/// A tokio runtime: one thread for a node (an idle device should cost next to nothing), all
/// cores for a master (it serves the fleet).
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, DaemonError> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(DaemonError::Runtime)
}

/// The config: the file at `path` (the defaults when there is none), then `flags` on top.
pub(crate) fn load_config<T: DeserializeOwned + Default>(
    path: Option<&Path>,
    flags: impl FnOnce(&mut T),
) -> Result<T, ConfigError> {
    let mut config = match path {
        Some(path) => config::load(path)?,
        None => T::default(),
    };
    flags(&mut config);
    Ok(config)
}

/// Logs each field whose new value a reload cannot apply, and keeps running with the old one.
pub(crate) fn needs_restart(changed: &[(&str, bool)]) {
    for (field, changed) in changed {
        if *changed {
            tracing::warn!(field, "changed in the config file; it takes effect on restart");
        }
    }
}

/// The config file's path, for the log.
pub(crate) fn shown(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "(none: defaults)".to_owned(), |p| p.display().to_string())
}
