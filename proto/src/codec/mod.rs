//! The codec under every encoded type: how serde values become CBOR bytes and back, and the
//! error for bytes that do not decode.
//!
//! It depends on nothing else in the crate, so [`wire`](crate::wire), [`trust`](crate::trust),
//! [`secure`](crate::secure) and [`identity`](crate::identity) all build on it without importing
//! each other.

pub(crate) mod cbor;
mod error;

pub use error::WireError;
