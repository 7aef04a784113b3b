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
//! Scenarios ask the fleet by host name: [`OverlayFleet::lsn_of`], [`present`], [`absent`]
//! (the master's view), [`poll_all`] (the proof: the master reaches every node), with
//! [`isolate`], [`crash`](OverlayFleet::crash), independent [`loss`](OverlayBuilder::loss) or
//! [`burst_loss`](OverlayBuilder::burst_loss) to break things. A driver that panics or fails
//! fails the run ([`RunError::HostFailed`]). The kit's `README.md` has a worked scenario
//! (compiled and run as a doctest).
//!
//! [`present`]: OverlayFleet::present
//! [`absent`]: OverlayFleet::absent
//! [`poll_all`]: OverlayFleet::poll_all
//! [`isolate`]: OverlayFleet::isolate
//!
//! # Layout
//! * `fleet.rs`: [`Fleet`], link-layer endpoints over UDP or TCP.
//! * `overlay/`: [`OverlayFleet`] (`mod.rs`), its [`OverlayBuilder`] (`builder.rs`), the
//!   software its hosts run (`host.rs`), the [`Control`] handles (`handle.rs`), the
//!   questions a scenario asks by host name (`ask.rs`) and the faults the kit's own tests
//!   inject (`fault.rs`).
//! * `error.rs`: [`RunError`], [`CommandError`].
//! * `lan.rs`: [`Lan`], the subnets of an overlay fleet and the test [`LanDiscovery`].
//! * `tap.rs`: [`Tap`], a recording wrapper around a host's transport.
//! * `firewall.rs`: [`Firewall`], a host firewall dropping UDP one way or both.
//! * `loss.rs`: [`Loss`], independent per-datagram loss from a seeded RNG.
//! * `log.rs`: [`EventLog`], every host's events with simulated times.
//! * `seeds.rs`: identities and per-run seeds derived from the fleet's seed.

mod error;
mod firewall;
mod fleet;
mod lan;
mod log;
mod loss;
mod nat;
mod overlay;
mod run;
mod seeds;
mod tap;

pub use error::{CommandError, RunError};
pub use firewall::{Firewall, Firewalled, UdpBlock};
pub use fleet::{Fleet, FleetBuilder, NodeControl, TransportKind, NODE_PORT};
pub use lan::{Lan, LanDiscovery};
pub use log::{EventLog, Recorded};
pub use loss::{Loss, Lossy};
pub use nat::{Bind, Nat, NatKind, FILTER_TIMEOUT, MAX_MAPPINGS};
pub use overlay::{Control, OverlayBuilder, OverlayFleet, PollReport, MASTER_HOST, MASTER_HOST_V6};
pub use tap::{Tap, Tapped};

/// The README's examples, run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
