//! The layout in which signers write `_sig` (PROTOCOL.md §11), read without a JSON parser.
//!
//! Every signed message's `_sig` passes through the daemon, which checks it, stores it packed and
//! forwards it; every signed DELIVER through a client. Both read the one layout the relay's
//! clients write, once, when the frame is read ([`crate::SignatureJson`] keeps where the members
//! sit for the later readers):
//!
//! ```text
//! {"s":"…","k":"…","t":<digits>,"a":"…","m":"…"}
//! ```
//!
//! members in that order, no whitespace, strings holding nothing JSON escapes, `t` a plain
//! decimal. Any other text — valid JSON in another form, or not JSON — is `None`, and each reader
//! falls back to its general path.

use crate::json_escape::find_json_escape;

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
        SigSpans::read(text).map(|spans| spans.of(text))
    }
}

/// Where the members of a `_sig` in the signers' layout sit in its text: what a reader keeps
/// so that later readers of the same text need not scan it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SigSpans {
    s: (u16, u16),
    k: (u16, u16),
    a: (u16, u16),
    m: (u16, u16),
    t: u64,
}

impl SigSpans {
    /// The spans of `text`'s members if it is in the signers' layout (and shorter than 64 KiB).
    pub(crate) fn read(text: &str) -> Option<SigSpans> {
        let bytes = text.as_bytes();
        // Every span fits a u16 once the whole text does.
        if bytes.len() > usize::from(u16::MAX) {
            return None;
        }
        let mut at = expect(bytes, 0, br#"{"s":""#)?;
        let s = plain_string(bytes, &mut at)?;
        at = expect(bytes, at, br#","k":""#)?;
        let k = plain_string(bytes, &mut at)?;
        at = expect(bytes, at, br#","t":"#)?;
        let t = decimal(bytes, &mut at)?;
        at = expect(bytes, at, br#","a":""#)?;
        let a = plain_string(bytes, &mut at)?;
        at = expect(bytes, at, br#","m":""#)?;
        let m = plain_string(bytes, &mut at)?;
        (at + 1 == bytes.len() && bytes[at] == b'}').then_some(SigSpans { s, k, a, m, t })
    }

    /// Spans from the byte offsets of the members' contents in a text being written in the
    /// layout; `None` past 64 KiB.
    pub(crate) fn from_offsets(
        s: (usize, usize),
        k: (usize, usize),
        a: (usize, usize),
        m: (usize, usize),
        t: u64,
    ) -> Option<SigSpans> {
        Some(SigSpans {
            s: span(s)?,
            k: span(k)?,
            a: span(a)?,
            m: span(m)?,
            t,
        })
    }

    /// The members, borrowed from `text`: the text these spans were read from.
    pub(crate) fn of(self, text: &str) -> SigLayout<'_> {
        let member = |(start, end): (u16, u16)| text.get(start as usize..end as usize);
        // The spans were read from this very text, so every slice exists; an empty member is
        // what a mismatched text would give, never a panic.
        SigLayout {
            s: member(self.s).unwrap_or_default(),
            k: member(self.k).unwrap_or_default(),
            t: self.t,
            a: member(self.a).unwrap_or_default(),
            m: member(self.m).unwrap_or_default(),
        }
    }
}

/// The value of the ASCII decimal number at `at` in the plain form (no leading zeros: JSON has
/// none); moves `at` past it. `None` if there are no digits or the value is past `u64::MAX`.
///
/// Signing times have thirteen digits: up to sixteen are read eight at a time (a value below
/// 10^16 cannot overflow), the rest one by one with checked arithmetic.
fn decimal(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let rest = bytes.get(*at..)?;
    let mut value = 0u64;
    let mut len = 0;
    while len < 16 {
        let Some(chunk) = rest.get(len..).and_then(|r| r.first_chunk::<8>()) else {
            break;
        };
        let word = u64::from_le_bytes(*chunk);
        if leading_digits(word) < 8 {
            break;
        }
        value = value * 100_000_000 + eight_digits(word);
        len += 8;
    }
    while let Some(&digit @ b'0'..=b'9') = rest.get(len) {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        len += 1;
    }
    if len == 0 || (len > 1 && rest[0] == b'0') {
        return None;
    }
    *at += len;
    Some(value)
}

/// How many of the bytes of `word`, read little-endian (the first byte lowest), are ASCII digits
/// before the first that is not.
fn leading_digits(word: u64) -> u32 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of every byte within b'0'..=b'9' (as in `hex`: no carry crosses a byte for
    // bytes below 0x80, and bytes from 0x80 up are excluded by `!word`).
    let digits = word.wrapping_add(ONES * u64::from(0x80 - b'0'))
        & !word.wrapping_add(ONES * u64::from(0x7f - b'9'))
        & !word
        & HIGHS;
    (!digits & HIGHS).trailing_zeros() / 8
}

/// The value of the eight ASCII digits of `word` (the first digit in the lowest byte).
fn eight_digits(word: u64) -> u64 {
    let v = word - 0x3030_3030_3030_3030;
    // Adjacent digits into two-digit values, those into four-digit ones, then the two halves.
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v * 10_000 + (v >> 32)) & 0xffff_ffff
}

/// The index after `literal` if `bytes` holds it at `at`.
fn expect(bytes: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    bytes
        .get(at..)?
        .starts_with(literal)
        .then_some(at + literal.len())
}

/// The span of the contents of the string literal whose contents start at `at` (just after its
/// opening quote) when they hold nothing JSON escapes ([`crate::needs_json_escape`]); moves `at` past
/// the closing quote. The caller has checked that the text is shorter than 64 KiB.
fn plain_string(bytes: &[u8], at: &mut usize) -> Option<(u16, u16)> {
    let start = *at;
    // One pass: the first byte JSON would escape must be the closing quote.
    let end = find_json_escape(bytes, start);
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    *at = end + 1;
    Some((start as u16, end as u16))
}

/// A member's byte range as kept in [`SigSpans`]; `None` past 64 KiB.
fn span((start, end): (usize, usize)) -> Option<(u16, u16)> {
    Some((u16::try_from(start).ok()?, u16::try_from(end).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    proptest::proptest! {
        /// Eight digits at a time or one by one, numbers are read as `str::parse` reads them,
        /// whatever follows them.
        #[test]
        fn numbers_are_read_as_parse_reads_them(
            digits in "[0-9]{0,24}",
            after in "[^0-9]?",
        ) {
            let text = format!("{digits}{after}");
            let mut at = 0;
            let read = decimal(text.as_bytes(), &mut at);
            let plain = !digits.is_empty() && (digits.len() == 1 || !digits.starts_with('0'));
            let expected = digits.parse::<u64>().ok().filter(|_| plain);
            proptest::prop_assert_eq!(read, expected);
            if read.is_some() {
                proptest::prop_assert_eq!(at, digits.len());
            }
        }
    }

    #[test]
    fn times_up_to_the_largest_u64_are_read_exactly() {
        for (digits, value) in [
            ("0", Some(0)),
            ("1700000000000", Some(1_700_000_000_000)),
            ("9999999999999999999", Some(9_999_999_999_999_999_999)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("00", None),
            ("", None),
        ] {
            let text = format!("{digits},");
            let mut at = 0;
            let read = decimal(text.as_bytes(), &mut at);
            assert_eq!(read, value, "{digits}");
            if read.is_some() {
                assert_eq!(at, digits.len(), "{digits}");
            }
        }
    }
}
