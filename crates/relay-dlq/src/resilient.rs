//! A primary store (PostgreSQL) with a local spool (SQLite) behind it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::DlqError;
use crate::query::{compare_due, compare_oldest_first, DlqOrder, DlqQuery};
use crate::store::DlqStore;
use crate::types::{CleanupReport, DeadLetter, DlqHealth, DlqState, DlqStats, NewDeadLetter};

/// Letters moved per page by [`ResilientDlq::drain`].
const DRAIN_BATCH: usize = 200;

#[derive(Debug, Default)]
struct Health {
    degraded: bool,
    last_error: Option<String>,
    spooled: u64,
    degraded_since: Option<i64>,
    /// `spooled` is an actual count of the spool (see
    /// [`DlqHealth::spool_checked`]).
    spool_checked: bool,
}

/// A primary store (PostgreSQL) with a local spool (SQLite) behind it.
///
/// * **Writes** (`add`, `import`) go to the primary. When it fails, for any
///   reason, the letter is written to the fallback instead and the wrapper
///   becomes *degraded*; while degraded, writes go straight to the fallback
///   (no waiting on a dead server for every letter). Nothing is lost unless
///   both stores fail, and then the error is returned.
/// * **[`drain`](ResilientDlq::drain)**, called periodically by the daemon
///   (and once at startup, to pick up a spool left by a previous run),
///   copies spooled letters to the primary with
///   [`DlqStore::import`] (same id, state and retry count; idempotent) and
///   deletes each from the fallback once the primary has it. Degraded mode
///   ends when the primary answers and the spool is empty.
/// * A new wrapper knows nothing about its spool: a previous run may have
///   left letters in it, yet `degraded` is false and `spooled` 0 until the
///   spool is counted ([`DlqHealth::spool_checked`]). Callers must drain
///   once at startup, whatever the status says.
/// * **Reads** always consult both stores and merge: a letter present in
///   both (same `message_id` and `to`) is reported once, as the fallback's
///   copy (the newer one). A primary connectivity failure
///   ([`DlqError::is_unavailable`]) makes reads answer from the fallback
///   alone and marks the wrapper degraded; other primary errors are
///   returned. `count` and `stats` add the two stores' numbers, so a letter
///   in both is counted twice until the next drain.
/// * **Updates** (`acknowledge`, `set_state`) go to whichever store holds
///   the id; `purge`, `cleanup` and `close` run on both. When the primary is
///   unreachable they still run on the fallback and return the primary's
///   error unless the fallback alone completed the request.
pub struct ResilientDlq {
    primary: Arc<dyn DlqStore>,
    fallback: Arc<dyn DlqStore>,
    health: Mutex<Health>,
    /// Writers hold it shared; `drain` takes it exclusively to leave
    /// degraded mode, so no write can slip into the spool unnoticed.
    route: tokio::sync::RwLock<()>,
    /// One drain at a time.
    draining: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ResilientDlq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientDlq")
            .field("primary", &self.primary.backend())
            .field("fallback", &self.fallback.backend())
            .field("health", &self.status())
            .finish()
    }
}

impl ResilientDlq {
    /// Wrap `primary`, spooling to `fallback` while it is unreachable.
    pub fn new(primary: Arc<dyn DlqStore>, fallback: Arc<dyn DlqStore>) -> Self {
        ResilientDlq {
            primary,
            fallback,
            health: Mutex::new(Health::default()),
            route: tokio::sync::RwLock::new(()),
            draining: tokio::sync::Mutex::new(()),
        }
    }

    /// Current health.
    pub fn status(&self) -> DlqHealth {
        let health = self.lock_health();
        DlqHealth {
            backend: self.primary.backend().to_string(),
            degraded: health.degraded,
            last_error: health.last_error.clone(),
            spooled: health.spooled,
            degraded_since: health.degraded_since,
            spool_checked: health.spool_checked,
        }
    }

    /// Move spooled letters to the primary. Returns how many were moved.
    ///
    /// Stops at the first primary connectivity failure and returns it (the
    /// wrapper stays degraded). A letter the primary rejects for another
    /// reason stays in the spool, is logged, and keeps the wrapper degraded
    /// with that error in [`DlqHealth::last_error`].
    pub async fn drain(&self, now: i64) -> Result<u64, DlqError> {
        let _one_at_a_time = self.draining.lock().await;
        let mut moved = 0u64;
        let mut stuck = 0usize;
        loop {
            let page = self
                .fallback
                .query(&DlqQuery {
                    limit: Some(DRAIN_BATCH),
                    offset: stuck,
                    order_by: DlqOrder::DlqTs,
                    descending: false,
                    ..DlqQuery::default()
                })
                .await?;
            if page.is_empty() {
                break;
            }
            for letter in page {
                let id = letter.id.clone();
                match self.primary.import(letter).await {
                    Ok(_) => {
                        self.fallback.purge(&DlqQuery::by_ids([id])).await?;
                        moved += 1;
                    }
                    Err(e) if e.is_unavailable() => {
                        self.mark_failure(&e, now);
                        self.refresh_spooled().await;
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::error!(
                            id,
                            error = %e,
                            "primary dead letter store rejected a spooled letter; it stays spooled"
                        );
                        self.mark_failure(&e, now);
                        stuck += 1;
                    }
                }
            }
        }
        if moved > 0 {
            tracing::info!(moved, "moved spooled dead letters to the primary store");
        } else if stuck == 0 {
            // Nothing to move: make sure the primary answers before leaving
            // degraded mode.
            if let Err(e) = self
                .primary
                .count(&DlqQuery::by_ids(Vec::<String>::new()))
                .await
            {
                self.mark_failure(&e, now);
                self.refresh_spooled().await;
                return Err(e);
            }
        }
        let _exclusive = self.route.write().await;
        let spooled = self.fallback.count(&DlqQuery::all()).await?;
        let mut health = self.lock_health();
        health.spooled = spooled;
        health.spool_checked = true;
        if spooled == 0 && health.degraded {
            tracing::info!("primary dead letter store is back; leaving degraded mode");
            health.degraded = false;
            health.last_error = None;
            health.degraded_since = None;
        }
        Ok(moved)
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_degraded(&self) -> bool {
        self.lock_health().degraded
    }

    fn mark_failure(&self, e: &DlqError, now: i64) {
        let mut health = self.lock_health();
        if !health.degraded {
            tracing::warn!(error = %e, "primary dead letter store failed; spooling locally");
            health.degraded = true;
            health.degraded_since = Some(now);
        }
        health.last_error = Some(e.to_string());
    }

    /// Reads have no `now`; a read failure keeps the earlier start time or
    /// records none.
    fn mark_read_failure(&self, e: &DlqError) {
        let mut health = self.lock_health();
        if !health.degraded {
            tracing::warn!(error = %e, "primary dead letter store unreachable");
            health.degraded = true;
        }
        health.last_error = Some(e.to_string());
    }

    async fn refresh_spooled(&self) {
        match self.fallback.count(&DlqQuery::all()).await {
            Ok(n) => {
                let mut health = self.lock_health();
                health.spooled = n;
                health.spool_checked = true;
            }
            Err(e) => tracing::warn!(error = %e, "cannot count spooled dead letters"),
        }
    }

    /// Write through `write` to the primary unless degraded, else (or on
    /// failure) to the fallback.
    async fn write<'a, F, Fut>(&'a self, now: i64, write: F) -> Result<DeadLetter, DlqError>
    where
        F: Fn(&'a Arc<dyn DlqStore>) -> Fut,
        Fut: std::future::Future<Output = Result<DeadLetter, DlqError>>,
    {
        let _shared = self.route.read().await;
        if !self.is_degraded() {
            match write(&self.primary).await {
                Ok(stored) => return Ok(stored),
                Err(e) => self.mark_failure(&e, now),
            }
        }
        let stored = write(&self.fallback).await?;
        self.refresh_spooled().await;
        Ok(stored)
    }

    /// Primary rows (or none when it is unreachable) plus fallback rows,
    /// deduplicated by `(message_id, to)` in favour of the fallback.
    fn merge(
        &self,
        primary: Result<Vec<DeadLetter>, DlqError>,
        fallback: Result<Vec<DeadLetter>, DlqError>,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        let primary = self.primary_or_degrade(primary)?.unwrap_or_default();
        let fallback = match fallback {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read spooled dead letters");
                Vec::new()
            }
        };
        let spooled: HashSet<(String, String)> = fallback
            .iter()
            .map(|l| (l.message_id.clone(), l.to.clone()))
            .collect();
        let mut rows: Vec<DeadLetter> = primary
            .into_iter()
            .filter(|l| !spooled.contains(&(l.message_id.clone(), l.to.clone())))
            .collect();
        rows.extend(fallback);
        Ok(rows)
    }

    /// `Ok(Some)` for a primary answer, `Ok(None)` when the primary is
    /// unreachable (now marked degraded), `Err` for other primary errors.
    fn primary_or_degrade<T>(&self, result: Result<T, DlqError>) -> Result<Option<T>, DlqError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_unavailable() => {
                self.mark_read_failure(&e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl DlqStore for ResilientDlq {
    fn backend(&self) -> &'static str {
        "resilient"
    }

    async fn add(
        &self,
        letter: NewDeadLetter,
        now: i64,
        next_retry_at: Option<i64>,
    ) -> Result<DeadLetter, DlqError> {
        self.write(now, |store| store.add(letter.clone(), now, next_retry_at))
            .await
    }

    async fn import(&self, letter: DeadLetter) -> Result<DeadLetter, DlqError> {
        let now = letter.dlq_ts;
        self.write(now, |store| store.import(letter.clone())).await
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, DlqError> {
        match self.primary_or_degrade(self.primary.get(id).await)? {
            Some(Some(letter)) => Ok(Some(letter)),
            Some(None) => self.fallback.get(id).await,
            None => match self.fallback.get(id).await? {
                Some(letter) => Ok(Some(letter)),
                None => Err(DlqError::Unavailable(
                    "the primary dead letter store is unreachable and the letter is not \
                     spooled locally"
                        .into(),
                )),
            },
        }
    }

    async fn query(&self, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError> {
        // Each store returns enough rows to fill the merged page.
        let wide = DlqQuery {
            limit: Some(q.effective_limit().saturating_add(q.offset)),
            offset: 0,
            ..q.clone()
        };
        let primary = self.primary.query(&wide).await;
        let fallback = self.fallback.query(&wide).await;
        Ok(q.sort_and_page(self.merge(primary, fallback)?))
    }

    async fn count(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        let primary = self.primary.count(q).await;
        let primary = self.primary_or_degrade(primary)?;
        let fallback = self.fallback.count(q).await?;
        Ok(primary.unwrap_or(0) + fallback)
    }

    async fn acknowledge(&self, ids: &[String], by: &str, now: i64) -> Result<u64, DlqError> {
        let primary = self.primary.acknowledge(ids, by, now).await;
        let fallback = self.fallback.acknowledge(ids, by, now).await?;
        match primary {
            Ok(n) => Ok(n + fallback),
            Err(e) if e.is_unavailable() => {
                self.mark_failure(&e, now);
                if fallback > 0 {
                    Ok(fallback)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn set_state(
        &self,
        id: &str,
        state: DlqState,
        next_retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, DlqError> {
        match self.primary.set_state(id, state, next_retry_at, now).await {
            Ok(true) => Ok(true),
            Ok(false) => self.fallback.set_state(id, state, next_retry_at, now).await,
            Err(e) if e.is_unavailable() => {
                self.mark_failure(&e, now);
                if self
                    .fallback
                    .set_state(id, state, next_retry_at, now)
                    .await?
                {
                    Ok(true)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn due_for_retry(
        &self,
        now: i64,
        max_retries: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        let primary = self.primary.due_for_retry(now, max_retries, limit).await;
        let fallback = self.fallback.due_for_retry(now, max_retries, limit).await;
        let mut rows = self.merge(primary, fallback)?;
        rows.sort_by(compare_due);
        rows.truncate(limit);
        Ok(rows)
    }

    async fn pending_for_target(&self, to: &str) -> Result<Vec<DeadLetter>, DlqError> {
        let primary = self.primary.pending_for_target(to).await;
        let fallback = self.fallback.pending_for_target(to).await;
        let mut rows = self.merge(primary, fallback)?;
        rows.sort_by(compare_oldest_first);
        Ok(rows)
    }

    async fn purge(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        let primary = self.primary.purge(q).await;
        let fallback = self.fallback.purge(q).await?;
        self.refresh_spooled().await;
        match primary {
            Ok(n) => Ok(n + fallback),
            Err(e) => {
                if e.is_unavailable() {
                    self.mark_read_failure(&e);
                }
                Err(e)
            }
        }
    }

    async fn stats(&self) -> Result<DlqStats, DlqError> {
        let primary = self.primary.stats().await;
        let mut stats = self
            .primary_or_degrade(primary)?
            .unwrap_or_else(DlqStats::empty);
        stats.merge(&self.fallback.stats().await?);
        Ok(stats)
    }

    async fn cleanup(
        &self,
        now: i64,
        retention_ms: Option<i64>,
        max_entries: Option<u64>,
    ) -> Result<CleanupReport, DlqError> {
        let primary = self.primary.cleanup(now, retention_ms, max_entries).await;
        let fallback = self
            .fallback
            .cleanup(now, retention_ms, max_entries)
            .await?;
        self.refresh_spooled().await;
        match primary {
            Ok(p) => Ok(CleanupReport {
                expired: p.expired + fallback.expired,
                evicted_acknowledged: p.evicted_acknowledged + fallback.evicted_acknowledged,
                evicted_unacknowledged: p.evicted_unacknowledged + fallback.evicted_unacknowledged,
            }),
            Err(e) => {
                if e.is_unavailable() {
                    self.mark_failure(&e, now);
                }
                Err(e)
            }
        }
    }

    async fn close(&self) -> Result<(), DlqError> {
        let primary = self.primary.close().await;
        self.fallback.close().await?;
        primary
    }
}
