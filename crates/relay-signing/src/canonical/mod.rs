//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! * Objects: members sorted by their names' UTF-16 code units, compared as
//!   unsigned integers (so `"\u{1F600}"`, a surrogate pair starting 0xD83D,
//!   sorts before `"\u{FB33}"`).
//! * Numbers: IEEE 754 doubles printed as ECMAScript's
//!   `Number.prototype.toString` does (`1e+21`, `0.000001`, `1e-7`; integers
//!   without a fraction; `-0` as `0`). Integers beyond 2^53 are first rounded
//!   to the nearest double, as a JavaScript signer would see them.
//! * Strings: `"` and `\` escaped, U+0008/9/A/C/D as `\b \t \n \f \r`, other
//!   controls as `\u00xx` (lowercase hex); everything else literal UTF-8.
//! * No whitespace.
//!
//! [`canonicalize_str`] / [`write_canonical_text`] canonicalise JSON text;
//! [`to_string`] does the same for a [`serde_json::Value`] through its text.
//! Every signed message is canonicalised once by its sender and once by the
//! daemon: text that is canonical already is recognised by one scan and copied (`already`);
//! other text is read into a borrowed tree (strings without escapes
//! are not copied, objects are flat vectors sorted in place) and written
//! straight into the caller's buffer.
//!
//! Reading text refuses duplicate member names at any depth, which RFC 8785
//! (through I-JSON) requires and which would otherwise let two parsers see two
//! different messages behind one signature.

mod already;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use relay_protocol::find_json_escape;

use crate::error::CanonicalError;

/// The canonical (RFC 8785) text of `value`.
pub fn to_string(value: &Value) -> Result<String, CanonicalError> {
    // Through its JSON text: one canonical writer serves both entry points. The text holds the
    // same doubles (shortest round-trip digits, read back exactly) and no duplicate members.
    let text = serde_json::to_string(value).map_err(|e| CanonicalError::NotJson(e.to_string()))?;
    canonicalize_str(&text)
}

/// The canonical (RFC 8785) UTF-8 bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    to_string(value).map(String::into_bytes)
}

/// Canonicalises JSON text (duplicate member names refused).
pub fn canonicalize_str(json: &str) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(json.len());
    write_canonical_text(json, &mut out)?;
    Ok(out)
}

/// Appends the canonical form of the JSON text `json` to `out`.
///
/// On error `out` may hold part of the output.
pub fn write_canonical_text(json: &str, out: &mut String) -> Result<(), CanonicalError> {
    if already::is_canonical(json) {
        out.push_str(json);
        return Ok(());
    }
    write_reparsed(json, out)
}

/// The full way of [`write_canonical_text`]: reads `json` into a tree and writes it out.
fn write_reparsed(json: &str, out: &mut String) -> Result<(), CanonicalError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let node = Node::deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)?;
    write_node(&node, out)
}

/// Orders two strings by their UTF-16 code units (RFC 8785 §3.2.3).
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    // UTF-8 byte order is code point order. UTF-16 order differs from it only
    // when a supplementary character (a surrogate pair, UTF-8 lead byte 0xF0 and
    // up) meets U+E000..=U+FFFF, so where neither differing byte is such a lead
    // byte the first differing byte decides.
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0xF0 && y[i] < 0xF0 => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// Prints a double as ECMAScript's `Number.prototype.toString` does.
pub fn format_number(value: f64) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_number(value, &mut out)?;
    Ok(out)
}

/// 2^53: every integer below it is exactly representable as a double.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Appends `value` as ECMAScript's `Number.prototype.toString` prints it.
pub fn write_number(value: f64, out: &mut String) -> Result<(), CanonicalError> {
    if !value.is_finite() {
        return Err(CanonicalError::NonFiniteNumber(value.to_string()));
    }
    if value == 0.0 {
        // Covers -0, which ECMAScript prints as "0".
        out.push('0');
    } else if value.fract() == 0.0 && value.abs() < MAX_EXACT_INTEGER {
        // Integers print as their digits, and below 2^53 the conversion is exact.
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        out.push_str(ryu_js::Buffer::new().format_finite(value));
    }
    Ok(())
}

/// Appends `value` as ECMAScript prints the double nearest to it: [`write_number`] for an
/// integer, without the trip through floating point below 2^53, where the double is exact.
pub fn write_u64(value: u64, out: &mut String) {
    if (value as f64) < MAX_EXACT_INTEGER {
        out.push_str(itoa::Buffer::new().format(value));
    } else {
        // Finite, so this cannot fail.
        let _ = write_number(value as f64, out);
    }
}

/// Appends `s` as a canonical JSON string literal.
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut copied = 0;
    let mut i = find_json_escape(bytes, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            _ => "",
        };
        // Every byte escaped is ASCII, so `copied..i` lies on character boundaries.
        out.push_str(&s[copied..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            relay_protocol::hex::encode_into(&[b], out);
        } else {
            out.push_str(escape);
        }
        copied = i + 1;
        i = find_json_escape(bytes, copied);
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

fn classify(err: serde_json::Error) -> CanonicalError {
    let text = err.to_string();
    match text.strip_prefix(DUPLICATE_PREFIX) {
        Some(rest) => {
            // serde_json appends " at line L column C" to custom errors.
            let name = rest.rsplit_once(" at line ").map_or(rest, |(name, _)| name);
            CanonicalError::DuplicateKey(name.to_string())
        }
        None => CanonicalError::NotJson(text),
    }
}

const DUPLICATE_PREFIX: &str = "duplicate member name: ";

fn duplicate<E: de::Error>(name: &str) -> E {
    E::custom(format!("{DUPLICATE_PREFIX}{name}"))
}

/// A JSON value read from text for canonicalisation. Strings without escapes
/// borrow from the text; object members are already in canonical order.
enum Node<'a> {
    Null,
    Bool(bool),
    /// Every JSON number is a double to JCS.
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

fn write_node(node: &Node<'_>, out: &mut String) -> Result<(), CanonicalError> {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Number(n) => write_number(*n, out)?,
        Node::String(s) => write_string(s, out),
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_node(item, out)?;
            }
            out.push(']');
        }
        Node::Object(members) => {
            out.push('{');
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_node(value, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Node<'de>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(MemberName(name)) = access.next_key()? {
            members.push((name, access.next_value::<Node<'de>>()?));
        }
        members.sort_unstable_by(|a, b| cmp_utf16(&a.0, &b.0));
        if let Some(pair) = members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(duplicate(&pair[0].0));
        }
        Ok(Node::Object(members))
    }
}

/// A member name, borrowed from the text when it holds no escapes (serde's own
/// `Cow<str>` always copies).
struct MemberName<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(MemberNameVisitor)
    }
}

struct MemberNameVisitor;

impl<'de> Visitor<'de> for MemberNameVisitor {
    type Value = MemberName<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MemberName<'de>, E> {
        Ok(MemberName(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<MemberName<'de>, E> {
        Ok(MemberName(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<MemberName<'de>, E> {
        Ok(MemberName(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = "{\"literals\":[null,true,false],\
                        \"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
                        \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(canonicalize_str(input).unwrap(), expected);
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting_example() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\
                        \"\u{80}\":\"Control\",\
                        \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\
                        \"\u{20ac}\":\"Euro Sign\",\
                        \"\u{1f600}\":\"Emoji: Grinning Face\",\
                        \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canonicalize_str(input).unwrap(), expected);
    }

    #[test]
    fn utf16_order_differs_from_utf8_order_above_the_bmp() {
        assert_eq!(cmp_utf16("\u{1F600}", "\u{FB33}"), Ordering::Less);
        assert_eq!("\u{1F600}".cmp("\u{FB33}"), Ordering::Greater);
        assert_eq!(cmp_utf16("a", "ab"), Ordering::Less);
    }

    #[test]
    fn nested_objects_are_sorted_and_arrays_keep_their_order() {
        let out = canonicalize_str(r#"{"b":[3,{"z":1,"a":2}],"a":{"d":null,"c":true}}"#).unwrap();
        assert_eq!(out, r#"{"a":{"c":true,"d":null},"b":[3,{"a":2,"z":1}]}"#);
    }

    #[test]
    fn control_characters_use_short_escapes_or_lowercase_hex() {
        let out = to_string(&Value::String(
            "\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}\u{2028}".into(),
        ))
        .unwrap();
        assert_eq!(out, "\"\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\u{2028}\"");
    }

    #[test]
    fn escapes_are_found_at_every_offset_of_the_word_scan() {
        // serde_json escapes exactly the characters JCS does, in the same spelling.
        for special in [
            '"', '\\', '\n', '\u{1}', '\u{8}', '\u{1f}', ' ', '\u{7f}', 'é', '😀',
        ] {
            for at in 0..24 {
                let text: String = "a".repeat(at) + &special.to_string() + &"b".repeat(24 - at);
                let mut ours = String::new();
                write_string(&text, &mut ours);
                assert_eq!(ours, serde_json::to_string(&text).unwrap(), "{text:?}");
            }
        }
    }

    proptest::proptest! {
        /// serde_json escapes exactly the characters JCS does, in the same spelling.
        #[test]
        fn strings_are_written_as_serde_json_writes_them(text in "(?s).{0,40}") {
            let mut ours = String::new();
            write_string(&text, &mut ours);
            proptest::prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn integer_shortcut_agrees_with_the_general_printer() {
        for value in [
            1.0,
            -1.0,
            42.0,
            1_700_000_000_000.0,
            -9_007_199_254_740_991.0,
            9_007_199_254_740_991.0,
        ] {
            let mut ours = String::new();
            write_number(value, &mut ours).unwrap();
            assert_eq!(ours, ryu_js::Buffer::new().format_finite(value), "{value}");
        }
        assert_eq!(
            format_number(9_007_199_254_740_992.0).unwrap(),
            "9007199254740992"
        );
        assert_eq!(format_number(1e21).unwrap(), "1e+21");
        assert_eq!(format_number(0.5).unwrap(), "0.5");
    }

    #[test]
    fn unsigned_integers_print_as_their_nearest_double() {
        for value in [
            0,
            7,
            1_700_000_000_000,
            (1 << 53) - 1,
            1 << 53,
            (1 << 53) + 1,
            u64::MAX,
        ] {
            let (mut ours, mut general) = (String::new(), String::new());
            write_u64(value, &mut ours);
            write_number(value as f64, &mut general).unwrap();
            assert_eq!(ours, general, "{value}");
        }
        let mut big = String::new();
        write_u64((1 << 53) + 1, &mut big);
        assert_eq!(big, "9007199254740992");
    }

    #[test]
    fn integers_print_without_fraction_and_big_ones_round_like_javascript() {
        let out = canonicalize_str("[1, -1, 1.0, -0, 0.0, 18446744073709551615, 9007199254740993]")
            .unwrap();
        assert_eq!(out, "[1,-1,1,0,0,18446744073709552000,9007199254740992]");
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert_eq!(
            canonicalize_str(r#"{"a":1,"a":2}"#),
            Err(CanonicalError::DuplicateKey("a".into()))
        );
        assert_eq!(
            canonicalize_str(r#"{"x":[{"k":1,"\u006b":2}]}"#),
            Err(CanonicalError::DuplicateKey("k".into()))
        );
        assert!(canonicalize_str(r#"{"a":{"a":1}}"#).is_ok());
    }

    #[test]
    fn invalid_json_and_lone_surrogates_are_refused() {
        for bad in ["{", r#""\ud800""#, "1 2"] {
            assert!(
                matches!(canonicalize_str(bad), Err(CanonicalError::NotJson(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert!(format_number(f64::NAN).is_err());
        assert!(format_number(f64::INFINITY).is_err());
        assert!(matches!(
            canonicalize_str("1e400"),
            Err(CanonicalError::NotJson(_))
        ));
    }
}
