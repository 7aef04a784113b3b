//! A send that never completes (a TCP dial to a dead host, a full socket) must not freeze the
//! protocol: timers keep firing and every other destination keeps getting its datagrams.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use fleetmesh::{
    driver::{self, Clock, Machine},
    MemoryDiscovery, Path, Timestamp, Transmit, Transport, TransportError,
};

const SLOW: &str = "10.0.0.9:4000";
const FAST: &str = "10.0.0.2:4000";

/// Sends to `SLOW` hang forever; sends to anyone else are recorded.
#[derive(Default)]
struct Stuck {
    delivered: Mutex<Vec<(SocketAddr, Vec<u8>)>>,
}

#[async_trait]
impl Transport for Stuck {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        if dst == SLOW.parse().unwrap() {
            std::future::pending::<()>().await;
        }
        self.delivered.lock().unwrap().push((dst, datagram.to_vec()));
        Ok(())
    }
    async fn recv_from(&self, _buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        std::future::pending().await
    }
    fn local_addrs(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
    fn max_datagram_size(&self) -> usize {
        1500
    }
}

/// Every second: one datagram to the slow destination (several, to fill its queue), then one to
/// the fast one, numbered by tick.
struct Ticker {
    next: Timestamp,
    tick: u8,
    out: Vec<Transmit>,
    ticks: Arc<Mutex<u32>>,
}

impl Machine for Ticker {
    type Event = ();
    type Command = ();
    fn handle_datagram(&mut self, _now: Timestamp, _src: SocketAddr, _datagram: &[u8]) {}
    fn handle_command(&mut self, _now: Timestamp, _command: ()) {}
    fn handle_timeout(&mut self, now: Timestamp) {
        *self.ticks.lock().unwrap() += 1;
        self.tick += 1;
        for _ in 0..5 {
            self.out.push(Transmit {
                dst: SLOW.parse().unwrap(),
                payload: vec![0],
                path: Path::Tcp,
                ttl: None,
            });
        }
        self.out.push(Transmit {
            dst: FAST.parse().unwrap(),
            payload: vec![self.tick],
            path: Path::Udp,
            ttl: None,
        });
        self.next = now + Duration::from_secs(1);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        (!self.out.is_empty()).then(|| self.out.remove(0))
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        Some(self.next)
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_that_never_completes_does_not_stop_timers_or_other_peers() {
    let start = Timestamp::from_secs(1_700_000_000);
    let ticks = Arc::new(Mutex::new(0));
    let machine = Ticker { next: start, tick: 0, out: Vec::new(), ticks: ticks.clone() };
    let transport = Arc::new(Stuck::default());
    let (commands, _events, task) = driver::spawn(
        machine,
        transport.clone(),
        Arc::new(MemoryDiscovery::new()),
        Clock::starting_at(start),
    );
    tokio::time::sleep(Duration::from_millis(10_500)).await;

    // Ticks at 0, 1, ..., 10 s: all eleven fired although the first send never finished.
    assert_eq!(*ticks.lock().unwrap(), 11);
    let delivered = transport.delivered.lock().unwrap().clone();
    let fast: Vec<u8> = delivered
        .iter()
        .map(|(dst, d)| {
            assert_eq!(*dst, FAST.parse::<SocketAddr>().unwrap());
            d[0]
        })
        .collect();
    // Every fast datagram, in order.
    assert_eq!(fast, (1..=11).collect::<Vec<u8>>());
    drop(commands);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(task.is_finished(), "the driver stops when its handle goes, slow send or not");
}
