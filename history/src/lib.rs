//! Host histories (S15): every node keeps compressed time series of its own metrics (CPU,
//! memory, disk, network, and application-defined series), persisted and bounded by retention
//! and size; the master asks for one host's range, downsampled, and LSNs combine their
//! children's answers into fleet-wide aggregates.
//!
//! The store and codec do no networking and read no clock: every sample carries its time.
//!
//! # Layout
//! - [`codec`]: the block codec (delta-of-delta timestamps; XOR or quantised-delta values).
//! - [`store`]: the append-only, checksummed block file, retention and size eviction.
//! - [`query`]: downsampled range queries and the [`aggregate`] combinator (serde types).
//! - [`sampler`]: turns a metrics snapshot into samples; a thin thread loop drives it.
//! - [`host`]: reads this host's metrics with `sysinfo` (the only OS-facing code).
//!
//! # Example
//! ```
//! use fleetmesh_history::{Encoding, Point, Query, Store, StoreConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = Store::open(dir.path().join("h.log"), StoreConfig::default()).unwrap();
//! store.declare("cpu", Encoding::Decimals(1)).unwrap();
//! for i in 0..720 {
//!     store.record("cpu", Point { t: 1_000_000 + i * 10, v: 12.34 }).unwrap();
//! }
//! let q = Query { series: "cpu".into(), from: 1_000_000, to: 1_007_200, bucket_secs: 3600 };
//! let answer = store.query(&q).unwrap();
//! assert_eq!(answer.buckets[0].count, 360);
//! assert_eq!(answer.buckets[1].last, 12.3); // rounded to the declared 0.1
//! assert!((answer.buckets[1].mean - 12.3).abs() < 1e-9);
//! ```

mod bits;
pub mod codec;
mod crc;
mod error;
pub mod host;
pub mod query;
pub mod sampler;
pub mod store;

pub use codec::{decode, encode, Encoding, Point, MAX_BLOCK_POINTS};
pub use error::{DecodeError, QueryError, StoreError};
pub use host::HostReader;
pub use query::{aggregate, Answer, Bucket, Downsampler, Query, MAX_AGGREGATE_INPUTS, MAX_BUCKETS};
pub use sampler::{Metrics, Sampler, SAMPLE_INTERVAL_SECS};
pub use store::{Store, StoreConfig, MAX_SERIES, MAX_SERIES_NAME};
