//! Whole-network test harnesses for fleetmesh, for this repository's tests and for users' CI.
//!
//! [`Fleet`] builds a [turmoil](https://docs.rs/turmoil) simulation of named hosts, each
//! running a real fleetmesh [`Endpoint`](fleetmesh::Endpoint) under the real async driver over
//! the real UDP or TCP transport (turmoil's sockets). Time is simulated and the run is seeded:
//! the same seed gives the same run. Hosts can be partitioned, crashed and restarted; a
//! restarted node keeps its identity and certificate, as it would from its key file.
//!
//! ```
//! use std::time::Duration;
//! use fleetmesh::{wire::{AppMessage, Message}, Event};
//! use fleetmesh_testkit::{Fleet, TransportKind};
//!
//! let mut fleet = Fleet::builder(7).transport(TransportKind::Udp).build();
//! fleet.add_node("a");
//! let b = fleet.add_node("b");
//! let (ctl, to_b) = (fleet.control("a"), fleet.addr("b"));
//! fleet.client("driver", async move {
//!     ctl.send_to(to_b, Message::App(AppMessage { id: 1, data: b"hi".to_vec() })).await?;
//!     Ok(())
//! });
//! fleet.run_for(Duration::from_secs(2)).unwrap();
//! assert!(fleet.events("b").iter().any(|e| matches!(e, Event::Message { .. })));
//! # let _ = b;
//! ```

mod fleet;
mod log;

pub use fleet::{Fleet, FleetBuilder, NodeControl, TransportKind, NODE_PORT};
pub use log::{EventLog, Recorded};
