//! Client errors. Each message says what failed and what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use relay_protocol::ids::NameError;
use relay_protocol::{ErrorCode, ErrorPayload, NackCode, NackPayload};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (missing file or connection refused).
    #[error("no agent-relay daemon is listening on {}; start one with `agent-relay up`", path.display())]
    NotRunning { path: PathBuf },

    /// The socket exists but could not be opened (permissions, not a socket…).
    #[error("cannot connect to the agent-relay daemon at {}: {source}; check the socket path and its permissions", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The daemon accepted the connection but did not complete the handshake in time.
    #[error("the daemon at {} did not complete the handshake within {after:?}; check `agent-relay status` and the daemon log", path.display())]
    HandshakeTimeout { path: PathBuf, after: Duration },

    /// The daemon refused the handshake or closed the session with a fatal error.
    #[error("the daemon refused the connection ({}): {message}", error_code_name(*code))]
    Rejected { code: ErrorCode, message: String },

    /// The configured agent name is not valid; nothing was sent.
    #[error("invalid agent name: {0}")]
    InvalidName(#[from] NameError),

    /// No answer arrived before the deadline.
    #[error("{what} got no answer within {after:?}; the daemon may be overloaded or the recipient not responding — retry or raise the timeout")]
    Timeout { what: String, after: Duration },

    /// The daemon refused a SEND (`NACK`).
    #[error("the daemon refused message {}: {}", .0.ack_id, describe_nack(.0))]
    Nack(NackPayload),

    /// The daemon answered a request with an ERROR (for example TIMEOUT for a sync send).
    #[error("the daemon answered with {}: {}", error_code_name(.0.code), .0.message)]
    Server(ErrorPayload),

    /// The connection was lost while an answer was awaited. The request may or may not have
    /// been processed; it is safe to retry queries, and sends carry ids the daemon dedupes.
    #[error(
        "the connection to the daemon was lost before the answer arrived; retry once it reconnects"
    )]
    Disconnected,

    /// The client was closed (by [`Client::close`](crate::Client::close), a fatal daemon error,
    /// or a lost connection with reconnect disabled).
    #[error("the client is closed ({reason}); connect again")]
    Closed { reason: String },

    /// The envelope would exceed the frame size limit; nothing was sent.
    #[error("message of {len} bytes exceeds the {max}-byte frame limit; send a smaller body")]
    FrameTooLarge { len: usize, max: usize },

    /// The outgoing queue stayed full (daemon unreachable or not reading).
    #[error(
        "the outgoing queue stayed full for {after:?}; the daemon is unreachable or not keeping up"
    )]
    QueueFull { after: Duration },

    /// `reply_sync` was called for a message that was not sent with sync.
    #[error(
        "message {id} was not sent with sync (no payload_meta.sync); answer it with a normal send"
    )]
    NotSync { id: String },

    /// The daemon's answer could not be decoded.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),

    /// Signing is configured but the message cannot be signed (no key file, a revoked or
    /// expired key, …); nothing was sent. The message says what to do.
    #[error("{0}")]
    Signing(String),
}

impl ClientError {
    /// Whether reconnecting cannot help (the daemon refused this client for good).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ClientError::Rejected { .. } | ClientError::InvalidName(_) | ClientError::Closed { .. }
        )
    }
}

/// The wire name of an error code (`DUPLICATE_CONNECTION`…).
pub fn error_code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "BAD_REQUEST",
        ErrorCode::Unauthorized => "UNAUTHORIZED",
        ErrorCode::NotFound => "NOT_FOUND",
        ErrorCode::Internal => "INTERNAL",
        ErrorCode::ResumeTooOld => "RESUME_TOO_OLD",
        ErrorCode::DuplicateConnection => "DUPLICATE_CONNECTION",
        ErrorCode::Timeout => "TIMEOUT",
    }
}

fn describe_nack(nack: &NackPayload) -> String {
    let code = match nack.code {
        Some(NackCode::Busy) => "BUSY",
        Some(NackCode::Invalid) => "INVALID",
        Some(NackCode::Forbidden) => "FORBIDDEN",
        Some(NackCode::Stale) => "STALE",
        None => "refused",
    };
    match (&nack.message, &nack.reason) {
        (Some(m), _) => format!("{code} ({m})"),
        (None, Some(r)) => format!("{code} ({r})"),
        (None, None) => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = ClientError::NotRunning {
            path: "/p/relay.sock".into(),
        };
        assert_eq!(
            e.to_string(),
            "no agent-relay daemon is listening on /p/relay.sock; start one with `agent-relay up`"
        );
        let e = ClientError::Nack(NackPayload::new(
            "m1",
            NackCode::Invalid,
            "unknown recipient",
        ));
        assert_eq!(
            e.to_string(),
            "the daemon refused message m1: INVALID (unknown recipient)"
        );
        let e = ClientError::Server(ErrorPayload::new(ErrorCode::Timeout, "no ACK", false));
        assert_eq!(e.to_string(), "the daemon answered with TIMEOUT: no ACK");
    }
}
