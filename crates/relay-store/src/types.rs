//! Plain records stored by the relay, plus the write operations and queries
//! that backends understand.
//!
//! These types deliberately know nothing about the wire protocol (but for the text of a
//! signature, which is stored as it arrived): the daemon converts protocol frames into
//! records before handing them to the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A message's signature object (`_sig`), kept as the JSON text it arrived in (the wire
/// protocol's own type: signed messages are copied into one row per recipient and stored
/// without parsing the object again; SQLite keeps the clients' layout packed and rebuilds the
/// same text, see `packed_sig`).
pub use relay_protocol::SignatureJson;

/// Delivery state of a stored message.
///
/// The lifecycle is `Unread -> Read -> Acked`, with `Failed` as the terminal
/// state for messages the daemon gave up on. A message is *pending* while it
/// is `Unread` or `Read`: it may still have to be (re)delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Accepted by the relay but not yet written to the recipient, e.g.
    /// queued while the recipient is offline.
    Unread,
    /// Written to the recipient's connection, waiting for its `ACK`.
    Read,
    /// The recipient acknowledged the message.
    Acked,
    /// The relay gave up on the message (dead letter).
    Failed,
}

impl MessageStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [MessageStatus; 4] = [
        MessageStatus::Unread,
        MessageStatus::Read,
        MessageStatus::Acked,
        MessageStatus::Failed,
    ];

    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Unread => "unread",
            MessageStatus::Read => "read",
            MessageStatus::Acked => "acked",
            MessageStatus::Failed => "failed",
        }
    }

    /// `Unread` or `Read`: the message may still need delivering.
    pub fn is_pending(self) -> bool {
        matches!(self, MessageStatus::Unread | MessageStatus::Read)
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown status string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStatusError(pub String);

impl fmt::Display for ParseStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown message status {:?}", self.0)
    }
}

impl std::error::Error for ParseStatusError {}

impl FromStr for MessageStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unread" => Ok(MessageStatus::Unread),
            "read" => Ok(MessageStatus::Read),
            "acked" => Ok(MessageStatus::Acked),
            "failed" => Ok(MessageStatus::Failed),
            other => Err(ParseStatusError(other.to_string())),
        }
    }
}

/// True when `to` names a channel (`#name`) rather than an agent.
pub fn is_channel_recipient(to: &str) -> bool {
    to.starts_with('#')
}

/// One stored message: either a direct delivery to an agent (one row per
/// recipient, broadcasts included) or a message posted to a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Delivery id (unique), or the client's envelope id for channel messages.
    pub id: String,
    /// When the relay accepted the message, epoch milliseconds.
    pub ts: i64,
    /// Sender name (column `sender`).
    pub from: String,
    /// Recipient agent name, or `#channel` (column `recipient`).
    pub to: String,
    pub topic: Option<String>,
    /// `message`, `action`, `state` or `thinking`.
    pub kind: String,
    pub body: String,
    /// Structured data attached by the sender (a JSON object).
    pub data: Option<serde_json::Value>,
    /// Payload metadata (a JSON object).
    pub payload_meta: Option<serde_json::Value>,
    /// Any other top-level payload fields (mentions, attachments, ...).
    pub payload_extra: Option<serde_json::Value>,
    pub thread: Option<String>,
    /// Sequence number within the recipient session's `(from, topic)` stream.
    pub delivery_seq: Option<i64>,
    /// Recipient session the sequence number belongs to.
    pub delivery_session_id: Option<String>,
    /// The sender's session.
    pub session_id: Option<String>,
    pub status: MessageStatus,
    pub is_urgent: bool,
    pub is_broadcast: bool,
    /// Original target before fan-out, e.g. `*` for broadcast copies.
    pub original_to: Option<String>,
    /// Id of the `SEND` envelope that produced this row.
    pub source_id: Option<String>,
    /// Signature object, if the message was signed.
    pub sig: Option<SignatureJson>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Last delivery error, if any.
    pub last_error: Option<String>,
}

impl StoredMessage {
    /// A message with the given identity and body; every optional field empty,
    /// status `Unread`, kind `message`.
    pub fn new(
        id: impl Into<String>,
        ts: i64,
        from: impl Into<String>,
        to: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        StoredMessage {
            id: id.into(),
            ts,
            from: from.into(),
            to: to.into(),
            topic: None,
            kind: "message".to_string(),
            body: body.into(),
            data: None,
            payload_meta: None,
            payload_extra: None,
            thread: None,
            delivery_seq: None,
            delivery_session_id: None,
            session_id: None,
            status: MessageStatus::Unread,
            is_urgent: false,
            is_broadcast: false,
            original_to: None,
            source_id: None,
            sig: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// True for rows posted to a channel (`to` starts with `#`).
    pub fn is_channel(&self) -> bool {
        is_channel_recipient(&self.to)
    }

    /// True when the message still awaits delivery to an agent: status
    /// `Unread`/`Read` and not a channel row. Retention never deletes such
    /// rows.
    pub fn is_pending(&self) -> bool {
        self.status.is_pending() && !self.is_channel()
    }
}

/// Sort order for [`MessageQuery`]: by `ts`, ties broken by insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the default).
    #[default]
    Desc,
}

/// Filter for [`Query::Messages`]. Every field is optional; the default
/// returns all direct (non-channel) messages, newest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageQuery {
    /// Maximum rows to return; `None` means no limit.
    pub limit: Option<usize>,
    /// Rows to skip after ordering.
    pub offset: Option<usize>,
    /// Only messages with `ts >= since_ts`.
    pub since_ts: Option<i64>,
    /// Only messages with `ts < until_ts`.
    pub until_ts: Option<i64>,
    /// Exact sender.
    pub from: Option<String>,
    /// Exact recipient (agent name or `#channel`).
    pub to: Option<String>,
    /// Exact topic.
    pub topic: Option<String>,
    /// Exact thread.
    pub thread: Option<String>,
    /// Only these statuses. An empty list matches nothing.
    pub statuses: Option<Vec<MessageStatus>>,
    /// Sort order by `ts`, then insertion order.
    pub order: Order,
    /// When false (the default) channel rows are excluded, unless the `to`
    /// filter is set (which then decides on its own).
    pub include_channel: bool,
}

impl MessageQuery {
    /// True when `msg` passes every filter (ordering, limit and offset are
    /// not considered). Used by in-process backends; SQL backends translate
    /// the same rules into a `WHERE` clause.
    pub fn matches(&self, msg: &StoredMessage) -> bool {
        if let Some(since) = self.since_ts {
            if msg.ts < since {
                return false;
            }
        }
        if let Some(until) = self.until_ts {
            if msg.ts >= until {
                return false;
            }
        }
        if let Some(from) = &self.from {
            if &msg.from != from {
                return false;
            }
        }
        match &self.to {
            Some(to) => {
                if &msg.to != to {
                    return false;
                }
            }
            None => {
                if !self.include_channel && msg.is_channel() {
                    return false;
                }
            }
        }
        if let Some(topic) = &self.topic {
            if msg.topic.as_ref() != Some(topic) {
                return false;
            }
        }
        if let Some(thread) = &self.thread {
            if msg.thread.as_ref() != Some(thread) {
                return false;
            }
        }
        if let Some(statuses) = &self.statuses {
            if !statuses.contains(&msg.status) {
                return false;
            }
        }
        true
    }
}

/// An agent's connection session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub agent_name: String,
    pub cli: Option<String>,
    /// Epoch milliseconds.
    pub started_at: i64,
    /// Epoch milliseconds; `None` while the session is open.
    pub ended_at: Option<i64>,
    pub resume_token: Option<String>,
    /// Why or by whom the session was closed (`disconnect`, `agent`, ...).
    pub closed_by: Option<String>,
    /// Messages sent in this session. Maintained by the store: inserting a
    /// new message whose `session_id` names this session increments it.
    pub message_count: i64,
}

/// A known agent (or human user) and its latest registration details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    /// `agent` or `user`.
    pub entity_type: String,
    pub cli: Option<String>,
    pub program: Option<String>,
    pub model: Option<String>,
    pub task: Option<String>,
    pub working_directory: Option<String>,
    pub team: Option<String>,
    pub display_name: Option<String>,
    /// Epoch milliseconds.
    pub first_seen: i64,
    /// Epoch milliseconds.
    pub last_seen: i64,
    pub messages_sent: i64,
    pub messages_received: i64,
}

/// Membership of one member in one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMembership {
    /// Channel name, including the leading `#`. Matched exactly.
    pub channel: String,
    /// Member name as first joined. Matched case-insensitively.
    pub member: String,
    /// Epoch milliseconds.
    pub joined_at: i64,
}

/// Counters describing the stored data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// All message rows, channel rows included.
    pub message_count: i64,
    /// Rows that are [pending](StoredMessage::is_pending).
    pub pending_count: i64,
    pub session_count: i64,
    pub agent_count: i64,
    /// Smallest `ts` of any stored message.
    pub oldest_message_ts: Option<i64>,
}

/// A mutation. Writes are applied in submission order, in batches that are
/// each all-or-nothing.
// `InsertMessage` is both the largest and by far the most frequent variant,
// so boxing it would add an allocation per message without saving memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Insert the message, replacing any existing row with the same id.
    /// A message that is new (not a replacement) and carries a `session_id`
    /// naming a stored session increments that session's `message_count`.
    InsertMessage(StoredMessage),
    /// Change a message's status. `last_error: Some` replaces the stored
    /// error; `None` leaves it as it was. Unknown ids are ignored.
    SetStatus {
        id: String,
        status: MessageStatus,
        last_error: Option<String>,
    },
    /// Record (re)delivery of a message into a recipient session with a new
    /// sequence number.
    SetDelivery {
        id: String,
        session_id: String,
        seq: i64,
        status: MessageStatus,
    },
    /// Add one to a message's delivery attempt counter.
    IncrementAttempts { id: String },
    /// Open a session. If the id already exists its `started_at` and
    /// `message_count` are kept, the other fields are replaced, and
    /// `ended_at`/`closed_by` are cleared. A new row is always stored open
    /// (`ended_at`/`closed_by` empty).
    StartSession(SessionRecord),
    /// Close a session. Unknown ids are ignored.
    EndSession {
        id: String,
        ended_at: i64,
        closed_by: String,
    },
    /// Insert or replace an agent; `first_seen` becomes the minimum of the
    /// stored and the new value.
    UpsertAgent(AgentRecord),
    /// Delete an agent, its sessions and its channel memberships; when
    /// `remove_messages` is set also every message from or to it. The signatures those
    /// messages hold that can still be replayed (`replayable`) are kept in the replay table
    /// first.
    RemoveAgent {
        name: String,
        remove_messages: bool,
        replayable: SignatureHorizon,
    },
    /// Join a channel. Idempotent: re-joining (in any letter case) keeps the
    /// original row.
    JoinChannel(ChannelMembership),
    /// Leave a channel; the member is matched case-insensitively.
    LeaveChannel { channel: String, member: String },
    /// Insert or replace a consensus proposal.
    UpsertProposal(ProposalRecord),
    /// Delete proposals that are no longer pending and were last updated before this time.
    PruneProposals { settled_before: i64 },
    /// Remember that `signer` used message id `m` in a signature made at `t` (replay protection).
    RecordSignature { signer: String, m: String, t: i64 },
    /// Forget signatures made before this time (outside the replay window).
    PruneSignatures { before: i64 },
    /// Insert or replace an agent's context snapshot (one per agent).
    PutContextSnapshot(ContextSnapshot),
    /// Record who is still owed a broadcast, replacing what was recorded for its sender and
    /// id; no recipients forgets it.
    SetOwed(OwedBroadcast),
    /// Forget owed broadcasts last updated before this time.
    PruneOwed { before: i64 },
}

/// Which signatures can still be replayed: those made at or after `since`. `max_skew_ms` is the
/// replay window: the daemon accepts a signature whose time is that far from its clock, so a
/// message row stored that long before `since` may still hold a signature made after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureHorizon {
    pub since: i64,
    pub max_skew_ms: i64,
}

impl SignatureHorizon {
    /// What a replay window of `window_ms` leaves replayable at `now_ms`.
    pub fn of_window(now_ms: i64, window_ms: i64) -> SignatureHorizon {
        SignatureHorizon {
            since: now_ms - window_ms,
            max_skew_ms: window_ms,
        }
    }

    /// Whether a signature made at `t` can still be replayed.
    pub fn admits(&self, t: i64) -> bool {
        t >= self.since
    }

    /// The earliest time a message row holding such a signature can have been stored.
    pub fn earliest_row_ts(&self) -> i64 {
        self.since.saturating_sub(self.max_skew_ms.max(0))
    }
}

/// A broadcast that some recipients refused for now (NACK BUSY): who is still owed it. The
/// sender's retry under the same id goes to them only, and a signed retry passes the replay
/// check; kept in storage so that this holds across a daemon restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwedBroadcast {
    /// The sender.
    pub sender: String,
    /// The SEND's id.
    pub id: String,
    /// Recipients still owed it, sorted.
    pub recipients: Vec<String>,
    /// When the broadcast was last sent (first attempt or retry), epoch milliseconds.
    pub updated_at: i64,
}

/// The latest compacted context of one agent (context compaction): what the agent was handed,
/// how it was made, and the compacted history it came from, so that it survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextSnapshot {
    /// The agent (primary key: one snapshot per agent).
    pub agent: String,
    /// Identifies this snapshot (a new one gets a new id).
    pub id: String,
    /// When it was made, epoch milliseconds.
    pub created_at: i64,
    /// The rendered context as delivered to the agent.
    pub content: String,
    /// Tokens of the compacted history.
    pub tokens: i64,
    /// Tokens of the history before compaction.
    pub original_tokens: i64,
    /// The compaction target in tokens.
    pub target_tokens: i64,
    /// Messages in the compacted history (a summary counts as one).
    pub message_count: i64,
    /// `reached`, `not_needed` or `cannot_reach_target`.
    pub outcome: String,
    /// The compaction report (a JSON object: steps, summariser, duration, …).
    pub report: serde_json::Value,
    /// The compacted history itself (a JSON array), from which the agent's history is rebuilt
    /// after a restart.
    pub messages: serde_json::Value,
    /// Timestamp of the newest message the snapshot covers, epoch milliseconds: messages after
    /// it are replayed on top of it when the history is rebuilt.
    pub covered_until: i64,
}

/// A consensus proposal as stored: the engine's own JSON, plus what retention needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalRecord {
    pub id: String,
    /// `pending` while votes are open; anything else is settled.
    pub status: String,
    pub updated_at: i64,
    pub body: serde_json::Value,
}

/// A read request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Query {
    /// Messages matching a filter -> [`QueryResult::Messages`].
    Messages(MessageQuery),
    /// The message with exactly this id, else the only message whose id
    /// starts with it -> [`QueryResult::Message`]. More than one match is
    /// [`StoreError::AmbiguousId`](crate::StoreError::AmbiguousId); an empty
    /// prefix finds nothing.
    MessageByIdPrefix(String),
    /// Every pending (`Unread`/`Read`) message whose `to` equals `agent`
    /// exactly, oldest first, with no cap -> [`QueryResult::Messages`].
    PendingFor { agent: String },
    /// The most recently started session holding this resume token ->
    /// [`QueryResult::Session`].
    SessionByResumeToken(String),
    /// Highest `delivery_seq` per `(from, topic)` among messages delivered
    /// into `session_id`, sorted by `from` then `topic` (no topic first) ->
    /// [`QueryResult::SeqSeeds`].
    MaxSeqBySession { session_id: String },
    /// All agents sorted by name -> [`QueryResult::Agents`].
    Agents,
    /// All channel memberships sorted by channel, then lower-cased member ->
    /// [`QueryResult::Memberships`].
    ChannelMemberships,
    /// Counters -> [`QueryResult::Stats`].
    Stats,
    /// Every stored consensus proposal, sorted by id -> [`QueryResult::Proposals`].
    Proposals,
    /// Signatures that can still be replayed -> [`QueryResult::Signatures`].
    RecentSignatures(SignatureHorizon),
    /// The context snapshot of `agent` -> [`QueryResult::ContextSnapshot`].
    ContextSnapshot { agent: String },
    /// `(sender, SEND id)` of the newest `limit` unsigned messages stored at or after `since`
    /// (channel posts included; one pair per stored row, so a broadcast's id comes once per
    /// recipient), **oldest first** -> [`QueryResult::SendIds`].
    RecentSendIds { since: i64, limit: usize },
    /// Owed broadcasts updated at or after `since`, oldest first (then by sender and id) ->
    /// [`QueryResult::Owed`].
    OwedBroadcasts { since: i64 },
    /// The conversation `agent` took part in: messages it sent, messages addressed to it, and
    /// messages posted to any of `channels`, with `ts >= since_ts` and `ts < until_ts` when
    /// given, **newest first**, at most `limit` rows -> [`QueryResult::Messages`].
    Conversation {
        agent: String,
        channels: Vec<String>,
        since_ts: Option<i64>,
        until_ts: Option<i64>,
        limit: usize,
    },
}

/// `(from, topic, max delivery_seq)` for one stream of a session.
pub type SeqSeed = (String, Option<String>, i64);

/// Answer to a [`Query`].
// Short-lived reply value; keeping `Message` unboxed keeps the API plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryResult {
    Messages(Vec<StoredMessage>),
    Message(Option<StoredMessage>),
    Session(Option<SessionRecord>),
    SeqSeeds(Vec<SeqSeed>),
    Agents(Vec<AgentRecord>),
    Memberships(Vec<ChannelMembership>),
    Stats(StoreStats),
    Proposals(Vec<ProposalRecord>),
    /// `(signer, message id, signing time)`.
    Signatures(Vec<(String, String, i64)>),
    ContextSnapshot(Option<ContextSnapshot>),
    Owed(Vec<OwedBroadcast>),
    /// `(sender, SEND id)`.
    SendIds(Vec<(String, String)>),
}

/// Case-folded member name used to match channel members.
pub fn member_key(member: &str) -> String {
    member.to_lowercase()
}

/// Current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_strings() {
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert!("delivered".parse::<MessageStatus>().is_err());
    }

    #[test]
    fn status_serializes_lowercase() {
        let json = serde_json::to_string(&MessageStatus::Acked).ok();
        assert_eq!(json.as_deref(), Some("\"acked\""));
    }

    #[test]
    fn pending_excludes_channel_rows() {
        let mut m = StoredMessage::new("a", 1, "x", "y", "hi");
        assert!(m.is_pending());
        m.status = MessageStatus::Read;
        assert!(m.is_pending());
        m.status = MessageStatus::Acked;
        assert!(!m.is_pending());
        let c = StoredMessage::new("b", 1, "x", "#general", "hi");
        assert!(!c.is_pending());
    }

    #[test]
    fn query_matching_rules() {
        let mut m = StoredMessage::new("a", 10, "alice", "#general", "hi");
        m.topic = Some("t".into());
        let q = MessageQuery::default();
        assert!(!q.matches(&m), "channel rows hidden by default");
        let q = MessageQuery {
            include_channel: true,
            ..Default::default()
        };
        assert!(q.matches(&m));
        let q = MessageQuery {
            to: Some("#general".into()),
            ..Default::default()
        };
        assert!(q.matches(&m), "explicit `to` selects channel rows");
        let q = MessageQuery {
            include_channel: true,
            statuses: Some(vec![]),
            ..Default::default()
        };
        assert!(!q.matches(&m), "empty status list matches nothing");
        let q = MessageQuery {
            include_channel: true,
            since_ts: Some(10),
            until_ts: Some(11),
            topic: Some("t".into()),
            ..Default::default()
        };
        assert!(q.matches(&m));
        let q = MessageQuery {
            include_channel: true,
            until_ts: Some(10),
            ..Default::default()
        };
        assert!(!q.matches(&m), "until is exclusive");
    }
}
