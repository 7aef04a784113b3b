//! Range queries with downsampling, and the aggregate combinator for fleet-wide answers.
//!
//! A [`Query`] asks for one series over `[from, to)` in buckets of `bucket_secs`; the
//! [`Answer`] holds, per bucket, min/max/mean/last and how many samples and hosts it covers.
//! [`aggregate`] combines answers on the same bucket grid (several hosts, or several LSNs'
//! aggregates) into one: min of minima, max of maxima, host-weighted mean of means and of lasts.
//! It is associative, so an LSN combines its children and the master combines the LSNs.

use serde::{Deserialize, Serialize};

use crate::codec::Point;
use crate::error::QueryError;

/// Most buckets an answer may hold (bounds the message that carries it: ≈ 40 B per bucket).
pub const MAX_BUCKETS: u64 = 4096;
/// Most answers [`aggregate`] combines in one call.
pub const MAX_AGGREGATE_INPUTS: usize = 100_000;

/// A downsampled range query over one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Series name, e.g. `"cpu"`.
    pub series: String,
    /// Start of the range, seconds (inclusive).
    pub from: i64,
    /// End of the range, seconds (exclusive).
    pub to: i64,
    /// Width of a bucket, seconds.
    pub bucket_secs: u32,
}

impl Query {
    /// Number of buckets, checked against [`MAX_BUCKETS`].
    pub fn buckets(&self) -> Result<u64, QueryError> {
        if self.to <= self.from || self.bucket_secs == 0 {
            return Err(QueryError::EmptyRange);
        }
        let span = (i128::from(self.to) - i128::from(self.from)) as u128;
        let n = span.div_ceil(u128::from(self.bucket_secs));
        if n > u128::from(MAX_BUCKETS) {
            return Err(QueryError::TooManyBuckets(u64::try_from(n).unwrap_or(u64::MAX)));
        }
        Ok(n as u64)
    }
}

/// Summary of the samples in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Samples covered (0: no data; the other fields are then meaningless zeros).
    pub count: u32,
    /// Hosts that contributed at least one sample.
    pub hosts: u32,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value (for aggregates, the mean over hosts of each host's mean).
    pub mean: f64,
    /// Last value (for aggregates, the mean over hosts of each host's last value).
    pub last: f64,
}

impl Bucket {
    const EMPTY: Bucket = Bucket { count: 0, hosts: 0, min: 0.0, max: 0.0, mean: 0.0, last: 0.0 };

    fn merge(&mut self, o: &Bucket) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        let (a, b) = (f64::from(self.hosts), f64::from(o.hosts));
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.mean = (self.mean * a + o.mean * b) / (a + b);
        self.last = (self.last * a + o.last * b) / (a + b);
        self.count = self.count.saturating_add(o.count);
        self.hosts = self.hosts.saturating_add(o.hosts);
    }
}

/// The answer to a [`Query`]: one [`Bucket`] per `bucket_secs` from `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The query answered.
    pub query: Query,
    /// Buckets in time order; bucket `i` covers `[from + i·w, from + (i+1)·w)`.
    pub buckets: Vec<Bucket>,
}

/// Folds points into buckets with memory bounded by the bucket count.
#[derive(Debug)]
pub struct Downsampler {
    query: Query,
    buckets: Vec<Bucket>,
    sums: Vec<f64>,
}

impl Downsampler {
    /// Starts a downsampled answer to `query`.
    pub fn new(query: Query) -> Result<Self, QueryError> {
        let n = query.buckets()? as usize;
        Ok(Self { query, buckets: vec![Bucket::EMPTY; n], sums: vec![0.0; n] })
    }

    /// Adds one point; points outside the range are ignored. Points of a bucket should come
    /// in time order for `last` to be the latest.
    pub fn push(&mut self, p: Point) {
        if p.t < self.query.from || p.t >= self.query.to {
            return;
        }
        let i = ((i128::from(p.t) - i128::from(self.query.from))
            / i128::from(self.query.bucket_secs)) as usize;
        let b = &mut self.buckets[i];
        if b.count == 0 {
            *b = Bucket { count: 0, hosts: 1, min: p.v, max: p.v, mean: 0.0, last: p.v };
        }
        b.count += 1;
        b.min = b.min.min(p.v);
        b.max = b.max.max(p.v);
        b.last = p.v;
        self.sums[i] += p.v;
    }

    /// The answer.
    pub fn finish(mut self) -> Answer {
        for (b, s) in self.buckets.iter_mut().zip(self.sums) {
            if b.count > 0 {
                b.mean = s / f64::from(b.count);
            }
        }
        Answer { query: self.query, buckets: self.buckets }
    }
}

/// Combines answers on one bucket grid (same `from`, `to`, `bucket_secs`) into one: the
/// fleet-wide view of the hosts (or aggregates) given. The series name of the first is kept.
pub fn aggregate(answers: &[Answer]) -> Result<Answer, QueryError> {
    if answers.len() > MAX_AGGREGATE_INPUTS {
        return Err(QueryError::TooManyInputs);
    }
    let first = answers.first().ok_or(QueryError::EmptyRange)?;
    let mut out = first.clone();
    let n = first.query.buckets()? as usize;
    if out.buckets.len() != n {
        return Err(QueryError::GridMismatch);
    }
    for a in &answers[1..] {
        let q = &a.query;
        let same = q.from == first.query.from
            && q.to == first.query.to
            && q.bucket_secs == first.query.bucket_secs;
        if !same || a.buckets.len() != n {
            return Err(QueryError::GridMismatch);
        }
        for (o, b) in out.buckets.iter_mut().zip(&a.buckets) {
            o.merge(b);
        }
    }
    Ok(out)
}
