//! Fuzzes inventory batches (body of an `InventoryBatch`, `overlay/inventory`): zstd, then
//! the CBOR array of changes, then each change's diff. Nothing panics, decompression stays
//! within its bound, and a diff that decodes re-encodes to the same bytes and applies.

#![no_main]

use fleetmesh::overlay::inventory::{self, InventoryDiff, InventoryDocument};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The diff decoder alone, on the raw input.
    if let Ok(diff) = InventoryDiff::decode(data) {
        let mut doc = InventoryDocument::new();
        diff.apply_to(&mut doc);
        assert_eq!(InventoryDiff::decode(&diff.encode()), Ok(diff.clone()));
    }
    // The whole batch.
    let Ok(changes) = inventory::unpack(data) else { return };
    assert!(changes.len() <= inventory::MAX_BATCH_CHANGES);
    for change in &changes {
        if let Ok(diff) = InventoryDiff::decode(&change.diff) {
            let mut doc = InventoryDocument::new();
            let (entries, _) = diff.size_after(&doc, 0);
            diff.apply_to(&mut doc);
            // The master checks its bounds with this count before applying.
            assert_eq!(entries, doc.len());
        }
    }
    // What unpacked packs again to something that unpacks to the same.
    assert_eq!(inventory::unpack(&inventory::pack(&changes)), Ok(changes));
});
