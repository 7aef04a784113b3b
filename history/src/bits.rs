//! Bit-level writer and reader for the codec; the reader never reads past its buffer.

use crate::error::DecodeError;

/// Appends bits, most significant first, to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used: u8,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `v` (n ≤ 64).
    pub(crate) fn write(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        for i in (0..n).rev() {
            let bit = (v >> i) & 1;
            if self.used == 0 {
                self.bytes.push(0);
            }
            if bit == 1 {
                // Cannot be empty: a byte was pushed above when `used` was 0.
                let last = self.bytes.last_mut().expect("a byte is open");
                *last |= 0x80 >> self.used;
            }
            self.used = (self.used + 1) % 8;
        }
    }

    /// Writes one bit.
    pub(crate) fn bit(&mut self, b: bool) {
        self.write(u64::from(b), 1);
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads bits written by [`BitWriter`].
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads `n` bits (n ≤ 64) as the low bits of the result.
    pub(crate) fn read(&mut self, n: u32) -> Result<u64, DecodeError> {
        if self.pos + n as usize > self.bytes.len() * 8 {
            return Err(DecodeError::Truncated);
        }
        let mut v = 0u64;
        for _ in 0..n {
            let b = (self.bytes[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u64::from(b);
            self.pos += 1;
        }
        Ok(v)
    }

    pub(crate) fn bit(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read(1)? == 1)
    }

    /// Number of bits consumed so far.
    pub(crate) fn bits_read(&self) -> usize {
        self.pos
    }
}
