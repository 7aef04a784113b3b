//! Fleet-wide requests in the simulated day (issue 17): each goes to every node at its time of
//! day (or, if the master is down then, as soon as it is back), every node answers at once,
//! and the report says how fast the running nodes took it, whether any took it twice, how many
//! took it later (they were down and came back) and what it cost the master.

use std::{collections::BTreeSet, time::Duration};

use serde::Serialize;

use super::{Action, Quantiles};
use crate::{
    overlay::{fleet::Audience, RequestId},
    sim::{Role, Simulation},
    NodeId, Timestamp,
};

/// The body of each fleet-wide request.
pub const REQUEST_BODY: usize = 200;
/// How long each stays open.
pub const REQUEST_TTL: Duration = Duration::from_secs(8 * 3600);
/// The master's egress is measured over this window after a request (or query), against the
/// same window before it.
pub(super) const EGRESS_WINDOW: Duration = Duration::from_secs(60);
/// Takes later than this count as "after return" (the node was down when it was sent).
const LATE: Duration = Duration::from_secs(600);

/// A step of one fleet-wide request (or history query).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    /// The master's egress before it.
    Mark,
    Send,
    /// The master's egress after it.
    Measure,
}

/// One fleet-wide request of the day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FleetRequestReport {
    /// When it was sent (seconds since midnight).
    pub at_s: u64,
    /// Nodes running then.
    pub running_at_send: usize,
    /// LSNs the master knew then.
    pub lsns_at_send: usize,
    /// Nodes running at the send that took it within 5 s.
    pub took_within_5s: usize,
    /// Their share of the nodes running at the send (%).
    pub took_within_5s_pct: f64,
    /// Nodes running at the send that never took it.
    pub lost: usize,
    /// Send → take at the node, for the nodes running at the send.
    pub took_ms: Quantiles,
    /// Nodes not running at the send that took it more than 10 minutes later (they came
    /// back before it expired).
    pub took_after_return: usize,
    /// Nodes that took it in all (also those that started within 10 minutes of it).
    pub took: usize,
    /// Bytes the master sent in the minute after it.
    pub master_egress_bytes: u64,
    /// Bytes the master sent in the minute before it (its load without the request).
    pub master_egress_baseline_bytes: u64,
    /// The target for the request's own egress: LSNs × (request + 200 B), with the LSNs the
    /// master knew at the send, or a minute later if it knew none then (it was recovering).
    pub master_egress_target_bytes: u64,
}

/// The target for a request's master egress: LSNs × (request + 200 B).
fn egress_target(lsns: usize) -> u64 {
    lsns as u64 * (REQUEST_BODY as u64 + 200)
}

/// The day's fleet-wide requests as they go.
#[derive(Default)]
pub(super) struct FleetDay {
    sent: Vec<Option<(RequestId, FleetRequestReport)>>,
    before: Vec<u64>,
    /// The nodes running at each send.
    running: Vec<BTreeSet<NodeId>>,
}

/// Bytes the master sent so far.
pub(super) fn master_bytes(sim: &Simulation) -> u64 {
    sim.stats.sent_by_role[Role::Master as usize].bytes
}

impl FleetDay {
    pub(super) fn new(count: usize) -> Self {
        FleetDay {
            sent: vec![None; count],
            before: vec![0; count],
            running: vec![BTreeSet::new(); count],
        }
    }

    /// Carries out step `step` of request `k`; returns a step to schedule.
    pub(super) fn step(
        &mut self,
        sim: &mut Simulation,
        k: usize,
        step: Step,
        now: Timestamp,
        running: usize,
    ) -> Option<(Timestamp, Action)> {
        match step {
            Step::Mark => self.before[k] = master_bytes(sim),
            Step::Send if sim.master.is_none() => {
                return Some((now + Duration::from_secs(1), Action::Fleet(k, Step::Send)));
            }
            Step::Send => {
                self.before[k] = master_bytes(sim) - self.before[k];
                let lsns = sim.master().topology().lsn_count();
                let body = vec![0x42; REQUEST_BODY];
                let id = sim.fleet_request(Audience::All, "ping", &body, REQUEST_TTL).ok()?;
                let report = FleetRequestReport {
                    at_s: now.saturating_since(crate::sim::START).as_secs(),
                    running_at_send: running,
                    lsns_at_send: lsns,
                    master_egress_target_bytes: egress_target(lsns),
                    master_egress_baseline_bytes: self.before[k],
                    ..Default::default()
                };
                self.before[k] = master_bytes(sim);
                self.sent[k] = Some((id, report));
                self.running[k] =
                    sim.slots.iter().filter(|s| s.node.is_some()).map(|s| s.id()).collect();
                return Some((now + EGRESS_WINDOW, Action::Fleet(k, Step::Measure)));
            }
            Step::Measure => {
                if let Some((_, r)) = self.sent[k].as_mut() {
                    r.master_egress_bytes = master_bytes(sim) - self.before[k];
                    if r.lsns_at_send == 0 {
                        let lsns = sim.master.as_ref().map_or(0, |m| m.topology().lsn_count());
                        r.master_egress_target_bytes = egress_target(lsns);
                    }
                }
            }
        }
        None
    }

    /// The reports, with each request's takes.
    pub(super) fn report(self, sim: &Simulation) -> Vec<FleetRequestReport> {
        let delays = &sim.stats.requests.delays;
        let empty = Default::default();
        self.sent
            .into_iter()
            .zip(self.running)
            .filter_map(|(sent, running)| sent.map(|s| (s, running)))
            .map(|((id, mut r), running)| {
                let all = delays.get(&id).unwrap_or(&empty);
                let soon: Vec<Duration> =
                    running.iter().filter_map(|n| all.get(n).copied()).collect();
                r.took = all.len();
                r.took_after_return =
                    all.iter().filter(|(n, d)| !running.contains(n) && **d > LATE).count();
                r.took_within_5s = running
                    .iter()
                    .filter(|n| all.get(n).is_some_and(|d| *d <= Duration::from_secs(5)))
                    .count();
                r.lost = running.iter().filter(|n| !all.contains_key(n)).count();
                r.running_at_send = running.len();
                r.took_within_5s_pct =
                    100.0 * r.took_within_5s as f64 / running.len().max(1) as f64;
                r.took_ms = Quantiles::of(&soon);
                r
            })
            .collect()
    }
}
