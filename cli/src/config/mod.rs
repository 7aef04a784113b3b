//! The daemons' config files: one TOML file each for `fleetmesh master` and `fleetmesh node`.
//!
//! Every field has a default (written out, with its meaning, in `deploy/master.toml` and
//! `deploy/node.toml`), so an empty file, or no file, is a working config. Unknown fields are
//! errors, not silently ignored: a misspelt `lisen` must not leave the daemon on its default
//! port. Values are checked while parsing (addresses, durations, the log filter), so every
//! mistake carries the span toml reports and is shown as `FILE:LINE:COL: message`.

pub(crate) mod check;

use std::{
    collections::BTreeMap,
    fmt,
    net::{Ipv6Addr, SocketAddr},
    num::NonZeroU64,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use fleetmesh::{JoinLink, DEFAULT_ENROLL_TIMEOUT, DEFAULT_MASTER_PORT, DEFAULT_NODE_LISTEN};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    duration::{Every, HumanDuration},
    logging::{LogFormat, LogLevel},
};

/// The master's data directory unless configured otherwise.
pub(crate) const DEFAULT_MASTER_DATA_DIR: &str = "/var/lib/fleetmesh/master";
/// The node's data directory unless configured otherwise.
pub(crate) const DEFAULT_NODE_DATA_DIR: &str = "/var/lib/fleetmesh/node";
/// How long a command the master runs on a node may take unless configured otherwise.
pub(crate) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the node collects its inventory unless configured otherwise.
pub(crate) const DEFAULT_INVENTORY_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// `fleetmesh master`'s config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MasterConfig {
    /// Key, tokens and state.
    pub(crate) data_dir: PathBuf,
    /// UDP and TCP, one port.
    pub(crate) listen: SocketAddr,
    /// Written into enrollment links; empty: derived from `listen`.
    pub(crate) public_addrs: Vec<SocketAddr>,
    /// The admin API (HTTP/JSON, bearer token in `DATA_DIR/admin.token`).
    pub(crate) admin_listen: SocketAddr,
    /// Logging.
    pub(crate) log: LogConfig,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            data_dir: DEFAULT_MASTER_DATA_DIR.into(),
            listen: SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), DEFAULT_MASTER_PORT),
            public_addrs: Vec::new(),
            admin_listen: SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), DEFAULT_ADMIN_PORT),
            log: LogConfig::default(),
        }
    }
}

/// The admin API's port unless configured otherwise (on 127.0.0.1).
pub(crate) const DEFAULT_ADMIN_PORT: u16 = 7947;

impl MasterConfig {
    /// The addresses enrollment links carry: `public_addrs`, or what the master derives from
    /// `listen` when that is empty (the library's own rule, so both agree).
    pub(crate) fn link_addrs(&self) -> Vec<SocketAddr> {
        if self.public_addrs.is_empty() {
            fleetmesh::default_public_addrs(self.listen)
        } else {
            self.public_addrs.clone()
        }
    }
}

/// `fleetmesh node`'s config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NodeConfig {
    /// Key, certificate, network and state.
    pub(crate) data_dir: PathBuf,
    /// UDP and TCP, one port; port 0: the system picks.
    pub(crate) listen: SocketAddr,
    /// Look for the subnet's LSN on the LAN.
    pub(crate) lan_discovery: bool,
    /// How long a first enrollment may take.
    pub(crate) enroll_timeout: HumanDuration,
    /// The enrollment link used on the first start (ignored once enrolled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) join: Option<Link>,
    /// How long a command the master runs (`[commands]`) may take before it is killed.
    pub(crate) command_timeout: HumanDuration,
    /// Keep a metric history (CPU, memory, disk, network every 10 s) for the master to query.
    pub(crate) history: bool,
    /// How often to collect the host's inventory (at start, then every this); off: never.
    pub(crate) inventory_interval: Every,
    /// Logging.
    pub(crate) log: LogConfig,
    /// Serving as a GSN (a relay for members whose NATs defeat hole punching).
    pub(crate) gsn: GsnConfig,
    /// Whether the node serves the DHT or only uses it.
    pub(crate) dht_mode: DhtMode,
    /// The commands the master may run by name (`fleetmesh run NODE NAME`); nothing else.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) commands: BTreeMap<String, CommandLine>,
}

/// A command the master may run: a program and its arguments, run directly (no shell).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct CommandLine(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let argv = Vec::<String>::deserialize(d)?;
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(serde::de::Error::custom(
                "a command is a program and its arguments, e.g. [\"/usr/bin/uptime\"]",
            ));
        }
        Ok(CommandLine(argv))
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: DEFAULT_NODE_DATA_DIR.into(),
            listen: DEFAULT_NODE_LISTEN,
            lan_discovery: true,
            enroll_timeout: HumanDuration(DEFAULT_ENROLL_TIMEOUT),
            join: None,
            command_timeout: HumanDuration(DEFAULT_COMMAND_TIMEOUT),
            history: true,
            inventory_interval: Every(Some(HumanDuration(DEFAULT_INVENTORY_INTERVAL))),
            log: LogConfig::default(),
            gsn: GsnConfig::default(),
            dht_mode: DhtMode::Auto,
            commands: BTreeMap::new(),
        }
    }
}

/// `dht_mode` in a node's file (and `--dht-mode`): whether the node serves the DHT (holds
/// records, answers lookups, is handed to others) or only uses it
/// ([`fleetmesh::dht::DhtMode`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DhtMode {
    /// Serve when the NAT check finds no NAT and unsolicited inbound gets in.
    #[default]
    Auto,
    /// Always serve.
    Server,
    /// Never serve.
    Client,
}

impl From<DhtMode> for fleetmesh::dht::DhtMode {
    fn from(mode: DhtMode) -> Self {
        match mode {
            DhtMode::Auto => fleetmesh::dht::DhtMode::Auto,
            DhtMode::Server => fleetmesh::dht::DhtMode::Server,
            DhtMode::Client => fleetmesh::dht::DhtMode::Client,
        }
    }
}

/// The `[gsn]` table of a node's file: whether the node may relay for other members, and how
/// much it lets through ([`fleetmesh::overlay::RelayLimits`]). Rates and bursts are bytes
/// (per second); none may be 0 (`serve = false` turns relaying off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GsnConfig {
    /// May serve when the master finds that it takes unsolicited inbound.
    pub(crate) serve: bool,
    /// Sustained bytes per second per circuit (a pair of members, one way).
    pub(crate) circuit_rate: NonZeroU64,
    /// Burst per circuit, bytes.
    pub(crate) circuit_burst: NonZeroU64,
    /// Sustained bytes per second from one member, all its circuits together.
    pub(crate) member_rate: NonZeroU64,
    /// Burst per member, bytes.
    pub(crate) member_burst: NonZeroU64,
}

impl Default for GsnConfig {
    fn default() -> Self {
        let l = fleetmesh::overlay::RelayLimits::default();
        let nz = |v: u64| NonZeroU64::new(v).expect("the library's limits are not 0");
        GsnConfig {
            serve: true,
            circuit_rate: nz(l.circuit_rate),
            circuit_burst: nz(l.circuit_burst),
            member_rate: nz(l.member_rate),
            member_burst: nz(l.member_burst),
        }
    }
}

impl GsnConfig {
    /// The overlay's limits from this table.
    pub(crate) fn limits(&self) -> fleetmesh::overlay::RelayLimits {
        fleetmesh::overlay::RelayLimits {
            circuit_rate: self.circuit_rate.get(),
            circuit_burst: self.circuit_burst.get(),
            member_rate: self.member_rate.get(),
            member_burst: self.member_burst.get(),
        }
    }
}

/// The `[log]` table of either file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// An `EnvFilter` directive: `info`, `debug`, `warn,fleetmesh=debug`, …
    pub(crate) level: LogLevel,
    /// `text` or `json`.
    pub(crate) format: LogFormat,
}

/// An enrollment link in a config file, checked while parsing. It is shown with its token
/// hidden: the effective config gets printed and logged, the token admits a device.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Link(pub(crate) JoinLink);

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // JoinLink's Debug already hides the token.
        self.0.fmt(f)
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = self.0.without_token().to_string();
        if self.0.token.is_some() {
            text.push_str("&token=<hidden>");
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        JoinLink::from_str(&text).map(Link).map_err(serde::de::Error::custom)
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A mistake at a known place in the file.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong (toml's message: the field, what was expected).
        message: String,
    },
    /// A mistake toml could not place.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Reads and parses the config file at `path`.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text)
}

/// Parses `text`, read from `path` (named in errors).
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let path = path.to_path_buf();
        let message = error.message().trim_end().to_owned();
        match error.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                ConfigError::At { path, line, column, message }
            }
            None => ConfigError::Invalid { path, message },
        }
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // toml's spans fall on character boundaries; clamp anyway so a bad span cannot panic.
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Shows a config as the TOML that would configure it, for `config check` and the logs.
pub(crate) fn to_toml<T: Serialize>(config: &T) -> String {
    // Our configs are plain tables of strings, numbers, booleans and arrays, which toml always
    // serializes; say so rather than panic if that ever changes.
    toml::to_string(config).unwrap_or_else(|e| format!("# cannot show this config: {e}\n"))
}

impl NodeConfig {
    /// How long a first enrollment may take.
    pub(crate) fn enroll_timeout(&self) -> Duration {
        self.enroll_timeout.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_files_are_the_defaults_and_print_back_to_themselves() {
        let path = Path::new("x.toml");
        let master: MasterConfig = parse(path, "").unwrap();
        assert_eq!(master, MasterConfig::default());
        assert_eq!(master.listen.to_string(), "[::]:7946");
        let node: NodeConfig = parse(path, "").unwrap();
        assert_eq!(node, NodeConfig::default());
        assert_eq!(parse::<NodeConfig>(path, &to_toml(&node)).unwrap(), node);
        assert_eq!(parse::<MasterConfig>(path, &to_toml(&master)).unwrap(), master);
        assert_eq!(node.inventory_interval.period(), Some(DEFAULT_INVENTORY_INTERVAL));
    }

    #[test]
    fn the_gsn_table_sets_the_relay_limits_and_refuses_zero() {
        let path = Path::new("n.toml");
        let text = "[gsn]\nserve = false\ncircuit_rate = 50000000\nmember_burst = 4096\n";
        let node: NodeConfig = parse(path, text).unwrap();
        assert!(!node.gsn.serve);
        let limits = node.gsn.limits();
        assert_eq!((limits.circuit_rate, limits.member_burst), (50_000_000, 4096));
        let defaults = fleetmesh::overlay::RelayLimits::default();
        assert_eq!(limits.circuit_burst, defaults.circuit_burst, "unset fields keep defaults");
        assert_eq!(parse::<NodeConfig>(path, &to_toml(&node)).unwrap(), node);
        let err = parse::<NodeConfig>(path, "[gsn]\nmember_rate = 0\n").unwrap_err().to_string();
        assert!(err.starts_with("n.toml:2:15: "), "{err}");
        assert!(err.contains("nonzero"), "{err}");
    }

    #[test]
    fn the_inventory_interval_can_be_switched_off_or_changed() {
        let path = Path::new("n.toml");
        let off: NodeConfig = parse(path, "inventory_interval = \"off\"\n").unwrap();
        assert_eq!(off.inventory_interval.period(), None);
        assert_eq!(parse::<NodeConfig>(path, &to_toml(&off)).unwrap(), off);
        let zero: NodeConfig = parse(path, "inventory_interval = \"0\"\n").unwrap();
        assert_eq!(zero.inventory_interval.period(), None);
        let hour: NodeConfig = parse(path, "inventory_interval = \"1h\"\n").unwrap();
        assert_eq!(hour.inventory_interval.period(), Some(Duration::from_secs(3600)));
        let err = parse::<NodeConfig>(path, "inventory_interval = \"often\"\n").unwrap_err();
        assert!(err.to_string().contains("n.toml:1:"), "{err}");
    }

    #[test]
    fn mistakes_name_their_line_column_and_field() {
        let path = Path::new("m.toml");
        let err = parse::<MasterConfig>(path, "data_dir = \"/x\"\nlisen = \"1.2.3.4:5\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml:2:1: unknown field `lisen`"), "{err}");
        let err = parse::<MasterConfig>(path, "\n[log]\nlevel = \"info\"\n  format = \"xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml:4:12: unknown variant `xml`"), "{err}");
        let err = parse::<NodeConfig>(path, "enroll_timeout = \"30 s\"\n").unwrap_err().to_string();
        assert!(err.starts_with("m.toml:1:18: "), "{err}");
        assert!(err.contains("30 s"), "{err}");
        let err = parse::<NodeConfig>(path, "listen = \"[::]\"\n").unwrap_err().to_string();
        assert!(err.starts_with("m.toml:1:10: "), "{err}");
        let err = parse::<NodeConfig>(path, "join = \"http://x\"\n").unwrap_err().to_string();
        assert!(err.contains("fleetmesh://"), "{err}");
    }

    #[test]
    fn a_link_in_a_config_is_shown_without_its_token() {
        // Any 32 bytes are not a valid ed25519 key; take a real one.
        let network =
            fleetmesh::trust::Authority::new(fleetmesh::Identity::generate(&mut rand_core::OsRng))
                .network_key();
        let link = JoinLink {
            masters: vec!["192.0.2.1:7946".parse().unwrap()],
            network,
            token: Some("s3cret".into()),
        };
        let text = format!("join = \"{link}\"\n");
        let node: NodeConfig = parse(Path::new("n.toml"), &text).unwrap();
        assert_eq!(node.join.as_ref().map(|l| &l.0), Some(&link));
        let shown = to_toml(&node);
        assert!(!shown.contains("s3cret") && shown.contains("token=<hidden>"), "{shown}");
        assert!(!format!("{node:?}").contains("s3cret"));
    }

    #[test]
    fn columns_count_characters_and_bad_offsets_do_not_panic() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = 1", 3), (1, 3), "`=` is the third character");
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("x", 99), (1, 2));
    }
}
