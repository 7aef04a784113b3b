//! One Noise XX handshake, carrying admission credentials in its encrypted payloads.
//!
//! This type only runs the three messages and hands back what the peer presented; judging the
//! credential (trust store, expected peer, enrollment rules) is the endpoint's job.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use snow::{HandshakeState, StatelessTransportState};

use super::{SeededResolver, NOISE_PARAMS, PROLOGUE};
use crate::{
    codec::{cbor, WireError},
    trust::{CertError, Certificate, EnrollError, EnrollRequest},
    Identity,
};

/// Largest Noise handshake message we produce or accept.
const MAX_HANDSHAKE_LEN: usize = 2048;

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The Noise layer refused a message: tampered, forged, or another protocol.
    #[error("noise handshake failed: {0}")]
    Noise(String),
    /// The peer's certificate was not accepted.
    #[error("peer certificate refused: {0}")]
    Certificate(#[from] CertError),
    /// The peer presented no credential usable here.
    #[error("peer presented no acceptable credential")]
    MissingCredential,
    /// We tried to enroll with a node that is not our network's master.
    #[error("enrollment peer is not the master")]
    NotMaster,
    /// The peer asked to enroll, but this node does not accept enrollments.
    #[error("this node does not accept enrollment requests")]
    EnrollmentNotAccepted,
    /// The peer's enrollment request was invalid.
    #[error("enrollment request refused: {0}")]
    Enrollment(#[from] EnrollError),
    /// No answer within the handshake timeout.
    #[error("handshake timed out")]
    Timeout,
    /// A handshake payload could not be decoded.
    #[error("bad handshake payload: {0}")]
    Payload(#[from] WireError),
    /// This node has neither a certificate nor an enrollment in progress.
    #[error("this node has no certificate yet")]
    NotEnrolled,
}

impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        HandshakeError::Noise(e.to_string())
    }
}

/// What a side presents to prove it belongs to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    /// An admission certificate.
    Certificate(Box<Certificate>),
    /// No certificate yet: a request to the master for one.
    Enroll(Box<EnrollRequest>),
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct Payload {
    certificate: Option<Certificate>,
    enroll: Option<EnrollRequest>,
}

impl Credential {
    fn encode(&self) -> Vec<u8> {
        let payload = match self {
            Credential::Certificate(c) => {
                Payload { certificate: Some((**c).clone()), enroll: None }
            }
            Credential::Enroll(r) => Payload { certificate: None, enroll: Some((**r).clone()) },
        };
        cbor::to_vec(&payload)
    }

    fn decode(bytes: &[u8]) -> Result<Credential, HandshakeError> {
        let p: Payload = cbor::from_slice(bytes)?;
        match (p.certificate, p.enroll) {
            (Some(c), None) => Ok(Credential::Certificate(Box::new(c))),
            (None, Some(r)) => Ok(Credential::Enroll(Box::new(r))),
            _ => Err(HandshakeError::MissingCredential),
        }
    }
}

/// Decodes a handshake payload (the plaintext of message 2 or 3) as a handshake does and
/// encodes the credential again; also hands back an enrollment request, if that is what it
/// held. Not part of the API: payloads arrive encrypted, so a fuzzer feeding datagrams never
/// reaches this decoder, and the fuzz targets call it directly.
#[doc(hidden)]
pub fn reencode_handshake_payload(
    bytes: &[u8],
) -> Result<(Vec<u8>, Option<EnrollRequest>), HandshakeError> {
    let credential = Credential::decode(bytes)?;
    let enroll = match &credential {
        Credential::Enroll(r) => Some((**r).clone()),
        Credential::Certificate(_) => None,
    };
    Ok((credential.encode(), enroll))
}

/// A finished handshake: the keys, and what the peer presented.
pub(crate) struct HandshakeOutcome {
    pub(crate) transport: StatelessTransportState,
    /// The X25519 static key the peer proved it holds.
    pub(crate) remote_static: [u8; 32],
    pub(crate) credential: Credential,
}

pub(crate) struct Handshake {
    state: HandshakeState,
}

impl Handshake {
    fn builder<'a>(
        identity: &'a Identity,
        secret: &'a [u8; 32],
        seed: [u8; 32],
    ) -> Result<snow::Builder<'a>, HandshakeError> {
        let _ = identity;
        // NOISE_PARAMS is a constant we know parses; a failure here is a build defect.
        let params = NOISE_PARAMS.parse().expect("valid noise parameters");
        Ok(snow::Builder::with_resolver(params, Box::new(SeededResolver::new(seed)))
            .local_private_key(secret)?
            .prologue(PROLOGUE)?)
    }

    /// Starts a handshake as initiator; returns it and message 1.
    pub(crate) fn initiate(
        identity: &Identity,
        seed: [u8; 32],
    ) -> Result<(Handshake, Vec<u8>), HandshakeError> {
        let secret = zeroize::Zeroizing::new(identity.x25519_secret().to_bytes());
        let mut state = Self::builder(identity, &secret, seed)?.build_initiator()?;
        let mut msg = vec![0u8; MAX_HANDSHAKE_LEN];
        // Padded so the packet is MIN_HS1_LEN: 5 header bytes and the 32-byte ephemeral key.
        let padding = [0u8; super::packet::MIN_HS1_LEN - 5 - 32];
        let n = state.write_message(&padding, &mut msg)?;
        msg.truncate(n);
        Ok((Handshake { state }, msg))
    }

    /// Answers message 1 as responder, presenting `certificate`; returns message 2.
    pub(crate) fn respond(
        identity: &Identity,
        seed: [u8; 32],
        msg1: &[u8],
        certificate: &Certificate,
    ) -> Result<(Handshake, Vec<u8>), HandshakeError> {
        let secret = zeroize::Zeroizing::new(identity.x25519_secret().to_bytes());
        let mut state = Self::builder(identity, &secret, seed)?.build_responder()?;
        let mut scratch = vec![0u8; MAX_HANDSHAKE_LEN];
        if msg1.len() > MAX_HANDSHAKE_LEN {
            return Err(HandshakeError::Noise("message 1 too long".into()));
        }
        state.read_message(msg1, &mut scratch)?;
        let payload = Credential::Certificate(Box::new(certificate.clone())).encode();
        let n = state.write_message(&payload, &mut scratch)?;
        scratch.truncate(n);
        Ok((Handshake { state }, scratch))
    }

    /// Initiator: reads message 2 and returns the responder's credential and static key, so the
    /// caller can judge them before committing with [`Handshake::complete`].
    pub(crate) fn read_response(
        &mut self,
        msg2: &[u8],
    ) -> Result<(Credential, [u8; 32]), HandshakeError> {
        if msg2.len() > MAX_HANDSHAKE_LEN {
            return Err(HandshakeError::Noise("message 2 too long".into()));
        }
        let mut payload = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = self.state.read_message(msg2, &mut payload)?;
        let credential = Credential::decode(&payload[..n])?;
        Ok((credential, self.remote_static()?))
    }

    /// Initiator: writes message 3 presenting `own`; returns it and the finished session.
    pub(crate) fn complete(
        mut self,
        own: &Credential,
        peer: Credential,
    ) -> Result<(Vec<u8>, HandshakeOutcome), HandshakeError> {
        let mut msg = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = self.state.write_message(&own.encode(), &mut msg)?;
        msg.truncate(n);
        let remote_static = self.remote_static()?;
        let transport = self.state.into_stateless_transport_mode()?;
        Ok((msg, HandshakeOutcome { transport, remote_static, credential: peer }))
    }

    /// Responder: reads message 3; returns the finished session and the initiator's credential.
    pub(crate) fn finish(mut self, msg3: &[u8]) -> Result<HandshakeOutcome, HandshakeError> {
        if msg3.len() > MAX_HANDSHAKE_LEN {
            return Err(HandshakeError::Noise("message 3 too long".into()));
        }
        let mut payload = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = self.state.read_message(msg3, &mut payload)?;
        let credential = Credential::decode(&payload[..n])?;
        let remote_static = self.remote_static()?;
        let transport = self.state.into_stateless_transport_mode()?;
        Ok(HandshakeOutcome { transport, remote_static, credential })
    }

    fn remote_static(&self) -> Result<[u8; 32], HandshakeError> {
        self.state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| HandshakeError::Noise("peer static key missing".into()))
    }
}
