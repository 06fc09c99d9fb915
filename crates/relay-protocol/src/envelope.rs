//! The envelope every frame carries.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::message_type::MessageType;
use crate::payloads::{DeliveryInfo, SendMeta};
use crate::signature_json::SignatureJson;

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
/// re-encoding it, which both preserves unknown fields and saves work on the hot path. Written
/// by [`Envelope::write_json`] (and [`Serialize`]) with unset optional members omitted, never
/// `null`, and `_sig` last.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(rename = "type")]
    pub msg_type: MessageType,
    pub id: String,
    #[serde(deserialize_with = "de_timestamp")]
    pub ts: u64,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    pub payload: Box<RawValue>,
    #[serde(default)]
    pub payload_meta: Option<SendMeta>,
    #[serde(default)]
    pub delivery: Option<DeliveryInfo>,
    /// Message signature (`_sig`), forwarded untouched.
    #[serde(rename = "_sig", default)]
    pub sig: Option<SignatureJson>,
}

/// The envelope as written: every member but `_sig` borrowed from an [`Envelope`], so that
/// [`Envelope::write_json`] can write `_sig` itself while [`Serialize`] keeps one list of the
/// members and their order.
#[derive(Serialize)]
struct Written<'a> {
    v: u32,
    #[serde(rename = "type")]
    msg_type: &'a MessageType,
    id: &'a str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_meta: Option<&'a SendMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<&'a DeliveryInfo>,
    #[serde(rename = "_sig", skip_serializing_if = "Option::is_none")]
    sig: Option<&'a SignatureJson>,
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written(self.sig.as_ref()).serialize(serializer)
    }
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
        if let Some(env) = Envelope::from_slice_signed_last(body) {
            return Ok(env);
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(env) => Ok(env),
            Err(err) => Err(classify(body, err)),
        }
    }

    /// The fast path for a frame that ends with `_sig` in the signers' layout, as the relay's
    /// own signers and the daemon write them: `{…,"_sig":{"s":…,"m":"…"}}`. The `_sig` text is
    /// read by [`SigLayout`] rather than by the JSON parser, and the rest of the frame, closed
    /// where `_sig` began, by the parser. `None` sends the frame down the general path.
    ///
    /// Why the split cannot change what the frame means: if the rest parses as an envelope on its
    /// own, the comma before `"_sig"` ended a member of the top-level object (the one `}` added
    /// closed that object and nothing else), so `_sig` is a top-level member and its text is the
    /// value the general path would have read. A rest that itself holds a `_sig` is a duplicate
    /// member, which the general path refuses.
    fn from_slice_signed_last(body: &[u8]) -> Option<Envelope> {
        let inner = body.strip_suffix(b"}")?;
        let at = find_sig_member(inner)?;
        let sig_text = std::str::from_utf8(inner.get(at + SIG_MEMBER.len()..)?).ok()?;
        let sig = SignatureJson::from_layout_text(sig_text)?;
        let mut env = with_closed_head(body.get(..at)?, |rest| {
            serde_json::from_slice::<Envelope>(rest).ok()
        })?;
        if env.sig.is_some() {
            return None;
        }
        env.sig = Some(sig);
        Some(env)
    }

    /// Decodes the payload into a typed payload struct.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// Serialises the envelope to JSON bytes (without the frame header).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        // Serialising plain data structures into a Vec cannot fail.
        self.write_json(&mut out).map(|()| out).unwrap_or_default()
    }

    /// Appends the envelope's JSON to `out`, `_sig` last and copied as it is (the general
    /// [`Serialize`] path would have to parse it to hand it to a serializer).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut *out, &self.written(None))?;
        if let Some(sig) = &self.sig {
            // Reopen the object the serializer closed (a struct always ends with its `}`).
            let closed = out.pop();
            debug_assert_eq!(closed, Some(b'}'));
            out.extend_from_slice(br#","_sig":"#);
            out.extend_from_slice(sig.get().as_bytes());
            out.push(b'}');
        }
        Ok(())
    }

    fn written<'a>(&'a self, sig: Option<&'a SignatureJson>) -> Written<'a> {
        Written {
            v: self.v,
            msg_type: &self.msg_type,
            id: &self.id,
            ts: self.ts,
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            topic: self.topic.as_deref(),
            payload: &self.payload,
            payload_meta: self.payload_meta.as_ref(),
            delivery: self.delivery.as_ref(),
            sig,
        }
    }
}

/// The longest `_sig` (with its member name) that [`Envelope::from_slice`] looks for in the
/// signers' layout: an Ed25519 signature's 128 digits, a key id, a time, an algorithm name and
/// a message id of up to 128 bytes fit with room to spare.
const MAX_LAYOUT_SIG_BYTES: usize = 512;

/// The `_sig` member's name as it follows another member in a frame.
const SIG_MEMBER: &[u8] = br#","_sig":"#;

/// Where the last `,"_sig":` among the last [`MAX_LAYOUT_SIG_BYTES`] of `body` starts.
fn find_sig_member(body: &[u8]) -> Option<usize> {
    let window = body.len().saturating_sub(MAX_LAYOUT_SIG_BYTES);
    let mut end = body.len();
    // Underscores are rare in a signature's text: jump from one to the next.
    while let Some(underscore) = memchr::memrchr(b'_', body.get(window..end)?) {
        let underscore = window + underscore;
        let start = underscore.checked_sub(2)?;
        if body.get(start..start + SIG_MEMBER.len()) == Some(SIG_MEMBER) {
            return Some(start);
        }
        end = underscore;
    }
    None
}

/// Calls `parse` with `head` and a closing `}`, written into a buffer this thread keeps for the
/// purpose (every signed frame passes through here; a fresh buffer each would be an allocation
/// and a free per message).
fn with_closed_head<R>(head: &[u8], parse: impl FnOnce(&[u8]) -> R) -> R {
    /// A frame head larger than this (a rare huge payload) is not kept for the next one.
    const MAX_KEPT: usize = 64 * 1024;
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut rest = scratch.take();
        rest.clear();
        rest.extend_from_slice(head);
        rest.push(b'}');
        let parsed = parse(&rest);
        if rest.capacity() <= MAX_KEPT {
            scratch.replace(rest);
        }
        parsed
    })
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

    const SIG: &str =
        r#"{"s":"ab01","k":"0123456789abcdef","t":1700000000000,"a":"hmac-sha256","m":"m-1"}"#;

    /// What serde alone makes of a frame: the reference the fast path must agree with.
    fn by_serde(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        serde_json::from_slice::<Envelope>(body).map_err(|e| classify(body, e))
    }

    fn same(a: &Result<Envelope, EnvelopeError>, b: &Result<Envelope, EnvelopeError>) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => a.to_json() == b.to_json() && a.sig == b.sig,
            (Err(a), Err(b)) => a == b,
            _ => false,
        }
    }

    #[test]
    fn a_frame_ending_with_its_signature_is_read_with_the_signature_in_place() {
        let body = format!(
            r#"{{"v":1,"type":"SEND","id":"m-1","ts":5,"to":"Bob","payload":{{"kind":"message","body":"x,\"_sig\":{{}}"}},"_sig":{SIG}}}"#
        );
        let env = Envelope::from_slice(body.as_bytes()).unwrap();
        let sig = env.sig.as_ref().expect("signed");
        assert_eq!(sig.get(), SIG);
        assert_eq!(sig.layout().map(|l| l.m), Some("m-1"));
        assert!(same(&Ok(env.clone()), &by_serde(body.as_bytes())));
        // Written back, the frame is the one read.
        assert_eq!(String::from_utf8(env.to_json()).unwrap(), body);
        assert_eq!(serde_json::to_string(&env).unwrap(), body);
    }

    #[test]
    fn frames_the_fast_path_must_not_misread() {
        let cases = [
            // `_sig` not last, or not in the layout: the general path reads it.
            format!(r#"{{"v":1,"type":"SEND","id":"a","ts":1,"_sig":{SIG},"payload":{{}}}}"#),
            r#"{"v":1,"type":"SEND","id":"a","ts":1,"payload":{},"_sig":{"m":"a","s":"x"}}"#
                .to_string(),
            // Two `_sig` members: refused as a duplicate either way.
            format!(
                r#"{{"v":1,"type":"SEND","id":"a","ts":1,"payload":{{}},"_sig":{SIG},"_sig":{SIG}}}"#
            ),
            // The look-alike is inside a nested object or a string, not a member of the envelope.
            format!(r#"{{"v":1,"type":"SEND","id":"a","ts":1,"payload":{{"x":1,"_sig":{SIG}}}}}"#),
            format!(r#"{{"v":1,"type":"SEND","id":"a","ts":1,"payload":{{"x":"a","_sig":{SIG}}}"#),
            format!(r#"{{"v":1,"type":"SEND","id":"a","ts":1,"payload":"x\",\"_sig\":{SIG}}}"#),
            // Broken before the signature, or missing a member.
            format!(r#"{{"v":1,"type":"SEND","id":"a","ts":1,"payload":{{}},,"_sig":{SIG}}}"#),
            format!(r#"{{"v":1,"type":"SEND","ts":1,"payload":{{}},"_sig":{SIG}}}"#),
            format!(r#"{{"v":1,"type":"SEND","id":"a","ts":1,"payload":{{}},"_sig":{SIG}}} "#),
            format!(r#",{{"_sig":{SIG}}}"#),
            format!(r#"{{"_sig":{SIG}}}"#),
        ];
        for body in cases {
            let fast = Envelope::from_slice(body.as_bytes());
            assert!(same(&fast, &by_serde(body.as_bytes())), "{body}: {fast:?}");
        }
    }

    proptest::proptest! {
        /// Whatever surrounds a signature, reading a frame gives what serde alone gives.
        #[test]
        fn the_fast_path_agrees_with_serde(
            head in proptest::sample::select(vec![
                r#"{"v":1,"type":"SEND","id":"a","ts":1,"payload":"#,
                r#"{"v":1,"type":"SEND","id":"a","ts":1,"payload":{"x":"#,
                r#"{"v":1,"type":"SEND","id":"a","payload":"#,
                r#"{"v":1,"type":"DELIVER","id":"a","ts":1,"payload":["#,
            ]),
            middle in r#"[ -~]{0,12}"#,
            extra in proptest::sample::select(vec!["", "}", "]", "\"", "\\\"", ","]),
            sig in proptest::sample::select(vec![
                SIG,
                r#"{"s":"","k":"","t":0,"a":"","m":""}"#,
                r#"{"s":"a","k":"b","t":01,"a":"c","m":"d"}"#,
                r#"{"m":"a"}"#,
            ]),
            tail in proptest::sample::select(vec!["}", "}}", "", " }", "]}"]),
        ) {
            let body = format!("{head}{middle}{extra},\"_sig\":{sig}{tail}");
            let fast = Envelope::from_slice(body.as_bytes());
            proptest::prop_assert!(same(&fast, &by_serde(body.as_bytes())), "{} {:?}", body, fast);
            let quoted = format!("{head}\"{middle}\"{extra},\"_sig\":{sig}{tail}");
            let fast = Envelope::from_slice(quoted.as_bytes());
            proptest::prop_assert!(same(&fast, &by_serde(quoted.as_bytes())), "{} {:?}", quoted, fast);
        }
    }
}
