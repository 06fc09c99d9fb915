//! Hexadecimal, the text form of bytes on the wire: signatures (`_sig.s`) and key ids
//! (`_sig.k`) are lowercase hex (PROTOCOL.md §11).
//!
//! Encoding writes each byte's two digits from a table; decoding reads eight digits at a time
//! as one word (a table per digit for the rest), with one validity check per word instead of a
//! branch per digit: signature digits are random, so a branch per digit would mispredict often.

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// Appends the lowercase hex of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    // A chunk at a time through a buffer: one append per chunk instead of one per digit.
    let mut buf = [0u8; 128];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair.copy_from_slice(&DIGIT_PAIRS[usize::from(b)]);
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

/// Decodes lowercase hex into `out`, which must hold exactly half as many bytes as `text` has
/// digits; `None` (with `out` in an unspecified state) if it does not, or on a byte that is not
/// a lowercase hex digit. For text that must come back exactly as it was written from the bytes
/// alone.
pub fn decode_lowercase_to_slice(text: &str, out: &mut [u8]) -> Option<()> {
    decode_into(&LOWERCASE, text, out)
}

/// Decodes `text` into `out`, which holds exactly half as many bytes as `text`.
fn decode_into(values: &[u8; 256], text: &str, out: &mut [u8]) -> Option<()> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) || out.len() != digits.len() / 2 {
        return None;
    }
    let upper_case_too = values[usize::from(b'A')] != NOT_A_DIGIT;
    let (words, tail) = digits.as_chunks::<8>();
    let (word_out, tail_out) = out.split_at_mut(words.len() * 4);
    // Validity is gathered over all words and checked once: no branch per word.
    let mut invalid_words = 0;
    for (four, word) in word_out.as_chunks_mut::<4>().0.iter_mut().zip(words) {
        let (bytes, invalid) = decode_word(u64::from_le_bytes(*word), upper_case_too);
        invalid_words |= invalid;
        *four = bytes.to_le_bytes();
    }
    let mut invalid = 0;
    for (byte, pair) in tail_out.iter_mut().zip(tail.chunks_exact(2)) {
        let (high, low) = (values[usize::from(pair[0])], values[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid_words == 0 && invalid & NOT_A_DIGIT == 0).then_some(())
}

/// The four bytes spelled by the eight hex digits of `word` (read little-endian, so the first
/// digit is the lowest byte), and a value that is zero only if all eight are digits of the
/// accepted cases (the bytes are meaningless otherwise).
fn decode_word(word: u64, upper_case_too: bool) -> (u32, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of every byte of `word` within `lo..=hi`, for bytes below 0x80 (no carry
    // crosses a byte: every sum stays below 0x100).
    let in_range = |lo: u8, hi: u8| {
        word.wrapping_add(ONES * u64::from(0x80 - lo))
            & !word.wrapping_add(ONES * u64::from(0x7f - hi))
            & HIGHS
    };
    let mut digits = in_range(b'0', b'9') | in_range(b'a', b'f');
    if upper_case_too {
        digits |= in_range(b'A', b'F');
    }
    // A byte at or above 0x80 can fool `in_range`; it is flagged on its own.
    let invalid = (word & HIGHS) | (digits ^ HIGHS);
    // A digit's value: its low nibble, plus 9 for a letter (bit 6 set).
    let nibbles = (word & (ONES * 0x0f)) + ((word >> 6) & ONES) * 9;
    // Pairs of nibbles into bytes, one per 16-bit lane, then the lanes packed together.
    const EVEN: u64 = 0x00ff_00ff_00ff_00ff;
    let lanes = ((nibbles & EVEN) << 4) | ((nibbles >> 8) & EVEN);
    let halves = (lanes | (lanes >> 8)) & 0x0000_ffff_0000_ffff;
    (((halves | (halves >> 16)) & 0xffff_ffff) as u32, invalid)
}

/// Each byte's two lowercase digits.
const DIGIT_PAIRS: [[u8; 2]; 256] = digit_pairs();

const fn digit_pairs() -> [[u8; 2]; 256] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [DIGITS[b >> 4], DIGITS[b & 0x0f]];
        b += 1;
    }
    table
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

    proptest::proptest! {
        /// Word at a time or digit by digit, decoding agrees with a plain per-digit decoder on
        /// any text, digits or not, of any length and case.
        #[test]
        fn decoding_agrees_with_a_plain_decoder(
            text in "[0-9a-fA-F]{0,40}",
            noise in proptest::collection::vec((0usize..40, proptest::prelude::any::<char>()), 0..2),
        ) {
            let mut text: Vec<char> = text.chars().collect();
            for (at, c) in noise {
                if at < text.len() {
                    text[at] = c;
                }
            }
            let text: String = text.into_iter().collect();
            let plain = |lower_only: bool| -> Option<Vec<u8>> {
                if !text.len().is_multiple_of(2) {
                    return None;
                }
                let value = |c: u8| match c {
                    b'0'..=b'9' => Some(c - b'0'),
                    b'a'..=b'f' => Some(c - b'a' + 10),
                    b'A'..=b'F' if !lower_only => Some(c - b'A' + 10),
                    _ => None,
                };
                text.as_bytes().chunks(2).map(|p| Some(value(p[0])? << 4 | value(p[1])?)).collect()
            };
            proptest::prop_assert_eq!(decode(&text), plain(false));
            let mut out = vec![9; text.len() / 2];
            let lower = decode_lowercase_to_slice(&text, &mut out).map(|()| out.clone());
            proptest::prop_assert_eq!(lower, plain(true));
            if let Some(bytes) = plain(false) {
                proptest::prop_assert_eq!(decode(&encode(&bytes)), Some(bytes));
            }
        }
    }

    #[test]
    fn lowercase_decoding_refuses_upper_case_and_a_wrong_length() {
        let mut out = [7; 3];
        assert_eq!(decode_lowercase_to_slice("00abff", &mut out), Some(()));
        assert_eq!(out, [0x00, 0xab, 0xff]);
        assert_eq!(decode_lowercase_to_slice("00ABFF", &mut out), None);
        assert_eq!(decode_lowercase_to_slice("0a1", &mut out), None);
        assert_eq!(decode_lowercase_to_slice("0a:1", &mut out), None);
        assert_eq!(decode_lowercase_to_slice("00ab", &mut out), None);
        assert_eq!(decode_lowercase_to_slice("00abff00", &mut out), None);
    }
}
