//! The storage backend abstraction.
//!
//! A backend is owned by the store's writer thread and is only ever called
//! from that thread, so implementations need `Send` but not `Sync` and may
//! keep plain mutable state (a SQLite connection, in-memory maps, ...).

use crate::error::StoreError;
use crate::types::{Query, QueryResult, WriteOp};

/// A place to keep relay data. Implemented by [`SqliteBackend`] and
/// [`MemoryBackend`]; another database can be added by implementing this
/// trait and passing it to [`Store::open_with_backend`].
///
/// [`SqliteBackend`]: crate::SqliteBackend
/// [`MemoryBackend`]: crate::MemoryBackend
/// [`Store::open_with_backend`]: crate::Store::open_with_backend
pub trait Backend: Send + 'static {
    /// Short backend name, e.g. `"sqlite"` or `"memory"`.
    fn name(&self) -> &'static str;

    /// True when data survives a restart of the process.
    fn persistent(&self) -> bool;

    /// Apply a batch of writes in order, all-or-nothing (one transaction).
    /// On error nothing from the batch may remain applied.
    fn apply(&mut self, batch: &[WriteOp]) -> Result<(), StoreError>;

    /// Answer a read request.
    fn query(&mut self, q: &Query) -> Result<QueryResult, StoreError>;

    /// Retention: delete messages older than `older_than_ts` (epoch ms) that
    /// are not pending, i.e. `Acked`/`Failed` rows and channel rows. Pending
    /// (`Unread`/`Read`) rows addressed to agents are never deleted. Returns
    /// the number of rows deleted.
    fn cleanup(&mut self, older_than_ts: i64) -> Result<u64, StoreError>;

    /// Make everything applied so far durable (e.g. checkpoint a WAL).
    /// Called when the store is closed.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Pending messages dropped because the backend ran out of room (only
    /// bounded backends ever report a non-zero value).
    fn evicted_pending(&self) -> u64 {
        0
    }
}
