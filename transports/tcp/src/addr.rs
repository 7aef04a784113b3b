//! Address-family rules, kept apart from the sockets so they can be tested without any.

use std::net::{IpAddr, SocketAddr};

/// Whether a transport listening on `local` may exchange datagrams with `dst`.
///
/// Replies come back to the address the peer learns from our connection, so a dialer must be
/// reachable in `dst`'s family: the same family, or an IPv6 wildcard listener on a dual-stack
/// system, which also accepts IPv4 connections.
pub(crate) use fleetmesh_driver::transport::canonical_addr as canonical;

pub(crate) fn compatible(local: SocketAddr, dst: SocketAddr, dual_stack: bool) -> bool {
    local.is_ipv4() == dst.is_ipv4()
        || (dual_stack && local.is_ipv6() && local.ip().is_unspecified())
}

/// The source IP to dial `dst` from: the listener's own IP when it is specific and of `dst`'s
/// family, so that the IP the acceptor observes is the one we listen on.
pub(crate) fn dial_source(local: SocketAddr, dst: SocketAddr) -> Option<IpAddr> {
    (!local.ip().is_unspecified() && local.is_ipv4() == dst.is_ipv4()).then_some(local.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_must_match_unless_dual_stack_wildcard() {
        assert!(compatible(a("127.0.0.1:1"), a("10.0.0.1:1"), true));
        assert!(compatible(a("[::1]:1"), a("[::2]:1"), false));
        assert!(!compatible(a("0.0.0.0:1"), a("[::1]:1"), true));
        assert!(!compatible(a("[::1]:1"), a("127.0.0.1:1"), true));
        assert!(compatible(a("[::]:1"), a("127.0.0.1:1"), true));
        assert!(!compatible(a("[::]:1"), a("127.0.0.1:1"), false));
    }

    #[test]
    fn dials_from_specific_listen_ip_only() {
        assert_eq!(dial_source(a("127.0.0.1:1"), a("127.0.0.1:2")), Some(a("127.0.0.1:0").ip()));
        assert_eq!(dial_source(a("0.0.0.0:1"), a("127.0.0.1:2")), None);
        assert_eq!(dial_source(a("[::]:1"), a("127.0.0.1:2")), None);
    }
}
