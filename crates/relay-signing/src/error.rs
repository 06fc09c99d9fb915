//! Error types: one per concern, each message saying what to do about it.

use std::path::PathBuf;

use thiserror::Error;

/// A JSON value that has no RFC 8785 canonical form.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The text is not JSON (or holds a lone UTF-16 surrogate escape).
    #[error("not valid JSON: {0}; send well-formed UTF-8 JSON")]
    NotJson(String),
    /// An object names the same member twice; JCS (I-JSON) forbids it and
    /// parsers disagree on which copy wins.
    #[error("duplicate object member {0:?}; every member name must appear once per object")]
    DuplicateKey(String),
    /// A number that is not a finite IEEE 754 double.
    #[error("number {0} is not a finite double; send it as a string instead")]
    NonFiniteNumber(String),
}

/// A key that cannot be built from the material given.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not hexadecimal text.
    #[error("{what} is not hexadecimal; expected {expected} hex digits")]
    InvalidHex {
        /// Which value (`ed25519 seed`, `ed25519 public key`, ...).
        what: &'static str,
        /// How many hex digits it should have.
        expected: usize,
    },
    /// Hexadecimal, but of the wrong length.
    #[error("{what} has {got} hex digits; expected {expected}")]
    WrongLength {
        /// Which value.
        what: &'static str,
        /// How many hex digits it should have.
        expected: usize,
        /// How many it has.
        got: usize,
    },
    /// 32 bytes that are not a usable Ed25519 public key (not a curve
    /// point, or a weak small-order point).
    #[error("invalid ed25519 public key: {0}; export the key again from its owner's key file")]
    InvalidPublicKey(String),
    /// A key file lacks the material its algorithm needs.
    #[error("key material missing: {0}")]
    Missing(&'static str),
    /// The operating system's random number generator failed.
    #[error(
        "the operating system's random number generator failed: {0}; retry, and check /dev/urandom"
    )]
    Randomness(String),
}

/// Why a signature was refused. Every variant means "reject the message"
/// (`NACK{FORBIDDEN}` + DLQ `signature_invalid` on ingress).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// `_sig` is not of the form `{s, k, t, a, m}`, or the signed content
    /// has no canonical form.
    #[error("malformed signature: {0}; `_sig` must be {{s, k, t, a, m}} as in PROTOCOL.md §11")]
    Malformed(String),
    /// No key with this id is known for the signer.
    #[error(
        "unknown signing key {k} for {signer}; register the signer's key with the daemon \
         (or sign with a key it knows)"
    )]
    UnknownKey {
        /// The agent the message is from.
        signer: String,
        /// The key id in `_sig.k`.
        k: String,
    },
    /// The key was revoked.
    #[error("signing key {k} of {signer} is revoked; the signer must rotate to a new key")]
    KeyRevoked {
        /// The agent the message is from.
        signer: String,
        /// The key id in `_sig.k`.
        k: String,
    },
    /// The key expired, or was retired and its overlap has ended.
    #[error(
        "signing key {k} of {signer} expired at {until}; the signer must sign with its current key"
    )]
    KeyExpired {
        /// The agent the message is from.
        signer: String,
        /// The key id in `_sig.k`.
        k: String,
        /// When it stopped being valid (ms since the Unix epoch).
        until: u64,
    },
    /// `_sig.a` is not the algorithm of key `k`.
    #[error("signature algorithm {claimed} does not match key {k}, which is {actual}")]
    WrongAlgorithm {
        /// The key id in `_sig.k`.
        k: String,
        /// The algorithm in `_sig.a`.
        claimed: &'static str,
        /// The key's algorithm.
        actual: &'static str,
    },
    /// `t` is further than the replay window from now.
    #[error(
        "signature time {t} is more than {window} ms from now ({now}); check the signer's \
         clock, and sign at send time"
    )]
    Stale {
        /// `_sig.t`.
        t: u64,
        /// The verifier's time.
        now: u64,
        /// The allowed distance.
        window: u64,
    },
    /// The signature does not match the signed fields.
    #[error("signature does not match the message; it was altered or signed with another key")]
    BadSignature,
    /// `_sig.m` is not this message's id.
    #[error("signature is for message {m}, not {id}; sign each message with its own id")]
    MessageIdMismatch {
        /// `_sig.m`.
        m: String,
        /// The envelope's `id`.
        id: String,
    },
}

/// A `(signer, m)` pair the replay cache refuses.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// Already seen inside the window: a replayed message.
    #[error(
        "message {m} from {signer} was already accepted (signed at {first_t}); replays are refused"
    )]
    Seen {
        /// The signer.
        signer: String,
        /// The signed message id.
        m: String,
        /// `t` of the copy accepted first.
        first_t: u64,
    },
    /// `t` is outside the window, so the cache cannot vouch for it.
    #[error("signature time {t} is more than {window} ms from now ({now}); sign at send time")]
    OutsideWindow {
        /// `_sig.t`.
        t: u64,
        /// The verifier's time.
        now: u64,
        /// The window.
        window: u64,
    },
    /// The cache overflowed and forgot entries signed at or before `floor`;
    /// anything that old may be a replay of one of them.
    #[error(
        "signature time {t} is at or before {floor}, the newest entry the full replay cache \
         had to drop; re-sign the message now (or raise the cache capacity)"
    )]
    BelowFloor {
        /// `_sig.t`.
        t: u64,
        /// Newest `t` evicted before its window ended.
        floor: u64,
    },
}

/// Failures of the on-disk key store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The agent name cannot be a key file name.
    #[error(
        "agent name {name:?} cannot name a key file: {reason}; use 1-64 characters from \
         [A-Za-z0-9_.-], not starting with '.'"
    )]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No key file for this agent.
    #[error("no key file for agent {agent} at {}; create one first", path.display())]
    NotFound {
        /// The agent.
        agent: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `create` found a key file already there.
    #[error("agent {agent} already has a key file at {}; rotate it instead", path.display())]
    AlreadyExists {
        /// The agent.
        agent: String,
        /// The existing file.
        path: PathBuf,
    },
    /// A key file readable or writable by others.
    #[error(
        "key file {} has mode {mode:o}, open to other users; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file that does not parse or does not add up.
    #[error("corrupt key file {}: {reason}; restore it from a backup or create a new key", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key id is not in the agent's key file.
    #[error("agent {agent} has no key {key_id}; list its keys to see the ids it has")]
    UnknownKey {
        /// The agent.
        agent: String,
        /// The id asked for.
        key_id: String,
    },
    /// The current key cannot sign: revoked.
    #[error("the current key {key_id} of {agent} is revoked; rotate to get a new key")]
    Revoked {
        /// The agent.
        agent: String,
        /// The revoked key.
        key_id: String,
    },
    /// The current key cannot sign: past its `expiresAt`.
    #[error(
        "the current key {key_id} of {agent} expired at {expired_at}; rotate to get a new key"
    )]
    Expired {
        /// The agent.
        agent: String,
        /// The expired key.
        key_id: String,
        /// Its `expiresAt`.
        expired_at: u64,
    },
    /// The file holds only a public key, so it cannot sign.
    #[error("the key file of {agent} holds only a public key and cannot sign; sign on the agent's own machine")]
    VerifyOnly {
        /// The agent.
        agent: String,
    },
    /// Key material could not be generated or decoded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Filesystem error.
    #[error("key store i/o error at {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
