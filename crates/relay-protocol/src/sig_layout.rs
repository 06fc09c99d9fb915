//! The layout in which signers write `_sig` (PROTOCOL.md §11), read without a JSON parser.
//!
//! Every signed message's `_sig` is read by the daemon on ingress and again by the store when it
//! packs the signature into a row, so both read the one layout the relay's clients write,
//!
//! ```text
//! {"s":"…","k":"…","t":<digits>,"a":"…","m":"…"}
//! ```
//!
//! members in that order, no whitespace, strings holding nothing JSON escapes, `t` a plain
//! decimal. Any other text — valid JSON in another form, or not JSON — is `None`, and each reader
//! falls back to its general path.

/// The members of a `_sig` in the signers' layout, borrowed from its text. Only the layout is
/// checked: what the strings hold (hex, a known algorithm) is for the caller to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigLayout<'a> {
    pub s: &'a str,
    pub k: &'a str,
    pub t: u64,
    pub a: &'a str,
    pub m: &'a str,
}

impl<'a> SigLayout<'a> {
    /// Reads `text` if it is in the signers' layout.
    pub fn read(text: &'a str) -> Option<SigLayout<'a>> {
        let mut rest = text.strip_prefix(r#"{"s":"#)?;
        let s = plain_string(&mut rest)?;
        rest = rest.strip_prefix(r#","k":"#)?;
        let k = plain_string(&mut rest)?;
        rest = rest.strip_prefix(r#","t":"#)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (t, tail) = rest.split_at(digits);
        // Only the plain decimal form (JSON has no leading zeros).
        if t.is_empty() || (t.len() > 1 && t.starts_with('0')) {
            return None;
        }
        let t = t.parse().ok()?;
        rest = tail.strip_prefix(r#","a":"#)?;
        let a = plain_string(&mut rest)?;
        rest = rest.strip_prefix(r#","m":"#)?;
        let m = plain_string(&mut rest)?;
        (rest == "}").then_some(SigLayout { s, k, t, a, m })
    }
}

/// The contents of the string literal at the start of `rest` when it holds nothing JSON
/// escapes ([`needs_json_escape`]); moves `rest` past it.
fn plain_string<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let body = rest.strip_prefix('"')?;
    let end = body.find('"')?;
    let contents = &body[..end];
    if needs_json_escape(contents) {
        return None;
    }
    *rest = &body[end + 1..];
    Some(contents)
}

/// Whether JSON must escape something in `text` (a `"`, a `\` or a control character), i.e.
/// whether it cannot be written between quotes as it is.
pub fn needs_json_escape(text: &str) -> bool {
    // Without an early exit, so that the check runs over whole vectors of bytes.
    text.bytes().fold(false, |found, b| {
        found | (b == b'"') | (b == b'\\') | (b < 0x20)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_found_anywhere() {
        assert!(!needs_json_escape("m-1 é 😀 /"));
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..40 {
                let text = "a".repeat(at) + &special.to_string() + "b";
                assert!(needs_json_escape(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn the_signers_layout_is_read_and_nothing_else() {
        let text = r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m-é"}"#;
        assert_eq!(
            SigLayout::read(text),
            Some(SigLayout {
                s: "ab",
                k: "0123456789abcdef",
                t: 17,
                a: "ed25519",
                m: "m-é",
            })
        );
        for other in [
            r#"{"k":"0123456789abcdef","s":"ab","t":17,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m\u0031"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m\"1"}"#,
            "{\"s\":\"ab\",\"k\":\"0123456789abcdef\",\"t\":17,\"a\":\"ed25519\",\"m\":\"m\t1\"}",
            r#"{"s":"ab", "k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":017,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":-1,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":99999999999999999999,"a":"ed25519","m":"m1"}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1","x":1}"#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1"} "#,
            r#"{"s":"ab","k":"0123456789abcdef","t":17,"a":"ed25519","m":"m1"#,
        ] {
            assert_eq!(SigLayout::read(other), None, "{other}");
        }
    }
}
