//! The behaviour every dead letter backend implements.

use async_trait::async_trait;

use crate::error::DlqError;
use crate::query::DlqQuery;
use crate::types::{CleanupReport, DeadLetter, DlqState, DlqStats, NewDeadLetter};

/// Acknowledger recorded when a replay is marked [`DlqState::Delivered`].
pub const DELIVERY_ACKNOWLEDGER: &str = "delivery";

/// Dead letter storage. Object safe: the daemon holds an
/// `Arc<dyn DlqStore>`. Every timestamp is passed in by the caller
/// (milliseconds since the Unix epoch), so behaviour is deterministic.
///
/// All backends ([`SqliteDlq`](crate::SqliteDlq),
/// [`PostgresDlq`](crate::PostgresDlq), [`MemoryDlq`](crate::MemoryDlq))
/// behave identically; one test suite runs against all of them.
#[async_trait]
pub trait DlqStore: Send + Sync {
    /// Short backend name: `sqlite`, `postgres`, `memory`, `resilient`.
    fn backend(&self) -> &'static str;

    /// Store a letter, dead-lettered at `now`.
    ///
    /// Upsert on `(message_id, to)`: when that pair is already stored, the
    /// existing row keeps its id, message content, `dlq_retry_count` and
    /// `last_attempt_ts`; `reason`, `error_message`, `attempt_count`,
    /// `dlq_ts` and `next_retry_at` are replaced, the state goes back to
    /// `Pending` and the acknowledgement is cleared. Returns the stored row.
    async fn add(
        &self,
        letter: NewDeadLetter,
        now: i64,
        next_retry_at: Option<i64>,
    ) -> Result<DeadLetter, DlqError>;

    /// Copy a complete record (for instance from another store) keeping its
    /// id, state, retry count and acknowledgement.
    ///
    /// Upsert on `(message_id, to)`: an existing row keeps its own id and
    /// takes every other field from `letter`, except that `dlq_retry_count`
    /// and `last_attempt_ts` keep the larger of the two values so retry
    /// budgets are never reset by a copy. Importing the same record twice
    /// is harmless. Returns the stored row.
    async fn import(&self, letter: DeadLetter) -> Result<DeadLetter, DlqError>;

    /// The letter with exactly this id or, failing that, the only letter
    /// whose id starts with `id`. More than one match is
    /// [`DlqError::Ambiguous`]; an empty `id` finds nothing.
    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, DlqError>;

    /// Letters matching `q`, in its order, after `offset`, at most
    /// [`DlqQuery::effective_limit`] of them.
    async fn query(&self, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError>;

    /// Number of letters matching `q` (limit and offset ignored).
    async fn count(&self, q: &DlqQuery) -> Result<u64, DlqError>;

    /// Acknowledge the letters with these exact ids that are not
    /// acknowledged yet, recording `by` and `now`. Returns how many were
    /// newly acknowledged; already acknowledged letters keep their record.
    async fn acknowledge(&self, ids: &[String], by: &str, now: i64) -> Result<u64, DlqError>;

    /// Move the letter with this exact id to `state` and set its
    /// `next_retry_at` (replacing the old value, `None` clears it).
    ///
    /// * `Replaying` increments `dlq_retry_count` and sets
    ///   `last_attempt_ts = now`.
    /// * `Delivered` also acknowledges the letter (by
    ///   [`DELIVERY_ACKNOWLEDGER`] at `now`) unless it already is.
    ///
    /// Returns false when no letter has this id.
    async fn set_state(
        &self,
        id: &str,
        state: DlqState,
        next_retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, DlqError>;

    /// Up to `limit` letters to retry at `now`: `Pending`, not acknowledged,
    /// `next_retry_at <= now` (no `next_retry_at` is never due) and
    /// `dlq_retry_count < max_retries`; ordered by `next_retry_at`, then
    /// `dlq_ts`, then id, ascending.
    async fn due_for_retry(
        &self,
        now: i64,
        max_retries: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DlqError>;

    /// Every `Pending`, unacknowledged letter for `to`, oldest (`dlq_ts`)
    /// first. Used when the target reconnects.
    async fn pending_for_target(&self, to: &str) -> Result<Vec<DeadLetter>, DlqError>;

    /// Delete every letter matching `q` (limit and offset ignored; the
    /// default query deletes everything). Returns how many were deleted.
    async fn purge(&self, q: &DlqQuery) -> Result<u64, DlqError>;

    /// Aggregate numbers over the whole queue.
    async fn stats(&self) -> Result<DlqStats, DlqError>;

    /// Retention and size limit, in one transaction:
    ///
    /// 1. With `retention_ms`, delete settled letters (acknowledged, or
    ///    `Delivered`/`Exhausted`) with `dlq_ts < now - retention_ms`.
    ///    Unsettled letters are never deleted by age.
    /// 2. With `max_entries`, while more letters than that remain, delete
    ///    the oldest (`dlq_ts`, then id) settled letters, then, if still
    ///    over, the oldest unsettled ones, reported separately as
    ///    [`CleanupReport::evicted_unacknowledged`].
    async fn cleanup(
        &self,
        now: i64,
        retention_ms: Option<i64>,
        max_entries: Option<u64>,
    ) -> Result<CleanupReport, DlqError>;

    /// Finish outstanding work and release connections. Later calls fail
    /// with [`DlqError::Closed`]. Closing twice is fine.
    async fn close(&self) -> Result<(), DlqError>;
}
