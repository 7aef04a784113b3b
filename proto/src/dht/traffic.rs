//! [`DhtTraffic`]: what a [`Dht`](super::Dht) service sent, split by why it sent it.
//!
//! # Classes
//!
//! Every message the service hands its owner ([`Dht::poll_message`](super::Dht::poll_message))
//! is counted once, in exactly one class, when it is queued:
//!
//! | class | messages |
//! |---|---|
//! | **query** | the lookup requests (`KadFindNode`, `KadFindValue`) and `KadStore`s of a query the application started: [`Dht::put`](super::Dht::put), [`get`](super::Dht::get), [`get_all`](super::Dht::get_all), [`get_from`](super::Dht::get_from), [`find_node`](super::Dht::find_node); including the cache copy a get leaves at the closest node that lacked the value |
//! | **maintenance** | what keeps the table and the records healthy without anyone asking: liveness pings (`KadPing`), the bootstrap and post-restore self-lookups, idle-bucket refresh lookups, republishing (the find_node lookup, the `KadRenew`s, and the `KadStore`s re-storing a held record where a peer lacks it), and the join transfer (`KadStore`s handing held records to a node that joined) |
//! | **answers** | replies to other nodes' requests (`KadPong`, `KadNodes`, `KadValue`, `KadStored`, `KadRenewed`, and `Error` refusing a `KadStore` or `KadRenew`) |
//!
//! Answers are a class of their own because the answering node cannot tell whether the
//! request was part of someone's query or someone's maintenance (requests carry no such
//! mark). Summed over a whole fleet, `answers` pairs with the other two classes' requests; in
//! a fleet where the application starts no queries every answer is maintenance, so the
//! maintenance cost of the DHT per node is `maintenance + answers`.
//!
//! # Upkeep by cause, LAN and WAN
//!
//! Besides the classes, the service breaks its upkeep down so its cost can be traced:
//!
//! - [`DhtTraffic::causes`]: what each kind of maintenance cost *the node that ran it*: its
//!   requests plus the answers they brought back (an answer is charged to the cause that asked
//!   for it, which the answering node cannot know). Summed over a fleet this is the whole
//!   maintenance upkeep, both directions.
//! - [`DhtTraffic::maintenance_lan`] and [`DhtTraffic::answer_lan`]: the part of the
//!   maintenance and answer classes sent to the node's own local network (see
//!   [`Dht::set_local_network`](super::Dht::set_local_network)); the rest crossed the WAN.
//! - [`DhtTraffic::dials`]: sessions the node had to open to send a DHT message (each a Noise
//!   handshake on the wire), counted by the owner that holds the endpoint.
//!
//! # Bytes
//!
//! Bytes are the encoded frame length ([`wire::encoded_len`](crate::wire::encoded_len):
//! 2-byte header plus the CBOR body). They do **not** include the 29-byte sealing overhead the
//! endpoint adds to every data packet ([`secure::DATA_OVERHEAD`](crate::secure::DATA_OVERHEAD)),
//! UDP/IP headers, or the handshake of a session the endpoint opens to reach a peer it had no
//! session with; use [`DhtTraffic::sealed_bytes`] for the first. Counters only grow (they
//! saturate rather than wrap).

use crate::wire::{encoded_len, Message};

/// Messages and bytes the DHT service sent, by class (see the [module docs](self)).
///
/// ```
/// use fleetmesh_proto::dht::DhtTraffic;
///
/// let t = DhtTraffic {
///     query_msgs: 10,
///     query_bytes: 900,
///     maintenance_msgs: 4,
///     maintenance_bytes: 300,
///     answer_msgs: 6,
///     answer_bytes: 1200,
///     ..Default::default()
/// };
/// assert_eq!(t.msgs(), 20);
/// assert_eq!(t.bytes(), 2400);
/// assert_eq!(t.sealed_bytes(), 2400 + 20 * 29);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhtTraffic {
    /// Messages sent for queries the application started.
    pub query_msgs: u64,
    /// Their encoded bytes.
    pub query_bytes: u64,
    /// Messages sent for table and record upkeep (pings, refresh and self-lookups,
    /// republishing, join transfer).
    pub maintenance_msgs: u64,
    /// Their encoded bytes.
    pub maintenance_bytes: u64,
    /// Replies to other nodes' requests.
    pub answer_msgs: u64,
    /// Their encoded bytes.
    pub answer_bytes: u64,
    /// Of the maintenance class, what went to the local network.
    pub maintenance_lan: Tally,
    /// Of the answers, what went to the local network.
    pub answer_lan: Tally,
    /// Maintenance by cause, requests and the answers they brought back.
    pub causes: UpkeepCauses,
    /// Sessions opened to send a DHT message (filled in by the owner of the endpoint).
    pub dials: u64,
    /// Of those, to the local network.
    pub dials_lan: u64,
    /// Republishes that got as far as their stores (after a lookup, or the first-hand
    /// shortcut).
    pub republishes: u64,
    /// Of those, by a holder that found k nodes closer to the key than itself: its copy is
    /// surplus, so it stops republishing it.
    pub republishes_outside: u64,
}

/// Messages and their encoded bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages.
    pub msgs: u64,
    /// Their encoded bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.msgs = self.msgs.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    fn merge(&mut self, other: &Tally) {
        self.msgs = self.msgs.saturating_add(other.msgs);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// The maintenance class by cause (see the [module docs](self)): each counts the requests the
/// node sent for it and the answers those brought back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpkeepCauses {
    /// Self-lookups: the bootstrap on the first contact and the check after a restore.
    pub bootstrap: Tally,
    /// Lookups refreshing an idle bucket.
    pub refresh: Tally,
    /// Republishing a held record: its lookup and its stores.
    pub republish: Tally,
    /// Liveness pings of a full bucket's head.
    pub ping: Tally,
    /// Join transfer: held records handed to a (re)joining node that should hold them
    /// (`KadStore`s and their answers; see `service/transfer.rs`).
    pub transfer: Tally,
}

impl UpkeepCauses {
    fn get_mut(&mut self, cause: Cause) -> &mut Tally {
        match cause {
            Cause::Bootstrap => &mut self.bootstrap,
            Cause::Refresh => &mut self.refresh,
            Cause::Republish => &mut self.republish,
            Cause::Ping => &mut self.ping,
            Cause::Transfer => &mut self.transfer,
        }
    }
}

impl DhtTraffic {
    /// Messages sent in all classes.
    pub fn msgs(&self) -> u64 {
        self.query_msgs + self.maintenance_msgs + self.answer_msgs
    }

    /// Encoded bytes sent in all classes.
    pub fn bytes(&self) -> u64 {
        self.query_bytes + self.maintenance_bytes + self.answer_bytes
    }

    /// Bytes sent in all classes with the endpoint's sealing overhead
    /// ([`secure::DATA_OVERHEAD`](crate::secure::DATA_OVERHEAD) per message) added.
    pub fn sealed_bytes(&self) -> u64 {
        self.bytes() + self.msgs() * crate::secure::DATA_OVERHEAD as u64
    }

    /// Adds `other`'s counters to these (a fleet's total).
    pub fn add(&mut self, other: &DhtTraffic) {
        let sum = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        sum(&mut self.query_msgs, other.query_msgs);
        sum(&mut self.query_bytes, other.query_bytes);
        sum(&mut self.maintenance_msgs, other.maintenance_msgs);
        sum(&mut self.maintenance_bytes, other.maintenance_bytes);
        sum(&mut self.answer_msgs, other.answer_msgs);
        sum(&mut self.answer_bytes, other.answer_bytes);
        self.maintenance_lan.merge(&other.maintenance_lan);
        self.answer_lan.merge(&other.answer_lan);
        let (c, o) = (&mut self.causes, &other.causes);
        c.bootstrap.merge(&o.bootstrap);
        c.refresh.merge(&o.refresh);
        c.republish.merge(&o.republish);
        c.ping.merge(&o.ping);
        c.transfer.merge(&o.transfer);
        sum(&mut self.dials, other.dials);
        sum(&mut self.dials_lan, other.dials_lan);
        sum(&mut self.republishes, other.republishes);
        sum(&mut self.republishes_outside, other.republishes_outside);
    }

    /// Counts `message`, sent in `class` for `cause`, to the local network if `lan`.
    pub(crate) fn count(
        &mut self,
        class: TrafficClass,
        cause: Option<Cause>,
        lan: bool,
        message: &Message,
    ) {
        let bytes = encoded_len(message) as u64;
        let (msgs, total) = match class {
            TrafficClass::Query => (&mut self.query_msgs, &mut self.query_bytes),
            TrafficClass::Maintenance => (&mut self.maintenance_msgs, &mut self.maintenance_bytes),
            TrafficClass::Answer => (&mut self.answer_msgs, &mut self.answer_bytes),
        };
        *msgs = msgs.saturating_add(1);
        *total = total.saturating_add(bytes);
        if lan {
            match class {
                TrafficClass::Maintenance => self.maintenance_lan.add(bytes),
                TrafficClass::Answer => self.answer_lan.add(bytes),
                TrafficClass::Query => {}
            }
        }
        if let Some(cause) = cause {
            self.causes.get_mut(cause).add(bytes);
        }
    }

    /// Counts an answer to a request made for `cause`.
    pub(crate) fn count_reply(&mut self, cause: Cause, message: &Message) {
        self.causes.get_mut(cause).add(encoded_len(message) as u64);
    }
}

/// Which kind of maintenance a message serves (see [`UpkeepCauses`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    Bootstrap,
    Refresh,
    Republish,
    Ping,
    Transfer,
}

/// Why a message is sent: the class it is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrafficClass {
    Query,
    Maintenance,
    Answer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{KadPing, KadPong};

    #[test]
    fn each_message_is_counted_once_in_its_class_with_its_encoded_length() {
        let mut t = DhtTraffic::default();
        let ping = Message::KadPing(KadPing { rpc: 0x8000_0001, client: false });
        t.count(TrafficClass::Maintenance, Some(Cause::Ping), false, &ping);
        t.count(
            TrafficClass::Answer,
            None,
            true,
            &Message::KadPong(KadPong { rpc: 1, client: false }),
        );
        t.count(
            TrafficClass::Answer,
            None,
            false,
            &Message::KadPong(KadPong { rpc: 2, client: false }),
        );
        assert_eq!((t.query_msgs, t.maintenance_msgs, t.answer_msgs), (0, 1, 2));
        assert_eq!(t.maintenance_bytes, encoded_len(&ping) as u64);
        // Header (2) + a two-element CBOR array (1) + a u32 (5) + the client flag (1).
        assert_eq!(t.maintenance_bytes, 9);
        assert_eq!(t.msgs(), 3);
        assert_eq!(t.sealed_bytes(), t.bytes() + 3 * 29);
        assert_eq!(t.causes.ping, Tally { msgs: 1, bytes: 9 });
        let pong = encoded_len(&Message::KadPong(KadPong { rpc: 1, client: false })) as u64;
        assert_eq!(t.answer_lan, Tally { msgs: 1, bytes: pong });
        assert_eq!(t.maintenance_lan, Tally::default());
        t.count_reply(Cause::Ping, &Message::KadPong(KadPong { rpc: 0x8000_0001, client: false }));
        assert_eq!(t.causes.ping.msgs, 2);
        let mut sum = DhtTraffic::default();
        sum.add(&t);
        sum.add(&t);
        assert_eq!((sum.msgs(), sum.causes.ping.msgs, sum.answer_lan.bytes), (6, 4, 2 * pong));
    }
}
