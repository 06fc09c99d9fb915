//! Message signatures: signing what the client sends (`_sig`, PROTOCOL.md §11) and verifying
//! what it receives.
//!
//! With [`ClientConfig::signing`](crate::ClientConfig::signing) set, every SEND,
//! PROPOSAL_CREATE, VOTE and CONSENSUS_CANCEL is signed as the configured agent name just
//! before it is queued; a frame that waited in the queue (while reconnecting) for more than
//! [`RESIGN_AFTER_MS`] is signed again right before it is written, so it never reaches the
//! daemon outside its replay window. Other frames (queries, ACKs, channel traffic) are never
//! signed.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_protocol::{now_ms, Envelope, MessageType};
use relay_signing::{KeyFile, Keystore, SharedSecret, SigningKey};
use tracing::{debug, warn};

use crate::error::ClientError;

/// How often a key file is re-read (to pick up rotations and revocations).
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// A signed frame still queued after this long is signed again when it is written.
pub const RESIGN_AFTER_MS: u64 = 60_000;

/// How a client signs the messages it sends.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientSigning {
    /// One HMAC secret shared by every agent (`[signing] shared_secret` of the daemon).
    SharedSecret(String),
    /// The agent's own key file in `keys_dir` (`<keys_dir>/<agent>.key.json`, as written by
    /// `agent-relay keys create`). It is read when the client connects (a missing or unusable
    /// key fails the connect) and again at most every 5 s, so rotations and revocations are
    /// picked up; if a later read fails, the last key read is kept.
    KeyFile {
        /// The daemon's key directory (`.agent-relay/keys` unless configured).
        keys_dir: PathBuf,
    },
}

impl fmt::Debug for ClientSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSigning::SharedSecret(_) => f.write_str("SharedSecret(<redacted>)"),
            ClientSigning::KeyFile { keys_dir } => f
                .debug_struct("KeyFile")
                .field("keys_dir", keys_dir)
                .finish(),
        }
    }
}

/// Whether frames of this type carry a signature (the types the daemon verifies).
pub(crate) fn is_signed_type(t: &MessageType) -> bool {
    matches!(
        t,
        MessageType::Send
            | MessageType::ChannelMessage
            | MessageType::ProposalCreate
            | MessageType::Vote
            | MessageType::ConsensusCancel
            | MessageType::Spawn
            | MessageType::Release
    )
}

/// Signs as one agent name.
pub(crate) struct Signer {
    agent: String,
    source: Source,
}

enum Source {
    Shared(Box<SigningKey>),
    File(Box<Mutex<FileKey>>),
}

/// A key file and the signing key derived from it.
struct FileKey {
    store: Keystore,
    file: KeyFile,
    /// The current key of `file`, when it can sign (not revoked, holds the private part).
    key: Option<SigningKey>,
    loaded: Instant,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Shared(_) => "shared secret",
            Source::File(_) => "key file",
        };
        f.debug_struct("Signer")
            .field("agent", &self.agent)
            .field("source", &source)
            .finish()
    }
}

impl Signer {
    /// A signer for `agent`; fails when the key cannot be read or cannot sign.
    pub(crate) fn new(agent: &str, signing: &ClientSigning) -> Result<Signer, ClientError> {
        let source = match signing {
            ClientSigning::SharedSecret(secret) => {
                if secret.is_empty() {
                    return Err(ClientError::Signing(
                        "the shared signing secret is empty; set the daemon's \
                         signing.shared_secret or sign with a key file"
                            .into(),
                    ));
                }
                Source::Shared(Box::new(SharedSecret::new(secret).signing_key()))
            }
            ClientSigning::KeyFile { keys_dir } => {
                let store = Keystore::new(keys_dir);
                let now = now_ms();
                let file = store.load(agent).map_err(|e| cannot_sign(agent, e))?;
                let key = file.signing_key(now).map_err(|e| cannot_sign(agent, e))?;
                Source::File(Box::new(Mutex::new(FileKey {
                    store,
                    file,
                    key: Some(key),
                    loaded: Instant::now(),
                })))
            }
        };
        Ok(Signer {
            agent: agent.to_string(),
            source,
        })
    }

    /// Signs `env` now and attaches `_sig`.
    pub(crate) fn sign(&self, env: &mut Envelope) -> Result<(), ClientError> {
        let now = now_ms();
        let signed = match &self.source {
            Source::Shared(key) => relay_signing::sign_into(env, &self.agent, key, now),
            Source::File(file) => {
                // A panic while holding the lock leaves a usable key behind; recover it.
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                let key = file.key_at(&self.agent, now)?;
                relay_signing::sign_into(env, &self.agent, key, now)
            }
        };
        signed.map_err(|e| {
            ClientError::Signing(format!(
                "cannot sign {} {}: {e}; send a payload without duplicate member names",
                env.msg_type, env.id
            ))
        })
    }
}

impl FileKey {
    /// The key to sign with at `now`, re-reading the file every [`RELOAD_EVERY`] and whenever
    /// the cached key cannot sign (expired, revoked).
    fn key_at(&mut self, agent: &str, now: u64) -> Result<&SigningKey, ClientError> {
        let expired = |f: &FileKey| f.file.expires_at.is_some_and(|e| now > e);
        if self.loaded.elapsed() >= RELOAD_EVERY || self.key.is_none() || expired(self) {
            self.reload(agent, now);
        }
        let usable = !expired(self);
        match &self.key {
            Some(key) if usable => Ok(key),
            _ => Err(match self.file.signing_key(now) {
                Err(e) => cannot_sign(agent, e),
                Ok(_) => ClientError::Signing(format!(
                    "cannot sign messages as {agent}: its key file has no usable key"
                )),
            }),
        }
    }

    fn reload(&mut self, agent: &str, now: u64) {
        self.loaded = Instant::now();
        match self.store.load(agent) {
            Ok(file) => {
                if file.key_id != self.file.key_id {
                    debug!(agent, key_id = %file.key_id, "signing with a new key");
                }
                self.key = file.signing_key(now).ok();
                self.file = file;
            }
            Err(e) => warn!(
                agent,
                "cannot re-read the signing key file ({e}); keeping the last key"
            ),
        }
    }
}

fn cannot_sign(agent: &str, e: relay_signing::KeystoreError) -> ClientError {
    ClientError::Signing(format!("cannot sign messages as {agent}: {e}"))
}

/// A signed frame waiting in the outgoing queue, with the envelope to sign it again if it
/// waits too long.
#[derive(Debug)]
pub(crate) struct SignedFrame {
    pub env: Envelope,
    pub frame: Bytes,
    pub signed_at: u64,
}

impl SignedFrame {
    /// The frame to write now: the queued one, or a freshly signed one if it is old. A frame
    /// that cannot be signed again is written as it is (the daemon then says why it refuses it).
    pub(crate) fn into_fresh(self, signer: Option<&Signer>, max_frame_bytes: usize) -> Bytes {
        let SignedFrame {
            mut env,
            frame,
            signed_at,
        } = self;
        let Some(signer) = signer else {
            return frame;
        };
        if now_ms().saturating_sub(signed_at) <= RESIGN_AFTER_MS {
            return frame;
        }
        match signer
            .sign(&mut env)
            .and_then(|()| crate::driver::encode(&env, max_frame_bytes))
        {
            Ok(fresh) => fresh,
            Err(e) => {
                warn!(id = %env.id, error = %e, "cannot sign a queued message again; sending it as signed before");
                frame
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_signing::{Algorithm, Signature};

    fn send() -> Envelope {
        Envelope::new(
            MessageType::Send,
            &serde_json::json!({"kind": "message", "body": "hi"}),
        )
        .to("Bob")
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let s = ClientSigning::SharedSecret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn key_files_are_reloaded_after_rotation_and_revocation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Keystore::new(dir.path());
        let created = store
            .create("Alice", Algorithm::Ed25519, now_ms())
            .expect("create");
        let signer = Signer::new(
            "Alice",
            &ClientSigning::KeyFile {
                keys_dir: dir.path().to_path_buf(),
            },
        )
        .expect("signer");
        let key_of = |signer: &Signer| {
            let mut env = send();
            signer.sign(&mut env).map(|()| {
                Signature::from_envelope(&env)
                    .expect("well-formed")
                    .expect("signed")
                    .k
            })
        };
        assert_eq!(key_of(&signer).expect("signs"), created.key_id);

        let rotated = store.rotate("Alice", now_ms(), 60_000).expect("rotate");
        // Within the reload interval the previous key (still valid in its overlap) signs.
        assert_eq!(key_of(&signer).expect("signs"), created.key_id);
        let Source::File(file) = &signer.source else {
            panic!("a key file signer");
        };
        let force_reload = || {
            file.lock().expect("lock").loaded = Instant::now() - RELOAD_EVERY;
        };
        force_reload();
        assert_eq!(key_of(&signer).expect("signs"), rotated.key_id);

        // A file that cannot be read any more keeps the last key.
        std::fs::write(store.path_for("Alice").expect("path"), "not json")
            .expect("corrupt the file");
        force_reload();
        assert_eq!(key_of(&signer).expect("signs"), rotated.key_id);

        // A revoked current key stops signing once the file is read again.
        store.save(&rotated).expect("restore");
        store.revoke("Alice", &rotated.key_id).expect("revoke");
        force_reload();
        let err = key_of(&signer).expect_err("revoked");
        assert!(err.to_string().contains("revoked"), "{err}");
    }

    #[test]
    fn missing_keys_fail_early_with_the_remedy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Signer::new(
            "Alice",
            &ClientSigning::KeyFile {
                keys_dir: dir.path().to_path_buf(),
            },
        )
        .expect_err("no key file");
        assert!(err.to_string().contains("create one first"), "{err}");
        assert!(Signer::new("Alice", &ClientSigning::SharedSecret(String::new())).is_err());
    }

    #[test]
    fn old_queued_frames_are_signed_again() {
        let signer =
            Signer::new("Alice", &ClientSigning::SharedSecret("s".into())).expect("signer");
        let old = now_ms() - RESIGN_AFTER_MS - 1_000;
        let mut env = send();
        relay_signing::sign(&env, "Alice", &SharedSecret::new("s").signing_key(), old)
            .expect("sign")
            .attach_to(&mut env);
        let frame = crate::driver::encode(&env, 1 << 20).expect("encode");
        let queued = |signed_at| SignedFrame {
            env: env.clone(),
            frame: frame.clone(),
            signed_at,
        };
        // Recently queued: written as it is; without a signer: as it is.
        assert_eq!(queued(now_ms()).into_fresh(Some(&signer), 1 << 20), frame);
        assert_eq!(queued(old).into_fresh(None, 1 << 20), frame);
        let fresh = queued(old).into_fresh(Some(&signer), 1 << 20);
        let body = fresh.get(4..).expect("a length prefix and a body");
        let resigned = Envelope::from_slice(body).expect("an envelope");
        let sig = Signature::from_envelope(&resigned)
            .expect("well-formed")
            .expect("signed");
        assert!(sig.t > old + RESIGN_AFTER_MS, "signed again at {}", sig.t);
        assert_eq!(sig.m, env.id);
    }
}
