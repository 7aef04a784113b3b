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

pub(crate) struct Session {
    transport: StatelessTransportState,
    /// The index the peer uses to name this session (goes into our data packets).
    remote_index: u32,
    send_counter: u64,
    replay: ReplayWindow,
}

impl Session {
    pub(crate) fn new(transport: StatelessTransportState, remote_index: u32) -> Self {
        Session { transport, remote_index, send_counter: 0, replay: ReplayWindow::new() }
    }

    /// Seals `frame` into a complete data packet in `out` (cleared first).
    pub(crate) fn seal(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
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
