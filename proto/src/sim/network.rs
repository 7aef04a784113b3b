//! The modelled network under a [`Simulation`](super::Simulation): subnets with their LAN, WAN
//! latency, uplink bandwidth and NAT; how a datagram travels from one host to another.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use super::nat::{Nat, NatKind};
use crate::Timestamp;

/// One subnet (a LAN behind one router).
#[derive(Clone, Debug)]
pub struct Subnet {
    /// Slots of the nodes in it now.
    pub members: Vec<usize>,
    /// Its NAT (kind [`NatKind::None`] for public addresses).
    pub nat: Nat,
    /// Added to (or, if negative, taken from) the base WAN latency for traffic leaving or
    /// entering this subnet, in microseconds.
    pub wan_offset_us: i64,
    /// Whether its edge firewall drops UDP to and from the WAN.
    pub udp_blocked: bool,
    /// When its uplink and downlink are next free (bandwidth model).
    up_free: Timestamp,
    down_free: Timestamp,
    /// Hosts handed out so far (addresses are never reused).
    pub(super) next_host: usize,
}

impl Subnet {
    pub(super) fn new(id: u16, nat: NatKind, wan_offset_us: i64) -> Self {
        Subnet {
            members: Vec::new(),
            nat: Nat::new(nat, IpAddr::V4(public_ip(id))),
            wan_offset_us,
            udp_blocked: false,
            up_free: Timestamp::ZERO,
            down_free: Timestamp::ZERO,
            next_host: 0,
        }
    }
}

/// The private address of host `i` (from 0) of subnet `s`: `10.s.x.y` for subnets below 256,
/// then `11.(s-256).x.y` and so on; 250 hosts per /24.
pub fn host_addr(s: u16, i: usize) -> SocketAddr {
    let first = 10 + (s >> 8) as u8;
    let ip = Ipv4Addr::new(first, s as u8, (i / 250) as u8, (i % 250) as u8 + 1);
    SocketAddr::from((ip, 4000))
}

/// Which slot listens at each host address: the address is decoded into its subnet and host
/// number and looked up in two short arrays, so sending a datagram does not hash an address
/// into a table of every host (a cache miss per datagram on a large fleet).
#[derive(Default)]
pub(super) struct AddrBook {
    /// By subnet, then host number: the slot, or `NO_SLOT`.
    hosts: Vec<Vec<u32>>,
}

const NO_SLOT: u32 = u32::MAX;

impl AddrBook {
    /// Notes that slot `slot` listens at `host_addr(s, host)`.
    pub(super) fn insert(&mut self, s: u16, host: usize, slot: usize) {
        let s = usize::from(s);
        if self.hosts.len() <= s {
            self.hosts.resize_with(s + 1, Vec::new);
        }
        let hosts = &mut self.hosts[s];
        if hosts.len() <= host {
            hosts.resize(host + 1, NO_SLOT);
        }
        hosts[host] = u32::try_from(slot).expect("fewer than 2^32 slots");
    }

    /// The slot listening at `addr`, if any.
    pub(super) fn get(&self, addr: &SocketAddr) -> Option<usize> {
        let IpAddr::V4(v4) = addr.ip() else { return None };
        let [a, b, c, d] = v4.octets();
        let s = u16::from(a.checked_sub(10)?) << 8 | u16::from(b);
        let host = usize::from(c) * 250 + usize::from(d.checked_sub(1)?);
        // Exactly the address `host_addr` gives (port, last octet in range), nothing else.
        if host_addr(s, host) != *addr {
            return None;
        }
        let slot = *self.hosts.get(usize::from(s))?.get(host)?;
        (slot != NO_SLOT).then_some(slot as usize)
    }
}

/// The public address of subnet `s`'s NAT, in the shared address space 100.64.0.0/10.
pub fn public_ip(s: u16) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, (s >> 8) as u8, s as u8)
}

/// The subnet whose NAT owns public address `ip`, if it is one.
pub(super) fn subnet_of_public(ip: IpAddr) -> Option<u16> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o[0] == 100 && o[1] == 64).then(|| u16::from(o[2]) << 8 | u16::from(o[3]))
        }
        IpAddr::V6(_) => None,
    }
}

/// Latency and bandwidth of the modelled network.
#[derive(Clone, Debug)]
pub struct NetModel {
    /// One-way latency inside a subnet. Default 1 ms.
    pub lan: Duration,
    /// Base one-way latency between subnets and to the master; each subnet adds its own
    /// offset (see [`NetModel::wan_spread`]). Default 20 ms.
    pub wan: Duration,
    /// Subnet offsets are drawn uniformly from ±`wan_spread` when a subnet first appears.
    /// Default 0 (every WAN path takes exactly [`NetModel::wan`]).
    pub wan_spread: Duration,
    /// Each subnet's WAN uplink and downlink, bytes per second; `None` for no limit. Datagrams
    /// queue behind each other on a busy link. Default `None`.
    pub subnet_bandwidth: Option<u64>,
    /// Probability that any datagram is lost. Default 0.
    pub loss: f64,
}

impl Default for NetModel {
    fn default() -> Self {
        NetModel {
            lan: Duration::from_millis(1),
            wan: Duration::from_millis(20),
            wan_spread: Duration::ZERO,
            subnet_bandwidth: None,
            loss: 0.0,
        }
    }
}

impl NetModel {
    fn serialize(&self, len: usize) -> Option<Duration> {
        self.subnet_bandwidth
            .map(|bw| Duration::from_micros((len as u64 + 28) * 1_000_000 / bw.max(1)))
    }

    /// When `len` bytes ready at `t` are through a link that is busy until `free` (then
    /// busy until that time); `t` itself without a bandwidth limit.
    fn queue(&self, t: Timestamp, len: usize, free: &mut Timestamp) -> Timestamp {
        let Some(d) = self.serialize(len) else { return t };
        *free = t.max(*free) + d;
        *free
    }

    /// When a WAN datagram of `len` bytes sent at `now` leaves subnet `from`, queueing behind
    /// the datagrams already on its uplink.
    pub(super) fn uplink(&self, now: Timestamp, len: usize, from: &mut Subnet) -> Timestamp {
        self.queue(now, len, &mut from.up_free)
    }

    /// The WAN's one-way latency between two subnets whose offsets add up to `offsets_us`
    /// (never below half the base latency, the fastest route a datagram takes: see
    /// [`NetModel::lookahead`]).
    pub(super) fn one_way(&self, offsets_us: i64) -> Duration {
        let base = self.wan.as_micros() as i64;
        Duration::from_micros((base + offsets_us).max(base / 2).max(0) as u64)
    }

    /// The shortest time a datagram takes from one subnet to another or to the master.
    pub fn lookahead(&self) -> Duration {
        self.one_way(i64::MIN / 4)
    }

    /// When a WAN datagram of `len` bytes that reached subnet `to` at `arrive` has come
    /// through its downlink.
    pub(super) fn downlink(&self, arrive: Timestamp, len: usize, to: &mut Subnet) -> Timestamp {
        self.queue(arrive, len, &mut to.down_free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_book_finds_exactly_the_hosts_filed() {
        let mut book = AddrBook::default();
        book.insert(1, 0, 7);
        book.insert(1, 251, 8);
        book.insert(300, 3, 9);
        assert_eq!(book.get(&host_addr(1, 0)), Some(7));
        assert_eq!(book.get(&host_addr(1, 251)), Some(8));
        assert_eq!(book.get(&host_addr(300, 3)), Some(9));
        // Hosts never filed, another port, a NAT's public address, IPv6: nobody there.
        assert_eq!(book.get(&host_addr(1, 1)), None);
        assert_eq!(book.get(&host_addr(2, 0)), None);
        let mut other_port = host_addr(1, 0);
        other_port.set_port(4001);
        assert_eq!(book.get(&other_port), None);
        assert_eq!(book.get(&SocketAddr::from((public_ip(1), 4000))), None);
        assert_eq!(book.get(&SocketAddr::from(([10, 1, 0, 0], 4000))), None);
        assert_eq!(book.get(&SocketAddr::from(([10, 1, 0, 251], 4000))), None);
        assert_eq!(book.get(&"[::1]:4000".parse().unwrap()), None);
    }
}
