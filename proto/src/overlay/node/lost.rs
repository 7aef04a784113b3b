//! Children reported lost that turn out to be alive (issue 19).
//!
//! An LSN reports a child lost after `child_missed_pings` unanswered pings, and forgets it. A
//! child that was alive all along (its answers lost, or our pings sent over a session it had
//! closed) still believes it is ours: nothing pings it any more, it probes us only after its
//! `lsn_silence`, and our Pong satisfies it. It stayed absent at the master for good while
//! attached. So the LSN remembers the children it reported lost for a while, tells each at
//! once (a Part naming ourselves as the better LSN: a live child rejoins, and its Join is
//! reported), again every [`TELL_EVERY`] up to [`TELLS`] times while it has not rejoined (the
//! losses that lost the child lose single tells too: at 20 % loss one tell in five, which
//! left the child absent until its `lsn_silence`), and whenever it hears from it.

use std::{collections::VecDeque, net::SocketAddr, time::Duration};

use super::Node;
use crate::{
    wire::{Message, Part, PartReason},
    NodeId, Timestamp,
};

/// How long a child reported lost is remembered: past its `lsn_silence` (90 s) and probe.
const LOST_FOR: Duration = Duration::from_secs(300);
/// Most children remembered (a subnet's worth; the oldest go first).
pub(crate) const MAX_LOST: usize = 64;
/// How often a child reported lost is told to rejoin until it does.
pub(crate) const TELL_EVERY: Duration = Duration::from_secs(2);
/// How many times it is told unprompted (a dead child costs this many LAN messages).
pub(crate) const TELLS: u8 = 5;

struct Entry {
    id: NodeId,
    at: Timestamp,
    addr: SocketAddr,
    told: u8,
    next: Timestamp,
}

/// The children an LSN reported lost lately, oldest first.
#[derive(Default)]
pub(crate) struct Lost(VecDeque<Entry>);

impl Lost {
    fn note(&mut self, now: Timestamp, id: NodeId, addr: SocketAddr) {
        self.0.retain(|e| e.id != id && now < e.at + LOST_FOR);
        if self.0.len() >= MAX_LOST {
            self.0.pop_front();
        }
        self.0.push_back(Entry { id, at: now, addr, told: 1, next: now + TELL_EVERY });
    }

    /// Whether `id` was reported lost lately.
    fn contains(&self, now: Timestamp, id: &NodeId) -> bool {
        self.0.iter().any(|e| e.id == *id && now < e.at + LOST_FOR)
    }

    /// `id` is our child again.
    pub(crate) fn forget(&mut self, id: &NodeId) {
        self.0.retain(|e| e.id != *id);
    }

    /// When the next unprompted tell is due.
    pub(crate) fn deadline(&self) -> Option<Timestamp> {
        self.0.iter().filter(|e| e.told < TELLS).map(|e| e.next).min()
    }

    /// The children to tell again now (their next tell is scheduled).
    fn due(&mut self, now: Timestamp) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for e in self.0.iter_mut().filter(|e| e.told < TELLS && e.next <= now) {
            e.told += 1;
            e.next = now + TELL_EVERY;
            out.push(e.addr);
        }
        out
    }
}

impl Node {
    /// We reported child `id` at `addr` lost: remember it, and tell it to rejoin in case it is
    /// alive.
    pub(super) fn child_lost(&mut self, now: Timestamp, id: NodeId, addr: std::net::SocketAddr) {
        let Some(role) = self.role.as_mut() else { return };
        role.lost.note(now, id, addr);
        self.tell_to_rejoin(now, addr);
    }

    /// Tells the children reported lost, that have not rejoined, again when due.
    pub(super) fn lost_timers(&mut self, now: Timestamp) {
        let Some(role) = self.role.as_mut() else { return };
        for addr in role.lost.due(now) {
            self.tell_to_rejoin(now, addr);
        }
    }

    /// A Ping from `peer`, not our child: if we reported it lost lately, it is alive and
    /// still believes it is ours; tell it to rejoin.
    pub(super) fn lost_child_heard(
        &mut self,
        now: Timestamp,
        peer: &NodeId,
        addr: std::net::SocketAddr,
    ) {
        let Some(role) = self.role.as_ref() else { return };
        if role.children.contains_key(peer) || !role.lost.contains(now, peer) {
            return;
        }
        tracing::debug!(?peer, "a child reported lost is alive: told to rejoin");
        self.tell_to_rejoin(now, addr);
    }

    fn tell_to_rejoin(&mut self, now: Timestamp, addr: std::net::SocketAddr) {
        let better_lsn = Some(self.me());
        self.send(now, addr, Message::Part(Part { reason: PartReason::Lost, better_lsn }));
    }
}

impl Node {
    /// Test hook: as if child `id`'s answers to our last `child_missed_pings` pings had all
    /// been lost: it is reported lost while alive.
    #[cfg(test)]
    pub(crate) fn lose_child(&mut self, now: Timestamp, id: NodeId) {
        self.remove_child(now, id, PartReason::Lost);
    }
}
