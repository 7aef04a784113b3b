//! The receive loop of one socket: answers queries while we are the LSN, and hands announces
//! to the discovery round in progress.

use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::{proto::Datagram, Shared};

pub(crate) async fn run(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut buf = [0u8; 512];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP errors surface here on some systems; they end nothing. Pause so a
                // persistent error does not spin.
                tracing::trace!(error = %e, "lan discovery: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let datagram = match Datagram::decode(&buf[..n]) {
            Ok(d) => d,
            Err(e) => {
                tracing::trace!(%src, error = %e, "lan discovery: datagram dropped");
                continue;
            }
        };
        let reply = {
            let state = shared.lock();
            match datagram {
                Datagram::Query { network, nonce } if network == shared.cfg.network => state
                    .announce
                    .map(|addr| Datagram::Announce { network, nonce, id: shared.cfg.node, addr }),
                Datagram::Announce { network, nonce, id, addr }
                    if network == shared.cfg.network && id != shared.cfg.node =>
                {
                    if let Some((_, tx)) = state.round.as_ref().filter(|(n, _)| *n == nonce) {
                        // The round may have just ended: a closed channel is fine.
                        let _ = tx.send((id, addr));
                    }
                    None
                }
                _ => None,
            }
        };
        if let Some(reply) = reply {
            if let Err(e) = socket.send_to(&reply.encode(), src).await {
                tracing::debug!(%src, error = %e, "lan discovery: answer not sent");
            }
        }
    }
}
