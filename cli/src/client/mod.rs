//! The operator's commands (`fleetmesh status | nodes | ping | send | revoke | web`): thin
//! clients of the master's admin API.
//!
//! Where the API is and which token to use: `--api URL` (or `FLEETMESH_API`) and
//! `--token-file FILE` (or the token itself in `FLEETMESH_ADMIN_TOKEN`); without them, the
//! master's config (`--config`, `--data-dir`, else the defaults): `admin_listen` and
//! `DATA_DIR/admin.token`. So on the master's host, as its user, no flag is needed.

mod broadcast;
mod commands;
mod inventory;
mod render;

use std::{path::PathBuf, time::Duration};

use serde_json::Value;

use crate::{
    config::{ConfigError, MasterConfig},
    daemon,
};

pub(crate) use commands::{run, AdminCommand};

mod requests;

/// How the commands find and authenticate to the admin API.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ApiArgs {
    /// The admin API's base URL, e.g. http://127.0.0.1:7947 [default: the master config's
    /// admin_listen].
    #[arg(long, env = "FLEETMESH_API", value_name = "URL")]
    api: Option<String>,
    /// File holding the admin token [default: DATA_DIR/admin.token].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The admin token itself (prefer the environment variable over the flag: flags show in
    /// `ps`).
    #[arg(long, env = "FLEETMESH_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The master's config file, for admin_listen and data_dir.
    #[arg(long, short, value_name = "MASTER_CONFIG")]
    config: Option<PathBuf>,
    /// The master's data directory (where admin.token is), overriding the config's.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print the API's JSON instead of text (for scripts).
    #[arg(long)]
    json: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The master's config file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No token could be read.
    #[error(
        "cannot read the admin token {path}: {source} (run as the master's user, or pass \
         --token-file or FLEETMESH_ADMIN_TOKEN)"
    )]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The API could not be reached.
    #[error("cannot reach the admin API at {url}: {reason} (is the master running? --api sets the address)")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The API answered with an error.
    #[error("{error}: {message} (HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The typed error code (`unknown_node`, `unauthorized`, …).
        error: String,
        /// The explanation.
        message: String,
    },
    /// An id prefix matched no node or several.
    #[error("{0}")]
    Ambiguous(String),
    /// The operation ran but did not succeed (a failed delivery, a ping that got no answer).
    #[error("{0}")]
    Failed(String),
    /// A command run on a node (`fleetmesh run`) exited with this status (not 0).
    #[error("the command exited with status {0}")]
    Exit(u8),
}

/// A connection to the admin API.
pub(crate) struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
    /// Print JSON rather than text.
    pub(crate) json: bool,
}

/// Longest an API call may take: sends and polls wait up to 10 s for their delivery report,
/// requests up to 60 s for their answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(75);

impl Api {
    /// Resolves the URL and the token from the flags, the environment and the master config.
    pub(crate) fn connect(args: &ApiArgs) -> Result<Api, ClientError> {
        let needs_config =
            args.api.is_none() || (args.token.is_none() && args.token_file.is_none());
        let config: MasterConfig = if needs_config {
            daemon::load_config(args.config.as_deref(), |c: &mut MasterConfig| {
                if let Some(dir) = &args.data_dir {
                    c.data_dir = dir.clone();
                }
            })?
        } else {
            MasterConfig::default()
        };
        let base = match &args.api {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => base_url(config.admin_listen),
        };
        let token = match (&args.token, &args.token_file) {
            (Some(token), _) => token.trim().to_owned(),
            (None, file) => {
                let path = file.clone().unwrap_or_else(|| config.data_dir.join("admin.token"));
                std::fs::read_to_string(&path)
                    .map_err(|source| ClientError::Token { path, source })?
                    .trim()
                    .to_owned()
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .into();
        Ok(Api { base, token, agent, json: args.json })
    }

    /// The web view's link, with the token in its fragment (never sent to a server).
    pub(crate) fn page_link(&self) -> String {
        format!("{}/#token={}", self.base, self.token)
    }

    /// `GET path`.
    pub(crate) fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let reply = self.agent.get(&url).header("Authorization", self.bearer()).call();
        self.finish(&url, reply, false).map(|(_, body)| body)
    }

    /// `POST path` with a JSON body. Returns the status beside the body: 502 (failed
    /// delivery) and 202 (still pending) carry an outcome, not an error.
    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        let url = format!("{}{path}", self.base);
        let reply = self.agent.post(&url).header("Authorization", self.bearer()).send_json(body);
        self.finish(&url, reply, true)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn finish(
        &self,
        url: &str,
        reply: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        outcome_statuses: bool,
    ) -> Result<(u16, Value), ClientError> {
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let mut reply = reply.map_err(unreachable)?;
        let status = reply.status().as_u16();
        let body: Value = reply.body_mut().read_json().unwrap_or(Value::Null);
        let outcome = outcome_statuses && (status == 502 || status == 202);
        if (200..300).contains(&status) || outcome {
            return Ok((status, body));
        }
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
        Err(ClientError::Api {
            status,
            error: if body["error"].is_string() { text("error") } else { "http_error".into() },
            message: if body["message"].is_string() {
                text("message")
            } else {
                format!("unexpected answer from {url}")
            },
        })
    }

    /// The full id of the one node whose id starts with `prefix` (ids are 40 hex digits;
    /// like git, a unique prefix is enough).
    pub(crate) fn resolve(&self, prefix: &str) -> Result<String, ClientError> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() == 40 || prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
        {
            // Let the API judge it (a malformed id gets its typed 400).
            return Ok(prefix);
        }
        let list = self.get("/api/nodes")?;
        let matches: Vec<&str> = list["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["id"].as_str())
            .filter(|id| id.starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(ClientError::Ambiguous(format!("no node's id starts with {prefix}"))),
            many => Err(ClientError::Ambiguous(format!(
                "{} nodes' ids start with {prefix}: give more digits",
                many.len()
            ))),
        }
    }
}

/// The URL of an admin API listening on `addr` (the unspecified address means this host).
fn base_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn an_unspecified_admin_address_is_reached_on_loopback() {
        assert_eq!(base_url("0.0.0.0:7947".parse().unwrap()), "http://127.0.0.1:7947");
        assert_eq!(base_url("[::]:7947".parse().unwrap()), "http://[::1]:7947");
        assert_eq!(base_url("10.0.0.2:80".parse().unwrap()), "http://10.0.0.2:80");
    }
}
