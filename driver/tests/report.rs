//! Junk reaching a running driver is one WARN summary per interval in the log, by reason, and
//! no event in the application's channel. The clock is tokio's paused one: no real waiting.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use fleetmesh_driver::{
    driver::{self, Clock, REPORT_INTERVAL},
    endpoint::Rejections,
    overlay::Refusals,
    Machine, MemoryDiscovery, Refused, Timestamp, Transmit, Transport, TransportError,
};
use tokio::sync::mpsc;

/// A transport whose datagrams the test pushes in.
struct Inbox(tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>);

#[async_trait]
impl Transport for Inbox {
    async fn send_to(&self, _dst: SocketAddr, _datagram: &[u8]) -> Result<(), TransportError> {
        Ok(())
    }
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        let bytes = self.0.lock().await.recv().await.ok_or(TransportError::Closed)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok((bytes.len(), "192.0.2.9:9".parse().unwrap()))
    }
    fn local_addrs(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
    fn max_datagram_size(&self) -> usize {
        1500
    }
}

/// Rejects every datagram: an empty one as malformed, any other as failing authentication.
#[derive(Default)]
struct Rejecter(Rejections);

impl Machine for Rejecter {
    type Event = ();
    type Command = ();
    fn handle_datagram(&mut self, _now: Timestamp, _src: SocketAddr, datagram: &[u8]) {
        if datagram.is_empty() {
            self.0.malformed += 1;
        } else {
            self.0.decrypt += 1;
        }
    }
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
    fn refused(&self) -> Refused {
        Refused::new(self.0, Refusals::default())
    }
}

/// The log, as the test's subscriber wrote it.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn warnings(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().filter(|l| l.contains("WARN")).map(str::to_owned).collect()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_junk_flood_is_one_warning_per_interval_and_no_event() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The current-thread runtime runs the driver on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (junk, inbox) = mpsc::channel(100_000);
    let (commands, command_rx) = mpsc::channel(1);
    let (event_tx, mut events) = mpsc::channel(16);
    let transport = Inbox(tokio::sync::Mutex::new(inbox));
    let clock = Clock::starting_at(Timestamp::from_secs(1_000));
    let driver = tokio::spawn(driver::run(
        Rejecter::default(),
        transport,
        Arc::new(MemoryDiscovery::new()),
        clock,
        command_rx,
        event_tx,
    ));

    // 10,000 forged datagrams and 2,000 empty ones at once, then more a few seconds later.
    for i in 0..12_000 {
        junk.send(if i % 6 == 5 { Vec::new() } else { vec![0x14; 40] }).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(log.warnings().is_empty(), "nothing before the first interval is over");
    for _ in 0..345 {
        junk.send(vec![0x14; 40]).await.unwrap();
    }
    // Woken by the report deadline alone: no datagram arrives after these.
    tokio::time::sleep(REPORT_INTERVAL).await;
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(
            "refused 12345 datagrams or messages in the last 10 s: 2000 malformed, 10345 decrypt"
        ),
        "{warnings:?}"
    );
    // Another wave within the next interval is held until that interval is over.
    for _ in 0..7 {
        junk.send(Vec::new()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(log.warnings().len(), 1, "at most one warning per interval");
    tokio::time::sleep(REPORT_INTERVAL).await;
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[1].contains("refused 7 datagrams or messages in the last 10 s: 7 malformed"));
    // Quiet: no more warnings, and the application never saw an event.
    tokio::time::sleep(REPORT_INTERVAL * 5).await;
    assert_eq!(log.warnings().len(), 2);
    drop(commands);
    driver.await.unwrap().unwrap();
    assert!(events.recv().await.is_none(), "junk raised no event");
}
