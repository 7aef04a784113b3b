use std::{fmt, net::IpAddr};

use sha1::{Digest, Sha1};

/// The master's name for a subnet (thesis 5.4): SHA-1 of the node's local network prefix and
/// its observed public address under the same mask. Two sites using the same private range
/// behind different public addresses are different subnets; two nodes behind one NAT with the
/// same local prefix are one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetKey([u8; 20]);

impl SubnetKey {
    /// The key for a node at `local`/`prefix_len` seen by the master from `public`.
    pub fn new(local: IpAddr, prefix_len: u8, public: IpAddr) -> Self {
        let mut h = Sha1::new();
        h.update(masked(local, prefix_len));
        h.update([prefix_len]);
        h.update(masked(public, prefix_len));
        SubnetKey(h.finalize().into())
    }

    /// The key with these raw bytes (as [`as_bytes`](Self::as_bytes) gave them).
    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        SubnetKey(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Debug for SubnetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubnetKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The address bytes with every bit past `prefix_len` cleared (the prefix is clipped to the
/// family's length).
pub(super) fn masked(ip: IpAddr, prefix_len: u8) -> Vec<u8> {
    let mut bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let bits = (prefix_len as usize).min(bytes.len() * 8);
    for (i, b) in bytes.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn same_prefix_same_public_network_is_one_subnet() {
        let a = SubnetKey::new(ip("10.1.2.3"), 24, ip("198.51.100.7"));
        let b = SubnetKey::new(ip("10.1.2.200"), 24, ip("198.51.100.9"));
        assert_eq!(a, b);
    }

    #[test]
    fn same_private_range_at_two_sites_differs() {
        let a = SubnetKey::new(ip("192.168.1.5"), 24, ip("198.51.100.7"));
        let b = SubnetKey::new(ip("192.168.1.5"), 24, ip("203.0.113.7"));
        assert_ne!(a, b);
        assert_ne!(
            SubnetKey::new(ip("10.1.2.3"), 24, ip("10.1.2.3")),
            SubnetKey::new(ip("10.1.3.3"), 24, ip("10.1.3.3"))
        );
    }

    #[test]
    fn masks_clip_to_the_family() {
        assert_eq!(masked(ip("10.1.2.3"), 20), vec![10, 1, 0, 0]);
        assert_eq!(masked(ip("10.1.2.3"), 200), vec![10, 1, 2, 3]);
        assert_eq!(masked(ip("10.1.2.3"), 0), vec![0, 0, 0, 0]);
        let v6 = masked(ip("2001:db8:1:2::5"), 64);
        assert_eq!(&v6[..8], &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2]);
        assert!(v6[8..].iter().all(|b| *b == 0));
    }
}
