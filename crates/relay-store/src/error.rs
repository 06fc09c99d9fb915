//! Error type shared by every part of the store.

use thiserror::Error;

/// Everything that can go wrong while talking to the store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write queue is full. The daemon reports this to clients as `BUSY`.
    #[error("store write queue is full (capacity {capacity})")]
    Overloaded {
        /// Configured queue capacity (`StoreConfig::queue_capacity`).
        capacity: usize,
    },

    /// The store has been closed (or its writer thread is gone).
    #[error("store is closed")]
    Closed,

    /// A message id prefix matched more than one message.
    #[error("message id prefix {prefix:?} is ambiguous ({count} matches)")]
    AmbiguousId {
        /// The prefix that was looked up.
        prefix: String,
        /// How many messages share it.
        count: usize,
    },

    /// Writes that were queued before a [`flush`](crate::StoreHandle::flush)
    /// barrier could not be committed and were dropped after retrying.
    #[error("{count} queued write(s) could not be committed and were dropped")]
    WritesLost {
        /// Number of operations that were dropped.
        count: u64,
    },

    /// The configuration is unusable (zero capacity, bad path, ...).
    #[error("invalid store configuration: {0}")]
    Config(String),

    /// A schema migration failed or the database is newer than this build.
    #[error("schema migration failed: {0}")]
    Migration(String),

    /// Error reported by SQLite.
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// Filesystem error (creating the database directory or file).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// JSON encoding or decoding failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),

    /// A backend answered a query with the wrong kind of result, or a
    /// similar internal invariant was broken.
    #[error("internal store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True for [`StoreError::Overloaded`]: the caller should back off and retry.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, StoreError::Overloaded { .. })
    }
}

/// Result alias used throughout the crate.
pub type StoreResult<T> = Result<T, StoreError>;
