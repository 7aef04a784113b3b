//! An established link's transport keys: seal and open datagrams with explicit counters.

use snow::StatelessTransportState;

use super::{
    packet::{DATA_HEADER_LEN, TAG_LEN},
    Packet, PacketError, ReplayWindow,
};

/// Why a frame could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The frame does not fit one packet.
    #[error("frame of {0} bytes is too large for one packet")]
    TooLarge(usize),
    /// The send counter is used up; a new handshake is needed.
    #[error("session send counter exhausted")]
    Exhausted,
}

/// Counters at or above this force a new handshake long before the nonce space ends.
const COUNTER_LIMIT: u64 = 1 << 60;

/// Largest ciphertext snow handles in one message.
const MAX_NOISE_MSG: usize = 65_535;

/// The keys and counters of one established link, one direction pair.
///
/// Endpoints create and own these; [`session_pair`] makes a connected pair directly, for
/// benchmarks and tests of the data path.
pub struct Session {
    transport: StatelessTransportState,
    /// The index the peer uses to name this session (goes into our data packets).
    remote_index: u32,
    send_counter: u64,
    replay: ReplayWindow,
}

impl Session {
    /// The index the peer gave this session: the one our data packets name.
    pub(crate) fn remote_index(&self) -> u32 {
        self.remote_index
    }

    pub(crate) fn new(transport: StatelessTransportState, remote_index: u32) -> Self {
        Session { transport, remote_index, send_counter: 0, replay: ReplayWindow::new() }
    }

    /// Seals `frame` into a complete data packet in `out` (cleared first).
    pub fn seal(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
        if frame.len() + TAG_LEN > MAX_NOISE_MSG {
            return Err(SessionError::TooLarge(frame.len()));
        }
        if self.send_counter >= COUNTER_LIMIT {
            return Err(SessionError::Exhausted);
        }
        let counter = self.send_counter;
        self.send_counter += 1;
        Packet::data_header(out, self.remote_index, counter);
        out.resize(DATA_HEADER_LEN + frame.len() + TAG_LEN, 0);
        // Cannot fail: the buffer is exactly large enough and the length is within snow's limit.
        let n = self
            .transport
            .write_message(counter, frame, &mut out[DATA_HEADER_LEN..])
            .map_err(|_| SessionError::TooLarge(frame.len()))?;
        out.truncate(DATA_HEADER_LEN + n);
        Ok(())
    }

    /// Opens a complete data packet (as made by [`seal`](Self::seal) on the peer's session)
    /// into `out` (cleared first), enforcing the replay window.
    pub fn open_packet(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), PacketError> {
        match Packet::parse(packet)? {
            Packet::Data { counter, ciphertext, .. } => self.open(counter, ciphertext, out),
            _ => Err(PacketError::Malformed),
        }
    }

    /// Opens a data packet's ciphertext into `out` (cleared first), enforcing the replay window.
    pub(crate) fn open(
        &mut self,
        counter: u64,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), PacketError> {
        self.replay.check(counter)?;
        if ciphertext.len() > MAX_NOISE_MSG {
            return Err(PacketError::Decrypt);
        }
        out.clear();
        out.resize(ciphertext.len(), 0);
        let n = self
            .transport
            .read_message(counter, ciphertext, out)
            .map_err(|_| PacketError::Decrypt)?;
        out.truncate(n);
        // Only an authenticated packet may move the window.
        self.replay.mark(counter);
        Ok(())
    }
}

/// A connected pair of sessions from a real Noise XX handshake between two fresh identities
/// (keys drawn from `seed`): what two endpoints hold after connecting, without the endpoints.
/// For benchmarks and data-path tests.
pub fn session_pair(seed: u64) -> (Session, Session) {
    use rand_core::SeedableRng;

    use super::{Credential, Handshake};
    use crate::{trust::Authority, Identity, Timestamp};

    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut authority = Authority::new(Identity::generate(&mut rng));
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let now = Timestamp::from_secs(1_700_000_000);
    let day = std::time::Duration::from_secs(86_400);
    let flags = crate::trust::CertFlags::NONE;
    let cert_a = authority.issue(&a.verifying_key(), a.x25519_public(), flags, now, day);
    let cert_b = authority.issue(&b.verifying_key(), b.x25519_public(), flags, now, day);
    // Every step below runs on keys and messages made just above, so none can fail.
    let (mut hs_a, m1) = Handshake::initiate(&a, [1; 32]).expect("initiate");
    let (hs_b, m2) = Handshake::respond(&b, [2; 32], &m1, &cert_b).expect("respond");
    let (peer, _) = hs_a.read_response(&m2).expect("read response");
    let (m3, out_a) =
        hs_a.complete(&Credential::Certificate(Box::new(cert_a)), peer).expect("complete");
    let out_b = hs_b.finish(&m3).expect("finish");
    (Session::new(out_a.transport, 2), Session::new(out_b.transport, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_packets_open_on_the_peer_only_once() {
        let (mut a, mut b) = session_pair(1);
        let (mut packet, mut plain) = (Vec::new(), Vec::new());
        a.seal(b"hello", &mut packet).unwrap();
        assert_eq!(packet.len(), 5 + super::super::DATA_OVERHEAD);
        b.open_packet(&packet, &mut plain).unwrap();
        assert_eq!(plain, b"hello");
        assert!(matches!(b.open_packet(&packet, &mut plain), Err(PacketError::Replay(_))));
        // A packet sealed by B cannot be opened by B itself (directional keys). Counter 0 is
        // spent in B's window already, so use B's second packet.
        b.seal(b"y", &mut packet).unwrap();
        b.seal(b"x", &mut packet).unwrap();
        assert_eq!(b.open_packet(&packet, &mut plain), Err(PacketError::Decrypt));
        a.open_packet(&packet, &mut plain).unwrap();
        assert_eq!(plain, b"x");
    }
}
