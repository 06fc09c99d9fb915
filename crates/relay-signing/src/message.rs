//! The bytes a signature covers (PROTOCOL.md §11).
//!
//! `agent-relay-sig-v1\n` followed by the RFC 8785 canonical JSON of
//! `{a, k, t, m, type, from, to, topic, payload, payload_meta}`, with absent
//! fields omitted. `from` is the signer's agent name (clients send no
//! `from`; the daemon knows it from the connection), `to` the SEND's
//! original target. Routing and delivery fields (`v`, `ts`, `delivery`,
//! the DELIVER's own `id`) are not signed, so the daemon can forward a
//! signed SEND as DELIVERs without breaking it.

use std::cell::RefCell;

use relay_protocol::{Envelope, MessageType};

use crate::canonical;
use crate::error::CanonicalError;
use crate::signature::{Algorithm, SignatureRef};

/// [`DOMAIN_TAG`] as text.
const DOMAIN_TAG_STR: &str = "agent-relay-sig-v1\n";

/// The largest buffer [`SignedFields::with_signing_bytes`] keeps for the next message.
const MAX_KEPT_SCRATCH: usize = 64 * 1024;

/// Prefix of every signed byte string: binds the bytes to this protocol and
/// format version.
pub const DOMAIN_TAG: &[u8] = DOMAIN_TAG_STR.as_bytes();

/// Every field a signature covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedFields<'a> {
    /// `a`: the algorithm.
    pub algorithm: Algorithm,
    /// `k`: the key id.
    pub key_id: &'a str,
    /// `t`: signing time, ms since the Unix epoch.
    pub t: u64,
    /// `m`: the message id as signed.
    pub m: &'a str,
    /// `type`: the message type as the signer sent it (see [`signed_type`]).
    pub msg_type: &'a str,
    /// `from`: the signer's agent name.
    pub from: &'a str,
    /// `to`: the original target, if any.
    pub to: Option<&'a str>,
    /// `topic`, if any.
    pub topic: Option<&'a str>,
    /// `payload`, as JSON text (any formatting; duplicate member names refused).
    pub payload: &'a str,
    /// `payload_meta`, as JSON text, if any.
    pub payload_meta: Option<&'a str>,
}

impl SignedFields<'_> {
    /// The canonical JSON text (without the domain tag).
    pub fn canonical_json(&self) -> Result<String, CanonicalError> {
        let mut out = String::with_capacity(self.size_hint());
        self.write_canonical(&mut out)?;
        Ok(out)
    }

    /// The signed bytes: [`DOMAIN_TAG`] + [`canonical_json`](Self::canonical_json).
    pub fn signing_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        let mut out = String::with_capacity(DOMAIN_TAG_STR.len() + self.size_hint());
        out.push_str(DOMAIN_TAG_STR);
        self.write_canonical(&mut out)?;
        Ok(out.into_bytes())
    }

    /// Calls `use_bytes` with the [signed bytes](Self::signing_bytes), written into a buffer
    /// this thread keeps for the purpose: signing and checking every message would otherwise
    /// allocate and free one buffer each.
    pub fn with_signing_bytes<R>(
        &self,
        use_bytes: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CanonicalError> {
        thread_local! {
            static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
        }
        SCRATCH.with(|scratch| {
            // Taken out rather than borrowed, so that a `use_bytes` that signs again on this
            // thread (none does) would find an empty buffer instead of a borrow panic.
            let mut out = scratch.take();
            out.clear();
            out.reserve(DOMAIN_TAG_STR.len() + self.size_hint());
            out.push_str(DOMAIN_TAG_STR);
            let written = self.write_canonical(&mut out);
            let result = written.map(|()| use_bytes(out.as_bytes()));
            // A rare huge payload must not pin its buffer for the thread's lifetime.
            if out.capacity() <= MAX_KEPT_SCRATCH {
                scratch.replace(out);
            }
            result
        })
    }

    fn size_hint(&self) -> usize {
        // The member names, quotes and separators, `a` and `t` take under 128 bytes.
        128 + self.key_id.len()
            + self.m.len()
            + self.msg_type.len()
            + self.from.len()
            + self.to.map_or(0, str::len)
            + self.topic.map_or(0, str::len)
            + self.payload.len()
            + self.payload_meta.map_or(0, str::len)
    }

    /// Writes the object with its members in RFC 8785 order. The names are
    /// fixed and ASCII, so their UTF-16 order is plain byte order:
    /// a < from < k < m < payload < payload_meta < t < to < topic < type.
    fn write_canonical(&self, out: &mut String) -> Result<(), CanonicalError> {
        // The algorithm's and the type's names are fixed ASCII words that need no escapes.
        out.push_str(match self.algorithm {
            Algorithm::HmacSha256 => "{\"a\":\"hmac-sha256\",\"from\":",
            Algorithm::Ed25519 => "{\"a\":\"ed25519\",\"from\":",
        });
        canonical::write_string(self.from, out);
        out.push_str(",\"k\":");
        canonical::write_string(self.key_id, out);
        out.push_str(",\"m\":");
        canonical::write_string(self.m, out);
        out.push_str(",\"payload\":");
        canonical::write_canonical_text(self.payload, out)?;
        if let Some(meta) = self.payload_meta {
            out.push_str(",\"payload_meta\":");
            canonical::write_canonical_text(meta, out)?;
        }
        out.push_str(",\"t\":");
        // As a JavaScript signer sees it: a double (exact below 2^53).
        canonical::write_u64(self.t, out);
        if let Some(to) = self.to {
            out.push_str(",\"to\":");
            canonical::write_string(to, out);
        }
        if let Some(topic) = self.topic {
            out.push_str(",\"topic\":");
            canonical::write_string(topic, out);
        }
        out.push_str(",\"type\":");
        canonical::write_string(self.msg_type, out);
        out.push('}');
        Ok(())
    }
}

/// The `type` a signature covers for an envelope of type `msg_type`.
///
/// A DELIVER is the daemon's copy of a SEND, so it is verified as the SEND
/// it came from; every other type is signed as itself.
pub fn signed_type(msg_type: &MessageType) -> &str {
    match msg_type {
        MessageType::Deliver => MessageType::Send.as_str(),
        other => other.as_str(),
    }
}

/// The signed bytes for `env` as signed by `signer` with the header `sig`
/// (`sig.s` is ignored).
///
/// `original_to` is the SEND's target: `env.to` on a SEND, and on a DELIVER
/// `delivery.originalTo` when present (see [`original_target`]). The payload
/// is signed as its canonical form (duplicate member names refused);
/// `payload_meta` as relay-protocol serialises the typed `SendMeta` (unset
/// fields omitted, `sync.blocking` always present).
pub fn signing_bytes_for<'s>(
    env: &Envelope,
    signer: &str,
    original_to: Option<&str>,
    sig: impl Into<SignatureRef<'s>>,
) -> Result<Vec<u8>, CanonicalError> {
    let sig = sig.into();
    with_signing_bytes_for(
        env,
        signer,
        original_to,
        (sig.a, &sig.k, sig.t, &sig.m),
        <[u8]>::to_vec,
    )
}

/// [`signing_bytes_for`] lent to `use_bytes` instead of returned (see
/// [`SignedFields::with_signing_bytes`]); the header is given as `(a, k, t, m)`.
pub(crate) fn with_signing_bytes_for<R>(
    env: &Envelope,
    signer: &str,
    original_to: Option<&str>,
    (algorithm, key_id, t, m): (Algorithm, &str, u64, &str),
    use_bytes: impl FnOnce(&[u8]) -> R,
) -> Result<R, CanonicalError> {
    let meta = match &env.payload_meta {
        Some(meta) => {
            Some(serde_json::to_string(meta).map_err(|e| CanonicalError::NotJson(e.to_string()))?)
        }
        None => None,
    };
    SignedFields {
        algorithm,
        key_id,
        t,
        m,
        msg_type: signed_type(&env.msg_type),
        from: signer,
        to: original_to,
        topic: env.topic.as_deref(),
        payload: env.payload.get(),
        payload_meta: meta.as_deref(),
    }
    .with_signing_bytes(use_bytes)
}

/// The target a signature over `env` covers: `delivery.originalTo` when the
/// daemon recorded one (broadcasts), else `env.to`.
pub fn original_target(env: &Envelope) -> Option<&str> {
    env.delivery
        .as_ref()
        .and_then(|d| d.original_to.as_deref())
        .or(env.to.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Signature;

    #[test]
    fn absent_fields_are_omitted_and_keys_sorted() {
        let fields = SignedFields {
            algorithm: Algorithm::HmacSha256,
            key_id: "0011223344556677",
            t: 1_700_000_000_000,
            m: "m-1",
            msg_type: "SEND",
            from: "Alice",
            to: Some("Bob"),
            topic: None,
            payload: r#"{ "kind": "message", "body": "hi" }"#,
            payload_meta: None,
        };
        let bytes = fields.signing_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "agent-relay-sig-v1\n{\"a\":\"hmac-sha256\",\"from\":\"Alice\",\
             \"k\":\"0011223344556677\",\"m\":\"m-1\",\
             \"payload\":{\"body\":\"hi\",\"kind\":\"message\"},\
             \"t\":1700000000000,\"to\":\"Bob\",\"type\":\"SEND\"}"
        );
    }

    #[test]
    fn deliver_is_verified_as_its_send() {
        assert_eq!(signed_type(&MessageType::Deliver), "SEND");
        assert_eq!(signed_type(&MessageType::ChannelMessage), "CHANNEL_MESSAGE");
    }

    #[test]
    fn duplicate_payload_members_cannot_be_signed() {
        let env = Envelope::from_slice(
            br#"{"v":1,"type":"SEND","id":"x","ts":1,"to":"B","payload":{"body":"a","body":"b"}}"#,
        )
        .unwrap();
        let sig = Signature {
            s: String::new(),
            k: "0011223344556677".into(),
            t: 1,
            a: Algorithm::HmacSha256,
            m: "x".into(),
        };
        assert_eq!(
            signing_bytes_for(&env, "A", Some("B"), &sig),
            Err(CanonicalError::DuplicateKey("body".into()))
        );
    }

    #[test]
    fn original_target_prefers_delivery_original_to() {
        let env = Envelope::from_slice(
            br#"{"v":1,"type":"DELIVER","id":"x","ts":1,"to":"Bob","payload":{},
                "delivery":{"seq":1,"session_id":"s","originalTo":"*"}}"#,
        )
        .unwrap();
        assert_eq!(original_target(&env), Some("*"));
        let env = Envelope::from_slice(
            br#"{"v":1,"type":"SEND","id":"x","ts":1,"to":"Bob","payload":{}}"#,
        )
        .unwrap();
        assert_eq!(original_target(&env), Some("Bob"));
    }
}
