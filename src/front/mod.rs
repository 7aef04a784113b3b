//! The front door: a running node or master from a data directory and a few settings.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let link = "fleetmesh://203.0.113.5:7946/join?network=…&token=…".parse()?;
//! let mut node = fleetmesh::NodeBuilder::new("/var/lib/fleetmesh").join(link).start().await?;
//! while let Some(event) = node.next_event().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

mod control;
mod data;
mod error;
mod events;
mod handlers;
mod link;
mod machine;
mod master;
mod net;
mod node;
mod tokens;

pub use control::{MasterControl, RequestRefused};
pub use error::StartError;
pub use link::{JoinLink, LinkError, MAX_LINK_ADDRS, MAX_TOKEN_LEN};
pub use master::{default_public_addrs, MasterBuilder, MasterHandle, DEFAULT_MASTER_PORT};
pub use node::{
    NodeBuilder, NodeHandle, SendBulkError, DEFAULT_ENROLL_TIMEOUT, DEFAULT_NODE_LISTEN,
};
pub use tokens::{
    valid_tag, TokenError, TokenOptions, Tokens, MAX_TAGS, MAX_TAG_LEN, MAX_TOKENS,
    MAX_USES_PER_TOKEN,
};
