//! LSN eligibility, the node's side (the design is in `overlay/master/election.rs`): probe
//! another node when the master asks, and echo the nonce of a probe that reached us.

use std::net::SocketAddr;

use super::Node;
use crate::{
    wire::{Message, ProbeRequest, ReachProof},
    NodeId, Path, Timestamp,
};

impl Node {
    /// Whether an unsolicited reach probe has reached this node over UDP (it may then be
    /// designated its subnet's LSN).
    pub fn inbound_ok(&self) -> bool {
        self.inbound_ok
    }

    /// The master asks us to probe a node of our subnet. Only the master may: a probe is sent
    /// outside any session, and nobody else should make us send one.
    pub(super) fn on_probe_request(&mut self, peer: NodeId, request: ProbeRequest) {
        if peer != self.ep.trust().network().master_id() {
            tracing::debug!(?peer, "probe request not from the master: ignored");
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
    }
}
