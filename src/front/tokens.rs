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

/// The tokens directory in the master's data directory. Each unused use of a token is one
/// file, `TOKEN.USE.EXPIRES` (USE numbers the uses from 1, expiry is in seconds since the
/// UNIX epoch), holding the token's tags, one per line (empty without tags); `spent/` holds
/// `TOKEN.USE.EXPIRES.NODE` for each use spent, NODE being the id of the node it admitted, with
/// the same content.
///
/// Spending a use is one atomic rename from the first directory to the second, so the spend
/// and the record of whom it admitted cannot come apart: of two spenders (threads, or the
/// master and `fleetmesh token create` beside it) only one rename succeeds, and a crash
/// (kill -9 included) leaves the use spent and recorded, or neither. A node whose answer was
/// lost (the master crashed right after admitting it) asks again with the same token and is
/// admitted again by its record, without spending another use.
pub(crate) const TOKENS_DIR: &str = "tokens";
const SPENT_DIR: &str = "spent";
/// Most unused token uses kept at once; a master that hands out more than this without their
/// being used is asked to let some expire first.
pub const MAX_TOKENS: usize = 100_000;
/// Most devices one token admits (its `uses`): the most certificates, and entries in the
/// master's certificate tables, that whoever holds one token (a leaked one included) can
/// make it issue. A larger fleet is enrolled with several tokens.
pub const MAX_USES_PER_TOKEN: u32 = 10_000;
/// Most tags on one token.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// Why no token was created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// [`MAX_TOKENS`] token uses are waiting; let some expire first.
    #[error("{MAX_TOKENS} unused token uses are outstanding; let some expire first")]
    TooMany,
    /// More uses were asked of one token than [`MAX_USES_PER_TOKEN`].
    #[error("{0} uses asked of one token; at most {MAX_USES_PER_TOKEN} (create several tokens)")]
    TooManyUses(u32),
    /// A tag is empty, too long, or has a character other than `a-z`, `0-9`, `-`, `_`, `.`
    /// and `:`; or there are more than [`MAX_TAGS`].
    #[error("bad tag {0:?}: tags are 1 to {MAX_TAG_LEN} of a-z 0-9 - _ . : (at most {MAX_TAGS})")]
    BadTag(String),
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOptions {
    /// How many devices may enroll with it, 1 to [`MAX_USES_PER_TOKEN`]. Default 1.
    pub uses: u32,
    /// How long it stays valid. Default 7 days.
    pub valid_for: Duration,
    /// Tags every node it admits carries in the master's registry (say `site:berlin`,
    /// `kiosk`). Default none.
    pub tags: Vec<String>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions { uses: 1, valid_for: Duration::from_secs(7 * 24 * 3600), tags: Vec::new() }
    }
}

/// Whether `tag` may be a tag: 1 to [`MAX_TAG_LEN`] of `a-z 0-9 - _ . :`.
pub fn valid_tag(tag: &str) -> bool {
    (1..=MAX_TAG_LEN).contains(&tag.len())
        && tag.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.:".contains(&b))
}

/// The tags in a use file: one per line; anything not a tag (a hand edit) is skipped.
fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> =
        text.lines().map(str::trim).filter(|t| valid_tag(t)).map(str::to_owned).collect();
    tags.sort();
    tags.dedup();
    tags.truncate(MAX_TAGS);
    tags
}

/// One use's file name, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Use {
    token: String,
    n: u32,
    expires: u64,
}

impl Use {
    /// `TOKEN.USE.EXPIRES`, and with `spent` also `.NODE`.
    fn parse(name: &str, spent: bool) -> Option<(Use, Option<String>)> {
        let mut parts = name.rsplitn(if spent { 4 } else { 3 }, '.');
        let node = if spent { Some(parts.next()?.to_owned()) } else { None };
        let expires = parts.next()?.parse().ok()?;
        let n = parts.next()?.parse().ok()?;
        let token = parts.next()?;
        valid_token(token).then(|| (Use { token: token.to_owned(), n, expires }, node))
    }

    fn name(&self) -> String {
        format!("{}.{}.{}", self.token, self.n, self.expires)
    }
}

/// The master's enrollment tokens, in its data directory.
#[derive(Clone, Debug)]
pub struct Tokens {
    dir: PathBuf,
    admission: Admission,
}

impl Tokens {
    /// The tokens of the master whose data directory is `data_dir` (the directories are
    /// created if missing, mode 0700).
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        let dir = data_dir.join(TOKENS_DIR);
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        let spent = dir.join(SPENT_DIR);
        builder.create(&spent).map_err(|source| TokenError::Io { path: spent, source })?;
        Ok(Tokens { dir, admission: Admission::default() })
    }

    fn io(&self, source: io::Error) -> TokenError {
        TokenError::Io { path: self.dir.clone(), source }
    }

    /// Unused uses (`spent` false) or spent ones with the node each admitted.
    fn list(&self, spent: bool) -> Result<Vec<(Use, Option<String>)>, TokenError> {
        let dir = if spent { self.dir.join(SPENT_DIR) } else { self.dir.clone() };
        let mut uses = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| self.io(e))? {
            let item = item.map_err(|e| self.io(e))?;
            // Anything else (the spent directory, an editor's backup) is not a token use.
            if let Some(found) = item.file_name().to_str().and_then(|n| Use::parse(n, spent)) {
                uses.push(found);
            }
        }
        Ok(uses)
    }

    fn sync(&self) -> Result<(), TokenError> {
        // A rename is durable once both directories are.
        for dir in [self.dir.clone(), self.dir.join(SPENT_DIR)] {
            fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// A new random token admitting `options.uses` devices; expired tokens (used or not) are
    /// removed on the way. It is on disk before this returns.
    pub fn create(&self, now: Timestamp, options: TokenOptions) -> Result<String, TokenError> {
        // Refused before the sweep below: a refused call changes nothing.
        if options.uses > MAX_USES_PER_TOKEN {
            return Err(TokenError::TooManyUses(options.uses));
        }
        let mut live = 0;
        for spent in [false, true] {
            let dir = if spent { self.dir.join(SPENT_DIR) } else { self.dir.clone() };
            for (u, node) in self.list(spent)? {
                if u.expires <= now.as_secs() {
                    let name = match node {
                        Some(node) => format!("{}.{node}", u.name()),
                        None => u.name(),
                    };
                    // Best effort: another process may have removed it first.
                    let _ = fs::remove_file(dir.join(name));
                } else if !spent {
                    live += 1;
                }
            }
        }
        let uses = options.uses.max(1);
        if live + uses as usize > MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        if let Some(bad) = options.tags.iter().find(|t| !valid_tag(t)) {
            return Err(TokenError::BadTag(bad.clone()));
        }
        if options.tags.len() > MAX_TAGS {
            return Err(TokenError::BadTag(options.tags[MAX_TAGS].clone()));
        }
        let content: String = options.tags.iter().map(|t| format!("{t}\n")).collect();
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expires = now.as_secs().saturating_add(options.valid_for.as_secs());
        let mut create = fs::OpenOptions::new();
        create.write(true).create_new(true);
        for n in 1..=uses {
            use std::io::Write;
            let u = Use { token: token.clone(), n, expires };
            let mut file = create.open(self.dir.join(u.name())).map_err(|e| self.io(e))?;
            // Written and synced before the directory is: a use is never seen without its tags.
            file.write_all(content.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| self.io(e))?;
        }
        self.sync()?;
        Ok(token)
    }

    /// Token uses that can still admit a device.
    pub fn remaining(&self, now: Timestamp) -> Result<usize, TokenError> {
        Ok(self.list(false)?.iter().filter(|(u, _)| u.expires > now.as_secs()).count())
    }

    /// The tags of the token that admitted `node` (empty if none did, or it had none).
    pub fn tags_of(&self, node: &str) -> Result<Vec<String>, TokenError> {
        let spent = self.dir.join(SPENT_DIR);
        for (u, by) in self.list(true)? {
            if by.as_deref() == Some(node) {
                let path = spent.join(format!("{}.{node}", u.name()));
                return match fs::read_to_string(&path) {
                    Ok(text) => Ok(parse_tags(&text)),
                    // Expired and removed by `create` since the listing.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                    Err(source) => Err(TokenError::Io { path, source }),
                };
            }
        }
        Ok(Vec::new())
    }

    /// Every admitted node whose token had tags, with them: what the master's registry must
    /// hold (it reconciles at start, in case it stopped between admitting and recording).
    pub fn tagged_nodes(&self) -> Result<Vec<(String, Vec<String>)>, TokenError> {
        let spent = self.dir.join(SPENT_DIR);
        let mut out = Vec::new();
        for (u, by) in self.list(true)? {
            let Some(node) = by else { continue };
            let path = spent.join(format!("{}.{node}", u.name()));
            if let Ok(text) = fs::read_to_string(&path) {
                let tags = parse_tags(&text);
                if !tags.is_empty() {
                    out.push((node, tags));
                }
            }
        }
        Ok(out)
    }

    /// Admits `node` with `token`: by the record of a use it already spent, or by spending
    /// one, on disk.
    fn spend(&self, token: &str, node: &str, now: Timestamp) -> Result<Spend, TokenError> {
        let valid = |u: &Use| u.token == token && u.expires > now.as_secs();
        let spent = self.list(true)?;
        if spent.iter().any(|(u, by)| valid(u) && by.as_deref() == Some(node)) {
            return Ok(Spend::Admitted);
        }
        // `create` never makes a token of more uses, but one written by an older version or
        // by hand could have more: the cap holds whatever is on disk.
        if spent.iter().filter(|(u, _)| u.token == token).count() >= MAX_USES_PER_TOKEN as usize {
            return Ok(Spend::AtCap);
        }
        // A concurrent spender may take a use between our listing and our rename: try the
        // next. Each failure means another spender used that use, so this ends.
        for (u, _) in self.list(false)?.into_iter().filter(|(u, _)| valid(u)) {
            let to = self.dir.join(SPENT_DIR).join(format!("{}.{node}", u.name()));
            match fs::rename(self.dir.join(u.name()), to) {
                Ok(()) => {
                    self.sync()?;
                    return Ok(Spend::Admitted);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(e)),
            }
        }
        Ok(Spend::Invalid)
    }
}

/// What [`Tokens::spend`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Spend {
    /// A use is spent on (or was already spent on) the node.
    Admitted,
    /// The token is unknown, used up or expired.
    Invalid,
    /// The token already admitted [`MAX_USES_PER_TOKEN`] nodes.
    AtCap,
}

impl EnrollmentPolicy for Tokens {
    fn admit(&mut self, request: &EnrollRequest, now: Timestamp) -> Result<Admission, EnrollError> {
        let token = request.token.as_ref().ok_or(EnrollError::TokenRequired)?;
        if !valid_token(token) {
            return Err(EnrollError::InvalidToken);
        }
        // Spent on disk, with whom it admitted, before it admits anyone.
        let node = request.node_id().to_string();
        match self.spend(token, &node, now) {
            Ok(Spend::Admitted) => Ok(self.admission),
            Ok(Spend::Invalid) => Err(EnrollError::InvalidToken),
            Ok(Spend::AtCap) => {
                tracing::warn!(admitted = MAX_USES_PER_TOKEN, "a token at its cap was refused");
                Err(EnrollError::Refused(format!(
                    "this token already admitted {MAX_USES_PER_TOKEN} nodes, the most one admits"
                )))
            }
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
        request_by(&Identity::generate(&mut OsRng), token)
    }

    fn request_by(identity: &Identity, token: &str) -> EnrollRequest {
        let network = crate::trust::Authority::new(Identity::generate(&mut OsRng)).network_key();
        EnrollRequest::new(identity, &network, Some(token.to_owned()))
    }

    fn unused(dir: &Path) -> usize {
        fs::read_dir(dir.join(TOKENS_DIR))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count()
    }

    #[test]
    fn a_token_admits_at_most_max_uses_per_token() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let mut tokens = Tokens::open(dir.path()).unwrap();
        // An expired use, which a create that went ahead would sweep away.
        let brief = TokenOptions { valid_for: Duration::from_secs(1), ..Default::default() };
        tokens.create(now, brief).unwrap();
        let later = Timestamp::from_secs(1_700_000_010);
        let over = MAX_USES_PER_TOKEN + 1;
        let refused = tokens.create(later, TokenOptions { uses: over, ..Default::default() });
        assert!(matches!(refused, Err(TokenError::TooManyUses(n)) if n == over), "{refused:?}");
        assert_eq!(unused(dir.path()), 1, "refused: nothing created, nothing swept");
        assert!(tokens.create(later, TokenOptions { uses: 3, ..Default::default() }).is_ok());

        // A token with more uses on disk than the cap (an older version's, or hand-made)
        // stops admitting new nodes at the cap, but still readmits one it admitted.
        let token = "c".repeat(32);
        let expires = now.as_secs() + 3600;
        let known = Identity::generate(&mut OsRng);
        let spent = dir.path().join(TOKENS_DIR).join(SPENT_DIR);
        for n in 1..=MAX_USES_PER_TOKEN {
            let by = if n == 1 { known.node_id().to_string() } else { format!("node{n}") };
            fs::write(spent.join(format!("{token}.{n}.{expires}.{by}")), "").unwrap();
        }
        let spare = dir.path().join(TOKENS_DIR).join(format!("{token}.{over}.{expires}"));
        fs::write(&spare, "").unwrap();
        let refused = tokens.admit(&request(&token), now);
        assert!(matches!(refused, Err(EnrollError::Refused(_))), "{refused:?}");
        assert!(spare.exists(), "the spare use is not spent");
        assert!(tokens.admit(&request_by(&known, &token), now).is_ok(), "lost answer: readmitted");
    }

    #[test]
    fn tokens_are_spent_on_disk_and_seen_by_every_opener() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let mut tokens = Tokens::open(dir.path()).unwrap();
        let once = tokens.create(now, TokenOptions::default()).unwrap();
        let twice = tokens.create(now, TokenOptions { uses: 2, ..Default::default() }).unwrap();
        let short = TokenOptions { uses: 5, valid_for: Duration::from_secs(60), tags: Vec::new() };
        let brief = tokens.create(now, short).unwrap();
        assert_eq!(tokens.remaining(now).unwrap(), 8);

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
        assert_eq!(again.remaining(now).unwrap(), 5);
        assert_eq!(again.remaining(later).unwrap(), 0);
        assert_eq!(again.admit(&request("nope"), now), Err(EnrollError::InvalidToken));
        assert_eq!(again.admit(&request("../x"), now), Err(EnrollError::InvalidToken));
        // Creating sweeps the expired token's five uses out.
        again.create(later, TokenOptions::default()).unwrap();
        assert_eq!(unused(dir.path()), 1);
    }

    #[test]
    fn a_node_whose_answer_was_lost_is_admitted_again_without_a_second_use() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::from_secs(1_700_000_000);
        let mut tokens = Tokens::open(dir.path()).unwrap();
        let token = tokens.create(now, TokenOptions { uses: 2, ..Default::default() }).unwrap();
        let (a, b, c) = (
            Identity::generate(&mut OsRng),
            Identity::generate(&mut OsRng),
            Identity::generate(&mut OsRng),
        );
        assert!(tokens.admit(&request_by(&a, &token), now).is_ok());
        // The master restarts; node a asks again (it never got its certificate).
        let mut restarted = Tokens::open(dir.path()).unwrap();
        assert!(restarted.admit(&request_by(&a, &token), now).is_ok());
        assert_eq!(restarted.remaining(now).unwrap(), 1, "a's retry spent nothing");
        assert!(restarted.admit(&request_by(&b, &token), now).is_ok());
        assert_eq!(restarted.admit(&request_by(&c, &token), now), Err(EnrollError::InvalidToken));
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

    #[test]
    fn tags_travel_with_the_token_to_the_node_it_admits() {
        let dir = tempfile::tempdir().unwrap();
        let mut tokens = Tokens::open(dir.path()).unwrap();
        let now = Timestamp::from_secs(1_000);
        let tags = vec!["kiosk".to_owned(), "site:berlin".to_owned()];
        let options = TokenOptions { uses: 2, tags: tags.clone(), ..Default::default() };
        let token = tokens.create(now, options).unwrap();
        let plain = tokens.create(now, TokenOptions::default()).unwrap();
        let (tagged, untagged) = (request(&token), request(&plain));
        tokens.admit(&tagged, now).unwrap();
        tokens.admit(&untagged, now).unwrap();
        let (a, b) = (tagged.node_id().to_string(), untagged.node_id().to_string());
        assert_eq!(tokens.tags_of(&a).unwrap(), tags);
        assert!(tokens.tags_of(&b).unwrap().is_empty());
        assert_eq!(tokens.tagged_nodes().unwrap(), vec![(a, tags)]);
        for bad in ["", "Upper", "white space", &"x".repeat(65)] {
            let options = TokenOptions { tags: vec![bad.to_owned()], ..Default::default() };
            assert!(matches!(tokens.create(now, options), Err(TokenError::BadTag(_))), "{bad:?}");
        }
        let many =
            TokenOptions { tags: (0..17).map(|i| format!("t{i}")).collect(), ..Default::default() };
        assert!(matches!(tokens.create(now, many), Err(TokenError::BadTag(_))));
    }
}
