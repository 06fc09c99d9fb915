//! The agent-relay wire protocol, version 1, as typed Rust values.
//!
//! Everything that crosses the daemon's Unix socket is defined here, with no I/O:
//!
//! - [`Envelope`]: the JSON object every frame carries (`v`, `type`, `id`, `ts`, `from`, `to`,
//!   `topic`, `payload`, `payload_meta`, `delivery`, `_sig`). The payload is kept as raw JSON so
//!   it can be forwarded byte-for-byte; [`Envelope::payload_as`] turns it into one of the typed
//!   payloads in [`payloads`].
//! - [`MessageType`]: every type of `@agent-relay/protocol@2.1.14` plus the ones this project
//!   adds (see `docs/PROTOCOL.md`); an unrecognised type is kept as [`MessageType::Unknown`] so
//!   the daemon can answer it instead of ignoring it.
//! - [`FrameCodec`]: the 4-byte big-endian length prefix + UTF-8 JSON framing with a size limit
//!   (1 MiB by default), for `tokio_util::codec`.
//! - [`ids`]: message/session ids and agent-name validation.
//! - [`SignatureJson`]: an envelope's `_sig`, its JSON text kept as written; [`SigLayout`]: `_sig`
//!   in the layout signers write, read without a JSON parser.
//! - [`hex`]: the hex text of signatures and key ids (encoding, and decoding of either case or
//!   lowercase only); [`find_json_escape`]: the word-at-a-time search for bytes a JSON string
//!   must escape, shared by the `_sig` reader and writer and the signers' canonicaliser.
//!
//! Optional fields are omitted on the wire, never sent as `null`; unknown fields inside
//! `payload.data` and `payload_meta` are preserved.

mod codec;
pub mod context;
pub mod dlq;
mod envelope;
pub mod hex;
pub mod ids;
mod json_escape;
mod message_type;
pub mod payloads;
mod sig_layout;
mod signature_json;

pub use codec::{encode_frame, FrameCodec, FrameError, DEFAULT_MAX_FRAME_BYTES};
pub use context::*;
pub use dlq::*;
pub use envelope::{empty_object, now_ms, to_raw, Envelope, EnvelopeError, PROTOCOL_VERSION};
pub use json_escape::{find_json_escape, needs_json_escape};
pub use message_type::MessageType;
pub use payloads::*;
pub use sig_layout::SigLayout;
pub use signature_json::SignatureJson;
