//! Enrollment tokens the master admits, kept in its data directory so a restart (or a crash)
//! never spends a token twice nor forgets one.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use rand_core::{OsRng, RngCore};

use super::link::valid_token;
use crate::{
    trust::{Admission, EnrollError, EnrollRequest, EnrollmentPolicy},
    Timestamp,
};

/// The tokens directory in the master's data directory: one empty file per token, named
/// `TOKEN.USES.EXPIRES` (expiry in seconds since the UNIX epoch).
///
/// The name is the whole state, so every change is one atomic rename or unlink: spending a use
/// renames `abc.3.T` to `abc.2.T` (the last use unlinks it), and of two processes or threads
/// spending the same use only one rename succeeds. `fleetmesh token create` can therefore add
/// tokens beside a running master, and a crash (kill -9 included) leaves every token spent
/// once or not at all.
pub(crate) const TOKENS_DIR: &str = "tokens";
/// Most tokens kept at once; a master that hands out more links than this without their being
/// used is asked to let some expire first.
pub const MAX_TOKENS: usize = 100_000;

/// Why no token was created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// [`MAX_TOKENS`] tokens are waiting to be used; let some expire first.
    #[error("{MAX_TOKENS} unused tokens are outstanding; let some expire first")]
    TooMany,
    /// The tokens directory could not be read or written.
    #[error("tokens directory {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// What a new token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenOptions {
    /// How many devices may enroll with it. Default 1.
    pub uses: u32,
    /// How long it stays valid. Default 7 days.
    pub valid_for: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions { uses: 1, valid_for: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// One token's file name, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    token: String,
    uses: u32,
    expires: u64,
}

impl Entry {
    fn parse(name: &str) -> Option<Entry> {
        let mut parts = name.rsplitn(3, '.');
        let expires = parts.next()?.parse().ok()?;
        let uses = parts.next()?.parse().ok()?;
        let token = parts.next()?;
        valid_token(token).then(|| Entry { token: token.to_owned(), uses, expires })
    }

    fn name(&self) -> String {
        format!("{}.{}.{}", self.token, self.uses, self.expires)
    }
}

/// The master's enrollment tokens, in its data directory.
#[derive(Clone, Debug)]
pub struct Tokens {
    dir: PathBuf,
    admission: Admission,
}

impl Tokens {
    /// The tokens of the master whose data directory is `data_dir` (the directory is created
    /// if missing, mode 0700).
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        let dir = data_dir.join(TOKENS_DIR);
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(|source| TokenError::Io { path: dir.clone(), source })?;
        Ok(Tokens { dir, admission: Admission::default() })
    }

    fn io(&self, source: io::Error) -> TokenError {
        TokenError::Io { path: self.dir.clone(), source }
    }

    fn entries(&self) -> Result<Vec<Entry>, TokenError> {
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let item = item.map_err(|e| self.io(e))?;
            // Anything else in the directory (an editor's backup, a stray file) is not a token.
            if let Some(entry) = item.file_name().to_str().and_then(Entry::parse) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    fn sync(&self) -> Result<(), TokenError> {
        // A rename or unlink is durable once its directory is.
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| self.io(e))
    }

    /// A new random token admitting `options.uses` devices; expired tokens are removed on the
    /// way. It is on disk before this returns.
    pub fn create(&self, now: Timestamp, options: TokenOptions) -> Result<String, TokenError> {
        let mut live = 0;
        for entry in self.entries()? {
            if entry.expires <= now.as_secs() {
                // Best effort: another process may have removed it first.
                let _ = fs::remove_file(self.dir.join(entry.name()));
            } else {
                live += 1;
            }
        }
        if live >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expires = now.as_secs().saturating_add(options.valid_for.as_secs());
        let entry = Entry { token: token.clone(), uses: options.uses.max(1), expires };
        let mut create = fs::OpenOptions::new();
        create.write(true).create_new(true);
        create.open(self.dir.join(entry.name())).map_err(|e| self.io(e))?;
        self.sync()?;
        Ok(token)
    }

    /// Tokens that can still admit a device.
    pub fn remaining(&self, now: Timestamp) -> Result<usize, TokenError> {
        Ok(self.entries()?.iter().filter(|e| e.expires > now.as_secs() && e.uses > 0).count())
    }

    /// Spends one use of `token`, on disk; false when it is unknown, used up or expired.
    fn spend(&self, token: &str, now: Timestamp) -> Result<bool, TokenError> {
        // A concurrent spender may rename the file between our listing and our rename: list
        // again and retry. Each retry means another spender used a use, so this ends.
        loop {
            let Some(entry) = self.entries()?.into_iter().find(|e| e.token == token) else {
                return Ok(false);
            };
            if entry.expires <= now.as_secs() || entry.uses == 0 {
                return Ok(false);
            }
            let from = self.dir.join(entry.name());
            let done = if entry.uses == 1 {
                fs::remove_file(&from)
            } else {
                let to = Entry { uses: entry.uses - 1, ..entry };
                fs::rename(&from, self.dir.join(to.name()))
            };
            match done {
                Ok(()) => {
                    self.sync()?;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(e)),
            }
        }
    }
}

impl EnrollmentPolicy for Tokens {
    fn admit(&mut self, request: &EnrollRequest, now: Timestamp) -> Result<Admission, EnrollError> {
        let token = request.token.as_ref().ok_or(EnrollError::TokenRequired)?;
        if !valid_token(token) {
            return Err(EnrollError::InvalidToken);
        }
        // Spent on disk before it admits anyone: a crash right after cannot spend it again.
        match self.spend(token, now) {
            Ok(true) => Ok(self.admission),
            Ok(false) => Err(EnrollError::InvalidToken),
            Err(error) => {
                tracing::error!(%error, "cannot record a spent token; enrollment refused");
                Err(EnrollError::Refused("the master cannot record the token".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    fn request(token: &str) -> EnrollRequest {
        let identity = Identity::generate(&mut OsRng);
        let network = crate::trust::Authority::new(Identity::generate(&mut OsRng)).network_key();
        EnrollRequest::new(&identity, &network, Some(token.to_owned()))
    }

    #[test]
    fn tokens_are_spent_on_disk_and_seen_by_every_opener() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let mut tokens = Tokens::open(dir.path()).unwrap();
        let once = tokens.create(now, TokenOptions::default()).unwrap();
        let twice = tokens.create(now, TokenOptions { uses: 2, ..Default::default() }).unwrap();
        let short = TokenOptions { uses: 5, valid_for: Duration::from_secs(60) };
        let brief = tokens.create(now, short).unwrap();

        assert!(tokens.admit(&request(&once), now).is_ok());
        assert_eq!(tokens.admit(&request(&once), now), Err(EnrollError::InvalidToken));
        assert!(tokens.admit(&request(&twice), now).is_ok());

        // Another opener (a restarted master, or `fleetmesh token create`) sees the same.
        let mut again = Tokens::open(dir.path()).unwrap();
        assert_eq!(again.admit(&request(&once), now), Err(EnrollError::InvalidToken));
        assert!(again.admit(&request(&twice), now).is_ok());
        assert_eq!(again.admit(&request(&twice), now), Err(EnrollError::InvalidToken));
        let later = now + Duration::from_secs(61);
        assert_eq!(again.admit(&request(&brief), later), Err(EnrollError::InvalidToken));
        assert_eq!(again.remaining(now).unwrap(), 1);
        assert_eq!(again.remaining(later).unwrap(), 0);
        assert_eq!(again.admit(&request("nope"), now), Err(EnrollError::InvalidToken));
        assert_eq!(again.admit(&request("../x"), now), Err(EnrollError::InvalidToken));
        // Creating sweeps the expired one out.
        again.create(later, TokenOptions::default()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join(TOKENS_DIR)).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_spenders_use_each_use_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let tokens = Tokens::open(dir.path()).unwrap();
        let token = tokens.create(now, TokenOptions { uses: 50, ..Default::default() }).unwrap();
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (mut tokens, token) = (tokens.clone(), token.clone());
                    s.spawn(move || {
                        (0..30).filter(|_| tokens.admit(&request(&token), now).is_ok()).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        // 120 attempts, 50 uses: exactly 50 admitted (retries cover lost races).
        assert_eq!(admitted, 50);
        assert_eq!(tokens.remaining(now).unwrap(), 0);
    }
}
