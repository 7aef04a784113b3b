//! How socket errors become [`TransportError`]s.

use std::{io, net::SocketAddr};

use fleetmesh::TransportError;

/// Maps an error from sending to `dst`.
pub(crate) fn send_error(err: io::Error, dst: SocketAddr) -> TransportError {
    match err.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => TransportError::Unreachable(dst),
        _ => TransportError::Io(err),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_kinds_name_the_destination() {
        let dst: SocketAddr = "192.0.2.1:9".parse().unwrap();
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkUnreachable,
        ] {
            assert!(
                matches!(send_error(kind.into(), dst), TransportError::Unreachable(d) if d == dst)
            );
        }
        assert!(matches!(
            send_error(io::ErrorKind::PermissionDenied.into(), dst),
            TransportError::Io(_)
        ));
    }
}
