//! Prometheus `/metrics` (text exposition): what the master daemon observes. Gauges come
//! from the topology and registry; counters count the master's events as the daemon sees
//! them; refusals by reason come from the core's counters. Not exposed yet: sessions,
//! handshakes, bytes by class.

use std::sync::atomic::{AtomicU64, Ordering};

use fleetmesh::{
    endpoint::Event as LinkEvent,
    overlay::{MasterEvent, PresenceEvent},
    MasterControl,
};

/// Counters of the master's events since the daemon started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    joined: AtomicU64,
    parted: AtomicU64,
    moved: AtomicU64,
    rerouted: AtomicU64,
    delivered: AtomicU64,
    delivery_failed: AtomicU64,
    enrolled: AtomicU64,
    enrollment_refused: AtomicU64,
}

impl Counters {
    /// Counts one event.
    pub(crate) fn count(&self, event: &MasterEvent) {
        let counter = match event {
            MasterEvent::Presence(PresenceEvent::Joined { .. }) => &self.joined,
            MasterEvent::Presence(PresenceEvent::Parted { .. }) => &self.parted,
            MasterEvent::Presence(PresenceEvent::Moved { .. }) => &self.moved,
            MasterEvent::Presence(PresenceEvent::Rerouted { .. }) => &self.rerouted,
            MasterEvent::Delivered { .. } => &self.delivered,
            MasterEvent::DeliveryFailed { .. } => &self.delivery_failed,
            MasterEvent::Link(LinkEvent::PeerEnrolled { .. }) => &self.enrolled,
            MasterEvent::Link(LinkEvent::EnrollmentRefused { .. }) => &self.enrollment_refused,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub(crate) fn render(&self, master: &MasterControl) -> String {
        let topology = master.topology();
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
        };
        gauge(
            "fleetmesh_present_nodes",
            "Nodes present now (LSNs included).",
            topology.present() as u64,
        );
        gauge("fleetmesh_lsns", "LSNs now.", topology.lsn_count() as u64);
        gauge("fleetmesh_subnets", "Subnets with an LSN now.", topology.subnets.len() as u64);
        gauge(
            "fleetmesh_known_nodes",
            "Nodes in the durable registry.",
            master.known_nodes().len() as u64,
        );
        gauge(
            "fleetmesh_token_uses_remaining",
            "Enrollment token uses still open.",
            master.tokens_remaining().map_or(0, |n| n as u64),
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP fleetmesh_presence_events_total Presence changes seen by the master.\n# TYPE fleetmesh_presence_events_total counter\n");
        for (kind, c) in [
            ("joined", &self.joined),
            ("parted", &self.parted),
            ("moved", &self.moved),
            ("rerouted", &self.rerouted),
        ] {
            out.push_str(&format!(
                "fleetmesh_presence_events_total{{kind=\"{kind}\"}} {}\n",
                load(c)
            ));
        }
        out.push_str("# HELP fleetmesh_deliveries_total Application messages and polls by outcome.\n# TYPE fleetmesh_deliveries_total counter\n");
        out.push_str(&format!(
            "fleetmesh_deliveries_total{{outcome=\"delivered\"}} {}\n",
            load(&self.delivered)
        ));
        out.push_str(&format!(
            "fleetmesh_deliveries_total{{outcome=\"failed\"}} {}\n",
            load(&self.delivery_failed)
        ));
        out.push_str("# HELP fleetmesh_enrollments_total Enrollments by outcome.\n# TYPE fleetmesh_enrollments_total counter\n");
        out.push_str(&format!(
            "fleetmesh_enrollments_total{{outcome=\"admitted\"}} {}\n",
            load(&self.enrolled)
        ));
        out.push_str(&format!(
            "fleetmesh_enrollments_total{{outcome=\"refused\"}} {}\n",
            load(&self.enrollment_refused)
        ));
        // Junk raises no event, so these come from the core's counters, not from `count`.
        let refused = master.refused();
        out.push_str("# HELP fleetmesh_refused_total Datagrams, handshakes and control messages refused, by reason.\n# TYPE fleetmesh_refused_total counter\n");
        let link = refused.link.reasons().map(|(reason, n)| (reason.to_owned(), n));
        let control = refused.control.reasons().map(|(reason, n)| (format!("control:{reason}"), n));
        for (reason, n) in link.into_iter().chain(control) {
            out.push_str(&format!("fleetmesh_refused_total{{reason=\"{reason}\"}} {n}\n"));
        }
        out
    }
}
