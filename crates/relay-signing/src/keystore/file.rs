//! One agent's key file: its current key, retired keys still in their
//! overlap, and revoked key ids.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{KeyError, KeystoreError};
use crate::keys::{Ed25519Signing, Ed25519Verifying, HmacKey, SigningKey, VerifyKey};
use crate::signature::Algorithm;
use crate::verify::{KeyLookup, KeyStatus};

/// What [`PublicKeyExport::note`] says for HMAC keys.
pub const HMAC_EXPORT_NOTE: &str = "hmac-sha256 has no public key: the secret itself is the key, \
     and anyone who can verify can also sign. This export names the key ids only; hand the key \
     file over privately to whoever must verify.";

/// An agent's key file (`<agent>.key.json`).
///
/// JSON, camelCase: `{agent, algorithm, keyId, createdAt, expiresAt?,
/// secret? (hmac), seed? (ed25519 private, hex), public? (ed25519 public,
/// hex), retired: [...], revoked: [keyId...]}`. An Ed25519 file without
/// `seed` holds another agent's public key and can only verify.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyFile {
    /// The agent the keys belong to.
    pub agent: String,
    /// Algorithm of the current key.
    pub algorithm: Algorithm,
    /// Id of the current key.
    pub key_id: String,
    /// When the current key was made (ms since the Unix epoch).
    pub created_at: u64,
    /// When the current key stops being valid, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// HMAC secret string (hmac-sha256 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Ed25519 seed, 64 hex digits (ed25519 only; private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Ed25519 public key, 64 hex digits (ed25519 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// Keys rotated out, valid until their `validUntil`.
    #[serde(default)]
    pub retired: Vec<RetiredKey>,
    /// Ids of revoked keys.
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// A key rotated out: verifies until `valid_until`, never signs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetiredKey {
    /// Its id.
    pub key_id: String,
    /// Ed25519 public key (hex); for Ed25519 keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// HMAC secret; for HMAC keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was rotated out.
    pub retired_at: u64,
    /// Last moment its signatures verify.
    pub valid_until: u64,
}

/// The shareable part of a key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyExport {
    /// The agent.
    pub agent: String,
    /// Algorithm of the current key.
    pub algorithm: Algorithm,
    /// Id of the current key.
    pub key_id: String,
    /// When the current key was made.
    pub created_at: u64,
    /// When the current key expires, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Ed25519 public key (hex); absent for HMAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// Retired keys still in their overlap.
    #[serde(default)]
    pub retired: Vec<PublicRetiredKey>,
    /// Revoked key ids.
    #[serde(default)]
    pub revoked: Vec<String>,
    /// For HMAC: why there is no public key ([`HMAC_EXPORT_NOTE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A retired key in a [`PublicKeyExport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicRetiredKey {
    /// Its id.
    pub key_id: String,
    /// Ed25519 public key (hex); absent for HMAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// Last moment its signatures verify.
    pub valid_until: u64,
}

/// One line of a key listing (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySummary {
    /// The agent.
    pub agent: String,
    /// Algorithm of the current key.
    pub algorithm: Algorithm,
    /// Id of the current key.
    pub key_id: String,
    /// When the current key was made.
    pub created_at: u64,
    /// When it expires, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Whether the file can sign (holds the private key).
    pub can_sign: bool,
    /// Ids of retired keys.
    pub retired: Vec<String>,
    /// Revoked key ids.
    pub revoked: Vec<String>,
}

impl KeyFile {
    /// A new key file with a freshly generated key.
    pub fn generate(
        agent: &str,
        algorithm: Algorithm,
        now: u64,
        expires_at: Option<u64>,
    ) -> Result<KeyFile, KeystoreError> {
        super::validate_key_name(agent)?;
        let mut file = KeyFile {
            agent: agent.to_string(),
            algorithm,
            key_id: String::new(),
            created_at: now,
            expires_at,
            secret: None,
            seed: None,
            public: None,
            retired: Vec::new(),
            revoked: Vec::new(),
        };
        file.set_new_key(algorithm)?;
        Ok(file)
    }

    /// A verify-only key file from another agent's Ed25519 export.
    pub fn from_public_export(export: &PublicKeyExport) -> Result<KeyFile, KeystoreError> {
        super::validate_key_name(&export.agent)?;
        let corrupt = |reason: &str| KeystoreError::Corrupt {
            path: format!("<export of {}>", export.agent).into(),
            reason: reason.to_string(),
        };
        if export.algorithm != Algorithm::Ed25519 || export.public.is_none() {
            return Err(corrupt(
                "only ed25519 exports carry a public key; hmac keys are secrets",
            ));
        }
        let retired = export
            .retired
            .iter()
            .map(|r| RetiredKey {
                key_id: r.key_id.clone(),
                public: r.public.clone(),
                secret: None,
                retired_at: export.created_at,
                valid_until: r.valid_until,
            })
            .collect();
        let file = KeyFile {
            agent: export.agent.clone(),
            algorithm: export.algorithm,
            key_id: export.key_id.clone(),
            created_at: export.created_at,
            expires_at: export.expires_at,
            secret: None,
            seed: None,
            public: export.public.clone(),
            retired,
            revoked: export.revoked.clone(),
        };
        file.validate().map_err(|reason| corrupt(&reason))?;
        Ok(file)
    }

    /// Checks that the file adds up: key material present and matching
    /// every key id. Returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        super::validate_key_name(&self.agent).map_err(|e| e.to_string())?;
        let current = self
            .current_key()
            .map_err(|e| format!("current key: {e}"))?;
        if current.key_id() != self.key_id {
            return Err(format!(
                "keyId {} does not match the key material (which is {})",
                self.key_id,
                current.key_id()
            ));
        }
        if let (Some(seed), Some(public)) = (&self.seed, &self.public) {
            let derived = Ed25519Signing::from_seed_hex(seed).map_err(|e| e.to_string())?;
            if &derived.public_key_hex() != public {
                return Err("public does not match seed".into());
            }
        }
        for r in &self.retired {
            let key = retired_key(r).map_err(|e| format!("retired key {}: {e}", r.key_id))?;
            if key.key_id() != r.key_id {
                return Err(format!("retired keyId {} does not match its key", r.key_id));
            }
        }
        Ok(())
    }

    /// Whether the file holds secret material (HMAC secrets or a seed).
    pub fn has_secrets(&self) -> bool {
        self.secret.is_some()
            || self.seed.is_some()
            || self.retired.iter().any(|r| r.secret.is_some())
    }

    /// The current key, for verifying.
    pub fn current_key(&self) -> Result<VerifyKey, KeyError> {
        match self.algorithm {
            Algorithm::HmacSha256 => {
                let secret = self.secret.as_deref().ok_or(KeyError::Missing("secret"))?;
                Ok(VerifyKey::Hmac(HmacKey::from_secret(secret)))
            }
            Algorithm::Ed25519 => match (&self.public, &self.seed) {
                (Some(public), _) => Ok(VerifyKey::Ed25519(Ed25519Verifying::from_hex(public)?)),
                (None, Some(seed)) => Ok(VerifyKey::Ed25519(
                    Ed25519Signing::from_seed_hex(seed)?.verifying(),
                )),
                (None, None) => Err(KeyError::Missing("public or seed")),
            },
        }
    }

    /// The current key, for signing at `now`.
    pub fn signing_key(&self, now: u64) -> Result<SigningKey, KeystoreError> {
        if self.revoked.contains(&self.key_id) {
            return Err(KeystoreError::Revoked {
                agent: self.agent.clone(),
                key_id: self.key_id.clone(),
            });
        }
        if let Some(expired_at) = self.expires_at.filter(|e| now > *e) {
            return Err(KeystoreError::Expired {
                agent: self.agent.clone(),
                key_id: self.key_id.clone(),
                expired_at,
            });
        }
        match self.algorithm {
            Algorithm::HmacSha256 => match &self.secret {
                Some(secret) => Ok(SigningKey::Hmac(HmacKey::from_secret(secret))),
                None => Err(KeystoreError::VerifyOnly {
                    agent: self.agent.clone(),
                }),
            },
            Algorithm::Ed25519 => match &self.seed {
                Some(seed) => Ok(SigningKey::Ed25519(Ed25519Signing::from_seed_hex(seed)?)),
                None => Err(KeystoreError::VerifyOnly {
                    agent: self.agent.clone(),
                }),
            },
        }
    }

    /// What a verifier should think of key `key_id`.
    pub fn status(&self, key_id: &str) -> KeyStatus {
        if self.revoked.iter().any(|r| r == key_id) {
            return KeyStatus::Revoked;
        }
        if key_id == self.key_id {
            return match (self.current_key(), self.expires_at) {
                (Ok(key), None) => KeyStatus::Active(key),
                (Ok(key), Some(until)) => KeyStatus::Retired { key, until },
                (Err(_), _) => KeyStatus::Unknown,
            };
        }
        let Some(retired) = self.retired.iter().find(|r| r.key_id == key_id) else {
            return KeyStatus::Unknown;
        };
        match retired_key(retired) {
            Ok(key) => KeyStatus::Retired {
                key,
                until: retired.valid_until,
            },
            Err(_) => KeyStatus::Unknown,
        }
    }

    /// Every known key id with its status.
    pub fn key_statuses(&self) -> Vec<(String, KeyStatus)> {
        let mut ids: Vec<&str> = vec![self.key_id.as_str()];
        ids.extend(self.retired.iter().map(|r| r.key_id.as_str()));
        ids.extend(self.revoked.iter().map(String::as_str));
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| (id.to_string(), self.status(id)))
            .collect()
    }

    /// Replaces the current key with a new one of the same algorithm; the
    /// old one verifies until `now + overlap_ms`. Retired keys past their
    /// overlap are dropped.
    pub fn rotate(&mut self, now: u64, overlap_ms: u64) -> Result<(), KeystoreError> {
        let old = RetiredKey {
            key_id: self.key_id.clone(),
            public: match self.algorithm {
                Algorithm::Ed25519 => self.current_key().ok().and_then(|k| match k {
                    VerifyKey::Ed25519(k) => Some(k.public_key_hex()),
                    VerifyKey::Hmac(_) => None,
                }),
                Algorithm::HmacSha256 => None,
            },
            secret: self.secret.clone(),
            retired_at: now,
            valid_until: now.saturating_add(overlap_ms),
        };
        let lifetime = self.expires_at.map(|e| e.saturating_sub(self.created_at));
        self.set_new_key(self.algorithm)?;
        self.created_at = now;
        self.expires_at = lifetime.map(|l| now.saturating_add(l));
        self.retired.retain(|r| r.valid_until >= now);
        if !self.revoked.contains(&old.key_id) {
            self.retired.push(old);
        }
        Ok(())
    }

    /// Revokes key `key_id` (current or retired). A retired key's material
    /// is deleted; a revoked current key stays until the next rotation but
    /// can neither sign nor verify.
    pub fn revoke(&mut self, key_id: &str) -> Result<(), KeystoreError> {
        let known = key_id == self.key_id
            || self.retired.iter().any(|r| r.key_id == key_id)
            || self.revoked.iter().any(|r| r == key_id);
        if !known {
            return Err(KeystoreError::UnknownKey {
                agent: self.agent.clone(),
                key_id: key_id.to_string(),
            });
        }
        self.retired.retain(|r| r.key_id != key_id);
        if !self.revoked.iter().any(|r| r == key_id) {
            self.revoked.push(key_id.to_string());
        }
        Ok(())
    }

    /// The shareable part: public keys and ids, never a seed or secret.
    pub fn public_export(&self) -> PublicKeyExport {
        let hmac = self.algorithm == Algorithm::HmacSha256;
        PublicKeyExport {
            agent: self.agent.clone(),
            algorithm: self.algorithm,
            key_id: self.key_id.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            public: match self.current_key() {
                Ok(VerifyKey::Ed25519(k)) => Some(k.public_key_hex()),
                _ => None,
            },
            retired: self
                .retired
                .iter()
                .map(|r| PublicRetiredKey {
                    key_id: r.key_id.clone(),
                    public: r.public.clone(),
                    valid_until: r.valid_until,
                })
                .collect(),
            revoked: self.revoked.clone(),
            note: hmac.then(|| HMAC_EXPORT_NOTE.to_string()),
        }
    }

    /// A listing line.
    pub fn summary(&self) -> KeySummary {
        KeySummary {
            agent: self.agent.clone(),
            algorithm: self.algorithm,
            key_id: self.key_id.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            can_sign: self.secret.is_some() || self.seed.is_some(),
            retired: self.retired.iter().map(|r| r.key_id.clone()).collect(),
            revoked: self.revoked.clone(),
        }
    }

    fn set_new_key(&mut self, algorithm: Algorithm) -> Result<(), KeyError> {
        self.algorithm = algorithm;
        match algorithm {
            Algorithm::HmacSha256 => {
                let key = HmacKey::generate()?;
                self.key_id = key.key_id().to_string();
                self.secret = Some(key.secret().to_string());
                self.seed = None;
                self.public = None;
            }
            Algorithm::Ed25519 => {
                let key = Ed25519Signing::generate()?;
                self.key_id = key.key_id().to_string();
                self.seed = Some(key.seed_hex().to_string());
                self.public = Some(key.public_key_hex());
                self.secret = None;
            }
        }
        Ok(())
    }
}

impl KeyLookup for KeyFile {
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus {
        if signer == self.agent {
            self.status(key_id)
        } else {
            KeyStatus::Unknown
        }
    }
}

fn retired_key(r: &RetiredKey) -> Result<VerifyKey, KeyError> {
    match (&r.secret, &r.public) {
        (Some(secret), None) => Ok(VerifyKey::Hmac(HmacKey::from_secret(secret))),
        (None, Some(public)) => Ok(VerifyKey::Ed25519(Ed25519Verifying::from_hex(public)?)),
        _ => Err(KeyError::Missing(
            "exactly one of secret (hmac) or public (ed25519)",
        )),
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("agent", &self.agent)
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("public", &self.public)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("seed", &self.seed.as_ref().map(|_| "<redacted>"))
            .field("retired", &self.retired)
            .field("revoked", &self.revoked)
            .finish()
    }
}

impl fmt::Debug for RetiredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetiredKey")
            .field("key_id", &self.key_id)
            .field("public", &self.public)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("retired_at", &self.retired_at)
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

/// Verification keys of many agents, in memory (a snapshot of key files).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    agents: HashMap<String, Vec<(String, KeyStatus)>>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds (or replaces) the keys of `file.agent`.
    pub fn insert(&mut self, file: &KeyFile) {
        self.agents.insert(file.agent.clone(), file.key_statuses());
    }

    /// Forgets an agent's keys.
    pub fn remove(&mut self, agent: &str) -> bool {
        self.agents.remove(agent).is_some()
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether no agent has keys here.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

impl KeyLookup for KeyRing {
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus {
        self.agents
            .get(signer)
            .and_then(|keys| keys.iter().find(|(id, _)| id == key_id))
            .map_or(KeyStatus::Unknown, |(_, status)| status.clone())
    }
}
