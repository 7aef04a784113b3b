//! End-to-end envelopes: signed by the sender, encrypted to the recipient (HPKE, RFC 9180).
//!
//! An LSN or relay forwarding an envelope sees only the sender and recipient ids. It cannot
//! read the payload (HPKE to the recipient's X25519 key) and cannot forge or alter one (the
//! sender's ed25519 signature, checked after decryption, covers network, both ids, the stamp
//! and payload).
//!
//! It cannot re-deliver one either: each envelope carries, inside the signature, a stamp that
//! the sender makes unique and increasing (its clock in microseconds, bumped past the last
//! one), and the recipient accepts each stamp once, within a window
//! ([`EnvelopeWindow`](super::EnvelopeWindow)).

use ed25519_dalek::{Signature, VerifyingKey};
use hpke::{
    aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, Kem, OpModeR,
    OpModeS, Serializable,
};
use rand_core::{CryptoRng, RngCore};
use serde::Serialize;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::{
    codec::cbor,
    id::serde_bytes_array,
    trust::{domain, signed_bytes, NetworkKey},
    Identity, NodeId,
};

/// A payload sealed for one recipient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct SealedEnvelope {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// HPKE encapsulated key.
    #[serde(with = "serde_bytes_array")]
    pub enc: [u8; 32],
    /// HPKE ciphertext of the signed payload.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Why an envelope could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Addressed to another node.
    #[error("envelope is addressed to {0}, not to us")]
    NotForUs(NodeId),
    /// The recipient's X25519 key is not usable.
    #[error("recipient key is invalid")]
    InvalidRecipientKey,
    /// Decryption failed: tampered, or sealed for another key.
    #[error("envelope failed to decrypt")]
    Decrypt,
    /// The sender's signature does not verify.
    #[error("envelope signature is invalid")]
    BadSignature,
    /// The key given for the sender does not belong to the envelope's sender id.
    #[error("envelope sender does not match the key")]
    SenderMismatch,
    /// The decrypted contents are not an envelope body.
    #[error("envelope contents are malformed")]
    Malformed,
    /// HPKE refused to seal (should not happen with valid keys).
    #[error("envelope sealing failed")]
    Seal,
    /// An envelope with this stamp was accepted already: a re-delivery.
    #[error("envelope {0} was delivered already")]
    Replayed(u64),
    /// The stamp is older than the recipient's window: too late to tell a replay apart.
    #[error("envelope {0} is too old")]
    TooOld(u64),
}

/// An opened envelope: what the sender signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender's stamp: unique per sender, increasing (see
    /// [`EnvelopeWindow`](super::EnvelopeWindow)).
    pub stamp: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct Body {
    stamp: u64,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    #[serde(with = "serde_bytes_array")]
    signature: [u8; 64],
}

#[derive(Serialize)]
struct Signed<'a> {
    network: &'a NetworkKey,
    from: &'a NodeId,
    to: &'a NodeId,
    stamp: u64,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
}

fn info(network: &NetworkKey) -> Vec<u8> {
    let mut info = domain::ENVELOPE.to_vec();
    info.extend_from_slice(&network.to_bytes());
    info
}

fn aad(from: &NodeId, to: &NodeId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40);
    aad.extend_from_slice(from.as_bytes());
    aad.extend_from_slice(to.as_bytes());
    aad
}

/// Seals `payload` from `sender` to the node `to`, whose certified X25519 key is `to_x25519`.
/// `stamp` must be unique among the sender's envelopes and increase with time (a clock in
/// microseconds, bumped past the previous stamp): the recipient refuses a stamp twice.
pub fn seal_envelope<R: CryptoRng + RngCore>(
    sender: &Identity,
    network: &NetworkKey,
    to: NodeId,
    to_x25519: &[u8; 32],
    stamp: u64,
    payload: &[u8],
    rng: &mut R,
) -> Result<SealedEnvelope, EnvelopeError> {
    let from = sender.node_id();
    let signed = Signed { network, from: &from, to: &to, stamp, payload };
    let signature = sender.sign(&signed_bytes(domain::ENVELOPE, &signed)).to_bytes();
    let body = cbor::to_vec(&Body { stamp, payload: payload.to_vec(), signature });
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(to_x25519)
        .map_err(|_| EnvelopeError::InvalidRecipientKey)?;
    let (enc, ciphertext) = hpke::single_shot_seal::<
        ChaCha20Poly1305,
        HkdfSha256,
        X25519HkdfSha256,
        _,
    >(&OpModeS::Base, &pk, &info(network), &body, &aad(&from, &to), rng)
    .map_err(|_| EnvelopeError::Seal)?;
    let enc: [u8; 32] = enc.to_bytes().into();
    Ok(SealedEnvelope { from, to, enc, ciphertext })
}

/// Opens an envelope addressed to `recipient`, checking it was signed by `sender_key` (from the
/// sender's certificate, or the network key for the master). Whether it is fresh is the
/// caller's to check, with an [`EnvelopeWindow`](super::EnvelopeWindow) for the sender.
pub fn open_envelope(
    recipient: &Identity,
    network: &NetworkKey,
    envelope: &SealedEnvelope,
    sender_key: &VerifyingKey,
) -> Result<Opened, EnvelopeError> {
    if envelope.to != recipient.node_id() {
        return Err(EnvelopeError::NotForUs(envelope.to));
    }
    if NodeId::from_public_key(sender_key) != envelope.from {
        return Err(EnvelopeError::SenderMismatch);
    }
    let secret = zeroize::Zeroizing::new(recipient.x25519_secret().to_bytes());
    let sk = <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&secret[..])
        .map_err(|_| EnvelopeError::Decrypt)?;
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&envelope.enc)
        .map_err(|_| EnvelopeError::Decrypt)?;
    let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info(network),
        &envelope.ciphertext,
        &aad(&envelope.from, &envelope.to),
    )
    .map_err(|_| EnvelopeError::Decrypt)?;
    open_envelope_plaintext(network, envelope, &plain, sender_key)
}

/// The steps of [`open_envelope`] after decryption: decodes the contents `plain` and checks
/// the sender's signature over them. Not part of the API: random ciphertext never decrypts,
/// so the fuzz targets call this to reach the decoder behind the HPKE layer. Unlike
/// [`open_envelope`] it does not check that `sender_key` is `envelope.from`'s.
#[doc(hidden)]
pub fn open_envelope_plaintext(
    network: &NetworkKey,
    envelope: &SealedEnvelope,
    plain: &[u8],
    sender_key: &VerifyingKey,
) -> Result<Opened, EnvelopeError> {
    let body: Body = cbor::from_slice(plain).map_err(|_| EnvelopeError::Malformed)?;
    let signed = Signed {
        network,
        from: &envelope.from,
        to: &envelope.to,
        stamp: body.stamp,
        payload: &body.payload,
    };
    sender_key
        .verify_strict(
            &signed_bytes(domain::ENVELOPE, &signed),
            &Signature::from_bytes(&body.signature),
        )
        .map_err(|_| EnvelopeError::BadSignature)?;
    Ok(Opened { stamp: body.stamp, payload: body.payload })
}
