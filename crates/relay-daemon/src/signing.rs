//! Signature checks on ingress (`[signing]`).
//!
//! Every SEND is checked against the authenticated connection name before it is routed: a
//! present signature must verify (key known, not revoked or expired, time within the replay
//! window, message id never used before by that signer — remembered in storage so a restart does
//! not reopen the window). A missing signature is accepted, logged or refused according to
//! `require_signatures`. `_sig` travels unchanged on every DELIVER, so recipients can verify too.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use relay_config::SigningSection;
use relay_protocol::Envelope;
use relay_signing::{
    KeyLookup, KeyRing, Keystore, ReplayCache, ReplayEntry, SharedSecret, Signature, VerifyError,
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
    PerAgent {
        store: Keystore,
        ring: KeyRing,
        loaded: Instant,
    },
}

/// The daemon's signature checker; owned by the router.
pub struct SigningGuard {
    requirement: Requirement,
    allow_unsigned: HashSet<String>,
    window_ms: u64,
    keys: Keys,
    replay: ReplayCache,
}

impl SigningGuard {
    /// Builds the guard; `recent` are the (signer, id, time) triples remembered in storage.
    pub fn new(
        config: &SigningSection,
        keys_dir: PathBuf,
        recent: Vec<(String, String, i64)>,
    ) -> SigningGuard {
        let keys = if config.shared_secret.is_empty() {
            let store = Keystore::new(keys_dir);
            let ring = load_ring(&store);
            // Allow an immediate re-read: keys may be created right after the daemon starts.
            let loaded = Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now);
            Keys::PerAgent {
                store,
                ring,
                loaded,
            }
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
        let mut result = relay_signing::verify(
            env,
            sender,
            original_to,
            &sig,
            self.lookup(),
            now,
            self.window_ms,
        );
        if matches!(result, Err(VerifyError::UnknownKey { .. })) && self.reload_keys() {
            result = relay_signing::verify(
                env,
                sender,
                original_to,
                &sig,
                self.lookup(),
                now,
                self.window_ms,
            );
        }
        result.map_err(|e| format!("signature rejected: {e}"))?;
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
            Keys::PerAgent { ring, .. } => ring,
        }
    }

    /// Re-reads the key files (new agents, rotations, revocations); at most once a second.
    fn reload_keys(&mut self) -> bool {
        match &mut self.keys {
            Keys::PerAgent {
                store,
                ring,
                loaded,
            } if loaded.elapsed() >= Duration::from_millis(200) => {
                *ring = load_ring(store);
                *loaded = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Forces a re-read of the key files (after `keys rotate`/`revoke`).
    pub fn refresh_keys(&mut self) {
        if let Keys::PerAgent {
            store,
            ring,
            loaded,
        } = &mut self.keys
        {
            *ring = load_ring(store);
            *loaded = Instant::now();
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
