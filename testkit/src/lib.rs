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
//!
//! [`OverlayFleet`] does the same for the overlay: a [`Master`](fleetmesh::overlay::Master)
//! and [`Node`](fleetmesh::overlay::Node)s in numbered subnets (hosts named by IP address, so
//! the master sees real subnets), LAN and WAN latencies, and a test discovery that finds a
//! subnet's LSNs as a LAN broadcast would.
//!
//! ```
//! use std::time::Duration;
//! use fleetmesh_testkit::OverlayFleet;
//!
//! let mut fleet = OverlayFleet::builder(7).build();
//! fleet.add_subnet(1, 3);
//! fleet.run_until(Duration::from_secs(30), |f| f.all_present()).unwrap();
//! assert_eq!(fleet.lsns_in(1).len(), 1);
//! assert_eq!(fleet.topology().unwrap().present(), 3);
//! ```
//!
//! # Layout
//! * `fleet.rs`: [`Fleet`], link-layer endpoints over UDP or TCP.
//! * `overlay/`: [`OverlayFleet`] (`mod.rs`), its [`OverlayBuilder`] (`builder.rs`), the
//!   software its hosts run (`host.rs`) and the [`Control`] handles (`handle.rs`).
//! * `lan.rs`: [`Lan`], the subnets of an overlay fleet and the test [`LanDiscovery`].
//! * `tap.rs`: [`Tap`], a recording wrapper around a host's transport.
//! * `firewall.rs`: [`Firewall`], a host firewall dropping UDP one way or both.
//! * `log.rs`: [`EventLog`], every host's events with simulated times.
//! * `seeds.rs`: identities and per-run seeds derived from the fleet's seed.

mod firewall;
mod fleet;
mod lan;
mod log;
mod overlay;
mod run;
mod seeds;
mod tap;

pub use firewall::{Firewall, Firewalled, UdpBlock};
pub use fleet::{Fleet, FleetBuilder, NodeControl, TransportKind, NODE_PORT};
pub use lan::{Lan, LanDiscovery};
pub use log::{EventLog, Recorded};
pub use overlay::{Control, OverlayBuilder, OverlayFleet, MASTER_HOST, MASTER_HOST_V6};
pub use tap::{Tap, Tapped};
