//! Records stored in the dead letter queue.
//!
//! JSON form: struct fields are `camelCase`, enum values use their
//! [`as_str`](FailureReason::as_str) spelling (`snake_case`), the same strings
//! the databases store.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a message ended up in the dead letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Delivery was retried until the retry budget ran out.
    MaxRetriesExceeded,
    /// The message outlived its time to live.
    TtlExpired,
    /// The target's connection dropped while the message was in flight.
    ConnectionLost,
    /// No agent or channel with the target name exists.
    TargetNotFound,
    /// The sender or target was rate limited.
    RateLimited,
    /// The message signature did not verify.
    SignatureInvalid,
    /// The message exceeded the size limit.
    PayloadTooLarge,
    /// Anything else.
    Unknown,
}

impl FailureReason {
    /// Every reason, in declaration order.
    pub const ALL: [FailureReason; 8] = [
        FailureReason::MaxRetriesExceeded,
        FailureReason::TtlExpired,
        FailureReason::ConnectionLost,
        FailureReason::TargetNotFound,
        FailureReason::RateLimited,
        FailureReason::SignatureInvalid,
        FailureReason::PayloadTooLarge,
        FailureReason::Unknown,
    ];

    /// Stored and serialised spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::MaxRetriesExceeded => "max_retries_exceeded",
            FailureReason::TtlExpired => "ttl_expired",
            FailureReason::ConnectionLost => "connection_lost",
            FailureReason::TargetNotFound => "target_not_found",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::SignatureInvalid => "signature_invalid",
            FailureReason::PayloadTooLarge => "payload_too_large",
            FailureReason::Unknown => "unknown",
        }
    }

    /// Parse a stored reason, mapping anything unrecognised (for instance a
    /// reason written by a newer build) to [`FailureReason::Unknown`].
    pub fn from_stored(s: &str) -> FailureReason {
        s.parse().unwrap_or(FailureReason::Unknown)
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown [`FailureReason`] or [`DlqState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct ParseEnumError {
    what: &'static str,
    value: String,
    expected: String,
}

impl ParseEnumError {
    fn new<'a>(what: &'static str, value: &str, expected: impl Iterator<Item = &'a str>) -> Self {
        ParseEnumError {
            what,
            value: value.to_string(),
            expected: expected.collect::<Vec<_>>().join(", "),
        }
    }
}

impl FromStr for FailureReason {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ParseEnumError::new(
                    "failure reason",
                    s,
                    FailureReason::ALL.iter().map(|r| r.as_str()),
                )
            })
    }
}

/// Where a dead letter is in its retry life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlqState {
    /// Waiting for a retry (or for an operator).
    Pending,
    /// Handed back to the router; the outcome is not known yet.
    Replaying,
    /// A replay reached the target. Final.
    Delivered,
    /// No further retries will be made. Final.
    Exhausted,
}

impl DlqState {
    /// Every state, in declaration order.
    pub const ALL: [DlqState; 4] = [
        DlqState::Pending,
        DlqState::Replaying,
        DlqState::Delivered,
        DlqState::Exhausted,
    ];

    /// Stored and serialised spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DlqState::Pending => "pending",
            DlqState::Replaying => "replaying",
            DlqState::Delivered => "delivered",
            DlqState::Exhausted => "exhausted",
        }
    }

    /// True for [`DlqState::Delivered`] and [`DlqState::Exhausted`].
    pub fn is_final(self) -> bool {
        matches!(self, DlqState::Delivered | DlqState::Exhausted)
    }
}

impl fmt::Display for DlqState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DlqState {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DlqState::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ParseEnumError::new("dlq state", s, DlqState::ALL.iter().map(|r| r.as_str()))
            })
    }
}

/// A message the daemon could not deliver, as handed to
/// [`DlqStore::add`](crate::DlqStore::add). It carries the whole original
/// message so that a replay is exact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDeadLetter {
    /// Id of the original message.
    pub message_id: String,
    /// Frame type of the original message: `SEND` or `DELIVER`.
    pub msg_type: String,
    /// Sender.
    pub from: String,
    /// The target this copy could not reach.
    pub to: String,
    /// Original recipient when `to` came from a fan-out (`*`, `#channel`).
    pub original_to: Option<String>,
    /// Topic of the original message.
    pub topic: Option<String>,
    /// Payload kind (`message`, `action`, ...).
    pub kind: String,
    /// Payload body.
    pub body: String,
    /// Payload data.
    pub data: Option<serde_json::Value>,
    /// Payload metadata (importance, reply-to, ...).
    pub payload_meta: Option<serde_json::Value>,
    /// Any other payload fields, kept verbatim.
    pub payload_extra: Option<serde_json::Value>,
    /// Thread id.
    pub thread: Option<String>,
    /// Message signature.
    pub sig: Option<serde_json::Value>,
    /// Timestamp of the original message (ms since the Unix epoch).
    pub original_ts: i64,
    /// Why delivery failed.
    pub reason: FailureReason,
    /// Error text of the last failure.
    pub error_message: Option<String>,
    /// Delivery attempts made before the message was dead-lettered.
    pub attempt_count: i64,
    /// Time to live of the original message in milliseconds.
    pub ttl_ms: Option<i64>,
}

impl NewDeadLetter {
    /// A `SEND` of kind `message` with every optional field empty.
    pub fn new(
        message_id: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        body: impl Into<String>,
        original_ts: i64,
        reason: FailureReason,
    ) -> Self {
        NewDeadLetter {
            message_id: message_id.into(),
            msg_type: "SEND".into(),
            from: from.into(),
            to: to.into(),
            original_to: None,
            topic: None,
            kind: "message".into(),
            body: body.into(),
            data: None,
            payload_meta: None,
            payload_extra: None,
            thread: None,
            sig: None,
            original_ts,
            reason,
            error_message: None,
            attempt_count: 0,
            ttl_ms: None,
        }
    }
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// `dlq_` followed by 24 random hex digits.
    pub id: String,
    /// Id of the original message.
    pub message_id: String,
    /// Frame type of the original message: `SEND` or `DELIVER`.
    pub msg_type: String,
    /// Sender.
    pub from: String,
    /// The target this copy could not reach.
    pub to: String,
    /// Original recipient when `to` came from a fan-out.
    pub original_to: Option<String>,
    /// Topic of the original message.
    pub topic: Option<String>,
    /// Payload kind.
    pub kind: String,
    /// Payload body.
    pub body: String,
    /// Payload data.
    pub data: Option<serde_json::Value>,
    /// Payload metadata.
    pub payload_meta: Option<serde_json::Value>,
    /// Other payload fields.
    pub payload_extra: Option<serde_json::Value>,
    /// Thread id.
    pub thread: Option<String>,
    /// Message signature.
    pub sig: Option<serde_json::Value>,
    /// Timestamp of the original message.
    pub original_ts: i64,
    /// Why delivery failed (latest failure).
    pub reason: FailureReason,
    /// Error text of the latest failure.
    pub error_message: Option<String>,
    /// Delivery attempts made before dead-lettering (latest failure).
    pub attempt_count: i64,
    /// Time to live of the original message in milliseconds.
    pub ttl_ms: Option<i64>,
    /// When the letter was (last) added to the queue.
    pub dlq_ts: i64,
    /// When the latest replay started.
    pub last_attempt_ts: Option<i64>,
    /// Replays started from the queue.
    pub dlq_retry_count: i64,
    /// Retry life-cycle state.
    pub state: DlqState,
    /// When the next automatic retry is due; `None` means never.
    pub next_retry_at: Option<i64>,
    /// Whether an operator (or a delivery) acknowledged the letter.
    pub acknowledged: bool,
    /// When it was acknowledged.
    pub acknowledged_ts: Option<i64>,
    /// Who acknowledged it (`delivery` for a successful replay).
    pub acknowledged_by: Option<String>,
}

impl DeadLetter {
    /// A fresh `Pending` letter built from `letter`, with a new id.
    pub fn from_new(letter: NewDeadLetter, now: i64, next_retry_at: Option<i64>) -> Self {
        DeadLetter {
            id: new_id(),
            message_id: letter.message_id,
            msg_type: letter.msg_type,
            from: letter.from,
            to: letter.to,
            original_to: letter.original_to,
            topic: letter.topic,
            kind: letter.kind,
            body: letter.body,
            data: letter.data,
            payload_meta: letter.payload_meta,
            payload_extra: letter.payload_extra,
            thread: letter.thread,
            sig: letter.sig,
            original_ts: letter.original_ts,
            reason: letter.reason,
            error_message: letter.error_message,
            attempt_count: letter.attempt_count,
            ttl_ms: letter.ttl_ms,
            dlq_ts: now,
            last_attempt_ts: None,
            dlq_retry_count: 0,
            state: DlqState::Pending,
            next_retry_at,
            acknowledged: false,
            acknowledged_ts: None,
            acknowledged_by: None,
        }
    }

    /// The original message, as handed to [`DlqStore::add`](crate::DlqStore::add).
    pub fn to_new(&self) -> NewDeadLetter {
        NewDeadLetter {
            message_id: self.message_id.clone(),
            msg_type: self.msg_type.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            original_to: self.original_to.clone(),
            topic: self.topic.clone(),
            kind: self.kind.clone(),
            body: self.body.clone(),
            data: self.data.clone(),
            payload_meta: self.payload_meta.clone(),
            payload_extra: self.payload_extra.clone(),
            thread: self.thread.clone(),
            sig: self.sig.clone(),
            original_ts: self.original_ts,
            reason: self.reason,
            error_message: self.error_message.clone(),
            attempt_count: self.attempt_count,
            ttl_ms: self.ttl_ms,
        }
    }

    /// True when retention and overflow eviction treat the letter as handled:
    /// acknowledged, or in a final state.
    pub fn is_settled(&self) -> bool {
        self.acknowledged || self.state.is_final()
    }
}

/// Aggregate numbers over the whole queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqStats {
    /// Letters stored.
    pub total: u64,
    /// Letters not acknowledged.
    pub unacknowledged: u64,
    /// Letters per reason; all eight reasons are present (0 if none).
    pub by_reason: BTreeMap<String, u64>,
    /// Letters per target, for every target with at least one letter.
    pub by_target: BTreeMap<String, u64>,
    /// Letters per state; all four states are present (0 if none).
    pub by_state: BTreeMap<String, u64>,
    /// Smallest `dlq_ts` among unacknowledged letters.
    pub oldest_ts: Option<i64>,
    /// Largest `dlq_ts` among unacknowledged letters.
    pub newest_ts: Option<i64>,
    /// Sum of `dlq_retry_count`.
    pub total_retries: u64,
    /// `total_retries / total` (0 when empty).
    pub avg_retry_count: f64,
}

impl DlqStats {
    /// Empty statistics with every reason and state key present.
    pub fn empty() -> Self {
        DlqStats {
            by_reason: FailureReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), 0))
                .collect(),
            by_state: DlqState::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            ..DlqStats::default()
        }
    }

    /// Recompute `avg_retry_count` from `total_retries` and `total`.
    pub(crate) fn finish(&mut self) {
        self.avg_retry_count = if self.total == 0 {
            0.0
        } else {
            self.total_retries as f64 / self.total as f64
        };
    }

    /// Add `other` into `self` (counts summed, oldest/newest widened).
    pub(crate) fn merge(&mut self, other: &DlqStats) {
        self.total += other.total;
        self.unacknowledged += other.unacknowledged;
        for (map, theirs) in [
            (&mut self.by_reason, &other.by_reason),
            (&mut self.by_target, &other.by_target),
            (&mut self.by_state, &other.by_state),
        ] {
            for (key, n) in theirs {
                *map.entry(key.clone()).or_insert(0) += n;
            }
        }
        self.oldest_ts = min_opt(self.oldest_ts, other.oldest_ts);
        self.newest_ts = max_opt(self.newest_ts, other.newest_ts);
        self.total_retries += other.total_retries;
        self.finish();
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What a [`DlqStore::cleanup`](crate::DlqStore::cleanup) pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    /// Settled letters (acknowledged or final) older than the retention.
    pub expired: u64,
    /// Settled letters evicted because the queue was over `max_entries`.
    pub evicted_acknowledged: u64,
    /// Unsettled letters (unacknowledged, `Pending`/`Replaying`) evicted
    /// because the queue was still over `max_entries`: these were never
    /// handled, so the daemon should alert on them.
    pub evicted_unacknowledged: u64,
}

impl CleanupReport {
    /// Letters deleted in total.
    pub fn total(&self) -> u64 {
        self.expired + self.evicted_acknowledged + self.evicted_unacknowledged
    }
}

/// Health of a [`ResilientDlq`](crate::ResilientDlq).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqHealth {
    /// Backend name of the primary store.
    pub backend: String,
    /// True while writes go to the local spool instead of the primary.
    pub degraded: bool,
    /// Latest primary error, kept until the primary answers again.
    pub last_error: Option<String>,
    /// Letters waiting in the spool (as of the latest spool write or drain).
    pub spooled: u64,
    /// `now` of the failure that started the current degraded period.
    pub degraded_since: Option<i64>,
    /// False until the spool has been counted (by a drain or a spool write).
    /// Until then `spooled` is unknown and reads 0, yet the spool may hold
    /// letters left by an earlier run: drain before trusting `degraded` and
    /// `spooled`.
    #[serde(default)]
    pub spool_checked: bool,
}

/// A new dead letter id: `dlq_` and 24 random lowercase hex digits.
pub fn new_id() -> String {
    format!("dlq_{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_text_and_json() {
        for reason in FailureReason::ALL {
            assert_eq!(reason.as_str().parse::<FailureReason>(), Ok(reason));
            assert_eq!(
                serde_json::to_string(&reason).ok(),
                Some(format!("\"{}\"", reason.as_str()))
            );
            assert_eq!(FailureReason::from_stored(reason.as_str()), reason);
        }
        assert_eq!(
            FailureReason::from_stored("from_the_future"),
            FailureReason::Unknown
        );
        let err = "nope".parse::<FailureReason>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_retries_exceeded")));
    }

    #[test]
    fn states_round_trip_and_know_which_are_final() {
        for state in DlqState::ALL {
            assert_eq!(state.as_str().parse::<DlqState>(), Ok(state));
            assert_eq!(
                serde_json::to_string(&state).ok(),
                Some(format!("\"{}\"", state.as_str()))
            );
        }
        assert!("Pending".parse::<DlqState>().is_err());
        let finals: Vec<DlqState> = DlqState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [DlqState::Delivered, DlqState::Exhausted]);
    }

    #[test]
    fn records_serialise_in_camel_case() -> Result<(), serde_json::Error> {
        let mut letter =
            NewDeadLetter::new("m-1", "alice", "bob", "hi", 5, FailureReason::TtlExpired);
        letter.payload_meta = Some(serde_json::json!({"k": 1}));
        let stored = DeadLetter::from_new(letter.clone(), 10, Some(20));
        let json = serde_json::to_value(&stored)?;
        for key in [
            "messageId",
            "msgType",
            "payloadMeta",
            "dlqTs",
            "nextRetryAt",
            "dlqRetryCount",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["reason"], "ttl_expired");
        assert_eq!(json["state"], "pending");
        let back: DeadLetter = serde_json::from_value(json)?;
        assert_eq!(back, stored);
        assert_eq!(back.to_new(), letter);
        Ok(())
    }

    #[test]
    fn ids_are_prefixed_random_hex() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a.starts_with("dlq_"));
        assert!(a[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn stats_merge_adds_and_widens() {
        let mut a = DlqStats::empty();
        a.total = 2;
        a.unacknowledged = 1;
        a.total_retries = 2;
        a.oldest_ts = Some(10);
        a.newest_ts = Some(10);
        a.by_target.insert("bob".into(), 2);
        let mut b = DlqStats::empty();
        b.total = 2;
        b.unacknowledged = 2;
        b.total_retries = 4;
        b.oldest_ts = Some(5);
        b.newest_ts = Some(7);
        b.by_target.insert("bob".into(), 1);
        b.by_target.insert("carol".into(), 1);
        a.merge(&b);
        assert_eq!(a.total, 4);
        assert_eq!(a.unacknowledged, 3);
        assert_eq!(a.oldest_ts, Some(5));
        assert_eq!(a.newest_ts, Some(10));
        assert_eq!(a.by_target["bob"], 3);
        assert_eq!(a.by_target["carol"], 1);
        assert_eq!(a.by_reason.len(), 8);
        assert!((a.avg_retry_count - 1.5).abs() < 1e-9);
    }
}
