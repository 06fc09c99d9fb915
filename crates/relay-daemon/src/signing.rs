//! Signature checks on ingress (`[signing]`).
//!
//! Every SEND (and consensus command, SPAWN, RELEASE) is checked against the authenticated
//! connection name before it is routed: a present signature must verify (key known, not revoked
//! or expired, time within the replay window, message id never used before by that signer —
//! remembered in storage so a restart does not reopen the window). A missing signature is
//! accepted, logged or refused according to `require_signatures`. `_sig` travels unchanged on
//! every DELIVER, so recipients can verify too.
//!
//! The work is split in two. [`Verifier`] holds what a check needs apart from the replay cache
//! (keys, window, requirement) and is shared with the connection tasks: each checks a signed
//! frame's signature as the frame arrives ([`Verifier::precheck`]), in parallel with the other
//! connections and while the frame's bytes are still in that core's cache. [`SigningGuard`],
//! owned by the router, adds the replay check, which needs the one ordered view of every
//! accepted signature; it verifies a signature itself only when no precheck came with the frame.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use relay_config::SigningSection;
use relay_protocol::{Envelope, MessageType};
use relay_signing::{
    KeyLookup, KeyRing, KeyStatus, Keystore, Replay, ReplayCache, ReplayEntry, SharedSecret,
    SignatureRef,
};

/// The signatures a replay could still use now (made within the replay window), as the store
/// selects them: what a restart reloads, and what removing an agent's messages keeps.
pub fn replayable_now(config: &SigningSection) -> relay_store::SignatureHorizon {
    let window_ms = config.replay_window_secs as i64 * 1000;
    relay_store::SignatureHorizon::of_window(relay_protocol::now_ms() as i64, window_ms)
}

/// What to do with messages that carry no signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Off,
    Warn,
    Enforce,
}

impl Requirement {
    /// Reads `signing.require_signatures`, which the configuration has checked to be one of
    /// `off`, `warn`, `enforce` or the original's `true`/`false`.
    pub fn parse(s: &str) -> Requirement {
        match s {
            "enforce" | "true" => Requirement::Enforce,
            "warn" => Requirement::Warn,
            _ => Requirement::Off,
        }
    }
}

/// The verdict on one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed and verified at signing time `t` (`_sig.m` is the frame's `id`: verification
    /// checks that).
    Verified { t: u64 },
    /// Unsigned, and that is acceptable here.
    Unsigned,
}

/// A connection task's finding on one signed frame, handed to the router with the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// The signature verifies for the connection's agent, signed at `t` for the frame's `id`;
    /// the replay check is still to do. `checked_at` is the clock reading the check used (ms
    /// since the epoch), which the replay check reuses instead of reading the clock again.
    Verified { t: u64, checked_at: u64 },
    /// Refused; why.
    Refused(String),
}

/// The frame types whose signatures the router checks (see [`SigningGuard::check`]); the
/// connection tasks precheck these. A type missing here is still checked, by the router.
pub fn checked_on_ingress(msg_type: &MessageType) -> bool {
    use MessageType as T;
    matches!(
        msg_type,
        T::Send
            | T::ChannelMessage
            | T::Ack
            | T::ProposalCreate
            | T::Vote
            | T::ConsensusCancel
            | T::Spawn
            | T::Release
    )
}

enum Keys {
    Shared(SharedSecret),
    /// Per-agent key files, re-read off the router task by [`refresh_keys`]. Written about once
    /// a second; read (briefly, for one key lookup) by every signed frame.
    PerAgent(RwLock<KeyRing>),
}

impl KeyLookup for Keys {
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus {
        match self {
            Keys::Shared(secret) => KeyLookup::key(secret, signer, key_id),
            // A panic elsewhere while holding the lock leaves a whole ring behind (it is only
            // ever replaced or extended by one insert), so a poisoned lock is still usable.
            Keys::PerAgent(ring) => ring
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .key(signer, key_id),
        }
    }
}

/// The signature checks that need no router state; shared by the router and the connection
/// tasks.
pub struct Verifier {
    requirement: Requirement,
    allow_unsigned: HashSet<String>,
    window_ms: u64,
    keys: Keys,
    keys_dir: PathBuf,
    /// Bumped (under the ring's write lock) by every [`Verifier::insert_key`], so that a reload
    /// read from disk before the insert cannot overwrite it ([`Verifier::replace_keys`]).
    inserts: AtomicU64,
}

impl Verifier {
    /// Loads the keys `config` names (the shared secret, or the key files in `keys_dir`).
    pub fn new(config: &SigningSection, keys_dir: PathBuf) -> Verifier {
        let keys = if config.shared_secret.is_empty() {
            Keys::PerAgent(RwLock::new(load_ring(&Keystore::new(&keys_dir))))
        } else {
            Keys::Shared(SharedSecret::new(&config.shared_secret))
        };
        Verifier {
            requirement: Requirement::parse(&config.require_signatures),
            allow_unsigned: config.allow_unsigned_from.iter().cloned().collect(),
            window_ms: config.replay_window_secs * 1000,
            keys,
            keys_dir,
            inserts: AtomicU64::new(0),
        }
    }

    /// Checks the signature of a frame from the connection of agent `signer`, everything but
    /// replay: `None` when the frame carries no `_sig`.
    pub fn precheck(&self, env: &Envelope, signer: &str) -> Option<Precheck> {
        let sig = match SignatureRef::from_envelope(env) {
            Ok(Some(sig)) => sig,
            Ok(None) => return None,
            Err(e) => return Some(Precheck::Refused(format!("signature is malformed: {e}"))),
        };
        let now = relay_protocol::now_ms();
        let verified = relay_signing::verify(
            env,
            signer,
            env.to.as_deref(),
            &sig,
            &self.keys,
            now,
            self.window_ms,
        );
        Some(match verified {
            Ok(()) => Precheck::Verified {
                t: sig.t,
                checked_at: now,
            },
            Err(e) => Precheck::Refused(format!("signature rejected: {e}")),
        })
    }

    fn unsigned(&self, sender: &str) -> Result<Verdict, String> {
        match self.requirement {
            Requirement::Off => Ok(Verdict::Unsigned),
            Requirement::Warn => {
                tracing::warn!(sender, "unsigned message delivered (signing.require_signatures = \"warn\")");
                Ok(Verdict::Unsigned)
            }
            Requirement::Enforce if self.allow_unsigned.contains(sender) => Ok(Verdict::Unsigned),
            Requirement::Enforce => Err(format!(
                "unsigned message from {sender} refused: signatures are required (sign with the agent's key, or add it to signing.allow_unsigned_from)"
            )),
        }
    }

    /// Makes one agent's keys known at once (a key just provisioned for a spawned agent), ahead
    /// of the next reload from disk.
    pub fn insert_key(&self, file: &relay_signing::KeyFile) {
        if let Keys::PerAgent(ring) = &self.keys {
            let mut ring = ring.write().unwrap_or_else(PoisonError::into_inner);
            ring.insert(file);
            self.inserts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks the start of a reload from disk; pass it to [`Verifier::replace_keys`].
    pub fn reload_started(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed)
    }

    /// Takes a freshly loaded set of per-agent keys (new agents, rotations, revocations), unless
    /// a key was inserted since the load `started`: that ring may lack it (the key file was
    /// written after the directory was read), so it is dropped and the next reload applies.
    /// Returns whether the ring was taken.
    pub fn replace_keys(&self, fresh: KeyRing, started: u64) -> bool {
        let Keys::PerAgent(ring) = &self.keys else {
            return false;
        };
        let mut ring = ring.write().unwrap_or_else(PoisonError::into_inner);
        // Inserts bump the counter while holding this lock: the comparison cannot race one.
        if self.inserts.load(Ordering::Relaxed) != started {
            return false;
        }
        *ring = fresh;
        true
    }

    pub fn keys_dir(&self) -> &std::path::Path {
        &self.keys_dir
    }
}

/// The daemon's signature checker; owned by the router.
pub struct SigningGuard {
    verifier: Arc<Verifier>,
    replay: ReplayCache,
}

impl SigningGuard {
    /// Builds the guard; `recent` are the (signer, id, time) triples remembered in storage.
    pub fn new(verifier: Arc<Verifier>, recent: Vec<(String, String, i64)>) -> SigningGuard {
        let mut replay = ReplayCache::default();
        let now = relay_protocol::now_ms();
        let entries = recent.into_iter().map(|(signer, m, t)| ReplayEntry {
            signer,
            m,
            t: t.max(0) as u64,
        });
        let loaded = replay.load(entries, None, now, verifier.window_ms);
        if loaded > 0 {
            tracing::info!(loaded, "signature replay cache restored");
        }
        SigningGuard { verifier, replay }
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn window_ms(&self) -> u64 {
        self.verifier.window_ms
    }

    /// Checks a frame from `sender`. `precheck` is the connection task's finding on this very
    /// frame, made for the same agent: a connection's agent name is fixed at registration.
    /// Without one (the frame reached the router another way) the signature is verified here.
    /// `Err` carries why the frame is refused.
    pub fn check(
        &mut self,
        env: &Envelope,
        sender: &str,
        precheck: Option<Precheck>,
    ) -> Result<Verdict, String> {
        self.check_with(env, sender, precheck, false)
    }

    /// [`SigningGuard::check`] for the retry of a broadcast that some recipients refused (NACK
    /// BUSY) and are still owed: its id was accepted before, so the replay cache has it, and
    /// that is expected. The signature must still verify inside the window; the router sends
    /// the retry only to the recipients owed it, so nobody gets the message twice.
    pub fn check_owed_retry(
        &mut self,
        env: &Envelope,
        sender: &str,
        precheck: Option<Precheck>,
    ) -> Result<Verdict, String> {
        self.check_with(env, sender, precheck, true)
    }

    fn check_with(
        &mut self,
        env: &Envelope,
        sender: &str,
        precheck: Option<Precheck>,
        owed_retry: bool,
    ) -> Result<Verdict, String> {
        match precheck.or_else(|| self.verifier.precheck(env, sender)) {
            None => self.verifier.unsigned(sender),
            Some(Precheck::Refused(why)) => Err(why),
            Some(Precheck::Verified { t, checked_at }) => {
                match self.replay.check_and_insert(
                    sender,
                    &env.id,
                    t,
                    checked_at,
                    self.verifier.window_ms,
                ) {
                    Ok(()) => Ok(Verdict::Verified { t }),
                    Err(Replay::Seen { .. }) if owed_retry => Ok(Verdict::Verified { t }),
                    Err(e) => Err(format!("signature rejected: {e}")),
                }
            }
        }
    }

    /// Whether a signed frame `id` from `sender` was accepted within the replay window: the
    /// replay cache refuses another signed copy, and the router takes an unsigned one for a
    /// duplicate.
    pub fn accepted_signed(&self, sender: &str, id: &str) -> bool {
        self.replay.contains(sender, id)
    }

    /// Under `enforce`, consensus commands and spawn requests need a signature from everyone,
    /// `allow_unsigned_from` included.
    pub fn enforced(&self) -> bool {
        self.verifier.requirement == Requirement::Enforce
    }

    pub fn forget_expired(&mut self) {
        self.replay
            .evict_expired(relay_protocol::now_ms(), self.verifier.window_ms);
    }
}

fn load_ring(store: &Keystore) -> KeyRing {
    match store.key_ring() {
        Ok((ring, problems)) => {
            for p in problems {
                tracing::warn!("skipping a key file: {p}");
            }
            ring
        }
        Err(e) => {
            tracing::debug!("no key files loaded: {e}");
            KeyRing::new()
        }
    }
}

/// Keeps the shared key ring fresh until `shutdown`: re-reads the key files every second (so
/// keys created, rotated or revoked with `agent-relay keys` take effect at once) and, with
/// `key_rotation_hours`, rotates keys that are due. All file I/O happens here, off the router
/// and the connection tasks.
pub async fn refresh_keys(
    verifier: Arc<Verifier>,
    config: SigningSection,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let store = Arc::new(Keystore::new(verifier.keys_dir()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let s = store.clone();
        let rotation = config.key_rotation_hours * 3_600_000;
        let overlap = config.rotation_overlap_hours * 3_600_000;
        let started = verifier.reload_started();
        let loaded = tokio::task::spawn_blocking(move || {
            if rotation > 0 {
                rotate_due(&s, rotation, overlap);
            }
            load_ring(&s)
        })
        .await;
        if let Ok(ring) = loaded {
            if !verifier.replace_keys(ring, started) {
                tracing::debug!(
                    "key reload skipped: a key was provisioned while it read the files"
                );
            }
        }
    }
}

/// Rotates every key older than `every_ms`, keeping the old one valid for `overlap_ms`.
fn rotate_due(store: &Keystore, every_ms: u64, overlap_ms: u64) {
    let now = relay_protocol::now_ms();
    let Ok(summaries) = store.list() else { return };
    for summary in summaries.into_iter().flatten() {
        if summary.can_sign && now.saturating_sub(summary.created_at) >= every_ms {
            match store.rotate(&summary.agent, now, overlap_ms) {
                Ok(_) => tracing::info!(agent = %summary.agent, "signing key rotated on schedule"),
                Err(e) => {
                    tracing::warn!(agent = %summary.agent, "scheduled key rotation failed: {e}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use relay_protocol::{PayloadKind, SendPayload};
    use relay_signing::{Algorithm, SigningKey};

    use super::*;

    fn config(secret: &str, requirement: &str) -> SigningSection {
        SigningSection {
            enabled: true,
            shared_secret: secret.to_string(),
            require_signatures: requirement.to_string(),
            allow_unsigned_from: vec!["legacy".to_string()],
            ..SigningSection::default()
        }
    }

    fn send(to: &str, body: &str) -> Envelope {
        let mut env = Envelope::new(
            MessageType::Send,
            &SendPayload {
                kind: PayloadKind::Message,
                body: body.to_string(),
                data: None,
                thread: None,
            },
        );
        env.to = Some(to.to_string());
        env
    }

    fn signed(signer: &str, key: &SigningKey, body: &str) -> Envelope {
        let mut env = send("bob", body);
        relay_signing::sign(&env, signer, key, relay_protocol::now_ms())
            .expect("a plain payload has a canonical form")
            .attach_to(&mut env);
        env
    }

    fn guard(verifier: &Arc<Verifier>) -> SigningGuard {
        SigningGuard::new(verifier.clone(), Vec::new())
    }

    #[test]
    fn an_owed_retry_passes_the_replay_check_but_not_the_others() {
        let verifier = Arc::new(Verifier::new(&config("s3cret", "enforce"), "keys".into()));
        let key = SharedSecret::new("s3cret").signing_key();
        let env = signed("alice", &key, "to all");
        let mut guard = guard(&verifier);
        assert!(matches!(
            guard.check(&env, "alice", None),
            Ok(Verdict::Verified { .. })
        ));
        // Seen before: refused as a replay, but let through as a retry of an owed broadcast.
        assert!(guard.check(&env, "alice", None).is_err());
        assert!(matches!(
            guard.check_owed_retry(&env, "alice", None),
            Ok(Verdict::Verified { .. })
        ));
        // A retry still needs a good signature, from the connection's agent, inside the window.
        let mut tampered = env.clone();
        tampered.payload =
            relay_protocol::to_raw(&serde_json::json!({"kind":"message","body":"x"}));
        assert!(guard.check_owed_retry(&tampered, "alice", None).is_err());
        assert!(guard.check_owed_retry(&env, "mallory", None).is_err());
        let mut stale = send("bob", "old");
        relay_signing::sign(&stale, "alice", &key, relay_protocol::now_ms() - 3_600_000)
            .expect("sign")
            .attach_to(&mut stale);
        let refused = guard.check_owed_retry(&stale, "alice", None);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("ms from now")),
            "{refused:?}"
        );
    }

    #[test]
    fn a_precheck_is_taken_as_found_and_the_replay_check_still_runs() {
        let verifier = Arc::new(Verifier::new(&config("s3cret", "enforce"), "keys".into()));
        let key = SharedSecret::new("s3cret").signing_key();
        let env = signed("alice", &key, "hello");
        let found = verifier
            .precheck(&env, "alice")
            .expect("the frame is signed");
        assert!(
            matches!(found, Precheck::Verified { .. }),
            "a good signature is verified: {found:?}"
        );

        let mut guard = guard(&verifier);
        let verdict = guard.check(&env, "alice", Some(found.clone()));
        assert!(
            matches!(verdict, Ok(Verdict::Verified { .. })),
            "{verdict:?}"
        );
        // The same frame again: its precheck passes, the router's replay check refuses it.
        let again = guard.check(&env, "alice", verifier.precheck(&env, "alice"));
        assert!(
            again
                .as_ref()
                .is_err_and(|e| e.contains("already accepted")),
            "{again:?}"
        );
        // A refusal found by the connection task is final.
        let refused = guard.check(&env, "alice", Some(Precheck::Refused("bad".into())));
        assert_eq!(refused, Err("bad".to_string()));
    }

    #[test]
    fn without_a_precheck_the_router_verifies_the_signature_itself() {
        let verifier = Arc::new(Verifier::new(&config("s3cret", "enforce"), "keys".into()));
        let key = SharedSecret::new("s3cret").signing_key();
        let mut guard = guard(&verifier);

        let good = signed("alice", &key, "hello");
        assert!(matches!(
            guard.check(&good, "alice", None),
            Ok(Verdict::Verified { .. })
        ));

        // Signed by alice, sent on bob's connection: refused by both paths alike.
        let other = signed("alice", &key, "hello again");
        let found = verifier.precheck(&other, "bob");
        assert!(matches!(found, Some(Precheck::Refused(_))), "{found:?}");
        let verdict = guard.check(&other, "bob", None);
        assert!(
            verdict
                .as_ref()
                .is_err_and(|e| e.starts_with("signature rejected")),
            "{verdict:?}"
        );

        let mut tampered = signed("alice", &key, "pay 10");
        tampered.payload = relay_protocol::to_raw(&SendPayload {
            kind: PayloadKind::Message,
            body: "pay 1000".into(),
            data: None,
            thread: None,
        });
        assert!(matches!(
            verifier.precheck(&tampered, "alice"),
            Some(Precheck::Refused(_))
        ));
        assert!(guard.check(&tampered, "alice", None).is_err());

        let wrong_key = SharedSecret::new("guess").signing_key();
        let forged = signed("alice", &wrong_key, "hello");
        assert!(guard.check(&forged, "alice", None).is_err());
    }

    #[test]
    fn unsigned_frames_follow_the_requirement() {
        let unsigned = send("bob", "hi");
        let enforce = Arc::new(Verifier::new(&config("s3cret", "enforce"), "keys".into()));
        assert_eq!(enforce.precheck(&unsigned, "alice"), None);
        let mut guard = guard(&enforce);
        let refused = guard.check(&unsigned, "alice", None);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("signatures are required")),
            "{refused:?}"
        );
        assert_eq!(
            guard.check(&unsigned, "legacy", None),
            Ok(Verdict::Unsigned)
        );

        let warn = Arc::new(Verifier::new(&config("s3cret", "warn"), "keys".into()));
        assert_eq!(
            super::SigningGuard::new(warn, Vec::new()).check(&unsigned, "alice", None),
            Ok(Verdict::Unsigned)
        );
    }

    #[test]
    fn keys_inserted_or_reloaded_are_seen_by_every_precheck_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Keystore::new(dir.path());
        let now = relay_protocol::now_ms();
        let verifier = Verifier::new(&config("", "enforce"), dir.path().to_path_buf());

        // Created after the verifier loaded the directory: unknown until inserted.
        let file = store
            .create("worker", Algorithm::HmacSha256, now)
            .expect("create key");
        let env = signed("worker", &file.signing_key(now).expect("key"), "task done");
        assert!(matches!(
            verifier.precheck(&env, "worker"),
            Some(Precheck::Refused(_))
        ));
        verifier.insert_key(&file);
        assert!(matches!(
            verifier.precheck(&env, "worker"),
            Some(Precheck::Verified { .. })
        ));

        // A reload that read the directory before the key was inserted is dropped...
        let started = verifier.reload_started() - 1;
        assert!(!verifier.replace_keys(KeyRing::new(), started));
        assert!(matches!(
            verifier.precheck(&env, "worker"),
            Some(Precheck::Verified { .. })
        ));
        // ...while one read after it applies: without the agent (its key file deleted), its
        // keys are gone.
        assert!(verifier.replace_keys(KeyRing::new(), verifier.reload_started()));
        assert!(matches!(
            verifier.precheck(&env, "worker"),
            Some(Precheck::Refused(_))
        ));
    }
}
