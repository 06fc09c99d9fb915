//! Message signatures (`_sig`) for agent-relay (PROTOCOL.md §11).
//!
//! A signed envelope carries `_sig: {s, k, t, a, m}`: the signature in
//! lowercase hex, the key id, the signing time in ms, the algorithm
//! (`hmac-sha256` or `ed25519`) and the id of the message as signed. The
//! signature covers `agent-relay-sig-v1\n` followed by the RFC 8785
//! canonical JSON of `{a, k, t, m, type, from, to, topic, payload,
//! payload_meta}` ([`SignedFields`]), where `from` is the signer's agent name
//! and `to` the SEND's original target. Routing fields (`v`, `ts`,
//! `delivery`, a DELIVER's own `id`) are not covered, so the daemon forwards
//! `_sig` unchanged on every DELIVER and recipients verify end to end.
//!
//! This crate is a pure library (no I/O but the key store, no async):
//!
//! * [`canonical`]: RFC 8785 JCS over `serde_json::Value`, with a strict
//!   parser that refuses duplicate member names.
//! * [`sign`] (or [`sign_into`], which attaches `_sig` in the same step, as clients do for
//!   every message), [`verify`] (daemon ingress: id binding and time window) and
//!   [`verify_delivered`] (recipients), with keys found through a
//!   [`KeyLookup`]: a [`SharedSecret`], a [`Keystore`] directory, a
//!   [`KeyRing`] snapshot, or a pair of them tried in turn.
//! * [`ReplayCache`]: the bounded `(signer, m)` set that refuses a second
//!   copy of a signed message inside the window.
//! * [`Keystore`]: per-agent key files (0600, in a 0700 directory) with
//!   rotation overlap, revocation and public-key export.
//!
//! Time is always passed in (ms since the Unix epoch).
//!
//! ```
//! use relay_protocol::Envelope;
//! use relay_signing::{sign, verify, ReplayCache, SharedSecret, Signature, DEFAULT_WINDOW_MS};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = SharedSecret::new("team secret");
//! let now = 1_700_000_000_000;
//!
//! // Client side: sign the SEND and attach `_sig`.
//! let mut env = Envelope::from_slice(
//!     br#"{"v":1,"type":"SEND","id":"m-1","ts":0,"to":"Bob","payload":{"kind":"message","body":"hi"}}"#,
//! )?;
//! sign(&env, "Alice", &keys.signing_key(), now)?.attach_to(&mut env);
//!
//! // Daemon side: verify against the connection's name, then check replays.
//! let sig = Signature::from_envelope(&env)?.ok_or("unsigned")?;
//! verify(&env, "Alice", env.to.as_deref(), &sig, &keys, now + 5, DEFAULT_WINDOW_MS)?;
//! let mut seen = ReplayCache::default();
//! seen.check_and_insert("Alice", &sig.m, sig.t, now + 5, DEFAULT_WINDOW_MS)?;
//! assert!(seen.check_and_insert("Alice", &sig.m, sig.t, now + 6, DEFAULT_WINDOW_MS).is_err());
//! # Ok(())
//! # }
//! ```

pub mod canonical;
mod error;
mod keys;
pub mod keystore;
mod message;
mod replay;
mod signature;
mod verify;

pub use error::{CanonicalError, KeyError, KeystoreError, Replay, VerifyError};
pub use keys::{
    ed25519_key_id, hmac_key_id, Ed25519Signing, Ed25519Verifying, HmacKey, RawSignature,
    SigningKey, VerifyKey, HMAC_KEY_ID_MESSAGE, KEY_ID_LEN,
};
pub use keystore::{
    validate_key_name, KeyFile, KeyRing, KeySummary, Keystore, PublicKeyExport, PublicRetiredKey,
    RetiredKey,
};
pub use message::{original_target, signed_type, signing_bytes_for, SignedFields, DOMAIN_TAG};
pub use replay::{
    PrehashedKeyHasher, PrehashedKeys, ReplayCache, ReplayEntry, DEFAULT_REPLAY_CAPACITY,
};
pub use signature::{Algorithm, Signature, SignatureRef, UnknownAlgorithm};
pub use verify::{
    sign, sign_into, verify, verify_delivered, KeyLookup, KeyStatus, SharedSecret,
    DEFAULT_WINDOW_MS,
};
