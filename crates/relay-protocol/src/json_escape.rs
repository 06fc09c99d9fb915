//! Finding the bytes a JSON string must escape (`"`, `\` and the control characters), the one
//! scan every signed message's strings go through: `_sig`'s members when it is read and written,
//! the payload and header strings when its canonical bytes are made.

/// Whether JSON must escape something in `text` (a `"`, a `\` or a control character), i.e.
/// whether it cannot be written between quotes as it is.
pub fn needs_json_escape(text: &str) -> bool {
    find_json_escape(text.as_bytes(), 0) < text.len()
}

/// The index of the first byte of `bytes` at or after `from` that a JSON string escapes (a
/// control character, `"` or `\`), or `bytes.len()`. Looks at eight bytes at a time: most
/// strings hold nothing to escape. (Sixteen at a time with SSE2 measured no better: the strings
/// scanned are short, and the cost is in starting and ending a scan.)
pub fn find_json_escape(bytes: &[u8], from: usize) -> usize {
    let Some(rest) = bytes.get(from..) else {
        return bytes.len();
    };
    let (words, tail) = rest.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let found = escape_mask(u64::from_le_bytes(*word));
        if found != 0 {
            return from + 8 * i + (found.trailing_zeros() / 8) as usize;
        }
    }
    if !tail.is_empty() {
        let found = escape_mask(tail_word(bytes, tail));
        if found != 0 {
            return bytes.len() - tail.len() + (found.trailing_zeros() / 8) as usize;
        }
    }
    bytes.len()
}

/// The last `rest.len()` (< 8) bytes of `bytes` as the low bytes of a word, padded above with
/// spaces (which need no escape). Read as the buffer's last eight bytes shifted down when it has
/// them, without a copy: the bytes shifted out cannot flag anything, and the spaces shifted in
/// borrow from nothing.
fn tail_word(bytes: &[u8], rest: &[u8]) -> u64 {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let skipped = 8 - rest.len();
    match bytes.last_chunk::<8>() {
        Some(last) => {
            let shift = 8 * skipped as u32;
            (u64::from_le_bytes(*last) >> shift) | (SPACES << (64 - shift))
        }
        None => {
            let mut padded = [b' '; 8];
            padded[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(padded)
        }
    }
}

/// The high bit of every byte of `word` (read little-endian) that is a control character, `"`
/// or `\`. Bytes above a flagged one may be flagged wrongly, but the lowest flagged byte is
/// always a true one: a borrow only runs upwards from a byte that was flagged rightly.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20 borrows when 0x20 is taken from it; a byte equal to `"` or `\` becomes
    // zero when xored with it and then borrows when 1 is taken. Only bytes below 0x80 count,
    // so one `& !word & HIGHS` serves all three tests (`"` and `\` are below 0x80 too, so
    // xoring with them leaves the high bit alone).
    let controls = word.wrapping_sub(ONES * 0x20);
    let quotes = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslashes = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    (controls | quotes | backslashes) & !word & HIGHS
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
    fn the_first_escape_is_found_at_any_position() {
        let naive = |bytes: &[u8], from: usize| {
            (from..bytes.len())
                .find(|&i| bytes[i] < 0x20 || bytes[i] == b'"' || bytes[i] == b'\\')
                .unwrap_or(bytes.len())
        };
        // Every byte value at every offset of buffers from empty to five words long (whole
        // words and padded tails), with a `"` right after it: a borrow from the first byte must
        // not hide or move the first true match.
        for len in [0, 1, 7, 8, 9, 16, 17, 23, 40] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    if at + 1 < len {
                        bytes[at + 1] = b'"';
                    }
                    for from in [0, at, at.saturating_sub(3)] {
                        assert_eq!(
                            find_json_escape(&bytes, from),
                            naive(&bytes, from),
                            "{bytes:?} from {from}"
                        );
                    }
                }
            }
        }
        assert_eq!(find_json_escape(b"abc", 7), 3);
    }
}
