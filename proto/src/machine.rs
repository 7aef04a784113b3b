//! The [`Machine`] trait: the method set every sans-IO state machine shares, so one driver (the
//! `fleetmesh` crate's tokio driver, or the simulator) runs any of them.

use std::{net::SocketAddr, sync::Arc};

use crate::{
    dht::StoreOp,
    discovery::{Candidate, DiscoveryRequest},
    Path, Refused, Timestamp, Transmit,
};

/// A sans-IO state machine the driver can run: the method set every fleetmesh state machine
/// shares (see the [crate docs](crate#the-run-loop)).
pub trait Machine: Send + 'static {
    /// What the machine reports.
    type Event: Send + 'static;
    /// What the application asks of it.
    type Command: Send + 'static;

    /// A datagram arrived (over UDP).
    fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]);
    /// A datagram arrived over `path`. Default: [`handle_datagram`](Self::handle_datagram),
    /// for machines that do not select paths.
    fn handle_datagram_on(&mut self, now: Timestamp, src: SocketAddr, path: Path, datagram: &[u8]) {
        let _ = path;
        self.handle_datagram(now, src, datagram);
    }
    /// The application asked for something.
    fn handle_command(&mut self, now: Timestamp, command: Self::Command);
    /// A deadline passed.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The next request for discovery. Default: none.
    fn poll_discovery(&mut self) -> Option<DiscoveryRequest> {
        None
    }
    /// Discovery's answer to [`DiscoveryRequest::Discover`]. Default: ignored.
    fn handle_candidates(&mut self, now: Timestamp, candidates: Vec<Candidate>) {
        let _ = (now, candidates);
    }
    /// The next write the machine wants made to its persistent store (DHT records and routing
    /// table); a driver with a store carries them out in order.
    fn poll_store(&mut self) -> Option<StoreOp> {
        None
    }
    /// What the machine refused from the wire since it started, by reason. The driver reads
    /// it to log a rate-limited summary, since junk raises no event. Default: nothing.
    fn refused(&self) -> Refused {
        Refused::default()
    }
}

/// A machine shared with the application: the driver locks it for each call, and the
/// application can lock it between calls to read its state (the master's topology, a node's
/// state). Keep such reads short: the driver waits for the lock.
impl<M: Machine> Machine for Arc<std::sync::Mutex<M>> {
    type Event = M::Event;
    type Command = M::Command;

    fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        lock(self).handle_datagram(now, src, datagram);
    }
    fn handle_datagram_on(&mut self, now: Timestamp, src: SocketAddr, path: Path, datagram: &[u8]) {
        lock(self).handle_datagram_on(now, src, path, datagram);
    }
    fn handle_command(&mut self, now: Timestamp, command: Self::Command) {
        lock(self).handle_command(now, command);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        lock(self).handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        lock(self).poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        lock(self).poll_timeout()
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        lock(self).poll_event()
    }
    fn poll_discovery(&mut self) -> Option<DiscoveryRequest> {
        lock(self).poll_discovery()
    }
    fn handle_candidates(&mut self, now: Timestamp, candidates: Vec<Candidate>) {
        lock(self).handle_candidates(now, candidates);
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        lock(self).poll_store()
    }
    fn refused(&self) -> Refused {
        lock(self).refused()
    }
}

fn lock<M>(m: &std::sync::Mutex<M>) -> std::sync::MutexGuard<'_, M> {
    // A panic inside the machine already ended the driver; the state is still readable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
