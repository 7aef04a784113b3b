//! The per-node store: one append-only file of checksummed records, one record per sealed
//! block.
//!
//! Record: `len: u32 LE` (payload bytes) · `crc32: u32 LE` (of the payload) · payload. Payload:
//! `name_len: u8` · name (UTF-8) · block ([`crate::codec`]). A series' points collect in an open
//! block in memory and are sealed (encoded, appended, `fsync`ed) every `block_points` samples.
//! On open, records are read until the first one that is short or fails its checksum; the file
//! is cut there. A torn last write therefore loses that block (and the open blocks in memory),
//! never an earlier one. Eviction (retention, total size) rewrites the kept records to a
//! temporary file and renames it over the store: a crash leaves either the old or the new file.
//!
//! Why a file and not redb: blocks are write-once and evicted oldest-first, which a log does in
//! a few lines with one `fsync` per block, and its size on disk is the payload plus 8 bytes per
//! block; redb's B-tree pages would add several kilobytes of overhead to a 5 MB budget.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::codec::{self, Encoding, Point, MAX_BLOCK_POINTS};
use crate::crc::crc32;
use crate::error::{QueryError, StoreError};
use crate::query::{Answer, Downsampler, Query};

/// Longest series name, bytes.
pub const MAX_SERIES_NAME: usize = 64;
/// Most series one store holds.
pub const MAX_SERIES: usize = 256;
const MAX_RECORD: usize = 1 + MAX_SERIES_NAME + 16 + MAX_BLOCK_POINTS * 24;

/// Limits of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Blocks whose last point is older than this (seconds, before the newest sample) are
    /// evicted. Default 30 days.
    pub retention_secs: i64,
    /// Largest size of the file, bytes; the oldest blocks are evicted beyond it. Default 8 MiB.
    pub max_bytes: u64,
    /// Points per sealed block (≤ [`MAX_BLOCK_POINTS`]). Default 360: one hour at 10 s.
    pub block_points: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { retention_secs: 30 * 86_400, max_bytes: 8 << 20, block_points: 360 }
    }
}

#[derive(Debug)]
struct Sealed {
    series: String,
    first_t: i64,
    last_t: i64,
    /// The whole record, header included, as on disk.
    record: Vec<u8>,
    payload_at: usize,
}

#[derive(Debug, Default)]
struct Series {
    encoding: Option<Encoding>,
    open: Vec<Point>,
    last_t: Option<i64>,
}

/// A node's histories, persisted in one file.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: File,
    config: StoreConfig,
    series: BTreeMap<String, Series>,
    sealed: Vec<Sealed>,
    file_len: u64,
}

impl Store {
    /// Opens (or creates) the store at `path`, recovering every intact block.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let file_len = file.metadata()?.len();
        let config =
            StoreConfig { block_points: config.block_points.clamp(1, MAX_BLOCK_POINTS), ..config };
        // Read record by record, keeping at most `max_bytes` of blocks (plus one): memory is
        // bounded whatever the file holds.
        let mut reader = BufReader::new(&mut file);
        let mut sealed = Vec::new();
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        let (mut at, mut kept, mut dropped) = (0u64, 0u64, false);
        while let Some((block, len)) = read_record(&mut reader) {
            let s = series.entry(block.series.clone()).or_default();
            s.last_t = Some(s.last_t.map_or(block.last_t, |t| t.max(block.last_t)));
            kept += len as u64;
            sealed.push(block);
            at += len as u64;
            while kept > config.max_bytes && !sealed.is_empty() {
                kept -= sealed.remove(0).record.len() as u64;
                dropped = true;
            }
        }
        drop(reader);
        if at < file_len {
            file.set_len(at)?;
            file.sync_data()?;
        }
        let mut store = Self { path, file, config, series, sealed, file_len: at };
        if dropped {
            store.rewrite()?;
        }
        Ok(store)
    }

    /// Declares how a series is compressed (default [`Encoding::Lossless`]).
    pub fn declare(&mut self, name: &str, encoding: Encoding) -> Result<(), StoreError> {
        self.series_mut(name)?.encoding = Some(encoding);
        Ok(())
    }

    /// Records one sample. Samples of a series must come in time order. Values of a series
    /// declared with [`Encoding::Decimals`] are rounded to that precision here.
    pub fn record(&mut self, name: &str, point: Point) -> Result<(), StoreError> {
        let block_points = self.config.block_points;
        let s = self.series_mut(name)?;
        if s.last_t.is_some_and(|t| point.t < t) {
            return Err(StoreError::OutOfOrder(name.to_owned()));
        }
        s.last_t = Some(point.t);
        // Rounded now, so answers from the open block equal those from the sealed one.
        let v = match s.encoding {
            Some(Encoding::Decimals(d)) => codec::round_to(point.v, d).unwrap_or(point.v),
            _ => point.v,
        };
        s.open.push(Point { v, ..point });
        if s.open.len() >= block_points {
            self.seal(name)?;
            self.evict(point.t)?;
        }
        Ok(())
    }

    /// Seals every open block to disk (e.g. before shutdown); later samples start new blocks.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let names: Vec<String> = self.series.keys().cloned().collect();
        for n in names {
            self.seal(&n)?;
        }
        Ok(())
    }

    /// Answers a downsampled range query from sealed and open blocks.
    pub fn query(&self, query: &Query) -> Result<Answer, StoreError> {
        let mut ds = Downsampler::new(query.clone()).map_err(query_error)?;
        for b in &self.sealed {
            if b.series == query.series && b.last_t >= query.from && b.first_t < query.to {
                for p in codec::decode(&b.record[b.payload_at..])? {
                    ds.push(p);
                }
            }
        }
        if let Some(s) = self.series.get(&query.series) {
            s.open.iter().for_each(|p| ds.push(*p));
        }
        Ok(ds.finish())
    }

    /// Size of the file, bytes.
    pub fn file_bytes(&self) -> u64 {
        self.file_len
    }

    /// Names of the series held.
    pub fn series(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }

    /// Number of sealed blocks.
    pub fn sealed_blocks(&self) -> usize {
        self.sealed.len()
    }

    fn series_mut(&mut self, name: &str) -> Result<&mut Series, StoreError> {
        if name.is_empty() || name.len() > MAX_SERIES_NAME {
            return Err(StoreError::SeriesName);
        }
        if !self.series.contains_key(name) && self.series.len() >= MAX_SERIES {
            return Err(StoreError::TooManySeries);
        }
        Ok(self.series.entry(name.to_owned()).or_default())
    }

    fn seal(&mut self, name: &str) -> Result<(), StoreError> {
        let Some(s) = self.series.get_mut(name) else { return Ok(()) };
        if s.open.is_empty() {
            return Ok(());
        }
        let points = std::mem::take(&mut s.open);
        let block = codec::encode(&points, s.encoding.unwrap_or(Encoding::Lossless));
        let mut payload = Vec::with_capacity(1 + name.len() + block.len());
        // Cannot truncate: names are checked ≤ MAX_SERIES_NAME (64) bytes.
        payload.push(name.len() as u8);
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(&block);
        let record = frame(&payload);
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.file_len += record.len() as u64;
        self.sealed.push(Sealed {
            series: name.to_owned(),
            first_t: points[0].t,
            last_t: points[points.len() - 1].t,
            payload_at: 9 + name.len(),
            record,
        });
        Ok(())
    }

    /// Drops blocks beyond retention or size, oldest first, and rewrites the file if any went.
    fn evict(&mut self, now: i64) -> Result<(), StoreError> {
        let horizon = now.saturating_sub(self.config.retention_secs);
        let before = self.sealed.len();
        self.sealed.retain(|b| b.last_t >= horizon);
        let mut total: u64 = self.sealed.iter().map(|b| b.record.len() as u64).sum();
        if total > self.config.max_bytes {
            self.sealed.sort_by_key(|b| b.first_t);
            let mut drop = 0;
            while total > self.config.max_bytes && drop < self.sealed.len() {
                total -= self.sealed[drop].record.len() as u64;
                drop += 1;
            }
            self.sealed.drain(..drop);
        }
        if self.sealed.len() == before {
            return Ok(());
        }
        self.rewrite()
    }

    /// Replaces the file with the kept records (temporary file, then rename).
    fn rewrite(&mut self) -> Result<(), StoreError> {
        let total = self.sealed.iter().map(|b| b.record.len() as u64).sum();
        let tmp = self.path.with_extension("compact");
        let mut f = File::create(&tmp)?;
        for b in &self.sealed {
            f.write_all(&b.record)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().read(true).append(true).open(&self.path)?;
        self.file_len = total;
        Ok(())
    }
}

fn query_error(e: QueryError) -> StoreError {
    StoreError::Query(e)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(8 + payload.len());
    // Cannot truncate: payloads are bounded by MAX_RECORD.
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32(payload).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

/// Reads the next record: the block and the record's length, or `None` if it is short,
/// oversized, fails its checksum or does not decode (where recovery cuts the file).
fn read_record(r: &mut impl Read) -> Option<(Sealed, usize)> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    if len > MAX_RECORD {
        return None;
    }
    let mut b = head.to_vec();
    b.resize(8 + len, 0);
    r.read_exact(&mut b[8..]).ok()?;
    parse_record(&b)
}

/// Parses one whole record in `b`.
fn parse_record(b: &[u8]) -> Option<(Sealed, usize)> {
    let len = b.len().checked_sub(8)?;
    let crc = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    let payload = b.get(8..8 + len)?;
    if crc32(payload) != crc {
        return None;
    }
    let (&nlen, rest) = payload.split_first()?;
    let name = std::str::from_utf8(rest.get(..usize::from(nlen))?).ok()?;
    let points = codec::decode(&rest[usize::from(nlen)..]).ok()?;
    let (first, last) = (points.first()?, points.last()?);
    let sealed = Sealed {
        series: name.to_owned(),
        first_t: first.t,
        last_t: last.t,
        record: b[..8 + len].to_vec(),
        payload_at: 9 + usize::from(nlen),
    };
    Some((sealed, 8 + len))
}
