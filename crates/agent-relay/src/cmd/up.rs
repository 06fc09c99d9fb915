//! `agent-relay up`: start the daemon.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::context::Ctx;

/// How long a daemon start may take before it is reported as failed.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(10);
/// Lines of `daemon.log` shown when a start fails.
const LOG_TAIL_LINES: usize = 20;

/// mimalloc: commit arena memory when it is used, not when the arena is reserved.
const ALLOCATOR_COMMIT_OPTION: &str = "MIMALLOC_ARENA_EAGER_COMMIT";

/// Runs the daemon in this process until it is signalled.
pub fn foreground(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    crate::allocator::tune_for_daemon();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if ctx.config.daemon.worker_threads > 0 {
        builder.worker_threads(ctx.config.daemon.worker_threads);
    }
    let runtime = builder
        .enable_all()
        .thread_name("relay-daemon")
        .on_thread_park(crate::allocator::collect_after_release)
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(relay_daemon::serve(ctx.config.clone(), ctx.paths.clone()))
        .map_err(|e| anyhow::anyhow!("the daemon stopped with an error: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Starts `agent-relay up --foreground` detached, with output appended to `daemon.log`, and
/// waits until it answers on the socket.
pub async fn background(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if let Some(status) = ctx.probe(Duration::from_secs(2)).await {
        let pid = ctx
            .pid_from(Some(&status))
            .map(|p| format!("pid {p}, "))
            .unwrap_or_default();
        println!(
            "agent-relay daemon already running ({pid}socket {})",
            ctx.socket.display()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let log_path = &ctx.paths.daemon_log;
    relay_config::ensure_relay_dir(&ctx.paths.relay_dir)
        .with_context(|| format!("cannot create {}", ctx.paths.relay_dir.display()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut child = daemon_command(ctx, log)?
        .spawn()
        .context("cannot start the daemon process")?;
    let pid = child.id();

    match wait_until_answering(ctx, &mut child).await? {
        Started::Answering => {
            println!(
                "agent-relay daemon running (pid {pid}, socket {})",
                ctx.socket.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Started::Exited(exit) => {
            print_log_tail(log_path, log_start);
            anyhow::bail!(
                "the daemon exited during startup ({exit}); its log is {}",
                log_path.display()
            );
        }
        Started::Silent => {
            print_log_tail(log_path, log_start);
            anyhow::bail!(
                "the daemon (pid {pid}) did not answer on {} within {} s; its log is {}",
                ctx.socket.display(),
                START_DEADLINE.as_secs(),
                log_path.display()
            );
        }
    }
}

/// How a daemon process just started turned out.
pub(crate) enum Started {
    /// It answers on `ctx`'s socket.
    Answering,
    /// It exited first.
    Exited(std::process::ExitStatus),
    /// Still running, but silent for [`START_DEADLINE`].
    Silent,
}

/// Waits until `child`, a daemon just started for `ctx`, answers on the socket, exits, or lets
/// [`START_DEADLINE`] pass.
pub(crate) async fn wait_until_answering(
    ctx: &Ctx,
    child: &mut std::process::Child,
) -> anyhow::Result<Started> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(exit) = child
            .try_wait()
            .context("cannot check the daemon process")?
        {
            return Ok(Started::Exited(exit));
        }
        if ctx.probe(Duration::from_millis(500)).await.is_some() {
            return Ok(Started::Answering);
        }
        if Instant::now() >= deadline {
            return Ok(Started::Silent);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `agent-relay up --foreground` for `ctx`'s project in its own process group, with no input
/// and its output going to `log`.
pub(crate) fn daemon_command(
    ctx: &Ctx,
    log: std::fs::File,
) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe().context("cannot find the agent-relay executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(reexec_args(ctx))
        .args(["up", "--foreground"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the daemon log")?)
        .stderr(log)
        .process_group(0);
    // The allocator reads its options before main runs: committing its arenas as they are used
    // keeps an idle daemon near 14 MiB resident instead of 27.
    if std::env::var_os(ALLOCATOR_COMMIT_OPTION).is_none() {
        command.env(ALLOCATOR_COMMIT_OPTION, "0");
    }
    Ok(command)
}

/// The global options for the re-executed daemon, so it finds the same project, socket and
/// overrides regardless of its working directory.
fn reexec_args(ctx: &Ctx) -> Vec<String> {
    let mut args = vec![
        "--project".to_string(),
        ctx.paths.root.to_string_lossy().into_owned(),
    ];
    if ctx.global.socket.is_some() {
        args.push("--socket".into());
        args.push(ctx.socket.to_string_lossy().into_owned());
    }
    for o in &ctx.global.config_set {
        args.push("-c".into());
        args.push(format!("{}={}", o.key, o.value));
    }
    args
}

/// Prints the last lines this start wrote to the daemon log.
fn print_log_tail(path: &Path, from: u64) {
    match log_tail(path, from) {
        Some(tail) => {
            eprintln!("--- last lines of {} ---", path.display());
            eprintln!("{tail}");
            eprintln!("---");
        }
        None => eprintln!("(the daemon wrote nothing to {})", path.display()),
    }
}

/// The last lines of the daemon log at `path` written after byte `from`; `None` when there are
/// none (or the log cannot be read).
pub(crate) fn log_tail(path: &Path, from: u64) -> Option<String> {
    let mut text = String::new();
    OpenOptions::new()
        .read(true)
        .open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.read_to_string(&mut text)
        })
        .ok()?;
    if text.trim().is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    Some(lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_is_the_last_lines_written_after_the_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("daemon.log");
        assert_eq!(log_tail(&path, 0), None, "no log at all");
        let earlier = "from an earlier start\n";
        let lines: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
        std::fs::write(&path, format!("{earlier}{}\n", lines.join("\n"))).expect("write log");
        let tail = log_tail(&path, earlier.len() as u64).expect("a tail");
        assert_eq!(tail, lines[30 - LOG_TAIL_LINES..].join("\n"));
        let end = std::fs::metadata(&path).expect("metadata").len();
        assert_eq!(log_tail(&path, end), None, "nothing written since");
        std::fs::write(&path, "  \n\n").expect("write log");
        assert_eq!(log_tail(&path, 0), None, "only blank lines");
    }
}
