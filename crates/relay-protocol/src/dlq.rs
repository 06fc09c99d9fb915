//! Dead letter queue requests (`DLQ_*`), an extension of this project.
//!
//! Letters and statistics travel as JSON objects whose shape is defined by the daemon's dead
//! letter store (`relay-dlq`) and documented in `docs/PROTOCOL.md`; this crate only carries them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which dead letters a request applies to. Every field narrows the selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DlqFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A failure reason: max_retries_exceeded, ttl_expired, connection_lost, target_not_found,
    /// rate_limited, signature_invalid, payload_too_large, unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// pending, replaying, delivered or exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<bool>,
    /// Dead-lettered at or after this time (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl DlqFilter {
    /// True when no field narrows the selection.
    pub fn is_empty(&self) -> bool {
        self.to.is_none()
            && self.from.is_none()
            && self.reason.is_none()
            && self.state.is_none()
            && self.acknowledged.is_none()
            && self.since_ts.is_none()
            && self.until_ts.is_none()
            && self.ids.is_none()
    }
}

/// DLQ_LIST → DLQ_LIST_RESPONSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DlqListResponsePayload {
    pub letters: Vec<Value>,
    /// Matching letters in all, ignoring limit and offset.
    pub total: u64,
}

/// DLQ_GET `{id}` (full id or unique prefix) → DLQ_GET_RESPONSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DlqGetPayload {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DlqGetResponsePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// DLQ_STATS `{}` → DLQ_STATS_RESPONSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DlqStatsResponsePayload {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
    /// Backend name, degraded flag, spooled letters, last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Value>,
    /// Counters since the daemon started (added, replayed, delivered, exhausted, evicted, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Value>,
}

/// DLQ_REPLAY, DLQ_ACK and DLQ_PURGE: a filter, or `all: true` to mean every letter. An empty
/// filter without `all` is refused, so nothing is replayed or deleted by accident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DlqSelectPayload {
    #[serde(flatten)]
    pub filter: DlqFilter,
    #[serde(default)]
    pub all: bool,
    /// DLQ_ACK: who acknowledges (default: the requesting connection's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The answer to DLQ_REPLAY, DLQ_ACK and DLQ_PURGE: how many letters were affected, and which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DlqCountResponsePayload {
    pub count: u64,
    #[serde(default)]
    pub ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_payload_is_flat() {
        let p: DlqSelectPayload =
            serde_json::from_str(r#"{"to":"Bob","reason":"ttl_expired","sinceTs":5,"all":false}"#)
                .unwrap();
        assert_eq!(p.filter.to.as_deref(), Some("Bob"));
        assert_eq!(p.filter.since_ts, Some(5));
        assert!(!p.filter.is_empty());
        assert!(DlqSelectPayload::default().filter.is_empty());
        assert_eq!(
            serde_json::to_string(&DlqSelectPayload::default()).unwrap(),
            r#"{"all":false}"#
        );
    }
}

/// CONSENSUS_LIST `{status?, participant?}` (pending-for-agent = `{status:"pending", participant}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConsensusListPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConsensusListResponsePayload {
    pub proposals: Vec<Value>,
}

/// CONSENSUS_GET / CONSENSUS_CANCEL `{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConsensusIdPayload {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConsensusGetResponsePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to PROPOSAL_CREATE, VOTE and CONSENSUS_CANCEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusResponsePayload {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Value>,
}
