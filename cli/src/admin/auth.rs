//! The admin API's bearer token: generated into the data directory, mode 0600, and checked
//! on every request in constant time.

use std::{fs, io::Write, path::Path};

use rand_core::{OsRng, RngCore};

use super::AdminError;

/// The token file in the master's data directory.
pub(crate) const TOKEN_FILE: &str = "admin.token";

/// Reads the token, creating it (32 random bytes, hex, file mode 0600) if missing.
pub(crate) fn load_or_create_token(data_dir: &Path) -> Result<String, AdminError> {
    let path = data_dir.join(TOKEN_FILE);
    let err = |source| AdminError::Token { path: path.clone(), source };
    match fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fs::create_dir_all(data_dir).map_err(err)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(err)?;
    file.write_all(token.as_bytes()).map_err(err)?;
    file.write_all(b"\n").map_err(err)?;
    Ok(token)
}

/// Whether the `Authorization` header value carries `token`, compared in constant time.
pub(crate) fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
