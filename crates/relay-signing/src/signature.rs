//! The `_sig` object and its algorithm names.

use std::fmt;
use std::str::FromStr;

use relay_protocol::Envelope;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::VerifyError;

/// A signature algorithm, spelled on the wire as in `_sig.a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA256 with a shared or per-agent secret (`"hmac-sha256"`).
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// Pure Ed25519 (RFC 8032, no prehash) (`"ed25519"`).
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl Algorithm {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is neither `hmac-sha256` nor `ed25519`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature algorithm {0:?}; use \"hmac-sha256\" or \"ed25519\"")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hmac-sha256" => Ok(Algorithm::HmacSha256),
            "ed25519" => Ok(Algorithm::Ed25519),
            other => Err(UnknownAlgorithm(other.to_string())),
        }
    }
}

/// The `_sig` object of an envelope (PROTOCOL.md §11).
///
/// Unknown members are refused: a signature must mean exactly one thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signature, lowercase hex (64 digits for HMAC, 128 for Ed25519).
    pub s: String,
    /// Id of the key that signed (16 lowercase hex digits).
    pub k: String,
    /// Signing time, milliseconds since the Unix epoch.
    pub t: u64,
    /// Algorithm.
    pub a: Algorithm,
    /// Id of the message as signed (the SEND's `id`; kept when the daemon
    /// forwards the message under a new id).
    pub m: String,
}

impl Signature {
    /// Reads `_sig` from an envelope: `Ok(None)` when it has none.
    pub fn from_envelope(env: &Envelope) -> Result<Option<Signature>, VerifyError> {
        env.sig.as_deref().map(Signature::from_raw).transpose()
    }

    /// Parses a raw `_sig` value.
    pub fn from_raw(raw: &RawValue) -> Result<Signature, VerifyError> {
        serde_json::from_str(raw.get()).map_err(|e| VerifyError::Malformed(e.to_string()))
    }

    /// The `_sig` value as raw JSON.
    pub fn to_raw(&self) -> Box<RawValue> {
        relay_protocol::to_raw(self)
    }

    /// Sets this signature as the envelope's `_sig`.
    pub fn attach_to(&self, env: &mut Envelope) {
        env.sig = Some(self.to_raw());
    }

    /// The signature bytes, decoded from `s` (either hex case is accepted).
    pub(crate) fn signature_bytes(&self) -> Result<Vec<u8>, VerifyError> {
        let bytes = crate::hex::decode(&self.s).ok_or_else(|| {
            VerifyError::Malformed(format!(
                "_sig.s is not hexadecimal: {:?}",
                truncate(&self.s)
            ))
        })?;
        let expected = match self.a {
            Algorithm::HmacSha256 => 32,
            Algorithm::Ed25519 => 64,
        };
        if bytes.len() != expected {
            return Err(VerifyError::Malformed(format!(
                "_sig.s has {} bytes; {} signatures have {expected}",
                bytes.len(),
                self.a
            )));
        }
        Ok(bytes)
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_the_wire_names() {
        let sig = Signature {
            s: "ab".into(),
            k: "0123456789abcdef".into(),
            t: 0,
            a: Algorithm::Ed25519,
            m: "m1".into(),
        };
        let json = serde_json::to_string(&sig).unwrap();
        assert_eq!(
            json,
            r#"{"s":"ab","k":"0123456789abcdef","t":0,"a":"ed25519","m":"m1"}"#
        );
        let back = Signature::from_raw(&sig.to_raw()).unwrap();
        assert_eq!(back, sig);
        assert_eq!(
            "hmac-sha256".parse::<Algorithm>(),
            Ok(Algorithm::HmacSha256)
        );
        assert!("rsa".parse::<Algorithm>().is_err());
    }

    #[test]
    fn malformed_signatures_are_reported() {
        for bad in [
            r#"{"s":"ab","k":"k","t":1,"a":"hmac-sha256"}"#,
            r#"{"s":"ab","k":"k","t":1,"a":"rsa","m":"x"}"#,
            r#"{"s":"ab","k":"k","t":-1,"a":"ed25519","m":"x"}"#,
            r#"{"s":"ab","k":"k","t":1,"a":"ed25519","m":"x","extra":1}"#,
            r#"[1]"#,
        ] {
            let raw = RawValue::from_string(bad.to_string()).unwrap();
            assert!(
                matches!(Signature::from_raw(&raw), Err(VerifyError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn signature_bytes_check_hex_and_length() {
        let mut sig = Signature {
            s: "AB".repeat(32),
            k: "k".into(),
            t: 1,
            a: Algorithm::HmacSha256,
            m: "m".into(),
        };
        assert_eq!(sig.signature_bytes().unwrap().len(), 32);
        sig.a = Algorithm::Ed25519;
        assert!(matches!(
            sig.signature_bytes(),
            Err(VerifyError::Malformed(_))
        ));
        sig.s = "zz".into();
        assert!(matches!(
            sig.signature_bytes(),
            Err(VerifyError::Malformed(_))
        ));
    }
}
