use crate::{wire::Digest, NodeId};

/// An order-independent summary of a set of node ids: their count and the wrapping sum of
/// each id's first eight bytes. Ids are SHA-1 outputs, so accidental collisions between two
/// different sets are negligible; this detects divergence, it does not authenticate.
pub fn child_digest<'a>(ids: impl IntoIterator<Item = &'a NodeId>) -> Digest {
    let (mut count, mut hash) = (0u32, 0u64);
    for id in ids {
        count += 1;
        let mut head = [0u8; 8];
        head.copy_from_slice(&id.as_bytes()[..8]);
        hash = hash.wrapping_add(u64::from_be_bytes(head));
    }
    Digest { count, hash }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_order_and_sees_membership() {
        let ids: Vec<NodeId> = (0u8..5).map(|i| NodeId::hash(&[i])).collect();
        let mut reversed = ids.clone();
        reversed.reverse();
        assert_eq!(child_digest(&ids), child_digest(&reversed));
        assert_ne!(child_digest(&ids), child_digest(&ids[1..]));
        assert_eq!(child_digest(&ids[..0]), Digest { count: 0, hash: 0 });
    }
}
