//! Driving wrapped agents for real: the daemon as a process, `agent-relay run` under a real PTY
//! (the test plays the user's terminal), the scripted fake agent as the agent CLI, and a plain
//! relay client to observe.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, ok, BIN};

/// The fake agent binary, built once per test process.
pub fn fake_agent() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "agent-relay",
                "--example",
                "fake-agent",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the fake agent");
        assert!(status.success(), "building the fake agent failed");
        let bin = PathBuf::from(BIN);
        let path = bin
            .parent()
            .expect("target dir")
            .join("examples")
            .join("fake-agent");
        assert!(path.exists(), "{} was not built", path.display());
        path
    })
    .clone()
}

/// A project with a running daemon, stopped on drop.
pub struct Project {
    // Fields drop in order: the daemon is stopped while its project directory still exists.
    _daemon: common::Daemon,
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn start(extra: &[&str]) -> Project {
        let dir = common::empty_project();
        let mut args: Vec<&str> = vec!["-c", "limits.rate_limit_enabled=false"];
        args.extend_from_slice(extra);
        args.push("up");
        ok(dir.path(), &args);
        let daemon = common::Daemon {
            project: dir.path().to_path_buf(),
        };
        Project {
            dir,
            _daemon: daemon,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join(".agent-relay/relay.sock")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// A relay client (for observing and sending).
    pub async fn client(
        &self,
        name: &str,
        user: bool,
    ) -> (relay_client::Client, relay_client::EventStream) {
        let mut c = relay_client::ClientConfig::new(self.socket(), name);
        if user {
            c.entity_type = relay_protocol::EntityType::User;
        }
        relay_client::Client::connect(c).await.expect("connect")
    }
}

/// The fake agent's record file, parsed.
pub fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn submits(path: &Path) -> Vec<String> {
    records(path)
        .into_iter()
        .filter(|r| r["event"] == "submit")
        .filter_map(|r| r["text"].as_str().map(str::to_string))
        .filter(|t| !t.is_empty())
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `timeout`.
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Appends a command line to a fake agent's control file.
pub fn control(path: &Path, command: Value) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open control file");
    writeln!(f, "{command}").expect("write control command");
}

/// `agent-relay run` under a PTY the test holds, like a user's terminal.
pub struct Wrapped {
    pub name: String,
    pub record: PathBuf,
    pub control: PathBuf,
    pub screen: Arc<Mutex<Vec<u8>>>,
    child: tokio::process::Child,
    pty_writer: pty_process::OwnedWritePty,
}

impl Wrapped {
    /// Runs `agent-relay run -n <name> -- fake-agent` with the fake agent's files in the project.
    pub async fn start(project: &Project, name: &str, env: &[(&str, &str)]) -> Wrapped {
        Self::start_with(project, name, env, &[]).await
    }

    pub async fn start_with(
        project: &Project,
        name: &str,
        env: &[(&str, &str)],
        run_args: &[&str],
    ) -> Wrapped {
        let record = project.file(&format!("{name}.record"));
        let fake = fake_agent().display().to_string();
        Self::spawn_run(project, name, env, run_args, &[fake.as_str()], &record).await
    }

    /// Runs `agent-relay run -n <name> <run_args> -- <command>`; started once `record` holds a
    /// `start` event.
    pub async fn start_cmd(
        project: &Project,
        name: &str,
        run_args: &[&str],
        command: &[&str],
        record: &Path,
    ) -> Wrapped {
        Self::spawn_run(project, name, &[], run_args, command, record).await
    }

    async fn spawn_run(
        project: &Project,
        name: &str,
        env: &[(&str, &str)],
        run_args: &[&str],
        command: &[&str],
        record: &Path,
    ) -> Wrapped {
        let record = record.to_path_buf();
        let control = project.file(&format!("{name}.control"));
        let (pty, pts) = pty_process::open().expect("open pty");
        pty.resize(pty_process::Size::new(30, 100)).expect("size");
        let mut cmd = pty_process::Command::new(BIN)
            .arg("--project")
            .arg(project.path())
            .arg("run")
            .arg("-n")
            .arg(name)
            .args(run_args)
            .arg("--")
            .args(command)
            .env("FAKE_AGENT_RECORD", &record)
            .env("FAKE_AGENT_CONTROL", &control)
            .env("FAKE_AGENT_BUSY_MS", "150")
            .env_remove("AGENT_RELAY_SOCKET")
            .env_remove("RUST_LOG")
            .env("AGENT_RELAY_LOG", "debug");
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        let child = cmd.spawn(pts).expect("spawn agent-relay run");
        let (mut reader, writer) = pty.into_split();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = screen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.extend_from_slice(&buf[..n]);
                }
            }
        });
        let w = Wrapped {
            name: name.to_string(),
            record,
            control,
            screen,
            child,
            pty_writer: writer,
        };
        // Started: the fake agent recorded its start and the name is connected.
        let rec = w.record.clone();
        eventually(Duration::from_secs(20), "the fake agent to start", || {
            records(&rec)
                .iter()
                .any(|r| r["event"] == "start")
                .then_some(())
        })
        .await;
        w
    }

    pub fn send(&self, command: Value) {
        control(&self.control, command);
    }

    pub fn submits(&self) -> Vec<String> {
        submits(&self.record)
    }

    pub fn records(&self) -> Vec<Value> {
        records(&self.record)
    }

    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().map(|s| s.clone()).unwrap_or_default())
            .into_owned()
    }

    /// Types on the user's terminal.
    pub async fn type_keys(&mut self, bytes: &[u8]) {
        self.pty_writer.write_all(bytes).await.expect("type");
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        self.pty_writer
            .resize(pty_process::Size::new(rows, cols))
            .expect("resize");
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for `agent-relay run` to exit; its exit code.
    pub async fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("agent-relay run did not exit")
            .expect("wait");
        status.code()
    }
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Whether a process (or, with `group`, any process of its group) is alive.
pub fn alive(pid: u32, group: bool) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    if group {
        rustix::process::test_kill_process_group(p).is_ok()
    } else {
        rustix::process::test_kill_process(p).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }
}
