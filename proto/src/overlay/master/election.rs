//! LSN eligibility (issue 6): the master designates as a subnet's LSN only a node that proved
//! it receives *unsolicited* inbound UDP, since an LSN's children open their sessions to it.
//!
//! # Design
//!
//! When a subnet without an LSN asks for one, the master does not answer "become the LSN" at
//! once: it holds the query in an *election* for that subnet, open for
//! [`MasterConfig::reach_probe_wait`](crate::overlay::MasterConfig::reach_probe_wait). Each
//! node that queries while it is open becomes a candidate and is asked
//! ([`ProbeRequest`]) to send a reach probe (an unauthenticated 9-byte packet carrying a
//! random nonce, see [`secure`](crate::secure)) to the *local* address of up to
//! [`MAX_PROBED`] earlier candidates. A candidate the probe reaches echoes the nonce to the
//! master ([`ReachProof`](crate::wire::ReachProof)) over its authenticated session; the first
//! one to do so wins at once: it is told to become the LSN, the others are named it.
//!
//! Why this is sound:
//! * the probe comes from a *LAN peer* the target has never sent to (candidates have no
//!   session with each other, and only the newcomer probes, never both ways), so a stateful
//!   host firewall or a NAT's filtering cannot pass it as an answer; the receiver also ignores
//!   probes from an address it has a session with;
//! * it travels the path the LSN's future children will take (the LAN), so a NAT in front of
//!   the subnet does not make its nodes ineligible;
//! * the nonce is random and only sent inside encrypted sessions and in the probe itself, so a
//!   node cannot prove a probe it did not receive.
//!
//! When the election closes with nobody proven (a lone node, or a subnet where no node can
//! receive unsolicited UDP), the master designates the first candidate that was never probed,
//! else the first candidate: the best available choice (its children then use the TCP
//! fallback). A node proven once is designated at once later (for an hour, at the same local
//! address).
//!
//! The hot standby takes over without asking the master, so an LSN applies the same rule to
//! its children (`overlay/node/reach.rs`): each new child probes up to three earlier children
//! nobody probed yet, and children that proved themselves rank first.
//!
//! A simulator models this with no extra machinery: probes are ordinary UDP datagrams from
//! one node's address to another's local address; a host whose inbound UDP is blocked (all of
//! it, or, like a stateful firewall, from addresses it has not sent to) never receives one.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    time::Duration,
};

use crate::{
    overlay::SubnetKey,
    wire::{Contact, ProbeRequest, WireAddr},
    NodeId, Timestamp,
};

/// How many earlier candidates a newcomer is asked to probe.
pub(super) const MAX_PROBED: usize = 3;

/// How long a proof of reachability counts.
const PROVEN_TTL: Duration = Duration::from_secs(3600);

/// A node waiting in an election for its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    /// The node and its local address.
    pub(super) contact: Contact,
    /// Its session with the master.
    pub(super) addr: SocketAddr,
    /// Its LsnQuery, to answer.
    pub(super) seq: u32,
    /// The nonce a probe to it carries.
    nonce: u64,
    /// Whether someone was asked to probe it.
    probed: bool,
}

impl Candidate {
    pub(super) fn new(contact: Contact, addr: SocketAddr, seq: u32, nonce: u64) -> Self {
        Candidate { contact, addr, seq, nonce, probed: false }
    }
}

/// A decided election: the candidates and the index of the winner.
pub(super) type Decided = (SubnetKey, Vec<Candidate>, usize);

struct Election {
    deadline: Timestamp,
    candidates: Vec<Candidate>,
}

/// The master's open elections and the nodes proven reachable.
#[derive(Default)]
pub(super) struct Elections {
    open: BTreeMap<SubnetKey, Election>,
    proven: HashMap<NodeId, (SocketAddr, Timestamp)>,
}

impl Elections {
    /// Whether `node` proved recently that unsolicited UDP reaches it at `local`.
    pub(super) fn is_proven(&self, now: Timestamp, node: &NodeId, local: SocketAddr) -> bool {
        self.proven.get(node).is_some_and(|(at, when)| *at == local && now < *when + PROVEN_TTL)
    }

    /// Whether `subnet` has an open election.
    pub(super) fn is_open(&self, subnet: &SubnetKey) -> bool {
        self.open.contains_key(subnet)
    }

    /// Adds `cand` to `subnet`'s election (opening it, closing at `now + wait`). Returns the
    /// probes to request: (where the prober's session is, what to ask it).
    pub(super) fn enter(
        &mut self,
        now: Timestamp,
        subnet: SubnetKey,
        cand: Candidate,
        wait: Duration,
    ) -> Vec<(SocketAddr, ProbeRequest)> {
        let election = self
            .open
            .entry(subnet)
            .or_insert_with(|| Election { deadline: now + wait, candidates: Vec::new() });
        if let Some(known) =
            election.candidates.iter_mut().find(|c| c.contact.id == cand.contact.id)
        {
            // A repeated query: answer the latest.
            known.seq = cand.seq;
            known.addr = cand.addr;
            return Vec::new();
        }
        let mut requests = Vec::new();
        for earlier in election.candidates.iter_mut().filter(|c| !c.probed).take(MAX_PROBED) {
            earlier.probed = true;
            let target: WireAddr = earlier.contact.addr;
            requests.push((cand.addr, ProbeRequest { nonce: earlier.nonce, target }));
        }
        election.candidates.push(cand);
        requests
    }

    /// Closes `subnet`'s election (if open), returning its candidates.
    pub(super) fn take(&mut self, subnet: &SubnetKey) -> Vec<Candidate> {
        self.open.remove(subnet).map(|e| e.candidates).unwrap_or_default()
    }

    /// `peer` echoed `nonce`: if it is a candidate's proof, records it and decides its
    /// election in its favour.
    pub(super) fn proof(&mut self, now: Timestamp, peer: &NodeId, nonce: u64) -> Option<Decided> {
        let (subnet, winner) = self.open.iter().find_map(|(subnet, e)| {
            let i = e.candidates.iter().position(|c| c.contact.id == *peer && c.nonce == nonce)?;
            Some((*subnet, i))
        })?;
        let candidates = self.take(&subnet);
        self.proven.insert(*peer, (candidates[winner].contact.addr.0, now));
        Some((subnet, candidates, winner))
    }

    /// Elections whose time is up, each with its fallback winner: the first candidate never
    /// probed (nothing speaks against it), else the first.
    pub(super) fn expire(&mut self, now: Timestamp) -> Vec<Decided> {
        self.proven.retain(|_, (_, when)| now < *when + PROVEN_TTL);
        let due: Vec<SubnetKey> =
            self.open.iter().filter(|(_, e)| now >= e.deadline).map(|(s, _)| *s).collect();
        due.into_iter()
            .map(|subnet| {
                let candidates = self.take(&subnet);
                let winner = candidates.iter().position(|c| !c.probed).unwrap_or(0);
                (subnet, candidates, winner)
            })
            .filter(|(_, c, _)| !c.is_empty())
            .collect()
    }

    /// When the next election closes.
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.open.values().map(|e| e.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1_000);
    const WAIT: Duration = Duration::from_millis(500);

    fn cand(n: u8) -> Candidate {
        let contact = Contact {
            id: NodeId::hash(&[n]),
            addr: WireAddr(SocketAddr::from(([10, 0, 0, n], 4000))),
        };
        Candidate::new(
            contact,
            SocketAddr::from(([100, 64, 0, 1], 5000 + u16::from(n))),
            1,
            100 + u64::from(n),
        )
    }

    fn subnet() -> SubnetKey {
        SubnetKey::new("10.0.0.1".parse().unwrap(), 24, "100.64.0.1".parse().unwrap())
    }

    #[test]
    fn newcomers_probe_earlier_candidates_one_way() {
        let mut e = Elections::default();
        assert!(e.enter(T0, subnet(), cand(1), WAIT).is_empty());
        let asks = e.enter(T0, subnet(), cand(2), WAIT);
        // The newcomer (2) probes the earlier candidate (1); never the other way round.
        assert_eq!(
            asks,
            vec![(cand(2).addr, ProbeRequest { nonce: 101, target: cand(1).contact.addr })]
        );
        // The third probes the one nobody probed yet.
        let asks = e.enter(T0, subnet(), cand(3), WAIT);
        assert_eq!(
            asks,
            vec![(cand(3).addr, ProbeRequest { nonce: 102, target: cand(2).contact.addr })]
        );
        // A repeated query asks for nothing new.
        assert!(e.enter(T0, subnet(), cand(3), WAIT).is_empty());
        assert!(e.is_open(&subnet()));
    }

    #[test]
    fn the_first_proof_wins_and_is_remembered() {
        let mut e = Elections::default();
        for n in 1..=3 {
            e.enter(T0, subnet(), cand(n), WAIT);
        }
        // A wrong nonce, or a proof from someone else, decides nothing.
        assert!(e.proof(T0, &cand(1).contact.id, 102).is_none());
        let (_, cands, winner) = e.proof(T0, &cand(2).contact.id, 102).expect("a valid proof");
        assert_eq!(cands.len(), 3);
        assert_eq!(cands[winner].contact.id, cand(2).contact.id);
        assert!(!e.is_open(&subnet()));
        let local = cand(2).contact.addr.0;
        assert!(e.is_proven(T0, &cand(2).contact.id, local));
        assert!(!e.is_proven(T0, &cand(2).contact.id, SocketAddr::from(([10, 9, 9, 9], 4000))));
        assert!(!e.is_proven(T0 + PROVEN_TTL, &cand(2).contact.id, local));
    }

    #[test]
    fn without_a_proof_the_first_unprobed_candidate_wins() {
        let mut e = Elections::default();
        e.enter(T0, subnet(), cand(1), WAIT);
        e.enter(T0, subnet(), cand(2), WAIT);
        assert_eq!(e.next_deadline(), Some(T0 + WAIT));
        assert!(e.expire(T0 + WAIT - Duration::from_millis(1)).is_empty());
        let decided = e.expire(T0 + WAIT);
        assert_eq!(decided.len(), 1);
        let (_, cands, winner) = &decided[0];
        // 1 was probed and did not prove itself; 2 was never probed.
        assert_eq!(cands[*winner].contact.id, cand(2).contact.id);
        assert_eq!(e.next_deadline(), None);
    }

    #[test]
    fn a_lone_candidate_wins_when_the_election_closes() {
        let mut e = Elections::default();
        e.enter(T0, subnet(), cand(1), WAIT);
        let decided = e.expire(T0 + WAIT);
        assert_eq!(decided[0].1[decided[0].2].contact.id, cand(1).contact.id);
    }
}
