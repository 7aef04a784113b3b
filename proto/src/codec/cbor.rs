//! CBOR helpers: one place that owns how serde types become bytes.

use serde::{de::DeserializeOwned, Serialize};

use super::WireError;

/// Appends the CBOR encoding of `value` to `out`.
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing into a Vec cannot fail with an I/O error, and every type we encode has only
    // CBOR-representable fields, so an error here is a programming bug, not bad input.
    ciborium::into_writer(value, out)
        .expect("CBOR encoding into a Vec is infallible for wire types");
}

/// The CBOR encoding of `value`.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value);
    out
}

/// Decodes one CBOR value that must fill `bytes` exactly.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let mut reader = bytes;
    let value = ciborium::from_reader(&mut reader).map_err(|e| WireError::Malformed(short(&e)))?;
    if !reader.is_empty() {
        return Err(WireError::TrailingBytes(reader.len()));
    }
    Ok(value)
}

fn short<E: std::fmt::Display>(e: &E) -> String {
    let mut s = e.to_string();
    s.truncate(120);
    s
}
