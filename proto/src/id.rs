//! [`NodeId`]: the 160-bit, self-certifying name of a node.

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// Number of bytes in a [`NodeId`].
pub const NODE_ID_LEN: usize = 20;

/// A node's identity on the network: SHA-1 of its ed25519 public key (160 bits).
///
/// The id is self-certifying: nobody can claim an id without the matching private key, because
/// every certificate and session checks `NodeId == SHA-1(public key)`. The same 160-bit space is
/// the Kademlia key space, hence [`NodeId::distance`] and [`NodeId::bucket_index`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(#[serde(with = "serde_bytes_array")] [u8; NODE_ID_LEN]);

impl NodeId {
    /// The id with every bit zero.
    pub const ZERO: NodeId = NodeId([0; NODE_ID_LEN]);

    /// The id belonging to an ed25519 public key.
    pub fn from_public_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self::hash(key.as_bytes())
    }

    /// SHA-1 of arbitrary bytes, as a key in the id space (e.g. a DHT record key).
    pub fn hash(bytes: &[u8]) -> Self {
        let digest = Sha1::digest(bytes);
        let mut id = [0u8; NODE_ID_LEN];
        id.copy_from_slice(&digest);
        NodeId(id)
    }

    /// An id from its raw bytes.
    pub const fn from_bytes(bytes: [u8; NODE_ID_LEN]) -> Self {
        NodeId(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; NODE_ID_LEN] {
        &self.0
    }

    /// XOR distance to `other` (Kademlia's metric).
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; NODE_ID_LEN];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// The k-bucket `other` falls into from this id's point of view: the index of the highest
    /// set bit of the distance (0 ..= 159), or `None` when the ids are equal.
    pub fn bucket_index(&self, other: &NodeId) -> Option<usize> {
        self.distance(other).bucket_index()
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits name a node unambiguously in any realistic log.
        write!(f, "NodeId({})", &self.to_string()[..8])
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Error parsing a [`NodeId`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 40 hexadecimal digits")]
pub struct ParseNodeIdError;

impl FromStr for NodeId {
    type Err = ParseNodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != NODE_ID_LEN * 2 {
            return Err(ParseNodeIdError);
        }
        let mut id = [0u8; NODE_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            let hi = hex_digit(s[2 * i]).ok_or(ParseNodeIdError)?;
            let lo = hex_digit(s[2 * i + 1]).ok_or(ParseNodeIdError)?;
            *byte = hi << 4 | lo;
        }
        Ok(NodeId(id))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The XOR distance between two [`NodeId`]s, ordered as a 160-bit big-endian integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Distance([u8; NODE_ID_LEN]);

impl Distance {
    /// The raw bytes, most significant first.
    pub const fn as_bytes(&self) -> &[u8; NODE_ID_LEN] {
        &self.0
    }

    /// Number of leading zero bits (160 for the zero distance).
    pub fn leading_zeros(&self) -> u32 {
        let mut zeros = 0;
        for b in self.0 {
            if b == 0 {
                zeros += 8;
            } else {
                return zeros + b.leading_zeros();
            }
        }
        zeros
    }

    /// Index of the highest set bit (0 ..= 159), or `None` for the zero distance.
    pub fn bucket_index(&self) -> Option<usize> {
        let zeros = self.leading_zeros() as usize;
        (zeros < NODE_ID_LEN * 8).then(|| NODE_ID_LEN * 8 - 1 - zeros)
    }
}

impl PartialOrd for Distance {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Distance {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// Serde for fixed-size byte arrays as CBOR byte strings (not arrays of integers).
pub(crate) mod serde_bytes_array {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let buf: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        buf.as_ref()
            .try_into()
            .map_err(|_| D::Error::invalid_length(buf.len(), &"a fixed-size byte string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(b: [u8; 20]) -> NodeId {
        NodeId::from_bytes(b)
    }

    #[test]
    fn bucket_index_is_highest_differing_bit() {
        let zero = NodeId::ZERO;
        let mut b = [0u8; 20];
        b[19] = 1;
        assert_eq!(zero.bucket_index(&id(b)), Some(0));
        b[0] = 0x80;
        assert_eq!(zero.bucket_index(&id(b)), Some(159));
        assert_eq!(zero.bucket_index(&zero), None);
    }

    #[test]
    fn display_and_parse_round_trip() {
        let n = NodeId::hash(b"hello");
        let s = n.to_string();
        assert_eq!(s.len(), 40);
        assert_eq!(s.parse::<NodeId>().unwrap(), n);
        assert!("xyz".parse::<NodeId>().is_err());
        assert!("zz".repeat(20).parse::<NodeId>().is_err());
    }

    proptest! {
        #[test]
        fn xor_metric_properties(a in any::<[u8; 20]>(), b in any::<[u8; 20]>(), c in any::<[u8; 20]>()) {
            let (a, b, c) = (id(a), id(b), id(c));
            prop_assert_eq!(a.distance(&b), b.distance(&a));
            prop_assert_eq!(a.distance(&a).bucket_index(), None);
            // Unidirectionality: for a given a and distance there is exactly one b.
            let d = a.distance(&b);
            let mut back = [0u8; 20];
            for (i, byte) in back.iter_mut().enumerate() { *byte = a.as_bytes()[i] ^ d.as_bytes()[i]; }
            prop_assert_eq!(id(back), b);
            // XOR triangle inequality d(a,c) <= d(a,b) ^ d(b,c), which bounds d(a,c) by the
            // larger bucket of the two legs.
            let ab = a.bucket_index(&b).map_or(-1, |x| x as i32);
            let bc = b.bucket_index(&c).map_or(-1, |x| x as i32);
            let ac = a.bucket_index(&c).map_or(-1, |x| x as i32);
            prop_assert!(ac <= ab.max(bc));
        }
    }
}
