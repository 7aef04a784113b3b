//! An LSN's batch of inventory changes: their CBOR array, compressed with zstd. Unpacking
//! checks the sizes first: at most [`MAX_BATCH_PLAIN`] bytes come out of the decompressor,
//! whatever the input claims, and at most [`MAX_BATCH_CHANGES`] changes out of the decoder.

use super::InventoryError;
use crate::{codec::cbor, wire::InventoryChange};

/// Most bytes a batch holds before compression (and the most the master decompresses).
pub const MAX_BATCH_PLAIN: usize = 1 << 20;
/// Most changes in one batch.
pub const MAX_BATCH_CHANGES: usize = 4096;
/// The zstd level LSNs compress at: fast, and most of the gain on inventories (which are
/// alike across hosts) comes from the window, not the level.
pub const ZSTD_LEVEL: i32 = 3;

/// The batch of `changes`: zstd of their CBOR array.
pub fn pack(changes: &[InventoryChange]) -> Vec<u8> {
    let plain = cbor::to_vec(changes);
    // Compressing a byte slice in memory fails only on allocation failure or a bad level,
    // and the level is a constant zstd accepts.
    zstd::bulk::compress(&plain, ZSTD_LEVEL).expect("zstd compresses a slice at a valid level")
}

/// The changes of a batch; arbitrary bytes give an error, never a panic.
///
/// # Errors
/// [`InventoryError::Undecodable`] for bytes that are not zstd of a CBOR array of changes,
/// or that decompress to more than [`MAX_BATCH_PLAIN`] bytes; [`InventoryError::TooLarge`]
/// beyond [`MAX_BATCH_CHANGES`] changes.
pub fn unpack(data: &[u8]) -> Result<Vec<InventoryChange>, InventoryError> {
    let plain = zstd::bulk::decompress(data, MAX_BATCH_PLAIN)
        .map_err(|e| InventoryError::Undecodable(format!("zstd: {e}")))?;
    let changes: Vec<InventoryChange> =
        cbor::from_slice(&plain).map_err(|e| InventoryError::Undecodable(e.to_string()))?;
    if changes.len() > MAX_BATCH_CHANGES {
        return Err(InventoryError::TooLarge(format!("{} changes in a batch", changes.len())));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::NodeId;

    fn change(n: u8) -> InventoryChange {
        InventoryChange {
            seq: 0,
            node: NodeId::from_bytes([n; 20]),
            base: (n % 2 == 0).then_some(u64::from(n)),
            version: u64::from(n) + 1,
            diff: vec![n; 40],
            certificate: None,
            signature: [n; 64],
        }
    }

    #[test]
    fn a_batch_unpacks_to_its_changes() {
        let changes: Vec<InventoryChange> = (0..12).map(change).collect();
        assert_eq!(unpack(&pack(&changes)).unwrap(), changes);
        assert_eq!(unpack(&pack(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // 2 MiB of zeros compress to a few hundred bytes.
        let bomb = zstd::bulk::compress(&vec![0u8; 2 << 20], 3).unwrap();
        assert!(bomb.len() < 10_000);
        assert!(matches!(unpack(&bomb), Err(InventoryError::Undecodable(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_unpack(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = unpack(&bytes);
        }
    }
}
