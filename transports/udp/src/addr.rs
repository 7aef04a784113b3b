//! Address-family rules, kept apart from the sockets so they can be tested without any.

use std::net::{SocketAddr, SocketAddrV6};

/// The address to hand the socket for a send from `local` to `dst`, or `None` if `local`'s
/// socket cannot reach `dst`'s family.
///
/// A dual-stack socket (an IPv6 wildcard bind on a system that allows it) reaches IPv4
/// destinations through their IPv4-mapped form, which every OS accepts on such sockets.
pub(crate) use fleetmesh_driver::transport::canonical_addr as canonical;

pub(crate) fn outbound(local: SocketAddr, dst: SocketAddr, dual_stack: bool) -> Option<SocketAddr> {
    match (local, dst) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            Some(dst)
        }
        (SocketAddr::V6(l), SocketAddr::V4(d)) if dual_stack && l.ip().is_unspecified() => {
            Some(SocketAddr::V6(SocketAddrV6::new(d.ip().to_ipv6_mapped(), d.port(), 0, 0)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn same_family_passes_through() {
        assert_eq!(outbound(a("127.0.0.1:1"), a("10.0.0.1:2"), false), Some(a("10.0.0.1:2")));
        assert_eq!(outbound(a("[::1]:1"), a("[fd00::1]:2"), true), Some(a("[fd00::1]:2")));
    }

    #[test]
    fn ipv4_socket_cannot_reach_ipv6() {
        assert_eq!(outbound(a("0.0.0.0:1"), a("[::1]:2"), true), None);
    }

    #[test]
    fn only_dual_stack_wildcard_reaches_ipv4_from_ipv6() {
        assert_eq!(outbound(a("[::]:1"), a("127.0.0.1:2"), true), Some(a("[::ffff:127.0.0.1]:2")));
        assert_eq!(outbound(a("[::]:1"), a("127.0.0.1:2"), false), None);
        assert_eq!(outbound(a("[::1]:1"), a("127.0.0.1:2"), true), None);
    }
}
