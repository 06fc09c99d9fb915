//! Command-line arguments.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use relay_config::Override;
use relay_consensus::{ConsensusType, ProposalStatus, VoteValue};
use relay_protocol::{DlqFilter, PayloadKind};
use relay_signing::Algorithm;
use serde_json::{Map, Value};

use crate::since::parse_since;

const EXAMPLES: &str = "\
Examples:
  agent-relay up                      start the project's daemon in the background
  agent-relay send Bob \"tests pass\"   message the agent Bob
  agent-relay tail                    watch every message as it is routed
  agent-relay down                    stop the daemon";

#[derive(Debug, Parser)]
#[command(
    name = "agent-relay",
    version,
    about = "Real-time messaging between AI coding agents: one daemon per project routes \
             JSON messages over a Unix socket.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Project directory [default: the nearest ancestor of the current directory holding
    /// .git, Cargo.toml, package.json, go.mod, pyproject.toml or .agent-relay]
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Daemon socket; overrides relay.toml and AGENT_RELAY_SOCKET
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Override one configuration value (repeatable), e.g. -c limits.rate_limit_enabled=false
    #[arg(
        short = 'c',
        long = "config-set",
        global = true,
        value_name = "SECTION.KEY=VALUE"
    )]
    pub config_set: Vec<Override>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the project's daemon (in the background unless --foreground)
    #[command(
        after_help = "Examples:\n  agent-relay up\n  agent-relay up --foreground -c log.level=debug"
    )]
    Up(UpArgs),
    /// Stop the project's daemon
    #[command(after_help = "Example:\n  agent-relay down --timeout-secs 30")]
    Down(DownArgs),
    /// Show whether the daemon runs, its version, uptime, storage and agents
    #[command(after_help = "Examples:\n  agent-relay status\n  agent-relay status --json")]
    Status(JsonArgs),
    /// Send a message to an agent, everyone (*), @users or a #channel
    #[command(
        after_help = "Examples:\n  agent-relay send Bob \"tests pass on main\"\n  \
                          agent-relay send Reviewer \"approve PR 12?\" --wait --timeout-secs 120\n  \
                          agent-relay send '*' \"deploy starts in 5 minutes\" --thread deploy\n\n\
                          Without --from the message comes from cli-<pid>, a name unique to this \
                          invocation, so it never takes over a connected agent's name."
    )]
    Send(SendArgs),
    /// List known agents, online and offline
    #[command(after_help = "Examples:\n  agent-relay agents\n  agent-relay agents --all --json")]
    Agents(AgentsArgs),
    /// List the agents connected right now
    #[command(after_help = "Example:\n  agent-relay who --json")]
    Who(JsonArgs),
    /// Show stored messages, oldest first
    #[command(after_help = "Examples:\n  agent-relay history --since 2h\n  \
                          agent-relay history --from Alice --to Bob --limit 20\n  \
                          agent-relay history --thread deploy --json")]
    History(HistoryArgs),
    /// Show one message in full, by id or id prefix
    #[command(after_help = "Example:\n  agent-relay read a1b2c3d4")]
    Read(ReadArgs),
    /// Print messages (and optionally agent output) as they are routed, until Ctrl-C
    #[command(
        after_help = "Examples:\n  agent-relay tail\n  agent-relay tail --agent Bob --logs --json"
    )]
    Tail(TailArgs),
    /// Measure a running daemon: latency, throughput or fan-out
    #[command(
        after_help = "Examples:\n  agent-relay bench latency --count 10000\n  \
                          agent-relay bench throughput --pairs 16 --messages 20000\n  \
                          agent-relay bench fanout --agents 50"
    )]
    Bench(BenchArgs),
    /// Inspect, replay, acknowledge and purge dead letters (messages that could not be delivered)
    #[command(after_help = "Examples:\n  agent-relay dlq list --unacked\n  \
                          agent-relay dlq show dlq_3f2a\n  \
                          agent-relay dlq stats\n  \
                          agent-relay dlq replay --to Bob --reason connection_lost\n  \
                          agent-relay dlq ack --reason target_not_found\n  \
                          agent-relay dlq purge --all --yes")]
    Dlq(DlqArgs),
    /// Open proposals, vote on them and follow their results (decided by the daemon's _consensus)
    #[command(after_help = "Examples:\n  \
                          agent-relay consensus propose \"Ship v2\" --participants Reviewer,Tester --timeout 30m\n  \
                          agent-relay consensus list --status pending\n  \
                          agent-relay consensus show prop_0193a1b2c3d4e5f6a7b8\n  \
                          agent-relay consensus vote prop_0193a1b2c3d4e5f6a7b8 approve --as alice\n  \
                          agent-relay consensus cancel prop_0193a1b2c3d4e5f6a7b8 --as alice\n  \
                          agent-relay consensus stats")]
    Consensus(ConsensusArgs),
    /// Create, rotate, list, export and revoke the agents' message signing keys
    #[command(after_help = "Examples:\n  \
                          agent-relay keys create Alice\n  \
                          agent-relay keys create Reviewer --algorithm ed25519 --expires-in 30d\n  \
                          agent-relay keys list\n  \
                          agent-relay keys rotate Alice --overlap 1h\n  \
                          agent-relay keys export Reviewer --json > Reviewer.pub.json\n  \
                          agent-relay keys revoke Alice 0123456789abcdef\n\n\
                          Keys live in the project's key directory (signing.keys_dir, by default \
                          .agent-relay/keys), one file per agent readable only by you. No daemon is \
                          needed: a running daemon picks changes up within a second. Messages sent \
                          with --from NAME (and votes with --as NAME) are signed with NAME's key \
                          when it has one. See docs/SIGNING.md.")]
    Keys(KeysArgs),
    /// Run an agent CLI in a terminal wrapper connected to the relay (alias: create-agent)
    #[command(
        visible_alias = "create-agent",
        after_help = "Examples:\n  \
                          agent-relay run -n Alice -- claude\n  \
                          agent-relay run -n Bob -- codex --model o3\n  \
                          agent-relay run -n Shell --profile generic -- bash\n\n\
                          The agent's terminal passes through unchanged. What it prints as \
                          `->relay:Name message` (see docs/AGENT-GUIDE.md) is sent; messages for it \
                          are typed in as `Relay message from X [id]: ...` when it is ready for \
                          input. Its output is logged to .agent-relay/logs/<name>.log. The exit \
                          code is the agent's."
    )]
    Run(RunArgs),
    /// Start an agent in the background, managed by the daemon
    #[command(after_help = "Examples:\n  \
                          agent-relay spawn Worker claude \"write the tests for src/parser.rs\"\n  \
                          agent-relay spawn Helper 'codex --model o3' --cwd services/api\n  \
                          echo \"long task\" | agent-relay spawn Writer claude -\n\n\
                          The task is delivered as a message from the spawner once the agent is \
                          ready. `agent-relay agents` shows its pid and status; `agent-relay logs \
                          Worker -f` follows its output; `agent-relay release Worker` stops it.")]
    Spawn(SpawnArgs),
    /// Stop an agent started with spawn (its whole process group)
    #[command(after_help = "Example:\n  agent-relay release Worker")]
    Release(ReleaseArgs),
    /// Show an agent's relay history size against its token budget and its compacted context
    #[command(after_help = "Examples:\n  \
                          agent-relay context Backend\n  \
                          agent-relay context Backend --compact\n  \
                          agent-relay context Backend --compact --inject\n  \
                          agent-relay context Backend --json\n\n\
                          Needs a daemon started with context compaction on ([compaction] \
                          enabled = true in relay.toml, or `agent-relay up -c \
                          compaction.enabled=true`). --compact compacts the agent's history now, \
                          down to the target if it is above it, and stores the result as its \
                          snapshot; --inject delivers the snapshot to the agent as a message from \
                          _system (held back while a sync [await] involving it is pending). See \
                          docs/COMPACTION.md.")]
    Context(ContextArgs),
    /// Show (and follow) an agent's terminal output
    #[command(
        after_help = "Examples:\n  agent-relay logs Worker\n  agent-relay logs Worker -f --lines 200"
    )]
    Logs(LogsArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent's name on the relay [default: a random AdjectiveNoun]
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Readiness profile: how to tell the agent is ready for input
    #[arg(long, value_parser = PossibleValuesParser::new(["claude", "codex", "gemini", "generic"]))]
    pub profile: Option<String>,
    /// Longest wait for the agent to look ready before a message is typed anyway, in seconds
    #[arg(long, value_name = "SECS")]
    pub ready_timeout: Option<u64>,
    /// Longer message bodies are truncated when typed (the full text stays readable with read)
    #[arg(long, value_name = "CHARS", default_value_t = 2000)]
    pub max_body: usize,
    /// The agent command and its arguments (after --)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The new agent's name
    pub name: String,
    /// The agent command, e.g. claude or 'codex --model o3'
    pub cli: String,
    /// Its task (`-` reads it from stdin)
    pub task: Option<String>,
    /// Working directory, relative to the project root
    #[arg(long)]
    pub cwd: Option<String>,
    /// Model (passed to claude as --model)
    #[arg(long)]
    pub model: Option<String>,
    /// Spawn as NAME, connecting as a user of that name and signing with its key (needed when
    /// signatures are enforced); the spawner gets the agent's crash reports [default: cli]
    #[arg(long = "as", value_name = "NAME", value_parser = parse_agent_name)]
    pub as_name: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The spawned agent to stop
    pub name: String,
    /// Release as NAME, signing with its key (needed when signatures are enforced)
    #[arg(long = "as", value_name = "NAME", value_parser = parse_agent_name)]
    pub as_name: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The agent whose output to show
    pub name: String,
    /// Lines from the end to show first
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: usize,
    /// Keep printing new output as it arrives
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Run the daemon in this process instead of starting it in the background
    #[arg(long)]
    pub foreground: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// How long to wait for the daemon to exit
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Message,
    Action,
    State,
    Thinking,
}

impl From<KindArg> for PayloadKind {
    fn from(k: KindArg) -> PayloadKind {
        match k {
            KindArg::Message => PayloadKind::Message,
            KindArg::Action => PayloadKind::Action,
            KindArg::State => PayloadKind::State,
            KindArg::Thinking => PayloadKind::Thinking,
        }
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipient: an agent name, * (everyone), @users or #channel
    pub to: String,
    /// Message body
    pub message: String,
    /// Wait for the recipient's answer (a sync message) and print it
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits for the answer
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout_secs: u64,
    /// Thread id to file the message under
    #[arg(long, value_name = "THREAD")]
    pub thread: Option<String>,
    /// Sender name [default: cli-<pid>]
    #[arg(long, value_name = "NAME", value_parser = parse_agent_name)]
    pub from: Option<String>,
    /// Payload kind
    #[arg(long, value_enum, default_value = "message")]
    pub kind: KindArg,
    /// Structured data as a JSON object, passed through to the recipient
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub data: Option<Map<String, Value>>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Also list the short-lived connections of this CLI and of benchmarks (cli-<pid>, bench-*)
    #[arg(long)]
    pub all: bool,
    /// List the agent profiles of this project (.claude/agents/*.md) instead
    #[arg(long)]
    pub profiles: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only messages from this agent
    #[arg(long, value_name = "AGENT")]
    pub from: Option<String>,
    /// Only messages to this agent (or #channel)
    #[arg(long, value_name = "AGENT")]
    pub to: Option<String>,
    /// Only messages in this thread
    #[arg(long, value_name = "THREAD")]
    pub thread: Option<String>,
    /// Only messages since: a duration ago (30s, 10m, 2h, 1d, 1w), an RFC 3339 time or epoch milliseconds
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Most recent messages to show
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ContextArgs {
    /// The agent whose context to show
    pub agent: String,
    /// Compact the agent's history now and store the result as its snapshot
    #[arg(long)]
    pub compact: bool,
    /// Deliver the stored (or just made) snapshot to the agent now
    #[arg(long)]
    pub inject: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Message id or a unique prefix of it (as printed in [a1b2c3d4])
    pub id: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only messages to or from this agent (and its output with --logs)
    #[arg(long, value_name = "AGENT")]
    pub agent: Option<String>,
    /// Also print agent output lines
    #[arg(long)]
    pub logs: bool,
    /// Print one JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Round-trip latency between two agents (A -> B -> A)
    #[command(
        after_help = "Example:\n  agent-relay bench latency --count 10000 --warmup 1000 --size 100"
    )]
    Latency(LatencyArgs),
    /// Messages per second through sender/receiver pairs, checking for losses and duplicates
    #[command(
        after_help = "Example:\n  agent-relay -c limits.rate_limit_enabled=false up\n  \
                          agent-relay bench throughput --pairs 16 --messages 20000 --window 1000"
    )]
    Throughput(ThroughputArgs),
    /// Time until the last of N subscribers receives a broadcast
    #[command(after_help = "Example:\n  agent-relay bench fanout --agents 50 --count 1000")]
    Fanout(FanoutArgs),
    /// What signing every message costs in throughput: alternating unsigned and signed
    /// throughput runs, each against a fresh daemon of its own (no running daemon needed)
    #[command(
        after_help = "Example:\n  agent-relay bench signing --sign hmac-sha256 --rounds 10\n\n\
                      Each round starts two daemons in temporary projects, one with signing off \
                      and one enforcing signatures, and runs `bench throughput` against each, \
                      the order alternating between rounds. Reports both means, the change in \
                      throughput with a bootstrap 95 % interval, and the CPU time signing adds \
                      per message. The daemons it starts do not read this project's relay.toml: \
                      give them settings with -c (AGENT_RELAY_* variables apply too). Progress \
                      goes to stderr. See docs/PERFORMANCE.md."
    )]
    Signing(SigningArgs),
}

/// `--sign`: the algorithm of the keys a benchmark makes for its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignArg {
    #[value(name = "hmac-sha256")]
    HmacSha256,
    #[value(name = "ed25519")]
    Ed25519,
}

impl From<SignArg> for Algorithm {
    fn from(a: SignArg) -> Algorithm {
        match a {
            SignArg::HmacSha256 => Algorithm::HmacSha256,
            SignArg::Ed25519 => Algorithm::Ed25519,
        }
    }
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Measured round trips
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Round trips before measuring
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// Message body size in bytes
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Sign every message: creates keys of this algorithm for the benchmark's agents in the
    /// project's key directory (removed afterwards)
    #[arg(long, value_enum, value_name = "ALGORITHM")]
    pub sign: Option<SignArg>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    /// Sender/receiver pairs
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub pairs: u64,
    /// Messages per pair
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Message body size in bytes
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages a sender may have in flight (sent, not yet received)
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,
    /// Sign every message: creates keys of this algorithm for the benchmark's agents in the
    /// project's key directory (removed afterwards)
    #[arg(long, value_enum, value_name = "ALGORITHM")]
    pub sign: Option<SignArg>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SigningArgs {
    /// The algorithm the signed runs use
    #[arg(
        long,
        value_enum,
        value_name = "ALGORITHM",
        default_value = "hmac-sha256"
    )]
    pub sign: SignArg,
    /// Rounds; each has one unsigned and one signed run
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub rounds: u64,
    /// Sender/receiver pairs per run
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub pairs: u64,
    /// Messages per pair per run
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Message body size in bytes
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages a sender may have in flight (sent, not yet received)
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Receiving agents
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub agents: u64,
    /// Measured broadcasts
    #[arg(long, default_value_t = 1_000)]
    pub count: u64,
    /// Broadcasts before measuring
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Message body size in bytes
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// The reasons a message is dead-lettered, as the daemon spells them.
pub const DLQ_REASONS: [&str; 8] = [
    "max_retries_exceeded",
    "ttl_expired",
    "connection_lost",
    "target_not_found",
    "rate_limited",
    "signature_invalid",
    "payload_too_large",
    "unknown",
];

/// The states of a dead letter, as the daemon spells them.
pub const DLQ_STATES: [&str; 4] = ["pending", "replaying", "delivered", "exhausted"];

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead letters, oldest first
    #[command(after_help = "Examples:\n  agent-relay dlq list\n  \
                          agent-relay dlq list --to Bob --reason ttl_expired --since 2h\n  \
                          agent-relay dlq list --unacked --limit 200 --json\n\n\
                          TRIES counts delivery attempts, replays from the queue included.")]
    List(DlqListArgs),
    /// Show one dead letter in full, by id or id prefix
    #[command(after_help = "Examples:\n  agent-relay dlq show dlq_3f2a9c01\n  \
                          agent-relay dlq show dlq_3f2a9c01 --json")]
    Show(DlqShowArgs),
    /// Counts by reason, target and state, retries, and the storage backend's health
    #[command(after_help = "Examples:\n  agent-relay dlq stats\n  agent-relay dlq stats --json")]
    Stats(JsonArgs),
    /// Hand dead letters back to the router for another delivery attempt
    #[command(after_help = "Examples:\n  agent-relay dlq replay dlq_3f2a9c01\n  \
                          agent-relay dlq replay --to Bob --reason connection_lost\n  \
                          agent-relay dlq replay --all\n\n\
                          Pass ids, at least one filter, or --all.")]
    Replay(DlqReplayArgs),
    /// Mark dead letters as handled, so --unacked no longer lists them
    #[command(
        after_help = "Examples:\n  agent-relay dlq ack dlq_3f2a9c01 dlq_77b0e412\n  \
                          agent-relay dlq ack --reason target_not_found --by oncall\n  \
                          agent-relay dlq ack --all\n\n\
                          Pass ids, at least one filter, or --all."
    )]
    Ack(DlqAckArgs),
    /// Delete dead letters for good
    #[command(after_help = "Examples:\n  agent-relay dlq purge dlq_3f2a9c01\n  \
                          agent-relay dlq purge --state delivered --since 1w\n  \
                          agent-relay dlq purge --all --yes\n\n\
                          Pass ids, at least one filter, or --all (which also needs --yes).")]
    Purge(DlqPurgeArgs),
}

/// Filters shared by `dlq list`, `replay`, `ack` and `purge`; every one given narrows the
/// selection.
#[derive(Debug, Clone, Default, Args)]
pub struct DlqFilterArgs {
    /// Only letters that could not reach this target
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Only letters from this sender
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// Only letters dead-lettered for this reason
    #[arg(long, value_name = "REASON", value_parser = PossibleValuesParser::new(DLQ_REASONS))]
    pub reason: Option<String>,
    /// Only letters in this state
    #[arg(long, value_name = "STATE", value_parser = PossibleValuesParser::new(DLQ_STATES))]
    pub state: Option<String>,
    /// Only letters dead-lettered since: a duration ago (30s, 10m, 2h, 1d, 1w), an RFC 3339
    /// time or epoch milliseconds
    #[arg(long, value_name = "WHEN", value_parser = parse_since_ms)]
    pub since: Option<i64>,
    /// Only letters nobody has acknowledged yet
    #[arg(long)]
    pub unacked: bool,
}

impl DlqFilterArgs {
    /// True when no filter narrows the selection.
    pub fn is_empty(&self) -> bool {
        self.to.is_none()
            && self.from.is_none()
            && self.reason.is_none()
            && self.state.is_none()
            && self.since.is_none()
            && !self.unacked
    }

    /// The protocol filter, without ids or limit.
    pub fn to_filter(&self) -> DlqFilter {
        DlqFilter {
            to: self.to.clone(),
            from: self.from.clone(),
            reason: self.reason.clone(),
            state: self.state.clone(),
            acknowledged: self.unacked.then_some(false),
            since_ts: self.since,
            ..DlqFilter::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Most recent dead letters to show
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// Dead letter id or a unique prefix of it (as printed by 'agent-relay dlq list')
    pub id: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Which letters `dlq replay`, `ack` and `purge` act on.
#[derive(Debug, Clone, Args)]
pub struct DlqSelectArgs {
    /// Dead letter ids or unique prefixes of them
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Act on at most N of the matching letters
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Every dead letter (narrowed by any filter given)
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

impl DlqSelectArgs {
    /// Ids, a filter or --all must say what to act on.
    fn check(&self) -> Result<(), String> {
        if self.ids.is_empty() && self.filter.is_empty() && !self.all {
            return Err(
                "say which dead letters to act on: pass their ids, a filter \
                        (--to, --from, --reason, --state, --since, --unacked) or --all"
                    .into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    #[command(flatten)]
    pub select: DlqSelectArgs,
}

#[derive(Debug, Args)]
pub struct DlqAckArgs {
    #[command(flatten)]
    pub select: DlqSelectArgs,
    /// Who acknowledges [default: this invocation's connection name, cli-<pid>]
    #[arg(long, value_name = "NAME", value_parser = parse_nonempty)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct DlqPurgeArgs {
    #[command(flatten)]
    pub select: DlqSelectArgs,
    /// Confirm deleting every dead letter (needed with --all)
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ConsensusArgs {
    #[command(subcommand)]
    pub action: ConsensusAction,
}

#[derive(Debug, Subcommand)]
pub enum ConsensusAction {
    /// Open a proposal; every participant receives it from _consensus with its id
    #[command(after_help = "Examples:\n  \
                          agent-relay consensus propose \"Ship v2\" --participants Reviewer,Tester,Lead\n  \
                          agent-relay consensus propose \"Merge PR 12\" --participants Reviewer,Tester \\\n      \
                          --type unanimous --timeout 30m --description \"CI is green\" --as alice\n  \
                          agent-relay consensus propose \"Adopt the new API\" --participants A,B,C \\\n      \
                          --type supermajority --threshold 0.75\n  \
                          agent-relay consensus propose \"Release\" --participants Lead,Dev --type weighted \\\n      \
                          --weight Lead=2\n  \
                          agent-relay consensus propose \"Refactor\" --participants A,B,C,D --type quorum --quorum 3\n\n\
                          Without --as the proposal comes from cli-<pid>, a name unique to this \
                          invocation. The result is sent as a message to the proposer and every \
                          participant; only the proposer can cancel, so propose with --as NAME to be \
                          able to cancel later.")]
    Propose(ConsensusProposeArgs),
    /// Vote approve, reject or abstain on a proposal, as a participant
    #[command(after_help = "Examples:\n  \
                          agent-relay consensus vote prop_0193a1b2c3d4e5f6a7b8 approve --as alice\n  \
                          agent-relay consensus vote prop_0193a1b2c3d4e5f6a7b8 reject --as alice \\\n      \
                          --reason \"the migration is not reversible\"\n\n\
                          The vote counts for the connection's name: this command connects as NAME \
                          (as a user), and if an agent of that name is connected, it takes over that \
                          agent's connection. Vote as your own user name (--as alice), as listed in \
                          the proposal's participants, not as a running agent. A vote may be changed \
                          while the proposal is open.")]
    Vote(ConsensusVoteArgs),
    /// List proposals, newest first
    #[command(after_help = "Examples:\n  agent-relay consensus list\n  \
                          agent-relay consensus list --status pending --participant alice\n  \
                          agent-relay consensus list --status approved --json\n\n\
                          VOTES counts votes cast of participants; CLOSES/CLOSED is the deadline of \
                          a pending proposal, else when it closed.")]
    List(ConsensusListArgs),
    /// Show one proposal in full: rule, votes with reasons, and the result
    #[command(
        after_help = "Examples:\n  agent-relay consensus show prop_0193a1b2c3d4e5f6a7b8\n  \
                          agent-relay consensus show prop_0193a1b2c3d4e5f6a7b8 --json"
    )]
    Show(ConsensusShowArgs),
    /// Withdraw a pending proposal (only its proposer can)
    #[command(after_help = "Example:\n  \
                          agent-relay consensus cancel prop_0193a1b2c3d4e5f6a7b8 --as alice\n\n\
                          Connects as NAME (as a user; a connected agent of that name is taken \
                          over), which must be the name the proposal was made with.")]
    Cancel(ConsensusCancelArgs),
    /// Counts of proposals by status and type, and participation
    #[command(after_help = "Examples:\n  agent-relay consensus stats\n  \
                          agent-relay consensus stats --json")]
    Stats(JsonArgs),
}

#[derive(Debug, Args)]
pub struct ConsensusProposeArgs {
    /// One-line title of the question
    #[arg(value_parser = parse_nonempty)]
    pub title: String,
    /// Who votes: names separated by commas (repeatable)
    #[arg(
        long,
        required = true,
        value_name = "NAME,NAME",
        value_delimiter = ',',
        value_parser = parse_participant
    )]
    pub participants: Vec<String>,
    /// Decision rule (see docs/CONSENSUS.md)
    #[arg(
        long = "type",
        value_name = "TYPE",
        default_value = "majority",
        ignore_case = true,
        value_parser = PossibleValuesParser::new(ConsensusType::ALL.map(ConsensusType::as_str))
            .try_map(|s| s.parse::<ConsensusType>())
    )]
    pub ctype: ConsensusType,
    /// Longer text sent with the proposal
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Voting period: 30s, 5m, 1h, 1d or milliseconds, capped at the daemon's maximum
    /// [default: the daemon's, 5m unless configured]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<u64>,
    /// Voters needed, abstentions included (only with --type quorum) [default: a majority of
    /// the participants]
    #[arg(long, value_name = "N", value_parser = parse_quorum)]
    pub quorum: Option<usize>,
    /// Share of the non-abstaining participants needed to approve, above 0.5 and at most 1:
    /// 0.67, 67% or 2/3 (only with --type supermajority) [default: 2/3]
    #[arg(long, value_name = "FRACTION", value_parser = parse_threshold)]
    pub threshold: Option<f64>,
    /// A participant's weight, greater than 0 (only with --type weighted; repeatable;
    /// participants not given weigh 1)
    #[arg(long = "weight", value_name = "NAME=WEIGHT", value_parser = parse_weight)]
    pub weights: Vec<(String, f64)>,
    /// Propose as NAME, connecting as a user (a connected agent of that name is taken over)
    /// [default: cli-<pid>]
    #[arg(long = "as", value_name = "NAME", value_parser = parse_agent_name)]
    pub as_name: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

impl ConsensusProposeArgs {
    /// Options that only some types take, the quorum against the participants, and weights
    /// naming participants.
    fn check(&self) -> Result<(), String> {
        let only = |flag: &str, ctype: ConsensusType| {
            Err(format!(
                "{flag} is only used with --type {ctype} (this proposal is {})",
                self.ctype
            ))
        };
        if self.threshold.is_some() && self.ctype != ConsensusType::Supermajority {
            return only("--threshold", ConsensusType::Supermajority);
        }
        if self.quorum.is_some() && self.ctype != ConsensusType::Quorum {
            return only("--quorum", ConsensusType::Quorum);
        }
        if !self.weights.is_empty() && self.ctype != ConsensusType::Weighted {
            return only("--weight", ConsensusType::Weighted);
        }
        let mut participants: Vec<&str> = Vec::with_capacity(self.participants.len());
        for p in &self.participants {
            if !participants.iter().any(|q| q.eq_ignore_ascii_case(p)) {
                participants.push(p);
            }
        }
        if let Some(q) = self.quorum.filter(|q| *q > participants.len()) {
            return Err(format!(
                "--quorum {q} is more than the {} participants",
                participants.len()
            ));
        }
        if let Some((name, _)) = self
            .weights
            .iter()
            .find(|(name, _)| !participants.iter().any(|p| p.eq_ignore_ascii_case(name)))
        {
            return Err(format!(
                "--weight names {name}, who is not in --participants"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct ConsensusVoteArgs {
    /// Proposal id (prop_…, as printed by 'agent-relay consensus list')
    #[arg(value_parser = parse_nonempty)]
    pub id: String,
    /// The vote
    #[arg(
        value_name = "VOTE",
        ignore_case = true,
        value_parser = PossibleValuesParser::new(VoteValue::ALL.map(VoteValue::as_str))
            .try_map(|s| s.parse::<VoteValue>())
    )]
    pub value: VoteValue,
    /// Vote as NAME, a participant: connects as a user of that name, taking over the
    /// connection of a connected agent of that name
    #[arg(long = "as", required = true, value_name = "NAME", value_parser = parse_agent_name)]
    pub as_name: String,
    /// Why, sent with the vote and shown in the result
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsensusListArgs {
    /// Only proposals in this state
    #[arg(
        long,
        value_name = "STATUS",
        ignore_case = true,
        value_parser = PossibleValuesParser::new(ProposalStatus::ALL.map(ProposalStatus::as_str))
    )]
    pub status: Option<String>,
    /// Only proposals this participant votes on
    #[arg(long, value_name = "NAME", value_parser = parse_nonempty)]
    pub participant: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsensusShowArgs {
    /// Proposal id (prop_…, as printed by 'agent-relay consensus list')
    #[arg(value_parser = parse_nonempty)]
    pub id: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConsensusCancelArgs {
    /// Proposal id (prop_…, as printed by 'agent-relay consensus list')
    #[arg(value_parser = parse_nonempty)]
    pub id: String,
    /// Cancel as NAME, the proposer: connects as a user of that name, taking over the
    /// connection of a connected agent of that name
    #[arg(long = "as", required = true, value_name = "NAME", value_parser = parse_agent_name)]
    pub as_name: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new key for an agent (fails if it already has one: rotate it instead)
    #[command(after_help = "Examples:\n  agent-relay keys create Alice\n  \
                          agent-relay keys create Reviewer --algorithm ed25519 --expires-in 30d\n  \
                          agent-relay keys create Tester --json\n\n\
                          hmac-sha256 keys are secrets the daemon shares; with ed25519 the daemon \
                          needs only the public half. Names are 1-64 characters from \
                          A-Z a-z 0-9 _ . - and do not start with '.' or '_'.")]
    Create(KeysCreateArgs),
    /// Give an agent a new key; the previous one keeps verifying for the overlap
    #[command(after_help = "Examples:\n  agent-relay keys rotate Alice\n  \
                          agent-relay keys rotate Alice --overlap 1h --json\n\n\
                          Messages signed with the previous key (in flight, or sent by a client that \
                          has not re-read its key yet) verify until the overlap ends.")]
    Rotate(KeysRotateArgs),
    /// List every agent's keys (ids and dates, never key material)
    #[command(
        after_help = "Examples:\n  agent-relay keys list\n  agent-relay keys list --json\n\n\
                          RETIRED are rotated-out keys still verifying; REVOKED never verify again. \
                          Exits 1 when a key file cannot be read (each one is reported)."
    )]
    List(JsonArgs),
    /// Print the public part of an agent's keys, to hand to whoever verifies its messages
    #[command(after_help = "Examples:\n  agent-relay keys export Reviewer\n  \
                          agent-relay keys export Reviewer --json > Reviewer.pub.json\n\n\
                          Never prints a secret. An hmac-sha256 key has no public part: the secret \
                          itself is the key, so only its id is exported; hand the key file over \
                          privately to whoever must verify.")]
    Export(KeysExportArgs),
    /// Revoke one key of an agent at once: it never signs or verifies again
    #[command(
        after_help = "Examples:\n  agent-relay keys revoke Alice 0123456789abcdef\n  \
                          agent-relay keys revoke Alice 0123456789abcdef --json\n\n\
                          Key ids are listed by 'agent-relay keys list'. Revoking the current key \
                          leaves the agent unable to sign until 'agent-relay keys rotate NAME'."
    )]
    Revoke(KeysRevokeArgs),
}

#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    /// The agent the key is for
    #[arg(value_name = "NAME", value_parser = parse_key_name)]
    pub name: String,
    /// Signature algorithm [default: signing.algorithm of the configuration, hmac-sha256
    /// unless set]
    #[arg(long, value_enum, value_name = "ALGORITHM")]
    pub algorithm: Option<SignArg>,
    /// Make the key expire after this long: 30m, 12h, 30d, 1w, 1d12h (rotating keeps the
    /// same lifetime) [default: never]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub expires_in: Option<u64>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    /// The agent whose key is replaced
    #[arg(value_name = "NAME", value_parser = parse_key_name)]
    pub name: String,
    /// How long the previous key keeps verifying: 0s, 30m, 24h, 7d [default:
    /// signing.rotation_overlap_hours of the configuration, 24h unless set]
    #[arg(long, value_name = "DURATION", value_parser = parse_key_duration)]
    pub overlap: Option<u64>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysExportArgs {
    /// The agent whose public keys are printed
    #[arg(value_name = "NAME", value_parser = parse_key_name)]
    pub name: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    /// The agent the key belongs to
    #[arg(value_name = "NAME", value_parser = parse_key_name)]
    pub name: String,
    /// The key id: 16 hex digits, as printed by 'agent-relay keys list'
    #[arg(value_name = "KEY_ID", value_parser = parse_key_id)]
    pub key_id: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// Checks what clap cannot express; a failure is a usage error (exit code 2).
    pub fn validate(&self) -> Result<(), clap::Error> {
        use clap::error::ErrorKind;
        let (path, kind, result) = match &self.command {
            Command::Dlq(dlq) => {
                let (name, result) = match &dlq.action {
                    DlqAction::Replay(a) => ("replay", a.select.check()),
                    DlqAction::Ack(a) => ("ack", a.select.check()),
                    DlqAction::Purge(a) => (
                        "purge",
                        a.select.check().and_then(|()| {
                            if a.select.all && !a.yes {
                                Err("refusing to purge without confirmation: \
                                     add --yes to delete every dead letter"
                                    .into())
                            } else {
                                Ok(())
                            }
                        }),
                    ),
                    DlqAction::List(_) | DlqAction::Show(_) | DlqAction::Stats(_) => return Ok(()),
                };
                (["dlq", name], ErrorKind::MissingRequiredArgument, result)
            }
            Command::Consensus(ConsensusArgs {
                action: ConsensusAction::Propose(a),
            }) => (
                ["consensus", "propose"],
                ErrorKind::ArgumentConflict,
                a.check(),
            ),
            _ => return Ok(()),
        };
        result.map_err(|message| {
            let mut cmd = Cli::command();
            cmd.build();
            let [group, name] = path;
            match cmd
                .find_subcommand_mut(group)
                .and_then(|g| g.find_subcommand_mut(name))
            {
                Some(sub) => sub.error(kind, message),
                None => cmd.error(kind, message),
            }
        })
    }
}

fn parse_json_object(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object such as {\"pr\": 12}".into()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// `--since` as the signed epoch milliseconds the dead letter filter carries.
fn parse_since_ms(s: &str) -> Result<i64, String> {
    let ms = parse_since(s)?;
    i64::try_from(ms).map_err(|_| format!("{s:?} is too far in the future"))
}

/// One participant of `--participants` (already split at commas).
fn parse_participant(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() {
        return Err("empty participant name; separate names with commas: Alice,Bob".into());
    }
    parse_agent_name(name)
}

/// `--timeout`: `30s`, `5m`, `1h`, `1d` or milliseconds, more than zero.
fn parse_timeout(s: &str) -> Result<u64, String> {
    match relay_consensus::parse_duration_ms(s) {
        Ok(0) => Err("the voting period must be longer than zero".into()),
        Ok(ms) => Ok(ms),
        Err(_) => Err(format!(
            "{s:?} is not a duration: use 30s, 5m, 1h, 1d or milliseconds"
        )),
    }
}

fn parse_quorum(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("the quorum must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number of voters")),
    }
}

/// `--threshold`: `0.67`, `67%` or `2/3`, above 0.5 and at most 1.
fn parse_threshold(s: &str) -> Result<f64, String> {
    let bad = || format!("{s:?} is not a fraction: write 0.67, 67% or 2/3");
    let t = s.trim();
    let value = if let Some((num, den)) = t.split_once('/') {
        let num: f64 = num.trim().parse().map_err(|_| bad())?;
        let den: f64 = den.trim().parse().map_err(|_| bad())?;
        num / den
    } else if let Some(pct) = t.strip_suffix('%') {
        pct.trim().parse::<f64>().map_err(|_| bad())? / 100.0
    } else {
        t.parse::<f64>().map_err(|_| bad())?
    };
    if !value.is_finite() {
        return Err(bad());
    }
    if value <= 0.5 || value > 1.0 {
        return Err(format!(
            "the threshold must be above 0.5 and at most 1; got {s}"
        ));
    }
    Ok(value)
}

/// `--weight NAME=WEIGHT`, the weight a number greater than 0.
fn parse_weight(s: &str) -> Result<(String, f64), String> {
    let Some((name, weight)) = s.split_once('=') else {
        return Err(format!("{s:?} is not NAME=WEIGHT, e.g. Lead=2"));
    };
    let name = parse_participant(name)?;
    match weight.trim().parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok((name, w)),
        _ => Err(format!(
            "the weight of {name} must be a number greater than 0; got {weight:?}"
        )),
    }
}

fn parse_nonempty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// An agent name that can also name a key file.
fn parse_key_name(s: &str) -> Result<String, String> {
    relay_signing::validate_key_name(s).map_err(|e| e.to_string())?;
    parse_agent_name(s)
}

/// A key id: 16 hex digits (either case; stored in lowercase).
fn parse_key_id(s: &str) -> Result<String, String> {
    let id = s.trim();
    if id.len() == relay_signing::KEY_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a key id: key ids are {} hex digits, as printed by \
             'agent-relay keys list'",
            relay_signing::KEY_ID_LEN
        ))
    }
}

/// `30s`, `10m`, `24h`, `30d`, `1w` and sums such as `1d12h`, in milliseconds.
fn parse_key_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration: use 30s, 10m, 24h, 30d, 1w or sums like 1d12h");
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("{s:?} is too long"))?;
        saw_unit = true;
    }
    if saw_unit && digits.is_empty() {
        Ok(total)
    } else {
        Err(bad())
    }
}

/// [`parse_key_duration`], more than zero.
fn parse_positive_duration(s: &str) -> Result<u64, String> {
    match parse_key_duration(s)? {
        0 => Err("the duration must be longer than zero".into()),
        ms => Ok(ms),
    }
}

fn parse_agent_name(s: &str) -> Result<String, String> {
    relay_protocol::ids::validate_agent_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = Cli::try_parse_from([
            "agent-relay",
            "send",
            "Bob",
            "hi",
            "--socket",
            "/tmp/x.sock",
            "-c",
            "limits.rate_limit_enabled=false",
            "--data",
            "{\"a\":1}",
        ])
        .expect("parses");
        assert_eq!(
            cli.global.socket.as_deref(),
            Some(std::path::Path::new("/tmp/x.sock"))
        );
        assert_eq!(cli.global.config_set.len(), 1);
        let Command::Send(send) = cli.command else {
            panic!("expected send");
        };
        assert_eq!(send.data.map(|d| d.len()), Some(1));
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        cli.validate()?;
        Ok(cli)
    }

    #[test]
    fn dlq_filters_become_the_protocol_filter() {
        let cli = parse(&[
            "agent-relay",
            "dlq",
            "list",
            "--to",
            "Bob",
            "--reason",
            "ttl_expired",
            "--state",
            "pending",
            "--since",
            "1764000000000",
            "--unacked",
        ])
        .expect("parses");
        let Command::Dlq(DlqArgs {
            action: DlqAction::List(list),
        }) = cli.command
        else {
            panic!("expected dlq list");
        };
        assert_eq!(list.limit, 50);
        let f = list.filter.to_filter();
        assert_eq!(f.to.as_deref(), Some("Bob"));
        assert_eq!(f.reason.as_deref(), Some("ttl_expired"));
        assert_eq!(f.state.as_deref(), Some("pending"));
        assert_eq!(f.since_ts, Some(1_764_000_000_000));
        assert_eq!(f.acknowledged, Some(false));
        assert!(f.ids.is_none());
    }

    #[test]
    fn dlq_selections() {
        for ok in [
            &["agent-relay", "dlq", "replay", "dlq_0123"][..],
            &["agent-relay", "dlq", "replay", "--to", "Bob"],
            &["agent-relay", "dlq", "replay", "--all"],
            &["agent-relay", "dlq", "ack", "--unacked", "--by", "oncall"],
            &["agent-relay", "dlq", "purge", "--state", "delivered"],
            &["agent-relay", "dlq", "purge", "--all", "--yes"],
            &["agent-relay", "dlq", "purge", "a", "b"],
        ] {
            parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            &["agent-relay", "dlq", "replay"][..],
            &["agent-relay", "dlq", "ack"],
            &["agent-relay", "dlq", "ack", "--by", "oncall"],
            &["agent-relay", "dlq", "purge"],
            &["agent-relay", "dlq", "purge", "--limit", "5"],
            &["agent-relay", "dlq", "purge", "--all"],
            &["agent-relay", "dlq", "replay", "x", "--all"],
            &["agent-relay", "dlq", "list", "--reason", "bored"],
            &["agent-relay", "dlq", "list", "--state", "lost"],
            &["agent-relay", "dlq", "list", "--since", "yesterday"],
            &["agent-relay", "dlq", "show"],
        ] {
            let err = parse(bad).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        let err = parse(&["agent-relay", "dlq", "purge", "--all"]).expect_err("refused");
        assert!(err.to_string().contains("add --yes"), "{err}");
        let err = parse(&["agent-relay", "dlq", "ack"]).expect_err("refused");
        assert!(err.to_string().contains("--all"), "{err}");
    }

    #[test]
    fn consensus_options_become_the_proposal() {
        let cli = parse(&[
            "agent-relay",
            "consensus",
            "propose",
            "Release",
            "--participants",
            "Lead, Dev",
            "--participants",
            "QA",
            "--type",
            "weighted",
            "--weight",
            "lead=2.5",
            "--timeout",
            "1h",
            "--as",
            "alice",
        ])
        .expect("parses");
        let Command::Consensus(ConsensusArgs {
            action: ConsensusAction::Propose(p),
        }) = cli.command
        else {
            panic!("expected consensus propose");
        };
        assert_eq!(p.participants, ["Lead", "Dev", "QA"]);
        assert_eq!(p.ctype, ConsensusType::Weighted);
        assert_eq!(p.weights, [("lead".to_string(), 2.5)]);
        assert_eq!(p.timeout, Some(3_600_000));
        assert_eq!(p.as_name.as_deref(), Some("alice"));

        for (text, value) in [("0.75", 0.75), ("75%", 0.75), ("3/4", 0.75), ("1", 1.0)] {
            assert_eq!(parse_threshold(text), Ok(value), "{text}");
        }
        for bad in ["0.5", "50%", "1/2", "1.01", "x", "1/0", "NaN"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout("90000"), Ok(90_000));
        assert_eq!(parse_timeout("30s"), Ok(30_000));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_weight("A=0").is_err());
        assert!(parse_weight("A=inf").is_err());
        assert!(parse_weight("=2").is_err());

        let cli = parse(&[
            "agent-relay",
            "consensus",
            "vote",
            "prop_1",
            "Abstain",
            "--as",
            "alice",
        ])
        .expect("parses");
        let Command::Consensus(ConsensusArgs {
            action: ConsensusAction::Vote(v),
        }) = cli.command
        else {
            panic!("expected consensus vote");
        };
        assert_eq!(v.value, VoteValue::Abstain);
        assert_eq!(v.as_name, "alice");
    }

    #[test]
    fn consensus_usage_errors() {
        let base = [
            "agent-relay",
            "consensus",
            "propose",
            "T",
            "--participants",
            "A,B",
        ];
        for extra in [
            &["--threshold", "0.7"][..],
            &["--quorum", "1"],
            &["--weight", "A=2"],
            &["--type", "quorum", "--quorum", "3"],
            &["--type", "weighted", "--weight", "C=2"],
            &["--type", "supermajority", "--threshold", "0.5"],
            &["--type", "majority-ish"],
            &["--timeout", "never"],
        ] {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let err = parse(&args).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        for ok in [
            &["--type", "quorum", "--quorum", "2"][..],
            &["--type", "weighted", "--weight", "a=2", "--weight", "B=0.5"],
            &["--type", "supermajority", "--threshold", "2/3"],
            &["--type", "Unanimous"],
            &["--participants", "A", "--type", "quorum", "--quorum", "2"],
        ] {
            let args: Vec<&str> = base.iter().chain(ok).copied().collect();
            parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        for bad in [
            &["agent-relay", "consensus", "vote", "prop_1", "approve"][..],
            &["agent-relay", "consensus", "cancel", "prop_1"],
            &["agent-relay", "consensus", "list", "--status", "open"],
        ] {
            let err = parse(bad).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn keys_arguments() {
        let cli = parse(&[
            "agent-relay",
            "keys",
            "create",
            "Reviewer",
            "--algorithm",
            "ed25519",
            "--expires-in",
            "1d12h",
        ])
        .expect("parses");
        let Command::Keys(KeysArgs {
            action: KeysAction::Create(c),
        }) = cli.command
        else {
            panic!("expected keys create");
        };
        assert_eq!(c.algorithm.map(Algorithm::from), Some(Algorithm::Ed25519));
        assert_eq!(c.expires_in, Some(129_600_000));
        assert_eq!(parse_key_duration("0s"), Ok(0));
        assert_eq!(parse_key_duration("1w"), Ok(604_800_000));
        assert_eq!(
            parse_key_id("0123456789ABCDEF"),
            Ok("0123456789abcdef".into())
        );
        for bad in [
            &["agent-relay", "keys", "create", ".hidden"][..],
            &["agent-relay", "keys", "create", "_system"],
            &["agent-relay", "keys", "create", "a/b"],
            &["agent-relay", "keys", "create", "A", "--algorithm", "rsa"],
            &["agent-relay", "keys", "create", "A", "--expires-in", "0d"],
            &["agent-relay", "keys", "create", "A", "--expires-in", "30"],
            &["agent-relay", "keys", "rotate", "A", "--overlap", "soon"],
            &["agent-relay", "keys", "revoke", "A", "xyz"],
            &["agent-relay", "keys", "revoke", "A"],
            &["agent-relay", "keys", "export"],
            &["agent-relay", "bench", "latency", "--sign", "rsa"],
        ] {
            let err = parse(bad).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        let cli = parse(&[
            "agent-relay",
            "bench",
            "throughput",
            "--sign",
            "hmac-sha256",
        ])
        .expect("parses");
        let Command::Bench(BenchArgs {
            kind: BenchKind::Throughput(t),
        }) = cli.command
        else {
            panic!("expected bench throughput");
        };
        assert_eq!(t.sign, Some(SignArg::HmacSha256));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["agent-relay", "send", "Bob", "hi", "--data", "[1]"][..],
            &["agent-relay", "send", "Bob", "hi", "--from", "_system"],
            &["agent-relay", "send", "Bob", "hi", "--kind", "shout"],
            &["agent-relay", "history", "--since", "yesterday"],
            &["agent-relay", "-c", "nodot=1", "status"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
