//! Frame codec: a 4-byte big-endian length `N`, then `N` bytes of UTF-8 JSON.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::envelope::Envelope;

/// Default and protocol maximum frame body size: 1 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

const HEADER_LEN: usize = 4;

/// A framing failure. Every variant is fatal for the connection: the byte stream cannot be
/// re-synchronised after it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed in the middle of a frame ({got} of {expected} bytes received)")]
    Truncated { expected: usize, got: usize },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frame bodies and writes length-prefixed frames.
///
/// Decoding yields the raw JSON body ([`Bytes`]) so the caller can tell a framing error (fatal,
/// from this codec) from a JSON error (see [`Envelope::from_slice`]).
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameCodec { max_frame_bytes }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        if src.len() < HEADER_LEN + len {
            src.reserve(HEADER_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let expected = if src.len() >= HEADER_LEN {
                    u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize + HEADER_LEN
                } else {
                    HEADER_LEN
                };
                Err(FrameError::Truncated {
                    expected,
                    got: src.len(),
                })
            }
        }
    }
}

impl Encoder<&Envelope> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, env: &Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        let frame = encode_frame(env, self.max_frame_bytes)?;
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    /// Writes an already encoded frame (header included), as produced by [`encode_frame`].
    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

/// Encodes one envelope as a complete frame (header + body). Fails when the body would exceed
/// `max_frame_bytes`; nothing is written in that case.
pub fn encode_frame(env: &Envelope, max_frame_bytes: usize) -> Result<Bytes, FrameError> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0; HEADER_LEN]);
    env.write_json(&mut buf)
        .map_err(|e| FrameError::Io(std::io::Error::other(e)))?;
    let len = buf.len() - HEADER_LEN;
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_bytes,
        });
    }
    buf[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageType, PingPayload};
    use proptest::prelude::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn round_trip_with_big_endian_length() {
        let env = Envelope::new(MessageType::Ping, &PingPayload { nonce: "n".into() });
        let bytes = encode_frame(&env, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        let mut buf = BytesMut::from(&bytes[..]);
        let body = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        let back = Envelope::from_slice(&body).unwrap();
        assert_eq!(back.id, env.id);
        assert!(buf.is_empty());
    }

    #[test]
    fn several_frames_in_one_chunk_and_partial_frames() {
        let mut codec = FrameCodec::default();
        let mut all = frame(b"{\"a\":1}");
        all.extend(frame(b"{\"b\":2}"));
        let third = frame(b"{\"c\":3}");
        all.extend(&third[..5]);
        let mut buf = BytesMut::from(&all[..]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"{\"a\":1}");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"{\"b\":2}");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&third[5..]);
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"{\"c\":3}");
    }

    #[test]
    fn oversized_length_is_rejected_before_reading_the_body() {
        let mut buf = BytesMut::from(&(DEFAULT_MAX_FRAME_BYTES as u32 + 1).to_be_bytes()[..]);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, .. } if len == DEFAULT_MAX_FRAME_BYTES + 1)
        );
        assert!(err.to_string().contains("exceeds"));
    }

    #[test]
    fn a_frame_of_exactly_the_limit_is_accepted() {
        let body = vec![b' '; 16];
        let mut buf = BytesMut::from(&frame(&body)[..]);
        assert!(FrameCodec::new(16).decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn truncated_frame_at_eof_is_reported() {
        let f = frame(b"{\"a\":1}");
        let mut buf = BytesMut::from(&f[..6]);
        let err = FrameCodec::default().decode_eof(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            FrameError::Truncated {
                expected: 11,
                got: 6
            }
        ));
    }

    #[test]
    fn encoding_refuses_oversized_envelopes() {
        let env = Envelope::new(
            MessageType::Log,
            &serde_json::json!({"data": "x".repeat(100)}),
        );
        assert!(matches!(
            encode_frame(&env, 50),
            Err(FrameError::TooLarge { max: 50, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut codec = FrameCodec::new(1024);
            let mut buf = BytesMut::new();
            for c in chunks {
                buf.extend_from_slice(&c);
                while let Ok(Some(body)) = codec.decode(&mut buf) {
                    let _ = Envelope::from_slice(&body);
                }
            }
        }

        #[test]
        fn any_split_point_yields_the_same_frames(split in 0usize..40) {
            let mut all = frame(b"{\"a\":1}");
            all.extend(frame(b"{\"bb\":22}"));
            all.extend(frame(b"{}"));
            let split = split.min(all.len());
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::from(&all[..split]);
            let mut out = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() { out.push(f); }
            buf.extend_from_slice(&all[split..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() { out.push(f); }
            prop_assert_eq!(out.len(), 3);
        }
    }
}
