//! The driver carries a machine's store writes out on its `Store`, in order.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use fleetmesh::{
    dht::StoreOp,
    driver::{self, Clock, Machine},
    MemoryDiscovery, MemoryStore, Store, Timestamp, Transmit, Transport, TransportError,
};

/// A transport that never delivers anything.
struct Silent;

#[async_trait]
impl Transport for Silent {
    async fn send_to(&self, _dst: SocketAddr, _datagram: &[u8]) -> Result<(), TransportError> {
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

/// Asks for three writes: two puts, then the removal of the first.
struct Writer(Vec<StoreOp>);

impl Machine for Writer {
    type Event = ();
    type Command = ();
    fn handle_datagram(&mut self, _now: Timestamp, _src: SocketAddr, _datagram: &[u8]) {}
    fn handle_command(&mut self, _now: Timestamp, _command: ()) {}
    fn handle_timeout(&mut self, _now: Timestamp) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }
}

#[tokio::test(start_paused = true)]
async fn store_writes_are_applied_in_order() {
    let put = |key: &[u8], value: &[u8]| StoreOp::Put {
        table: "dht.records",
        key: key.to_vec(),
        value: value.to_vec(),
    };
    let ops = vec![
        put(b"a", b"1"),
        put(b"b", b"2"),
        StoreOp::Remove { table: "dht.records", key: b"a".to_vec() },
    ];
    let store = MemoryStore::new();
    let (_commands, _events, task) = driver::spawn_with_store(
        Writer(ops),
        Silent,
        Arc::new(MemoryDiscovery::new()),
        Arc::new(store.clone()),
        Clock::starting_at(Timestamp::from_secs(1_700_000_000)),
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    task.abort();
    let entries = store.scan("dht.records").await.unwrap();
    assert_eq!(entries, vec![(b"b".to_vec(), b"2".to_vec())]);
}
