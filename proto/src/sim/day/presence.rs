//! Presence accuracy (issue 19): how often, and for how long, the master's view of a node was
//! wrong during the day. Checked every [`DayConfig::presence_check_every`](super::DayConfig)
//! on every node, while the master runs. The view is *wrong* when the master shows a node
//! present that a message could not reach (stale: the node is down, or the LSN the master
//! routes through is down, not an LSN, or does not count the node among its children), or
//! shows it absent while it has a path (late: it is an LSN, or the child of a running LSN that
//! counts it among its children). A child adopted by a new LSN is reachable before it has
//! heard of the takeover: the new LSN forwards to it, and the envelope is the master's. Each check stands for the interval since the last, so
//! figures are exact to that interval.

use std::time::Duration;

use serde::Serialize;

use crate::{overlay::NodeState, sim::Simulation, NodeId, Timestamp};

/// What the checks found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PresenceReport {
    /// Seconds between checks.
    pub check_every_s: f64,
    /// Node-seconds checked while the master ran, of nodes that were running or shown present
    /// (a node down and shown absent is not counted: that would flatter the figure).
    pub node_seconds: f64,
    /// Fraction of them the master's view was right.
    pub accuracy: f64,
    /// Node-seconds shown present while unreachable (crashed, or cut from its LSN).
    pub stale_node_seconds: f64,
    /// Of those: while the node was down (crashed and not yet noticed). The rest ran without a
    /// path by this module's definition, e.g. a child still joined to its crashed LSN while the
    /// new LSN vouches for it.
    pub stale_down_node_seconds: f64,
    /// Node-seconds shown absent while reachable (not yet reported after a join or move).
    pub late_node_seconds: f64,
    /// The longest run of wrong checks of one node, in seconds (to the check interval).
    pub longest_wrong_s: f64,
    /// Of those: the longest stale run (present while unreachable).
    pub longest_stale_s: f64,
}

/// The running tally.
#[derive(Debug)]
pub(super) struct PresenceCheck {
    every: Duration,
    /// Per slot: the start of its current wrong run, and whether it is stale (vs late).
    wrong_since: Vec<Option<(Timestamp, bool)>>,
    report: PresenceReport,
}

impl PresenceCheck {
    pub(super) fn new(every: Duration, slots: usize) -> Self {
        PresenceCheck {
            every,
            wrong_since: vec![None; slots],
            report: PresenceReport { check_every_s: every.as_secs_f64(), ..Default::default() },
        }
    }

    /// When the next check is due after `now`.
    pub(super) fn next(&self, now: Timestamp) -> Timestamp {
        now + self.every
    }

    /// Checks every node now. A master that is down has no view: nothing is counted, and runs
    /// of wrong checks end.
    pub(super) fn check(&mut self, sim: &Simulation, now: Timestamp) {
        let Some(master) = sim.master.as_ref() else {
            self.wrong_since.iter_mut().for_each(|w| *w = None);
            return;
        };
        let dt = self.every.as_secs_f64();
        for i in 0..sim.slots.len().min(self.wrong_since.len()) {
            let id = sim.slots[i].id();
            let shown = master.is_present(&id);
            if !shown && sim.slots[i].node.is_none() {
                self.wrong_since[i] = None;
                continue;
            }
            let wrong = if shown {
                !routed(sim, master.route_of(&id), i, &id)
            } else {
                reachable(sim, i, &id)
            };
            self.report.node_seconds += dt;
            if !wrong {
                self.wrong_since[i] = None;
                continue;
            }
            if shown {
                self.report.stale_node_seconds += dt;
                if sim.slots[i].node.is_none() {
                    self.report.stale_down_node_seconds += dt;
                }
            } else {
                self.report.late_node_seconds += dt;
            }
            // A run is counted from its first wrong check, plus the interval that check
            // stands for.
            let (since, stale) = *self.wrong_since[i].get_or_insert((now, shown));
            let run = now.saturating_since(since).as_secs_f64() + dt;
            self.report.longest_wrong_s = self.report.longest_wrong_s.max(run);
            if stale && shown {
                self.report.longest_stale_s = self.report.longest_stale_s.max(run);
            }
        }
    }

    pub(super) fn report(mut self) -> PresenceReport {
        let r = &mut self.report;
        let wrong = r.stale_node_seconds + r.late_node_seconds;
        r.accuracy = if r.node_seconds > 0.0 { 1.0 - wrong / r.node_seconds } else { 1.0 };
        self.report
    }
}

/// Whether a message through `route` reaches slot `i` now.
fn routed(sim: &Simulation, route: Option<NodeId>, i: usize, id: &NodeId) -> bool {
    if sim.slots[i].node.is_none() {
        return false;
    }
    route.and_then(|l| sim.slot_of_id(&l)).and_then(|j| sim.slots[j].node.as_ref()).is_some_and(
        |lsn| lsn.state() == NodeState::IsLsn && (lsn.node_id() == *id || lsn.has_child(id)),
    )
}

/// Whether slot `i` has a path the master could use now.
fn reachable(sim: &Simulation, i: usize, id: &NodeId) -> bool {
    let Some(node) = sim.slots[i].node.as_ref() else { return false };
    match node.state() {
        NodeState::IsLsn => true,
        NodeState::HasLsn => node
            .lsn()
            .and_then(|l| sim.slot_of_id(&l))
            .and_then(|j| sim.slots[j].node.as_ref())
            .is_some_and(|lsn| lsn.state() == NodeState::IsLsn && lsn.has_child(id)),
        _ => false,
    }
}
