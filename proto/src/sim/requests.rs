//! The master's requests in a simulation: when each node took each request (from the nodes'
//! own events), and whether any took one twice. With [`Simulation::answer_requests`] on, every
//! node answers at once, so the answers' traffic is part of the run.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use super::Simulation;
use crate::{
    overlay::{fleet::Audience, RequestError, RequestId},
    NodeId, Timestamp,
};

/// What the nodes did with the master's requests.
#[derive(Clone, Debug, Default)]
pub struct RequestStats {
    sent: BTreeMap<RequestId, Timestamp>,
    /// How often each node took each request.
    taken: HashMap<(NodeId, RequestId), u32>,
    /// Per request (sent through [`Simulation::fleet_request`]): from its sending to each
    /// node's first take.
    pub delays: BTreeMap<RequestId, BTreeMap<NodeId, Duration>>,
    /// Takes of a request a node had taken before (handed to the application twice).
    pub duplicated: u64,
}

impl RequestStats {
    pub(super) fn took(&mut self, now: Timestamp, node: &NodeId, id: RequestId) {
        let n = self.taken.entry((*node, id)).or_default();
        *n += 1;
        if *n > 1 {
            self.duplicated += 1;
            return;
        }
        if let Some(sent) = self.sent.get(&id) {
            self.delays.entry(id).or_default().insert(*node, now.saturating_since(*sent));
        }
    }
}

impl Simulation {
    /// Queues a fleet request at the master (see
    /// [`Master::request_fleet`](crate::overlay::Master::request_fleet)) and times each node's
    /// take of it in [`RequestStats::delays`].
    ///
    /// # Panics
    /// If the master is down.
    pub fn fleet_request(
        &mut self,
        audience: Audience,
        kind: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<RequestId, RequestError> {
        let id = self.master_do(|m, now| m.request_fleet(now, audience, kind, body, ttl))?;
        self.stats.requests.sent.insert(id, self.now);
        self.stats.requests.delays.insert(id, BTreeMap::new());
        Ok(id)
    }
}
