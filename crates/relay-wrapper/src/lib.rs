//! The agent wrapper: runs an agent CLI (Claude Code, Codex, Gemini CLI, a shell…) inside a
//! pseudo-terminal and connects it to the agent-relay daemon.
//!
//! - **Outgoing**: everything the agent prints is rendered by a terminal emulator
//!   ([`screen`]), parsed with the one relay grammar (`relay-grammar`), and each printed
//!   command is sent exactly once ([`detect`]): messages, fenced and `[await]` messages,
//!   outbox files (`->relay-file:ID`), spawn and release.
//! - **Incoming**: messages for the agent wait in a queue and are typed into it when its
//!   readiness profile ([`profile`]) says it takes input; the wrapper confirms each injection on
//!   screen before it acknowledges the message to the daemon ([`inject`]).
//! - **Lifecycle**: the agent runs as the leader of its own session; stopping it stops its whole
//!   process group; its exit code is reported, and a crash is announced to `@users`. Raw output
//!   goes to `.agent-relay/logs/<name>.log` and to observers as LOG frames ([`logs`]).
//!
//! [`Wrapper::start`] starts one agent and returns a handle; `agent-relay run` uses it in
//! [`Mode::Interactive`] (the user's terminal is passed through), the daemon's spawn manager in
//! [`Mode::Headless`].

pub mod detect;
pub mod dispatch;
mod error;
pub mod inject;
pub mod logs;
mod options;
pub mod profile;
pub mod pty;
mod runner;
pub mod screen;
pub mod terminal;

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::time::Instant;

use bytes::Bytes;
use relay_client::{Client, ClientConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::WrapperError;
pub use inject::InjectConfig;
pub use options::{Mode, WrapperOptions};
pub use profile::ReadinessProfile;
pub use runner::{InjectStats, WrapperExit};

use crate::detect::Detector;
use crate::dispatch::Dispatcher;
use crate::inject::{InjectQueue, Stage};
use crate::logs::LogSink;
use crate::pty::{ChildSpec, PtyChild};
use crate::runner::Runner;
use crate::screen::Screen;

/// Logical lines of scrollback the parser looks back over.
const HISTORY_LINES: usize = 400;

/// A running agent.
pub struct Wrapper {
    /// The agent process (also its process group id).
    pub pid: u32,
    stop: CancellationToken,
    join: JoinHandle<WrapperExit>,
}

impl Wrapper {
    /// Connects to the daemon as `opts.name`, starts the agent in a PTY and runs the wrapper
    /// loop in a task.
    pub async fn start(opts: WrapperOptions) -> Result<Wrapper, WrapperError> {
        relay_protocol::ids::validate_agent_name(&opts.name).map_err(|e| {
            WrapperError::BadName {
                name: opts.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let outbox = opts.outbox_dir();
        make_private_dir(&outbox, "the outbox")?;

        let mut config = ClientConfig::new(&opts.socket, &opts.name);
        config.cli = Some(
            opts.cli_label
                .clone()
                .unwrap_or_else(|| program_name(&opts.program)),
        );
        config.program = Some(opts.program.clone());
        config.task = opts.task.clone();
        config.model = opts.model.clone();
        config.working_directory = opts
            .cwd
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .map(|p| p.to_string_lossy().into_owned());
        // Messages are acknowledged only once they are on the agent's screen, and redeliveries
        // of failed injections must reach the wrapper again.
        config.auto_ack = false;
        config.dedupe_capacity = 0;
        config.signing = opts.signing.clone();
        let (client, events) = Client::connect(config).await?;

        let (rows, cols) = match opts.mode {
            Mode::Interactive => terminal::terminal_size().unwrap_or((opts.rows, opts.cols)),
            Mode::Headless => (opts.rows, opts.cols),
        };
        let mut env: Vec<(String, OsString)> = vec![
            ("AGENT_RELAY_NAME".into(), opts.name.clone().into()),
            ("AGENT_RELAY_OUTBOX".into(), outbox.clone().into()),
            ("AGENT_RELAY_SOCKET".into(), opts.socket.clone().into()),
        ];
        if opts.mode == Mode::Headless || std::env::var_os("TERM").is_none() {
            env.push(("TERM".into(), "xterm-256color".into()));
        }
        for (k, v) in &opts.env {
            env.push((k.clone(), v.into()));
        }
        let spec = ChildSpec {
            program: opts.program.clone(),
            args: opts.args.clone(),
            env,
            cwd: opts.cwd.clone(),
            rows,
            cols,
        };
        let child = match PtyChild::spawn(&spec) {
            Ok(c) => c,
            Err(e) => {
                client.close().await;
                return Err(e);
            }
        };
        let pid = child.pid;
        let input = child.input();

        let (user_input, raw) = match opts.mode {
            Mode::Interactive => {
                let raw = terminal::RawMode::enter()
                    .map_err(|e| WrapperError::Terminal(e.to_string()))?;
                (Some(read_stdin()), raw)
            }
            Mode::Headless => (None, None),
        };

        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let profile = ReadinessProfile::for_command(&opts.program, opts.profile.as_deref());
        let profile = match opts.ready_max_wait {
            Some(w) => profile.with_max_wait(w),
            None => profile,
        };
        let logs = LogSink::open(&opts.log_file(), opts.stream_logs).await;
        let stop = CancellationToken::new();
        let runner = Runner {
            dispatcher: Dispatcher::new(client.clone(), opts.name.clone(), outbox, notice_tx),
            screen: Screen::new(rows, cols, HISTORY_LINES),
            detector: Detector::new(runner::grammar_options()),
            queue: InjectQueue::default(),
            stage: Stage::Idle {
                until: Instant::now(),
            },
            profile,
            notices: notice_rx,
            logs,
            stop: stop.clone(),
            user_input,
            last_user_key: None,
            stats: InjectStats::default(),
            explicit_ready: false,
            scan_due: false,
            last_scan: Instant::now(),
            opts,
            client,
            events,
            child,
            input,
        };
        let join = tokio::spawn(async move {
            let exit = runner.run().await;
            drop(raw);
            exit
        });
        Ok(Wrapper { pid, stop, join })
    }

    /// Asks the wrapper to stop the agent (SIGTERM to its process group, SIGKILL after the
    /// grace period).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A token that stops the agent when cancelled.
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits for the agent to exit.
    pub async fn wait(self) -> WrapperExit {
        match self.join.await {
            Ok(exit) => exit,
            Err(e) => {
                tracing::error!(error = %e, "the wrapper task failed");
                WrapperExit {
                    code: 1,
                    stopped: false,
                }
            }
        }
    }
}

fn program_name(program: &str) -> String {
    std::path::Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program)
        .to_string()
}

fn make_private_dir(path: &std::path::Path, what: &'static str) -> Result<(), WrapperError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| WrapperError::Io {
            what,
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// The user's keystrokes, read on a thread (a blocking read of a terminal cannot be cancelled;
/// the thread ends with the process).
fn read_stdin() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("relay-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .ok();
    rx
}
