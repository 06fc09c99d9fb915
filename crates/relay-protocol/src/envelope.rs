//! The envelope every frame carries.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::message_type::MessageType;
use crate::payloads::{DeliveryInfo, SendMeta};

/// Protocol version carried in every envelope's `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One protocol message.
///
/// `payload` is kept as raw JSON: the daemon forwards a SEND's payload into its DELIVERs without
/// re-encoding it, which both preserves unknown fields and saves work on the hot path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(rename = "type")]
    pub msg_type: MessageType,
    pub id: String,
    #[serde(deserialize_with = "de_timestamp")]
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub payload: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_meta: Option<SendMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryInfo>,
    /// Message signature (`_sig`), forwarded untouched.
    #[serde(rename = "_sig", default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Box<RawValue>>,
}

/// JavaScript clients may send `ts` as a float; accept any non-negative number.
fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        Ok(u)
    } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()) {
        Ok(f as u64)
    } else {
        Err(serde::de::Error::custom(format!(
            "ts must be a non-negative number of milliseconds, got {n}"
        )))
    }
}

/// Why a frame body is not a usable envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not UTF-8 JSON at all: the stream cannot be trusted any more.
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON but not an object: the peer does not speak the protocol.
    #[error("frame must be a JSON object, got {0}")]
    NotObject(&'static str),
    /// A JSON object that is not a valid envelope (missing or mistyped field).
    #[error("invalid envelope: {0}")]
    Invalid(String),
}

impl EnvelopeError {
    /// Whether the connection must be closed after reporting this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, EnvelopeError::Invalid(_))
    }
}

impl Envelope {
    /// Builds an envelope with a fresh id and the current time.
    pub fn new<P: Serialize>(msg_type: MessageType, payload: &P) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            msg_type,
            id: crate::ids::new_id(),
            ts: now_ms(),
            from: None,
            to: None,
            topic: None,
            payload: to_raw(payload),
            payload_meta: None,
            delivery: None,
            sig: None,
        }
    }

    /// Builds an envelope whose payload is already JSON.
    pub fn with_raw_payload(msg_type: MessageType, payload: Box<RawValue>) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            msg_type,
            id: crate::ids::new_id(),
            ts: now_ms(),
            from: None,
            to: None,
            topic: None,
            payload,
            payload_meta: None,
            delivery: None,
            sig: None,
        }
    }

    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
    pub fn meta(mut self, meta: SendMeta) -> Self {
        self.payload_meta = Some(meta);
        self
    }

    /// Parses a frame body. Distinguishes garbage (fatal) from a malformed envelope (not fatal).
    pub fn from_slice(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        match serde_json::from_slice::<Envelope>(body) {
            Ok(env) => Ok(env),
            Err(err) => Err(classify(body, err)),
        }
    }

    /// Decodes the payload into a typed payload struct.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// Serialises the envelope to JSON bytes (without the frame header).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data structures into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn classify(body: &[u8], err: serde_json::Error) -> EnvelopeError {
    if std::str::from_utf8(body).is_err() {
        return EnvelopeError::NotJson("frame is not valid UTF-8".into());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Err(e) => EnvelopeError::NotJson(e.to_string()),
        Ok(serde_json::Value::Object(_)) => EnvelopeError::Invalid(err.to_string()),
        Ok(serde_json::Value::Array(_)) => EnvelopeError::NotObject("an array"),
        Ok(serde_json::Value::String(_)) => EnvelopeError::NotObject("a string"),
        Ok(serde_json::Value::Number(_)) => EnvelopeError::NotObject("a number"),
        Ok(serde_json::Value::Bool(_)) => EnvelopeError::NotObject("a boolean"),
        Ok(serde_json::Value::Null) => EnvelopeError::NotObject("null"),
    }
}

/// Serialises a value to a raw JSON payload.
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| empty_object())
}

/// `{}` as a raw value.
pub fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).unwrap_or_else(|_| unreachable_raw())
}

fn unreachable_raw() -> Box<RawValue> {
    // "{}" is always valid JSON; this path exists only to avoid a panic in library code.
    serde_json::value::to_raw_value(&serde_json::Map::new()).expect("empty map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::SendPayload;

    #[test]
    fn parses_a_send_from_the_npm_sdk() {
        let raw = br#"{"v":1,"type":"SEND","id":"mk7-1","ts":1768000000000,"to":"Bob","payload":{"kind":"message","body":"hi","data":{"k":1,"nested":{"x":[1,2]}},"thread":"t1"},"payload_meta":{"replyTo":"c1","custom":"keep"}}"#;
        let env = Envelope::from_slice(raw).unwrap();
        assert_eq!(env.msg_type, MessageType::Send);
        assert_eq!(env.to.as_deref(), Some("Bob"));
        let p: SendPayload = env.payload_as().unwrap();
        assert_eq!(p.body, "hi");
        assert_eq!(p.data.as_ref().unwrap()["nested"]["x"][1], 2);
        let meta = env.payload_meta.as_ref().unwrap();
        assert_eq!(meta.reply_to.as_deref(), Some("c1"));
        let back = String::from_utf8(env.to_json()).unwrap();
        assert!(back.contains(r#""custom":"keep""#), "{back}");
        assert!(
            !back.contains("null"),
            "optional fields must be omitted: {back}"
        );
    }

    #[test]
    fn float_timestamps_are_accepted() {
        let env = Envelope::from_slice(br#"{"v":1,"type":"PONG","id":"a","ts":17.9,"payload":{}}"#)
            .unwrap();
        assert_eq!(env.ts, 17);
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            Envelope::from_slice(b"{not json"),
            Err(EnvelopeError::NotJson(_))
        ));
        assert!(matches!(
            Envelope::from_slice(b"[1,2]"),
            Err(EnvelopeError::NotObject("an array"))
        ));
        assert!(matches!(
            Envelope::from_slice(&[0xff, 0xfe]),
            Err(EnvelopeError::NotJson(_))
        ));
        let e = Envelope::from_slice(br#"{"v":1,"type":"SEND","ts":1,"payload":{}}"#).unwrap_err();
        assert!(!e.is_fatal());
        assert!(e.to_string().contains("id"), "{e}");
    }
}
