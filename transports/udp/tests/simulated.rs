//! UdpTransport over turmoil's simulated network: the same code as over real sockets.

use std::{net::SocketAddr, time::Duration};

use fleetmesh_driver::{Transport, TransportError};
use fleetmesh_udp::{UdpTransport, MAX_DATAGRAM_SIZE};

const PORT: u16 = 4433;

fn any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

#[test]
fn hosts_exchange_datagrams() -> turmoil::Result {
    let mut sim = turmoil::Builder::new().rng_seed(7).build();

    sim.host("server", || async {
        let transport = UdpTransport::bind_turmoil(any(PORT)).await?;
        let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
        loop {
            let (len, src) = transport.recv_from(&mut buf).await?;
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..len]);
            transport.send_to(src, &reply).await?;
        }
    });

    sim.client("client", async {
        let transport = UdpTransport::bind_turmoil(any(0)).await?;
        let server = SocketAddr::new(turmoil::lookup("server"), PORT);
        let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
        for i in 0..5u8 {
            transport.send_to(server, &[i]).await?;
            let (len, src) =
                tokio::time::timeout(Duration::from_secs(5), transport.recv_from(&mut buf))
                    .await??;
            assert_eq!(src, server);
            assert_eq!(&buf[..len], &[b'e', b'c', b'h', b'o', b':', i]);
        }

        // Turmoil hosts are IPv4 here, so an IPv6 destination is refused before sending.
        let err = transport.send_to("[::1]:1".parse()?, b"x").await.unwrap_err();
        assert!(matches!(err, TransportError::AddressFamily(_)));
        Ok(())
    });

    sim.run()
}

#[test]
fn partitioned_datagrams_are_lost_then_flow_again() -> turmoil::Result {
    let mut sim = turmoil::Builder::new().rng_seed(7).build();

    sim.host("server", || async {
        let transport = UdpTransport::bind_turmoil(any(PORT)).await?;
        let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
        loop {
            let (len, src) = transport.recv_from(&mut buf).await?;
            transport.send_to(src, &buf[..len]).await?;
        }
    });

    sim.client("client", async {
        let transport = UdpTransport::bind_turmoil(any(0)).await?;
        let server = SocketAddr::new(turmoil::lookup("server"), PORT);
        let mut buf = [0u8; 16];

        turmoil::partition("client", "server");
        transport.send_to(server, b"lost").await?;
        let waited =
            tokio::time::timeout(Duration::from_secs(2), transport.recv_from(&mut buf)).await;
        assert!(waited.is_err(), "nothing crosses a partition");

        turmoil::repair("client", "server");
        transport.send_to(server, b"back").await?;
        let (len, _) =
            tokio::time::timeout(Duration::from_secs(5), transport.recv_from(&mut buf)).await??;
        assert_eq!(&buf[..len], b"back");
        Ok(())
    });

    sim.run()
}
