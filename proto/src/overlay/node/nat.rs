//! NAT classification, the node's side (issue 16): once joined, a node learns how its NAT
//! maps and filters, from the addresses others observe for it, and reports it to the master.
//!
//! 1. It asks the master which address it sees ([`ObserveMe`]). Equal to our own address: no
//!    NAT. The answer may name a helper (a node that takes unsolicited inbound) which the
//!    master asked to send us a reach probe carrying the answer's nonce.
//! 2. It waits [`PROBE_WAIT`] for that probe. We never sent to the helper, so the probe gets
//!    in only when our NAT lets anyone in (endpoint-independent filtering): `inbound`.
//! 3. Only then it asks the helper the same question: the same public address and port as
//!    the master saw means endpoint-independent mapping, another port endpoint-dependent
//!    (symmetric). Asking before the probe came would have opened our NAT to the helper.
//! 4. It reports the class and the master's observation ([`NatReport`]).
//!
//! No helper known to the master: the mapping stays unknown (unless there is no NAT) and
//! `inbound` untested. A failed first step is tried again after [`RETRY`].

use std::{net::SocketAddr, time::Duration};

use super::{Node, NodeState};
use crate::{
    wire::{Contact, Mapping, Message, NatClass, NatReport, ObserveMe, Observed, WireAddr},
    NodeId, Timestamp,
};

/// How long an [`ObserveMe`] waits for its answer.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the node waits for the helper's probe before it counts as filtered.
pub const PROBE_WAIT: Duration = Duration::from_millis(1500);
/// How long after a failed first step it starts again.
pub const RETRY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default)]
enum Phase {
    #[default]
    Idle,
    Master {
        seq: u32,
        until: Timestamp,
    },
    Probe {
        nonce: u64,
        until: Timestamp,
        helper: Contact,
    },
    Helper {
        seq: u32,
        helper: NodeId,
        until: Timestamp,
    },
}

/// Where the node's classification stands.
#[derive(Clone, Debug, Default)]
pub(super) struct NatCheck {
    class: NatClass,
    observed: Option<SocketAddr>,
    phase: Phase,
    /// Not before this (after a failure).
    start_at: Timestamp,
    done: bool,
}

impl Node {
    /// What the node learned of its NAT (all unknown until the check is done).
    pub fn nat_class(&self) -> NatClass {
        self.nat.class
    }

    /// The address the master observed for this node, once asked.
    pub fn observed_addr(&self) -> Option<SocketAddr> {
        self.nat.observed
    }

    /// Whether the classification has finished.
    pub fn nat_checked(&self) -> bool {
        self.nat.done
    }

    fn joined(&self) -> bool {
        matches!(self.state, NodeState::HasLsn | NodeState::IsLsn)
    }

    /// Starts over (after a move to another network).
    pub(super) fn nat_reset(&mut self) {
        self.nat = NatCheck::default();
    }

    pub(super) fn nat_deadline(&self) -> Option<Timestamp> {
        match self.nat.phase {
            Phase::Idle => {
                let due = !self.nat.done
                    && self.cfg.nat_check
                    && self.joined()
                    && self.ep.certificate().is_some();
                due.then_some(self.nat.start_at)
            }
            Phase::Master { until, .. }
            | Phase::Probe { until, .. }
            | Phase::Helper { until, .. } => Some(until),
        }
    }

    pub(super) fn nat_timers(&mut self, now: Timestamp) {
        if self.nat_deadline().is_none_or(|t| t > now) {
            return;
        }
        match self.nat.phase {
            Phase::Idle => {
                let seq = self.next_seq();
                self.nat.phase = Phase::Master { seq, until: now + OBSERVE_TIMEOUT };
                let master = self.cfg.master;
                self.send(now, master, Message::ObserveMe(ObserveMe { seq }));
            }
            Phase::Master { .. } => {
                self.nat.phase = Phase::Idle;
                self.nat.start_at = now + RETRY;
            }
            Phase::Probe { helper, .. } => {
                self.nat.class.inbound = Some(false);
                self.ask_helper(now, helper);
            }
            Phase::Helper { .. } => {
                let mapping = if self.is_public() { Mapping::Public } else { Mapping::Unknown };
                self.nat_finish(now, mapping);
            }
        }
    }

    fn is_public(&self) -> bool {
        self.nat.observed.is_some_and(|a| a == self.local_addr() || a == self.cfg.listen)
    }

    fn ask_helper(&mut self, now: Timestamp, helper: Contact) {
        let seq = self.next_seq();
        self.nat.phase = Phase::Helper { seq, helper: helper.id, until: now + OBSERVE_TIMEOUT };
        self.send(now, helper.addr.0, Message::ObserveMe(ObserveMe { seq }));
    }

    /// Anyone with a session may ask which address we see: the answer is one message, as
    /// small as the question.
    pub(super) fn on_observe_me(&mut self, now: Timestamp, addr: SocketAddr, req: ObserveMe) {
        let answer = Observed { seq: req.seq, addr: WireAddr(addr), nonce: 0, helper: None };
        self.send(now, addr, Message::Observed(answer));
    }

    /// An answer to one of our [`ObserveMe`]s; any other is counted as a refused answer.
    pub(super) fn on_observed(&mut self, now: Timestamp, peer: NodeId, obs: Observed) {
        let master = self.master_id();
        match self.nat.phase {
            Phase::Master { seq, .. } if seq == obs.seq && peer == master => {
                self.nat.observed = Some(obs.addr.0);
                let helper = obs.helper.filter(|h| h.id != self.node_id() && obs.nonce != 0);
                match helper {
                    Some(helper) => {
                        let until = now + PROBE_WAIT;
                        self.nat.phase = Phase::Probe { nonce: obs.nonce, until, helper };
                    }
                    None => {
                        let public = self.is_public();
                        self.nat.class.inbound = None;
                        let mapping = if public { Mapping::Public } else { Mapping::Unknown };
                        self.nat_finish(now, mapping);
                    }
                }
            }
            Phase::Helper { seq, helper, .. } if seq == obs.seq && peer == helper => {
                let mapping = if self.is_public() {
                    Mapping::Public
                } else if Some(obs.addr.0) == self.nat.observed {
                    Mapping::EndpointIndependent
                } else {
                    Mapping::EndpointDependent
                };
                self.nat_finish(now, mapping);
            }
            _ => {
                tracing::debug!(?peer, seq = obs.seq, "observation nobody asked for: ignored");
                self.refusals.answer += 1;
            }
        }
    }

    /// A reach probe arrived: if it carries the nonce of our classification's probe, it is
    /// ours (and proves that unsolicited datagrams get in). Returns whether it was.
    /// A probe from an address we have a session with proves nothing (our NAT may let it in
    /// as an answer): `inbound` then stays untested.
    pub(super) fn nat_probe(&mut self, now: Timestamp, nonce: u64, session: bool) -> bool {
        let Phase::Probe { nonce: expected, helper, .. } = self.nat.phase else { return false };
        if nonce != expected {
            return false;
        }
        self.nat.class.inbound = (!session).then_some(true);
        self.ask_helper(now, helper);
        true
    }

    fn nat_finish(&mut self, now: Timestamp, mapping: Mapping) {
        self.nat.class.mapping = mapping;
        self.nat.phase = Phase::Idle;
        self.nat.done = true;
        let Some(observed) = self.nat.observed else { return };
        let report =
            NatReport { class: self.nat.class, observed: WireAddr(observed), gsn: self.cfg.gsn };
        tracing::debug!(node = ?self.node_id(), class = %self.nat.class, "nat classified");
        let master = self.cfg.master;
        self.send(now, master, Message::NatReport(report));
    }
}
