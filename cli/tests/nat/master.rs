//! The test's own master for the restart and message step: `fleetmesh::MasterBuilder` in the
//! internet namespace, run by re-executing this test binary there (`ip netns exec … nat
//! TEST_NAME --exact` with the variables below; see `Helper::from_env`). A separate program
//! would need a `[[bin]]` in the package (installed with it) or an example whose path cargo
//! does not hand to tests; the test binary is always there.
//!
//! Why not the `fleetmesh master` daemon: it has no way yet to send a message (that comes
//! with the admin API), and a send-on-some-event flag in the product only for a test is the
//! wrong trade. The front door's handle is what the daemon runs anyway, from the same data
//! directory (key, tokens, certificates, registry), so switching to it is the master's
//! restart. It reports on stdout as JSON lines shaped like the daemon's log
//! (`{"fields":{"message":…}}`), so the test reads both the same way.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use fleetmesh::{
    endpoint::Event,
    overlay::{MasterEvent, PresenceEvent},
    MasterBuilder, NodeId,
};
use serde_json::json;

/// Set (to the master's data directory) in the re-executed test's environment.
pub(crate) const DATA_DIR_ENV: &str = "FLEETMESH_NAT_TEST_MASTER_DIR";
/// The master's listen (and public) address, beside [`DATA_DIR_ENV`].
pub(crate) const LISTEN_ENV: &str = "FLEETMESH_NAT_TEST_MASTER_LISTEN";

/// How often a failed delivery is retried before the helper gives up on a node.
const ATTEMPTS: u32 = 5;

/// The helper's role, when this process is the re-executed test.
pub(crate) struct Helper {
    data_dir: PathBuf,
    listen: SocketAddr,
}

impl Helper {
    /// `Some` when this process was started as the helper master.
    pub(crate) fn from_env() -> Option<Helper> {
        let data_dir = std::env::var_os(DATA_DIR_ENV)?.into();
        let listen = std::env::var(LISTEN_ENV).ok()?.parse().expect("a socket address");
        Some(Helper { data_dir, listen })
    }

    /// Runs the master until killed: it sends one message to every node that becomes present
    /// and reports presence and deliveries.
    pub(crate) fn run(self) {
        // libtest has printed "test NAME ... " without a newline: end that line, so each
        // report is a line of its own.
        println!();
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime.block_on(self.serve());
    }

    async fn serve(self) {
        let mut master = MasterBuilder::new(&self.data_dir)
            .listen(self.listen)
            .public_addrs(vec![self.listen])
            .start()
            .await
            .expect("the helper master starts from the daemon's data directory");
        // The registry the daemon kept, as loaded from the data directory.
        let known = master.known_nodes().len();
        report("master running", json!({ "master": master.id().to_string(), "known": known }));
        let mut next_id = 1u64;
        // Message id → (recipient, attempts so far).
        let mut sent: HashMap<u64, (NodeId, u32)> = HashMap::new();
        while let Some(event) = master.next_event().await {
            let (node, attempt) = match event {
                MasterEvent::Presence(PresenceEvent::Joined { node, lsn }) => {
                    report(
                        "node present",
                        json!({ "node": node.to_string(), "lsn": lsn.to_string() }),
                    );
                    (node, 1)
                }
                MasterEvent::Presence(PresenceEvent::Rerouted { node, to, .. }) => {
                    report(
                        "node rerouted to another LSN",
                        json!({ "node": node.to_string(), "to": to.to_string() }),
                    );
                    continue;
                }
                MasterEvent::Presence(PresenceEvent::Parted { node, .. }) => {
                    report("node parted", json!({ "node": node.to_string() }));
                    continue;
                }
                MasterEvent::Delivered { id, node, rtt } => {
                    let rtt_ms = rtt.as_secs_f64() * 1000.0;
                    report(
                        "message delivered",
                        json!({ "node": node.to_string(), "id": id, "rtt_ms": rtt_ms }),
                    );
                    continue;
                }
                MasterEvent::Link(Event::PeerEnrolled { peer, .. }) => {
                    report("node enrolled", json!({ "node": peer.to_string() }));
                    continue;
                }
                MasterEvent::DeliveryFailed { id, node, error } => {
                    report(
                        "message not delivered",
                        json!({ "node": node.to_string(), "id": id, "error": error.to_string() }),
                    );
                    match sent.get(&id) {
                        Some((_, attempts)) if *attempts < ATTEMPTS => (node, attempts + 1),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            let id = next_id;
            next_id += 1;
            sent.insert(id, (node, attempt));
            let data = format!("hello {node}").into_bytes();
            master.send(node, id, data).await.expect("the master runs");
            report("message sent", json!({ "node": node.to_string(), "id": id }));
        }
    }
}

/// One JSON line on stdout, shaped like the daemon's log lines.
fn report(message: &str, mut fields: serde_json::Value) {
    fields["message"] = message.into();
    println!("{}", json!({ "fields": fields }));
}
