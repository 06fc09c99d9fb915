//! RFC 8785 JSON Canonicalization Scheme (JCS) over [`serde_json::Value`].
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
//! [`parse_strict`] reads JSON text for canonicalisation: unlike
//! `serde_json::from_str` it refuses duplicate member names, which RFC 8785
//! (through I-JSON) requires and which would otherwise let two parsers see
//! two different messages behind one signature.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::CanonicalError;

/// The canonical (RFC 8785) text of `value`.
pub fn to_string(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

/// The canonical (RFC 8785) UTF-8 bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    to_string(value).map(String::into_bytes)
}

/// Canonicalises JSON text: [`parse_strict`] then [`to_string`].
pub fn canonicalize_str(json: &str) -> Result<String, CanonicalError> {
    to_string(&parse_strict(json)?)
}

/// Parses JSON text, refusing duplicate member names in any object.
pub fn parse_strict(json: &str) -> Result<Value, CanonicalError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = StrictValue::deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(value.0)
}

/// Orders two strings by their UTF-16 code units (RFC 8785 §3.2.3).
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Prints a double as ECMAScript's `Number.prototype.toString` does.
pub fn format_number(value: f64) -> Result<String, CanonicalError> {
    if !value.is_finite() {
        return Err(CanonicalError::NonFiniteNumber(value.to_string()));
    }
    if value == 0.0 {
        // Covers -0, which ECMAScript prints as "0".
        return Ok("0".to_string());
    }
    Ok(ryu_js::Buffer::new().format_finite(value).to_string())
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&format_number(number_as_f64(n)?)?),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

fn write_object(map: &Map<String, Value>, out: &mut String) -> Result<(), CanonicalError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| cmp_utf16(a.0, b.0));
    out.push('{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(name, out);
        out.push(':');
        write_value(value, out)?;
    }
    out.push('}');
    Ok(())
}

fn number_as_f64(n: &Number) -> Result<f64, CanonicalError> {
    // Rounding an integer to the nearest double is exactly what JCS asks for.
    let f = if let Some(u) = n.as_u64() {
        u as f64
    } else if let Some(i) = n.as_i64() {
        i as f64
    } else {
        n.as_f64()
            .ok_or_else(|| CanonicalError::NonFiniteNumber(n.to_string()))?
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(CanonicalError::NonFiniteNumber(n.to_string()))
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                out.push_str("\\u00");
                out.push_str(&crate::hex::encode(&[c as u8]));
            }
            c => out.push(c),
        }
    }
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

/// A `Value` whose objects were checked for duplicate member names.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("number {v} is not finite")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.contains_key(&name) {
                return Err(de::Error::custom(format!("{DUPLICATE_PREFIX}{name}")));
            }
            map.insert(name, value);
        }
        Ok(Value::Object(map))
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
    fn integers_print_without_fraction_and_big_ones_round_like_javascript() {
        let out = canonicalize_str("[1, -1, 1.0, -0, 0.0, 18446744073709551615, 9007199254740993]")
            .unwrap();
        assert_eq!(out, "[1,-1,1,0,0,18446744073709552000,9007199254740992]");
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert_eq!(
            parse_strict(r#"{"a":1,"a":2}"#),
            Err(CanonicalError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse_strict(r#"{"x":[{"k":1,"\u006b":2}]}"#),
            Err(CanonicalError::DuplicateKey("k".into()))
        );
        assert!(parse_strict(r#"{"a":{"a":1}}"#).is_ok());
    }

    #[test]
    fn invalid_json_and_lone_surrogates_are_refused() {
        assert!(matches!(parse_strict("{"), Err(CanonicalError::NotJson(_))));
        assert!(matches!(
            parse_strict(r#""\ud800""#),
            Err(CanonicalError::NotJson(_))
        ));
        assert!(matches!(
            parse_strict("1 2"),
            Err(CanonicalError::NotJson(_))
        ));
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert!(format_number(f64::NAN).is_err());
        assert!(format_number(f64::INFINITY).is_err());
        assert!(matches!(
            parse_strict("1e400"),
            Err(CanonicalError::NotJson(_))
        ));
    }
}
