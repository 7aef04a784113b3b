//! The registry as the outside sees it: the topology and one node's whereabouts.

use std::{collections::BTreeMap, net::SocketAddr};

use super::{NodeRecord, Registry};
use crate::{
    overlay::{
        master::topology::{LsnView, NodeView, SubnetView, Topology},
        SubnetKey,
    },
    NodeId, Timestamp,
};

impl Registry {
    pub(in crate::overlay::master) fn topology(&self) -> Topology {
        let mut subnets: BTreeMap<SubnetKey, Vec<LsnView>> = BTreeMap::new();
        let view = |id: &NodeId, r: &NodeRecord| NodeView {
            id: *id,
            addr: r.addr,
            route: r.route.clone(),
            last_seen: r.last_seen,
            rtt: r.rtt,
            nat: None,
        };
        for (id, lsn) in &self.lsns {
            let children = self
                .records_under(id)
                .filter(|(cid, r)| *cid != id && r.pending.is_none())
                .map(|(cid, r)| view(cid, r))
                .collect();
            let me = self.nodes.get(id).map(|r| view(id, r));
            subnets.entry(lsn.subnet).or_default().push(LsnView {
                id: *id,
                addr: lsn.contact.addr.0,
                last_seen: me.as_ref().map_or(Timestamp::ZERO, |m| m.last_seen),
                path: None,
                children,
                nat: None,
                gsn: None,
            });
        }
        let pending = self
            .nodes
            .iter()
            .filter(|(_, r)| r.pending.is_some())
            .map(|(id, r)| view(id, r))
            .collect();
        Topology {
            subnets: subnets.into_iter().map(|(key, lsns)| SubnetView { key, lsns }).collect(),
            pending,
        }
    }

    /// Where `node` is: its address and its LSN's subnet (for the durable node registry).
    pub(in crate::overlay::master) fn whereabouts(
        &self,
        node: &NodeId,
    ) -> Option<(SocketAddr, Option<SubnetKey>)> {
        let rec = self.nodes.get(node)?;
        Some((rec.addr, self.lsns.get(&rec.lsn).map(|l| l.subnet)))
    }
}
