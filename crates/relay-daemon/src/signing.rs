//! Signature checks on ingress (`[signing]`).
//!
//! Every SEND is checked against the authenticated connection name before it is routed: a
//! present signature must verify (key known, not revoked or expired, time within the replay
//! window, message id never used before by that signer — remembered in storage so a restart does
//! not reopen the window). A missing signature is accepted, logged or refused according to
//! `require_signatures`. `_sig` travels unchanged on every DELIVER, so recipients can verify too.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use relay_config::SigningSection;
use relay_protocol::Envelope;
use relay_signing::{
    KeyLookup, KeyRing, Keystore, ReplayCache, ReplayEntry, SharedSecret, Signature,
};

/// What to do with messages that carry no signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Off,
    Warn,
    Enforce,
}

impl Requirement {
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
    /// Signed and verified: the signer used message id `m` at time `t`.
    Verified { m: String, t: u64 },
    /// Unsigned, and that is acceptable here.
    Unsigned,
}

enum Keys {
    Shared(SharedSecret),
    /// Per-agent key files, re-read off the router task by [`refresh_keys`].
    PerAgent(KeyRing),
}

/// The daemon's signature checker; owned by the router.
pub struct SigningGuard {
    requirement: Requirement,
    allow_unsigned: HashSet<String>,
    window_ms: u64,
    keys: Keys,
    replay: ReplayCache,
    keys_dir: PathBuf,
}

impl SigningGuard {
    /// Builds the guard; `recent` are the (signer, id, time) triples remembered in storage.
    pub fn new(
        config: &SigningSection,
        keys_dir: PathBuf,
        recent: Vec<(String, String, i64)>,
    ) -> SigningGuard {
        let keys = if config.shared_secret.is_empty() {
            Keys::PerAgent(load_ring(&Keystore::new(&keys_dir)))
        } else {
            Keys::Shared(SharedSecret::new(&config.shared_secret))
        };
        let window_ms = config.replay_window_secs * 1000;
        let mut replay = ReplayCache::default();
        let now = relay_protocol::now_ms();
        let entries = recent.into_iter().map(|(signer, m, t)| ReplayEntry {
            signer,
            m,
            t: t.max(0) as u64,
        });
        let loaded = replay.load(entries, None, now, window_ms);
        if loaded > 0 {
            tracing::info!(loaded, "signature replay cache restored");
        }
        SigningGuard {
            requirement: Requirement::parse(&config.require_signatures),
            allow_unsigned: config.allow_unsigned_from.iter().cloned().collect(),
            window_ms,
            keys,
            replay,
            keys_dir,
        }
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Checks a SEND from `sender` addressed to `original_to`. `Err` carries why it is refused.
    pub fn check(
        &mut self,
        env: &Envelope,
        sender: &str,
        original_to: Option<&str>,
    ) -> Result<Verdict, String> {
        let sig = match Signature::from_envelope(env) {
            Ok(Some(sig)) => sig,
            Ok(None) => return self.unsigned(sender),
            Err(e) => return Err(format!("signature is malformed: {e}")),
        };
        let now = relay_protocol::now_ms();
        relay_signing::verify(
            env,
            sender,
            original_to,
            &sig,
            self.lookup(),
            now,
            self.window_ms,
        )
        .map_err(|e| format!("signature rejected: {e}"))?;
        self.replay
            .check_and_insert(sender, &sig.m, sig.t, now, self.window_ms)
            .map_err(|e| format!("signature rejected: {e}"))?;
        Ok(Verdict::Verified { m: sig.m, t: sig.t })
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

    /// Under `enforce`, consensus commands and spawn requests need a signature from everyone,
    /// `allow_unsigned_from` included.
    pub fn enforced(&self) -> bool {
        self.requirement == Requirement::Enforce
    }

    fn lookup(&self) -> &dyn KeyLookup {
        match &self.keys {
            Keys::Shared(s) => s,
            Keys::PerAgent(ring) => ring,
        }
    }

    /// Takes a freshly loaded set of per-agent keys (new agents, rotations, revocations).
    /// Makes one agent's keys known at once (a key just provisioned for a spawned agent), ahead
    /// of the next reload from disk.
    pub fn insert_key(&mut self, file: &relay_signing::KeyFile) {
        if let Keys::PerAgent(current) = &mut self.keys {
            current.insert(file);
        }
    }

    pub fn keys_dir(&self) -> &std::path::Path {
        &self.keys_dir
    }

    pub fn set_keys(&mut self, ring: KeyRing) {
        if let Keys::PerAgent(current) = &mut self.keys {
            *current = ring;
        }
    }

    pub fn forget_expired(&mut self) {
        self.replay
            .evict_expired(relay_protocol::now_ms(), self.window_ms);
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

/// Keeps the router's key ring fresh: re-reads the key files every second (so keys created,
/// rotated or revoked with `agent-relay keys` take effect at once) and, with
/// `key_rotation_hours`, rotates keys that are due. All file I/O happens here, off the router.
pub async fn refresh_keys(
    keys_dir: PathBuf,
    config: SigningSection,
    router: tokio::sync::mpsc::Sender<crate::router::RouterMsg>,
) {
    let store = std::sync::Arc::new(Keystore::new(keys_dir));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = store.clone();
        let rotation = config.key_rotation_hours * 3_600_000;
        let overlap = config.rotation_overlap_hours * 3_600_000;
        let loaded = tokio::task::spawn_blocking(move || {
            if rotation > 0 {
                rotate_due(&s, rotation, overlap);
            }
            load_ring(&s)
        })
        .await;
        let Ok(ring) = loaded else { continue };
        if router
            .send(crate::router::RouterMsg::Keys(Box::new(ring)))
            .await
            .is_err()
        {
            return;
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
