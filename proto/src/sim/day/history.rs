//! Metric histories in the simulated day (issue 17, S15): every node samples its metrics every
//! 10 s and writes them in compressed blocks every five minutes (`sim/metrics.rs`); at each of
//! the day's query times the master asks the whole fleet for its CPU over the last hour in
//! five-minute buckets, the LSNs combine their children's answers and the master the LSNs'.
//! The report says how many hosts the combined answer covers against the nodes present, how
//! long it took, what it cost the master, whether it equals the fleet's own figures, and what
//! the histories hold.

use std::time::Duration;

use fleetmesh_history::{aggregate, Answer, Query};
use serde::Serialize;

use super::{
    requests::{master_bytes, Step, EGRESS_WINDOW},
    Action,
};
use crate::{
    overlay::{fleet::Audience, RequestId},
    sim::{decode_answer, query_body, Simulation, HISTORY_KIND},
    wire::ResponseStatus,
    Timestamp,
};

/// How far back each query looks, and its buckets.
const LOOK_BACK: Duration = Duration::from_secs(3600);
const BUCKET_SECS: u32 = 300;
/// How long the LSNs collect their children's answers.
const WINDOW: Duration = Duration::from_secs(20);

/// One fleet-wide history query of the day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HistoryQueryReport {
    /// When it was sent (seconds since midnight).
    pub at_s: u64,
    /// Nodes the master listed present then.
    pub present_at_send: usize,
    /// Of those, nodes not running a minute later: crashed or stopped, maybe before they
    /// could answer (the day's churn strikes on the minute, as the queries are sent).
    pub present_but_down: usize,
    /// LSNs it asked.
    pub lsns: u32,
    /// LSNs that did not answer in time.
    pub lsns_silent: u32,
    /// Hosts the combined answer covers.
    pub hosts: u32,
    /// Hosts that answered a failure, and hosts asked that did not answer in time.
    pub failed: u32,
    /// See `failed`.
    pub missing: u32,
    /// Their share of the nodes present at the send (%).
    pub hosts_pct: f64,
    /// Send → the combined answer at the master.
    pub took_ms: u64,
    /// The fleet's mean CPU (%) in the last bucket, as the master got it.
    pub cpu_mean_pct: f64,
    /// The same, combined directly from the histories of the nodes running at the send
    /// (what a perfect collection would give).
    pub cpu_mean_truth_pct: f64,
    /// Bytes the master sent in the minute after it, and in the minute before.
    pub master_egress_bytes: u64,
    /// See `master_egress_bytes`.
    pub master_egress_baseline_bytes: u64,
}

/// The day's metric histories.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HistoryReport {
    /// Samples the nodes wrote (every series of every node, every 10 s while it ran).
    pub samples: u64,
    /// Encoded bytes per sample (the simulator's synthetic hosts).
    pub bytes_per_sample: f64,
    /// Mean bytes a node's history holds at the end (the simulator keeps an hour).
    pub stored_bytes_per_node: f64,
    /// The day's queries.
    pub queries: Vec<HistoryQueryReport>,
}

/// The day's queries as they go.
pub(super) struct HistoryDay {
    sent: Vec<Option<(RequestId, Timestamp, HistoryQueryReport)>>,
    before: Vec<u64>,
    /// The slots the master listed present at each send.
    present: Vec<Vec<usize>>,
}

fn the_query(now: Timestamp) -> (Timestamp, Timestamp) {
    let to = Timestamp::from_secs(now.as_secs() / u64::from(BUCKET_SECS) * u64::from(BUCKET_SECS));
    (Timestamp::from_secs(to.as_secs().saturating_sub(LOOK_BACK.as_secs())), to)
}

fn last_mean(a: &Answer) -> f64 {
    a.buckets.last().map_or(0.0, |b| b.mean)
}

impl HistoryDay {
    pub(super) fn new(count: usize) -> Self {
        HistoryDay { sent: vec![None; count], before: vec![0; count], present: vec![vec![]; count] }
    }

    /// Carries out step `step` of query `k`; returns a step to schedule.
    pub(super) fn step(
        &mut self,
        sim: &mut Simulation,
        k: usize,
        step: Step,
        now: Timestamp,
    ) -> Option<(Timestamp, Action)> {
        match step {
            Step::Mark => self.before[k] = master_bytes(sim),
            Step::Send if sim.master.is_none() => {
                return Some((now + Duration::from_secs(1), Action::History(k, Step::Send)));
            }
            Step::Send => {
                // Every running node writes what is due, so the last bucket is complete.
                sim.write_histories();
                let (from, to) = the_query(now);
                let body = query_body("cpu", from, to, BUCKET_SECS);
                let (master, at) = (sim.master(), now.saturating_since(crate::sim::START));
                self.present[k] = (sim.slots.iter().enumerate())
                    .filter(|(_, s)| master.is_present(&s.id()))
                    .map(|(i, _)| i)
                    .collect();
                let mut report = HistoryQueryReport {
                    at_s: at.as_secs(),
                    present_at_send: master.present_count(),
                    master_egress_baseline_bytes: master_bytes(sim) - self.before[k],
                    ..Default::default()
                };
                report.cpu_mean_truth_pct = truth(sim, from, to);
                let id = sim
                    .master_do(|m, now| {
                        m.query_fleet(now, Audience::All, HISTORY_KIND, &body, WINDOW)
                    })
                    .ok()?;
                self.before[k] = master_bytes(sim);
                self.sent[k] = Some((id, now, report));
                return Some((now + EGRESS_WINDOW, Action::History(k, Step::Measure)));
            }
            Step::Measure => {
                if let Some((_, _, r)) = self.sent[k].as_mut() {
                    r.master_egress_bytes = master_bytes(sim) - self.before[k];
                    r.present_but_down =
                        (self.present[k].iter()).filter(|&&i| sim.slots[i].node.is_none()).count();
                }
            }
        }
        None
    }

    /// The report, with each query's outcome.
    pub(super) fn report(self, sim: &Simulation) -> Option<HistoryReport> {
        let m = sim.metrics_stats()?;
        let with: Vec<usize> = (0..sim.slots.len()).filter(|&i| sim.history_bytes(i) > 0).collect();
        let stored: usize = with.iter().map(|&i| sim.history_bytes(i)).sum();
        let queries = self
            .sent
            .into_iter()
            .flatten()
            .map(|(id, sent, mut r)| {
                let ended = sim.stats.queries.iter().find(|(_, q, _)| *q == id);
                if let Some((at, _, o)) = ended {
                    r.took_ms = at.saturating_since(sent).as_millis() as u64;
                    r.lsns = o.lsns;
                    r.lsns_silent = o.lsns_silent;
                    r.hosts = o.hosts;
                    r.failed = o.failed;
                    r.missing = o.missing;
                    r.hosts_pct = 100.0 * f64::from(o.hosts) / r.present_at_send.max(1) as f64;
                    if o.status == ResponseStatus::OK {
                        r.cpu_mean_pct = decode_answer(&o.body).as_ref().map_or(0.0, last_mean);
                    }
                }
                r
            })
            .collect();
        Some(HistoryReport {
            samples: m.samples,
            bytes_per_sample: m.encoded_bytes as f64 / m.samples.max(1) as f64,
            stored_bytes_per_node: stored as f64 / with.len().max(1) as f64,
            queries,
        })
    }
}

/// The fleet's mean CPU in the last bucket of `[from, to)`, from the running nodes' own
/// histories.
fn truth(sim: &Simulation, from: Timestamp, to: Timestamp) -> f64 {
    let q = Query {
        series: "cpu".into(),
        from: from.as_secs() as i64,
        to: to.as_secs() as i64,
        bucket_secs: BUCKET_SECS,
    };
    let answers: Vec<Answer> = (0..sim.slots.len())
        .filter(|&i| sim.slots[i].node.is_some())
        .filter_map(|i| sim.slots[i].history.answer(&q).ok())
        .collect();
    aggregate(&answers).as_ref().map_or(0.0, last_mean)
}
