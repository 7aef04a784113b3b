//! Mobility detection (issue 6): notice that the device's local network changed and tell its
//! [`Node`](crate::overlay::Node) with [`NodeCommand::Move`], which parts from the old LSN
//! (reason `Moved`) and finds the new subnet's LSN, keeping the node id and certificate.
//!
//! A [`NetworkMonitor`] says what the local network is now; [`watch_network`] polls it
//! periodically and at once when asked through [`NetworkWatch::check_now`]. Call that when the
//! node reports failed pings ([`NodeEvent::LsnLost`](crate::overlay::NodeEvent::LsnLost),
//! [`NodeEvent::MasterUnreachable`](crate::overlay::NodeEvent::MasterUnreachable)): a lost
//! LSN together with a changed address is a move, detected without waiting for the next poll.
//!
//! The bundled [`RouteMonitor`] needs no dependency: it asks the operating system which local
//! address it would use to reach the master (a connected UDP socket, no packet sent). That is
//! the address that matters to the overlay; the prefix length stays the configured one.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::sync::{mpsc, Notify};

use crate::overlay::{LocalNetwork, NodeCommand};

/// Says what the device's local network is now.
pub trait NetworkMonitor: Send + 'static {
    /// The local network now; `None` when it cannot be told (no route, no interface): the
    /// watcher then keeps the last known one.
    fn current(&mut self) -> Option<LocalNetwork>;
}

/// The local address the system routes towards `target` from, with a fixed prefix length.
#[derive(Clone, Copy, Debug)]
pub struct RouteMonitor {
    /// Whom the route is asked for: the master.
    pub target: SocketAddr,
    /// The prefix length reported with the address.
    pub prefix_len: u8,
}

impl RouteMonitor {
    /// A monitor of the route to `target`, reporting `prefix_len`.
    pub fn new(target: SocketAddr, prefix_len: u8) -> Self {
        RouteMonitor { target, prefix_len }
    }
}

impl NetworkMonitor for RouteMonitor {
    fn current(&mut self) -> Option<LocalNetwork> {
        let any: IpAddr = if self.target.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        // Connecting a UDP socket sends nothing: it only picks the route and source address.
        let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
        socket.connect(self.target).ok()?;
        let addr = socket.local_addr().ok()?.ip();
        (!addr.is_unspecified()).then_some(LocalNetwork { addr, prefix_len: self.prefix_len })
    }
}

/// Asks a running [`watch_network`] task to look at the network now. Clones share the task.
#[derive(Clone, Debug, Default)]
pub struct NetworkWatch {
    wake: Arc<Notify>,
}

impl NetworkWatch {
    /// Checks the network at once (e.g. after the node reported its LSN lost).
    pub fn check_now(&self) {
        self.wake.notify_one();
    }
}

/// Watches `monitor` every `every` (and on [`NetworkWatch::check_now`]), starting from
/// `known`, and sends [`NodeCommand::Move`] to `commands` whenever the local network differs
/// from the last one seen. Ends when the node's command channel closes. Spawn the returned
/// future as a task.
pub fn watch_network<M: NetworkMonitor>(
    mut monitor: M,
    known: LocalNetwork,
    every: Duration,
    commands: mpsc::Sender<NodeCommand>,
) -> (NetworkWatch, impl std::future::Future<Output = ()> + Send + 'static) {
    let watch = NetworkWatch::default();
    let wake = watch.wake.clone();
    let task = async move {
        let mut last = known;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = wake.notified() => {}
                () = commands.closed() => return,
            }
            let Some(now) = monitor.current() else { continue };
            if now != last {
                tracing::info!(from = %last.addr, to = %now.addr, "local network changed: moving");
                last = now;
                if commands.send(NodeCommand::Move(now)).await.is_err() {
                    return;
                }
            }
        }
    };
    (watch, task)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A monitor reading a shared value a test changes.
    struct Scripted(Arc<Mutex<Option<LocalNetwork>>>);

    impl NetworkMonitor for Scripted {
        fn current(&mut self) -> Option<LocalNetwork> {
            *self.0.lock().unwrap()
        }
    }

    fn net(s: &str) -> LocalNetwork {
        LocalNetwork { addr: s.parse().unwrap(), prefix_len: 24 }
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_address_becomes_one_move() {
        let value = Arc::new(Mutex::new(Some(net("10.1.0.5"))));
        let (tx, mut rx) = mpsc::channel(8);
        let (watch, task) =
            watch_network(Scripted(value.clone()), net("10.1.0.5"), Duration::from_secs(5), tx);
        tokio::spawn(task);
        // Unchanged for a while, or unknown: nothing.
        tokio::time::sleep(Duration::from_secs(12)).await;
        *value.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(rx.try_recv().is_err());
        // Changed: one Move at the next poll, and no repeat.
        *value.lock().unwrap() = Some(net("10.2.0.9"));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(rx.try_recv().unwrap(), NodeCommand::Move(net("10.2.0.9")));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(rx.try_recv().is_err());
        // A check on demand (failed pings) does not wait for the poll.
        *value.lock().unwrap() = Some(net("10.3.0.1"));
        watch.check_now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(rx.try_recv().unwrap(), NodeCommand::Move(net("10.3.0.1")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_ends_with_the_node() {
        let (tx, rx) = mpsc::channel(1);
        let (_, task) =
            watch_network(Scripted(Arc::default()), net("10.1.0.5"), Duration::from_secs(5), tx);
        let task = tokio::spawn(task);
        drop(rx);
        task.await.unwrap();
    }

    #[test]
    fn the_route_monitor_reports_the_source_address_towards_the_target() {
        let mut m = RouteMonitor::new("127.0.0.1:4000".parse().unwrap(), 8);
        assert_eq!(
            m.current(),
            Some(LocalNetwork { addr: "127.0.0.1".parse().unwrap(), prefix_len: 8 })
        );
    }
}
