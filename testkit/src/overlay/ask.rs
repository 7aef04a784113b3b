//! What a scenario asks of an [`OverlayFleet`], by host name: the master's view of presence
//! ([`lsn_of`](OverlayFleet::lsn_of), [`present`](OverlayFleet::present),
//! [`absent`](OverlayFleet::absent)), the proof by reaching each node
//! ([`poll_all`](OverlayFleet::poll_all)), and the presence events with host names and times.

use std::time::Duration;

use fleetmesh::overlay::{DeliveryError, MasterCommand, MasterEvent, PresenceEvent};

use super::OverlayFleet;
use crate::{log::Recorded, CommandError, RunError};

/// What [`OverlayFleet::poll_all`] found: every node host, by name, in one of three lists
/// (each in name order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PollReport {
    /// Hosts that acknowledged the master's poll (reached through their LSN, or directly).
    pub reached: Vec<String>,
    /// Hosts the master reported it could not reach, with its reason (not present, no
    /// certificate, unreachable, timed out…).
    pub failed: Vec<(String, DeliveryError)>,
    /// Hosts with no answer either way by the end of the wait (or while the master was down).
    pub unanswered: Vec<String>,
}

impl PollReport {
    /// Whether every host polled was reached.
    pub fn all_reached(&self) -> bool {
        self.failed.is_empty() && self.unanswered.is_empty()
    }
}

impl OverlayFleet<'_> {
    /// The host `host` is present under **in the master's topology** (itself for an LSN), or
    /// `None` if the master does not show it present (or is down). The nodes' own belief is
    /// [`lsns`](Self::lsns).
    pub fn lsn_of(&self, host: &str) -> Option<String> {
        let topology = self.topology()?;
        topology.lsn_of(&self.node_id(host)).map(|id| self.name(&id))
    }

    /// The LSNs of the master's topology, by host name, in name order (a crashed LSN stays
    /// here until the master notices).
    pub fn master_lsns(&self) -> Vec<String> {
        let Some(topology) = self.topology() else { return Vec::new() };
        let mut lsns: Vec<String> =
            topology.subnets.iter().flat_map(|s| &s.lsns).map(|l| self.name(&l.id)).collect();
        lsns.sort();
        lsns
    }

    /// The children of the LSN on `host`, best ranked first (the first is its hot standby), as
    /// that node sees them; empty if it is down or not an LSN.
    pub fn ranked_children(&self, host: &str) -> Vec<String> {
        let ids = self.with_node(host, |n| n.children()).unwrap_or_default();
        ids.iter().map(|id| self.name(id)).collect()
    }

    /// Whether the master shows `host` present (false while the master is down). This is the
    /// master's belief; [`poll_all`](Self::poll_all) checks it by reaching the node.
    pub fn present(&self, host: &str) -> bool {
        let id = self.node_id(host);
        self.with_master(|m| m.is_present(&id)).unwrap_or(false)
    }

    /// The node hosts the master does not show present, in name order, whether they are up
    /// or not (a crashed host belongs here once the master noticed). Every host while the
    /// master is down.
    pub fn absent(&self) -> Vec<String> {
        let ids: Vec<(&String, _)> = self.nodes.iter().map(|(h, e)| (h, e.id)).collect();
        let present = self.with_master(|m| ids.iter().map(|(_, id)| m.is_present(id)).collect());
        let present: Vec<bool> = present.unwrap_or_else(|| vec![false; ids.len()]);
        ids.into_iter().zip(present).filter(|(_, p)| !p).map(|((h, _), _)| h.clone()).collect()
    }

    /// Has the master poll every node host (an empty message the node acknowledges, through
    /// its LSN: [`MasterCommand::Poll`]) and runs until each poll was answered either way, or
    /// for `max` at most. The master gives up on a poll after its
    /// [`delivery_timeout`](fleetmesh::overlay::MasterConfig::delivery_timeout) (10 s by
    /// default), so a `max` longer than that leaves nothing unanswered. Fails only as
    /// [`run_for`](Self::run_for) does.
    pub fn poll_all(&mut self, max: Duration) -> Result<PollReport, RunError> {
        let start = self.elapsed();
        let cursor = self.master_log.len();
        let hosts = self.hosts();
        for host in &hosts {
            let node = self.node_id(host);
            // A full queue: let the master take some, and send again. Sent, or the master is
            // down (its hosts then stay unanswered): go on.
            while let Err(CommandError::QueueFull) =
                self.master_command(MasterCommand::Poll { node })
            {
                self.step()?;
            }
        }
        let report = loop {
            let report = self.poll_answers(&hosts, cursor);
            if report.unanswered.is_empty() || self.elapsed() - start >= max {
                break report;
            }
            self.step()?;
        };
        Ok(report)
    }

    /// The answers to polls of `hosts` among the master's events after `cursor`.
    fn poll_answers(&self, hosts: &[String], cursor: usize) -> PollReport {
        let events = self.master_log.since(cursor);
        let mut report = PollReport::default();
        for host in hosts {
            let id = self.node_id(host);
            let answer = events.iter().find_map(|r| match &r.event {
                MasterEvent::Delivered { id: 0, node, .. } if *node == id => Some(Ok(())),
                MasterEvent::DeliveryFailed { id: 0, node, error } if *node == id => {
                    Some(Err(error.clone()))
                }
                _ => None,
            });
            match answer {
                Some(Ok(())) => report.reached.push(host.clone()),
                Some(Err(error)) => report.failed.push((host.clone(), error)),
                None => report.unanswered.push(host.clone()),
            }
        }
        report
    }

    /// The master's presence events so far, each with the host name of the node it is about
    /// (in [`Recorded::host`]) and its simulated time.
    pub fn presence_log(&self) -> Vec<Recorded<PresenceEvent>> {
        self.master_log
            .all()
            .into_iter()
            .filter_map(|r| match r.event {
                MasterEvent::Presence(p) => {
                    let host = self.name(presence_node(&p)?);
                    Some(Recorded { host, at: r.at, event: p })
                }
                _ => None,
            })
            .collect()
    }

    /// The master's presence events about `host`, with their simulated times.
    pub fn presence_of(&self, host: &str) -> Vec<Recorded<PresenceEvent>> {
        self.presence_log().into_iter().filter(|r| r.host == host).collect()
    }

    /// The master's presence events as text, one line each: time, host and what happened,
    /// with LSNs by host name (`12.345s 10.1.0.3 rerouted 10.1.0.1 -> 10.1.0.2`). For failure
    /// messages and snapshots.
    pub fn render_presence(&self) -> String {
        let mut out = String::new();
        for r in self.presence_log() {
            let what = match &r.event {
                PresenceEvent::Joined { lsn, .. } => format!("joined under {}", self.name(lsn)),
                PresenceEvent::Parted { reason, .. } => format!("parted ({reason:?})"),
                PresenceEvent::Moved { from, to, .. } => {
                    format!("moved {} -> {}", self.name(from), self.name(to))
                }
                PresenceEvent::Rerouted { from, to, .. } => {
                    format!("rerouted {} -> {}", self.name(from), self.name(to))
                }
                other => format!("{other:?}"),
            };
            out.push_str(&format!("{:.3}s {} {what}\n", r.at.as_secs_f64(), r.host));
        }
        out
    }
}

/// The node a presence event is about.
fn presence_node(p: &PresenceEvent) -> Option<&fleetmesh::NodeId> {
    match p {
        PresenceEvent::Joined { node, .. }
        | PresenceEvent::Parted { node, .. }
        | PresenceEvent::Moved { node, .. }
        | PresenceEvent::Rerouted { node, .. } => Some(node),
        _ => None,
    }
}
