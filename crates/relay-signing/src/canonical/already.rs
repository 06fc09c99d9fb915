//! Recognises JSON text that is already canonical, so that it is signed or verified as it stands
//! instead of being read into a tree and written out again.
//!
//! Senders that write their payloads with sorted member names (the Rust client's typed payloads
//! do) produce such text, and then the daemon's check of every signed message is one scan and a
//! copy. The check is conservative: it says yes only to text the full canonicaliser would
//! reproduce byte for byte, and no to anything it does not settle cheaply — numbers with a
//! fraction or an exponent, integers of 16 digits or more, `-0`, member names with escapes,
//! nesting deeper than [`MAX_DEPTH`], whitespace. Those go the full way, which also gives the
//! error messages for text that is not JSON at all.

use std::cmp::Ordering;

use relay_protocol::find_json_escape;

use super::cmp_utf16;

/// Deeper nesting is left to the full path (serde_json's own limit is 128 levels).
const MAX_DEPTH: usize = 64;

/// Whether `text` is exactly its own RFC 8785 canonical form.
pub(super) fn is_canonical(text: &str) -> bool {
    let mut scan = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    scan.value(0) && scan.pos == scan.bytes.len()
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// One value starting at `pos`, inside `depth` arrays and objects.
    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < MAX_DEPTH && self.object(depth + 1),
            Some(b'[') => depth < MAX_DEPTH && self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.bytes[self.pos..].starts_with(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// An integer JCS prints with the same digits: no leading zero, not `-0`, and below 10^15
    /// so that it is exact as a double. (A fraction or exponent after it is refused by whoever
    /// reads on: it expects `,`, `]`, `}` or the end.)
    fn integer(&mut self) -> bool {
        let negative = self.eat(b'-');
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        match &self.bytes[start..self.pos] {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            digits => digits.len() <= 15,
        }
    }

    /// A string starting at its opening quote: its raw contents and whether they hold an
    /// escape, or `None` when the canonical form would spell it differently.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos = find_json_escape(self.bytes, self.pos);
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    // Both quotes are ASCII, so the slice lies on character boundaries.
                    let contents = &self.text[start..self.pos];
                    self.pos += 1;
                    return Some((contents, escaped));
                }
                b'\\' => {
                    self.escape()?;
                    escaped = true;
                }
                // A control character, or the end of the text.
                _ => return None,
            }
        }
    }

    /// An escape as JCS writes it: `\" \\ \b \t \n \f \r`, or `\u00xx` in lowercase hex for
    /// the other control characters. Anything else (`\/`, `\u00e9`, `\u000A`) is spelled
    /// differently in canonical form.
    fn escape(&mut self) -> Option<()> {
        let len = match *self.bytes.get(self.pos + 1)? {
            b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => 2,
            b'u' => {
                let [b'0', b'0', high @ (b'0' | b'1'), low] =
                    *self.bytes.get(self.pos + 2..self.pos + 6)?
                else {
                    return None;
                };
                let low = match low {
                    b'0'..=b'9' => low - b'0',
                    b'a'..=b'f' => low - b'a' + 10,
                    _ => return None,
                };
                let code = (high - b'0') * 16 + low;
                if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                    return None;
                }
                6
            }
            _ => return None,
        };
        self.pos += len;
        Some(())
    }

    /// Members in strictly increasing UTF-16 order of their names (so no duplicates).
    fn object(&mut self, depth: usize) -> bool {
        self.pos += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&str> = None;
        loop {
            if self.peek() != Some(b'"') {
                return false;
            }
            // A name with escapes would have to be decoded to be ordered; the full path does.
            let Some((name, false)) = self.string() else {
                return false;
            };
            if previous.is_some_and(|p| cmp_utf16(p, name) != Ordering::Less) {
                return false;
            }
            previous = Some(name);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.pos += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// The canonical form by the full path only.
    fn canonicalize_str(json: &str) -> Result<String, crate::CanonicalError> {
        let mut out = String::new();
        super::super::write_reparsed(json, &mut out)?;
        Ok(out)
    }

    #[test]
    fn canonical_text_is_recognised() {
        for text in [
            r#"{"body":"hi","kind":"message"}"#,
            r#"{"a":[1,-2,0,true,false,null,"x"],"b":{},"c":[]}"#,
            r#""tab\there \"quoted\" back\\slash \u001f""#,
            "999999999999999",
            "\"é 😀 \u{2028}\"",
        ] {
            assert!(is_canonical(text), "{text}");
            assert_eq!(canonicalize_str(text).unwrap(), text);
        }
        assert!(is_canonical(
            "{\"\u{80}\":1,\"\u{1F600}\":2,\"\u{FB33}\":3}"
        ));
    }

    #[test]
    fn anything_spelled_differently_takes_the_full_path() {
        for text in [
            r#"{"kind":"message","body":"hi"}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a":1, "b":2}"#,
            " 1",
            "1.5",
            "1e3",
            "-0",
            "0123",
            "1000000000000000",
            r#""\/""#,
            r#""\u000a""#,
            r#""\u001F""#,
            r#""\u00e9""#,
            r#"{"\n":1}"#,
            "{\"\u{FB33}\":1,\"\u{1F600}\":2}",
            "[1,]",
            "{",
            "tru",
            "",
        ] {
            assert!(!is_canonical(text), "{text}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(!is_canonical(&deep));
        let deepest = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(is_canonical(&deepest));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1_000_000_000_000_000i64..1_000_000_000_000_000).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "(?s).{0,12}".prop_map(Value::String),
            "[\u{0}-\u{7f}\u{e000}-\u{ffff}\u{10000}-\u{10ffff}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\u{e000}\u{1f600}\n\"]{0,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON-like text written token by token, so that it holds what serde_json never writes:
    /// every escape spelling, duplicate names, numbers in every form, invalid tokens. Mostly
    /// canonical tokens, so that many texts differ from canonical form in one place only.
    fn json_text() -> impl Strategy<Value = String> {
        let lower_hex = |code: u32| format!("\\u{code:04x}");
        let piece = prop_oneof![
            6 => "[a-z \u{80}-\u{10ffff}]",
            3 => prop::sample::select(vec!["\\\"", "\\\\", "\\b", "\\t", "\\n", "\\f", "\\r"])
                .prop_map(String::from),
            2 => (0u32..0x20).prop_map(lower_hex),
            1 => prop::sample::select(vec!["\\/", "\\x", "\u{1}", "\u{1f}", "\\u000A", "\\u00e9"])
                .prop_map(String::from),
            1 => (0u32..0x100).prop_map(lower_hex),
        ];
        let string = prop::collection::vec(piece, 0..5).prop_map(|p| format!("\"{}\"", p.concat()));
        let leaf = prop_oneof![
            6 => string.clone(),
            4 => "-?(0|[1-9][0-9]{0,14})",
            1 => "-?(0|00|[1-9][0-9]{0,17})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
            3 => prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
            1 => prop::sample::select(vec!["nul", " 1", "1 "]).prop_map(String::from),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            let name = prop_oneof![4 => "\"[ab]{1,2}\"", 1 => string.clone()];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((name, inner), 0..4).prop_map(|mut members| {
                    // In order, so that the scan gets past the names; duplicates stay.
                    members.sort();
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(n, v)| format!("{n}:{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        /// The shortcut never changes what is signed: whatever it accepts, the full
        /// canonicaliser writes back unchanged.
        #[test]
        fn accepted_text_is_what_the_full_path_writes(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            if is_canonical(&text) {
                prop_assert_eq!(canonicalize_str(&text).unwrap(), text.clone());
            }
            let canonical = canonicalize_str(&text).unwrap();
            if is_canonical(&canonical) {
                prop_assert_eq!(canonicalize_str(&canonical).unwrap(), canonical);
            }
        }

        /// Nor does it for text that is almost canonical: any one byte changed.
        #[test]
        fn accepted_mutations_are_what_the_full_path_writes(
            value in json_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let text = canonicalize_str(&serde_json::to_string(&value).unwrap()).unwrap();
            let mut bytes = text.into_bytes();
            if bytes.is_empty() {
                return Ok(());
            }
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(mutated) = String::from_utf8(bytes) {
                if is_canonical(&mutated) {
                    prop_assert_eq!(canonicalize_str(&mutated).ok(), Some(mutated));
                }
            }
        }

        /// Nor for text written token by token, escapes and duplicates included.
        #[test]
        fn accepted_token_text_is_what_the_full_path_writes(text in json_text()) {
            if is_canonical(&text) {
                prop_assert_eq!(canonicalize_str(&text).ok(), Some(text));
            }
        }

        /// And it does recognise canonical text made only of what it settles itself.
        #[test]
        fn canonical_text_without_fractions_is_recognised(value in json_value()) {
            let canonical = canonicalize_str(&serde_json::to_string(&value).unwrap()).unwrap();
            let settles = !canonical.contains(['.', 'e', '\\'])
                && !canonical
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|digits| digits.len() > 15);
            if settles {
                prop_assert!(is_canonical(&canonical), "{}", canonical);
            }
        }
    }
}
