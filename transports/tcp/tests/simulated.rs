//! TcpTransport over turmoil's simulated network: the same code as over real sockets, with
//! simulated time for the idle timeout, partitions and restarts.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use fleetmesh_driver::{Transport, TransportError};
use fleetmesh_tcp::{TcpConfig, TcpTransport, MAX_DATAGRAM_SIZE};
use tokio::time::timeout;

const SERVER_PORT: u16 = 4433;
const CLIENT_PORT: u16 = 5000;

fn any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

fn server_addr() -> SocketAddr {
    SocketAddr::new(turmoil::lookup("server"), SERVER_PORT)
}

/// Echoes every datagram back to its source, forever.
async fn echo_server() -> turmoil::Result {
    let transport = TcpTransport::bind_turmoil(any(SERVER_PORT)).await?;
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    loop {
        let (len, src) = transport.recv_from(&mut buf).await?;
        transport.send_to(src, &buf[..len]).await?;
    }
}

async fn echo(transport: &TcpTransport, payload: &[u8]) -> turmoil::Result {
    transport.send_to(server_addr(), payload).await?;
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    let (len, src) = timeout(Duration::from_secs(5), transport.recv_from(&mut buf)).await??;
    assert_eq!((&buf[..len], src), (payload, server_addr()));
    Ok(())
}

#[test]
fn hosts_exchange_datagrams_over_one_connection() -> turmoil::Result {
    let mut sim = turmoil::Builder::new().rng_seed(7).build();
    sim.host("server", echo_server);
    sim.client("client", async {
        let transport = TcpTransport::bind_turmoil(any(CLIENT_PORT)).await?;
        for i in 0..5u8 {
            echo(&transport, &[i; 3]).await?;
        }
        let stats = transport.stats();
        assert_eq!((stats.dialed, stats.accepted, stats.open), (1, 0, 1));
        Ok(())
    });
    sim.run()
}

#[test]
fn idle_connections_close_after_default_timeout() -> turmoil::Result {
    let mut sim =
        turmoil::Builder::new().rng_seed(7).simulation_duration(Duration::from_secs(300)).build();

    sim.client("server", async {
        let transport = TcpTransport::bind_turmoil(any(SERVER_PORT)).await?;
        assert_eq!(transport.config().idle_timeout(), Duration::from_secs(60));
        let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
        let (len, src) = transport.recv_from(&mut buf).await?;
        transport.send_to(src, &buf[..len]).await?;
        assert_eq!(transport.stats().open, 1);

        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(transport.stats().open, 0, "idle connection still open");

        // The client redials; answering it must not need a connection of our own.
        let (len, src) = transport.recv_from(&mut buf).await?;
        transport.send_to(src, &buf[..len]).await?;
        let stats = transport.stats();
        assert_eq!((stats.dialed, stats.accepted), (0, 2));
        // Stay up until the client has its reply.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    });

    sim.client("client", async {
        let transport = TcpTransport::bind_turmoil(any(CLIENT_PORT)).await?;
        echo(&transport, b"first").await?;
        tokio::time::sleep(Duration::from_secs(62)).await;
        assert_eq!(transport.stats().open, 0, "idle connection still open");
        echo(&transport, b"second").await?;
        assert_eq!(transport.stats().dialed, 2);
        Ok(())
    });

    sim.run()
}

#[test]
fn reconnects_after_server_restart() -> turmoil::Result {
    let mut sim =
        turmoil::Builder::new().rng_seed(7).simulation_duration(Duration::from_secs(120)).build();
    sim.host("server", echo_server);

    // 0: starting, 1: first echo done, 2: server bounced.
    let phase = Arc::new(AtomicU8::new(0));
    let client_phase = phase.clone();
    sim.client("client", async move {
        let transport = TcpTransport::bind_turmoil(any(CLIENT_PORT)).await?;
        echo(&transport, b"before").await?;
        client_phase.store(1, Ordering::SeqCst);
        while client_phase.load(Ordering::SeqCst) != 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Each send must succeed (redialing as needed); a datagram written into the dead
        // connection before the reset arrives may be lost, so retry until the echo comes.
        let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
        loop {
            transport.send_to(server_addr(), b"after").await?;
            if let Ok(received) =
                timeout(Duration::from_secs(1), transport.recv_from(&mut buf)).await
            {
                let (len, src) = received?;
                assert_eq!((&buf[..len], src), (&b"after"[..], server_addr()));
                break;
            }
        }
        assert!(transport.stats().dialed >= 2);
        Ok(())
    });

    while phase.load(Ordering::SeqCst) != 1 {
        sim.step()?;
    }
    sim.bounce("server");
    phase.store(2, Ordering::SeqCst);
    sim.run()
}

#[test]
fn partitioned_dial_times_out_as_unreachable() -> turmoil::Result {
    let mut sim =
        turmoil::Builder::new().rng_seed(7).simulation_duration(Duration::from_secs(60)).build();
    sim.host("server", echo_server);
    sim.client("client", async {
        let config = TcpConfig::default().with_connect_timeout(Duration::from_secs(3));
        let transport = TcpTransport::bind_turmoil_with_config(any(CLIENT_PORT), config).await?;

        turmoil::partition("client", "server");
        let err = transport.send_to(server_addr(), b"x").await.unwrap_err();
        assert!(matches!(err, TransportError::Unreachable(dst) if dst == server_addr()), "{err:?}");

        turmoil::repair("client", "server");
        echo(&transport, b"healed").await
    });
    sim.run()
}
