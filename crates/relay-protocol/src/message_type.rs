//! The `type` field of an envelope.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! message_types {
    ($($variant:ident => $wire:literal,)*) => {
        /// Every message type the daemon knows, plus [`MessageType::Unknown`] for anything else.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum MessageType {
            $($variant,)*
            /// A type string this build does not know; kept verbatim so it can be reported.
            Unknown(String),
        }

        impl MessageType {
            /// The exact string used on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(MessageType::$variant => $wire,)*
                    MessageType::Unknown(s) => s.as_str(),
                }
            }

            /// All known types, in declaration order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant,)*];
        }

        impl FromStr for MessageType {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($wire => MessageType::$variant,)*
                    other => MessageType::Unknown(other.to_string()),
                })
            }
        }
    };
}

message_types! {
    Hello => "HELLO",
    Welcome => "WELCOME",
    Send => "SEND",
    Deliver => "DELIVER",
    Ack => "ACK",
    Nack => "NACK",
    Ping => "PING",
    Pong => "PONG",
    Error => "ERROR",
    Busy => "BUSY",
    Resume => "RESUME",
    Bye => "BYE",
    State => "STATE",
    Sync => "SYNC",
    SyncSnapshot => "SYNC_SNAPSHOT",
    SyncDelta => "SYNC_DELTA",
    Subscribe => "SUBSCRIBE",
    Unsubscribe => "UNSUBSCRIBE",
    ShadowBind => "SHADOW_BIND",
    ShadowUnbind => "SHADOW_UNBIND",
    Log => "LOG",
    ChannelJoin => "CHANNEL_JOIN",
    ChannelLeave => "CHANNEL_LEAVE",
    ChannelMessage => "CHANNEL_MESSAGE",
    ChannelInfo => "CHANNEL_INFO",
    ChannelMembers => "CHANNEL_MEMBERS",
    ChannelTyping => "CHANNEL_TYPING",
    Spawn => "SPAWN",
    SpawnResult => "SPAWN_RESULT",
    Release => "RELEASE",
    ReleaseResult => "RELEASE_RESULT",
    AgentReady => "AGENT_READY",
    Status => "STATUS",
    StatusResponse => "STATUS_RESPONSE",
    Inbox => "INBOX",
    InboxResponse => "INBOX_RESPONSE",
    ListAgents => "LIST_AGENTS",
    ListAgentsResponse => "LIST_AGENTS_RESPONSE",
    ListConnectedAgents => "LIST_CONNECTED_AGENTS",
    ListConnectedAgentsResponse => "LIST_CONNECTED_AGENTS_RESPONSE",
    RemoveAgent => "REMOVE_AGENT",
    RemoveAgentResponse => "REMOVE_AGENT_RESPONSE",
    Health => "HEALTH",
    HealthResponse => "HEALTH_RESPONSE",
    Metrics => "METRICS",
    MetricsResponse => "METRICS_RESPONSE",
    MessagesQuery => "MESSAGES_QUERY",
    MessagesResponse => "MESSAGES_RESPONSE",
    ProposalCreate => "PROPOSAL_CREATE",
    Vote => "VOTE",
    // Added by this project (docs/PROTOCOL.md §"Extensions").
    MessageGet => "MESSAGE_GET",
    MessageGetResponse => "MESSAGE_GET_RESPONSE",
    Watch => "WATCH",
    WatchEvent => "WATCH_EVENT",
    DlqList => "DLQ_LIST",
    DlqListResponse => "DLQ_LIST_RESPONSE",
    DlqGet => "DLQ_GET",
    DlqGetResponse => "DLQ_GET_RESPONSE",
    DlqStats => "DLQ_STATS",
    DlqStatsResponse => "DLQ_STATS_RESPONSE",
    DlqReplay => "DLQ_REPLAY",
    DlqReplayResponse => "DLQ_REPLAY_RESPONSE",
    DlqAck => "DLQ_ACK",
    DlqAckResponse => "DLQ_ACK_RESPONSE",
    DlqPurge => "DLQ_PURGE",
    DlqPurgeResponse => "DLQ_PURGE_RESPONSE",
    ConsensusResponse => "CONSENSUS_RESPONSE",
    ConsensusList => "CONSENSUS_LIST",
    ConsensusListResponse => "CONSENSUS_LIST_RESPONSE",
    ConsensusGet => "CONSENSUS_GET",
    ConsensusGetResponse => "CONSENSUS_GET_RESPONSE",
    ConsensusStats => "CONSENSUS_STATS",
    ConsensusStatsResponse => "CONSENSUS_STATS_RESPONSE",
    ConsensusCancel => "CONSENSUS_CANCEL",
    Context => "CONTEXT",
    ContextResponse => "CONTEXT_RESPONSE",
}

impl MessageType {
    /// The response type of a query (`MESSAGES_QUERY` answers with `MESSAGES_RESPONSE`).
    pub fn response_type(&self) -> Option<MessageType> {
        use MessageType::*;
        Some(match self {
            Status => StatusResponse,
            Inbox => InboxResponse,
            ListAgents => ListAgentsResponse,
            ListConnectedAgents => ListConnectedAgentsResponse,
            RemoveAgent => RemoveAgentResponse,
            Health => HealthResponse,
            Metrics => MetricsResponse,
            MessagesQuery => MessagesResponse,
            MessageGet => MessageGetResponse,
            DlqList => DlqListResponse,
            DlqGet => DlqGetResponse,
            DlqStats => DlqStatsResponse,
            DlqReplay => DlqReplayResponse,
            DlqAck => DlqAckResponse,
            DlqPurge => DlqPurgeResponse,
            ProposalCreate | Vote | ConsensusCancel => ConsensusResponse,
            ConsensusList => ConsensusListResponse,
            ConsensusGet => ConsensusGetResponse,
            ConsensusStats => ConsensusStatsResponse,
            Context => ContextResponse,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        Ok(s.parse().unwrap_or_else(|never| match never {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips_through_its_wire_name() {
        for t in MessageType::ALL {
            let parsed: MessageType = t.as_str().parse().unwrap();
            assert_eq!(&parsed, t);
            assert_ne!(parsed, MessageType::Unknown(t.as_str().into()));
        }
        assert_eq!(MessageType::ALL.len(), 76);
    }

    #[test]
    fn unknown_types_keep_their_name() {
        let t: MessageType = serde_json::from_str("\"FROBNICATE\"").unwrap();
        assert_eq!(t, MessageType::Unknown("FROBNICATE".into()));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"FROBNICATE\"");
    }
}
