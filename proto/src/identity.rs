//! [`Identity`]: a node's long-term key pairs, and their key file.

use std::{
    fmt, fs,
    io::{self, Write},
    path::Path,
};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::NodeId;

/// A node's long-term keys: ed25519 for signatures (and the [`NodeId`]), X25519 for the Noise
/// static key that sessions authenticate.
///
/// Two independent keys rather than one converted key: each is used only for the primitive it
/// was made for. The master's certificate binds both to the id.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    dh: x25519_dalek::StaticSecret,
    id: NodeId,
}

impl Identity {
    /// Fresh keys from `rng`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut ed = Zeroizing::new([0u8; 32]);
        let mut x = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *ed);
        rng.fill_bytes(&mut *x);
        Self::from_secret_bytes(&ed, &x)
    }

    /// Keys from their 32-byte secrets.
    pub fn from_secret_bytes(ed25519: &[u8; 32], x25519: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(ed25519);
        let id = NodeId::from_public_key(&signing.verifying_key());
        Identity { signing, dh: x25519_dalek::StaticSecret::from(*x25519), id }
    }

    /// The node id: SHA-1 of the ed25519 public key.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The ed25519 public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The X25519 public key (the Noise static key).
    pub fn x25519_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.dh).to_bytes()
    }

    /// Signs `msg` with the ed25519 key.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.signing.sign(msg)
    }

    pub(crate) fn x25519_secret(&self) -> &x25519_dalek::StaticSecret {
        &self.dh
    }

    /// Loads the key file at `path`, or generates keys and writes them there (readable only by
    /// the owner) when it does not exist yet.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyFileError> {
        match fs::read(path) {
            Ok(bytes) => Self::from_key_file(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Self::generate(&mut rand_core::OsRng);
                identity.save(path)?;
                Ok(identity)
            }
            Err(e) => Err(KeyFileError::Io(e)),
        }
    }

    /// Loads the key file at `path`; unlike [`Identity::load_or_generate`], a missing file is an
    /// error (`KeyFileError::Io` with `NotFound`), for tools that act for an existing identity.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        Self::from_key_file(&fs::read(path)?)
    }

    /// Writes the key file to `path`, creating it readable and writable by its owner only.
    /// Refuses to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir)?;
            }
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(&self.to_key_file())?;
        file.sync_all()?;
        Ok(())
    }

    fn to_key_file(&self) -> Zeroizing<Vec<u8>> {
        let file = KeyFile {
            format: KEY_FILE_FORMAT.to_owned(),
            ed25519: serde_bytes::ByteBuf::from(self.signing.to_bytes().to_vec()),
            x25519: serde_bytes::ByteBuf::from(self.dh.to_bytes().to_vec()),
        };
        Zeroizing::new(crate::codec::cbor::to_vec(&file))
    }

    fn from_key_file(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let file: KeyFile = ciborium::from_reader(bytes).map_err(|_| KeyFileError::Malformed)?;
        if file.format != KEY_FILE_FORMAT {
            return Err(KeyFileError::UnknownFormat(file.format));
        }
        let ed: [u8; 32] = file.ed25519.as_ref().try_into().map_err(|_| KeyFileError::Malformed)?;
        let x: [u8; 32] = file.x25519.as_ref().try_into().map_err(|_| KeyFileError::Malformed)?;
        Ok(Self::from_secret_bytes(&ed, &x))
    }
}

impl fmt::Debug for Identity {
    // Never print secrets: only the public id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish_non_exhaustive()
    }
}

const KEY_FILE_FORMAT: &str = "fleetmesh-identity-v1";

#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    ed25519: serde_bytes::ByteBuf,
    x25519: serde_bytes::ByteBuf,
}

/// Error loading or saving an identity key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file i/o: {0}")]
    Io(#[from] io::Error),
    /// The file is not a fleetmesh key file.
    #[error("key file is malformed")]
    Malformed,
    /// The file names a format this version does not know.
    #[error("key file has unknown format {0:?}")]
    UnknownFormat(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn key_file_round_trip_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.key");
        let a = Identity::load_or_generate(&path).unwrap();
        let b = Identity::load_or_generate(&path).unwrap();
        assert_eq!(a.node_id(), b.node_id());
        assert_eq!(a.x25519_public(), b.x25519_public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Saving over an existing key must not silently replace the node's identity.
        assert!(matches!(a.save(&path), Err(KeyFileError::Io(_))));
    }

    #[test]
    fn load_reads_an_existing_key_and_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        assert!(
            matches!(Identity::load(&path), Err(KeyFileError::Io(e)) if e.kind() == io::ErrorKind::NotFound)
        );
        assert!(!path.exists(), "load must not generate a key");
        let made = Identity::load_or_generate(&path).unwrap();
        assert_eq!(Identity::load(&path).unwrap().node_id(), made.node_id());
    }

    #[test]
    fn corrupt_key_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        fs::write(&path, b"not cbor at all").unwrap();
        assert!(matches!(Identity::load_or_generate(&path), Err(KeyFileError::Malformed)));
    }

    #[test]
    fn id_is_sha1_of_public_key_and_debug_hides_secrets() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let id = Identity::generate(&mut rng);
        assert_eq!(id.node_id(), NodeId::hash(id.verifying_key().as_bytes()));
        let dbg = format!("{id:?}");
        assert!(dbg.starts_with("Identity { id: NodeId("), "{dbg}");
    }
}
