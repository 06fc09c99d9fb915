//! `agent-relay`: the command line of the agent-relay messaging daemon.
//!
//! This binary only parses arguments and formats output. Talking to the daemon is
//! `relay-client`, the daemon itself is `relay-daemon`, and finding the project and its
//! configuration is `relay-config`.
//!
//! Exit codes: 0 success, 1 failure (including "no daemon is running"), 2 usage error.

mod allocator;
mod bench;
mod cli;
mod cmd;
mod context;
mod output;
mod since;

use std::process::ExitCode;

use clap::Parser;
use relay_config::RelayConfig;
use tracing_subscriber::EnvFilter;

use crate::cli::{BenchKind, Cli, Command, ConsensusAction, DlqAction, KeysAction};
use crate::context::Ctx;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.validate() {
        e.exit();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(&cli.global)?;
    if let Command::Run(args) = cli.command {
        // The agent owns the terminal: the wrapper logs to a file.
        return cmd::run::run(&ctx, args);
    }
    init_logging(&ctx.config);
    match cli.command {
        Command::Up(args) if args.foreground => cmd::up::foreground(&ctx),
        Command::Up(_) => runtime()?.block_on(cmd::up::background(&ctx)),
        Command::Down(args) => runtime()?.block_on(cmd::down::run(&ctx, &args)),
        Command::Status(args) => runtime()?.block_on(cmd::status::run(&ctx, args.json)),
        Command::Send(args) => runtime()?.block_on(cmd::send::run(&ctx, args)),
        Command::Agents(args) => runtime()?.block_on(cmd::agents::agents(&ctx, &args)),
        Command::Who(args) => runtime()?.block_on(cmd::agents::who(&ctx, args.json)),
        Command::History(args) => runtime()?.block_on(cmd::history::run(&ctx, args)),
        Command::Read(args) => runtime()?.block_on(cmd::read::run(&ctx, &args)),
        Command::Tail(args) => runtime()?.block_on(cmd::tail::run(&ctx, args)),
        Command::Dlq(args) => {
            let rt = runtime()?;
            match args.action {
                DlqAction::List(a) => rt.block_on(cmd::dlq::list(&ctx, &a)),
                DlqAction::Show(a) => rt.block_on(cmd::dlq::show(&ctx, &a)),
                DlqAction::Stats(a) => rt.block_on(cmd::dlq::stats(&ctx, a.json)),
                DlqAction::Replay(a) => rt.block_on(cmd::dlq::replay(&ctx, &a)),
                DlqAction::Ack(a) => rt.block_on(cmd::dlq::ack(&ctx, &a)),
                DlqAction::Purge(a) => rt.block_on(cmd::dlq::purge(&ctx, &a)),
            }
        }
        Command::Consensus(args) => {
            let rt = runtime()?;
            match args.action {
                ConsensusAction::Propose(a) => rt.block_on(cmd::consensus::propose(&ctx, &a)),
                ConsensusAction::Vote(a) => rt.block_on(cmd::consensus::vote(&ctx, &a)),
                ConsensusAction::List(a) => rt.block_on(cmd::consensus::list(&ctx, &a)),
                ConsensusAction::Show(a) => rt.block_on(cmd::consensus::show(&ctx, &a)),
                ConsensusAction::Cancel(a) => rt.block_on(cmd::consensus::cancel(&ctx, &a)),
                ConsensusAction::Stats(a) => rt.block_on(cmd::consensus::stats(&ctx, a.json)),
            }
        }
        Command::Keys(args) => match args.action {
            KeysAction::Create(a) => cmd::keys::create(&ctx, &a),
            KeysAction::Rotate(a) => cmd::keys::rotate(&ctx, &a),
            KeysAction::List(a) => cmd::keys::list(&ctx, a.json),
            KeysAction::Export(a) => cmd::keys::export(&ctx, &a),
            KeysAction::Revoke(a) => cmd::keys::revoke(&ctx, &a),
        },
        Command::Run(_) => unreachable!("handled above"),
        Command::Spawn(args) => runtime()?.block_on(cmd::spawn::spawn(&ctx, args)),
        Command::Release(args) => runtime()?.block_on(cmd::spawn::release(&ctx, &args)),
        Command::Logs(args) => runtime()?.block_on(cmd::logs::run(&ctx, &args)),
        Command::Context(args) => runtime()?.block_on(cmd::context::run(&ctx, &args)),
        Command::Bench(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            match args.kind {
                BenchKind::Latency(a) => rt.block_on(bench::latency::run(&ctx, &a)),
                BenchKind::Throughput(a) => rt.block_on(bench::throughput::run(&ctx, &a)),
                BenchKind::Fanout(a) => rt.block_on(bench::fanout::run(&ctx, &a)),
                BenchKind::Signing(a) => rt.block_on(bench::signing::run(&ctx, &a)),
            }
        }
    }
}

/// A small runtime for commands that make a few requests.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Logs go to stderr. The filter comes from `AGENT_RELAY_LOG`, else `RUST_LOG`, else the
/// configuration's `log.level`; JSON lines when `AGENT_RELAY_LOG_JSON=1` or `log.json`.
pub(crate) fn init_logging(config: &RelayConfig) {
    init_logging_to(config, None)
}

/// [`init_logging`] into `file` instead of stderr when given.
pub(crate) fn init_logging_to(config: &RelayConfig, file: Option<std::fs::File>) {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let spec = from_env("AGENT_RELAY_LOG")
        .or_else(|| from_env("RUST_LOG"))
        .unwrap_or_else(|| config.log.level.clone());
    let filter = match EnvFilter::try_new(&spec) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("agent-relay: ignoring the log filter {spec:?} ({e}); using info");
            EnvFilter::new("info")
        }
    };
    let json = from_env("AGENT_RELAY_LOG_JSON")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(config.log.json);
    use std::io::IsTerminal;
    if let Some(file) = file {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file));
        let _ = if json {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A subscriber can only be installed once per process; a second attempt is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
