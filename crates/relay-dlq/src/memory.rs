//! Volatile in-process backend with the same behaviour as the SQL ones.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::DlqError;
use crate::query::{compare_due, compare_oldest_first, is_due, DlqQuery};
use crate::store::{DlqStore, DELIVERY_ACKNOWLEDGER};
use crate::types::{CleanupReport, DeadLetter, DlqState, DlqStats, NewDeadLetter};

/// Dead letters kept in memory; everything is lost when it is dropped.
#[derive(Debug)]
pub struct MemoryDlq {
    inner: Mutex<Option<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Letters by id.
    rows: HashMap<String, DeadLetter>,
    /// `(message_id, to)` -> id.
    keys: HashMap<(String, String), String>,
}

impl Inner {
    fn insert(&mut self, letter: DeadLetter) -> DeadLetter {
        self.keys.insert(
            (letter.message_id.clone(), letter.to.clone()),
            letter.id.clone(),
        );
        self.rows.insert(letter.id.clone(), letter.clone());
        letter
    }

    fn remove(&mut self, id: &str) -> bool {
        match self.rows.remove(id) {
            Some(letter) => {
                self.keys.remove(&(letter.message_id, letter.to));
                true
            }
            None => false,
        }
    }

    fn existing_id(&self, message_id: &str, to: &str) -> Option<String> {
        self.keys
            .get(&(message_id.to_string(), to.to_string()))
            .cloned()
    }

    /// Ids of the oldest (dlq_ts, id) letters passing `pick`.
    fn oldest_ids(&self, pick: impl Fn(&DeadLetter) -> bool, n: u64) -> Vec<String> {
        let mut candidates: Vec<&DeadLetter> = self.rows.values().filter(|l| pick(l)).collect();
        candidates.sort_by(|a, b| compare_oldest_first(a, b));
        candidates
            .into_iter()
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .map(|l| l.id.clone())
            .collect()
    }
}

impl Default for MemoryDlq {
    fn default() -> Self {
        MemoryDlq::new()
    }
}

impl MemoryDlq {
    /// An empty queue.
    pub fn new() -> Self {
        MemoryDlq {
            inner: Mutex::new(Some(Inner::default())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T, DlqError> {
        let mut guard: MutexGuard<'_, Option<Inner>> = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match guard.as_mut() {
            Some(inner) => Ok(f(inner)),
            None => Err(DlqError::Closed),
        }
    }
}

#[async_trait]
impl DlqStore for MemoryDlq {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn add(
        &self,
        letter: NewDeadLetter,
        now: i64,
        next_retry_at: Option<i64>,
    ) -> Result<DeadLetter, DlqError> {
        self.with(|inner| {
            let existing = inner
                .existing_id(&letter.message_id, &letter.to)
                .and_then(|id| inner.rows.get_mut(&id));
            match existing {
                Some(row) => {
                    row.reason = letter.reason;
                    row.error_message = letter.error_message;
                    row.attempt_count = letter.attempt_count;
                    row.dlq_ts = now;
                    row.next_retry_at = next_retry_at;
                    row.state = DlqState::Pending;
                    row.acknowledged = false;
                    row.acknowledged_ts = None;
                    row.acknowledged_by = None;
                    row.clone()
                }
                None => inner.insert(DeadLetter::from_new(letter, now, next_retry_at)),
            }
        })
    }

    async fn import(&self, letter: DeadLetter) -> Result<DeadLetter, DlqError> {
        self.with(|inner| {
            let existing = inner
                .existing_id(&letter.message_id, &letter.to)
                .and_then(|id| inner.rows.get(&id).cloned());
            match existing {
                Some(old) => {
                    let mut merged = letter;
                    merged.id = old.id;
                    merged.dlq_retry_count = merged.dlq_retry_count.max(old.dlq_retry_count);
                    merged.last_attempt_ts = match (merged.last_attempt_ts, old.last_attempt_ts) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    Ok(inner.insert(merged))
                }
                None if inner.rows.contains_key(&letter.id) => Err(DlqError::Corrupt(format!(
                    "cannot import {}: the id is already used by another message",
                    letter.id
                ))),
                None => Ok(inner.insert(letter)),
            }
        })?
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, DlqError> {
        self.with(|inner| {
            if id.is_empty() {
                return Ok(None);
            }
            if let Some(letter) = inner.rows.get(id) {
                return Ok(Some(letter.clone()));
            }
            let matches: Vec<&DeadLetter> = inner
                .rows
                .values()
                .filter(|l| l.id.starts_with(id))
                .collect();
            match matches.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some((*one).clone())),
                many => Err(DlqError::Ambiguous {
                    prefix: id.to_string(),
                    count: many.len() as u64,
                }),
            }
        })?
    }

    async fn query(&self, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError> {
        let rows = self.with(|inner| {
            inner
                .rows
                .values()
                .filter(|l| q.matches(l))
                .cloned()
                .collect::<Vec<_>>()
        })?;
        Ok(q.sort_and_page(rows))
    }

    async fn count(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        self.with(|inner| inner.rows.values().filter(|l| q.matches(l)).count() as u64)
    }

    async fn acknowledge(&self, ids: &[String], by: &str, now: i64) -> Result<u64, DlqError> {
        self.with(|inner| {
            let mut acked = 0;
            for id in ids {
                if let Some(row) = inner.rows.get_mut(id) {
                    if !row.acknowledged {
                        row.acknowledged = true;
                        row.acknowledged_ts = Some(now);
                        row.acknowledged_by = Some(by.to_string());
                        acked += 1;
                    }
                }
            }
            acked
        })
    }

    async fn set_state(
        &self,
        id: &str,
        state: DlqState,
        next_retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, DlqError> {
        self.with(|inner| {
            let Some(row) = inner.rows.get_mut(id) else {
                return false;
            };
            row.state = state;
            row.next_retry_at = next_retry_at;
            match state {
                DlqState::Replaying => {
                    row.dlq_retry_count += 1;
                    row.last_attempt_ts = Some(now);
                }
                DlqState::Delivered if !row.acknowledged => {
                    row.acknowledged = true;
                    row.acknowledged_ts = Some(now);
                    row.acknowledged_by = Some(DELIVERY_ACKNOWLEDGER.to_string());
                }
                _ => {}
            }
            true
        })
    }

    async fn due_for_retry(
        &self,
        now: i64,
        max_retries: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        let mut due = self.with(|inner| {
            inner
                .rows
                .values()
                .filter(|l| is_due(l, now, max_retries))
                .cloned()
                .collect::<Vec<_>>()
        })?;
        due.sort_by(compare_due);
        due.truncate(limit);
        Ok(due)
    }

    async fn pending_for_target(&self, to: &str) -> Result<Vec<DeadLetter>, DlqError> {
        let mut rows = self.with(|inner| {
            inner
                .rows
                .values()
                .filter(|l| l.to == to && l.state == DlqState::Pending && !l.acknowledged)
                .cloned()
                .collect::<Vec<_>>()
        })?;
        rows.sort_by(compare_oldest_first);
        Ok(rows)
    }

    async fn purge(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        self.with(|inner| {
            let ids: Vec<String> = inner
                .rows
                .values()
                .filter(|l| q.matches(l))
                .map(|l| l.id.clone())
                .collect();
            ids.iter().filter(|id| inner.remove(id)).count() as u64
        })
    }

    async fn stats(&self) -> Result<DlqStats, DlqError> {
        self.with(|inner| {
            let mut stats = DlqStats::empty();
            for letter in inner.rows.values() {
                stats.total += 1;
                *stats
                    .by_reason
                    .entry(letter.reason.as_str().to_string())
                    .or_insert(0) += 1;
                *stats.by_target.entry(letter.to.clone()).or_insert(0) += 1;
                *stats
                    .by_state
                    .entry(letter.state.as_str().to_string())
                    .or_insert(0) += 1;
                stats.total_retries += u64::try_from(letter.dlq_retry_count).unwrap_or(0);
                if !letter.acknowledged {
                    stats.unacknowledged += 1;
                    let ts = letter.dlq_ts;
                    stats.oldest_ts = Some(stats.oldest_ts.map_or(ts, |o| o.min(ts)));
                    stats.newest_ts = Some(stats.newest_ts.map_or(ts, |n| n.max(ts)));
                }
            }
            stats.finish();
            stats
        })
    }

    async fn cleanup(
        &self,
        now: i64,
        retention_ms: Option<i64>,
        max_entries: Option<u64>,
    ) -> Result<CleanupReport, DlqError> {
        self.with(|inner| {
            let mut report = CleanupReport::default();
            if let Some(retention) = retention_ms {
                let cutoff = now.saturating_sub(retention);
                let expired: Vec<String> = inner
                    .rows
                    .values()
                    .filter(|l| l.dlq_ts < cutoff && l.is_settled())
                    .map(|l| l.id.clone())
                    .collect();
                report.expired = expired.iter().filter(|id| inner.remove(id)).count() as u64;
            }
            if let Some(max) = max_entries {
                let excess = (inner.rows.len() as u64).saturating_sub(max);
                let settled = inner.oldest_ids(DeadLetter::is_settled, excess);
                report.evicted_acknowledged =
                    settled.iter().filter(|id| inner.remove(id)).count() as u64;
                let excess = (inner.rows.len() as u64).saturating_sub(max);
                let unsettled = inner.oldest_ids(|l| !l.is_settled(), excess);
                report.evicted_unacknowledged =
                    unsettled.iter().filter(|id| inner.remove(id)).count() as u64;
            }
            report
        })
    }

    async fn close(&self) -> Result<(), DlqError> {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = None;
        Ok(())
    }
}
