//! The node daemon's `transfer` handler: sends test data to another node over the overlay,
//! as a bulk transfer on their peer-to-peer session (direct, or through a GSN), and answers
//! what it measured: an iperf for the overlay's own paths, and the proof that a bulk
//! transfer gets through whatever NATs stand between two nodes.
//!
//! Input (JSON): `{"peer": "<node id>", "addr": "<ip:port>", "bytes": N}`, `addr` being where
//! the peer is reached if no session stands (the master's registry shows it), `N` at most
//! [`MAX_TRANSFER`]. Answer: `{"bytes", "millis", "mb_per_s", "path": "direct"|"relayed",
//! "via"}`, or the transfer's error.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Instant,
};

use fleetmesh::{overlay::NodeEvent, NodeHandle, NodeId};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// The most one transfer sends (the receiver's default `bulk_max`).
pub(crate) const MAX_TRANSFER: u64 = 64 * 1024 * 1024;
/// Transfers under way at once from the handler; more are refused.
const MAX_JOBS: usize = 4;

/// A transfer the handler asks of the daemon's loop (which holds the node).
pub(crate) struct Job {
    peer: NodeId,
    addr: SocketAddr,
    bytes: usize,
    reply: oneshot::Sender<Result<Value, String>>,
}

/// Where the handler finds the daemon's loop, once it runs.
pub(crate) type TransferSlot = Arc<OnceLock<mpsc::Sender<Job>>>;

/// The handler: parses the input, hands the job to the loop and waits for its outcome.
pub(crate) async fn answer(slot: TransferSlot, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let input: Value =
        serde_json::from_slice(&body).map_err(|e| format!("input is not JSON: {e}"))?;
    let peer = input["peer"].as_str().ok_or("missing \"peer\" (a node id)")?;
    let peer: NodeId = peer.parse().map_err(|e| format!("peer: {e}"))?;
    let addr = input["addr"].as_str().ok_or("missing \"addr\" (ip:port)")?;
    let addr: SocketAddr = addr.parse().map_err(|e| format!("addr: {e}"))?;
    let bytes = input["bytes"].as_u64().ok_or("missing \"bytes\" (a number)")?;
    if bytes == 0 || bytes > MAX_TRANSFER {
        return Err(format!("bytes must be 1 to {MAX_TRANSFER}"));
    }
    let jobs = slot.get().ok_or("the node is not running yet")?;
    let (reply, outcome) = oneshot::channel();
    let job = Job { peer, addr, bytes: bytes as usize, reply };
    jobs.try_send(job).map_err(|_| "too many transfers under way".to_owned())?;
    let answer = outcome.await.map_err(|_| "the node stopped".to_owned())??;
    Ok(answer.to_string().into_bytes())
}

/// The loop's side: transfers started, awaiting their outcome.
#[derive(Default)]
pub(crate) struct Transfers {
    pending: HashMap<u64, (Job, Instant)>,
}

impl Transfers {
    /// Starts `job` on `node`.
    pub(crate) async fn start(&mut self, node: &NodeHandle, job: Job) {
        if self.pending.len() >= MAX_JOBS {
            let _ = job.reply.send(Err("too many transfers under way".into()));
            return;
        }
        // Test data that differs along its length, so a chunk out of place would show.
        let data: Vec<u8> = (0..job.bytes).map(|i| (i ^ (i >> 11)) as u8).collect();
        match node.send_bulk(job.peer, job.addr, data).await {
            Ok(id) => {
                tracing::info!(peer = %job.peer, addr = %job.addr, bytes = job.bytes, id, "transfer started");
                self.pending.insert(id, (job, Instant::now()));
            }
            Err(error) => {
                let _ = job.reply.send(Err(error.to_string()));
            }
        }
    }

    /// Answers the transfer `event` ends, if it is one of ours.
    pub(crate) fn on_event(&mut self, node: &NodeHandle, event: &NodeEvent) {
        let (id, outcome) = match event {
            NodeEvent::BulkSent { id, .. } => (*id, Ok(())),
            NodeEvent::BulkFailed { id, error, .. } => (*id, Err(error.to_string())),
            _ => return,
        };
        let Some((job, started)) = self.pending.remove(&id) else { return };
        let answer = outcome.map(|()| {
            let took = started.elapsed();
            let via = node.relayed_via(&job.peer);
            json!({
                "bytes": job.bytes,
                "millis": took.as_secs_f64() * 1e3,
                "mb_per_s": job.bytes as f64 / took.as_secs_f64().max(1e-6) / 1e6,
                "path": if via.is_some() { "relayed" } else { "direct" },
                "via": via.map(|g| g.to_string()),
            })
        });
        let _ = job.reply.send(answer);
    }
}
