//! Error type shared by every backend.

use thiserror::Error;

/// Everything that can go wrong while talking to a dead letter store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DlqError {
    /// The backend cannot be reached right now (connection refused or lost,
    /// connect/pool timeout). Retrying later may succeed; with a
    /// [`ResilientDlq`](crate::ResilientDlq) the letter is spooled locally.
    #[error(
        "dead letter store unavailable: {0}; check that the database server is running and \
         reachable (the operation can be retried)"
    )]
    Unavailable(String),

    /// The store has been closed with [`DlqStore::close`](crate::DlqStore::close).
    #[error("dead letter store is closed; open a new one to keep using it")]
    Closed,

    /// A dead letter id prefix matched more than one letter.
    #[error(
        "dead letter id prefix {prefix:?} is ambiguous ({count} matches); use more characters"
    )]
    Ambiguous {
        /// The prefix that was looked up.
        prefix: String,
        /// How many letters share it.
        count: u64,
    },

    /// The configuration is unusable (empty path, zero pool size, bad URL or
    /// schema name, ...).
    #[error("invalid dead letter store configuration: {0}")]
    Config(String),

    /// A schema migration failed or the database is newer than this build.
    #[error("dead letter schema migration failed: {0}")]
    Migration(String),

    /// A stored value cannot be decoded (unknown state, invalid JSON, ...).
    #[error("corrupt dead letter record: {0}; inspect or purge the offending row")]
    Corrupt(String),

    /// Error reported by SQLite.
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// Error reported by PostgreSQL that is not a connectivity problem
    /// (those become [`DlqError::Unavailable`]).
    #[error("postgres error: {message}")]
    Postgres {
        /// The error with its causes (the server's message included).
        message: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// Filesystem error (creating the database directory or file).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// JSON encoding or decoding failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),

    /// An internal invariant was broken (a worker thread died, ...).
    #[error("internal dead letter store error: {0}")]
    Internal(String),
}

impl DlqError {
    /// True when the backend could not be reached; the caller may retry
    /// later or spool the letter elsewhere.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DlqError::Unavailable(_) | DlqError::Closed)
    }
}

/// Result alias used throughout the crate.
pub type DlqResult<T> = Result<T, DlqError>;
