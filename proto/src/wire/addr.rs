use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

/// A socket address in its compact wire form: a CBOR byte string of 6 bytes (IPv4 address and
/// port) or 18 bytes (IPv6 address and port), ports big-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct WireAddr(pub SocketAddr);

impl From<SocketAddr> for WireAddr {
    fn from(a: SocketAddr) -> Self {
        WireAddr(a)
    }
}

impl From<WireAddr> for SocketAddr {
    fn from(a: WireAddr) -> Self {
        a.0
    }
}

impl Serialize for WireAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 18];
        let n = match self.0.ip() {
            IpAddr::V4(ip) => {
                buf[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                buf[..16].copy_from_slice(&ip.octets());
                16
            }
        };
        buf[n..n + 2].copy_from_slice(&self.0.port().to_be_bytes());
        s.serialize_bytes(&buf[..n + 2])
    }
}

impl<'de> Deserialize<'de> for WireAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let ip: IpAddr = match b.len() {
            6 => Ipv4Addr::new(b[0], b[1], b[2], b[3]).into(),
            18 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[..16]);
                Ipv6Addr::from(o).into()
            }
            n => return Err(D::Error::invalid_length(n, &"6 or 18 bytes")),
        };
        Ok(WireAddr(SocketAddr::new(ip, port(b.len() - 2))))
    }
}
