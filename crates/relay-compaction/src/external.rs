//! The external summariser: a command that reads the transcript on stdin
//! and writes the summary to stdout.
//!
//! The command runs without a shell, in its own process group, with
//! `AGENT_RELAY_SUMMARY_MAX_TOKENS` set to the token cap. It has
//! `summarizer.timeout_ms` to exit and close its output; after that the
//! whole process group is killed (so `sh -c '…'` wrappers do not leave
//! their children behind) and the built-in summariser is used.

use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The environment variable that tells the command the token cap.
pub const MAX_TOKENS_ENV: &str = "AGENT_RELAY_SUMMARY_MAX_TOKENS";

/// The most stdout bytes kept (the rest is read and discarded).
const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// The most stderr bytes kept for the error message.
const MAX_STDERR_BYTES: usize = 4096;
/// The most stderr chars quoted in an error.
const STDERR_QUOTE_CHARS: usize = 300;

/// Why the external summariser's output was not used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SummarizerError {
    /// The program could not be started.
    #[error("cannot start summariser program {program:?}: {reason}; check `summarizer.command` (is it installed and on PATH?)")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's reason.
        reason: String,
    },
    /// It did not finish within the timeout and was killed.
    #[error("summariser {program:?} did not finish within {timeout_ms} ms and was killed; raise `summarizer.timeout_ms` or use a faster command")]
    Timeout {
        /// The program.
        program: String,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// It exited unsuccessfully.
    #[error("summariser {program:?} failed ({status}){stderr}")]
    Failed {
        /// The program.
        program: String,
        /// The exit status, in words.
        status: String,
        /// The start of its stderr, prefixed with `: `, or empty.
        stderr: String,
    },
    /// It exited successfully but printed nothing.
    #[error("summariser {program:?} printed no summary on stdout; it must write the summary of the transcript it reads on stdin")]
    EmptyOutput {
        /// The program.
        program: String,
    },
    /// Waiting for it failed.
    #[error("cannot wait for summariser {program:?}: {reason}")]
    Wait {
        /// The program.
        program: String,
        /// The operating system's reason.
        reason: String,
    },
}

/// Reads all of `reader`, keeping at most `cap` bytes.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(unix)]
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(error) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::debug!(%error, "killing the summariser's process group");
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: Option<u32>) {}

/// Runs `argv` with `input` on stdin; returns its trimmed stdout.
pub(crate) async fn run(
    argv: &[String],
    input: &str,
    timeout: Duration,
    max_tokens: usize,
) -> Result<String, SummarizerError> {
    let (program, args) = match argv.split_first() {
        Some((program, args)) => (program.clone(), args),
        None => {
            return Err(SummarizerError::Spawn {
                program: String::new(),
                reason: "the command is empty".to_owned(),
            })
        }
    };
    let mut command = Command::new(&program);
    command
        .args(args)
        .env(MAX_TOKENS_ENV, max_tokens.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn().map_err(|e| SummarizerError::Spawn {
        program: program.clone(),
        reason: e.to_string(),
    })?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let write = async move {
        if let Some(mut stdin) = stdin {
            // A command that exits without reading all of its input gets a
            // broken pipe here; its exit status and output decide.
            let _ = stdin.write_all(input.as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
    };
    let exchange = async {
        let ((), out, err, status) = tokio::join!(
            write,
            read_capped(stdout, MAX_OUTPUT_BYTES),
            read_capped(stderr, MAX_STDERR_BYTES),
            child.wait()
        );
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(timeout, exchange).await {
        Ok(done) => done,
        Err(_) => {
            kill_group(pid);
            let _ = child.kill().await;
            return Err(SummarizerError::Timeout {
                program,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
    };
    let status = status.map_err(|e| SummarizerError::Wait {
        program: program.clone(),
        reason: e.to_string(),
    })?;
    if !status.success() {
        let stderr_text = String::from_utf8_lossy(&err);
        let quoted: String = stderr_text
            .trim()
            .chars()
            .take(STDERR_QUOTE_CHARS)
            .collect();
        return Err(SummarizerError::Failed {
            program,
            status: status.to_string(),
            stderr: if quoted.is_empty() {
                String::new()
            } else {
                format!(": {quoted}")
            },
        });
    }
    let summary = String::from_utf8_lossy(&out).trim().to_owned();
    if summary.is_empty() {
        return Err(SummarizerError::EmptyOutput { program });
    }
    Ok(summary)
}
