//! Conversions: routed messages and stored rows into history messages, compaction results into
//! reports and stored snapshots, snapshots into what CONTEXT and the delivered message show.

use relay_compaction::{
    render_context, CompactionOutcome, CompactionResult, HistoryMessage, MessageRole,
    SummarizerUsed,
};
use relay_protocol::{CompactionReport, CompactionStepReport, ContextSnapshotInfo};
use relay_store::{ContextSnapshot, StoredMessage};

use super::EventFields;

/// Why a compaction ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The history crossed the threshold.
    Threshold,
    /// `CONTEXT{compact:true}`.
    Request,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Threshold => "threshold",
            Trigger::Request => "request",
        }
    }
}

/// A routed message as a history message.
pub(super) fn from_event(e: &EventFields<'_>) -> HistoryMessage {
    let mut m = HistoryMessage::new(e.id, e.from, e.to, e.body, e.ts).with_kind(e.kind);
    m.thread = e.thread.map(str::to_string);
    m.channel = e.channel.map(str::to_string);
    m.importance = e.importance.map(|i| i.min(100));
    if e.system {
        m.role = MessageRole::System;
    }
    m
}

/// The id a stored row has in histories: the SEND's id, which every copy of a broadcast shares.
pub(super) fn history_id(row: &StoredMessage) -> &str {
    row.source_id.as_deref().unwrap_or(&row.id)
}

/// A stored row as a history message (used when a history is rebuilt after a restart).
pub(super) fn from_row(row: &StoredMessage) -> HistoryMessage {
    let to = row.original_to.clone().unwrap_or_else(|| row.to.clone());
    let mut m = HistoryMessage::new(
        history_id(row).to_string(),
        row.from.clone(),
        to,
        row.body.clone(),
        u64::try_from(row.ts).unwrap_or(0),
    )
    .with_kind(row.kind.clone());
    m.thread = row.thread.clone();
    if row.is_channel() {
        m.channel = Some(row.to.clone());
    }
    m.importance = row
        .payload_meta
        .as_ref()
        .and_then(|p| p.get("importance"))
        .and_then(|i| i.as_u64())
        .map(|i| u8::try_from(i.min(100)).unwrap_or(100));
    let task = row
        .data
        .as_ref()
        .and_then(|d| d.get("_spawnTask"))
        .and_then(|v| v.as_bool())
        == Some(true);
    if task {
        m.role = MessageRole::System;
    }
    m
}

pub(super) fn outcome_name(o: &CompactionOutcome) -> &'static str {
    match o {
        CompactionOutcome::NotNeeded => "not_needed",
        CompactionOutcome::Reached => "reached",
        CompactionOutcome::CannotReachTarget { .. } => "cannot_reach_target",
    }
}

/// The report of one compaction, as CONTEXT shows it and the snapshot stores it.
pub(super) fn report_of(result: &CompactionResult, trigger: Trigger) -> CompactionReport {
    let (summarizer, summarizer_error) = match &result.summarizer_used {
        None => (None, None),
        Some(SummarizerUsed::BuiltIn) => (Some("built_in"), None),
        Some(SummarizerUsed::External) => (Some("external"), None),
        Some(SummarizerUsed::BuiltInAfterExternalFailed { error }) => (
            Some("built_in_after_external_failed"),
            Some(error.to_string()),
        ),
    };
    CompactionReport {
        outcome: outcome_name(&result.outcome).to_string(),
        reason: match &result.outcome {
            CompactionOutcome::CannotReachTarget { reason, .. } => Some(reason.clone()),
            _ => None,
        },
        trigger: trigger.as_str().to_string(),
        original_messages: result.original_messages as u64,
        original_tokens: result.original_tokens as u64,
        messages_kept: result.messages.len() as u64,
        final_tokens: result.final_tokens as u64,
        target_tokens: result.target_tokens as u64,
        steps: result
            .steps
            .iter()
            .map(|s| CompactionStepReport {
                strategy: s.strategy.as_str().to_string(),
                messages_removed: s.messages_removed as u64,
                messages_added: s.messages_added as u64,
                tokens_before: s.tokens_before as u64,
                tokens_after: s.tokens_after as u64,
            })
            .collect(),
        summarizer: summarizer.map(str::to_string),
        summarizer_error,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The snapshot stored for `agent` after a compaction whose input ended at `covered_until`.
pub(super) fn snapshot_of(
    agent: &str,
    result: &CompactionResult,
    covered_until: u64,
    trigger: Trigger,
) -> ContextSnapshot {
    let report = report_of(result, trigger);
    ContextSnapshot {
        agent: agent.to_string(),
        id: format!("ctx_{}", relay_protocol::ids::new_id()),
        created_at: relay_protocol::now_ms() as i64,
        content: render_context(agent, result),
        tokens: result.final_tokens as i64,
        original_tokens: result.original_tokens as i64,
        target_tokens: result.target_tokens as i64,
        message_count: result.messages.len() as i64,
        outcome: report.outcome.clone(),
        report: serde_json::to_value(&report).unwrap_or_default(),
        messages: serde_json::to_value(&result.messages).unwrap_or_default(),
        covered_until: i64::try_from(covered_until).unwrap_or(i64::MAX),
    }
}

/// The compacted history a snapshot holds (empty if it cannot be read).
pub(super) fn messages_of(s: &ContextSnapshot) -> Vec<HistoryMessage> {
    match serde_json::from_value(s.messages.clone()) {
        Ok(messages) => messages,
        Err(e) => {
            tracing::warn!(agent = %s.agent, "ignoring a stored context snapshot's history: {e}");
            Vec::new()
        }
    }
}

/// A stored snapshot as CONTEXT shows it.
pub(super) fn info_of(s: &ContextSnapshot) -> ContextSnapshotInfo {
    ContextSnapshotInfo {
        id: s.id.clone(),
        created_at: u64::try_from(s.created_at).unwrap_or(0),
        tokens: u64::try_from(s.tokens).unwrap_or(0),
        original_tokens: u64::try_from(s.original_tokens).unwrap_or(0),
        target_tokens: u64::try_from(s.target_tokens).unwrap_or(0),
        message_count: u64::try_from(s.message_count).unwrap_or(0),
        outcome: s.outcome.clone(),
        content: s.content.clone(),
        report: serde_json::from_value(s.report.clone()).unwrap_or_default(),
    }
}

/// `data._contextCompaction` of the delivered message.
pub(super) fn delivery_info(s: &ContextSnapshot) -> serde_json::Value {
    let report: CompactionReport = serde_json::from_value(s.report.clone()).unwrap_or_default();
    let mut info = serde_json::json!({
        "snapshotId": s.id,
        "createdAt": s.created_at,
        "tokens": s.tokens,
        "originalTokens": s.original_tokens,
        "targetTokens": s.target_tokens,
        "outcome": s.outcome,
        "messagesKept": s.message_count,
        "originalMessages": report.original_messages,
        "trigger": report.trigger,
    });
    // Optional fields are left out rather than sent as null (PROTOCOL §2).
    if let Some(map) = info.as_object_mut() {
        if let Some(reason) = report.reason {
            map.insert("reason".into(), serde_json::json!(reason));
        }
        if let Some(summarizer) = report.summarizer {
            map.insert("summarizer".into(), serde_json::json!(summarizer));
        }
    }
    info
}
