//! The bytes a signature covers (PROTOCOL.md §11).
//!
//! `agent-relay-sig-v1\n` followed by the RFC 8785 canonical JSON of
//! `{a, k, t, m, type, from, to, topic, payload, payload_meta}`, with absent
//! fields omitted. `from` is the signer's agent name (clients send no
//! `from`; the daemon knows it from the connection), `to` the SEND's
//! original target. Routing and delivery fields (`v`, `ts`, `delivery`,
//! the DELIVER's own `id`) are not signed, so the daemon can forward a
//! signed SEND as DELIVERs without breaking it.

use relay_protocol::{Envelope, MessageType};
use serde_json::{Map, Value};

use crate::canonical;
use crate::error::CanonicalError;
use crate::signature::{Algorithm, Signature};

/// Prefix of every signed byte string: binds the bytes to this protocol and
/// format version.
pub const DOMAIN_TAG: &[u8] = b"agent-relay-sig-v1\n";

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
    /// `payload`.
    pub payload: &'a Value,
    /// `payload_meta`, if any.
    pub payload_meta: Option<&'a Value>,
}

impl SignedFields<'_> {
    /// The JSON object of the signed fields.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("a".into(), Value::from(self.algorithm.as_str()));
        map.insert("k".into(), Value::from(self.key_id));
        map.insert("t".into(), Value::from(self.t));
        map.insert("m".into(), Value::from(self.m));
        map.insert("type".into(), Value::from(self.msg_type));
        map.insert("from".into(), Value::from(self.from));
        if let Some(to) = self.to {
            map.insert("to".into(), Value::from(to));
        }
        if let Some(topic) = self.topic {
            map.insert("topic".into(), Value::from(topic));
        }
        map.insert("payload".into(), self.payload.clone());
        if let Some(meta) = self.payload_meta {
            map.insert("payload_meta".into(), meta.clone());
        }
        Value::Object(map)
    }

    /// The canonical JSON text (without the domain tag).
    pub fn canonical_json(&self) -> Result<String, CanonicalError> {
        canonical::to_string(&self.to_value())
    }

    /// The signed bytes: [`DOMAIN_TAG`] + [`canonical_json`](Self::canonical_json).
    pub fn signing_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        let json = self.canonical_json()?;
        let mut bytes = Vec::with_capacity(DOMAIN_TAG.len() + json.len());
        bytes.extend_from_slice(DOMAIN_TAG);
        bytes.extend_from_slice(json.as_bytes());
        Ok(bytes)
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

/// An envelope's payload and payload_meta as the JSON values that are signed.
///
/// The payload is parsed with [`canonical::parse_strict`] (duplicate member
/// names refused); `payload_meta` is the typed `SendMeta` as relay-protocol
/// serialises it (unset fields omitted, `sync.blocking` always present).
pub fn signed_content(env: &Envelope) -> Result<(Value, Option<Value>), CanonicalError> {
    let payload = canonical::parse_strict(env.payload.get())?;
    let meta = match &env.payload_meta {
        Some(meta) => {
            Some(serde_json::to_value(meta).map_err(|e| CanonicalError::NotJson(e.to_string()))?)
        }
        None => None,
    };
    Ok((payload, meta))
}

/// The signed bytes for `env` as signed by `signer` with the header `sig`
/// (`sig.s` is ignored).
///
/// `original_to` is the SEND's target: `env.to` on a SEND, and on a DELIVER
/// `delivery.originalTo` when present (see [`original_target`]).
pub fn signing_bytes_for(
    env: &Envelope,
    signer: &str,
    original_to: Option<&str>,
    sig: &Signature,
) -> Result<Vec<u8>, CanonicalError> {
    let (payload, meta) = signed_content(env)?;
    SignedFields {
        algorithm: sig.a,
        key_id: &sig.k,
        t: sig.t,
        m: &sig.m,
        msg_type: signed_type(&env.msg_type),
        from: signer,
        to: original_to,
        topic: env.topic.as_deref(),
        payload: &payload,
        payload_meta: meta.as_ref(),
    }
    .signing_bytes()
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
    use serde_json::json;

    #[test]
    fn absent_fields_are_omitted_and_keys_sorted() {
        let payload = json!({"kind": "message", "body": "hi"});
        let fields = SignedFields {
            algorithm: Algorithm::HmacSha256,
            key_id: "0011223344556677",
            t: 1_700_000_000_000,
            m: "m-1",
            msg_type: "SEND",
            from: "Alice",
            to: Some("Bob"),
            topic: None,
            payload: &payload,
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
        assert_eq!(
            signed_content(&env).map(|_| ()),
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
