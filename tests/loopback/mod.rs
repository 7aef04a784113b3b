//! What the front-door tests over real UDP on loopback share: a master, a node builder, and
//! waiting for a condition.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::{path::Path, time::Duration};

use fleetmesh::{MasterBuilder, MasterHandle, NodeBuilder};

/// A master from `dir`, listening on 127.0.0.1:`port` (0: any free port).
pub(crate) async fn master(dir: &Path, port: u16) -> MasterHandle {
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    MasterBuilder::new(dir).listen(listen).start().await.unwrap()
}

/// A node from `dir` on a free loopback port, without LAN discovery (several nodes share
/// this host, and so would share its port).
pub(crate) fn node(dir: &Path) -> NodeBuilder {
    NodeBuilder::new(dir).listen("127.0.0.1:0".parse().unwrap()).lan_discovery(false)
}

/// Waits (real time, generously) until `f` holds.
pub(crate) async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
