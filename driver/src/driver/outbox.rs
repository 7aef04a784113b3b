//! Sending without stalling the protocol: a slow send (a TCP dial can take seconds) must not
//! hold up timers, other peers' datagrams or incoming traffic.
//!
//! Every transmit is first polled once inline. A send that completes at once (UDP, memory, an
//! open TCP connection with room in its buffer) costs nothing extra and keeps today's order, so
//! seeded runs repeat. A send that would wait moves, still in progress, to a task of its own for
//! that destination and path; later transmits to the same destination queue behind it (bounded)
//! so their order is kept, while every other destination goes on inline.

use std::{collections::HashMap, future::Future, net::SocketAddr, pin::Pin, sync::Arc, task::Poll};

use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

use crate::{Path, Transmit, Transport, TransportError};

/// Datagrams that may wait behind one slow send to the same destination; more are dropped (the
/// protocol's timers handle loss, and a destination this slow is not keeping up anyway).
pub const SLOW_QUEUE: usize = 16;
/// Destinations that may have a send in progress at once; a transmit to one more is dropped.
/// With [`SLOW_QUEUE`] this bounds what slow destinations can hold.
pub const MAX_SLOW_DESTINATIONS: usize = 256;

type SendFuture = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send>>;

/// The driver's sending side.
pub(super) struct Outbox<T> {
    transport: Arc<T>,
    /// Destinations with a send in progress on their own task, and the queue behind it.
    slow: HashMap<(Path, SocketAddr), mpsc::Sender<Transmit>>,
}

impl<T: Transport> Outbox<T> {
    pub(super) fn new(transport: Arc<T>) -> Self {
        Outbox { transport, slow: HashMap::new() }
    }

    /// Sends `t`, or hands it to its destination's task; never waits for the network.
    pub(super) async fn send(&mut self, t: Transmit) {
        let key = (t.path, t.dst);
        let t = match self.slow.get(&key) {
            None => t,
            Some(queue) => match queue.try_send(t) {
                Ok(()) => return,
                Err(TrySendError::Full(t)) => {
                    tracing::debug!(dst = %t.dst, "send queue full, datagram dropped");
                    return;
                }
                // The task finished and closed its queue: send inline again.
                Err(TrySendError::Closed(t)) => {
                    self.slow.remove(&key);
                    t
                }
            },
        };
        let mut send = send_future(self.transport.clone(), t);
        match std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
            Poll::Ready(result) => report(result, key.1),
            Poll::Pending => self.hand_off(key, send),
        }
    }

    fn hand_off(&mut self, key: (Path, SocketAddr), send: SendFuture) {
        if self.slow.len() >= MAX_SLOW_DESTINATIONS {
            self.slow.retain(|_, queue| !queue.is_closed());
        }
        if self.slow.len() >= MAX_SLOW_DESTINATIONS {
            // Dropping the future abandons the send (a dial is cancelled): a lost datagram.
            tracing::debug!(dst = %key.1, "too many slow destinations, datagram dropped");
            return;
        }
        let (tx, rx) = mpsc::channel(SLOW_QUEUE);
        self.slow.insert(key, tx);
        tokio::spawn(drain(self.transport.clone(), send, rx, key.1));
    }

    /// Destinations with a send in progress (for tests and diagnostics).
    #[cfg(test)]
    pub(super) fn slow_destinations(&self) -> usize {
        self.slow.values().filter(|q| !q.is_closed()).count()
    }
}

fn send_future<T: Transport>(transport: Arc<T>, t: Transmit) -> SendFuture {
    Box::pin(async move {
        match t.ttl {
            Some(ttl) => transport.send_limited(t.path, t.dst, &t.payload, ttl).await,
            None => transport.send_on(t.path, t.dst, &t.payload).await,
        }
    })
}

/// One destination's task: finishes the slow send, then whatever queued behind it, in order.
async fn drain<T: Transport>(
    transport: Arc<T>,
    first: SendFuture,
    mut queue: mpsc::Receiver<Transmit>,
    dst: SocketAddr,
) {
    report(first.await, dst);
    loop {
        match queue.try_recv() {
            Ok(t) => report(send_future(transport.clone(), t).await, dst),
            Err(TryRecvError::Empty) => {
                // Close first, then take what arrived meanwhile: nothing is left stranded, and
                // the driver sees the closed queue and sends inline again.
                queue.close();
                while let Ok(t) = queue.try_recv() {
                    report(send_future(transport.clone(), t).await, dst);
                }
                return;
            }
            Err(TryRecvError::Disconnected) => return,
        }
    }
}

fn report(result: Result<(), TransportError>, dst: SocketAddr) {
    if let Err(error) = result {
        // A send failure is a lost datagram; the protocol's timers deal with loss.
        tracing::debug!(%dst, %error, "send failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::{sync::Mutex, time::Duration};
    use tokio::sync::watch;

    /// Sends to port 1 wait until the gate opens; everything sent is recorded in order.
    struct Gated {
        open: watch::Receiver<bool>,
        sent: Mutex<Vec<(SocketAddr, u32)>>,
    }

    #[async_trait]
    impl Transport for Gated {
        async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
            if dst.port() == 1 {
                let _ = self.open.clone().wait_for(|open| *open).await;
            }
            let n = u32::from_be_bytes(datagram.try_into().unwrap());
            self.sent.lock().unwrap().push((dst, n));
            Ok(())
        }
        async fn recv_from(&self, _: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
            std::future::pending().await
        }
        fn local_addrs(&self) -> Vec<SocketAddr> {
            Vec::new()
        }
        fn max_datagram_size(&self) -> usize {
            1500
        }
    }

    fn t(ip: u32, port: u16, n: u32) -> Transmit {
        let dst = SocketAddr::new(std::net::Ipv4Addr::from(ip).into(), port);
        Transmit { dst, payload: n.to_be_bytes().to_vec(), path: Path::Tcp, ttl: None }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_destination_queues_in_order_up_to_its_bound_then_sends_inline_again() {
        let (gate, open) = watch::channel(false);
        let transport = Arc::new(Gated { open, sent: Mutex::new(Vec::new()) });
        let mut outbox = Outbox::new(transport.clone());
        for n in 0..(SLOW_QUEUE as u32 + 10) {
            outbox.send(t(1, 1, n)).await;
        }
        outbox.send(t(2, 2, 99)).await;
        assert_eq!(*transport.sent.lock().unwrap(), vec![(t(2, 2, 0).dst, 99)]);
        assert_eq!(outbox.slow_destinations(), 1);

        gate.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let slow: Vec<u32> = transport.sent.lock().unwrap()[1..].iter().map(|s| s.1).collect();
        // The send in progress and the queue behind it, in order; the overflow was dropped.
        assert_eq!(slow, (0..=SLOW_QUEUE as u32).collect::<Vec<_>>());
        assert_eq!(outbox.slow_destinations(), 0);
        outbox.send(t(1, 1, 500)).await;
        assert_eq!(transport.sent.lock().unwrap().last(), Some(&(t(1, 1, 0).dst, 500)));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_destinations_are_bounded() {
        let (_gate, open) = watch::channel(false);
        let transport = Arc::new(Gated { open, sent: Mutex::new(Vec::new()) });
        let mut outbox = Outbox::new(transport.clone());
        for ip in 0..(MAX_SLOW_DESTINATIONS as u32 + 50) {
            outbox.send(t(ip, 1, ip)).await;
        }
        assert_eq!(outbox.slow_destinations(), MAX_SLOW_DESTINATIONS);
        assert!(transport.sent.lock().unwrap().is_empty());
    }
}
