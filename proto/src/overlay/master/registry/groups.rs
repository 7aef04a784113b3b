//! Node ids grouped by a key, each group in id order: an index the registry keeps beside its
//! records, so that "the children of this LSN" or "the LSNs of this subnet" is a lookup, not
//! a pass over the whole fleet.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::Hash,
};

use crate::NodeId;

pub(super) struct Groups<K>(HashMap<K, BTreeSet<NodeId>>);

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Groups(HashMap::new())
    }
}

impl<K: Hash + Eq + Copy> Groups<K> {
    /// Files `rec` under `id` in `records` (replacing any it had), and `id` under the group
    /// `key` names for it; returns the record replaced.
    pub(super) fn put<V>(
        &mut self,
        records: &mut BTreeMap<NodeId, V>,
        id: NodeId,
        rec: V,
        key: impl Fn(&V) -> K,
    ) -> Option<V> {
        let to = key(&rec);
        let previous = records.insert(id, rec);
        self.refile(id, previous.as_ref().map(&key), to);
        previous
    }

    /// Takes `id`'s record out of `records`, and `id` out of its group.
    pub(super) fn take<V>(
        &mut self,
        records: &mut BTreeMap<NodeId, V>,
        id: &NodeId,
        key: impl Fn(&V) -> K,
    ) -> Option<V> {
        let rec = records.remove(id)?;
        self.unfile(id, &key(&rec));
        Some(rec)
    }

    /// Files `id` under `to`, taking it out of `from` (where it was) if that is another group.
    fn refile(&mut self, id: NodeId, from: Option<K>, to: K) {
        if let Some(from) = from.filter(|f| *f != to) {
            self.unfile(&id, &from);
        }
        self.0.entry(to).or_default().insert(id);
    }

    /// Takes `id` out of group `from`; a group left empty goes.
    fn unfile(&mut self, id: &NodeId, from: &K) {
        if let Some(set) = self.0.get_mut(from) {
            set.remove(id);
            if set.is_empty() {
                self.0.remove(from);
            }
        }
    }

    /// The ids filed under `key`, in id order.
    pub(super) fn ids(&self, key: &K) -> impl Iterator<Item = &NodeId> {
        self.0.get(key).into_iter().flatten()
    }

    /// How many ids are filed, and whether an empty group was left behind.
    #[cfg(test)]
    pub(super) fn census(&self) -> (usize, bool) {
        (self.0.values().map(BTreeSet::len).sum(), self.0.values().any(BTreeSet::is_empty))
    }
}
