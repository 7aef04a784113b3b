use std::{fmt, net::SocketAddr, time::Duration};

use crate::{overlay::SubnetKey, NodeId, Timestamp};

/// The master's view of the network: subnets, their LSNs, and each LSN's children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Subnets with at least one LSN, ordered by key.
    pub subnets: Vec<SubnetView>,
    /// Nodes whose LSN went away and that no other LSN has reported yet.
    pub pending: Vec<NodeView>,
}

/// One subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetView {
    /// The master's key for it.
    pub key: SubnetKey,
    /// Its LSNs (normally one), ordered by id.
    pub lsns: Vec<LsnView>,
}

/// One LSN and its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsnView {
    /// The LSN.
    pub id: NodeId,
    /// Its local address (what its subnet reaches it at).
    pub addr: SocketAddr,
    /// When the master last heard from it.
    pub last_seen: Timestamp,
    /// The path (UDP, or TCP after UDP failed) of the master's session with it; `None` while
    /// there is none.
    pub path: Option<crate::Path>,
    /// Its children, ordered by id.
    pub children: Vec<NodeView>,
    /// The NAT class it reported (`None` until it did): its children's too, as they share
    /// its NAT.
    pub nat: Option<crate::wire::NatClass>,
    /// The GSN it measured nearest and the round trip to it (ms), which the master names in
    /// its subnet's introductions; `None` until it chose (`node/gsn_survey.rs`).
    pub gsn: Option<(NodeId, u32)>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The node.
    pub id: NodeId,
    /// Its address as its LSN sees it.
    pub addr: SocketAddr,
    /// The route its presence took: the node, then each forwarder.
    pub route: Vec<NodeId>,
    /// When its presence was last confirmed.
    pub last_seen: Timestamp,
    /// Round-trip time of the last message or poll, if any.
    pub rtt: Option<Duration>,
    /// The NAT class it reported itself (`None`: it did not; children take their LSN's,
    /// see [`LsnView::nat`], and check on their own only when configured to).
    pub nat: Option<crate::wire::NatClass>,
}

impl Topology {
    /// Every present node: LSNs and children.
    pub fn present(&self) -> usize {
        self.subnets.iter().flat_map(|s| &s.lsns).map(|l| 1 + l.children.len()).sum()
    }

    /// Number of LSNs.
    pub fn lsn_count(&self) -> usize {
        self.subnets.iter().map(|s| s.lsns.len()).sum()
    }

    /// The LSN `node` is present under (itself for an LSN).
    pub fn lsn_of(&self, node: &NodeId) -> Option<NodeId> {
        self.subnets.iter().flat_map(|s| &s.lsns).find_map(|l| {
            (l.id == *node || l.children.iter().any(|c| c.id == *node)).then_some(l.id)
        })
    }

    /// A stable text rendering with nodes named by `name` (times left out, so two runs of the
    /// same scenario render the same).
    pub fn render(&self, name: impl Fn(&NodeId) -> String) -> String {
        let mut out = String::new();
        let mut subnets: Vec<(Vec<String>, &SubnetView)> = self
            .subnets
            .iter()
            .map(|s| (s.lsns.iter().map(|l| name(&l.id)).collect(), s))
            .collect();
        subnets.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, subnet) in subnets {
            out.push_str("subnet\n");
            let mut lsns: Vec<&LsnView> = subnet.lsns.iter().collect();
            lsns.sort_by_key(|l| name(&l.id));
            for lsn in lsns {
                // The path is shown only when it is not the usual UDP.
                let over = match lsn.path {
                    Some(crate::Path::Tcp) => " over tcp",
                    _ => "",
                };
                out.push_str(&format!("  lsn {} at {}{over}\n", name(&lsn.id), lsn.addr));
                let mut children: Vec<&NodeView> = lsn.children.iter().collect();
                children.sort_by_key(|c| name(&c.id));
                for c in children {
                    let route: Vec<String> = c.route.iter().map(&name).collect();
                    out.push_str(&format!(
                        "    {} at {} via {}\n",
                        name(&c.id),
                        c.addr,
                        route.join(" > ")
                    ));
                }
            }
        }
        for p in &self.pending {
            out.push_str(&format!("pending {}\n", name(&p.id)));
        }
        out
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(|id| id.to_string()[..8].to_owned()))
    }
}
