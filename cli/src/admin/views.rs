//! The JSON shapes the admin API answers with (schemas in `docs/openapi.json`).

use std::collections::{HashMap, HashSet};

use fleetmesh::{
    overlay::{KnownNode, Topology},
    wire::NatClass,
    NodeId,
};
use serde::Serialize;

/// Hex of a subnet key's bytes (the registry's and the topology's keys agree).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One node as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeJson {
    /// Its id.
    pub(crate) id: String,
    /// Whether it is present now.
    pub(crate) present: bool,
    /// Whether it is an LSN now.
    pub(crate) is_lsn: bool,
    /// Its LSN while present.
    pub(crate) lsn: Option<String>,
    /// Its subnet key (hex), present or last known.
    pub(crate) subnet: Option<String>,
    /// Its address, present or last known.
    pub(crate) addr: Option<String>,
    /// The route of its presence (node first, then each forwarder) while present.
    pub(crate) route: Vec<String>,
    /// Round-trip time of its last message or poll, milliseconds.
    pub(crate) rtt_ms: Option<f64>,
    /// The NAT class it reported (e.g. "endpoint-independent mapping, open inbound"), while
    /// present and once it has reported one.
    pub(crate) nat: Option<String>,
    /// Whether the master appointed it a Global Super Node (a relay for NATed peers).
    pub(crate) gsn: bool,
    /// The GSN its LSN measured nearest, through which its relayed sessions run, while
    /// present and once its LSN chose one.
    pub(crate) relay_gsn: Option<String>,
    /// The round trip its LSN measured to that GSN, milliseconds.
    pub(crate) relay_gsn_rtt_ms: Option<u32>,
    /// Tags from the token that admitted it.
    pub(crate) tags: Vec<String>,
    /// First seen present, UNIX seconds.
    pub(crate) first_seen: Option<u64>,
    /// Last became present or left, UNIX seconds.
    pub(crate) last_seen: Option<u64>,
}

/// The answer of `GET /api/nodes`.
#[derive(Debug, Serialize)]
pub(crate) struct NodeList {
    /// Nodes known in all, before filtering.
    pub(crate) total: usize,
    /// Nodes in this answer.
    pub(crate) count: usize,
    /// Those nodes, by id.
    pub(crate) nodes: Vec<NodeJson>,
}

/// Where a present node sits in the topology.
struct Placed {
    lsn: NodeId,
    subnet: String,
    addr: String,
    route: Vec<String>,
    rtt_ms: Option<f64>,
    nat: Option<String>,
    relay: Option<(NodeId, u32)>,
}

/// Every node, present or known, joined from the topology and the registry; `gsns` are the
/// appointed Global Super Nodes.
pub(crate) fn all_nodes(
    topology: &Topology,
    known: &[(NodeId, KnownNode)],
    gsns: &[NodeId],
) -> Vec<NodeJson> {
    // At most MAX_GSNS, but looked up once per node of a large fleet.
    let gsns: HashSet<&NodeId> = gsns.iter().collect();
    let mut placed: HashMap<NodeId, Placed> = HashMap::new();
    for subnet in &topology.subnets {
        let key = hex(subnet.key.as_bytes());
        for lsn in &subnet.lsns {
            placed.insert(
                lsn.id,
                Placed {
                    lsn: lsn.id,
                    subnet: key.clone(),
                    addr: lsn.addr.to_string(),
                    route: vec![lsn.id.to_string()],
                    rtt_ms: None,
                    nat: lsn.nat.map(|c| c.to_string()),
                    relay: lsn.gsn,
                },
            );
            for child in &lsn.children {
                placed.insert(
                    child.id,
                    Placed {
                        lsn: lsn.id,
                        subnet: key.clone(),
                        addr: child.addr.to_string(),
                        route: child.route.iter().map(ToString::to_string).collect(),
                        rtt_ms: child.rtt.map(|d| d.as_secs_f64() * 1000.0),
                        nat: child_nat(child.nat, lsn.nat),
                        relay: lsn.gsn,
                    },
                );
            }
        }
    }
    let mut out = Vec::with_capacity(known.len().max(placed.len()));
    for (id, k) in known {
        let p = placed.remove(id);
        out.push(node_json(*id, p, Some(k), gsns.contains(id)));
    }
    for (id, p) in placed {
        out.push(node_json(id, Some(p), None, gsns.contains(&id)));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn node_json(id: NodeId, placed: Option<Placed>, known: Option<&KnownNode>, gsn: bool) -> NodeJson {
    let known_subnet = known.filter(|k| !k.subnet.is_empty()).map(|k| hex(&k.subnet));
    let known_addr =
        known.and_then(|k| k.last_addr).map(|a| std::net::SocketAddr::from(a).to_string());
    match placed {
        Some(p) => NodeJson {
            id: id.to_string(),
            present: true,
            is_lsn: p.lsn == id,
            lsn: Some(p.lsn.to_string()),
            subnet: Some(p.subnet),
            addr: Some(p.addr),
            route: p.route,
            rtt_ms: p.rtt_ms,
            nat: p.nat,
            gsn,
            relay_gsn: p.relay.map(|(g, _)| g.to_string()),
            relay_gsn_rtt_ms: p.relay.map(|(_, rtt)| rtt),
            tags: known.map(|k| k.tags.clone()).unwrap_or_default(),
            first_seen: known.map(|k| k.first_seen),
            last_seen: known.map(|k| k.last_seen),
        },
        None => NodeJson {
            id: id.to_string(),
            present: false,
            is_lsn: false,
            lsn: None,
            subnet: known_subnet,
            addr: known_addr,
            route: Vec::new(),
            rtt_ms: None,
            nat: None,
            gsn,
            relay_gsn: None,
            relay_gsn_rtt_ms: None,
            tags: known.map(|k| k.tags.clone()).unwrap_or_default(),
            first_seen: known.map(|k| k.first_seen),
            last_seen: known.map(|k| k.last_seen),
        },
    }
}

/// The topology as JSON: subnets, their LSNs with path and children, and pending nodes.
pub(crate) fn topology_json(topology: &Topology) -> serde_json::Value {
    let subnets: Vec<_> = topology
        .subnets
        .iter()
        .map(|s| {
            let lsns: Vec<_> = s
                .lsns
                .iter()
                .map(|l| {
                    let children: Vec<_> = l
                        .children
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "id": c.id.to_string(),
                                "addr": c.addr.to_string(),
                                "nat": child_nat(c.nat, l.nat),
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "id": l.id.to_string(),
                        "addr": l.addr.to_string(),
                        "path": l.path.map(|p| format!("{p:?}").to_lowercase()),
                        "nat": l.nat.map(|n| n.to_string()),
                        "gsn": l.gsn.map(|(g, rtt_ms)| {
                            serde_json::json!({ "id": g.to_string(), "rtt_ms": rtt_ms })
                        }),
                        "children": children,
                    })
                })
                .collect();
            serde_json::json!({ "key": hex(s.key.as_bytes()), "lsns": lsns })
        })
        .collect();
    let pending: Vec<_> = topology.pending.iter().map(|n| n.id.to_string()).collect();
    serde_json::json!({ "subnets": subnets, "pending": pending })
}

/// A child's NAT class for display: its own if it checked, else its LSN's (they share a NAT;
/// `proto/src/overlay/node/nat.rs`), marked as such.
fn child_nat(own: Option<NatClass>, lsn: Option<NatClass>) -> Option<String> {
    own.map(|c| c.to_string()).or_else(|| lsn.map(|c| format!("{c} (its LSN's)")))
}
