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
//!    When the probe did not get in, it asks [`PROBE_HELD`] later: a Linux NAT holds the
//!    probe's port towards the helper for 30 s.
//! 4. It reports the class and the master's observation ([`NatReport`]).
//!
//! No helper known to the master: the mapping stays unknown (unless there is no NAT) and
//! `inbound` untested. A failed first step is tried again after [`RETRY`].
//!
//! **Who checks.** The hosts of one LAN share its NAT, so by default only an LSN checks: it
//! already holds a session with the master, and its keepalives keep its mapping alive, so it
//! is also the host other nodes' checks can use as a helper. It hands its class to each child
//! with a ping (a [`NatReport`] over the LAN, at most once per child and LSN). A child takes
//! it as its own and sends the master nothing: the master reads a child's class from its
//! LSN's. A child checks on its own only with [`OverlayConfig::nat_check_as_child`] (a host
//! with its own way out). Checking at every child's start cost each start about 3 KB of WAN
//! (a session with the master, another with a helper), which was more than half of the
//! fleet's whole WAN budget in the simulator's standard day.
//!
//! A node that becomes LSN with its old LSN's class tests only what may differ per host:
//! whether the master sees it at its own address, and whether the helper's probe gets in. The
//! mapping (a property of the NAT) it keeps, so it opens no session with the helper.
//!
//! [`OverlayConfig::nat_check_as_child`]: crate::overlay::OverlayConfig::nat_check_as_child

use std::{net::SocketAddr, time::Duration};

use super::{lsn::STALE_LISTS_PER_SEC, Node, NodeState};
use crate::{
    wire::{Contact, Mapping, Message, NatClass, NatReport, ObserveMe, Observed, WireAddr},
    NodeId, Timestamp,
};

/// How long an [`ObserveMe`] waits for its answer.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the node waits for the helper's probe before it counts as filtered.
pub const PROBE_WAIT: Duration = Duration::from_millis(1500);
/// How long after its last takeover announcement an LSN waits to check (its children rejoin).
const SETTLE: Duration = Duration::from_secs(5);
/// How long a node whose NAT kept the helper's probe out waits before asking the helper
/// which address it sees: a Linux NAT keeps the unanswered probe as a flow for 30 s
/// (`nf_conntrack_udp_timeout`), and our question would meanwhile leave from another port,
/// passing for a NAT that maps each destination apart (the simulator's `NatKind::Linux`
/// was classified so).
pub const PROBE_HELD: Duration = Duration::from_secs(31);
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
    /// The probe did not get in; waiting [`PROBE_HELD`] before asking the helper.
    Settle {
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
    /// The class is known (tested here, or our LSN's).
    done: bool,
    /// This host tested it (else it is our LSN's, or unknown).
    own: bool,
    /// The mapping our LSN found for the NAT we share (see the module docs).
    shared: Option<Mapping>,
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

    /// Whether the class is known: tested here, or taken from our LSN (see
    /// [`nat_tested_here`](Self::nat_tested_here)).
    pub fn nat_checked(&self) -> bool {
        self.nat.done
    }

    /// Whether this host tested its class itself, rather than taking its LSN's.
    pub fn nat_tested_here(&self) -> bool {
        self.nat.own
    }

    /// Starts over (after a move to another network).
    pub(super) fn nat_reset(&mut self) {
        self.nat = NatCheck::default();
    }

    pub(super) fn nat_deadline(&self) -> Option<Timestamp> {
        match self.nat.phase {
            Phase::Idle => {
                let wanted = match self.state {
                    NodeState::IsLsn => true,
                    NodeState::HasLsn => self.cfg.nat_check_as_child,
                    _ => false,
                };
                let due = !self.nat.own
                    && self.cfg.nat_check
                    && wanted
                    && self.ep.certificate().is_some();
                // Not while announcing a takeover to adopted children: those go at the pace
                // the busiest-host budget allows, and the check would come on top.
                let settled = (self.role.as_ref())
                    .filter(|r| r.took_over_from.is_some())
                    .map_or(Timestamp::ZERO, |r| r.next_turn + SETTLE);
                due.then_some(self.nat.start_at.max(settled))
            }
            Phase::Master { until, .. }
            | Phase::Probe { until, .. }
            | Phase::Settle { until, .. }
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
                let known = self.is_public() || self.nat.shared.is_some_and(behind_nat);
                if known {
                    self.after_probe(now, helper);
                } else {
                    self.nat.phase = Phase::Settle { until: now + PROBE_HELD, helper };
                }
            }
            Phase::Settle { helper, .. } => self.ask_helper(now, helper),
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
                        self.nat.class.inbound = None;
                        let mapping = if self.is_public() {
                            Mapping::Public
                        } else {
                            self.nat.shared.filter(|m| behind_nat(*m)).unwrap_or(Mapping::Unknown)
                        };
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
        self.after_probe(now, helper);
        true
    }

    /// The probe came or timed out. The helper's view tells the mapping only behind a NAT
    /// whose mapping nobody found yet: with no NAT it is `Public`, and our LSN's NAT is ours.
    fn after_probe(&mut self, now: Timestamp, helper: Contact) {
        if self.is_public() {
            return self.nat_finish(now, Mapping::Public);
        }
        if let Some(mapping) = self.nat.shared.filter(|m| behind_nat(*m)) {
            return self.nat_finish(now, mapping);
        }
        self.ask_helper(now, helper);
    }

    fn nat_finish(&mut self, now: Timestamp, mapping: Mapping) {
        self.nat.class.mapping = mapping;
        self.nat.phase = Phase::Idle;
        self.nat.done = true;
        self.nat.own = true;
        if let Some(role) = self.role.as_mut() {
            role.children.values_mut().for_each(|c| c.class_due = true);
        }
        let Some(observed) = self.nat.observed else { return };
        let report =
            NatReport { class: self.nat.class, observed: WireAddr(observed), gsn: self.cfg.gsn };
        let (listen, local) = (self.cfg.listen, self.local_addr());
        tracing::debug!(
            node = ?self.node_id(), class = %self.nat.class, %observed, %listen, %local,
            "nat classified"
        );
        let master = self.cfg.master;
        self.send(now, master, Message::NatReport(report));
    }

    /// Reports our class to the master again (a GSN asking for a fresh ticket, `gsn_survey.rs`),
    /// if we tested it ourselves.
    pub(super) fn nat_report_again(&mut self, now: Timestamp) {
        let Some(observed) = self.nat.observed.filter(|_| self.nat.own) else { return };
        let report =
            NatReport { class: self.nat.class, observed: WireAddr(observed), gsn: self.cfg.gsn };
        let master = self.cfg.master;
        self.send(now, master, Message::NatReport(report));
    }

    /// As LSN: hands our class (once we tested it) to those of the children just pinged
    /// that lack it, within what this second's budget for extras with pings has left after
    /// the stale lists (`lsn.rs`), which name the standbys and go first. Not while adopted
    /// children rejoin: every message counts then.
    pub(super) fn send_nat_shares(&mut self, now: Timestamp, pinged: &[NodeId]) {
        let Some(observed) = self.nat.observed.filter(|_| self.nat.own) else { return };
        let class = NatReport { class: self.nat.class, observed: WireAddr(observed), gsn: false };
        let Some(role) = self.role.as_mut() else { return };
        let due = |id: &NodeId| role.children.get(id).is_some_and(|c| c.class_due);
        if !pinged.iter().any(due) || role.children.values().any(|c| c.adopted_from.is_some()) {
            return;
        }
        let mut to = Vec::new();
        for id in pinged {
            if role.lists_sent.1 >= STALE_LISTS_PER_SEC {
                break;
            }
            let Some(child) = role.children.get_mut(id).filter(|c| c.class_due) else { continue };
            child.class_due = false;
            role.lists_sent.1 += 1;
            to.push(child.addr);
        }
        for addr in to {
            self.send(now, addr, Message::NatReport(class));
        }
    }

    /// Our LSN's class, for the NAT we share with it. Only from our LSN; a class we tested
    /// ourselves stands.
    pub(super) fn on_nat_share(&mut self, peer: NodeId, report: NatReport) {
        let from_lsn =
            self.state == NodeState::HasLsn && self.lsn.as_ref().is_some_and(|l| l.id == peer);
        if !from_lsn {
            tracing::debug!(?peer, "NAT class not from our LSN: ignored");
            self.refusals.answer += 1;
            return;
        }
        if self.nat.own {
            return;
        }
        self.nat.class = report.class;
        self.nat.shared = Some(report.class.mapping);
        self.nat.done = true;
    }
}

/// Whether `m` names a NAT's mapping (rather than none, or not known).
fn behind_nat(m: Mapping) -> bool {
    matches!(m, Mapping::EndpointIndependent | Mapping::EndpointDependent)
}
