//! Hexadecimal, the text form of bytes on the wire: signatures (`_sig.s`) and key ids
//! (`_sig.k`) are lowercase hex (PROTOCOL.md §11).
//!
//! Decoding is table-driven with one validity check at the end instead of a branch per digit:
//! signature digits are random, so a branch per digit would mispredict often.

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// Appends the lowercase hex of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    // A chunk at a time through a buffer: one append per chunk instead of one per digit.
    let mut buf = [0u8; 128];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        // Only ASCII digits were written.
        out.push_str(std::str::from_utf8(&buf[..chunk.len() * 2]).unwrap_or_default());
    }
}

/// Decodes hex of either case; `None` on an odd length or a byte that is not a hex digit.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    decode_with(&ANY_CASE, text, &mut out)?;
    Some(out)
}

/// Decodes exactly `N` bytes of hex of either case.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

/// Appends the bytes of `text` to `out` if it is lowercase hex of even length; otherwise
/// leaves `out` as it was and returns `None`. For text that must come back exactly as it was
/// written from the bytes alone.
pub fn decode_lowercase_into(text: &str, out: &mut Vec<u8>) -> Option<()> {
    decode_with(&LOWERCASE, text, out)
}

fn decode_with(values: &[u8; 256], text: &str, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    out.resize(start + text.len() / 2, 0);
    if decode_into(values, text, &mut out[start..]).is_none() {
        out.truncate(start);
        return None;
    }
    Some(())
}

/// Decodes hex of either case into the start of `buf`, returning the bytes written; `None` on
/// an odd length, a byte that is not a hex digit, or more bytes than `buf` holds. For short
/// values (signatures) that need no allocation.
pub fn decode_to_slice<'b>(text: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..text.len() / 2)?;
    decode_into(&ANY_CASE, text, out)?;
    Some(out)
}

/// Decodes `text` into `out`, which holds exactly half as many bytes as `text`.
fn decode_into(values: &[u8; 256], text: &str, out: &mut [u8]) -> Option<()> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut invalid = 0;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (values[usize::from(pair[0])], values[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid & NOT_A_DIGIT == 0).then_some(())
}

/// Marks a byte that is not a digit in a value table.
const NOT_A_DIGIT: u8 = 0x10;

/// The value of every byte as a hex digit of either case, or [`NOT_A_DIGIT`].
const ANY_CASE: [u8; 256] = digit_values(true);

/// The value of every byte as a lowercase hex digit, or [`NOT_A_DIGIT`].
const LOWERCASE: [u8; 256] = digit_values(false);

const fn digit_values(upper_case_too: bool) -> [u8; 256] {
    let mut table = [NOT_A_DIGIT; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' if upper_case_too => b - b'A' + 10,
            _ => NOT_A_DIGIT,
        };
        c += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode("00abFF"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(decode("abc"), None);
        assert_eq!(decode("zz"), None);
        assert_eq!(decode("0g"), None);
        assert_eq!(decode("g0"), None);
        assert_eq!(
            decode("0123456789abcdefABCDEF"),
            Some(vec![
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef
            ])
        );
        assert_eq!(decode_array::<2>("0102"), Some([1, 2]));
        let mut buf = [0u8; 3];
        assert_eq!(decode_to_slice("0aFf", &mut buf), Some(&[0x0a, 0xff][..]));
        assert_eq!(decode_to_slice("0a0b0c0d", &mut buf), None);
        assert_eq!(decode_to_slice("0a0", &mut buf), None);
        assert_eq!(decode_to_slice("0x", &mut buf), None);
        assert_eq!(decode_array::<2>("010203"), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }

    #[test]
    fn lowercase_decoding_refuses_upper_case_and_leaves_the_output_alone() {
        let mut out = vec![7];
        assert_eq!(decode_lowercase_into("00abff", &mut out), Some(()));
        assert_eq!(out, [7, 0x00, 0xab, 0xff]);
        assert_eq!(decode_lowercase_into("00ABFF", &mut out), None);
        assert_eq!(decode_lowercase_into("0a1", &mut out), None);
        assert_eq!(decode_lowercase_into("0a:1", &mut out), None);
        assert_eq!(out, [7, 0x00, 0xab, 0xff], "unchanged by a refusal");
    }
}
