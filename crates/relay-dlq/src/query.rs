//! Filters and ordering for listing, counting and purging dead letters.
//!
//! The SQL backends translate a [`DlqQuery`] into parameterised SQL (see
//! `crate::sql`); the memory backend and [`ResilientDlq`](crate::ResilientDlq)
//! evaluate it in process with [`DlqQuery::matches`] and [`compare`]. Both
//! must agree, which the behavioural test suite checks.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::types::{DeadLetter, DlqState, FailureReason};

/// Rows returned by [`DlqStore::query`](crate::DlqStore::query) when
/// [`DlqQuery::limit`] is `None`.
pub const DEFAULT_QUERY_LIMIT: usize = 100;

/// Sort key of a query. Only these keys exist, so no caller-supplied text is
/// ever put into SQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlqOrder {
    /// When the letter entered the queue (default).
    #[default]
    DlqTs,
    /// Timestamp of the original message.
    OriginalTs,
    /// Delivery attempts before dead-lettering.
    AttemptCount,
    /// When the next retry is due; letters with no retry scheduled sort
    /// last in both directions.
    NextRetryAt,
}

/// Selects dead letters. Every filter that is set must match; the default
/// query matches everything, newest first, at most [`DEFAULT_QUERY_LIMIT`]
/// rows.
///
/// Ties on the sort key are broken by `dlq_ts`, then by `id`, in the same
/// direction, so results are deterministic and identical on every backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DlqQuery {
    /// Target (`to`) equals.
    pub to: Option<String>,
    /// Sender equals.
    pub from: Option<String>,
    /// Reason equals.
    pub reason: Option<FailureReason>,
    /// State equals.
    pub state: Option<DlqState>,
    /// Acknowledged flag equals.
    pub acknowledged: Option<bool>,
    /// `dlq_ts >= since_ts`.
    pub since_ts: Option<i64>,
    /// `dlq_ts < until_ts`.
    pub until_ts: Option<i64>,
    /// Id is one of these (exact ids; an empty list matches nothing).
    pub ids: Option<Vec<String>>,
    /// Maximum rows returned by `query` (default [`DEFAULT_QUERY_LIMIT`];
    /// `Some(usize::MAX)` for all). Ignored by `count` and `purge`.
    pub limit: Option<usize>,
    /// Rows skipped by `query`. Ignored by `count` and `purge`.
    pub offset: usize,
    /// Sort key.
    pub order_by: DlqOrder,
    /// Sort direction (default `true`: largest first).
    pub descending: bool,
}

impl Default for DlqQuery {
    fn default() -> Self {
        DlqQuery {
            to: None,
            from: None,
            reason: None,
            state: None,
            acknowledged: None,
            since_ts: None,
            until_ts: None,
            ids: None,
            limit: None,
            offset: 0,
            order_by: DlqOrder::DlqTs,
            descending: true,
        }
    }
}

impl DlqQuery {
    /// Query matching everything (same as `default()`).
    pub fn all() -> Self {
        DlqQuery::default()
    }

    /// Letters for one target.
    pub fn for_target(to: impl Into<String>) -> Self {
        DlqQuery {
            to: Some(to.into()),
            ..DlqQuery::default()
        }
    }

    /// Letters with exactly these ids.
    pub fn by_ids(ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        DlqQuery {
            ids: Some(ids.into_iter().map(Into::into).collect()),
            ..DlqQuery::default()
        }
    }

    /// `limit` with the default applied.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_QUERY_LIMIT)
    }

    /// True when `letter` passes every filter (limit/offset/order ignored).
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.to.as_ref().is_none_or(|to| &letter.to == to)
            && self.from.as_ref().is_none_or(|from| &letter.from == from)
            && self.reason.is_none_or(|r| letter.reason == r)
            && self.state.is_none_or(|s| letter.state == s)
            && self.acknowledged.is_none_or(|a| letter.acknowledged == a)
            && self.since_ts.is_none_or(|t| letter.dlq_ts >= t)
            && self.until_ts.is_none_or(|t| letter.dlq_ts < t)
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| id == &letter.id))
    }

    /// Sort `letters` by this query's order, then apply offset and limit.
    pub(crate) fn sort_and_page(&self, mut letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
        letters.sort_by(|a, b| compare(a, b, self.order_by, self.descending));
        letters
            .into_iter()
            .skip(self.offset)
            .take(self.effective_limit())
            .collect()
    }
}

/// Total order used by every backend: the sort key (for `NextRetryAt`, a
/// missing value sorts last in both directions), then `dlq_ts`, then `id`
/// (byte order), all in the requested direction.
pub fn compare(a: &DeadLetter, b: &DeadLetter, order: DlqOrder, descending: bool) -> Ordering {
    let directed = |o: Ordering| if descending { o.reverse() } else { o };
    let key = match order {
        DlqOrder::DlqTs => Ordering::Equal,
        DlqOrder::OriginalTs => directed(a.original_ts.cmp(&b.original_ts)),
        DlqOrder::AttemptCount => directed(a.attempt_count.cmp(&b.attempt_count)),
        DlqOrder::NextRetryAt => match (a.next_retry_at, b.next_retry_at) {
            (Some(x), Some(y)) => directed(x.cmp(&y)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
    };
    key.then_with(|| directed(a.dlq_ts.cmp(&b.dlq_ts)))
        .then_with(|| directed(a.id.as_bytes().cmp(b.id.as_bytes())))
}

/// Order of [`DlqStore::due_for_retry`](crate::DlqStore::due_for_retry):
/// `next_retry_at` ascending, then `dlq_ts`, then `id`.
pub(crate) fn compare_due(a: &DeadLetter, b: &DeadLetter) -> Ordering {
    compare(a, b, DlqOrder::NextRetryAt, false)
}

/// Order of [`DlqStore::pending_for_target`](crate::DlqStore::pending_for_target):
/// `dlq_ts` ascending, then `id`.
pub(crate) fn compare_oldest_first(a: &DeadLetter, b: &DeadLetter) -> Ordering {
    compare(a, b, DlqOrder::DlqTs, false)
}

/// True when `letter` is due for an automatic retry at `now`.
pub(crate) fn is_due(letter: &DeadLetter, now: i64, max_retries: i64) -> bool {
    letter.state == DlqState::Pending
        && !letter.acknowledged
        && letter.next_retry_at.is_some_and(|t| t <= now)
        && letter.dlq_retry_count < max_retries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_query_is_newest_first_with_a_limit() -> Result<(), serde_json::Error> {
        let q = DlqQuery::default();
        assert!(q.descending);
        assert_eq!(q.order_by, DlqOrder::DlqTs);
        assert_eq!(q.effective_limit(), DEFAULT_QUERY_LIMIT);
        assert_eq!(serde_json::from_str::<DlqQuery>("{}")?, q);
        let parsed: DlqQuery = serde_json::from_str(
            r#"{"to":"bob","orderBy":"next_retry_at","descending":false,"limit":5,"offset":2}"#,
        )?;
        assert_eq!(parsed.to.as_deref(), Some("bob"));
        assert_eq!(parsed.order_by, DlqOrder::NextRetryAt);
        assert!(!parsed.descending);
        assert_eq!((parsed.limit, parsed.offset), (Some(5), 2));
        assert!(serde_json::from_str::<DlqQuery>(r#"{"orderBy":"body; DROP"}"#).is_err());
        Ok(())
    }
}
