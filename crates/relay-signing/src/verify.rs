//! Signing envelopes and verifying their signatures.

use relay_protocol::{Envelope, SignatureJson};

use crate::error::{CanonicalError, VerifyError};
use crate::keys::{HmacKey, RawSignature, SigningKey, VerifyKey};
use crate::message::with_signing_bytes_for;
use crate::signature::{Signature, SignatureRef};

/// The replay window of PROTOCOL.md §11: `|now - t|` may be at most 300 s.
pub const DEFAULT_WINDOW_MS: u64 = 300_000;

/// What a verifier knows about one key of one signer.
#[derive(Debug, Clone)]
pub enum KeyStatus {
    /// The signer's current key.
    Active(VerifyKey),
    /// Verifies only while `now <= until`: a key rotated out and in its
    /// overlap period, or a current key with an expiry.
    Retired {
        /// The key.
        key: VerifyKey,
        /// Last valid moment, ms since the Unix epoch.
        until: u64,
    },
    /// Revoked: never verifies again.
    Revoked,
    /// Not a key of this signer.
    Unknown,
}

/// Where a verifier finds signers' keys.
pub trait KeyLookup {
    /// The status of key `key_id` of agent `signer`.
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus;
}

impl<T: KeyLookup + ?Sized> KeyLookup for &T {
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus {
        (**self).key(signer, key_id)
    }
}

/// Two lookups in turn: the first answer that is not [`KeyStatus::Unknown`].
impl<A: KeyLookup, B: KeyLookup> KeyLookup for (A, B) {
    fn key(&self, signer: &str, key_id: &str) -> KeyStatus {
        match self.0.key(signer, key_id) {
            KeyStatus::Unknown => self.1.key(signer, key_id),
            known => known,
        }
    }
}

/// Shared-secret mode: one HMAC secret for every agent.
///
/// Any holder of the secret can sign as any agent, so a signature only
/// proves that the sender knows the secret; the daemon's binding of `from`
/// to the authenticated connection is what attributes a message.
#[derive(Debug, Clone)]
pub struct SharedSecret {
    key: HmacKey,
}

impl SharedSecret {
    /// The lookup for the configured secret string.
    pub fn new(secret: &str) -> SharedSecret {
        SharedSecret {
            key: HmacKey::from_secret(secret),
        }
    }

    /// The key, for signing.
    pub fn key(&self) -> &HmacKey {
        &self.key
    }

    /// The key as a [`SigningKey`].
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::Hmac(self.key.clone())
    }
}

impl KeyLookup for SharedSecret {
    fn key(&self, _signer: &str, key_id: &str) -> KeyStatus {
        if key_id == self.key.key_id() {
            KeyStatus::Active(VerifyKey::Hmac(self.key.clone()))
        } else {
            KeyStatus::Unknown
        }
    }
}

/// Signs `env` as agent `signer` at `now_ms`.
///
/// Covers `env.id` (as `m`), `env.msg_type`, `env.to`, `env.topic`,
/// `env.payload` and `env.payload_meta`. Attach the result with
/// [`Signature::attach_to`]. Fails only when the payload has no canonical
/// form (duplicate member names).
pub fn sign(
    env: &Envelope,
    signer: &str,
    key: &SigningKey,
    now_ms: u64,
) -> Result<Signature, CanonicalError> {
    let signature = signature_over(env, signer, key, now_ms)?;
    Ok(Signature {
        s: relay_protocol::hex::encode(signature.as_slice()),
        k: key.key_id().to_string(),
        t: now_ms,
        a: key.algorithm(),
        m: env.id.clone(),
    })
}

/// Signs `env` as agent `signer` at `now_ms` and sets its `_sig`: [`sign`] and
/// [`Signature::attach_to`] in one step, without the intermediate [`Signature`] (what a client
/// does for every message it sends).
pub fn sign_into(
    env: &mut Envelope,
    signer: &str,
    key: &SigningKey,
    now_ms: u64,
) -> Result<(), CanonicalError> {
    let signature = signature_over(env, signer, key, now_ms)?;
    env.sig = Some(SignatureJson::write_signature(
        signature.as_slice(),
        key.key_id(),
        now_ms,
        key.algorithm().as_str(),
        &env.id,
    ));
    Ok(())
}

/// The signature of `env` by `signer` with `key` at `now_ms`.
fn signature_over(
    env: &Envelope,
    signer: &str,
    key: &SigningKey,
    now_ms: u64,
) -> Result<RawSignature, CanonicalError> {
    let header = (key.algorithm(), key.key_id(), now_ms, env.id.as_str());
    with_signing_bytes_for(env, signer, env.to.as_deref(), header, |bytes| {
        key.sign_raw(bytes)
    })
}

/// Verifies a signature on ingress (the daemon receiving a SEND).
///
/// `claimed_from` is the authenticated connection's agent name, never the
/// envelope's `from`. Checks, in order: `_sig` well-formed, `m == env.id`,
/// `|now - t| <= window_ms`, the key known, not revoked or expired, of
/// algorithm `a`, and finally the signature itself. A message that passes
/// must still go through [`ReplayCache::check_and_insert`](crate::ReplayCache::check_and_insert).
pub fn verify<'s>(
    env: &Envelope,
    claimed_from: &str,
    original_to: Option<&str>,
    sig: impl Into<SignatureRef<'s>>,
    keys: &dyn KeyLookup,
    now_ms: u64,
    window_ms: u64,
) -> Result<(), VerifyError> {
    let sig = sig.into();
    let mut buf = [0; 64];
    let signature = sig.signature_bytes(&mut buf)?;
    if sig.m != env.id {
        return Err(VerifyError::MessageIdMismatch {
            m: sig.m.into_owned(),
            id: env.id.clone(),
        });
    }
    if sig.t.abs_diff(now_ms) > window_ms {
        return Err(VerifyError::Stale {
            t: sig.t,
            now: now_ms,
            window: window_ms,
        });
    }
    check(
        env,
        claimed_from,
        original_to,
        &sig,
        signature,
        keys,
        now_ms,
    )
}

/// Verifies a signature end to end (a recipient reading a DELIVER).
///
/// The DELIVER has its own `id` and may arrive long after it was signed
/// (offline recipients), so neither `m == env.id` nor the time window is
/// checked: the daemon did both on ingress. `signer` is the DELIVER's `from`
/// and `original_to` normally [`original_target`](crate::original_target).
/// The key must still be valid at `now_ms`.
pub fn verify_delivered<'s>(
    env: &Envelope,
    signer: &str,
    original_to: Option<&str>,
    sig: impl Into<SignatureRef<'s>>,
    keys: &dyn KeyLookup,
    now_ms: u64,
) -> Result<(), VerifyError> {
    let sig = sig.into();
    let mut buf = [0; 64];
    let signature = sig.signature_bytes(&mut buf)?;
    check(env, signer, original_to, &sig, signature, keys, now_ms)
}

fn check(
    env: &Envelope,
    signer: &str,
    original_to: Option<&str>,
    sig: &SignatureRef<'_>,
    signature: &[u8],
    keys: &dyn KeyLookup,
    now_ms: u64,
) -> Result<(), VerifyError> {
    let key = match keys.key(signer, &sig.k) {
        KeyStatus::Active(key) => key,
        KeyStatus::Retired { key, until } if now_ms <= until => key,
        KeyStatus::Retired { until, .. } => {
            return Err(VerifyError::KeyExpired {
                signer: signer.to_string(),
                k: sig.k.to_string(),
                until,
            })
        }
        KeyStatus::Revoked => {
            return Err(VerifyError::KeyRevoked {
                signer: signer.to_string(),
                k: sig.k.to_string(),
            })
        }
        KeyStatus::Unknown => {
            return Err(VerifyError::UnknownKey {
                signer: signer.to_string(),
                k: sig.k.to_string(),
            })
        }
    };
    if key.key_id() != sig.k.as_ref() {
        // A lookup that answers with another key has not found this one.
        return Err(VerifyError::UnknownKey {
            signer: signer.to_string(),
            k: sig.k.to_string(),
        });
    }
    if key.algorithm() != sig.a {
        return Err(VerifyError::WrongAlgorithm {
            k: sig.k.to_string(),
            claimed: sig.a.as_str(),
            actual: key.algorithm().as_str(),
        });
    }
    let header = (sig.a, sig.k.as_ref(), sig.t, sig.m.as_ref());
    let valid = with_signing_bytes_for(env, signer, original_to, header, |bytes| {
        key.verify(bytes, signature)
    })
    .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if valid {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Ed25519Signing;
    use crate::signature::Algorithm;

    const NOW: u64 = 1_700_000_000_000;

    fn send() -> Envelope {
        Envelope::from_slice(
            br#"{"v":1,"type":"SEND","id":"m-1","ts":5,"to":"Bob",
                "payload":{"kind":"message","body":"hi"}}"#,
        )
        .unwrap()
    }

    struct One(KeyStatus);
    impl KeyLookup for One {
        fn key(&self, _: &str, _: &str) -> KeyStatus {
            self.0.clone()
        }
    }

    #[test]
    fn shared_secret_round_trip() {
        let keys = SharedSecret::new("s3cret");
        let env = send();
        let sig = sign(&env, "Alice", &keys.signing_key(), NOW).unwrap();
        assert_eq!(sig.a, Algorithm::HmacSha256);
        assert_eq!(sig.s.len(), 64);
        assert_eq!(
            verify(&env, "Alice", Some("Bob"), &sig, &keys, NOW, 1000),
            Ok(())
        );
        assert_eq!(
            verify(&env, "Mallory", Some("Bob"), &sig, &keys, NOW, 1000),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            verify(
                &env,
                "Alice",
                Some("Bob"),
                &sig,
                &SharedSecret::new("other"),
                NOW,
                1000
            ),
            Err(VerifyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn signing_in_place_attaches_what_sign_returns() {
        let hmac: SigningKey = HmacKey::from_secret("s3cret").into();
        let ed25519: SigningKey = Ed25519Signing::generate().unwrap().into();
        for key in [hmac, ed25519] {
            for id in ["m-1", "needs \"escapes\"\n"] {
                let mut env = send();
                env.id = id.to_string();
                let mut expected = env.clone();
                sign(&env, "Alice", &key, NOW)
                    .unwrap()
                    .attach_to(&mut expected);
                sign_into(&mut env, "Alice", &key, NOW).unwrap();
                assert_eq!(env.sig, expected.sig, "{} {id:?}", key.algorithm());
                let keys = One(KeyStatus::Active(key.verify_key()));
                let sig = SignatureRef::from_json(env.sig.as_ref().unwrap()).unwrap();
                assert_eq!(
                    verify(&env, "Alice", Some("Bob"), sig, &keys, NOW, 1000),
                    Ok(())
                );
            }
        }
    }

    #[test]
    fn time_window_is_inclusive_both_ways() {
        let keys = SharedSecret::new("s");
        let env = send();
        let sig = sign(&env, "A", &keys.signing_key(), NOW).unwrap();
        assert!(verify(&env, "A", Some("Bob"), &sig, &keys, NOW + 1000, 1000).is_ok());
        assert!(verify(&env, "A", Some("Bob"), &sig, &keys, NOW - 1000, 1000).is_ok());
        assert_eq!(
            verify(&env, "A", Some("Bob"), &sig, &keys, NOW + 1001, 1000),
            Err(VerifyError::Stale {
                t: NOW,
                now: NOW + 1001,
                window: 1000
            })
        );
        // A signature time of 0 is a time like any other, not "unsigned".
        let old = sign(&env, "A", &keys.signing_key(), 0).unwrap();
        assert!(verify(&env, "A", Some("Bob"), &old, &keys, 500, 1000).is_ok());
    }

    #[test]
    fn key_states_are_enforced() {
        let ed = Ed25519Signing::from_seed(&[3; 32]);
        let key = SigningKey::from(ed.clone());
        let env = send();
        let sig = sign(&env, "A", &key, NOW).unwrap();
        let vk = key.verify_key();
        let run = |status: KeyStatus| verify(&env, "A", Some("Bob"), &sig, &One(status), NOW, 10);
        assert_eq!(run(KeyStatus::Active(vk.clone())), Ok(()));
        assert_eq!(
            run(KeyStatus::Retired {
                key: vk.clone(),
                until: NOW
            }),
            Ok(())
        );
        assert!(matches!(
            run(KeyStatus::Retired { key: vk.clone(), until: NOW - 1 }),
            Err(VerifyError::KeyExpired { until, .. }) if until == NOW - 1
        ));
        assert!(matches!(
            run(KeyStatus::Revoked),
            Err(VerifyError::KeyRevoked { .. })
        ));
        assert!(matches!(
            run(KeyStatus::Unknown),
            Err(VerifyError::UnknownKey { .. })
        ));
        // Another key under the same id is not this key.
        let hmac = VerifyKey::Hmac(HmacKey::from_secret("x"));
        assert!(matches!(
            run(KeyStatus::Active(hmac.clone())),
            Err(VerifyError::UnknownKey { .. })
        ));
        // An Ed25519-shaped signature naming an HMAC key.
        let forged = Signature {
            k: hmac.key_id().to_string(),
            ..sig.clone()
        };
        assert!(matches!(
            verify(
                &env,
                "A",
                Some("Bob"),
                &forged,
                &One(KeyStatus::Active(hmac)),
                NOW,
                10
            ),
            Err(VerifyError::WrongAlgorithm {
                claimed: "ed25519",
                actual: "hmac-sha256",
                ..
            })
        ));
    }

    #[test]
    fn message_id_is_bound_on_ingress_only() {
        let keys = SharedSecret::new("s");
        let env = send();
        let sig = sign(&env, "A", &keys.signing_key(), NOW).unwrap();
        let mut deliver = env.clone();
        deliver.msg_type = relay_protocol::MessageType::Deliver;
        deliver.id = "d-9".into();
        deliver.ts = NOW + 10_000_000;
        assert!(matches!(
            verify(&deliver, "A", Some("Bob"), &sig, &keys, NOW, 1000),
            Err(VerifyError::MessageIdMismatch { .. })
        ));
        assert_eq!(
            verify_delivered(&deliver, "A", Some("Bob"), &sig, &keys, NOW + 10_000_000),
            Ok(())
        );
    }

    #[test]
    fn tuple_lookup_takes_the_first_known_answer() {
        let shared = SharedSecret::new("s");
        let id = shared.key().key_id().to_string();
        assert!(matches!(
            (One(KeyStatus::Unknown), &shared).key("a", &id),
            KeyStatus::Active(_)
        ));
        assert!(matches!(
            (One(KeyStatus::Revoked), &shared).key("a", &id),
            KeyStatus::Revoked
        ));
    }
}
