//! Signing and verification keys, and their key ids.
//!
//! * HMAC-SHA256: the key is the UTF-8 bytes of the secret string exactly as
//!   configured (never hex-decoded). Key id: the first 16 hex digits of
//!   HMAC-SHA256(secret, `"agent-relay key id"`), which identifies the
//!   secret without being a plain hash of it.
//! * Ed25519: a 32-byte seed (private) and its 32-byte public key, both as
//!   hex in key files. Key id: the first 16 hex digits of SHA-256(public key).
//!
//! Secrets are wiped from memory on drop and never printed by `Debug`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use ed25519_dalek::Signer as _;
use hmac::{KeyInit, Mac};
use relay_protocol::hex;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::signature::Algorithm;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The message whose HMAC names an HMAC key.
pub const HMAC_KEY_ID_MESSAGE: &[u8] = b"agent-relay key id";

/// Hex digits in a key id.
pub const KEY_ID_LEN: usize = 16;

/// The key id of an HMAC secret.
pub fn hmac_key_id(secret: &str) -> String {
    let tag = hmac_sha256(secret.as_bytes(), HMAC_KEY_ID_MESSAGE);
    hex::encode(&tag[..KEY_ID_LEN / 2])
}

/// The key id of a raw 32-byte Ed25519 public key.
pub fn ed25519_key_id(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    hex::encode(&digest[..KEY_ID_LEN / 2])
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = keyed_hmac(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn keyed_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed first).
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
}

/// An HMAC-SHA256 secret and its key id.
///
/// Cheap to clone (shared): the daemon hands a key out for every message it
/// verifies. The keyed HMAC state (the hashes of the padded key) is computed
/// once, so each MAC costs only the message's blocks; so is the state after
/// the first block that messages MACed with this key share (see
/// [`FirstBlock`]), so each MAC costs one block less.
#[derive(Clone)]
pub struct HmacKey(Arc<HmacKeyInner>);

struct HmacKeyInner {
    secret: Zeroizing<String>,
    key_id: String,
    /// HMAC state after absorbing the key; wiped on drop (`zeroize` feature).
    keyed: HmacSha256,
    /// Set by the first message of at least a block that this key MACs.
    first_block: OnceLock<FirstBlock>,
}

/// The first SHA-256 block (64 bytes) of a message MACed with a key, and the keyed state after
/// absorbing it.
///
/// The signed bytes of every message open with the domain tag, `{"a":"hmac-sha256","from":`,
/// the signer's name and `,"k":` with the key id (PROTOCOL.md §11), at least 69 bytes that are
/// the same for every message one signer signs with one key, and a per-agent key has one signer.
/// Starting from this state instead of the keyed one skips that block's compression. A message
/// whose first block differs (another signer of a shared secret) is MACed from the keyed state:
/// the result is the same either way, only the work differs.
struct FirstBlock {
    bytes: [u8; FIRST_BLOCK],
    /// Wiped on drop like `keyed`: it is as good as the key for making MACs.
    state: HmacSha256,
}

/// SHA-256's block size.
const FIRST_BLOCK: usize = 64;

impl HmacKey {
    /// A key whose bytes are the UTF-8 of `secret`.
    pub fn from_secret(secret: &str) -> HmacKey {
        HmacKey(Arc::new(HmacKeyInner {
            secret: Zeroizing::new(secret.to_string()),
            key_id: hmac_key_id(secret),
            keyed: keyed_hmac(secret.as_bytes()),
            first_block: OnceLock::new(),
        }))
    }

    /// The keyed state having absorbed `message`.
    fn absorbed(&self, message: &[u8]) -> HmacSha256 {
        let inner = &self.0;
        if let Some((head, rest)) = message.split_first_chunk::<FIRST_BLOCK>() {
            let first = inner.first_block.get_or_init(|| {
                let mut state = inner.keyed.clone();
                state.update(head);
                FirstBlock {
                    bytes: *head,
                    state,
                }
            });
            if first.bytes == *head {
                let mut mac = first.state.clone();
                mac.update(rest);
                return mac;
            }
        }
        let mut mac = inner.keyed.clone();
        mac.update(message);
        mac
    }

    /// A new random secret: 32 bytes from the OS, written as 64 hex digits.
    pub fn generate() -> Result<HmacKey, KeyError> {
        let bytes = random_32()?;
        let secret = Zeroizing::new(hex::encode(bytes.as_ref()));
        Ok(HmacKey::from_secret(&secret))
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.0.key_id
    }

    /// The secret string (this *is* the key: keep it private).
    pub fn secret(&self) -> &str {
        &self.0.secret
    }

    /// HMAC-SHA256 of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        self.absorbed(message).finalize().into_bytes().into()
    }

    /// Whether `tag` is the HMAC of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        self.absorbed(message).verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("key_id", &self.0.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An Ed25519 private key (its seed) with its key id. Cheap to clone (shared).
#[derive(Clone)]
pub struct Ed25519Signing(Arc<Ed25519SigningInner>);

struct Ed25519SigningInner {
    key: ed25519_dalek::SigningKey,
    key_id: String,
}

impl Ed25519Signing {
    /// A new key from 32 bytes of OS randomness.
    pub fn generate() -> Result<Ed25519Signing, KeyError> {
        let seed = random_32()?;
        Ok(Ed25519Signing::from_seed(&seed))
    }

    /// The key of a 32-byte seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Ed25519Signing {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let key_id = ed25519_key_id(key.verifying_key().as_bytes());
        Ed25519Signing(Arc::new(Ed25519SigningInner { key, key_id }))
    }

    /// The key of a seed written as 64 hex digits.
    pub fn from_seed_hex(seed_hex: &str) -> Result<Ed25519Signing, KeyError> {
        let seed = Zeroizing::new(decode_32(seed_hex, "ed25519 seed")?);
        Ok(Ed25519Signing::from_seed(&seed))
    }

    /// The seed as 64 hex digits (private: keep it in the key file only).
    pub fn seed_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.key.as_bytes()))
    }

    /// The public key as 64 hex digits.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.key.verifying_key().as_bytes())
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.0.key_id
    }

    /// The matching public key.
    pub fn verifying(&self) -> Ed25519Verifying {
        Ed25519Verifying(Arc::new(Ed25519VerifyingInner {
            key: self.0.key.verifying_key(),
            key_id: self.0.key_id.clone(),
        }))
    }

    /// Signs `message` (pure Ed25519, deterministic).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.key.sign(message).to_bytes()
    }
}

impl fmt::Debug for Ed25519Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signing")
            .field("key_id", &self.0.key_id)
            .field("public", &self.public_key_hex())
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// An Ed25519 public key with its key id. Cheap to clone (shared): the daemon
/// hands a key out for every message it verifies.
#[derive(Clone, Debug)]
pub struct Ed25519Verifying(Arc<Ed25519VerifyingInner>);

#[derive(Debug)]
struct Ed25519VerifyingInner {
    key: ed25519_dalek::VerifyingKey,
    key_id: String,
}

impl Ed25519Verifying {
    /// A public key from 64 hex digits; weak (small-order) keys are refused.
    pub fn from_hex(public_hex: &str) -> Result<Ed25519Verifying, KeyError> {
        Ed25519Verifying::from_bytes(&decode_32(public_hex, "ed25519 public key")?)
    }

    /// A public key from its 32 raw bytes; weak (small-order) keys are refused.
    pub fn from_bytes(public: &[u8; 32]) -> Result<Ed25519Verifying, KeyError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(public)
            .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
        if key.is_weak() {
            return Err(KeyError::InvalidPublicKey(
                "a small-order point, which anyone can forge signatures for".into(),
            ));
        }
        Ok(Ed25519Verifying(Arc::new(Ed25519VerifyingInner {
            key,
            key_id: ed25519_key_id(public),
        })))
    }

    /// The public key as 64 hex digits.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.key.as_bytes())
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.0.key_id
    }

    /// Whether `signature` (64 bytes) is a valid signature of `message`.
    ///
    /// Uses dalek's strict verification, which refuses malleable signatures.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.0.key.verify_strict(message, &signature).is_ok()
    }
}

/// Signature bytes as [`SigningKey::sign_raw`] returns them: 32 for HMAC-SHA256, 64 for
/// Ed25519.
#[derive(Clone, Copy)]
pub struct RawSignature {
    bytes: [u8; 64],
    len: usize,
}

impl RawSignature {
    /// The signature.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A key that can sign.
#[derive(Clone, Debug)]
pub enum SigningKey {
    /// HMAC-SHA256 secret.
    Hmac(HmacKey),
    /// Ed25519 private key.
    Ed25519(Ed25519Signing),
}

impl SigningKey {
    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Hmac(_) => Algorithm::HmacSha256,
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        match self {
            SigningKey::Hmac(k) => k.key_id(),
            SigningKey::Ed25519(k) => k.key_id(),
        }
    }

    /// Signs `message`, returning the raw signature bytes.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        self.sign_raw(message).as_slice().to_vec()
    }

    /// Signs `message`; the signature is held without an allocation.
    pub fn sign_raw(&self, message: &[u8]) -> RawSignature {
        let mut raw = RawSignature {
            bytes: [0; 64],
            len: 0,
        };
        let signature: &[u8] = match self {
            SigningKey::Hmac(k) => &k.sign(message),
            SigningKey::Ed25519(k) => &k.sign(message),
        };
        raw.bytes[..signature.len()].copy_from_slice(signature);
        raw.len = signature.len();
        raw
    }

    /// The key that verifies this key's signatures.
    pub fn verify_key(&self) -> VerifyKey {
        match self {
            SigningKey::Hmac(k) => VerifyKey::Hmac(k.clone()),
            SigningKey::Ed25519(k) => VerifyKey::Ed25519(k.verifying()),
        }
    }
}

impl From<HmacKey> for SigningKey {
    fn from(key: HmacKey) -> Self {
        SigningKey::Hmac(key)
    }
}

impl From<Ed25519Signing> for SigningKey {
    fn from(key: Ed25519Signing) -> Self {
        SigningKey::Ed25519(key)
    }
}

/// A key that can verify.
#[derive(Clone, Debug)]
pub enum VerifyKey {
    /// HMAC-SHA256 secret (verifying needs the secret itself).
    Hmac(HmacKey),
    /// Ed25519 public key.
    Ed25519(Ed25519Verifying),
}

impl VerifyKey {
    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyKey::Hmac(_) => Algorithm::HmacSha256,
            VerifyKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        match self {
            VerifyKey::Hmac(k) => k.key_id(),
            VerifyKey::Ed25519(k) => k.key_id(),
        }
    }

    /// Whether `signature` is this key's signature of `message`
    /// (constant-time for HMAC).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            VerifyKey::Hmac(k) => k.verify(message, signature),
            VerifyKey::Ed25519(k) => k.verify(message, signature),
        }
    }
}

impl From<HmacKey> for VerifyKey {
    fn from(key: HmacKey) -> Self {
        VerifyKey::Hmac(key)
    }
}

impl From<Ed25519Verifying> for VerifyKey {
    fn from(key: Ed25519Verifying) -> Self {
        VerifyKey::Ed25519(key)
    }
}

fn random_32() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|e| KeyError::Randomness(e.to_string()))?;
    Ok(bytes)
}

fn decode_32(text: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    if text.len() != 64 {
        return Err(KeyError::WrongLength {
            what,
            expected: 64,
            got: text.len(),
        });
    }
    hex::decode_array(text).ok_or(KeyError::InvalidHex { what, expected: 64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_is_the_same_whether_or_not_it_starts_from_the_kept_first_block() {
        let secret = "per-agent secret";
        let key = HmacKey::from_secret(secret);
        let shared = "s".repeat(FIRST_BLOCK);
        let messages = [
            format!("{shared}one"), // sets the kept block
            format!("{shared}two"), // starts from it
            shared.clone(),         // exactly the block
            format!("t{shared}"),   // another first block
            "short".to_string(),    // less than a block
            String::new(),
            format!("{shared}{shared}{shared}x"),
        ];
        for message in &messages {
            let expected = hmac_sha256(secret.as_bytes(), message.as_bytes());
            assert_eq!(key.sign(message.as_bytes()), expected, "{message:?}");
            assert!(key.verify(message.as_bytes(), &expected), "{message:?}");
            let mut wrong = expected;
            wrong[31] ^= 1;
            assert!(!key.verify(message.as_bytes(), &wrong), "{message:?}");
        }
        let kept = key.0.first_block.get().expect("a block is kept");
        assert_eq!(&kept.bytes[..], shared.as_bytes());
    }

    #[test]
    fn hmac_key_id_is_an_hmac_not_a_hash_of_the_secret() {
        let key = HmacKey::from_secret("secret");
        assert_eq!(key.key_id().len(), KEY_ID_LEN);
        // The reference implementation's sha256("secret")[..16] must not be reused.
        assert_ne!(key.key_id(), "2bb80d537b1da3e3");
        assert_eq!(key.key_id(), hmac_key_id("secret"));
        assert_ne!(key.key_id(), hmac_key_id("secret2"));
    }

    #[test]
    fn hmac_sign_and_constant_time_verify() {
        let key = HmacKey::from_secret("s");
        let tag = key.sign(b"m");
        assert!(key.verify(b"m", &tag));
        assert!(!key.verify(b"n", &tag));
        assert!(!key.verify(b"m", &tag[..31]));
        assert!(!format!("{key:?}").contains("\"s\""));
    }

    #[test]
    fn generated_keys_differ() {
        let a = HmacKey::generate().unwrap();
        let b = HmacKey::generate().unwrap();
        assert_eq!(a.secret().len(), 64);
        assert_ne!(a.secret(), b.secret());
        let c = Ed25519Signing::generate().unwrap();
        let d = Ed25519Signing::generate().unwrap();
        assert_ne!(c.public_key_hex(), d.public_key_hex());
    }

    #[test]
    fn ed25519_round_trip_through_hex() {
        let key = Ed25519Signing::from_seed(&[7; 32]);
        let again = Ed25519Signing::from_seed_hex(&key.seed_hex()).unwrap();
        assert_eq!(again.public_key_hex(), key.public_key_hex());
        let public = Ed25519Verifying::from_hex(&key.public_key_hex()).unwrap();
        assert_eq!(public.key_id(), key.key_id());
        let sig = key.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellp", &sig));
        assert!(!public.verify(b"hello", &sig[..63]));
        assert!(!format!("{key:?}").contains(&*key.seed_hex()));
    }

    #[test]
    fn bad_ed25519_material_is_refused() {
        assert!(matches!(
            Ed25519Signing::from_seed_hex("00"),
            Err(KeyError::WrongLength { .. })
        ));
        assert!(matches!(
            Ed25519Verifying::from_hex(&"zz".repeat(32)),
            Err(KeyError::InvalidHex { .. })
        ));
        // The identity point is of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            Ed25519Verifying::from_bytes(&identity),
            Err(KeyError::InvalidPublicKey(_))
        ));
    }
}
