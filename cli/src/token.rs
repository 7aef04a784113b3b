//! `fleetmesh token create`: prints an enrollment link, beside a running master or not.
//!
//! Tokens are files in the master's data directory, created and spent by atomic renames
//! ([`fleetmesh::Tokens`]), so this command and a running master never need to talk. The
//! link's network key is read from the master's key file (never generated here: a link for a
//! key no master holds would admit no one), and its addresses are the config's
//! `public_addrs`, or what the master derives from `listen` when there are none.

use std::{io, net::SocketAddr, path::PathBuf, time::SystemTime};

use fleetmesh::{
    trust::Authority, Identity, JoinLink, KeyFileError, Timestamp, TokenOptions, Tokens,
};

use crate::{
    config::{ConfigError, MasterConfig},
    daemon,
    duration::HumanDuration,
};

/// `fleetmesh token …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Create an enrollment token and print its link (one line on stdout): what
    /// `fleetmesh node --join LINK` needs. Run it on the master's host, as a user that can
    /// write the master's data directory (root, or the master's user).
    Create(CreateArgs),
}

/// `fleetmesh token create`'s flags.
#[derive(clap::Args, Debug)]
pub(crate) struct CreateArgs {
    /// The master's config file: its data_dir, listen and public_addrs. Without one, the
    /// defaults (data dir /var/lib/fleetmesh/master).
    #[arg(long, short, value_name = "MASTER_CONFIG")]
    config: Option<PathBuf>,
    /// The master's data directory, overriding the config's.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to put in the link, overriding the config's public_addrs (repeat for several):
    /// for a master started with flags rather than its config file.
    #[arg(long = "public-addr", value_name = "ADDR")]
    public_addrs: Vec<SocketAddr>,
    /// How many devices may enroll with this link (at most 10,000; a larger fleet uses
    /// several links).
    #[arg(
        long,
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(fleetmesh::MAX_USES_PER_TOKEN))
    )]
    uses: u32,
    /// How long the link stays valid: 30m, 12h, 7d, …
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    expires: HumanDuration,
    /// A tag every node this link admits carries in the master's registry (repeat for
    /// several): 1 to 64 of a-z 0-9 - _ . :, e.g. `site:berlin`.
    #[arg(long = "tag", value_name = "TAG", value_parser = parse_tag)]
    tags: Vec<String>,
}

fn parse_tag(text: &str) -> Result<String, String> {
    if fleetmesh::valid_tag(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("tags are 1 to {} of a-z 0-9 - _ . :", fleetmesh::MAX_TAG_LEN))
    }
}

/// Why no link was printed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// The master's config file is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The master has no key yet.
    #[error(
        "no master key at {0}: start the master once (`fleetmesh master`), or point --config \
         or --data-dir at the master's data directory"
    )]
    NoMasterKey(PathBuf),
    /// The master's key file could not be read.
    #[error("master key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyFileError,
    },
    /// No address a node could reach: the listen port is 0 and no public_addrs are set.
    #[error(
        "the master listens on port 0 (chosen at start), so a link cannot name it: set \
         public_addrs in the master's config, or listen on a fixed port"
    )]
    NoAddress,
    /// The tokens directory could not be written.
    #[error(transparent)]
    Tokens(#[from] fleetmesh::TokenError),
}

/// Runs `fleetmesh token …`, printing its result.
pub(crate) fn run(command: TokenCommand) -> Result<(), TokenError> {
    match command {
        TokenCommand::Create(args) => {
            let link = create(&args)?;
            println!("{link}");
            Ok(())
        }
    }
}

/// Creates the token and returns its link.
fn create(args: &CreateArgs) -> Result<JoinLink, TokenError> {
    let config = daemon::load_config(args.config.as_deref(), |c: &mut MasterConfig| {
        if let Some(dir) = &args.data_dir {
            c.data_dir = dir.clone();
        }
        if !args.public_addrs.is_empty() {
            c.public_addrs = args.public_addrs.clone();
        }
    })?;
    let key = config.data_dir.join("master.key");
    let identity = Identity::load(&key).map_err(|source| match source {
        KeyFileError::Io(e) if e.kind() == io::ErrorKind::NotFound => {
            TokenError::NoMasterKey(key.clone())
        }
        source => TokenError::Key { path: key.clone(), source },
    })?;
    let masters: Vec<SocketAddr> = config.link_addrs();
    if masters.is_empty() || masters.iter().any(|a| a.port() == 0) {
        return Err(TokenError::NoAddress);
    }
    let network = Authority::new(identity).network_key();
    let tokens = Tokens::open(&config.data_dir)?;
    let options =
        TokenOptions { uses: args.uses, valid_for: args.expires.0, tags: args.tags.clone() };
    let token = tokens.create(now(), options)?;
    Ok(JoinLink { masters, network, token: Some(token) })
}

/// Wall-clock time, as the master's own clock reads it (`Clock::system`).
fn now() -> Timestamp {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_micros(since.as_micros() as u64)
}
