//! The LAN discovery datagrams: a query ("who is the LSN here?") and an announce (the LSN's
//! answer). Check, then parse: the size is checked before anything is read, and arbitrary bytes
//! yield a [`DecodeError`], never a panic.
//!
//! ```text
//! query:     "FMLD" | version (1) | 0x01 | network tag (8) | nonce (u64)
//! announce:  "FMLD" | version (1) | 0x02 | network tag (8) | nonce (u64) | node id (20)
//!            | family (4 or 6) | address (4 or 16) | port (u16)
//! ```
//! Integers are big-endian. The network tag keeps two fleets on one LAN apart; the nonce
//! matches an announce to its query. An announce is unauthenticated on purpose: the node id it
//! names is checked by the secure session the node then opens.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use fleetmesh_driver::NodeId;

/// The first four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"FMLD";
/// The format version this crate speaks.
pub const VERSION: u8 = 1;
/// The largest datagram: an announce with an IPv6 address.
pub const MAX_LEN: usize = HEADER_LEN + 20 + 1 + 16 + 2;

const HEADER_LEN: usize = 4 + 1 + 1 + 8 + 8;
const QUERY: u8 = 0x01;
const ANNOUNCE: u8 = 0x02;

/// A LAN discovery datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// Who is the LSN here?
    Query {
        /// The fleet's network tag.
        network: [u8; 8],
        /// Echoed in the answer.
        nonce: u64,
    },
    /// I am the LSN.
    Announce {
        /// The fleet's network tag.
        network: [u8; 8],
        /// The query's nonce.
        nonce: u64,
        /// The LSN's node id.
        id: NodeId,
        /// Where its overlay listens.
        addr: SocketAddr,
    },
}

/// Why a datagram could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its kind needs.
    #[error("datagram of {0} bytes is too short")]
    TooShort(usize),
    /// Longer than its kind allows.
    #[error("datagram of {0} bytes is too long")]
    TooLong(usize),
    /// Not a fleetmesh LAN discovery datagram.
    #[error("bad magic")]
    BadMagic,
    /// A format version this crate does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// An unknown datagram kind.
    #[error("unknown kind {0:#04x}")]
    UnknownKind(u8),
    /// An address family other than 4 or 6.
    #[error("unknown address family {0}")]
    BadFamily(u8),
}

impl Datagram {
    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        let (kind, network, nonce) = match self {
            Datagram::Query { network, nonce } => (QUERY, network, nonce),
            Datagram::Announce { network, nonce, .. } => (ANNOUNCE, network, nonce),
        };
        out.push(kind);
        out.extend_from_slice(network);
        out.extend_from_slice(&nonce.to_be_bytes());
        if let Datagram::Announce { id, addr, .. } = self {
            out.extend_from_slice(id.as_bytes());
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        out
    }

    /// Decodes `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, DecodeError> {
        let len = bytes.len();
        if len > MAX_LEN {
            return Err(DecodeError::TooLong(len));
        }
        if len < HEADER_LEN {
            return Err(DecodeError::TooShort(len));
        }
        let (header, body) = bytes.split_at(HEADER_LEN);
        if header[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion(header[4]));
        }
        let mut network = [0u8; 8];
        network.copy_from_slice(&header[6..14]);
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&header[14..22]);
        let nonce = u64::from_be_bytes(nonce);
        match header[5] {
            QUERY if body.is_empty() => Ok(Datagram::Query { network, nonce }),
            QUERY => Err(DecodeError::TooLong(len)),
            ANNOUNCE => {
                let (id, rest) =
                    body.split_first_chunk::<20>().ok_or(DecodeError::TooShort(len))?;
                let (&family, rest) = rest.split_first().ok_or(DecodeError::TooShort(len))?;
                let ip_len = match family {
                    4 => 4,
                    6 => 16,
                    other => return Err(DecodeError::BadFamily(other)),
                };
                if rest.len() < ip_len + 2 {
                    return Err(DecodeError::TooShort(len));
                }
                if rest.len() > ip_len + 2 {
                    return Err(DecodeError::TooLong(len));
                }
                let (ip, port) = rest.split_at(ip_len);
                let ip = match <[u8; 16]>::try_from(ip) {
                    Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
                    Err(_) => {
                        let mut v4 = [0u8; 4];
                        v4.copy_from_slice(ip);
                        IpAddr::V4(Ipv4Addr::from(v4))
                    }
                };
                let port = u16::from_be_bytes([port[0], port[1]]);
                Ok(Datagram::Announce {
                    network,
                    nonce,
                    id: NodeId::from_bytes(*id),
                    addr: SocketAddr::new(ip, port),
                })
            }
            other => Err(DecodeError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NET: [u8; 8] = *b"fleet-01";

    #[test]
    fn round_trips_and_sizes() {
        let q = Datagram::Query { network: NET, nonce: 7 };
        assert_eq!(q.encode().len(), HEADER_LEN);
        assert_eq!(Datagram::decode(&q.encode()), Ok(q));
        for addr in ["10.1.2.3:4000", "[fe80::1]:4000"] {
            let a = Datagram::Announce {
                network: NET,
                nonce: u64::MAX,
                id: NodeId::hash(b"lsn"),
                addr: addr.parse().unwrap(),
            };
            assert_eq!(Datagram::decode(&a.encode()), Ok(a));
        }
    }

    #[test]
    fn typed_errors() {
        let q = Datagram::Query { network: NET, nonce: 7 }.encode();
        assert_eq!(Datagram::decode(&q[..5]), Err(DecodeError::TooShort(5)));
        assert_eq!(Datagram::decode(&[0; MAX_LEN + 1]), Err(DecodeError::TooLong(MAX_LEN + 1)));
        let mut bad = q.clone();
        bad[0] = b'X';
        assert_eq!(Datagram::decode(&bad), Err(DecodeError::BadMagic));
        let mut bad = q.clone();
        bad[4] = 2;
        assert_eq!(Datagram::decode(&bad), Err(DecodeError::UnsupportedVersion(2)));
        let mut bad = q.clone();
        bad[5] = 9;
        assert_eq!(Datagram::decode(&bad), Err(DecodeError::UnknownKind(9)));
        let mut long = q.clone();
        long.push(0);
        assert_eq!(Datagram::decode(&long), Err(DecodeError::TooLong(q.len() + 1)));
        let a = Datagram::Announce {
            network: NET,
            nonce: 1,
            id: NodeId::ZERO,
            addr: "10.0.0.1:1".parse().unwrap(),
        };
        let mut bad = a.encode();
        bad[HEADER_LEN + 20] = 5;
        assert_eq!(Datagram::decode(&bad), Err(DecodeError::BadFamily(5)));
        let good = a.encode();
        assert!(matches!(Datagram::decode(&good[..good.len() - 1]), Err(DecodeError::TooShort(_))));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = Datagram::decode(&bytes);
        }

        #[test]
        fn decode_of_a_valid_header_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..48)) {
            let mut bytes = Datagram::Query { network: NET, nonce: 1 }.encode();
            bytes[5] = ANNOUNCE;
            bytes.extend_from_slice(&tail);
            let _ = Datagram::decode(&bytes);
        }
    }
}
