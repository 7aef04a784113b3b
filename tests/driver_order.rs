//! The driver handles inputs that are ready at the same moment in a fixed order, so a seeded
//! simulation (turmoil, or tokio's paused clock) repeats exactly: which of a due timer and a
//! waiting datagram goes first must not depend on the runtime's random seed.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use fleetmesh::{
    driver::{self, Clock, Machine},
    MemoryDiscovery, Timestamp, Transmit, Transport, TransportError,
};
use tokio::sync::mpsc;

/// A transport with datagrams already waiting in its inbox.
struct Inbox(tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>);

#[async_trait]
impl Transport for Inbox {
    async fn send_to(&self, _dst: SocketAddr, _datagram: &[u8]) -> Result<(), TransportError> {
        Ok(())
    }
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        let (bytes, src) = self.0.lock().await.recv().await.ok_or(TransportError::Closed)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok((bytes.len(), src))
    }
    fn local_addrs(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
    fn max_datagram_size(&self) -> usize {
        1500
    }
}

/// A machine with a timer already due; it records the order of its inputs.
struct Recorder {
    due: Option<Timestamp>,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Machine for Recorder {
    type Event = ();
    type Command = ();
    fn handle_datagram(&mut self, _now: Timestamp, _src: SocketAddr, _datagram: &[u8]) {
        self.log.lock().unwrap().push("datagram");
    }
    fn handle_command(&mut self, _now: Timestamp, _command: ()) {
        self.log.lock().unwrap().push("command");
    }
    fn handle_timeout(&mut self, _now: Timestamp) {
        self.due = None;
        self.log.lock().unwrap().push("timeout");
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.due
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

/// In a fresh runtime (with its own random seed), the order in which the driver handles a
/// due timer, a waiting datagram and a waiting command.
fn order_in_a_fresh_runtime() -> Vec<&'static str> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let start = Timestamp::from_secs(1_700_000_000);
        let (tx, rx) = mpsc::channel(4);
        tx.try_send((b"hello".to_vec(), "10.0.0.2:4000".parse().unwrap())).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let machine = Recorder { due: Some(start), log: log.clone() };
        let discovery = Arc::new(MemoryDiscovery::new());
        let transport = Inbox(tokio::sync::Mutex::new(rx));
        let (commands, _events, task) =
            driver::spawn(machine, transport, discovery, Clock::starting_at(start));
        commands.try_send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        task.abort();
        drop(tx);
        let order = log.lock().unwrap().clone();
        order
    })
}

#[test]
fn simultaneous_inputs_are_handled_in_the_same_order_on_every_run() {
    // An unbiased `select!` starts at a random branch, so 32 fresh runtimes would almost
    // surely disagree; the driver takes the timer first, then commands, then datagrams.
    for run in 0..32 {
        assert_eq!(order_in_a_fresh_runtime(), ["timeout", "command", "datagram"], "run {run}");
    }
}
