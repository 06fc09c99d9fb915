//! Lowercase hexadecimal, the only text form of bytes in this crate.

/// Encodes bytes as lowercase hex.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Collected as bytes: pushing `char`s to a `String` encodes each as UTF-8 on the way.
    let digits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]])
        .collect();
    String::from_utf8(digits).unwrap_or_else(|_| unreachable!("hex digits are ASCII"))
}

/// Decodes hex (either case); `None` on an odd length or a non-hex digit.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut invalid = 0;
    for pair in bytes.chunks_exact(2) {
        let (high, low) = (
            DIGIT_VALUES[usize::from(pair[0])],
            DIGIT_VALUES[usize::from(pair[1])],
        );
        // Checked once at the end: the loop has no early exit to slow it down.
        invalid |= high | low;
        out.push((high << 4) | (low & 0x0f));
    }
    (invalid & NOT_A_DIGIT == 0).then_some(out)
}

/// Marks a byte that is not a hex digit in [`DIGIT_VALUES`].
const NOT_A_DIGIT: u8 = 0x10;

/// The value of every byte as a hex digit, or [`NOT_A_DIGIT`].
const DIGIT_VALUES: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match digit(c as u8) {
            Some(v) => v,
            None => NOT_A_DIGIT,
        };
        c += 1;
    }
    table
};

/// Decodes exactly `N` bytes of hex.
pub(crate) fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

const fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
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
        assert_eq!(decode_array::<2>("010203"), None);
    }
}
