//! A node's sealed reports to the master, relayed by its LSN, and their batching.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::trust::Certificate;

/// A node's sealed message for the master, travelling hop by hop (node → its LSN → master).
///
/// The envelope is signed by the node and sealed to the master, so the LSN can neither read
/// nor forge it; it only checks that the envelope's sender is its own child.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Report {
    /// This hop's request number, acknowledged with [`Ack`](super::Ack) (or answered with an
    /// error).
    pub seq: u32,
    /// The sealed payload: from the node, to the master.
    pub envelope: crate::secure::SealedEnvelope,
    /// The node's certificate, when the master may not know it yet (its first report, or
    /// after an [`ErrorCode::UNKNOWN_CERTIFICATE`](super::ErrorCode::UNKNOWN_CERTIFICATE)).
    pub certificate: Option<Certificate>,
}

/// Reports an LSN relays for its children, carried in one message so that the master answers
/// a burst of them (every node answering a fleet request) with one [`ReportAcks`]. Each keeps
/// its own `seq`; the master answers a report it refuses with an
/// [`ErrorMessage`](super::ErrorMessage) of that seq.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct ReportBatch {
    /// The reports, at most `overlay::MAX_REPORT_BATCH`.
    pub reports: Vec<Report>,
}

/// The `seq`s of the reports of a [`ReportBatch`] the master took (or had taken already), as
/// runs of consecutive numbers: the LSN numbers a burst of relayed reports one after another,
/// so a fleet request's batch of 50 answers is acknowledged in a few bytes, not 5 per answer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct ReportAcks {
    /// The runs, in any order.
    pub runs: Vec<SeqRun>,
}

/// `count` consecutive `seq`s from `first` (wrapping past `u32::MAX`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct SeqRun {
    /// The run's first `seq`.
    pub first: u32,
    /// How many `seq`s it holds.
    pub count: u16,
}

impl ReportAcks {
    /// The acknowledgement of `seqs`, merged into runs.
    pub fn of(mut seqs: Vec<u32>) -> Self {
        seqs.sort_unstable();
        seqs.dedup();
        let mut runs: Vec<SeqRun> = Vec::new();
        for seq in seqs {
            match runs.last_mut() {
                Some(r)
                    if r.first.wrapping_add(u32::from(r.count)) == seq && r.count < u16::MAX =>
                {
                    r.count += 1;
                }
                _ => runs.push(SeqRun { first: seq, count: 1 }),
            }
        }
        ReportAcks { runs }
    }

    /// The acknowledged `seq`s, at most `limit` of them (a run's count comes from the wire).
    pub fn seqs(&self, limit: usize) -> impl Iterator<Item = u32> + '_ {
        let each = |r: SeqRun| (0..u32::from(r.count)).map(move |i| r.first.wrapping_add(i));
        self.runs.iter().copied().flat_map(each).take(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encoded_len, Message};

    #[test]
    fn acks_merge_consecutive_seqs_into_runs_and_give_them_back() {
        let acks = ReportAcks::of(vec![9, 5, 6, 7, u32::MAX, 0, 6]);
        let runs: Vec<(u32, u16)> = acks.runs.iter().map(|r| (r.first, r.count)).collect();
        // Sorted first, so the wrap from u32::MAX to 0 is two runs (a cost, not an error).
        assert_eq!(runs, [(0, 1), (5, 3), (9, 1), (u32::MAX, 1)]);
        let back: Vec<u32> = acks.seqs(usize::MAX).collect();
        assert_eq!(back, [0, 5, 6, 7, 9, u32::MAX]);
        assert_eq!(acks.seqs(2).count(), 2, "the limit holds");
    }

    #[test]
    fn a_run_from_the_wire_yields_no_more_seqs_than_the_limit() {
        let huge = ReportAcks { runs: vec![SeqRun { first: u32::MAX - 1, count: u16::MAX }; 1000] };
        assert_eq!(huge.seqs(512).count(), 512);
        let wrapped: Vec<u32> =
            ReportAcks { runs: vec![SeqRun { first: u32::MAX, count: 2 }] }.seqs(9).collect();
        assert_eq!(wrapped, [u32::MAX, 0]);
    }

    #[test]
    fn fifty_consecutive_acks_take_a_few_bytes() {
        let message = Message::ReportAcks(Box::new(ReportAcks::of((70_000..70_050).collect())));
        let len = encoded_len(&message);
        // Listed one by one, each seq above 65,535 took 5 bytes: 250 and more.
        assert!(len <= 16, "{len} bytes");
    }
}
