//! The inventory document and its diff: a map of paths (e.g. `os/name`,
//! `packages/openssl`) to values, and the paths a change removes and sets. Both encode
//! deterministically (CBOR, sorted paths), so equal changes are equal bytes.

use std::collections::BTreeMap;

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::InventoryError;
use crate::codec::cbor;

/// A node's inventory: paths to values, sorted.
pub type InventoryDocument = BTreeMap<String, String>;

/// A change to an [`InventoryDocument`]: paths removed, then paths set (each list sorted, no
/// path twice).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct InventoryDiff {
    /// Paths removed.
    pub remove: Vec<String>,
    /// Paths set, with their new values.
    pub set: Vec<(String, String)>,
}

/// The diff that turns `old` into `new` (paths sorted; unchanged paths left out).
pub fn diff(old: &InventoryDocument, new: &InventoryDocument) -> InventoryDiff {
    let mut out = InventoryDiff::default();
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((k, _)), None) => {
                out.remove.push((*k).clone());
                a.next();
            }
            (None, Some((k, v))) => {
                out.set.push(((*k).clone(), (*v).clone()));
                b.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.remove.push((*ka).clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.set.push(((*kb).clone(), (*vb).clone()));
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if va != vb {
                        out.set.push(((*kb).clone(), (*vb).clone()));
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    out
}

/// About how many bytes an entry takes in the CBOR encoding.
fn entry_len(path: &str, value: Option<&str>) -> usize {
    path.len() + value.map_or(0, str::len) + 6
}

impl InventoryDiff {
    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    /// Its deterministic encoding.
    pub fn encode(&self) -> Vec<u8> {
        cbor::to_vec(self)
    }

    /// Decodes a diff; arbitrary bytes give an error, never a panic.
    ///
    /// # Errors
    /// [`InventoryError::Undecodable`].
    pub fn decode(bytes: &[u8]) -> Result<InventoryDiff, InventoryError> {
        cbor::from_slice(bytes).map_err(|e| InventoryError::Undecodable(e.to_string()))
    }

    /// Splits off what follows the first `limit` bytes (about: removals first, then sets, at
    /// least one entry): `self` keeps the first part, applied first.
    pub fn split_at_bytes(&mut self, limit: usize) -> InventoryDiff {
        let mut used = 0;
        let mut removes = 0;
        for path in &self.remove {
            let len = entry_len(path, None);
            if removes > 0 && used + len > limit {
                break;
            }
            used += len;
            removes += 1;
        }
        let rest_remove = self.remove.split_off(removes);
        let mut sets = 0;
        if rest_remove.is_empty() {
            for (path, value) in &self.set {
                let len = entry_len(path, Some(value));
                if removes + sets > 0 && used + len > limit {
                    break;
                }
                used += len;
                sets += 1;
            }
        }
        let rest_set = self.set.split_off(sets);
        InventoryDiff { remove: rest_remove, set: rest_set }
    }

    /// Applies the diff to `doc`.
    pub fn apply_to(&self, doc: &mut InventoryDocument) {
        for path in &self.remove {
            doc.remove(path);
        }
        for (path, value) in &self.set {
            doc.insert(path.clone(), value.clone());
        }
    }

    /// The document this diff makes from nothing (the same as applying it to an empty one:
    /// of a path set twice the later value). Built in one pass, so the map's nodes are
    /// full: about half the memory of inserting one entry at a time.
    pub fn into_document(self) -> InventoryDocument {
        self.set.into_iter().collect()
    }

    /// The entries and (about) bytes `doc` would have after the diff, `bytes` being what it
    /// has now: for checking bounds before applying.
    pub fn size_after(&self, doc: &InventoryDocument, bytes: usize) -> (usize, usize) {
        let (mut entries, mut bytes) = (doc.len() as isize, bytes as isize);
        let mut gone = std::collections::BTreeSet::new();
        for path in &self.remove {
            if let Some(v) = doc.get(path) {
                if gone.insert(path.as_str()) {
                    entries -= 1;
                    bytes -= entry_len(path, Some(v)) as isize;
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (path, value) in &self.set {
            if !seen.insert(path.as_str()) {
                continue; // A later set of the same path wins; count it once (roughly).
            }
            match doc.get(path).filter(|_| !gone.contains(path.as_str())) {
                Some(old) => bytes -= entry_len(path, Some(old)) as isize,
                None => entries += 1,
            }
            bytes += entry_len(path, Some(value)) as isize;
        }
        (entries.max(0) as usize, bytes.max(0) as usize)
    }
}

/// About how many bytes `doc` takes encoded.
pub(crate) fn document_len(doc: &InventoryDocument) -> usize {
    doc.iter().map(|(p, v)| entry_len(p, Some(v))).sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn docs() -> impl Strategy<Value = InventoryDocument> {
        prop::collection::btree_map("[a-c/]{0,6}", "[xy]{0,4}", 0..24)
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_new_document(old in docs(), new in docs()) {
            let d = diff(&old, &new);
            let mut doc = old.clone();
            d.apply_to(&mut doc);
            prop_assert_eq!(&doc, &new);
            // The encoding round-trips and is deterministic.
            let bytes = d.encode();
            prop_assert_eq!(InventoryDiff::decode(&bytes).unwrap(), d.clone());
            prop_assert_eq!(diff(&old, &new).encode(), bytes);
            // The size check agrees with the document's own.
            prop_assert_eq!(d.size_after(&old, document_len(&old)), (new.len(), document_len(&new)));
        }

        #[test]
        fn a_split_diff_applied_in_parts_gives_the_new_document(
            old in docs(),
            new in docs(),
            limit in 0usize..64,
        ) {
            let mut rest = diff(&old, &new);
            let mut doc = old.clone();
            let mut parts = 0;
            while !rest.is_empty() {
                let tail = rest.split_at_bytes(limit);
                prop_assert!(!rest.is_empty(), "every part carries something");
                rest.apply_to(&mut doc);
                rest = tail;
                parts += 1;
                prop_assert!(parts <= 100);
            }
            prop_assert_eq!(doc, new);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = InventoryDiff::decode(&bytes);
        }
    }

    #[test]
    fn a_diff_made_into_a_document_equals_it_applied_to_an_empty_one() {
        let twice = InventoryDiff {
            remove: vec!["gone".into()],
            set: vec![("b".into(), "1".into()), ("a".into(), "1".into()), ("b".into(), "2".into())],
        };
        let mut applied = InventoryDocument::new();
        twice.apply_to(&mut applied);
        assert_eq!(twice.into_document(), applied, "the later value of a path set twice");
    }

    #[test]
    fn unchanged_paths_are_left_out() {
        let old: InventoryDocument = [("os/name", "Debian"), ("pkg/a", "1.0"), ("pkg/b", "2.0")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut new = old.clone();
        new.insert("pkg/b".into(), "2.1".into());
        new.remove("pkg/a");
        new.insert("pkg/c".into(), "0.1".into());
        let d = diff(&old, &new);
        assert_eq!(d.remove, vec!["pkg/a".to_owned()]);
        assert_eq!(
            d.set,
            vec![("pkg/b".to_owned(), "2.1".to_owned()), ("pkg/c".to_owned(), "0.1".to_owned())]
        );
    }
}
