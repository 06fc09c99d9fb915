//! The `_sig` object and its algorithm names.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use relay_protocol::{Envelope, SigLayout, SignatureJson};
use serde::{Deserialize, Serialize};

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
        env.sig.as_ref().map(Signature::from_json).transpose()
    }

    /// Reads an envelope's `_sig`.
    pub fn from_json(sig: &SignatureJson) -> Result<Signature, VerifyError> {
        SignatureRef::from_json(sig).map(SignatureRef::into_owned)
    }

    /// Parses the JSON text of a `_sig` value.
    pub fn from_text(text: &str) -> Result<Signature, VerifyError> {
        SignatureRef::from_text(text).map(SignatureRef::into_owned)
    }

    /// The `_sig` value, written in the signers' layout.
    pub fn to_json(&self) -> SignatureJson {
        SignatureJson::write(&self.s, &self.k, self.t, self.a.as_str(), &self.m)
    }

    /// Sets this signature as the envelope's `_sig`.
    pub fn attach_to(&self, env: &mut Envelope) {
        env.sig = Some(self.to_json());
    }
}

/// A `_sig` read in place: its strings borrow from the frame's text (they hold no escapes, as
/// signers write them), so checking a signature copies nothing out of the frame. What
/// [`verify`](crate::verify) reads; a [`Signature`] lends itself as one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRef<'a> {
    /// [`Signature::s`].
    #[serde(borrow)]
    pub s: Cow<'a, str>,
    /// [`Signature::k`].
    #[serde(borrow)]
    pub k: Cow<'a, str>,
    /// [`Signature::t`].
    pub t: u64,
    /// [`Signature::a`].
    pub a: Algorithm,
    /// [`Signature::m`].
    #[serde(borrow)]
    pub m: Cow<'a, str>,
}

impl<'a> SignatureRef<'a> {
    /// Reads `_sig` from an envelope: `Ok(None)` when it has none.
    pub fn from_envelope(env: &'a Envelope) -> Result<Option<SignatureRef<'a>>, VerifyError> {
        env.sig.as_ref().map(SignatureRef::from_json).transpose()
    }

    /// Reads an envelope's `_sig`: from the places its members were found when the frame was
    /// read if it is in the signers' layout, else by serde.
    pub fn from_json(sig: &'a SignatureJson) -> Result<SignatureRef<'a>, VerifyError> {
        match sig.layout().and_then(SignatureRef::from_layout) {
            Some(sig) => Ok(sig),
            None => SignatureRef::from_serde(sig.get()),
        }
    }

    /// Parses the JSON text of a `_sig` value.
    pub fn from_text(text: &'a str) -> Result<SignatureRef<'a>, VerifyError> {
        match SignatureRef::from_signer_layout(text) {
            Some(sig) => Ok(sig),
            None => SignatureRef::from_serde(text),
        }
    }

    fn from_serde(text: &'a str) -> Result<SignatureRef<'a>, VerifyError> {
        serde_json::from_str(text).map_err(|e| VerifyError::Malformed(e.to_string()))
    }

    /// Reads `_sig` in the layout signers write ([`SigLayout`]) without serde's general
    /// machinery. `None` for any other text, which serde then reads or refuses.
    fn from_signer_layout(text: &'a str) -> Option<SignatureRef<'a>> {
        SignatureRef::from_layout(SigLayout::read(text)?)
    }

    fn from_layout(layout: SigLayout<'a>) -> Option<SignatureRef<'a>> {
        let a = layout.a.parse().ok()?;
        Some(SignatureRef::borrowing(
            layout.s, layout.k, layout.t, a, layout.m,
        ))
    }

    fn borrowing(s: &'a str, k: &'a str, t: u64, a: Algorithm, m: &'a str) -> SignatureRef<'a> {
        SignatureRef {
            s: Cow::Borrowed(s),
            k: Cow::Borrowed(k),
            t,
            a,
            m: Cow::Borrowed(m),
        }
    }

    /// An owned copy.
    pub fn into_owned(self) -> Signature {
        Signature {
            s: self.s.into_owned(),
            k: self.k.into_owned(),
            t: self.t,
            a: self.a,
            m: self.m.into_owned(),
        }
    }

    /// The signature bytes, decoded from `s` (either hex case is accepted) into `buf`.
    pub(crate) fn signature_bytes<'b>(
        &self,
        buf: &'b mut [u8; 64],
    ) -> Result<&'b [u8], VerifyError> {
        let expected = match self.a {
            Algorithm::HmacSha256 => 32,
            Algorithm::Ed25519 => 64,
        };
        if self.s.len() != expected * 2 {
            return Err(VerifyError::Malformed(format!(
                "_sig.s has {} hex digits; {} signatures have {}",
                self.s.len(),
                self.a,
                expected * 2
            )));
        }
        relay_protocol::hex::decode_to_slice(&self.s, buf).ok_or_else(|| {
            VerifyError::Malformed(format!(
                "_sig.s is not hexadecimal: {:?}",
                truncate(&self.s)
            ))
        })
    }
}

impl<'a> From<&'a Signature> for SignatureRef<'a> {
    fn from(sig: &'a Signature) -> Self {
        SignatureRef::borrowing(&sig.s, &sig.k, sig.t, sig.a, &sig.m)
    }
}

impl<'a> From<&'a SignatureRef<'_>> for SignatureRef<'a> {
    fn from(sig: &'a SignatureRef<'_>) -> Self {
        SignatureRef::borrowing(&sig.s, &sig.k, sig.t, sig.a, &sig.m)
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
        assert_eq!(sig.to_json().get(), json);
        let back = Signature::from_json(&sig.to_json()).unwrap();
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
            let json = SignatureJson::from_text(bad.to_string()).unwrap();
            assert!(
                matches!(Signature::from_json(&json), Err(VerifyError::Malformed(_))),
                "{bad}"
            );
            assert!(
                matches!(Signature::from_text(bad), Err(VerifyError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_signer_layout_is_read_without_serde_and_everything_else_with_it() {
        let text = r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1"}"#;
        let fast = SignatureRef::from_signer_layout(text).expect("the signer layout");
        assert!(matches!(fast.m, Cow::Borrowed("m1")));
        assert_eq!(fast.t, 17);
        for other in [
            r#"{"k":"0123456789abcdef","s":"ab","t":17,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m\u0031"}"#,
            r#"{"s":"ab", "k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":017,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":99999999999999999999,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"rsa","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1","x":1}"#,
        ] {
            assert_eq!(SignatureRef::from_signer_layout(other), None, "{other}");
        }
        let escaped = r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m\u0031"}"#;
        assert_eq!(SignatureRef::from_text(escaped).unwrap().m, "m1");
        let json = SignatureJson::from_text(escaped.into()).unwrap();
        assert_eq!(SignatureRef::from_json(&json).unwrap().m, "m1");
        let json = SignatureJson::from_text(text.into()).unwrap();
        assert!(matches!(
            SignatureRef::from_json(&json).unwrap().m,
            Cow::Borrowed("m1")
        ));
    }

    proptest::proptest! {
        /// Read the fast way or by serde, a `_sig` means the same; the fast way never accepts
        /// what serde refuses.
        #[test]
        fn both_readers_agree(
            s in "[0-9a-f\"\\\\]{0,8}",
            k in "(?s).{0,6}",
            t in proptest::prelude::any::<u64>(),
            ed in proptest::prelude::any::<bool>(),
            m in "(?s).{0,10}",
            cut in 0usize..120,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let sig = Signature {
                s, k, t, m,
                a: if ed { Algorithm::Ed25519 } else { Algorithm::HmacSha256 },
            };
            let text = serde_json::to_string(&sig).unwrap();
            let mut variants = vec![text.clone()];
            let mut bytes = text.into_bytes();
            let at = cut % bytes.len();
            bytes[at] = byte;
            variants.extend(String::from_utf8(bytes).ok());
            for text in variants {
                let by_serde: Result<SignatureRef<'_>, _> = serde_json::from_str(&text);
                if let Some(fast) = SignatureRef::from_signer_layout(&text) {
                    proptest::prop_assert_eq!(Some(fast), by_serde.ok());
                }
            }
            let plain = !sig.s.contains(['"', '\\'])
                && !sig.k.contains(|c: char| c == '"' || c == '\\' || c < ' ')
                && !sig.m.contains(|c: char| c == '"' || c == '\\' || c < ' ');
            let text = serde_json::to_string(&sig).unwrap();
            // The hand-written `_sig` is the text serde writes, whatever the strings hold.
            let written = sig.to_json();
            proptest::prop_assert_eq!(written.get(), text.as_str());
            proptest::prop_assert_eq!(written.layout().is_some(), plain);
            proptest::prop_assert_eq!(Signature::from_json(&written).ok(), Some(sig.clone()));
            let fast = SignatureRef::from_signer_layout(&text);
            proptest::prop_assert_eq!(fast.is_some(), plain);
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(fast.into_owned(), sig);
            }
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
        let mut buf = [0; 64];
        assert_eq!(
            SignatureRef::from(&sig).signature_bytes(&mut buf).unwrap(),
            [0xab; 32]
        );
        sig.a = Algorithm::Ed25519;
        assert!(matches!(
            SignatureRef::from(&sig).signature_bytes(&mut buf),
            Err(VerifyError::Malformed(m)) if m.contains("128")
        ));
        sig.s = "zz".repeat(64);
        assert!(matches!(
            SignatureRef::from(&sig).signature_bytes(&mut buf),
            Err(VerifyError::Malformed(m)) if m.contains("not hexadecimal")
        ));
    }
}
