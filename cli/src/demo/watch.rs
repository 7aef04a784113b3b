//! [`Watch`]: follows the fleet while it runs. It prints each presence event as the master
//! emits it (and the nodes' takeovers), and waits for a condition on the master's topology,
//! read every few milliseconds from the running master, failing with the step's name when the
//! condition does not hold in time.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fleetmesh::{
    overlay::{DeliveryError, DeliveryId, Master, MasterEvent, NodeEvent, PresenceEvent, Topology},
    wire::PartReason,
    NodeId,
};

use super::{
    fleet::{Feeds, Names},
    DemoError,
};

/// How often the topology is read while waiting (events also wake the wait at once).
const POLL: Duration = Duration::from_millis(5);

/// After a wait is done, how long without events ends the catch-up, and its longest run.
const CATCH_UP_QUIET: Duration = Duration::from_millis(20);
const CATCH_UP_MAX: Duration = Duration::from_millis(250);

/// Where a wait stands.
pub(crate) enum Progress<T> {
    /// The condition holds.
    Done(T),
    /// Not yet; how far it got (named in the timeout error).
    Waiting(String),
    /// It can no longer hold.
    Failed(String),
}

/// What the watch has collected besides the topology.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Application messages the master saw acknowledged: id, node, round trip.
    pub(crate) delivered: Vec<(DeliveryId, NodeId, Duration)>,
    /// Application messages that failed.
    pub(crate) failed: Vec<(DeliveryId, NodeId, DeliveryError)>,
    /// Application messages nodes received: node, id, payload.
    pub(crate) received: Vec<(NodeId, u64, Vec<u8>)>,
    /// Presence events the master emitted.
    pub(crate) presence_events: usize,
}

/// Follows the master and the nodes; see the module docs.
pub(crate) struct Watch {
    master: Arc<Mutex<Master>>,
    feeds: Feeds,
    names: Names,
    /// Print nothing (the report is JSON).
    quiet: bool,
    started: Instant,
    pub(crate) seen: Seen,
}

impl Watch {
    pub(crate) fn new(
        master: Arc<Mutex<Master>>,
        feeds: Feeds,
        names: Names,
        quiet: bool,
        started: Instant,
    ) -> Self {
        Watch { master, feeds, names, quiet, started, seen: Seen::default() }
    }

    /// The master's topology now.
    pub(crate) fn topology(&self) -> Topology {
        // A panic in the master ended its driver; its last state is still worth reading.
        self.master.lock().unwrap_or_else(|e| e.into_inner()).topology()
    }

    /// Prints `line` with the time since the demo started (unless quiet).
    pub(crate) fn say(&self, line: impl AsRef<str>) {
        if !self.quiet {
            println!("[{:>7.3}s] {}", self.started.elapsed().as_secs_f64(), line.as_ref());
        }
    }

    /// Waits until `check` is done with the master's topology, printing events meanwhile.
    pub(crate) async fn until<T>(
        &mut self,
        step: &'static str,
        limit: Duration,
        mut check: impl FnMut(&Topology, &Seen) -> Progress<T>,
    ) -> Result<T, DemoError> {
        let deadline = Instant::now() + limit;
        loop {
            let progress = match check(&self.topology(), &self.seen) {
                Progress::Done(value) => {
                    // Print what led here before the caller reports it.
                    self.catch_up().await;
                    return Ok(value);
                }
                Progress::Failed(detail) => return Err(DemoError::Failed { step, detail }),
                Progress::Waiting(progress) => progress,
            };
            if Instant::now() >= deadline {
                return Err(DemoError::Timeout { step, limit, progress });
            }
            tokio::select! {
                // Nodes first: what a node did usually caused what the master reports next.
                biased;
                Some((node, event)) = self.feeds.nodes.recv() => self.on_node_event(node, event),
                event = self.feeds.master.recv() => match event {
                    Some(event) => self.on_master_event(event),
                    None => {
                        let detail = "the master's driver stopped".to_owned();
                        return Err(DemoError::Failed { step, detail });
                    }
                },
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Handles the events still on their way: the master applies a whole update at once (so
    /// a wait may be done on its topology) and then emits the events one by one. Stops after
    /// a short quiet spell; this only orders the output, it measures nothing.
    async fn catch_up(&mut self) {
        let until = Instant::now() + CATCH_UP_MAX;
        while Instant::now() < until {
            tokio::select! {
                biased;
                Some((node, event)) = self.feeds.nodes.recv() => self.on_node_event(node, event),
                Some(event) = self.feeds.master.recv() => self.on_master_event(event),
                () = tokio::time::sleep(CATCH_UP_QUIET) => return,
            }
        }
    }

    fn on_master_event(&mut self, event: MasterEvent) {
        match event {
            MasterEvent::Presence(presence) => {
                self.seen.presence_events += 1;
                self.say(format!("master: {}", self.describe(&presence)));
            }
            MasterEvent::Delivered { id, node, rtt } => self.seen.delivered.push((id, node, rtt)),
            MasterEvent::DeliveryFailed { id, node, error } => {
                self.seen.failed.push((id, node, error));
            }
            _ => {}
        }
    }

    fn on_node_event(&mut self, node: NodeId, event: NodeEvent) {
        match event {
            NodeEvent::BecameLsn { takeover_from: Some(old) } => self.say(format!(
                "{}: hot standby takes over from LSN {} and tells the children it knows",
                self.names.name(&node),
                self.names.name(&old)
            )),
            NodeEvent::Message { id, data } => self.seen.received.push((node, id, data)),
            _ => {}
        }
    }

    fn describe(&self, event: &PresenceEvent) -> String {
        let n = &self.names;
        let subnet = |id: &NodeId| n.subnet(id).map_or_else(String::new, |s| format!(" {s}"));
        match event {
            PresenceEvent::Joined { node, lsn } if node == lsn => {
                format!("joined   {} as the LSN of subnet{}", n.both(node), subnet(node))
            }
            PresenceEvent::Joined { node, lsn } => {
                format!("joined   {} under LSN {}", n.both(node), n.name(lsn))
            }
            PresenceEvent::Parted { node, reason } => {
                format!("parted   {}: {}", n.both(node), reason_text(*reason))
            }
            PresenceEvent::Moved { node, from, to } => format!(
                "moved    {} from LSN {} to LSN {} (subnet{})",
                n.both(node),
                n.name(from),
                n.name(to),
                subnet(to)
            ),
            PresenceEvent::Rerouted { node, from, to } if node == to => format!(
                "rerouted {} is now an LSN itself (was under LSN {})",
                n.both(node),
                n.name(from)
            ),
            PresenceEvent::Rerouted { node, from, to } => {
                format!("rerouted {} from LSN {} to LSN {}", n.both(node), n.name(from), n.name(to))
            }
            other => format!("{other:?}"),
        }
    }
}

fn reason_text(reason: PartReason) -> &'static str {
    match reason {
        PartReason::Shutdown => "shut down",
        PartReason::Lost => "lost (stopped answering)",
        PartReason::Moved => "moved away",
        PartReason::Yield => "yielded",
        _ => "left",
    }
}
