//! Router counters, reported by METRICS and `agent-relay status`.

use serde::Serialize;

/// Monotonic counters owned by the router task (no atomics needed: one writer).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub connections_total: u64,
    pub takeovers: u64,
    pub delivered: u64,
    pub acked: u64,
    pub redelivered: u64,
    pub replayed: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub queued_offline: u64,
    pub unknown_recipient: u64,
    pub rate_limited: u64,
    pub backpressure_refusals: u64,
    pub busy_sent: u64,
    pub nacks_sent: u64,
    pub duplicate_sends: u64,
    pub unmatched_acks: u64,
    pub refused_by_recipient: u64,
    pub sync_completed: u64,
    pub sync_timeouts: u64,
    pub shadow_copies: u64,
    pub channel_messages: u64,
    pub congestion_events: u64,
    pub frames_dropped_slow_consumer: u64,
    pub store_rejections: u64,
    pub queries: u64,
    pub dlq_replays: u64,
    pub consensus_proposals: u64,
    pub consensus_votes: u64,
    pub signatures_verified: u64,
    pub signatures_rejected: u64,
    pub spawned: u64,
    pub spawn_crashes: u64,
}
