//! The packed storage form of a message's signature object.
//!
//! Every stored row of a signed message carries its `_sig`, about 170 bytes of JSON on a row of
//! about 300, and writing that text is a measurable share of the storage thread's work per
//! message. When the text has exactly the layout the relay's own clients write,
//!
//! ```text
//! {"s":"<lowercase hex>","k":"<16 lowercase hex>","t":<integer>,"a":"hmac-sha256"|"ed25519","m":"<id>"}
//! ```
//!
//! it is stored as a BLOB of about 50 bytes instead, from which the identical text is rebuilt on
//! reading; any other text (other member order, whitespace, escapes, upper-case hex) is stored as
//! it arrived. Either way a reader gets back the very bytes the signer sent.
//!
//! Layout (all integers big-endian):
//!
//! | bytes     | content                                                                  |
//! |-----------|--------------------------------------------------------------------------|
//! | 1         | header: format version in the high nibble (1), algorithm in bits 0–1 (1 = `hmac-sha256`, 2 = `ed25519`), bit 3 set when `m` is the row's `source_id` |
//! | 8         | `t`                                                                      |
//! | 8         | `k`                                                                      |
//! | 1         | length `n` of the signature                                              |
//! | n         | `s`                                                                      |
//! | rest      | `m` as UTF-8, absent when bit 3 is set                                   |

use relay_protocol::{hex, needs_json_escape, SigLayout};

const FORMAT_V1: u8 = 0x10;
const FORMAT_MASK: u8 = 0xf0;
const ALGORITHM_MASK: u8 = 0x03;
const HMAC_SHA256: u8 = 1;
const ED25519: u8 = 2;
/// `m` is not stored: it equals the row's `source_id` (the SEND's own id, the usual case).
const M_IS_SOURCE_ID: u8 = 0x08;
/// Header, `t`, `k` and the signature's length byte.
const FIXED_LEN: usize = 1 + 8 + 8 + 1;

/// The packed form of `text`, or `None` when `text` is not in the layout described in the
/// module docs and must be stored as it is. `source_id` is the row's `source_id`.
#[cfg(test)]
fn pack(text: &str, source_id: Option<&str>) -> Option<Vec<u8>> {
    pack_layout(SigLayout::read(text)?, source_id).map(|blob| blob.as_slice().to_vec())
}

/// The packed form of a signature in the signers' layout (its members as the frame's reader
/// found them), or `None` when they do not fit the packed form.
pub(crate) fn pack_layout(layout: SigLayout<'_>, source_id: Option<&str>) -> Option<Blob> {
    let SigLayout { s, k, t, a, m } = layout;
    let algorithm = match a {
        "hmac-sha256" => HMAC_SHA256,
        "ed25519" => ED25519,
        _ => return None,
    };
    let t = i64::try_from(t).ok()?;
    if k.len() != 16 || s.is_empty() || s.len() % 2 != 0 || s.len() / 2 > usize::from(u8::MAX) {
        return None;
    }
    // `SigLayout`'s strings need no escaping: `m` is written back between quotes as it is.
    let m_is_source = source_id == Some(m);
    let s_len = s.len() / 2;
    let mut blob = Blob::zeroed(FIXED_LEN + s_len + if m_is_source { 0 } else { m.len() });
    let out = blob.as_mut_slice();
    out[0] = FORMAT_V1 | algorithm | if m_is_source { M_IS_SOURCE_ID } else { 0 };
    out[1..9].copy_from_slice(&t.to_be_bytes());
    hex::decode_lowercase_to_slice(k, &mut out[9..17])?;
    out[17] = s_len as u8;
    hex::decode_lowercase_to_slice(s, &mut out[FIXED_LEN..FIXED_LEN + s_len])?;
    if !m_is_source {
        out[FIXED_LEN + s_len..].copy_from_slice(m.as_bytes());
    }
    Some(blob)
}

/// A packed signature, held without an allocation when it is short (as it is unless `m` must
/// be kept): the storage thread packs one per signed row.
pub(crate) enum Blob {
    Inline {
        bytes: [u8; INLINE_BLOB],
        len: usize,
    },
    Heap(Vec<u8>),
}

/// The longest blob held inline: an Ed25519 signature (64 bytes) with `m` elided takes 82.
const INLINE_BLOB: usize = 96;

impl Blob {
    fn zeroed(len: usize) -> Blob {
        if len <= INLINE_BLOB {
            Blob::Inline {
                bytes: [0; INLINE_BLOB],
                len,
            }
        } else {
            Blob::Heap(vec![0; len])
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Blob::Inline { bytes, len } => &bytes[..*len],
            Blob::Heap(bytes) => bytes,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Blob::Inline { bytes, len } => &mut bytes[..*len],
            Blob::Heap(bytes) => bytes,
        }
    }
}

/// The fields of a packed signature, borrowed from the blob (and the row's `source_id`).
struct Packed<'a> {
    algorithm: &'static str,
    t: i64,
    k: &'a [u8],
    s: &'a [u8],
    m: &'a str,
}

fn parse<'a>(blob: &'a [u8], source_id: Option<&'a str>) -> Option<Packed<'a>> {
    let (&header, rest) = blob.split_first()?;
    if header & FORMAT_MASK != FORMAT_V1
        || header & !(FORMAT_MASK | ALGORITHM_MASK | M_IS_SOURCE_ID) != 0
    {
        return None;
    }
    let algorithm = match header & ALGORITHM_MASK {
        HMAC_SHA256 => "hmac-sha256",
        ED25519 => "ed25519",
        _ => return None,
    };
    let (t, rest) = rest.split_first_chunk::<8>()?;
    let (k, rest) = rest.split_at_checked(8)?;
    let (&s_len, rest) = rest.split_first()?;
    let (s, rest) = rest.split_at_checked(usize::from(s_len))?;
    let m = if header & M_IS_SOURCE_ID != 0 {
        if !rest.is_empty() {
            return None;
        }
        source_id?
    } else {
        std::str::from_utf8(rest).ok()?
    };
    let t = i64::from_be_bytes(*t);
    if s.is_empty() || t < 0 || needs_json_escape(m) {
        return None;
    }
    Some(Packed {
        algorithm,
        t,
        k,
        s,
        m,
    })
}

/// Rebuilds the signature text from a packed blob; `None` if the blob is not one.
pub(crate) fn unpack(blob: &[u8], source_id: Option<&str>) -> Option<String> {
    let p = parse(blob, source_id)?;
    let mut out = String::with_capacity(64 + 2 * (p.k.len() + p.s.len()) + p.m.len());
    out.push_str(r#"{"s":""#);
    hex::encode_into(p.s, &mut out);
    out.push_str(r#"","k":""#);
    hex::encode_into(p.k, &mut out);
    out.push_str(r#"","t":"#);
    out.push_str(&p.t.to_string());
    out.push_str(r#","a":""#);
    out.push_str(p.algorithm);
    out.push_str(r#"","m":""#);
    out.push_str(p.m);
    out.push_str("\"}");
    Some(out)
}

/// The signed message id (`m`) and signing time (`t`) of a packed blob.
pub(crate) fn signed_id_and_time(blob: &[u8], source_id: Option<&str>) -> Option<(String, i64)> {
    parse(blob, source_id).map(|p| (p.m.to_string(), p.t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HMAC: &str = r#"{"s":"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","k":"00112233445566ff","t":1764000000000,"a":"hmac-sha256","m":"3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a"}"#;

    #[test]
    fn the_clients_layout_packs_small_and_rebuilds_byte_for_byte() {
        let packed = pack(HMAC, Some("3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a")).unwrap();
        assert_eq!(packed.len(), FIXED_LEN + 32);
        assert_eq!(
            unpack(&packed, Some("3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a")).as_deref(),
            Some(HMAC)
        );
        assert_eq!(
            signed_id_and_time(&packed, Some("3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a")),
            Some((
                "3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a".into(),
                1_764_000_000_000
            ))
        );
    }

    #[test]
    fn an_id_other_than_the_source_id_is_kept_in_the_blob() {
        let packed = pack(HMAC, Some("another-id")).unwrap();
        assert_eq!(packed.len(), FIXED_LEN + 32 + 36);
        assert_eq!(unpack(&packed, Some("another-id")).as_deref(), Some(HMAC));
        assert_eq!(unpack(&packed, None).as_deref(), Some(HMAC));
        let packed = pack(HMAC, None).unwrap();
        assert_eq!(unpack(&packed, None).as_deref(), Some(HMAC));
    }

    #[test]
    fn a_long_kept_id_packs_beyond_the_inline_room() {
        let m = "m".repeat(200);
        let text = HMAC.replace("3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a", &m);
        let blob = pack_layout(SigLayout::read(&text).unwrap(), None).unwrap();
        assert!(matches!(blob, Blob::Heap(_)));
        assert_eq!(blob.as_slice().len(), FIXED_LEN + 32 + 200);
        assert_eq!(unpack(blob.as_slice(), None), Some(text));
        let short = pack_layout(SigLayout::read(HMAC).unwrap(), None).unwrap();
        assert!(matches!(short, Blob::Inline { .. }));
    }

    #[test]
    fn ed25519_signatures_pack_too() {
        let text = format!(
            r#"{{"s":"{}","k":"a1b2c3d4e5f60718","t":5,"a":"ed25519","m":"id-1"}}"#,
            "ab".repeat(64)
        );
        let packed = pack(&text, Some("id-1")).unwrap();
        assert_eq!(packed.len(), FIXED_LEN + 64);
        assert_eq!(unpack(&packed, Some("id-1")), Some(text));
    }

    #[test]
    fn other_layouts_are_stored_as_text() {
        for text in [
            // Another member order, whitespace, upper-case hex, a number the layout cannot
            // rebuild, an escaped id, an unknown algorithm, an extra member.
            r#"{"k":"00112233445566ff","s":"00ff","t":1,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff", "k":"00112233445566ff","t":1,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00FF","k":"00112233445566ff","t":1,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff","k":"00112233445566FF","t":1,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff","k":"00112233445566ff","t":01,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff","k":"00112233445566ff","t":1.5,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff","k":"00112233445566ff","t":99999999999999999999,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff","k":"00112233445566ff","t":1,"a":"hmac-sha256","m":"x\"y"}"#,
            r#"{"s":"00ff","k":"00112233445566ff","t":1,"a":"rsa","m":"x"}"#,
            r#"{"s":"00ff","k":"00112233445566ff","t":1,"a":"hmac-sha256","m":"x","z":1}"#,
            r#"{"s":"0ff","k":"00112233445566ff","t":1,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"","k":"00112233445566ff","t":1,"a":"hmac-sha256","m":"x"}"#,
            r#"{"s":"00ff","k":"0011","t":1,"a":"hmac-sha256","m":"x"}"#,
        ] {
            assert_eq!(pack(text, Some("x")), None, "{text}");
        }
    }

    #[test]
    fn blobs_that_are_not_packed_signatures_are_refused() {
        let good = pack(HMAC, Some("m")).unwrap();
        assert!(unpack(&good, Some("m")).is_some());
        // Needs the source id it was packed against.
        let by_source = pack(HMAC, Some("3f1c2a9e-1b7d-4c55-9a0e-2d6f8b1c4e7a")).unwrap();
        assert_eq!(unpack(&by_source, None), None);
        let mut other_version = good.clone();
        other_version[0] = (other_version[0] & !FORMAT_MASK) | 0x20;
        let mut no_algorithm = good.clone();
        no_algorithm[0] &= !ALGORITHM_MASK;
        let mut short_signature = good.clone();
        short_signature[FIXED_LEN - 1] = 200;
        for blob in [
            &[][..],
            &good[..5],
            &other_version[..],
            &no_algorithm[..],
            &short_signature[..],
            b"{\"s\":\"00\"}",
        ] {
            assert_eq!(unpack(blob, Some("m")), None, "{blob:?}");
        }
    }

    proptest! {
        #[test]
        fn packing_never_changes_what_is_read_back(
            s in proptest::collection::vec(any::<u8>(), 1..100),
            k in any::<[u8; 8]>(),
            t in 0i64..=i64::MAX,
            ed25519 in any::<bool>(),
            m in "[ -~\u{80}-\u{10ffff}]{0,40}",
            same_as_source in any::<bool>(),
        ) {
            let a = if ed25519 { "ed25519" } else { "hmac-sha256" };
            let m_json = serde_json::to_string(&m).unwrap();
            let text = format!(
                r#"{{"s":"{}","k":"{}","t":{t},"a":"{a}","m":{m_json}}}"#,
                hex::encode(&s),
                hex::encode(&k)
            );
            let source = if same_as_source { Some(m.as_str()) } else { Some("elsewhere") };
            match pack(&text, source) {
                Some(blob) => prop_assert_eq!(unpack(&blob, source), Some(text)),
                // Only ids that JSON has to escape stay text.
                None => prop_assert!(m_json.contains('\\')),
            }
        }
    }
}
