//! `agent-relay logs`: an agent's terminal output from `.agent-relay/logs/<name>.log`.
//!
//! Reading the file works with or without a daemon, for agents run with `run` and spawned ones.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::LogsArgs;
use crate::context::Ctx;

/// Bytes read from the end of the file to find the last lines.
const TAIL_WINDOW: u64 = 1024 * 1024;

pub async fn run(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    relay_protocol::ids::validate_agent_name(&args.name)
        .map_err(|e| anyhow::anyhow!("invalid agent name {:?}: {e}", args.name))?;
    let path = ctx
        .paths
        .relay_dir
        .join("logs")
        .join(format!("{}.log", args.name));
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "no output logged for {} ({} does not exist); is the name right? `agent-relay agents` lists them",
                args.name,
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let from = lines.len().saturating_sub(args.lines);
    let mut out = std::io::stdout().lock();
    for l in &lines[from..] {
        out.write_all(l.as_bytes())?;
    }
    out.flush()?;
    drop(out);
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut pos = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let now_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(pos);
        if now_len < pos {
            // Truncated or replaced: start over.
            pos = 0;
        }
        if now_len == pos {
            continue;
        }
        file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(pos))?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            let mut out = std::io::stdout().lock();
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
}
