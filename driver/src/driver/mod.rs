//! The async driver: runs one sans-IO [`Machine`] over a [`Transport`].
//!
//! One task per node: `select!` over the transport's next datagram, the machine's next
//! deadline, a command channel and discovery's answers; after each input it drains transmits
//! and events. Inputs ready together are taken in a fixed order (deadline, discovery, commands,
//! datagrams), so a seeded simulation repeats exactly. A send that would wait (a TCP dial) never
//! holds up that loop: it finishes on a task of its own, bounded by [`SLOW_QUEUE`] and
//! [`MAX_SLOW_DESTINATIONS`]. What the machine refused from the wire raises no event; the
//! loop logs it as one WARN summary by reason at most every [`REPORT_INTERVAL`]. This is the
//! only code in the crate that
//! reads a clock, and it reads `tokio::time::Instant`, so turmoil's simulated time (or tokio's
//! paused test clock) drives it.

mod clock;
mod endpoint;
mod monitor;
mod outbox;
mod report;

use tokio::sync::mpsc;

pub use self::{
    clock::Clock,
    endpoint::{EndpointCommand, EndpointHandle},
    monitor::{watch_network, NetworkMonitor, NetworkWatch, RouteMonitor},
    outbox::{MAX_SLOW_DESTINATIONS, SLOW_QUEUE},
    report::REPORT_INTERVAL,
};
pub use fleetmesh_proto::Machine;

use crate::{Candidate, Discovery, DiscoveryRequest, Transport, TransportError};
use std::sync::Arc;

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// Receiving failed in a way the transport cannot recover from.
    #[error("transport failed: {0}")]
    Transport(#[from] TransportError),
}

/// Sending a command failed because the driver has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node's driver has stopped")]
pub struct DriverStopped;

/// Events queued between the driver and the application. When the application falls this far
/// behind, the driver waits for it (backpressure) rather than drop anything.
const EVENT_QUEUE: usize = 1024;
const COMMAND_QUEUE: usize = 256;

/// Runs `machine` over `transport` until every command sender is dropped or the transport
/// fails. Spawn it as a task; see [`spawn`].
pub async fn run<M: Machine, T: Transport>(
    machine: M,
    transport: T,
    discovery: Arc<dyn Discovery>,
    clock: Clock,
    commands: mpsc::Receiver<M::Command>,
    events: mpsc::Sender<M::Event>,
) -> Result<(), DriverError> {
    run_inner(machine, transport, discovery, None, clock, commands, events).await
}

async fn run_inner<M: Machine, T: Transport>(
    mut machine: M,
    transport: T,
    discovery: Arc<dyn Discovery>,
    store: Option<Arc<dyn crate::Store>>,
    clock: Clock,
    mut commands: mpsc::Receiver<M::Command>,
    events: mpsc::Sender<M::Event>,
) -> Result<(), DriverError> {
    let mut buf = vec![0u8; transport.max_datagram_size()];
    let transport = Arc::new(transport);
    // Sends never hold up the loop: a slow one finishes on a task of its own (`outbox.rs`).
    let mut outbox = outbox::Outbox::new(transport.clone());
    let mut events = Some(events);
    // Discovery may take a while (a LAN round); it runs beside the loop and reports back here.
    let (found_tx, mut found_rx) = mpsc::channel::<Vec<Candidate>>(4);
    // Junk raises no event: what the machine refused is summed up here, one WARN at most
    // per REPORT_INTERVAL (`report.rs`).
    let mut reporter = report::Reporter::new(tokio::time::Instant::now());
    loop {
        while let Some(request) = machine.poll_discovery() {
            let discovery = discovery.clone();
            match request {
                DiscoveryRequest::Discover => {
                    let tx = found_tx.clone();
                    tokio::spawn(async move {
                        let found = discovery.discover().await.unwrap_or_else(|error| {
                            tracing::debug!(%error, "discovery failed");
                            Vec::new()
                        });
                        let _ = tx.send(found).await;
                    });
                }
                DiscoveryRequest::Remember(candidate) => {
                    tokio::spawn(async move {
                        if let Err(error) = discovery.remember(candidate).await {
                            tracing::debug!(%error, "discovery cache update failed");
                        }
                    });
                }
                // A request a newer core asks for that this driver does not carry out yet.
                other => tracing::debug!(?other, "discovery request not supported"),
            }
        }
        while let Some(op) = machine.poll_store() {
            // In order, inline: a put and a later remove of the same key must not swap. Without
            // a store the writes are dropped (the DHT refills itself from the network).
            if let Some(store) = &store {
                if let Err(error) = crate::store::apply(&**store, &op).await {
                    tracing::warn!(%error, "store write failed");
                }
            }
        }
        while let Some(t) = machine.poll_transmit() {
            outbox.send(t).await;
        }
        while let Some(event) = machine.poll_event() {
            // Once the application dropped its receiver, events are no longer wanted.
            if let Some(tx) = &events {
                if tx.send(event).await.is_err() {
                    events = None;
                }
            }
        }
        let refused = machine.refused();
        if let Some(summary) = reporter.poll(tokio::time::Instant::now(), refused) {
            report::warn(&summary);
        }
        let report_at = reporter.deadline(&refused);
        let deadline = machine.poll_timeout().map(|t| clock.instant(t));
        // Inputs ready at the same moment are taken in a fixed order, not tokio's random one,
        // so a seeded simulation repeats exactly: a due timer first (a flood of datagrams
        // cannot starve it, and handling it moves the deadline on), then discovery's answers
        // and commands, then datagrams.
        tokio::select! {
            biased;
            () = sleep_until(deadline), if deadline.is_some() => machine.handle_timeout(clock.now()),
            // Only wakes the loop, whose top logs the summary; the machine sees nothing.
            () = sleep_until(report_at), if report_at.is_some() => {}
            Some(found) = found_rx.recv() => machine.handle_candidates(clock.now(), found),
            command = commands.recv() => match command {
                Some(command) => machine.handle_command(clock.now(), command),
                None => return Ok(()),
            },
            received = transport.recv_on(&mut buf) => match received {
                Ok((n, src, path)) => machine.handle_datagram_on(clock.now(), src, path, &buf[..n]),
                Err(TransportError::Closed) => return Err(TransportError::Closed.into()),
                Err(error) => tracing::debug!(%error, "receive failed"),
            },
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Spawns the driver for `machine` on the current tokio runtime. Returns the command sender,
/// the event receiver and the task.
#[allow(clippy::type_complexity)]
pub fn spawn<M: Machine, T: Transport>(
    machine: M,
    transport: T,
    discovery: Arc<dyn Discovery>,
    clock: Clock,
) -> (
    mpsc::Sender<M::Command>,
    mpsc::Receiver<M::Event>,
    tokio::task::JoinHandle<Result<(), DriverError>>,
) {
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let task = tokio::spawn(run(machine, transport, discovery, clock, command_rx, event_tx));
    (command_tx, event_rx, task)
}

/// [`spawn`], with the machine's writes ([`Machine::poll_store`]) carried out on `store`.
/// Restore what was saved before starting: `Node::dht_restore(now,
/// store::load_dht(&store).await?)` (see [`load_dht`](crate::store::load_dht)).
#[allow(clippy::type_complexity)]
pub fn spawn_with_store<M: Machine, T: Transport>(
    machine: M,
    transport: T,
    discovery: Arc<dyn Discovery>,
    store: Arc<dyn crate::Store>,
    clock: Clock,
) -> (
    mpsc::Sender<M::Command>,
    mpsc::Receiver<M::Event>,
    tokio::task::JoinHandle<Result<(), DriverError>>,
) {
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let store = Some(store);
    let task =
        tokio::spawn(run_inner(machine, transport, discovery, store, clock, command_rx, event_tx));
    (command_tx, event_rx, task)
}
