//! The agent's process in a pseudo-terminal.
//!
//! The child is the leader of a new session with the PTY as its controlling terminal, so its
//! process group id is its pid and stopping it stops everything it started. Output is read by a
//! task into a bounded channel; input goes through a writer task so that a child that does not
//! read its input never blocks the wrapper.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::WrapperError;

/// Set when this process turned transparent huge pages off for itself: the flag is inherited
/// across `fork` and `exec`, and an agent should not run under the daemon's memory policy.
static HUGE_PAGES_BACK_ON_IN_CHILDREN: AtomicBool = AtomicBool::new(false);

/// Makes every child started from now on allow transparent huge pages again (Linux's
/// `PR_SET_THP_DISABLE` is cleared in the child before it executes the agent). For a process
/// that disabled them for itself only.
pub fn allow_huge_pages_in_children() {
    HUGE_PAGES_BACK_ON_IN_CHILDREN.store(true, Ordering::Relaxed);
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, OsString)>,
    pub cwd: Option<PathBuf>,
    pub rows: u16,
    pub cols: u16,
}

/// A running child.
pub struct PtyChild {
    pub pid: u32,
    /// Resolves with the exit status once the child has exited.
    pub exit: tokio::sync::oneshot::Receiver<Option<ExitStatus>>,
    pub output: mpsc::Receiver<Bytes>,
    input: mpsc::Sender<Bytes>,
    resize_handle: ResizeHandle,
}

/// Resizes the PTY from any task.
#[derive(Clone)]
pub struct ResizeHandle {
    tx: mpsc::UnboundedSender<(u16, u16)>,
}

impl ResizeHandle {
    pub fn resize(&self, rows: u16, cols: u16) {
        let _ = self.tx.send((rows, cols));
    }
}

/// Writes to the child's terminal.
#[derive(Clone)]
pub struct PtyInput {
    tx: mpsc::Sender<Bytes>,
}

impl PtyInput {
    /// Queues bytes for the child; false when the child is gone or its input is full for
    /// longer than a second (it stopped reading).
    pub async fn write(&self, bytes: impl Into<Bytes>) -> bool {
        let send = self.tx.send(bytes.into());
        matches!(
            tokio::time::timeout(Duration::from_secs(1), send).await,
            Ok(Ok(()))
        )
    }
}

impl PtyChild {
    pub fn spawn(spec: &ChildSpec) -> Result<PtyChild, WrapperError> {
        let (pty, pts) = pty_process::open().map_err(|e| WrapperError::Pty(e.to_string()))?;
        pty.resize(pty_process::Size::new(spec.rows.max(2), spec.cols.max(10)))
            .map_err(|e| WrapperError::Pty(e.to_string()))?;
        let mut cmd = pty_process::Command::new(&spec.program).args(&spec.args);
        for (k, v) in &spec.env {
            cmd = cmd.env(k, v);
        }
        if let Some(dir) = &spec.cwd {
            cmd = cmd.current_dir(dir);
        }
        #[cfg(target_os = "linux")]
        if HUGE_PAGES_BACK_ON_IN_CHILDREN.load(Ordering::Relaxed) {
            // SAFETY: the hook runs in the forked child before exec, where only
            // async-signal-safe work is allowed: it makes one prctl system call, allocates
            // nothing and takes no lock.
            cmd = unsafe {
                cmd.pre_exec(|| {
                    rustix::thread::disable_transparent_huge_pages(false).map_err(Into::into)
                })
            };
        }
        let mut child = cmd.spawn(pts).map_err(|e| WrapperError::Spawn {
            program: spec.program.clone(),
            reason: e.to_string(),
        })?;
        let pid = child.id().ok_or_else(|| WrapperError::Spawn {
            program: spec.program.clone(),
            reason: "the process exited at once".into(),
        })?;
        let (mut reader, mut writer) = pty.into_split();
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    // EIO once the child side is closed: the end of output.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out_tx
                            .send(Bytes::copy_from_slice(&buf[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(256);
        let (resize_tx, mut resize_rx) = mpsc::unbounded_channel::<(u16, u16)>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    data = in_rx.recv() => {
                        let Some(data) = data else { break };
                        if writer.write_all(&data).await.is_err() {
                            break;
                        }
                        let _ = writer.flush().await;
                    }
                    size = resize_rx.recv() => {
                        let Some((rows, cols)) = size else { break };
                        let _ = writer.resize(pty_process::Size::new(rows.max(2), cols.max(10)));
                    }
                }
            }
        });
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = exit_tx.send(child.wait().await.ok());
        });
        Ok(PtyChild {
            pid,
            exit: exit_rx,
            output: out_rx,
            input: in_tx,
            resize_handle: ResizeHandle { tx: resize_tx },
        })
    }

    pub fn input(&self) -> PtyInput {
        PtyInput {
            tx: self.input.clone(),
        }
    }

    pub fn resizer(&self) -> ResizeHandle {
        self.resize_handle.clone()
    }
}

/// Sends `signal` to the child's whole process group.
pub fn signal_group(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if rustix::process::kill_process_group(pid, signal).is_err() {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Whether any process of the group is still alive.
pub fn group_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    rustix::process::test_kill_process_group(pid).is_ok()
}

/// The shell convention for an exit status: the code, or 128 + the signal number.
pub fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
