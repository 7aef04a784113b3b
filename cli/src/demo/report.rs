//! The demo's output: the topology as text or JSON, and the report the run ends with.

use std::net::SocketAddr;

use fleetmesh::overlay::{
    master::{LsnView, NodeView, SubnetView},
    Topology,
};
use serde_json::{json, Value};

use super::fleet::{short, subnet_of, Names};

/// Subnets ordered by their number (127.0.N.0/24), LSNs and children by address.
fn ordered(topology: &Topology) -> Vec<(Option<u8>, Vec<&LsnView>)> {
    let mut subnets: Vec<(Option<u8>, Vec<&LsnView>)> = topology
        .subnets
        .iter()
        .map(|s: &SubnetView| {
            let mut lsns: Vec<&LsnView> = s.lsns.iter().collect();
            lsns.sort_by_key(|l| l.addr);
            (lsns.first().and_then(|l| subnet_of(l.addr)), lsns)
        })
        .collect();
    subnets.sort_by_key(|(n, _)| *n);
    subnets
}

fn children(lsn: &LsnView) -> Vec<&NodeView> {
    let mut children: Vec<&NodeView> = lsn.children.iter().collect();
    children.sort_by_key(|c| c.addr);
    children
}

fn prefix(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => {
            let o = v4.ip().octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        SocketAddr::V6(v6) => format!("{}/64", v6.ip()),
    }
}

/// The topology as indented text, one line per node.
pub(crate) fn render(topology: &Topology, names: &Names) -> String {
    let mut out = String::new();
    for (number, lsns) in ordered(topology) {
        let nodes: usize = lsns.iter().map(|l| 1 + l.children.len()).sum();
        let label = number.map_or_else(|| "?".to_owned(), |n| n.to_string());
        let range = lsns.first().map(|l| prefix(l.addr)).unwrap_or_default();
        out.push_str(&format!("  subnet {label} ({range}): {nodes} nodes\n"));
        for lsn in lsns {
            let (name, id) = (names.name(&lsn.id), short(&lsn.id));
            out.push_str(&format!("    LSN {name:<7} {id}  {}\n", lsn.addr));
            for child in children(lsn) {
                let (name, id) = (names.name(&child.id), short(&child.id));
                out.push_str(&format!("        {name:<7} {id}  {}\n", child.addr));
            }
        }
    }
    if !topology.pending.is_empty() {
        let pending: Vec<String> = topology.pending.iter().map(|p| names.name(&p.id)).collect();
        out.push_str(&format!("  pending (no LSN reports them yet): {}\n", pending.join(", ")));
    }
    out
}

fn node_json(node: &NodeView, names: &Names) -> Value {
    json!({
        "name": names.name(&node.id),
        "id": node.id.to_string(),
        "addr": node.addr.to_string(),
        "route": node.route.iter().map(|id| names.name(id)).collect::<Vec<_>>(),
    })
}

/// The topology as nested objects: subnets, their LSNs, and each LSN's children.
pub(crate) fn topology_json(topology: &Topology, names: &Names) -> Value {
    let subnets: Vec<Value> = ordered(topology)
        .into_iter()
        .map(|(number, lsns)| {
            json!({
                "subnet": number,
                "prefix": lsns.first().map(|l| prefix(l.addr)),
                "lsns": lsns.iter().map(|lsn| json!({
                    "name": names.name(&lsn.id),
                    "id": lsn.id.to_string(),
                    "addr": lsn.addr.to_string(),
                    "children": children(lsn).into_iter().map(|c| node_json(c, names)).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let pending: Vec<Value> = topology.pending.iter().map(|p| node_json(p, names)).collect();
    json!({ "subnets": subnets, "pending": pending })
}
