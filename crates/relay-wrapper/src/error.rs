//! Errors of the wrapper.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WrapperError {
    #[error("cannot open a pseudo-terminal: {0}")]
    Pty(String),
    #[error("cannot start '{program}': {reason} (check that it is installed and on PATH)")]
    Spawn { program: String, reason: String },
    #[error("invalid agent name '{name}': {reason}")]
    BadName { name: String, reason: String },
    #[error("cannot prepare {what} at {path}: {reason}")]
    Io {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error(transparent)]
    Client(#[from] relay_client::ClientError),
    #[error("cannot set up the terminal: {0}")]
    Terminal(String),
}
