//! The configuration sections of `relay.toml`. Every field has a default; `docs/CONFIG.md`
//! documents each one. Keep the two in step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    pub daemon: DaemonSection,
    pub auth: AuthSection,
    pub delivery: DeliverySection,
    pub limits: LimitsSection,
    pub store: StoreSection,
    pub dlq: DlqSection,
    pub consensus: ConsensusSection,
    pub signing: SigningSection,
    pub spawn: SpawnSection,
    pub compaction: CompactionSection,
    pub log: LogSection,
}

/// `[daemon]`: socket, framing and liveness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonSection {
    /// Socket path; relative paths are relative to the project root. Empty = `.agent-relay/relay.sock`.
    pub socket: String,
    pub max_frame_bytes: usize,
    pub heartbeat_ms: u64,
    /// A connection with no inbound frame for `heartbeat_ms * heartbeat_timeout_multiplier` is dead.
    pub heartbeat_timeout_multiplier: u32,
    pub handshake_timeout_ms: u64,
    /// Tokio worker threads; 0 = one per core.
    pub worker_threads: usize,
    /// Seconds to wait for connections and storage to drain on shutdown.
    pub shutdown_grace_ms: u64,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            socket: String::new(),
            max_frame_bytes: 1024 * 1024,
            heartbeat_ms: 5000,
            heartbeat_timeout_multiplier: 6,
            handshake_timeout_ms: 5000,
            worker_threads: 0,
            shutdown_grace_ms: 5000,
        }
    }
}

/// `[auth]`: who may connect. By default only the daemon's own uid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// Extra uids allowed to connect (the daemon's own uid always is).
    pub allow_uids: Vec<u32>,
    /// Extra gids allowed to connect.
    pub allow_gids: Vec<u32>,
    /// Teams: a peer matching a team's uids/gids may only use names with its prefix.
    pub teams: Vec<TeamConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    pub agent_prefix: String,
    pub allow_any_name: bool,
}

/// `[delivery]`: acknowledgement, redelivery and sync waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// First redelivery after this long without an ACK.
    pub ack_timeout_ms: u64,
    /// Deliveries attempted before a message is dead (`max_retries_exceeded`).
    pub max_attempts: u32,
    pub backoff_multiplier: f64,
    pub max_backoff_ms: u64,
    /// Default time-to-live of a message when the SEND has no `payload_meta.ttl_ms`; 0 = none.
    pub default_ttl_ms: u64,
    /// Timeout of a sync (`[await]`) SEND without `timeoutMs`.
    pub sync_timeout_ms: u64,
    /// SEND ids remembered per sender to make retried SENDs idempotent.
    pub dedupe_window: usize,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            ack_timeout_ms: 5000,
            max_attempts: 5,
            backoff_multiplier: 2.0,
            max_backoff_ms: 60_000,
            default_ttl_ms: 0,
            sync_timeout_ms: 30_000,
            dedupe_window: 10_000,
        }
    }
}

/// `[limits]`: rate limiting and memory bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    pub rate_limit_enabled: bool,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    /// Frames queued for one connection's socket before senders to it get BUSY.
    pub outbound_queue_frames: usize,
    /// Unacknowledged deliveries kept in memory per recipient; beyond it SENDs are refused (NACK BUSY).
    pub max_pending_per_agent: usize,
    pub max_connections: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            rate_limit_enabled: true,
            rate_limit_per_sec: 500.0,
            rate_limit_burst: 1000.0,
            outbound_queue_frames: 8192,
            max_pending_per_agent: 100_000,
            max_connections: 1024,
        }
    }
}

/// Storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackendKind {
    #[default]
    Sqlite,
    Memory,
}

/// `[store]`: where messages, sessions, channels and the agent registry live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub backend: StoreBackendKind,
    /// SQLite file; relative to the project root. Empty = `.agent-relay/messages.sqlite`.
    pub path: String,
    /// Acknowledged messages older than this are deleted; 0 = keep forever.
    pub retention_days: u64,
    pub memory_max_messages: usize,
    /// Writes queued for the storage thread before senders get BUSY.
    pub queue_capacity: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: StoreBackendKind::Sqlite,
            path: String::new(),
            retention_days: 7,
            memory_max_messages: 100_000,
            queue_capacity: 65_536,
        }
    }
}

/// Dead letter queue backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DlqBackendKind {
    #[default]
    Sqlite,
    Postgres,
    Memory,
}

/// `[dlq]`: the dead letter queue — every message the daemon gives up on is kept here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlqSection {
    pub enabled: bool,
    pub backend: DlqBackendKind,
    /// SQLite file; empty = the daemon's database (`store.path`).
    pub path: String,
    /// PostgreSQL connection URL (backend = "postgres").
    pub url: String,
    /// PostgreSQL schema for the table; empty = the server's search_path (usually `public`).
    pub schema: String,
    pub pool_size: usize,
    /// Redeliver dead letters automatically with backoff (and at once when the target connects).
    pub auto_retry: bool,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub multiplier: f64,
    /// Automatic replays per letter before it is `exhausted` (an operator can still replay it).
    pub max_dlq_retries: u32,
    /// TTL applied to letters whose message has no `payload_meta.ttl_ms`; 0 = none. A letter
    /// past its TTL is not replayed automatically.
    pub default_ttl_ms: u64,
    /// Acknowledged and finished letters older than this are deleted; 0 = keep.
    pub retention_hours: u64,
    /// At most this many letters; beyond it the oldest finished, then the oldest unacknowledged,
    /// are evicted (counted in `evicted`). 0 = unbounded.
    pub max_entries: u64,
    /// Unacknowledged letters at which one alert goes to `@users` and the log.
    pub alert_threshold: u64,
    /// The alert clears (and can fire again) once the count falls to threshold × this.
    pub alert_clear_ratio: f64,
    pub check_interval_ms: u64,
    pub cleanup_interval_ms: u64,
}

impl Default for DlqSection {
    fn default() -> Self {
        DlqSection {
            enabled: true,
            backend: DlqBackendKind::Sqlite,
            path: String::new(),
            url: String::new(),
            schema: String::new(),
            pool_size: 4,
            auto_retry: true,
            initial_backoff_ms: 30_000,
            max_backoff_ms: 3_600_000,
            multiplier: 2.0,
            max_dlq_retries: 5,
            default_ttl_ms: 0,
            retention_hours: 168,
            max_entries: 10_000,
            alert_threshold: 1000,
            alert_clear_ratio: 0.8,
            check_interval_ms: 1000,
            cleanup_interval_ms: 3_600_000,
        }
    }
}

/// `[consensus]`: multi-agent proposals and voting through `_consensus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSection {
    pub enabled: bool,
    /// Voting time of a proposal without TIMEOUT.
    pub default_timeout_ms: u64,
    /// Longest voting time a proposal may ask for.
    pub max_timeout_ms: u64,
    /// Whether a participant may change its vote while the proposal is open.
    pub allow_vote_change: bool,
    pub max_participants: usize,
    /// Resolved proposals are kept this long; 0 = forever.
    pub retention_hours: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            enabled: true,
            default_timeout_ms: 300_000,
            max_timeout_ms: 86_400_000,
            allow_vote_change: true,
            max_participants: 100,
            retention_hours: 168,
        }
    }
}

/// `[spawn]`: the spawn manager (SPAWN/RELEASE, `agent-relay spawn`, `->relay:spawn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpawnSection {
    pub enabled: bool,
    /// Spawned agents running at once.
    pub max_agents: usize,
    /// Spawned agents one spawner may run at once.
    pub max_per_spawner: usize,
    /// Programs a SPAWN may start (names or paths); empty = any.
    pub allowed_clis: Vec<String>,
    /// Time between SIGTERM and SIGKILL when a spawned agent is released.
    pub stop_grace_ms: u64,
    /// Terminal size of spawned agents.
    pub rows: u16,
    pub cols: u16,
}

impl Default for SpawnSection {
    fn default() -> Self {
        SpawnSection {
            enabled: true,
            max_agents: 10,
            max_per_spawner: 5,
            allowed_clis: Vec::new(),
            stop_grace_ms: 5000,
            rows: 40,
            cols: 120,
        }
    }
}

/// `[signing]`: message signatures (HMAC-SHA256 or Ed25519) checked by the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningSection {
    pub enabled: bool,
    /// `hmac-sha256` or `ed25519`: what `agent-relay keys create` makes by default.
    pub algorithm: String,
    /// `off` (signatures checked when present), `warn` (unsigned messages delivered and logged) or
    /// `enforce` (unsigned messages refused). A present but bad signature is always refused.
    pub require_signatures: String,
    /// Senders whose messages may be unsigned under `enforce`.
    pub allow_unsigned_from: Vec<String>,
    /// One secret shared by every agent (HMAC); empty = per-agent keys in `keys_dir`.
    pub shared_secret: String,
    /// Per-agent key files; empty = `.agent-relay/keys`.
    pub keys_dir: String,
    /// Rotate every agent's key this often; 0 = only on `agent-relay keys rotate`.
    pub key_rotation_hours: u64,
    /// How long a rotated-out key still verifies.
    pub rotation_overlap_hours: u64,
    /// Largest accepted difference between a signature's time and the daemon's clock; message ids
    /// are remembered this long to refuse replays.
    pub replay_window_secs: u64,
}

/// The longest `signing.replay_window_secs` accepted: a day. The daemon remembers every signed
/// message id of the window, and accepts signatures whose clock is that far off.
pub const MAX_REPLAY_WINDOW_SECS: u64 = 86_400;

impl SigningSection {
    /// Checks the values a typo would otherwise turn into something else: an unknown
    /// `require_signatures` would leave signatures unenforced without a word.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(
            self.require_signatures.as_str(),
            "off" | "warn" | "enforce" | "false" | "true"
        ) {
            return Err(format!(
                "signing.require_signatures must be off, warn or enforce (not {:?})",
                self.require_signatures
            ));
        }
        if !matches!(self.algorithm.as_str(), "hmac-sha256" | "ed25519") {
            return Err(format!(
                "signing.algorithm must be hmac-sha256 or ed25519 (not {:?})",
                self.algorithm
            ));
        }
        check(
            (1..=MAX_REPLAY_WINDOW_SECS).contains(&self.replay_window_secs),
            "signing.replay_window_secs must be between 1 and 86400",
        )
    }
}

impl Default for SigningSection {
    fn default() -> Self {
        SigningSection {
            enabled: false,
            algorithm: "hmac-sha256".into(),
            require_signatures: "off".into(),
            allow_unsigned_from: Vec::new(),
            shared_secret: String::new(),
            keys_dir: String::new(),
            key_rotation_hours: 0,
            rotation_overlap_hours: 24,
            replay_window_secs: 300,
        }
    }
}

/// The compaction strategies, in their default order.
pub const COMPACTION_STRATEGIES: [&str; 4] = [
    "deduplicate",
    "trim_low_importance",
    "summarize",
    "aggressive",
];

/// `[compaction]`: keep each agent's relay conversation within a token budget (context
/// compaction). The daemon turns this section into the compaction library's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionSection {
    /// Track histories, compact them and deliver the compacted context.
    pub enabled: bool,
    /// The token budget of one agent's context.
    pub max_tokens: usize,
    /// Compaction starts when a history is above `threshold × max_tokens`.
    pub threshold: f64,
    /// Compaction aims at `target_usage × max_tokens` or less.
    pub target_usage: f64,
    /// The most recent messages always kept verbatim; 0 protects none by recency.
    pub keep_recent: usize,
    /// `trim_low_importance` drops messages whose importance (0–100) is below this.
    pub min_importance: u32,
    /// Messages whose word sets have at least this Jaccard similarity are near-duplicates.
    pub dedupe_similarity: f64,
    /// Strategies, in the order they are tried.
    pub strategies: Vec<String>,
    /// `o200k` (BPE tokenizer, exact for current OpenAI models) or `heuristic` (fast estimate).
    pub tokenizer: String,
    /// Deliver the compacted context to the agent when its history crosses the threshold.
    pub inject: bool,
    /// Messages kept per agent history; the oldest are dropped beyond it.
    pub max_history: usize,
    /// Routed messages that may wait for the compaction service. When it falls further behind
    /// (a machine saturated by routing), newer ones are not queued; the histories concerned are
    /// rebuilt from storage once the service has caught up.
    pub queue_events: usize,
    pub summarizer: SummarizerSection,
}

impl Default for CompactionSection {
    fn default() -> Self {
        CompactionSection {
            enabled: false,
            max_tokens: 100_000,
            threshold: 0.8,
            target_usage: 0.5,
            keep_recent: 10,
            min_importance: 30,
            dedupe_similarity: 0.85,
            strategies: COMPACTION_STRATEGIES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tokenizer: "o200k".into(),
            inject: true,
            max_history: 10_000,
            queue_events: 65_536,
            summarizer: SummarizerSection::default(),
        }
    }
}

/// `[compaction.summarizer]`: the summariser of the `summarize` strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummarizerSection {
    /// An external command (program and arguments, quoted like in a shell, run without one) that
    /// reads the transcript on stdin and prints the summary; empty = the built-in summariser.
    pub command: String,
    /// How long the command may run before it is killed and the built-in summariser is used.
    pub timeout_ms: u64,
    /// The most tokens a summary may have.
    pub max_summary_tokens: usize,
}

impl Default for SummarizerSection {
    fn default() -> Self {
        SummarizerSection {
            command: String::new(),
            timeout_ms: 10_000,
            max_summary_tokens: 1000,
        }
    }
}

impl CompactionSection {
    /// Checks ranges and names; the message names the key and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        check(
            self.max_tokens >= 1,
            "compaction.max_tokens must be at least 1",
        )?;
        check(
            self.threshold > 0.0 && self.threshold <= 1.0,
            "compaction.threshold must be in (0, 1], a fraction of compaction.max_tokens",
        )?;
        if !(self.target_usage > 0.0 && self.target_usage < self.threshold) {
            return Err(format!(
                "compaction.target_usage must be in (0, compaction.threshold) = (0, {}), so \
                 that compaction frees room below the trigger",
                self.threshold
            ));
        }
        check(
            self.target_usage * self.max_tokens as f64 >= 1.0,
            "compaction.target_usage × compaction.max_tokens must be at least 1 token",
        )?;
        check(
            self.min_importance <= 100,
            "compaction.min_importance must be in 0..=100",
        )?;
        check(
            self.dedupe_similarity > 0.0 && self.dedupe_similarity <= 1.0,
            "compaction.dedupe_similarity must be in (0, 1]",
        )?;
        check(
            !self.strategies.is_empty(),
            "compaction.strategies is empty; list at least one of deduplicate, \
             trim_low_importance, summarize, aggressive",
        )?;
        for (i, name) in self.strategies.iter().enumerate() {
            if !COMPACTION_STRATEGIES.contains(&name.as_str()) {
                return Err(format!(
                    "compaction.strategies contains unknown strategy {name:?}; use any of {}",
                    COMPACTION_STRATEGIES.join(", ")
                ));
            }
            if self.strategies[..i].contains(name) {
                return Err(format!(
                    "compaction.strategies lists {name:?} more than once; list each at most once"
                ));
            }
        }
        if !matches!(
            self.tokenizer.as_str(),
            "o200k" | "o200k_base" | "heuristic"
        ) {
            return Err(format!(
                "compaction.tokenizer is {:?}; use \"o200k\" (BPE tokenizer) or \"heuristic\" \
                 (fast estimate)",
                self.tokenizer
            ));
        }
        check(
            self.max_history >= 1,
            "compaction.max_history must be at least 1",
        )?;
        check(
            self.queue_events >= 1,
            "compaction.queue_events must be at least 1",
        )?;
        let s = &self.summarizer;
        check(
            s.timeout_ms >= 1,
            "compaction.summarizer.timeout_ms must be at least 1 (milliseconds)",
        )?;
        check(
            s.max_summary_tokens >= 16,
            "compaction.summarizer.max_summary_tokens must be at least 16",
        )?;
        Ok(())
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A tracing filter (`info`, `relay_daemon=debug`); `AGENT_RELAY_LOG` / `RUST_LOG` win.
    pub level: String,
    pub json: bool,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            json: false,
        }
    }
}

impl RelayConfig {
    /// Checks ranges and combinations; the error names the key and what to do.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.daemon;
        check(
            d.max_frame_bytes >= 1024 && d.max_frame_bytes <= 16 * 1024 * 1024,
            "daemon.max_frame_bytes must be between 1024 and 16777216",
        )?;
        check(
            d.heartbeat_ms >= 100,
            "daemon.heartbeat_ms must be at least 100",
        )?;
        check(
            d.heartbeat_timeout_multiplier >= 2,
            "daemon.heartbeat_timeout_multiplier must be at least 2",
        )?;
        check(
            d.handshake_timeout_ms >= 100,
            "daemon.handshake_timeout_ms must be at least 100",
        )?;
        let r = &self.delivery;
        check(
            r.ack_timeout_ms >= 10,
            "delivery.ack_timeout_ms must be at least 10",
        )?;
        check(
            r.max_attempts >= 1,
            "delivery.max_attempts must be at least 1",
        )?;
        check(
            r.backoff_multiplier >= 1.0 && r.backoff_multiplier.is_finite(),
            "delivery.backoff_multiplier must be a number >= 1.0",
        )?;
        check(
            r.max_backoff_ms >= r.ack_timeout_ms,
            "delivery.max_backoff_ms must be >= delivery.ack_timeout_ms",
        )?;
        check(
            r.sync_timeout_ms >= 1,
            "delivery.sync_timeout_ms must be at least 1",
        )?;
        check(
            r.dedupe_window >= 1,
            "delivery.dedupe_window must be at least 1",
        )?;
        let l = &self.limits;
        if l.rate_limit_enabled {
            check(
                l.rate_limit_per_sec > 0.0 && l.rate_limit_per_sec.is_finite(),
                "limits.rate_limit_per_sec must be > 0 (or set limits.rate_limit_enabled = false)",
            )?;
            check(
                l.rate_limit_burst >= 1.0 && l.rate_limit_burst.is_finite(),
                "limits.rate_limit_burst must be >= 1",
            )?;
        }
        check(
            l.outbound_queue_frames >= 16,
            "limits.outbound_queue_frames must be at least 16",
        )?;
        check(
            l.max_pending_per_agent >= 16,
            "limits.max_pending_per_agent must be at least 16",
        )?;
        check(
            l.max_connections >= 1,
            "limits.max_connections must be at least 1",
        )?;
        let sp = &self.spawn;
        check(
            sp.max_agents >= 1,
            "spawn.max_agents must be at least 1 (set spawn.enabled = false to turn spawning off)",
        )?;
        check(
            sp.max_per_spawner >= 1,
            "spawn.max_per_spawner must be at least 1",
        )?;
        check(
            sp.rows >= 10 && sp.cols >= 40,
            "spawn.rows must be at least 10 and spawn.cols at least 40",
        )?;
        let s = &self.store;
        check(
            s.memory_max_messages >= 100,
            "store.memory_max_messages must be at least 100",
        )?;
        check(
            s.queue_capacity >= 64,
            "store.queue_capacity must be at least 64",
        )?;
        self.compaction.validate()?;
        self.signing.validate()?;
        Ok(())
    }

    /// The socket path, resolved against the project.
    pub fn socket_path(&self, paths: &crate::ProjectPaths) -> PathBuf {
        if self.daemon.socket.is_empty() {
            paths.default_socket.clone()
        } else {
            paths.resolve(std::path::Path::new(&self.daemon.socket))
        }
    }

    /// The directory of per-agent key files.
    pub fn keys_dir(&self, paths: &crate::ProjectPaths) -> PathBuf {
        if self.signing.keys_dir.is_empty() {
            paths.relay_dir.join("keys")
        } else {
            paths.resolve(std::path::Path::new(&self.signing.keys_dir))
        }
    }

    /// The dead letter SQLite path: `dlq.path`, else the daemon's database.
    pub fn dlq_path(&self, paths: &crate::ProjectPaths) -> PathBuf {
        if self.dlq.path.is_empty() {
            self.database_path(paths)
        } else {
            paths.resolve(std::path::Path::new(&self.dlq.path))
        }
    }

    /// The SQLite path, resolved against the project.
    pub fn database_path(&self, paths: &crate::ProjectPaths) -> PathBuf {
        if self.store.path.is_empty() {
            paths.default_database.clone()
        } else {
            paths.resolve(std::path::Path::new(&self.store.path))
        }
    }
}

fn check(ok: bool, msg: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg.to_string())
    }
}
