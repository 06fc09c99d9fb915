//! Client configuration.

use std::path::PathBuf;
use std::time::Duration;

use relay_protocol::{EntityType, DEFAULT_MAX_FRAME_BYTES};

use crate::signing::ClientSigning;

/// Everything [`Client::connect`](crate::Client::connect) needs. Build it with
/// [`ClientConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The daemon's Unix socket.
    pub socket_path: PathBuf,
    /// The name this connection registers (1–64 of `A-Z a-z 0-9 _ . -`, not starting with `_`).
    pub agent_name: String,
    /// `agent` (default) or `user`.
    pub entity_type: EntityType,
    /// The agent's CLI (`claude`, `codex`…), shown by `agent-relay agents`.
    pub cli: Option<String>,
    pub program: Option<String>,
    pub model: Option<String>,
    pub task: Option<String>,
    pub working_directory: Option<String>,
    pub team: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// Register as a system component (`_isSystemComponent`): a tool, not an agent. The daemon
    /// does not list it, remember it, or include it in broadcasts.
    pub system_component: bool,
    /// Reconnect after a lost connection (default true). A fatal error from the daemon
    /// (duplicate connection, unauthorized, bad request) always stops reconnecting.
    pub reconnect: bool,
    /// First reconnect delay (default 100 ms); doubles per failed attempt, with ±15 % jitter.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay (default 30 s).
    pub reconnect_max: Duration,
    /// Deadline for opening the socket and completing the handshake (default 5 s).
    pub connect_timeout: Duration,
    /// Deadline of the typed query helpers such as [`Client::status`](crate::Client::status)
    /// (default 10 s).
    pub request_timeout: Duration,
    /// How long a send may wait for room in the outgoing queue, e.g. while reconnecting
    /// (default 30 s).
    pub queue_timeout: Duration,
    /// Acknowledge every DELIVER as soon as it arrives (default true). When false, call
    /// [`Client::ack`](crate::Client::ack) yourself or the daemon redelivers.
    pub auto_ack: bool,
    /// Message ids remembered to drop redelivered duplicates (default 2000; 0 disables).
    pub dedupe_capacity: usize,
    /// Largest frame sent or accepted (default 1 MiB, the protocol maximum).
    pub max_frame_bytes: usize,
    /// Capacity of the event stream (default 4096). When it is full the client stops reading
    /// the socket until the application catches up.
    pub event_capacity: usize,
    /// Capacity of the outgoing frame queue (default 1024).
    pub outgoing_capacity: usize,
    /// Sign every SEND, PROPOSAL_CREATE, VOTE and CONSENSUS_CANCEL (`_sig`) as `agent_name`
    /// with this key (default: none, nothing is signed). A key that cannot be read or cannot
    /// sign fails [`Client::connect`](crate::Client::connect).
    pub signing: Option<ClientSigning>,
}

impl ClientConfig {
    /// A configuration with every default, for `agent_name` on `socket_path`.
    pub fn new(socket_path: impl Into<PathBuf>, agent_name: impl Into<String>) -> ClientConfig {
        ClientConfig {
            socket_path: socket_path.into(),
            agent_name: agent_name.into(),
            entity_type: EntityType::Agent,
            cli: None,
            program: None,
            model: None,
            task: None,
            working_directory: None,
            team: None,
            display_name: None,
            avatar_url: None,
            system_component: false,
            reconnect: true,
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            queue_timeout: Duration::from_secs(30),
            auto_ack: true,
            dedupe_capacity: 2000,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            event_capacity: 4096,
            outgoing_capacity: 1024,
            signing: None,
        }
    }
}
