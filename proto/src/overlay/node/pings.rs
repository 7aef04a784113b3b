//! The LSN's ping queue: every child's `next_ping`, earliest first, so the timers take the
//! due children without walking all of them (fifty, scattered in memory, several times a
//! second). Entries are pushed whenever a `next_ping` is set; one whose child has another
//! `next_ping` by now, or is gone, is stale and skipped when it comes up.

use std::cmp::Reverse;

use super::lsn::LsnRole;
use crate::{NodeId, Timestamp};

impl LsnRole {
    /// Notes that child `id`'s `next_ping` is now `t`.
    pub(crate) fn ping_at(&mut self, id: NodeId, t: Timestamp) {
        self.pings_due = Some(self.pings_due.map_or(t, |d| d.min(t)));
        self.ping_queue.push(Reverse((t, id)));
    }

    /// Takes the children whose ping (or announcement) is due by `now` off the queue, in id
    /// order.
    pub(super) fn due_children(&mut self, now: Timestamp) -> Vec<NodeId> {
        let mut due = Vec::new();
        while let Some(&Reverse((t, id))) = self.ping_queue.peek() {
            if t > now {
                break;
            }
            self.ping_queue.pop();
            if self.children.get(&id).is_some_and(|c| c.next_ping == t) {
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// The earliest `next_ping` of the children but `lost`, after dropping stale entries.
    pub(super) fn first_ping(&mut self, lost: &[NodeId]) -> Option<Timestamp> {
        while let Some(&Reverse((t, id))) = self.ping_queue.peek() {
            let live = self.children.get(&id).is_some_and(|c| c.next_ping == t);
            if live && !lost.contains(&id) {
                return Some(t);
            }
            self.ping_queue.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::overlay::node::lsn::Child;

    fn child(n: u8, next_ping: Timestamp) -> Child {
        let addr: SocketAddr = ([10, 0, 0, n], 4000).into();
        Child {
            id: NodeId::from_bytes([n; 20]),
            addr,
            up_since: Timestamp::ZERO,
            last_heard: Timestamp::ZERO,
            next_ping,
            pinged_at: Timestamp::ZERO,
            awaiting: false,
            misses: 0,
            local: addr,
            reachable: false,
            probed: false,
            adopted_from: None,
            inherited_rank: 0,
            list_stale: false,
            class_due: false,
        }
    }

    #[test]
    fn the_ping_queue_yields_each_due_child_once_and_skips_stale_entries() {
        let s = Timestamp::from_secs;
        let mut r = LsnRole::new(s(0), None);
        for (n, t) in [(3, 10), (1, 20), (2, 10)] {
            let c = child(n, s(t));
            r.ping_at(c.id, c.next_ping);
            r.children.insert(c.id, c);
        }
        let [a, b, c] = [1, 2, 3].map(|n| NodeId::from_bytes([n; 20]));
        assert_eq!(r.pings_due, Some(s(10)));
        // Child 3's ping moves later (as a paced announcement does): its old entry is stale.
        r.children.get_mut(&c).unwrap().next_ping = s(30);
        r.ping_queue.push(Reverse((s(30), c)));
        // Pushed twice with the same time: still handed out once.
        r.ping_at(b, s(10));
        assert_eq!(r.due_children(s(9)), Vec::<NodeId>::new());
        assert_eq!(r.due_children(s(15)), vec![b]);
        assert_eq!(r.first_ping(&[]), Some(s(20)));
        // A child lost in this round does not set the next deadline; a removed one is skipped.
        assert_eq!(r.first_ping(&[a]), Some(s(30)));
        r.children.remove(&a);
        assert_eq!(r.due_children(s(25)), Vec::<NodeId>::new());
        assert_eq!(r.due_children(s(30)), vec![c]);
        assert_eq!(r.first_ping(&[]), None);
    }
}
