//! Known-answer tests against `tests/vectors.json`.
//!
//! The signed byte strings in the file are literals: a change in
//! canonicalisation breaks these tests. The HMAC and Ed25519 results are
//! recomputed with the `hmac`, `sha2` and `ed25519-dalek` crates directly,
//! not through this crate.

use hmac::{KeyInit, Mac};
use relay_protocol::Envelope;
use relay_signing::{
    canonical, original_target, sign, signing_bytes_for, verify, verify_delivered, Algorithm,
    Ed25519Signing, Ed25519Verifying, HmacKey, SharedSecret, Signature, SigningKey, VerifyError,
    VerifyKey,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    signer: String,
    original_to: String,
    t: u64,
    envelope: String,
    hmac: HmacVector,
    ed25519: Ed25519Vector,
    deliver: String,
    jcs: Vec<JcsCase>,
    numbers: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HmacVector {
    secret: String,
    key_id: String,
    signed_bytes: String,
    sig: Signature,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ed25519Vector {
    seed: String,
    public: String,
    key_id: String,
    signed_bytes: String,
    sig: Signature,
}

#[derive(Deserialize)]
struct JcsCase {
    name: String,
    input: String,
    output: String,
}

/// The HMAC signature, also pinned here so that regenerating the file alone
/// cannot hide a change.
const HMAC_SIG: &str = "41660a1d2b7b6fc903343574280e2a6d747b1b78338ce1aa5f4f90c29afd75e2";
/// The Ed25519 public key of the seed 0x01..0x20.
const ED25519_PUBLIC: &str = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";

fn vectors() -> Vectors {
    let text = include_str!("vectors.json");
    serde_json::from_str(text).expect("tests/vectors.json parses")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn hmac_vector_matches_an_independent_computation() {
    let v = vectors();
    let env = Envelope::from_slice(v.envelope.as_bytes()).unwrap();

    // Key id: HMAC-SHA256(secret, "agent-relay key id"), first 16 hex digits.
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(v.hmac.secret.as_bytes()).unwrap();
    mac.update(b"agent-relay key id");
    let id = hex(&mac.finalize().into_bytes())[..16].to_string();
    assert_eq!(id, v.hmac.key_id);
    assert_eq!(HmacKey::from_secret(&v.hmac.secret).key_id(), id);

    // The signature over the literal signed bytes.
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"test-secret").unwrap();
    mac.update(v.hmac.signed_bytes.as_bytes());
    assert_eq!(hex(&mac.finalize().into_bytes()), v.hmac.sig.s);
    assert_eq!(v.hmac.sig.s, HMAC_SIG);

    // This crate produces the same bytes and the same signature.
    let bytes = signing_bytes_for(&env, &v.signer, Some(&v.original_to), &v.hmac.sig).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), v.hmac.signed_bytes);
    let key = SigningKey::from(HmacKey::from_secret("test-secret"));
    assert_eq!(sign(&env, &v.signer, &key, v.t).unwrap(), v.hmac.sig);
    assert_eq!(v.hmac.sig.a, Algorithm::HmacSha256);

    let keys = SharedSecret::new("test-secret");
    assert_eq!(
        verify(
            &env,
            &v.signer,
            Some(&v.original_to),
            &v.hmac.sig,
            &keys,
            v.t + 1,
            300_000
        ),
        Ok(())
    );
    // Upper-case hex is the same signature.
    let upper = Signature {
        s: v.hmac.sig.s.to_uppercase(),
        ..v.hmac.sig.clone()
    };
    assert_eq!(
        verify(
            &env,
            &v.signer,
            Some(&v.original_to),
            &upper,
            &keys,
            v.t,
            300_000
        ),
        Ok(())
    );
}

#[test]
fn ed25519_vector_matches_an_independent_computation() {
    let v = vectors();
    let env = Envelope::from_slice(v.envelope.as_bytes()).unwrap();
    let seed: Vec<u8> = (1u8..=32).collect();
    assert_eq!(unhex(&v.ed25519.seed), seed);

    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed.clone().try_into().unwrap());
    let public = dalek.verifying_key();
    assert_eq!(hex(public.as_bytes()), v.ed25519.public);
    assert_eq!(v.ed25519.public, ED25519_PUBLIC);
    assert_eq!(
        hex(&Sha256::digest(public.as_bytes()))[..16],
        v.ed25519.key_id
    );

    let sig = ed25519_dalek::Signature::from_slice(&unhex(&v.ed25519.sig.s)).unwrap();
    public
        .verify_strict(v.ed25519.signed_bytes.as_bytes(), &sig)
        .expect("the vector's signature verifies with dalek directly");

    let bytes = signing_bytes_for(&env, &v.signer, Some(&v.original_to), &v.ed25519.sig).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), v.ed25519.signed_bytes);
    let key = Ed25519Signing::from_seed_hex(&v.ed25519.seed).unwrap();
    assert_eq!(key.public_key_hex(), v.ed25519.public);
    assert_eq!(key.key_id(), v.ed25519.key_id);
    assert_eq!(
        sign(&env, &v.signer, &key.into(), v.t).unwrap(),
        v.ed25519.sig
    );

    let verifying = VerifyKey::from(Ed25519Verifying::from_hex(&v.ed25519.public).unwrap());
    let keys = Single(verifying);
    assert_eq!(
        verify(
            &env,
            &v.signer,
            Some(&v.original_to),
            &v.ed25519.sig,
            &keys,
            v.t,
            300_000
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            &env,
            "Mallory",
            Some(&v.original_to),
            &v.ed25519.sig,
            &keys,
            v.t,
            300_000
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_delivered_copy_verifies_end_to_end() {
    let v = vectors();
    let deliver = Envelope::from_slice(v.deliver.as_bytes()).unwrap();
    let sig = Signature::from_envelope(&deliver)
        .unwrap()
        .expect("DELIVER carries _sig");
    assert_eq!(sig, v.ed25519.sig);
    let keys = Single(VerifyKey::from(
        Ed25519Verifying::from_hex(&v.ed25519.public).unwrap(),
    ));
    let from = deliver.from.as_deref().unwrap();
    // Hours later, under its own id: still the sender's message.
    let later = v.t + 6 * 3_600_000;
    assert_eq!(
        verify_delivered(
            &deliver,
            from,
            original_target(&deliver),
            &sig,
            &keys,
            later
        ),
        Ok(())
    );
    // The ingress check refuses it: it is not the message that was signed.
    assert!(matches!(
        verify(
            &deliver,
            from,
            original_target(&deliver),
            &sig,
            &keys,
            v.t,
            300_000
        ),
        Err(VerifyError::MessageIdMismatch { .. })
    ));
}

#[test]
fn rfc8785_examples() {
    for case in vectors().jcs {
        assert_eq!(
            canonical::canonicalize_str(&case.input).unwrap(),
            case.output,
            "{}",
            case.name
        );
        let value: serde_json::Value = serde_json::from_str(&case.input).unwrap();
        assert_eq!(
            serde_jcs::to_string(&value).unwrap(),
            case.output,
            "serde_jcs: {}",
            case.name
        );
    }
}

#[test]
fn rfc8785_appendix_b_numbers() {
    let numbers = vectors().numbers;
    assert_eq!(numbers.len(), 24);
    for (bits, expected) in numbers {
        let value = f64::from_bits(u64::from_str_radix(&bits, 16).unwrap());
        assert_eq!(
            canonical::format_number(value).unwrap(),
            expected,
            "0x{bits}"
        );
        // Through JSON text too: the printed form reads back as the same double.
        let json = serde_json::Value::from(value);
        assert_eq!(canonical::to_string(&json).unwrap(), expected, "0x{bits}");
        let back: f64 = expected.parse().unwrap();
        assert_eq!(
            back.to_bits() & !(1 << 63),
            value.to_bits() & !(1 << 63),
            "0x{bits}"
        );
    }
    for bits in ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"] {
        let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert!(canonical::format_number(value).is_err(), "0x{bits}");
    }
}

/// One key, whoever the signer.
struct Single(VerifyKey);

impl relay_signing::KeyLookup for Single {
    fn key(&self, _signer: &str, key_id: &str) -> relay_signing::KeyStatus {
        if key_id == self.0.key_id() {
            relay_signing::KeyStatus::Active(self.0.clone())
        } else {
            relay_signing::KeyStatus::Unknown
        }
    }
}
