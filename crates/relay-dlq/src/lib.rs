//! Dead letter queue (DLQ) storage for the agent-relay daemon.
//!
//! Every message the daemon could not deliver is kept here, whole, with the
//! reason it failed, so that it can be inspected, retried with backoff,
//! acknowledged and purged. This crate is the storage layer only: the
//! daemon decides what to dead-letter, when to retry and how to replay.
//!
//! # Backends
//!
//! One trait, [`DlqStore`], three implementations with identical behaviour
//! (one test suite runs against all of them):
//!
//! * [`SqliteDlq`] (default): the `dead_letters` table inside the daemon's
//!   database file (`.agent-relay/messages.sqlite`), reached through its own
//!   connection on a dedicated thread. Its schema version lives in
//!   `dlq_schema_version`; no other table of the file is touched.
//! * [`PostgresDlq`]: the same table in PostgreSQL (JSONB payload columns,
//!   BIGINT millisecond timestamps) through a `deadpool-postgres` pool, with
//!   deadlines on every connection attempt and operation.
//! * [`MemoryDlq`]: volatile, for tests and for daemons without storage.
//!
//! [`ResilientDlq`] puts a local spool (a [`SqliteDlq`]) behind a primary
//! store (a [`PostgresDlq`]): letters that cannot reach the primary are
//! spooled and moved over by [`ResilientDlq::drain`] once it answers again.
//!
//! # Semantics in brief
//!
//! * A letter is identified by its id (`dlq_` + 24 hex digits) and is
//!   unique per `(message_id, to)`: dead-lettering the same message for the
//!   same target again updates the existing letter (see [`DlqStore::add`]).
//! * Time is always passed in (`now`, milliseconds since the Unix epoch).
//! * Life cycle: `Pending` → `Replaying` → `Delivered` (acknowledged
//!   automatically) or back to `Pending`, or `Exhausted`. A letter is
//!   *settled* when it is acknowledged or in a final state; only settled
//!   letters expire by age ([`DlqStore::cleanup`]).
//! * JSON: records serialise with `camelCase` field names; enum values use
//!   their stored `snake_case` spelling (`max_retries_exceeded`, `pending`).
//!
//! ```
//! use relay_dlq::{DlqQuery, DlqStore, FailureReason, MemoryDlq, NewDeadLetter};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! let dlq = MemoryDlq::new();
//! let now = 1_700_000_000_000;
//! let letter = NewDeadLetter::new("m-1", "alice", "bob", "hi", now - 5, FailureReason::TtlExpired);
//! let stored = dlq.add(letter, now, Some(now + 1_000)).await?;
//! assert!(stored.id.starts_with("dlq_"));
//! assert_eq!(dlq.due_for_retry(now + 1_000, 3, 10).await?.len(), 1);
//! assert_eq!(dlq.count(&DlqQuery::for_target("bob")).await?, 1);
//! # Ok::<_, relay_dlq::DlqError>(())
//! # })?;
//! # Ok(())
//! # }
//! ```

mod error;
mod memory;
mod postgres;
mod query;
mod resilient;
mod sql;
mod sqlite;
mod store;
mod types;

pub use error::{DlqError, DlqResult};
pub use memory::MemoryDlq;
pub use postgres::{
    PostgresConfig, PostgresDlq, DEFAULT_CONNECT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
};
pub use query::{compare, DlqOrder, DlqQuery, DEFAULT_QUERY_LIMIT};
pub use resilient::ResilientDlq;
pub use sqlite::{SqliteDlq, SQLITE_BUSY_TIMEOUT};
pub use store::{DlqStore, DELIVERY_ACKNOWLEDGER};
pub use types::{
    new_id, CleanupReport, DeadLetter, DlqHealth, DlqState, DlqStats, FailureReason, NewDeadLetter,
    ParseEnumError,
};
