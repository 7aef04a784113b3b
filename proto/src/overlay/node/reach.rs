//! LSN eligibility, the node's side (the design is in `overlay/master/election.rs`): probe
//! another node when the master asks, and echo the nonce of a probe that reached us.

use std::net::SocketAddr;

use super::{Node, NodeState};
use crate::{
    wire::{Message, ProbeRequest, ReachProof, WireAddr},
    NodeId, Path, Timestamp,
};

/// How many earlier children a new child is asked to probe.
const MAX_PROBED: usize = 3;

impl Node {
    /// Whether an unsolicited reach probe has reached this node over UDP (it may then be
    /// designated its subnet's LSN).
    pub fn inbound_ok(&self) -> bool {
        self.inbound_ok
    }

    /// The master (electing an LSN) or our LSN (ranking its children) asks us to probe a node
    /// of our subnet. Nobody else may: a probe is sent outside any session.
    pub(super) fn on_probe_request(&mut self, peer: NodeId, request: ProbeRequest) {
        let from_lsn =
            self.state == NodeState::HasLsn && self.lsn.as_ref().is_some_and(|l| l.id == peer);
        if peer != self.ep.trust().network().master_id() && !from_lsn {
            tracing::debug!(?peer, "probe request not from the master or our LSN: ignored");
            return;
        }
        self.ep.send_reach_probe(request.target.0, request.nonce);
    }

    /// A reach probe arrived. It counts only over UDP and from an address we have no session
    /// with (else a stateful firewall may have let it in as an answer); we echo it to the master
    /// only while our LSN query is waiting for its answer, so a stray probe costs nothing.
    pub(super) fn on_reach_probe(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        path: Path,
        nonce: u64,
        session: bool,
    ) {
        if path != Path::Udp || session {
            tracing::debug!(%addr, ?path, session, "reach probe proves nothing: ignored");
            return;
        }
        self.inbound_ok = true;
        if self.finder.query_pending() {
            let master = self.cfg.master;
            self.send(now, master, Message::ReachProof(ReachProof { nonce }));
        }
        if let Some(lsn) = self.lsn.as_ref().filter(|_| self.state == NodeState::HasLsn) {
            let addr = lsn.addr;
            self.send(now, addr, Message::ReachProof(ReachProof { nonce }));
        }
    }

    /// (LSN) A new child joined: it probes up to [`MAX_PROBED`] earlier children nobody probed
    /// yet (one way only, as in the master's election), so that the ranking can put children
    /// proven reachable first and the hot standby is eligible to lead.
    pub(super) fn probe_children(
        &mut self,
        now: Timestamp,
        joiner: NodeId,
        joiner_addr: SocketAddr,
    ) {
        let Some(role) = self.role.as_mut() else { return };
        let targets: Vec<(NodeId, SocketAddr)> = role
            .children
            .values_mut()
            .filter(|c| c.id != joiner && !c.reachable && !c.probed && c.adopted_from.is_none())
            .take(MAX_PROBED)
            .map(|c| {
                c.probed = true;
                (c.id, c.local)
            })
            .collect();
        if role.probes.len() > 1024 {
            role.probes.clear();
        }
        for (child, local) in targets {
            use rand_core::RngCore;
            let nonce = self.ep.rng().next_u64();
            if let Some(role) = self.role.as_mut() {
                role.probes.insert(nonce, child);
            }
            let request = ProbeRequest { nonce, target: WireAddr(local) };
            self.send(now, joiner_addr, Message::ProbeRequest(request));
        }
    }

    /// (LSN) A child echoed a probe's nonce: if it is the one we had probed, it ranks as proven.
    pub(super) fn on_reach_proof(&mut self, now: Timestamp, peer: NodeId, proof: ReachProof) {
        let batch = self.cfg.neighbour_batch;
        let Some(role) = self.role.as_mut() else { return };
        if role.probes.get(&proof.nonce) != Some(&peer) {
            return;
        }
        role.probes.remove(&proof.nonce);
        if let Some(child) = role.children.get_mut(&peer) {
            child.reachable = true;
            role.ranking_changed(now, batch);
        }
    }
}
