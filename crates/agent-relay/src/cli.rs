//! Command-line arguments.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use relay_config::Override;
use relay_protocol::{DlqFilter, PayloadKind};
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

impl Cli {
    /// Checks what clap cannot express; a failure is a usage error (exit code 2).
    pub fn validate(&self) -> Result<(), clap::Error> {
        let Command::Dlq(dlq) = &self.command else {
            return Ok(());
        };
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
            DlqAction::List(_) | DlqAction::Show(_) | DlqAction::Stats(_) => ("", Ok(())),
        };
        result.map_err(|message| {
            let mut cmd = Cli::command();
            cmd.build();
            let kind = clap::error::ErrorKind::MissingRequiredArgument;
            match cmd
                .find_subcommand_mut("dlq")
                .and_then(|dlq| dlq.find_subcommand_mut(name))
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

fn parse_nonempty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
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
