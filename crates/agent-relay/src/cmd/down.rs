//! `agent-relay down`: stop the daemon.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use relay_config::ProjectPaths;
use rustix::io::Errno;
use rustix::process::{kill_process, test_kill_process, Pid, Signal};

use crate::cli::DownArgs;
use crate::context::{read_pid_file, Ctx};

pub async fn run(ctx: &Ctx, args: &DownArgs) -> anyhow::Result<ExitCode> {
    let pid_file = ProjectPaths::pid_file_for(&ctx.socket);
    let status = ctx.probe(Duration::from_secs(2)).await;
    let answering = status.is_some();
    let pid = ctx
        .pid_from(status.as_ref())
        .or_else(|| read_pid_file(&pid_file));

    let Some(pid) = pid else {
        if answering {
            anyhow::bail!(
                "a daemon answers on {} but its pid is unknown (no pid file at {}); stop it where it runs",
                ctx.socket.display(),
                pid_file.display()
            );
        }
        if pid_file.exists() {
            remove_file(&pid_file)?;
            println!("removed unreadable pid file {}", pid_file.display());
        }
        println!(
            "no agent-relay daemon is running for {}",
            ctx.paths.root.display()
        );
        return Ok(ExitCode::SUCCESS);
    };

    let stale = !process_alive(pid) || (!answering && !looks_like_agent_relay(pid));
    if stale {
        if pid_file.exists() {
            remove_file(&pid_file)?;
            println!(
                "removed stale pid file {} (pid {pid} is not an agent-relay daemon)",
                pid_file.display()
            );
        }
        remove_stale_socket(&ctx.socket)?;
        println!(
            "no agent-relay daemon is running for {}",
            ctx.paths.root.display()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let target = Pid::from_raw(i32::try_from(pid)?)
        .ok_or_else(|| anyhow::anyhow!("invalid pid {pid} in {}", pid_file.display()))?;
    match kill_process(target, Signal::TERM) {
        Ok(()) => {}
        Err(Errno::SRCH) => {}
        Err(Errno::PERM) => {
            anyhow::bail!("not allowed to signal the daemon (pid {pid}); it runs as another user")
        }
        Err(e) => anyhow::bail!("cannot signal the daemon (pid {pid}): {e}"),
    }

    let timeout = Duration::from_secs(args.timeout_secs);
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the daemon (pid {pid}) did not stop within {} s; see {} or force it with `kill -9 {pid}`",
                timeout.as_secs(),
                ctx.paths.daemon_log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The daemon removes its socket on exit; give it until the deadline, then clean up.
    while ctx.socket.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    remove_stale_socket(&ctx.socket)?;
    if pid_file.exists() {
        remove_file(&pid_file)?;
    }
    println!("agent-relay daemon stopped (pid {pid})");
    Ok(ExitCode::SUCCESS)
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot remove {}: {e}", path.display())),
    }
}

/// Removes a socket file nobody listens on (never a path that is not a socket).
fn remove_stale_socket(socket: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(socket) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Ok(());
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Ok(());
    }
    remove_file(socket)?;
    println!("removed stale socket {}", socket.display());
    Ok(())
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn process_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match test_kill_process(p) {
        Ok(()) | Err(Errno::PERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the parenthesised command name, which may contain spaces.
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(false)
}

/// Guards against signalling an unrelated process that reused a stale pid. Without `/proc`
/// there is no way to tell, and the pid file is trusted.
fn looks_like_agent_relay(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("agent-relay")
                || text.contains("relay-daemon")
                || text.contains("relay_daemon")
        }
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_not_a_daemon() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
        assert!(!is_zombie(std::process::id()));
    }
}
