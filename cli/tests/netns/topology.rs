//! An "internet" and LANs behind NAT routers, built in a [`Lab`]'s namespaces.
//!
//! ```text
//!                  internet ns: server 10.200.0.1 (on lo), forwards between its links
//!                 /  10.201.1.1                 \  10.201.2.1
//!   router-a ns: wan 10.201.1.2                router-b ns: wan 10.201.2.2
//!     MASQUERADE out of wan                      MASQUERADE --random-fully
//!                                                (or plain, UDP dropped: MasqueradeNoUdp)
//!     br0 192.168.1.1/24                         br0 192.168.2.1/24
//!     |       |       |                          |       |       |
//!   a0 .10  a1 .11  a2 .12  (host namespaces)  b0 .10  b1 .11  b2 .12
//! ```
//!
//! Each LAN host is its own namespace (its own address, its own ports, as separate devices
//! are), attached to a bridge in its router's namespace. The internet has no route to the
//! private ranges: a LAN host is reachable from outside only through its router's NAT, as
//! behind a home router. The internet forwards between routers, so two LANs reach each
//! other's public (NAT) addresses.

use std::net::Ipv4Addr;

use super::{Lab, LabError};

/// The internet's server address (on the internet namespace's loopback, so one address
/// reaches it from every router).
pub(crate) const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

/// How a router rewrites its LAN's outgoing traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nat {
    /// `iptables -j MASQUERADE`: keeps a flow's source port when it is free.
    Masquerade,
    /// `-j MASQUERADE --random-fully`: a random public port per flow.
    MasqueradeRandomFully,
    /// `-j MASQUERADE` behind a firewall that drops UDP between the LAN and the internet
    /// both ways: the hosts reach out over TCP only.
    #[allow(dead_code)] // reach.rs uses it; nat.rs, which builds this module too, does not.
    MasqueradeNoUdp,
}

/// The public side: a namespace holding [`SERVER`].
#[derive(Debug)]
pub(crate) struct Internet {
    /// The namespace.
    pub(crate) ns: String,
    /// How many LANs hang from it (the next LAN's number).
    lans: u8,
}

/// One host of a LAN.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// Its namespace.
    pub(crate) ns: String,
    /// Its address on the LAN.
    pub(crate) addr: Ipv4Addr,
}

/// A LAN behind a NAT router.
#[derive(Debug)]
pub(crate) struct Lan {
    /// A short name: `a`, `b`, …
    pub(crate) name: String,
    /// The router's namespace.
    pub(crate) router: String,
    /// What the router does to outgoing traffic.
    pub(crate) nat: Nat,
    /// The router's public address: what the internet sees the LAN's hosts as.
    pub(crate) public_addr: Ipv4Addr,
    /// Its hosts.
    pub(crate) hosts: Vec<Host>,
}

impl std::fmt::Display for Lan {
    /// `LAN a: hosts 192.168.1.10 192.168.1.11 behind 10.201.1.2 (Masquerade)`, for reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.addr.to_string()).collect();
        let (name, public, nat) = (&self.name, self.public_addr, self.nat);
        write!(f, "LAN {name}: hosts {} behind {public} ({nat:?})", hosts.join(" "))
    }
}

impl Internet {
    /// Creates the internet namespace with [`SERVER`] on its loopback.
    pub(crate) fn new(lab: &mut Lab) -> Result<Internet, LabError> {
        let ns = lab.namespace("internet")?;
        lab.ip(&ns, ["addr", "add", &format!("{SERVER}/32"), "dev", "lo"])?;
        // Packets between two routers cross the internet.
        lab.sysctl(&ns, "net.ipv4.ip_forward", "1")?;
        Ok(Internet { ns, lans: 0 })
    }

    /// Puts another public address, 10.200.0.`n` (n ≥ 2), on the internet namespace's
    /// loopback: a second server (a GSN) beside [`SERVER`].
    #[allow(dead_code)] // reach.rs uses it; nat.rs, which builds this module too, does not.
    pub(crate) fn add_server(&self, lab: &mut Lab, n: u8) -> Result<Ipv4Addr, LabError> {
        let addr = Ipv4Addr::new(10, 200, 0, n);
        lab.ip(&self.ns, ["addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
        Ok(addr)
    }

    /// Adds LAN number n (1, 2, …; named `a`, `b`, …): a router at 10.201.n.2 doing `nat` for
    /// 192.168.n.0/24, with `hosts` hosts at 192.168.n.10, .11, …
    pub(crate) fn add_lan(
        &mut self,
        lab: &mut Lab,
        nat: Nat,
        hosts: usize,
    ) -> Result<Lan, LabError> {
        self.lans += 1;
        let n = self.lans;
        let name = char::from(b'a' + n - 1).to_string();
        let router = lab.namespace(&format!("router-{name}"))?;
        let uplink = format!("lan-{name}");
        lab.veth(&self.ns, &uplink, &router, "wan")?;
        lab.ip(&self.ns, ["addr", "add", &format!("10.201.{n}.1/24"), "dev", &uplink])?;
        let public_addr = Ipv4Addr::new(10, 201, n, 2);
        lab.ip(&router, ["addr", "add", &format!("{public_addr}/24"), "dev", "wan"])?;
        lab.ip(&router, ["route", "add", "default", "via", &format!("10.201.{n}.1")])?;

        lab.ip(&router, ["link", "add", "br0", "type", "bridge"])?;
        lab.ip(&router, ["addr", "add", &format!("192.168.{n}.1/24"), "dev", "br0"])?;
        lab.ip(&router, ["link", "set", "br0", "up"])?;
        lab.sysctl(&router, "net.ipv4.ip_forward", "1")?;
        let mut rule = vec!["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"];
        if nat == Nat::MasqueradeRandomFully {
            rule.push("--random-fully");
        }
        lab.exec(&router, "iptables", rule)?;
        if nat == Nat::MasqueradeNoUdp {
            // Routed traffic only (`-i`/`-o wan`): the LAN's own UDP, bridged, stays.
            for dir in ["-i", "-o"] {
                let rule = ["-A", "FORWARD", dir, "wan", "-p", "udp", "-j", "DROP"];
                lab.exec(&router, "iptables", rule)?;
            }
        }

        let mut lan = Lan { name: name.clone(), router, nat, public_addr, hosts: Vec::new() };
        for i in 0..hosts {
            let ns = lab.namespace(&format!("{name}{i}"))?;
            let port = format!("port{i}");
            lab.veth(&ns, "eth0", &lan.router, &port)?;
            lab.ip(&lan.router, ["link", "set", &port, "master", "br0"])?;
            let addr = Ipv4Addr::new(192, 168, n, 10 + i as u8);
            lab.ip(&ns, ["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            lab.ip(&ns, ["route", "add", "default", "via", &format!("192.168.{n}.1")])?;
            lan.hosts.push(Host { ns, addr });
        }
        Ok(lan)
    }
}
