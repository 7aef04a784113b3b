//! `fleetmesh config check FILE`: validates a config file the way the daemon will read it.
//!
//! A mistake prints `FILE:LINE:COL: message` on stderr (the form editors and CI jump to) and
//! exits 1; a good file prints the effective config, every default filled in, on stdout.

use std::path::{Path, PathBuf};

use super::{load, to_toml, ConfigError, MasterConfig, NodeConfig};

/// `fleetmesh config …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Check a config file; print the effective config (defaults filled in), or the line,
    /// column and field of the first mistake (exit status 1).
    Check(CheckArgs),
}

/// Which daemon a file configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// `fleetmesh master`.
    Master,
    /// `fleetmesh node`.
    Node,
}

/// `fleetmesh config check`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
    /// The file.
    file: PathBuf,
    /// Which daemon it is for. Default: guessed from the file name (containing "master" or
    /// "node").
    #[arg(long, value_enum)]
    kind: Option<Kind>,
}

/// Why `config check` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// The file has a mistake (or cannot be read).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--kind` is needed.
    #[error("{0}: cannot tell a master's config from a node's by its name; add --kind master or --kind node")]
    UnknownKind(PathBuf),
}

/// Runs `fleetmesh config …`; returns the effective config to print.
pub(crate) fn run(command: ConfigCommand) -> Result<String, CheckError> {
    match command {
        ConfigCommand::Check(args) => check(&args.file, args.kind),
    }
}

fn check(file: &Path, kind: Option<Kind>) -> Result<String, CheckError> {
    let kind = kind.or_else(|| guess(file)).ok_or_else(|| CheckError::UnknownKind(file.into()))?;
    Ok(match kind {
        Kind::Master => to_toml(&load::<MasterConfig>(file)?),
        Kind::Node => to_toml(&load::<NodeConfig>(file)?),
    })
}

fn guess(file: &Path) -> Option<Kind> {
    let name = file.file_name()?.to_str()?.to_ascii_lowercase();
    match (name.contains("master"), name.contains("node")) {
        (true, false) => Some(Kind::Master),
        (false, true) => Some(Kind::Node),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_guessed_only_when_the_name_is_unambiguous() {
        assert_eq!(guess(Path::new("/etc/fleetmesh/master.toml")), Some(Kind::Master));
        assert_eq!(guess(Path::new("Node-2.toml")), Some(Kind::Node));
        assert_eq!(guess(Path::new("fleet.toml")), None);
        assert_eq!(guess(Path::new("master-node.toml")), None);
    }
}
