//! Context compaction requests (`CONTEXT`), an extension of this project.
//!
//! The daemon keeps each agent's relay conversation and, when it grows past a token budget,
//! compacts it and hands the agent the compacted context (see `docs/COMPACTION.md`). `CONTEXT`
//! shows an agent's history size, its stored snapshot, and can force a compaction or a delivery.

use serde::{Deserialize, Serialize};

/// CONTEXT `{agent, compact?, inject?}` → CONTEXT_RESPONSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContextPayload {
    pub agent: String,
    /// Compact the agent's history now and store the result as its snapshot. A history above
    /// the target (not only above the threshold) is compacted down to the target; one already
    /// at or under the target is stored as it is (outcome `not_needed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<bool>,
    /// Deliver the (new or stored) snapshot to the agent now, as the automatic delivery would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<bool>,
}

/// What one compaction strategy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompactionStepReport {
    /// `deduplicate`, `trim_low_importance`, `summarize` or `aggressive`.
    pub strategy: String,
    /// Messages taken out (for `summarize`: folded into the summary).
    pub messages_removed: u64,
    /// Messages added (1 for a summary).
    pub messages_added: u64,
    pub tokens_before: u64,
    pub tokens_after: u64,
}

/// How a compaction went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompactionReport {
    /// `reached`, `not_needed` or `cannot_reach_target`.
    pub outcome: String,
    /// For `cannot_reach_target`: why, and what to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `threshold` (the history crossed it) or `request` (CONTEXT `compact:true`).
    pub trigger: String,
    pub original_messages: u64,
    pub original_tokens: u64,
    /// Messages in the compacted history (a summary counts as one).
    pub messages_kept: u64,
    pub final_tokens: u64,
    pub target_tokens: u64,
    /// The strategies that ran, in order.
    pub steps: Vec<CompactionStepReport>,
    /// The summariser used by `summarize`, if it ran: `built_in`, `external`, or
    /// `built_in_after_external_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarizer: Option<String>,
    /// Why the external summariser's output was not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarizer_error: Option<String>,
    pub duration_ms: u64,
}

/// An agent's stored context snapshot (the latest compacted context).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContextSnapshotInfo {
    pub id: String,
    /// Epoch milliseconds.
    pub created_at: u64,
    pub tokens: u64,
    pub original_tokens: u64,
    pub target_tokens: u64,
    /// Messages in the compacted history (a summary counts as one).
    pub message_count: u64,
    /// `reached`, `not_needed` or `cannot_reach_target`.
    pub outcome: String,
    /// The context text as delivered to the agent.
    pub content: String,
    pub report: CompactionReport,
}

/// CONTEXT_RESPONSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContextResponsePayload {
    pub agent: String,
    /// Messages in the agent's history as the daemon holds it (compacted parts included).
    pub history_messages: u64,
    pub history_tokens: u64,
    pub max_tokens: u64,
    /// Above this many tokens the history is compacted.
    pub threshold_tokens: u64,
    /// Compaction aims at this many tokens or fewer.
    pub target_tokens: u64,
    pub needs_compaction: bool,
    /// `o200k` or `heuristic`.
    pub tokenizer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<ContextSnapshotInfo>,
    /// With `compact:true`: the report of the compaction just run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CompactionReport>,
    /// With `inject:true`: `delivered`, `deferred` (a sync wait involving the agent is pending;
    /// delivered when it clears) or `offline` (delivered when the agent connects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_are_camel_case_and_sparse() {
        let p: ContextPayload =
            serde_json::from_str(r#"{"agent":"Bob","compact":true}"#).expect("decodes");
        assert_eq!(p.compact, Some(true));
        assert_eq!(p.inject, None);
        assert_eq!(
            serde_json::to_string(&ContextPayload {
                agent: "Bob".into(),
                ..Default::default()
            })
            .expect("encodes"),
            r#"{"agent":"Bob"}"#
        );
        let r = ContextResponsePayload {
            agent: "Bob".into(),
            history_messages: 3,
            ..Default::default()
        };
        let v = serde_json::to_value(&r).expect("encodes");
        assert_eq!(v["historyMessages"], 3);
        assert!(v.get("snapshot").is_none());
        assert!(v.get("needsCompaction").is_some());
    }
}
