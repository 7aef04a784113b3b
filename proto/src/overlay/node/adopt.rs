//! Adoption: how a new LSN takes over the children of the one it replaced without a burst.
//!
//! A standby that takes over (or the master's `Adopt`, for children its list missed) records
//! each of the dead LSN's children as *adopted*: present at once for the master (reported
//! `Joined` before the dead LSN is reported lost, so the master moves them instead of waiting
//! for their rejoin), but not yet joined. The `Takeover` announcements then go out one child at
//! a time, best-ranked first, `takeover_pace` apart: each rejoin costs the new LSN a handful of
//! datagrams (handshake, join, ack, lists), and all of them in one second was the fleet's
//! busiest second. An adopted child's turn reuses its ping schedule: unanswered, the
//! announcement is repeated every `probe_timeout`; after `child_missed_pings` of them the child
//! is reported lost. Its Join (announced or on its own, after silence) makes it an ordinary
//! child; that Join is not reported again, and it probes nobody (both would cost the pace's
//! budget). A leaving LSN hands over the same way: it names only its standby, who adopts.

use std::{cmp::Reverse, time::Duration};

use super::{
    lsn::{Child, LsnRole},
    Node,
};
use crate::{
    wire::{Contact, PresenceChange, PresenceKind, WireAddr},
    NodeId, Timestamp,
};

impl Child {
    /// A child of the dead LSN `old`, known from the standby's list or the master, ranked
    /// `rank` there: its announcement is due at `turn`.
    pub(crate) fn adopted(
        c: Contact,
        old: NodeId,
        rank: u32,
        now: Timestamp,
        turn: Timestamp,
    ) -> Self {
        Child {
            id: c.id,
            addr: c.addr.0,
            up_since: now,
            last_heard: now,
            next_ping: turn,
            pinged_at: now,
            awaiting: false,
            misses: 0,
            local: c.addr.0,
            reachable: false,
            probed: false,
            adopted_from: Some(old),
            inherited_rank: rank,
            list_stale: false,
            class_due: true,
        }
    }
}

impl LsnRole {
    /// An adopted child joined: if on its own, before its announcement (it noticed the silence
    /// itself, or had another reason), it took the place of the announcement due next, so the
    /// turns up to its own move one pace later: together the rejoins stay paced.
    pub(super) fn joined_unannounced(&mut self, now: Timestamp, child: &NodeId, pace: Duration) {
        let Some(own) = self.children.get(child).filter(|c| c.misses == 0).map(|c| c.next_ping)
        else {
            return;
        };
        for c in self.children.values_mut() {
            if c.adopted_from.is_some() && c.misses == 0 && c.next_ping >= now && c.next_ping < own
            {
                c.next_ping = c.next_ping + pace;
                // Later, so `pings_due` stays a lower bound.
                self.ping_queue.push(Reverse((c.next_ping, c.id)));
            }
        }
    }
}

impl Node {
    /// Adopts `children` of the dead LSN `old`, in that order (best-ranked first): each is
    /// reported present to the master and given its turn for the takeover announcement.
    /// Children already known (joined or adopted) are reported again, not announced to;
    /// ourselves and `old` are skipped.
    pub(super) fn adopt(&mut self, now: Timestamp, old: NodeId, children: Vec<Contact>) {
        let me = self.node_id();
        let pace = self.cfg.takeover_pace;
        let mut changes = Vec::new();
        let Some(role) = self.role.as_mut() else { return };
        // Those the master names later rank after the standby's list.
        let base = role.children.len();
        for (rank, c) in children.into_iter().enumerate() {
            if c.id == me || c.id == old {
                continue;
            }
            if let Some(known) = role.children.get(&c.id) {
                // The master files it elsewhere: under a rival that took over our children in
                // error and yielded back, whose report reached the master while theirs never
                // left us (10-minute loss sweep, seed 338: six children absent for good).
                changes.push(PresenceChange {
                    node: c.id,
                    kind: PresenceKind::Joined,
                    addr: WireAddr(known.addr),
                });
                continue;
            }
            let turn = role.next_turn.max(now);
            role.next_turn = turn + pace;
            let rank = u32::try_from(base + rank).unwrap_or(u32::MAX);
            role.children.insert(c.id, Child::adopted(c, old, rank, now, turn));
            role.ping_at(c.id, turn);
            changes.push(PresenceChange {
                node: c.id,
                kind: PresenceKind::Joined,
                addr: WireAddr(c.addr.0),
            });
        }
        // No certificate: the master admitted them and holds theirs.
        for change in changes {
            self.queue_change(now, change, None);
        }
    }

    /// A message for an adopted child is waiting: announce the takeover to it now rather than
    /// at its turn (the message goes out anyway; the LSN opens a session to it).
    pub(super) fn hurry_adopted(&mut self, now: Timestamp, child: &NodeId) {
        let Some(role) = self.role.as_mut() else { return };
        if let Some(c) = role.children.get_mut(child) {
            if c.adopted_from.is_some() && c.misses == 0 {
                c.next_ping = c.next_ping.min(now);
                let t = c.next_ping;
                role.ping_at(*child, t);
            }
        }
    }

    /// The master names the children of the LSN we replaced that our standby list missed:
    /// adopt them too.
    pub(super) fn on_adopt(&mut self, now: Timestamp, peer: NodeId, a: crate::wire::Adopt) {
        if peer != self.ep.trust().network().master_id() || self.role.is_none() {
            return;
        }
        self.adopt(now, a.old, a.children);
    }
}
