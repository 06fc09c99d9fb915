//! The values the grammar produces and the options that tune it.

use serde::{Deserialize, Serialize, Serializer};

/// Default message prefix.
pub const DEFAULT_PREFIX: &str = "->relay:";
/// Default prefix of thinking messages.
pub const DEFAULT_THINKING_PREFIX: &str = "->thinking:";
/// Default prefix of outbox-file triggers.
pub const DEFAULT_FILE_PREFIX: &str = "->relay-file:";
/// Default prefix of single-line JSON commands.
pub const DEFAULT_JSON_PREFIX: &str = "->relay.json:";
/// Default size limit of one fenced body, `[[RELAY]]` block or inline body (1 MiB).
pub const DEFAULT_MAX_BLOCK_BYTES: usize = 1024 * 1024;
/// Default limit of body lines in a fenced block.
pub const DEFAULT_MAX_FENCED_LINES: usize = 30;
/// Default limit of continuation lines joined to an inline message.
pub const DEFAULT_MAX_CONTINUATION_LINES: usize = 30;

/// Tuning of the grammar. [`GrammarOptions::default`] is the documented protocol.
///
/// An empty prefix disables the construct it introduces. Deserialising fills missing fields
/// with their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrammarOptions {
    /// Starts a message: `->relay:Bob hello`.
    pub prefix: String,
    /// Starts a thinking message: `->thinking:Bob hmm`.
    pub thinking_prefix: String,
    /// Starts an outbox-file trigger: `->relay-file:msg`.
    pub file_prefix: String,
    /// Starts a single-line JSON command: `->relay.json:{"to":"Bob","body":"hi"}`.
    pub json_prefix: String,
    /// Largest fenced body, `[[RELAY]]` JSON or inline body, in bytes.
    pub max_block_bytes: usize,
    /// Most body lines a fenced block may have; longer blocks are rejected.
    pub max_fenced_lines: usize,
    /// Most continuation lines joined to an inline message.
    pub max_continuation_lines: usize,
}

impl Default for GrammarOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            thinking_prefix: DEFAULT_THINKING_PREFIX.to_owned(),
            file_prefix: DEFAULT_FILE_PREFIX.to_owned(),
            json_prefix: DEFAULT_JSON_PREFIX.to_owned(),
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_fenced_lines: DEFAULT_MAX_FENCED_LINES,
            max_continuation_lines: DEFAULT_MAX_CONTINUATION_LINES,
        }
    }
}

/// What the caller knows about the end of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowEnd {
    /// More output may follow the last line. Constructs that could still grow (an inline
    /// message whose continuation may follow, an unclosed fenced or `[[RELAY]]` block) are
    /// not emitted yet.
    #[default]
    Open,
    /// The output has ended (the agent exited). An inline message that was only waiting for
    /// a following line is emitted; unclosed fenced and `[[RELAY]]` blocks are rejected.
    Final,
}

/// One recognised command and the lines it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parsed {
    /// What the lines mean.
    pub command: Command,
    /// Index (into the parsed lines) of the first line of the construct.
    pub first_line: usize,
    /// Index of the last line of the construct, inclusive.
    pub last_line: usize,
}

/// A command printed by an agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Send a message.
    Message(OutgoingMessage),
    /// Start a new agent.
    Spawn(SpawnCommand),
    /// Stop an agent.
    Release(ReleaseCommand),
    /// Read the named outbox file and parse it with [`crate::parse_outbox_file`].
    File(FileTrigger),
    /// Something that looked like a command but was refused; log it, never send it.
    Rejected(Rejection),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutgoingMessage {
    /// Recipient: `Bob`, `*`, `#general`, `@users`, `lead`… (without the project part).
    pub to: String,
    /// Project of the recipient, from `proj:Bob` or an explicit `project` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Message text.
    pub body: String,
    /// Message kind.
    pub kind: MessageKind,
    /// Thread id, from `[thread:id]` or a `thread` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Project of the thread, from `[thread:project:id]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_project: Option<String>,
    /// Present when the sender waits for a reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncSpec>,
    /// Importance 0–100 (`low|normal|high|urgent` = 25/50/75/100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub importance: Option<u8>,
    /// Subject line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Id of the message this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Structured data of a `[[RELAY]]` block or JSON command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl OutgoingMessage {
    /// A plain message with every optional field empty.
    pub fn new(to: impl Into<String>, body: impl Into<String>, kind: MessageKind) -> Self {
        Self {
            to: to.into(),
            project: None,
            body: body.into(),
            kind,
            thread: None,
            thread_project: None,
            sync: None,
            importance: None,
            subject: None,
            reply_to: None,
            data: None,
        }
    }
}

/// Kind of an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// An ordinary message (`->relay:`, type `message`).
    Message,
    /// Thinking out loud (`->thinking:`, type `thinking`).
    Thinking,
    /// Any other `type`/`kind` of a `[[RELAY]]` block, lower-cased (e.g. `state`).
    Other(String),
}

impl MessageKind {
    /// The wire name: `message`, `thinking` or the other kind.
    pub fn as_str(&self) -> &str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Thinking => "thinking",
            MessageKind::Other(kind) => kind,
        }
    }

    /// Maps a kind name (case-insensitive) to a kind.
    pub fn from_name(name: &str) -> Self {
        let lower = name.trim().to_lowercase();
        match lower.as_str() {
            "message" => MessageKind::Message,
            "thinking" => MessageKind::Thinking,
            _ => MessageKind::Other(lower),
        }
    }
}

impl Serialize for MessageKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The sender waits for a reply (`[await]`, `[await:30s]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncSpec {
    /// How long to wait, in milliseconds; `None` uses the receiver's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `->relay:spawn Name cli "task"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpawnCommand {
    /// Name of the new agent.
    pub name: String,
    /// CLI to run (a command name or a path).
    pub cli: String,
    /// Task given to the new agent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// `->relay:release Name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseCommand {
    /// Name of the agent to stop.
    pub name: String,
}

/// `->relay-file:ID`: the agent wrote an outbox file named `ID` (or `ID.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileTrigger {
    /// File name inside the outbox directory: `[A-Za-z0-9_.-]+`, never starting with `.`.
    pub id: String,
}

/// A refused command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Category of the refusal.
    pub kind: RejectionKind,
    /// What was wrong, for a log line.
    pub reason: String,
    /// The first line of the construct, trimmed and shortened.
    pub excerpt: String,
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// The target is a documentation placeholder (`AgentName`, `<name>`…).
    PlaceholderTarget,
    /// The target is malformed (`:Bob`, `proj:`…).
    InvalidTarget,
    /// The body looks like protocol documentation, not a message.
    Instructional,
    /// The message has no body.
    EmptyBody,
    /// A fenced block or body is longer than the limits.
    TooLong,
    /// A block never got its closing marker.
    Unterminated,
    /// A `[[RELAY]]` block or `->relay.json:` command is not valid.
    InvalidBlock,
    /// A `[[RELAY_METADATA]]` block is not valid.
    InvalidMetadata,
    /// A spawn command is malformed.
    InvalidSpawn,
    /// A release command is malformed.
    InvalidRelease,
    /// An outbox-file trigger names an impossible file.
    InvalidFileId,
    /// `spawn`/`release` used where only messages are allowed.
    ReservedTarget,
}
