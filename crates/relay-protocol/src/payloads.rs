//! Typed payloads for every message type, field names exactly as in
//! `@agent-relay/protocol@2.1.14` (`dist/types.d.ts`).
//!
//! Optional fields are `Option` and omitted when `None`. Free-form maps (`data`, `payload_meta`
//! extras) are `serde_json::Map` so unknown keys survive a round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// `payload.kind` of SEND/DELIVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    #[default]
    Message,
    Action,
    State,
    Thinking,
}

impl PayloadKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PayloadKind::Message => "message",
            PayloadKind::Action => "action",
            PayloadKind::State => "state",
            PayloadKind::Thinking => "thinking",
        }
    }

    pub fn parse(s: &str) -> Option<PayloadKind> {
        Some(match s {
            "message" => PayloadKind::Message,
            "action" => PayloadKind::Action,
            "state" => PayloadKind::State,
            "thinking" => PayloadKind::Thinking,
            _ => return None,
        })
    }
}

/// `agent` (default) or `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EntityType {
    #[default]
    Agent,
    User,
}

impl EntityType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityType::Agent => "agent",
            EntityType::User => "user",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    #[serde(default)]
    pub ack: bool,
    #[serde(default)]
    pub resume: bool,
    #[serde(default)]
    pub max_inflight: u32,
    #[serde(default)]
    pub supports_topics: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HelloSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelloPayload {
    pub agent: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<EntityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<HelloSession>,
    #[serde(
        rename = "_isSystemComponent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_system_component: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub max_frame_bytes: usize,
    pub heartbeat_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WelcomePayload {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    pub server: ServerInfo,
}

/// Payload of SEND and DELIVER.
///
/// The fields are declared in alphabetical order, so that the payload is written with its
/// member names sorted: a signed message's payload is then canonical (RFC 8785) as sent, and
/// signer and daemon sign and check it as it stands instead of re-writing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendPayload {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Object>,
    pub kind: PayloadKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncMeta {
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub blocking: bool,
}

/// `payload_meta` of SEND/DELIVER; unknown keys are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SendMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_ack: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<u8>,
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncMeta>,
    #[serde(flatten)]
    pub extra: Object,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryInfo {
    pub seq: u64,
    #[serde(rename = "session_id")]
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AckPayload {
    #[serde(rename = "ack_id")]
    pub ack_id: String,
    #[serde(default)]
    pub seq: u64,
    #[serde(
        rename = "cumulative_seq",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cumulative_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sack: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_data: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NackCode {
    Busy,
    Invalid,
    Forbidden,
    Stale,
}

impl NackCode {
    /// The lower-case `reason` the original clients expect next to `code`.
    pub fn reason(&self) -> &'static str {
        match self {
            NackCode::Busy => "busy",
            NackCode::Invalid => "invalid",
            NackCode::Forbidden => "forbidden",
            NackCode::Stale => "stale",
        }
    }
}

/// How the message of a NACK BUSY from the daemon's per-sender rate limiter begins (the code is
/// shared with backpressure refusals, which a client handles differently: they are not about its
/// own sending rate).
pub const RATE_LIMIT_NACK_PREFIX: &str = "rate limit exceeded";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NackPayload {
    pub ack_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<NackCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl NackPayload {
    pub fn new(ack_id: impl Into<String>, code: NackCode, message: impl Into<String>) -> Self {
        NackPayload {
            ack_id: ack_id.into(),
            code: Some(code),
            reason: Some(code.reason().to_string()),
            message: Some(message.into()),
        }
    }

    /// Whether this NACK comes from the daemon's rate limiter ([`RATE_LIMIT_NACK_PREFIX`]).
    pub fn is_rate_limit(&self) -> bool {
        self.message
            .as_deref()
            .is_some_and(|m| m.starts_with(RATE_LIMIT_NACK_PREFIX))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusyPayload {
    pub retry_after_ms: u64,
    pub queue_depth: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PingPayload {
    #[serde(default)]
    pub nonce: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    Internal,
    ResumeTooOld,
    DuplicateConnection,
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub code: ErrorCode,
    pub message: String,
    pub fatal: bool,
    /// Extension: the id of the request envelope this error answers (a SEND, a query…).
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl ErrorPayload {
    pub fn new(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Self {
        ErrorPayload {
            code,
            message: message.into(),
            fatal,
            reply_to: None,
        }
    }

    pub fn replying_to(mut self, id: impl Into<String>) -> Self {
        self.reply_to = Some(id.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPayload {
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStream {
    pub topic: String,
    pub peer: String,
    pub last_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_last_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPayload {
    pub session_id: String,
    pub streams: Vec<SyncStream>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttachment {
    pub id: String,
    pub filename: String,
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelJoinPayload {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelLeavePayload {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessagePayload {
    pub channel: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<MessageAttachment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Object>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMember {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<EntityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfoPayload {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default)]
    pub members: Vec<ChannelMember>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_private: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMembersPayload {
    pub channel: String,
    pub members: Vec<ChannelMember>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelTypingPayload {
    pub channel: String,
    pub is_typing: bool,
}

/// Shadow trigger names.
pub const SPEAK_ON_TRIGGERS: &[&str] = &[
    "SESSION_END",
    "CODE_WRITTEN",
    "REVIEW_REQUEST",
    "EXPLICIT_ASK",
    "ALL_MESSAGES",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowBindPayload {
    pub primary_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speak_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_incoming: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_outgoing: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowUnbindPayload {
    pub primary_agent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SpawnPayload {
    pub name: String,
    pub cli: String,
    #[serde(default)]
    pub task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawner_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_triggers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_speak_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_workflow_conventions: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnPolicyDecision {
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_remaining: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnResultPayload {
    pub reply_to: String,
    pub success: bool,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_decision: Option<SpawnPolicyDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasePayload {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseResultPayload {
    pub reply_to: String,
    pub success: bool,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReadyPayload {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub connected_at: u64,
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    pub persistent: bool,
    pub driver: String,
    pub can_write: bool,
    pub can_read: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponsePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Milliseconds since the daemon started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_connected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// Extensions (socket path, pid, counters…), see docs/PROTOCOL.md.
    #[serde(flatten)]
    pub extra: Object,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct InboxPayload {
    #[serde(default)]
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxMessage {
    pub id: String,
    pub from: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    pub timestamp: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct InboxResponsePayload {
    pub messages: Vec<InboxMessage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MessagesQueryPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SortOrder>,
    /// Extension: also return channel messages (`to` = `#channel`). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_channels: Option<bool>,
}

/// One message as returned by MESSAGES_QUERY and MESSAGE_GET.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_broadcast: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Object>,
    // Extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MessagesResponsePayload {
    pub messages: Vec<MessageRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListAgentsPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_idle: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<u64>,
    // Extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<EntityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_received: Option<u64>,
    /// `online`, `offline`, or for a spawned agent `starting`, `running`, `stopping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ListAgentsResponsePayload {
    pub agents: Vec<AgentInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RemoveAgentPayload {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_messages: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RemoveAgentResponsePayload {
    pub success: bool,
    pub removed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_crashes: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_alerts: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthIssue {
    pub severity: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashRecord {
    pub id: String,
    pub agent_name: String,
    pub crashed_at: String,
    pub likely_cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub id: String,
    pub agent_name: String,
    pub alert_type: String,
    pub message: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthStats {
    pub total_crashes24h: u64,
    pub total_alerts24h: u64,
    pub agent_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponsePayload {
    pub health_score: u32,
    pub summary: String,
    pub issues: Vec<HealthIssue>,
    pub recommendations: Vec<String>,
    pub crashes: Vec<CrashRecord>,
    pub alerts: Vec<AlertRecord>,
    pub stats: HealthStats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricsPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentMetrics {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SystemMetrics {
    pub total_memory: u64,
    pub free_memory: u64,
    /// The daemon's resident set size in bytes.
    pub heap_used: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricsResponsePayload {
    pub agents: Vec<AgentMetrics>,
    pub system: SystemMetrics,
    /// Extension: daemon counters (routed, delivered, redelivered, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Object>,
}

/// Extension: MESSAGE_GET `{id}` looks a message up by id or unique id prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MessageGetPayload {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MessageGetResponsePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Extension: WATCH asks the daemon to copy every routed message (and optionally agent LOG
/// output) to this connection as WATCH_EVENT frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WatchPayload {
    #[serde(default = "yes")]
    pub messages: bool,
    #[serde(default)]
    pub logs: bool,
    /// Only events involving this agent (as sender or recipient, or its LOG output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum WatchEventPayload {
    Message(Box<MessageRecord>),
    Log {
        agent: String,
        data: String,
        timestamp: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_nacks_are_told_apart_from_backpressure() {
        let limited = NackPayload::new(
            "m1",
            NackCode::Busy,
            format!("{RATE_LIMIT_NACK_PREFIX} (500 msgs/s, burst 1000); retry after 3 ms"),
        );
        assert!(limited.is_rate_limit());
        let backpressure = NackPayload::new(
            "m2",
            NackCode::Busy,
            "storage is overloaded; not delivered to Bob, retry shortly",
        );
        assert!(!backpressure.is_rate_limit());
        let bare: NackPayload = serde_json::from_str(r#"{"ack_id":"m3"}"#).unwrap();
        assert!(!bare.is_rate_limit());
    }

    #[test]
    fn hello_from_the_npm_sdk_parses() {
        let p: HelloPayload = serde_json::from_str(
            r#"{"agent":"Alice","entityType":"user","cli":"claude","capabilities":{"ack":true,"resume":true,"max_inflight":256,"supports_topics":true},"session":{"resume_token":"tok"},"_isSystemComponent":true}"#,
        )
        .unwrap();
        assert_eq!(p.entity_type, Some(EntityType::User));
        assert_eq!(p.session.unwrap().resume_token.as_deref(), Some("tok"));
        assert_eq!(p.is_system_component, Some(true));
    }

    #[test]
    fn optional_fields_are_omitted() {
        let json = serde_json::to_string(&DeliveryInfo {
            seq: 3,
            session_id: "s".into(),
            original_to: None,
        })
        .unwrap();
        assert_eq!(json, r#"{"seq":3,"session_id":"s"}"#);
        let json = serde_json::to_string(&NackPayload::new(
            "m1",
            NackCode::Invalid,
            "unknown recipient",
        ))
        .unwrap();
        assert_eq!(
            json,
            r#"{"ack_id":"m1","code":"INVALID","reason":"invalid","message":"unknown recipient"}"#
        );
    }

    #[test]
    fn sync_ack_fields_use_the_sdk_spelling() {
        let ack: AckPayload = serde_json::from_str(
            r#"{"ack_id":"d1","seq":0,"correlationId":"c","response":true,"responseData":{"ok":1}}"#,
        )
        .unwrap();
        assert_eq!(ack.correlation_id.as_deref(), Some("c"));
        assert_eq!(ack.response, Some(Value::Bool(true)));
    }

    #[test]
    fn watch_events_are_tagged() {
        let e = WatchEventPayload::Log {
            agent: "A".into(),
            data: "x".into(),
            timestamp: 1,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"log","agent":"A","data":"x","timestamp":1}"#
        );
    }
}
