//! What a wrapper runs and how.

use std::path::PathBuf;
use std::time::Duration;

use relay_client::ClientSigning;

use crate::inject::InjectConfig;

/// Whether the wrapper owns the user's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The user's terminal is put in raw mode and passed through; output is shown.
    Interactive,
    /// No terminal (spawned workers): output only goes to the log and the screen model.
    Headless,
}

/// Everything [`crate::Wrapper::start`] needs.
#[derive(Debug, Clone)]
pub struct WrapperOptions {
    /// The agent's name on the relay.
    pub name: String,
    /// The program and its arguments.
    pub program: String,
    pub args: Vec<String>,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The project's `.agent-relay/` directory (outbox and logs live under it).
    pub relay_dir: PathBuf,
    pub cwd: Option<PathBuf>,
    pub mode: Mode,
    /// Readiness profile name (`claude`, `codex`, `gemini`, `generic`); default: by program.
    pub profile: Option<String>,
    /// Longest wait for the agent to look ready before a message is typed anyway.
    pub ready_max_wait: Option<Duration>,
    pub inject: InjectConfig,
    /// Terminal size for headless mode (interactive mode follows the user's terminal).
    pub rows: u16,
    pub cols: u16,
    /// Extra environment for the agent.
    pub env: Vec<(String, String)>,
    /// How the wrapper's connection signs what it sends.
    pub signing: Option<ClientSigning>,
    /// Shown by `agent-relay agents` (`cli`).
    pub cli_label: Option<String>,
    pub task: Option<String>,
    pub model: Option<String>,
    /// Who spawned this agent (the crash report goes to it as well as to `@users`).
    pub spawner: Option<String>,
    /// Grace period between SIGTERM and SIGKILL when stopping the agent.
    pub stop_grace: Duration,
    /// Stream output to the daemon as LOG frames (observers, `agent-relay logs -f`).
    pub stream_logs: bool,
}

impl WrapperOptions {
    pub fn new(
        name: impl Into<String>,
        program: impl Into<String>,
        args: Vec<String>,
        socket: impl Into<PathBuf>,
        relay_dir: impl Into<PathBuf>,
    ) -> WrapperOptions {
        WrapperOptions {
            name: name.into(),
            program: program.into(),
            args,
            socket: socket.into(),
            relay_dir: relay_dir.into(),
            cwd: None,
            mode: Mode::Headless,
            profile: None,
            ready_max_wait: None,
            inject: InjectConfig::default(),
            rows: 40,
            cols: 120,
            env: Vec::new(),
            signing: None,
            cli_label: None,
            task: None,
            model: None,
            spawner: None,
            stop_grace: Duration::from_secs(5),
            stream_logs: true,
        }
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.relay_dir.join("outbox").join(&self.name)
    }

    pub fn log_file(&self) -> PathBuf {
        self.relay_dir
            .join("logs")
            .join(format!("{}.log", self.name))
    }
}
