//! Fleet-wide aggregates: one query whose answers are combined on the way to the master.
//!
//! The master sends one signed [`FleetQuery`] per LSN of the audience (as for a fleet request,
//! `fleet.rs`); the LSN asks each of its children, combines their answers with its own as
//! they arrive, and after the query's window (or once all answered) sends the master a single
//! [`QueryAnswer`](crate::wire::QueryAnswer) saying over how many hosts it is; the master
//! combines the LSNs' answers into one. The master's traffic grows with the number of LSNs,
//! and so does its work: it never sees a node's own answer.
//!
//! Combining is the application's: a [`Combiner`] registered for the query's kind at every
//! node that may be an LSN, and at the master. It must be associative (the LSNs combine in
//! whatever order answers arrive, the master combines the LSNs' results), for example a
//! metric history's min, max, host-weighted mean and count per bucket.
//!
//! Trust: the query is signed by the master, so neither an LSN nor anyone else can forge or
//! alter it; a child answers only its LSN, an LSN only the master. An LSN can misstate its
//! children's combination (as it could drop their answers): an aggregate is only as honest as
//! the LSNs, which the master chose. A query whose answers must not be read by the LSN goes to
//! each node as a request instead. Queries are reads: a node hands one to its handler once,
//! but a repeat after a restart is handed again, and nothing is kept across a master restart.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use ed25519_dalek::Signature;
use serde::Serialize;

use crate::{
    trust::{domain, signed_bytes, NetworkKey},
    wire::{FleetQuery, Request},
    Identity, NodeId,
};

/// Combines two answers of one kind into one (associative; the same function at the LSNs and
/// the master): `Err` says why they could not be combined.
pub type Combiner = Arc<dyn Fn(&[u8], &[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// The longest window a query may give the LSNs to collect their children's answers.
pub const MAX_QUERY_WINDOW: Duration = Duration::from_secs(60);
/// Most queries open at the master, and held by an LSN or a node, at once.
pub const MAX_QUERIES: usize = 16;

/// The combiners by query kind.
#[derive(Clone, Default)]
pub(crate) struct Combiners(HashMap<String, Combiner>);

impl Combiners {
    pub(crate) fn set(&mut self, kind: &str, combiner: Combiner) {
        self.0.insert(kind.to_owned(), combiner);
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Combiner> {
        self.0.get(kind)
    }
}

impl fmt::Debug for Combiners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A running combination of answers: the answers so far, over how many hosts, and the ones
/// that failed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Partial {
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) hosts: u32,
    pub(crate) failed: u32,
    /// Why the last failure failed, for the application.
    pub(crate) why: Option<String>,
}

impl Partial {
    /// Adds an answer over `hosts` hosts (a failed one when `ok` is false).
    pub(crate) fn add(&mut self, combiner: &Combiner, ok: bool, body: &[u8], hosts: u32) {
        if !ok {
            self.failed += hosts.max(1);
            self.why = Some(String::from_utf8_lossy(body).into_owned());
            return;
        }
        let combined = match self.body.as_deref() {
            None => Ok(body.to_vec()),
            Some(acc) => combiner(acc, body),
        };
        match combined {
            Ok(b) => {
                self.body = Some(b);
                self.hosts += hosts;
            }
            Err(why) => {
                self.failed += hosts.max(1);
                self.why = Some(why);
            }
        }
    }
}

#[derive(Serialize)]
struct Signed<'a> {
    network: &'a NetworkKey,
    request: &'a Request,
    nodes: &'a Option<Vec<NodeId>>,
    window_ms: u32,
}

/// The master's signature over a query for `nodes` with a window of `window_ms`.
pub(crate) fn sign(
    master: &Identity,
    network: &NetworkKey,
    request: &Request,
    nodes: &Option<Vec<NodeId>>,
    window_ms: u32,
) -> [u8; 64] {
    let signed = Signed { network, request, nodes, window_ms };
    master.sign(&signed_bytes(domain::FLEET_QUERY, &signed)).to_bytes()
}

/// Whether `q` carries the master's signature.
pub(crate) fn verify(network: &NetworkKey, q: &FleetQuery) -> bool {
    let signed = Signed { network, request: &q.request, nodes: &q.nodes, window_ms: q.window_ms };
    let bytes = signed_bytes(domain::FLEET_QUERY, &signed);
    let signature = Signature::from_bytes(&q.signature);
    network.verifying_key().verify_strict(&bytes, &signature).is_ok()
}
