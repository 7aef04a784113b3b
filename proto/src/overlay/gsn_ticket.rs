//! GSN tickets and the DHT's GSN directory (issue 16; thesis 4.1).
//!
//! The master signs a [`GsnTicket`] for every node it appoints GSN and hands it over with the
//! [`GsnGrant`](crate::wire::GsnGrant). The GSN publishes the ticket, CBOR-encoded, as its
//! record under [`directory_key`] (one record per publisher under that key), so LSNs learn
//! which GSNs exist from the DHT, without asking the master, and while the master is away.
//!
//! A reader takes a record only when the ticket inside verifies under the network key, names
//! the record's publisher, and has not expired ([`read_directory_record`]): anyone may put a
//! record under the directory key, but nobody without the master's key can make one that
//! passes. A ticket lives [`TICKET_TTL`]; the GSN asks for a fresh one (by reporting its NAT
//! class again) when half of it has passed, and a GSN the master stops appointing drops out
//! of the directory within that time.

use std::time::Duration;

use ed25519_dalek::{Signature, Verifier};
use serde::Serialize;

use crate::{
    dht::KeyKind,
    trust::{domain, signed_bytes, NetworkKey},
    wire::{GsnTicket, Record, WireAddr},
    Identity, NodeId,
};

/// How long a ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(6 * 3600);

/// The subject of the one directory every GSN publishes in.
const DIRECTORY: &[u8] = b"directory";

/// The DHT key of the GSN directory.
pub fn directory_key() -> NodeId {
    KeyKind::Gsn.key(DIRECTORY)
}

#[derive(Serialize)]
struct Signed<'a> {
    network: &'a NetworkKey,
    gsn: &'a NodeId,
    addr: &'a WireAddr,
    since: u64,
    confirmed: u32,
    expires: u64,
}

fn signed(network: &NetworkKey, t: &GsnTicket) -> Vec<u8> {
    let body = Signed {
        network,
        gsn: &t.gsn,
        addr: &t.addr,
        since: t.since,
        confirmed: t.confirmed,
        expires: t.expires,
    };
    signed_bytes(domain::GSN_TICKET, &body)
}

/// The master's ticket for `gsn` at `addr`, serving since `since` and confirmed `confirmed`
/// times, valid until `expires` (UNIX seconds).
pub fn sign_ticket(
    master: &Identity,
    network: &NetworkKey,
    gsn: NodeId,
    addr: WireAddr,
    (since, confirmed): (u64, u32),
    expires: u64,
) -> GsnTicket {
    let mut t = GsnTicket { gsn, addr, since, confirmed, expires, signature: [0; 64] };
    t.signature = master.sign(&signed(network, &t)).to_bytes();
    t
}

/// Why a ticket was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The record's value is no ticket.
    #[error("not a GSN ticket")]
    Malformed,
    /// The ticket names another node than the record's publisher (or our own id, for a grant).
    #[error("the ticket names another node")]
    WrongNode,
    /// The ticket's time is up.
    #[error("the ticket has expired")]
    Expired,
    /// The signature is not the master's.
    #[error("the ticket is not signed by the master")]
    BadSignature,
}

/// Checks that `ticket` is the master's, for `gsn`, and valid at `now_secs`.
pub fn verify_ticket(
    network: &NetworkKey,
    ticket: &GsnTicket,
    gsn: &NodeId,
    now_secs: u64,
) -> Result<(), TicketError> {
    if ticket.gsn != *gsn {
        return Err(TicketError::WrongNode);
    }
    if ticket.expires <= now_secs {
        return Err(TicketError::Expired);
    }
    let signature = Signature::from_bytes(&ticket.signature);
    network
        .verifying_key()
        .verify(&signed(network, ticket), &signature)
        .map_err(|_| TicketError::BadSignature)
}

/// The value a GSN publishes under [`directory_key`].
pub fn directory_value(ticket: &GsnTicket) -> Vec<u8> {
    let mut out = Vec::new();
    crate::codec::cbor::write(&mut out, ticket);
    out
}

/// The ticket in a directory record, if it passes [`verify_ticket`] for the record's
/// publisher. The record's own signature was checked by the DHT.
pub fn read_directory_record(
    network: &NetworkKey,
    record: &Record,
    now_secs: u64,
) -> Result<GsnTicket, TicketError> {
    let ticket: GsnTicket =
        crate::codec::cbor::from_slice(&record.value).map_err(|_| TicketError::Malformed)?;
    verify_ticket(network, &ticket, &record.publisher, now_secs)?;
    Ok(ticket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Identity {
        Identity::from_secret_bytes(&[n; 32], &[n; 32])
    }

    fn setup() -> (Identity, NetworkKey, Identity) {
        let master = id(1);
        let network = NetworkKey::new(master.verifying_key());
        (master, network, id(2))
    }

    fn record(publisher: &Identity, value: Vec<u8>) -> Record {
        Record::sign(publisher, directory_key(), value, 1, 10_000)
    }

    #[test]
    fn a_published_ticket_reads_back_until_it_expires() {
        let (master, network, gsn) = setup();
        let addr = WireAddr("192.0.2.7:4000".parse().unwrap());
        let t = sign_ticket(&master, &network, gsn.node_id(), addr, (100, 3), 5_000);
        let r = record(&gsn, directory_value(&t));
        assert_eq!(read_directory_record(&network, &r, 4_999), Ok(t));
        assert_eq!(read_directory_record(&network, &r, 5_000), Err(TicketError::Expired));
    }

    #[test]
    fn forged_or_borrowed_tickets_are_refused() {
        let (master, network, gsn) = setup();
        let addr = WireAddr("192.0.2.7:4000".parse().unwrap());
        // Signed by a node, not the master.
        let forged = sign_ticket(&gsn, &network, gsn.node_id(), addr, (0, 1), 5_000);
        let r = record(&gsn, directory_value(&forged));
        assert_eq!(read_directory_record(&network, &r, 1), Err(TicketError::BadSignature));
        // A real ticket altered (another address) no longer verifies.
        let mut t = sign_ticket(&master, &network, gsn.node_id(), addr, (0, 1), 5_000);
        t.addr = WireAddr("198.51.100.1:4000".parse().unwrap());
        let r = record(&gsn, directory_value(&t));
        assert_eq!(read_directory_record(&network, &r, 1), Err(TicketError::BadSignature));
        // A real ticket republished by another node under its own name.
        let t = sign_ticket(&master, &network, gsn.node_id(), addr, (0, 1), 5_000);
        let other = id(3);
        let r = record(&other, directory_value(&t));
        assert_eq!(read_directory_record(&network, &r, 1), Err(TicketError::WrongNode));
        // Another network's master.
        let stranger = id(4);
        let theirs = NetworkKey::new(stranger.verifying_key());
        let t = sign_ticket(&stranger, &theirs, gsn.node_id(), addr, (0, 1), 5_000);
        let r = record(&gsn, directory_value(&t));
        assert_eq!(read_directory_record(&network, &r, 1), Err(TicketError::BadSignature));
        // Not a ticket at all.
        let r = record(&gsn, b"hello".to_vec());
        assert_eq!(read_directory_record(&network, &r, 1), Err(TicketError::Malformed));
    }
}
