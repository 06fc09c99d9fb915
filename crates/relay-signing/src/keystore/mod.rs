//! Key files on disk, one per agent (`<dir>/<agent>.key.json`; the daemon
//! uses `.agent-relay/keys/`).
//!
//! * Agent names become file names only if they are 1-64 characters from
//!   `[A-Za-z0-9_.-]` and do not start with `.`; anything else is refused,
//!   never rewritten, so no name can reach outside the directory.
//! * The directory is created with mode 0700 and files with 0600. Files are
//!   written to a temporary file and renamed into place, so a crash never
//!   leaves half a key. A file holding secrets that others can read is
//!   refused on load (`chmod 600` fixes it).
//! * Rotation keeps the old key as *retired*, verifying until
//!   `now + overlap`, so messages in flight still verify; revocation is
//!   immediate.
//!
//! Concurrent writers to the same agent's file are not coordinated: the
//! last rename wins.

mod file;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use file::{
    KeyFile, KeyRing, KeySummary, PublicKeyExport, PublicRetiredKey, RetiredKey, HMAC_EXPORT_NOTE,
};

use crate::error::KeystoreError;
use crate::signature::Algorithm;
use crate::verify::{KeyLookup, KeyStatus};

/// Suffix of every key file name.
pub const KEY_FILE_SUFFIX: &str = ".key.json";

/// Longest agent name accepted (as in relay-protocol).
pub const MAX_KEY_NAME_LEN: usize = relay_protocol::ids::MAX_NAME_LEN;

/// Key files larger than this are refused as corrupt.
const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// Checks that `name` can be used as a key file name.
pub fn validate_key_name(name: &str) -> Result<(), KeystoreError> {
    let bad = |reason: String| KeystoreError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if name.len() > MAX_KEY_NAME_LEN {
        return Err(bad(format!(
            "it is longer than {MAX_KEY_NAME_LEN} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad(format!("it contains {c:?}")));
    }
    if name.starts_with('.') {
        return Err(bad("it starts with '.'".into()));
    }
    Ok(())
}

/// A directory of key files.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The key store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Keystore {
        Keystore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key file path of `agent`.
    pub fn path_for(&self, agent: &str) -> Result<PathBuf, KeystoreError> {
        validate_key_name(agent)?;
        Ok(self.dir.join(format!("{agent}{KEY_FILE_SUFFIX}")))
    }

    /// Creates a key file with a new key that never expires; fails if the
    /// agent already has one.
    pub fn create(
        &self,
        agent: &str,
        algorithm: Algorithm,
        now: u64,
    ) -> Result<KeyFile, KeystoreError> {
        self.create_with_expiry(agent, algorithm, now, None)
    }

    /// Creates a key file whose key expires at `expires_at`.
    pub fn create_with_expiry(
        &self,
        agent: &str,
        algorithm: Algorithm,
        now: u64,
        expires_at: Option<u64>,
    ) -> Result<KeyFile, KeystoreError> {
        let file = KeyFile::generate(agent, algorithm, now, expires_at)?;
        self.write(&file, false)?;
        Ok(file)
    }

    /// Reads and checks `agent`'s key file.
    pub fn load(&self, agent: &str) -> Result<KeyFile, KeystoreError> {
        let path = self.path_for(agent)?;
        let io = |source| KeystoreError::Io {
            path: path.clone(),
            source,
        };
        let mut handle = match fs::File::open(&path) {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::NotFound {
                    agent: agent.to_string(),
                    path,
                })
            }
            Err(e) => return Err(io(e)),
        };
        let meta = handle.metadata().map_err(io)?;
        let corrupt = |reason: String| KeystoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        if !meta.is_file() {
            return Err(corrupt("not a regular file".into()));
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(corrupt(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
        }
        let mut text = String::new();
        (&mut handle)
            .take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(io)?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        file.validate().map_err(corrupt)?;
        if file.agent != agent {
            return Err(corrupt(format!("it names agent {:?}", file.agent)));
        }
        if file.has_secrets() {
            check_private(&path, &meta)?;
        }
        Ok(file)
    }

    /// Writes `file` (replacing the agent's key file, if any).
    pub fn save(&self, file: &KeyFile) -> Result<(), KeystoreError> {
        self.write(file, true)
    }

    /// Gives `agent` a new current key; the old one verifies for
    /// `overlap_ms` more.
    pub fn rotate(&self, agent: &str, now: u64, overlap_ms: u64) -> Result<KeyFile, KeystoreError> {
        let mut file = self.load(agent)?;
        file.rotate(now, overlap_ms)?;
        self.save(&file)?;
        Ok(file)
    }

    /// Revokes key `key_id` of `agent`.
    pub fn revoke(&self, agent: &str, key_id: &str) -> Result<KeyFile, KeystoreError> {
        let mut file = self.load(agent)?;
        file.revoke(key_id)?;
        self.save(&file)?;
        Ok(file)
    }

    /// The shareable part of `agent`'s keys (no seed, no secret).
    pub fn export_public(&self, agent: &str) -> Result<PublicKeyExport, KeystoreError> {
        Ok(self.load(agent)?.public_export())
    }

    /// Every key file in the directory, sorted by agent; a file that cannot
    /// be loaded is listed as its error. A missing directory lists nothing.
    pub fn list(&self) -> Result<Vec<Result<KeySummary, KeystoreError>>, KeystoreError> {
        Ok(self
            .agents()?
            .iter()
            .map(|agent| self.load(agent).map(|f| f.summary()))
            .collect())
    }

    /// Loads every key file into a [`KeyRing`]; files that cannot be loaded
    /// are returned beside it.
    pub fn key_ring(&self) -> Result<(KeyRing, Vec<KeystoreError>), KeystoreError> {
        let mut ring = KeyRing::new();
        let mut problems = Vec::new();
        for agent in self.agents()? {
            match self.load(&agent) {
                Ok(file) => ring.insert(&file),
                Err(e) => problems.push(e),
            }
        }
        Ok((ring, problems))
    }

    /// Agents with a key file, sorted.
    fn agents(&self) -> Result<Vec<String>, KeystoreError> {
        let io = |source| KeystoreError::Io {
            path: self.dir.clone(),
            source,
        };
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut agents = Vec::new();
        for entry in entries {
            let name = entry.map_err(io)?.file_name();
            let Some(agent) = name.to_str().and_then(|n| n.strip_suffix(KEY_FILE_SUFFIX)) else {
                continue;
            };
            if validate_key_name(agent).is_ok() {
                agents.push(agent.to_string());
            }
        }
        agents.sort();
        Ok(agents)
    }

    fn write(&self, file: &KeyFile, replace: bool) -> Result<(), KeystoreError> {
        file.validate().map_err(|reason| KeystoreError::Corrupt {
            path: self.dir.join(format!("{}{KEY_FILE_SUFFIX}", file.agent)),
            reason,
        })?;
        let path = self.path_for(&file.agent)?;
        create_private_dir(&self.dir)?;
        let io = |path: &Path, source| KeystoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut json = serde_json::to_string_pretty(file).map_err(|e| KeystoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        json.push('\n');
        let tmp = self.dir.join(format!(
            ".{}{KEY_FILE_SUFFIX}.tmp-{}-{:016x}",
            file.agent,
            std::process::id(),
            getrandom::u64().unwrap_or(0)
        ));
        let result = write_new_private(&tmp, json.as_bytes())
            .map_err(|e| io(&tmp, e))
            .and_then(|()| {
                if replace {
                    fs::rename(&tmp, &path).map_err(|e| io(&path, e))
                } else {
                    // A hard link fails if the target exists: create-if-absent, atomically.
                    match fs::hard_link(&tmp, &path) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            Err(KeystoreError::AlreadyExists {
                                agent: file.agent.clone(),
                                path: path.clone(),
                            })
                        }
                        Err(e) => Err(io(&path, e)),
                    }
                }
            });
        // After a rename the temporary file is gone already; otherwise clean up.
        let _ = fs::remove_file(&tmp);
        result
    }
}

impl KeyLookup for Keystore {
    /// Reads the signer's key file on every call; a file that cannot be
    /// loaded knows no keys. Use a [`KeyRing`] on hot paths.
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus {
        match self.load(signer) {
            Ok(file) => file.status(key_id),
            Err(_) => KeyStatus::Unknown,
        }
    }
}

fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options.open(path)?;
    handle.write_all(bytes)?;
    handle.sync_all()
}

fn create_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| KeystoreError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), KeystoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeystoreError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeystoreError> {
    Ok(())
}
