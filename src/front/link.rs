//! Enrollment links: one string that is all a new device needs to join a fleet.
//!
//! ```text
//! fleetmesh://203.0.113.5:7946,[2001:db8::5]:7946/join?network=<64 hex digits>&token=<token>
//! ```
//!
//! The master's addresses (one or more), the network key (the master's ed25519 public key, by
//! which every node checks every certificate) and, on a link meant for enrollment, a token the
//! master admits once (or N times). Without a token the link still names the network: a node
//! that already holds a certificate restarts from it. The link is not a secret in the way a
//! private key is, but its token admits a device: hand it out as you would a Tailscale auth key.

use std::{fmt, net::SocketAddr, str::FromStr};

use crate::trust::NetworkKey;

const SCHEME: &str = "fleetmesh://";
/// Longest token accepted: tokens are generated, not typed, and the request carrying one must
/// fit a handshake.
pub const MAX_TOKEN_LEN: usize = 128;
/// Most master addresses a link may carry.
pub const MAX_LINK_ADDRS: usize = 8;

/// A parsed enrollment link.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinLink {
    /// Where the master listens (UDP and TCP on the same port), first choice first.
    pub masters: Vec<SocketAddr>,
    /// The network key.
    pub network: NetworkKey,
    /// The enrollment token, if the link admits a new device.
    pub token: Option<String>,
}

/// Why a string is not an enrollment link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// It does not start with `fleetmesh://`.
    #[error("an enrollment link starts with {SCHEME}")]
    Scheme,
    /// No `/join?` after the addresses.
    #[error("an enrollment link has the form {SCHEME}ADDR[,ADDR…]/join?network=KEY[&token=TOKEN]")]
    Shape,
    /// A master address does not parse (IPv6 addresses go in brackets: `[2001:db8::5]:7946`).
    #[error("bad master address {0:?} (write host:port, IPv6 as [addr]:port)")]
    Addr(String),
    /// No master address, or more than [`MAX_LINK_ADDRS`].
    #[error("an enrollment link names 1 to {MAX_LINK_ADDRS} master addresses, this one {0}")]
    AddrCount(usize),
    /// The `network` parameter is missing, not 64 hex digits, or not a valid key.
    #[error("the link's network key is missing or invalid")]
    Network,
    /// The token is empty, too long, or has characters other than `A-Z a-z 0-9 - _ .`.
    #[error("the link's token is invalid (1 to {MAX_TOKEN_LEN} of A-Z a-z 0-9 - _ .)")]
    Token,
    /// A parameter this version does not know (a typo, or a link from a newer master).
    #[error("unknown link parameter {0:?}")]
    Parameter(String),
}

impl JoinLink {
    /// The same link without its token: what a node keeps once it is enrolled.
    pub fn without_token(&self) -> JoinLink {
        JoinLink { token: None, ..self.clone() }
    }
}

/// Whether `token` may travel in a link unescaped.
pub(crate) fn valid_token(token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl FromStr for JoinLink {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<Self, LinkError> {
        let rest = s.trim().strip_prefix(SCHEME).ok_or(LinkError::Scheme)?;
        let (addrs, query) = rest.split_once("/join?").ok_or(LinkError::Shape)?;
        let masters = addrs
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|_| LinkError::Addr(a.chars().take(64).collect())))
            .collect::<Result<Vec<SocketAddr>, _>>()?;
        if masters.is_empty() || masters.len() > MAX_LINK_ADDRS {
            return Err(LinkError::AddrCount(masters.len()));
        }
        let (mut network, mut token) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("network", hex)) => network = Some(parse_key(hex)?),
                Some(("token", t)) if valid_token(t) => token = Some(t.to_owned()),
                Some(("token", _)) => return Err(LinkError::Token),
                _ => return Err(LinkError::Parameter(pair.chars().take(32).collect())),
            }
        }
        Ok(JoinLink { masters, network: network.ok_or(LinkError::Network)?, token })
    }
}

fn parse_key(hex: &str) -> Result<NetworkKey, LinkError> {
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(LinkError::Network);
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| LinkError::Network)?;
    }
    NetworkKey::from_bytes(&bytes).ok_or(LinkError::Network)
}

impl fmt::Display for JoinLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        for (i, addr) in self.masters.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{addr}")?;
        }
        f.write_str("/join?network=")?;
        for b in self.network.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        if let Some(token) = &self.token {
            write!(f, "&token={token}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for JoinLink {
    /// Shows the token's length only: links end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinLink")
            .field("masters", &self.masters)
            .field("network", &self.network)
            .field("token", &self.token.as_ref().map(|t| format!("<{} chars>", t.len())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{trust::Authority, Identity};
    use rand_core::SeedableRng;

    fn network() -> NetworkKey {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        Authority::new(Identity::generate(&mut rng)).network_key()
    }

    #[test]
    fn a_link_round_trips_through_its_text() {
        let link = JoinLink {
            masters: vec![
                "203.0.113.5:7946".parse().unwrap(),
                "[2001:db8::5]:7946".parse().unwrap(),
            ],
            network: network(),
            token: Some("Abc-123_x.y".into()),
        };
        let text = link.to_string();
        assert!(text.starts_with("fleetmesh://203.0.113.5:7946,[2001:db8::5]:7946/join?network="));
        assert_eq!(text.parse::<JoinLink>().unwrap(), link);
        assert_eq!(link.without_token().to_string().parse::<JoinLink>().unwrap().token, None);
        assert!(!format!("{link:?}").contains("Abc-123"), "Debug hides the token");
    }

    #[test]
    fn bad_links_get_the_error_that_names_the_mistake() {
        let key = network().to_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>();
        let cases = [
            ("https://x/join?network=00".to_owned(), LinkError::Scheme),
            ("fleetmesh://1.2.3.4:1".to_owned(), LinkError::Shape),
            (format!("fleetmesh://1.2.3.4/join?network={key}"), LinkError::Addr("1.2.3.4".into())),
            (
                format!("fleetmesh://2001:db8::1:7/join?network={key}"),
                LinkError::Addr("2001:db8::1:7".into()),
            ),
            (format!("fleetmesh:///join?network={key}"), LinkError::AddrCount(0)),
            ("fleetmesh://1.2.3.4:1/join?network=zz".to_owned(), LinkError::Network),
            ("fleetmesh://1.2.3.4:1/join?token=abc".to_owned(), LinkError::Network),
            (format!("fleetmesh://1.2.3.4:1/join?network={key}&token=a b"), LinkError::Token),
            (format!("fleetmesh://1.2.3.4:1/join?network={key}&token="), LinkError::Token),
            (
                format!("fleetmesh://1.2.3.4:1/join?network={key}&tokn=x"),
                LinkError::Parameter("tokn=x".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<JoinLink>(), Err(want), "{text}");
        }
        let many = ["1.2.3.4:1"; MAX_LINK_ADDRS + 1].join(",");
        let text = format!("fleetmesh://{many}/join?network={key}");
        assert_eq!(text.parse::<JoinLink>(), Err(LinkError::AddrCount(MAX_LINK_ADDRS + 1)));
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let text = format!("fleetmesh://1.2.3.4:1/join?network={key}&token={long}");
        assert_eq!(text.parse::<JoinLink>(), Err(LinkError::Token));
    }
}
