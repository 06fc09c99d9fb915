//! `_sig` as an envelope carries it: the signature object's JSON text, kept as written.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::sig_layout::{SigLayout, SigSpans};

/// The `_sig` member of an envelope (PROTOCOL.md §11): the JSON text of the signature object as
/// it was received or written, forwarded byte for byte to every recipient and stored as is.
///
/// The text is always one valid JSON value. When it is in the layout signers write
/// ([`SigLayout`]), where its members sit is noted once, when the text is first read, so that
/// the later readers of one message (verification, storage, replay protection) find them without
/// reading the text again; and text written in that layout is known to be valid without running
/// a JSON parser over it.
///
/// Cloning is cheap (the text is shared): the daemon hands one signature to the DELIVER, the
/// stored row and the dead-letter template of every message it forwards.
#[derive(Clone)]
pub struct SignatureJson {
    text: Arc<str>,
    spans: Option<SigSpans>,
}

/// The `s` member as [`SignatureJson::write_with`] is given it.
#[derive(Clone, Copy)]
enum Member<'a> {
    /// Text, escaped if it needs to be.
    Text(&'a str),
    /// Bytes, written as lowercase hex (which never needs escapes).
    Hex(&'a [u8]),
}

impl Member<'_> {
    /// The length of the member's value as written unescaped.
    fn len(self) -> usize {
        match self {
            Member::Text(text) => text.len(),
            Member::Hex(bytes) => 2 * bytes.len(),
        }
    }
}

impl SignatureJson {
    /// A `_sig` read by a JSON parser (any valid JSON value).
    pub fn from_raw(raw: &RawValue) -> SignatureJson {
        let text: Arc<str> = Arc::from(raw.get());
        let spans = SigSpans::read(&text);
        SignatureJson { text, spans }
    }

    /// Reads JSON text; `None` if it is not valid JSON.
    pub fn from_text(text: String) -> Option<SignatureJson> {
        match SigSpans::read(&text) {
            Some(spans) => Some(SignatureJson {
                text: Arc::from(text),
                spans: Some(spans),
            }),
            None => RawValue::from_string(text)
                .ok()
                .map(|raw| SignatureJson::from_raw(&raw)),
        }
    }

    /// `text` if it is a `_sig` in the signers' layout, which makes it valid JSON.
    pub(crate) fn from_layout_text(text: &str) -> Option<SignatureJson> {
        let spans = SigSpans::read(text)?;
        Some(SignatureJson {
            text: Arc::from(text),
            spans: Some(spans),
        })
    }

    /// From a parsed JSON value (dead letters keep signatures as values).
    pub fn from_value(value: &serde_json::Value) -> Option<SignatureJson> {
        serde_json::value::to_raw_value(value)
            .ok()
            .map(|raw| SignatureJson::from_raw(&raw))
    }

    /// Writes a signature object in the signers' layout: `s` the signature's lowercase hex, `k`
    /// the key id, `t` the signing time, `a` the algorithm's name, `m` the signed message id.
    /// A string that JSON would have to escape is written escaped, outside the layout.
    pub fn write(s: &str, k: &str, t: u64, a: &str, m: &str) -> SignatureJson {
        SignatureJson::write_with(Member::Text(s), k, t, a, m)
    }

    /// [`write`](Self::write) for a signature given as its bytes, which are written as
    /// lowercase hex straight into the text (a signer need not spell them out first).
    pub fn write_signature(signature: &[u8], k: &str, t: u64, a: &str, m: &str) -> SignatureJson {
        SignatureJson::write_with(Member::Hex(signature), k, t, a, m)
    }

    fn write_with(s: Member<'_>, k: &str, t: u64, a: &str, m: &str) -> SignatureJson {
        thread_local! {
            // Signers write a signature per message: the text is written here and copied once
            // into its shared allocation, instead of being written into a fresh `String` that is
            // then copied anyway.
            static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
        }
        SCRATCH.with(|scratch| {
            // Taken out rather than borrowed: nothing below signs again, but a borrow panic is
            // never the right answer.
            let mut text = scratch.take();
            text.clear();
            let written = SignatureJson::write_into(&mut text, s, k, t, a, m);
            // Every field is short; a buffer grown past this by a huge one is not kept.
            if text.capacity() <= 4096 {
                scratch.replace(text);
            }
            written
        })
    }

    fn write_into(
        text: &mut String,
        s: Member<'_>,
        k: &str,
        t: u64,
        a: &str,
        m: &str,
    ) -> SignatureJson {
        let mut digits = itoa::Buffer::new();
        let t_text = digits.format(t);
        let strings = [k, a, m];
        let plain = !strings.iter().any(|v| crate::needs_json_escape(v))
            && !matches!(s, Member::Text(text) if crate::needs_json_escape(text));
        // The exact length when nothing is escaped: `{"s":"…","k":"…","t":…,"a":"…","m":"…"}`.
        let len = r#"{"s":"","k":"","t":,"a":"","m":""}"#.len()
            + s.len()
            + t_text.len()
            + strings.iter().map(|v| v.len()).sum::<usize>();
        text.reserve(len);
        // The span of the value written, when it needed no escapes.
        let member = |text: &mut String, name: &str, value: Member<'_>| {
            text.push_str(name);
            match value {
                Member::Text(value) if !plain => {
                    // Serialising a string into a String cannot fail.
                    text.push_str(&serde_json::to_string(value).unwrap_or_default());
                    (0, 0)
                }
                value => {
                    text.push('"');
                    let start = text.len();
                    match value {
                        Member::Text(value) => text.push_str(value),
                        Member::Hex(bytes) => crate::hex::encode_into(bytes, text),
                    }
                    let end = text.len();
                    text.push('"');
                    (start, end)
                }
            }
        };
        let s = member(text, r#"{"s":"#, s);
        let k = member(text, r#","k":"#, Member::Text(k));
        text.push_str(r#","t":"#);
        text.push_str(t_text);
        let a = member(text, r#","a":"#, Member::Text(a));
        let m = member(text, r#","m":"#, Member::Text(m));
        text.push('}');
        debug_assert!(
            !plain || text.len() == len,
            "reserved {len}, wrote {}",
            text.len()
        );
        let spans = plain
            .then(|| SigSpans::from_offsets(s, k, a, m, t))
            .flatten();
        SignatureJson {
            text: Arc::from(text.as_str()),
            spans,
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.text
    }

    /// The members, if the text is in the signers' layout; found without reading the text.
    pub fn layout(&self) -> Option<SigLayout<'_>> {
        self.spans.map(|spans| spans.of(&self.text))
    }

    /// The parsed JSON value.
    pub fn to_value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.text).ok()
    }

    /// The signed message id (`m`) and signing time (`t`), if the object has them.
    pub fn signed_id_and_time(&self) -> Option<(String, i64)> {
        if let Some(layout) = self.layout() {
            return Some((layout.m.to_string(), i64::try_from(layout.t).ok()?));
        }
        #[derive(Deserialize)]
        struct IdAndTime {
            m: String,
            t: i64,
        }
        serde_json::from_str::<IdAndTime>(&self.text)
            .ok()
            .map(|s| (s.m, s.t))
    }
}

impl PartialEq for SignatureJson {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for SignatureJson {}

impl fmt::Debug for SignatureJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignatureJson").field(&self.text).finish()
    }
}

impl Serialize for SignatureJson {
    /// As the JSON value it holds. Frames are written by [`crate::encode_frame`], which copies
    /// the text instead; this general path parses it to hand it to the serializer.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.text).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignatureJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| SignatureJson::from_raw(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_signatures_are_in_the_layout_and_valid_json() {
        let sig = SignatureJson::write(
            "ab01",
            "0123456789abcdef",
            1_700_000_000_000,
            "hmac-sha256",
            "m-1",
        );
        assert_eq!(
            sig.get(),
            r#"{"s":"ab01","k":"0123456789abcdef","t":1700000000000,"a":"hmac-sha256","m":"m-1"}"#
        );
        // The places noted while writing are the ones a reader finds.
        assert_eq!(sig.spans, SigSpans::read(sig.get()));
        let layout = sig.layout().expect("the signers' layout");
        assert_eq!(
            (layout.s, layout.k, layout.t, layout.a, layout.m),
            (
                "ab01",
                "0123456789abcdef",
                1_700_000_000_000,
                "hmac-sha256",
                "m-1"
            )
        );
        assert_eq!(sig.to_value().expect("valid JSON")["m"], "m-1");
        assert_eq!(
            sig.signed_id_and_time(),
            Some(("m-1".to_string(), 1_700_000_000_000))
        );
        assert_eq!(
            SignatureJson::write("", "", 0, "", "").get(),
            r#"{"s":"","k":"","t":0,"a":"","m":""}"#
        );
    }

    #[test]
    fn signature_bytes_are_written_as_their_hex_at_the_length_reserved() {
        let bytes = [0x00, 0x9f, 0xab, 0xff];
        for m in ["m-1", "m\"1\n"] {
            let from_bytes = SignatureJson::write_signature(&bytes, "k1", 42, "ed25519", m);
            let from_hex = SignatureJson::write("009fabff", "k1", 42, "ed25519", m);
            assert_eq!(from_bytes.get(), from_hex.get());
            assert_eq!(from_bytes.spans, from_hex.spans);
        }
        // (`write_with` asserts in debug builds that the length it reserved is the length it
        // wrote.)
        let sig = SignatureJson::write_signature(&bytes, "k1", 1_700_000_000_000, "a", "m");
        assert_eq!(
            sig.get(),
            r#"{"s":"009fabff","k":"k1","t":1700000000000,"a":"a","m":"m"}"#
        );
    }

    #[test]
    fn strings_that_need_escapes_are_escaped_outside_the_layout() {
        let sig = SignatureJson::write("ab", "k", 7, "ed25519", "m\"1\n");
        assert_eq!(sig.layout(), None);
        let value = sig.to_value().expect("valid JSON");
        assert_eq!(value["m"], "m\"1\n");
        assert_eq!(sig.signed_id_and_time(), Some(("m\"1\n".to_string(), 7)));
    }

    #[test]
    fn text_is_checked_and_other_layouts_are_read_by_the_parser() {
        assert!(SignatureJson::from_text("{\"s\":".into()).is_none());
        let other = SignatureJson::from_text(r#"{ "m": "x", "t": 5 }"#.into()).expect("valid JSON");
        assert_eq!(other.layout(), None);
        assert_eq!(other.signed_id_and_time(), Some(("x".to_string(), 5)));
        let raw =
            RawValue::from_string(r#"{"s":"a","k":"b","t":1,"a":"c","m":"d"}"#.into()).unwrap();
        let read = SignatureJson::from_raw(&raw);
        assert_eq!(read.layout().map(|l| l.m), Some("d"));
    }

    #[test]
    fn serde_round_trip_keeps_the_text() {
        let sig = SignatureJson::write("ab", "k", 7, "ed25519", "m");
        let json = serde_json::to_string(&sig).unwrap();
        assert_eq!(json, sig.get());
        let back: SignatureJson = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sig);
        assert_eq!(back.layout(), sig.layout());
    }
}
