//! Enrollment tokens the master admits, kept in its data directory so a restart (or a crash)
//! never spends a token twice nor forgets one.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand_core::{OsRng, RngCore};

use super::{data::DataDir, StartError};
use crate::{
    trust::{Admission, EnrollError, EnrollRequest, EnrollmentPolicy},
    Timestamp,
};

/// The tokens file in the master's data directory.
pub(crate) const TOKENS_FILE: &str = "tokens";
/// Most tokens kept at once: each `create_token` call adds one; a master that hands out more
/// links than this without their being used is asked to let some expire first.
pub const MAX_TOKENS: usize = 100_000;

/// Why no token was created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// [`MAX_TOKENS`] tokens are waiting to be used; let some expire first.
    #[error("{MAX_TOKENS} unused tokens are outstanding; let some expire first")]
    TooMany,
    /// The tokens file could not be written.
    #[error(transparent)]
    Save(#[from] StartError),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    uses: u32,
    expires: u64,
}

/// The master's tokens, shared by its handle (which adds) and its enrollment policy (which
/// spends). Every change is written to disk before it takes effect.
#[derive(Clone)]
pub(crate) struct Tokens {
    book: Arc<Mutex<BTreeMap<String, Entry>>>,
    dir: DataDir,
    admission: Admission,
}

impl Tokens {
    pub(crate) fn load(dir: DataDir) -> Result<Self, StartError> {
        let mut book = BTreeMap::new();
        if let Some(text) = dir.read_text(TOKENS_FILE)? {
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let corrupt = || StartError::Corrupt {
                    path: dir.file(TOKENS_FILE),
                    detail: format!("line {}: expected `TOKEN USES EXPIRES`", n + 1),
                };
                let mut parts = line.split_whitespace();
                let (Some(token), Some(uses), Some(expires), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(corrupt());
                };
                let uses = uses.parse().map_err(|_| corrupt())?;
                let expires = expires.parse().map_err(|_| corrupt())?;
                book.insert(token.to_owned(), Entry { uses, expires });
            }
        }
        Ok(Tokens { book: Arc::new(Mutex::new(book)), dir, admission: Admission::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, book: &BTreeMap<String, Entry>) -> Result<(), StartError> {
        let text: String =
            book.iter().map(|(t, e)| format!("{t} {} {}\n", e.uses, e.expires)).collect();
        self.dir.write(TOKENS_FILE, text.as_bytes())
    }

    /// A new random token; expired ones are dropped on the way.
    pub(crate) fn create(
        &self,
        now: Timestamp,
        options: TokenOptions,
    ) -> Result<String, TokenError> {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut book = self.lock();
        let mut next = book.clone();
        next.retain(|_, e| e.expires > now.as_secs());
        if next.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let expires = now.as_secs().saturating_add(options.valid_for.as_secs());
        next.insert(token.clone(), Entry { uses: options.uses.max(1), expires });
        self.save(&next)?;
        *book = next;
        Ok(token)
    }

    /// Tokens that can still admit someone.
    pub(crate) fn remaining(&self, now: Timestamp) -> usize {
        self.lock().values().filter(|e| e.expires > now.as_secs() && e.uses > 0).count()
    }
}

impl EnrollmentPolicy for Tokens {
    fn admit(&mut self, request: &EnrollRequest, now: Timestamp) -> Result<Admission, EnrollError> {
        let token = request.token.as_ref().ok_or(EnrollError::TokenRequired)?;
        let mut book = self.lock();
        let entry = match book.get(token) {
            Some(e) if e.expires > now.as_secs() && e.uses > 0 => *e,
            _ => return Err(EnrollError::InvalidToken),
        };
        let mut next = book.clone();
        if entry.uses == 1 {
            next.remove(token);
        } else {
            next.insert(token.clone(), Entry { uses: entry.uses - 1, ..entry });
        }
        // Spent on disk before it admits anyone: a crash right after cannot spend it again.
        if let Err(error) = self.save(&next) {
            tracing::error!(%error, "cannot record a spent token; enrollment refused");
            return Err(EnrollError::Refused("the master cannot record the token".into()));
        }
        *book = next;
        Ok(self.admission)
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
    fn tokens_are_spent_on_disk_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let mut tokens = Tokens::load(data.clone()).unwrap();
        let once = tokens.create(now, TokenOptions::default()).unwrap();
        let twice = tokens.create(now, TokenOptions { uses: 2, ..Default::default() }).unwrap();
        let short = TokenOptions { uses: 5, valid_for: Duration::from_secs(60) };
        let brief = tokens.create(now, short).unwrap();

        assert!(tokens.admit(&request(&once), now).is_ok());
        assert_eq!(tokens.admit(&request(&once), now), Err(EnrollError::InvalidToken));
        assert!(tokens.admit(&request(&twice), now).is_ok());

        // A restart reads what was spent.
        let mut again = Tokens::load(data).unwrap();
        assert_eq!(again.admit(&request(&once), now), Err(EnrollError::InvalidToken));
        assert!(again.admit(&request(&twice), now).is_ok());
        assert_eq!(again.admit(&request(&twice), now), Err(EnrollError::InvalidToken));
        let later = now + Duration::from_secs(61);
        assert_eq!(again.admit(&request(&brief), later), Err(EnrollError::InvalidToken));
        assert_eq!(again.remaining(now), 1);
        assert_eq!(again.remaining(later), 0);
        assert_eq!(again.admit(&request("nope"), now), Err(EnrollError::InvalidToken));
    }

    #[test]
    fn a_corrupt_tokens_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.write(TOKENS_FILE, b"abc 1 2\nbad line\n").unwrap();
        let err = Tokens::load(data).err().unwrap();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
