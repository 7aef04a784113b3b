//! How socket errors become [`TransportError`]s.

use std::{io, net::SocketAddr};

use fleetmesh_driver::TransportError;

/// Maps an error from dialing `dst`.
pub(crate) fn connect_error(err: io::Error, dst: SocketAddr) -> TransportError {
    match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::AddrNotAvailable => {
            TransportError::Unreachable(dst)
        }
        _ => send_error(err, dst),
    }
}

/// Maps an error from writing to `dst`.
pub(crate) fn send_error(err: io::Error, dst: SocketAddr) -> TransportError {
    TransportError::from_send(err, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_timed_out_dials_are_unreachable() {
        let dst: SocketAddr = "192.0.2.1:9".parse().unwrap();
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkUnreachable,
            io::ErrorKind::TimedOut,
        ] {
            assert!(
                matches!(connect_error(kind.into(), dst), TransportError::Unreachable(d) if d == dst)
            );
        }
        assert!(matches!(send_error(io::ErrorKind::BrokenPipe.into(), dst), TransportError::Io(_)));
    }
}
