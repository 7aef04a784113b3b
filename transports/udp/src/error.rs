//! How socket errors become [`TransportError`]s.

use std::{io, net::SocketAddr};

use fleetmesh_driver::TransportError;

/// Maps an error from sending to `dst`.
pub(crate) fn send_error(err: io::Error, dst: SocketAddr) -> TransportError {
    TransportError::from_send(err, dst)
}

/// Whether a receive error is a late ICMP report about an earlier send, which says nothing
/// about the socket's health and must not stop the receive loop.
pub(crate) fn is_stale_icmp(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
