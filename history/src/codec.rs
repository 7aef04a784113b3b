//! The block codec: Gorilla-style compression of one series' points (Pelkonen et al., "Gorilla:
//! A Fast, Scalable, In-Memory Time Series Database", VLDB 2015, section 4.1), written from the
//! paper's description.
//!
//! Layout of a block (integers little-endian):
//!
//! | bytes | field |
//! |-------|-------|
//! | 1 | format: 1 = lossless XOR floats, 2 = quantised decimals |
//! | 1 | decimals (`i8`), format 2 only |
//! | 2 | point count `n` (≤ [`MAX_BLOCK_POINTS`]) |
//! | 8 | first timestamp (`i64`, seconds), if `n > 0` |
//! | … | bit stream, padded with zero bits to a whole byte |
//!
//! Timestamps: delta-of-delta, with the paper's variable-length buckets (`0` for an unchanged
//! interval: one bit per sample at a steady 10 s). Values, format 1: the paper's XOR scheme,
//! bit-exact for every `f64` including NaN payloads and infinities. Values, format 2: the
//! application declares a precision of `10^-decimals`; each value is rounded to it and the
//! integer differences are written in variable-length buckets. Metrics such as "CPU % to 0.1"
//! compress to a few bits per sample this way, where XOR spends 20–50 bits on noise digits. A
//! block whose values cannot all be quantised (NaN, infinities, out of range) is written in
//! format 1 instead, so nothing is ever silently lost beyond the declared rounding.

use serde::{Deserialize, Serialize};

use crate::bits::{BitReader, BitWriter};
use crate::error::DecodeError;

/// Most points a block may hold; decoders refuse larger counts (bounded memory).
pub const MAX_BLOCK_POINTS: usize = 4096;

const FORMAT_XOR: u8 = 1;
const FORMAT_QUANTISED: u8 = 2;
/// Largest magnitude of a quantised integer (keeps `q as f64` exact).
const MAX_QUANTISED: f64 = (1u64 << 53) as f64;

/// One sample: a time in seconds (Unix epoch) and a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub t: i64,
    /// The sampled value.
    pub v: f64,
}

/// How a series' values are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// Bit-exact XOR compression of arbitrary `f64`.
    Lossless,
    /// Values rounded to a multiple of `10^-decimals` (negative decimals round to tens,
    /// thousands, …), then delta-coded. Decimals outside -18..=18 are clamped.
    Decimals(i8),
}

/// Encodes `points` (at most [`MAX_BLOCK_POINTS`]; the store never gives more) into one block.
///
/// # Panics
/// If `points.len() > MAX_BLOCK_POINTS`: a caller bug, not input from the wire.
pub fn encode(points: &[Point], encoding: Encoding) -> Vec<u8> {
    assert!(points.len() <= MAX_BLOCK_POINTS, "block too large");
    let quantised = match encoding {
        Encoding::Lossless => None,
        Encoding::Decimals(d) => {
            let d = d.clamp(-18, 18);
            points.iter().map(|p| quantise(p.v, d)).collect::<Option<Vec<i64>>>().map(|q| (d, q))
        }
    };
    let mut out = Vec::with_capacity(16 + points.len());
    match &quantised {
        None => out.push(FORMAT_XOR),
        Some((d, _)) => {
            out.push(FORMAT_QUANTISED);
            out.push(*d as u8);
        }
    }
    // Cannot truncate: asserted ≤ MAX_BLOCK_POINTS above.
    out.extend_from_slice(&(points.len() as u16).to_le_bytes());
    let Some(first) = points.first() else {
        return out;
    };
    out.extend_from_slice(&first.t.to_le_bytes());
    let mut w = BitWriter::new();
    write_timestamps(&mut w, points);
    match quantised {
        None => write_xor(&mut w, points),
        Some((_, q)) => write_quantised(&mut w, &q),
    }
    out.extend(w.into_bytes());
    out
}

/// Decodes a block written by [`encode`]. Never panics; refuses truncated, oversized or
/// trailing input.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, DecodeError> {
    let (&format, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
    let (decimals, rest) = match format {
        FORMAT_XOR => (None, rest),
        FORMAT_QUANTISED => {
            let (&d, rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
            (Some(d as i8), rest)
        }
        other => return Err(DecodeError::UnknownFormat(other)),
    };
    if decimals.is_some_and(|d| !(-18..=18).contains(&d)) {
        return Err(DecodeError::UnknownFormat(format));
    }
    let n = u16::from_le_bytes(take::<2>(rest)?) as usize;
    let rest = &rest[2..];
    if n > MAX_BLOCK_POINTS {
        return Err(DecodeError::TooManyPoints(n as u32));
    }
    if n == 0 {
        return if rest.is_empty() { Ok(Vec::new()) } else { Err(DecodeError::Trailing) };
    }
    let t0 = i64::from_le_bytes(take::<8>(rest)?);
    let stream = &rest[8..];
    let mut r = BitReader::new(stream);
    let times = read_timestamps(&mut r, t0, n)?;
    let values = match decimals {
        None => read_xor(&mut r, n)?,
        Some(d) => read_quantised(&mut r, n, d)?,
    };
    if r.bits_read().div_ceil(8) != stream.len() {
        return Err(DecodeError::Trailing);
    }
    Ok(times.into_iter().zip(values).map(|(t, v)| Point { t, v }).collect())
}

/// Rounds `v` to `decimals`, as the decoder will return it.
pub fn round_to(v: f64, decimals: i8) -> Option<f64> {
    let d = decimals.clamp(-18, 18);
    quantise(v, d).map(|q| dequantise(q, d))
}

fn take<const N: usize>(b: &[u8]) -> Result<[u8; N], DecodeError> {
    b.get(..N).and_then(|s| s.try_into().ok()).ok_or(DecodeError::Truncated)
}

fn quantise(v: f64, d: i8) -> Option<i64> {
    let scaled = if d >= 0 { v * 10f64.powi(d.into()) } else { v / 10f64.powi((-d).into()) };
    let q = scaled.round();
    (q.is_finite() && q.abs() <= MAX_QUANTISED).then_some(q as i64)
}

fn dequantise(q: i64, d: i8) -> f64 {
    if d >= 0 {
        q as f64 / 10f64.powi(d.into())
    } else {
        q as f64 * 10f64.powi((-d).into())
    }
}

/// Signed variable-length buckets: (prefix bits, prefix length, payload bits).
const TIME_BUCKETS: [(u64, u32, u32); 4] =
    [(0b10, 2, 7), (0b110, 3, 9), (0b1110, 4, 12), (0b1111, 4, 64)];
const VALUE_BUCKETS: [(u64, u32, u32); 5] =
    [(0b10, 2, 4), (0b110, 3, 7), (0b1110, 4, 12), (0b11110, 5, 20), (0b11111, 5, 64)];

fn write_signed(w: &mut BitWriter, v: i64, buckets: &[(u64, u32, u32)]) {
    if v == 0 {
        w.bit(false);
        return;
    }
    for &(prefix, plen, bits) in buckets {
        let fits = bits == 64 || (-(1i64 << (bits - 1))..(1i64 << (bits - 1))).contains(&v);
        if fits {
            w.write(prefix, plen);
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            w.write(v as u64 & mask, bits);
            return;
        }
    }
}

fn read_signed(r: &mut BitReader<'_>, buckets: &[(u64, u32, u32)]) -> Result<i64, DecodeError> {
    // Bucket k (0-based) is k + 1 ones then a zero; the last bucket is all ones, no zero.
    let mut ones = 0;
    while ones < buckets.len() && r.bit()? {
        ones += 1;
    }
    if ones == 0 {
        return Ok(0);
    }
    let (_, _, bits) = buckets[ones - 1];
    let raw = r.read(bits)?;
    Ok(if bits == 64 { raw as i64 } else { ((raw << (64 - bits)) as i64) >> (64 - bits) })
}

fn write_timestamps(w: &mut BitWriter, points: &[Point]) {
    let (mut prev, mut delta) = (points[0].t, 0i64);
    for p in &points[1..] {
        let d = p.t.wrapping_sub(prev);
        write_signed(w, d.wrapping_sub(delta), &TIME_BUCKETS);
        (prev, delta) = (p.t, d);
    }
}

fn read_timestamps(r: &mut BitReader<'_>, t0: i64, n: usize) -> Result<Vec<i64>, DecodeError> {
    let mut out = Vec::with_capacity(n);
    out.push(t0);
    let (mut prev, mut delta) = (t0, 0i64);
    for _ in 1..n {
        delta = delta.wrapping_add(read_signed(r, &TIME_BUCKETS)?);
        prev = prev.wrapping_add(delta);
        out.push(prev);
    }
    Ok(out)
}

fn write_xor(w: &mut BitWriter, points: &[Point]) {
    let mut prev = points[0].v.to_bits();
    w.write(prev, 64);
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for p in &points[1..] {
        let cur = p.v.to_bits();
        let x = cur ^ prev;
        prev = cur;
        if x == 0 {
            w.bit(false);
            continue;
        }
        w.bit(true);
        let (l, t) = (x.leading_zeros().min(31), x.trailing_zeros());
        if lead != u32::MAX && l >= lead && t >= trail {
            w.bit(false);
            w.write(x >> trail, 64 - lead - trail);
        } else {
            let len = 64 - l - t;
            w.bit(true);
            w.write(l.into(), 5);
            w.write((len - 1).into(), 6);
            w.write(x >> t, len);
            (lead, trail) = (l, t);
        }
    }
}

fn read_xor(r: &mut BitReader<'_>, n: usize) -> Result<Vec<f64>, DecodeError> {
    let mut out = Vec::with_capacity(n);
    let mut prev = r.read(64)?;
    out.push(f64::from_bits(prev));
    let (mut lead, mut trail) = (None::<u32>, 0u32);
    for _ in 1..n {
        if r.bit()? {
            if r.bit()? {
                let l = r.read(5)? as u32;
                let len = r.read(6)? as u32 + 1;
                if l + len > 64 {
                    return Err(DecodeError::UnknownFormat(FORMAT_XOR));
                }
                (lead, trail) = (Some(l), 64 - l - len);
            }
            let l = lead.ok_or(DecodeError::UnknownFormat(FORMAT_XOR))?;
            prev ^= r.read(64 - l - trail)? << trail;
        }
        out.push(f64::from_bits(prev));
    }
    Ok(out)
}

fn write_quantised(w: &mut BitWriter, q: &[i64]) {
    w.write(q[0] as u64, 64);
    for pair in q.windows(2) {
        write_signed(w, pair[1].wrapping_sub(pair[0]), &VALUE_BUCKETS);
    }
}

fn read_quantised(r: &mut BitReader<'_>, n: usize, d: i8) -> Result<Vec<f64>, DecodeError> {
    let mut q = r.read(64)? as i64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            q = q.wrapping_add(read_signed(r, &VALUE_BUCKETS)?);
        }
        if (q as f64).abs() > MAX_QUANTISED {
            return Err(DecodeError::ValueRange);
        }
        out.push(dequantise(q, d));
    }
    Ok(out)
}
