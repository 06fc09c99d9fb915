//! Running the built `agent-relay` binary in a temporary project.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-relay");

/// `agent-relay --project <project>` with the environment that would redirect it removed.
pub fn command(project: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--project")
        .arg(project)
        .env_remove("AGENT_RELAY_SOCKET")
        .env_remove("AGENT_RELAY_LOG")
        .env_remove("RUST_LOG");
    c
}

pub fn agent_relay(project: &Path, args: &[&str]) -> Output {
    command(project)
        .args(args)
        .output()
        .expect("run agent-relay")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary directory that is a project root (it holds `.git`).
pub fn empty_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect("mark the project root");
    dir
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(project: &Path, args: &[&str]) -> String {
    let out = agent_relay(project, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn json_of(project: &Path, args: &[&str]) -> Value {
    let out = ok(project, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
}

/// Stops the project's daemon when dropped, even when an assertion fails half-way.
pub struct Daemon {
    pub project: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = agent_relay(&self.project, &["down"]);
    }
}

/// `agent-relay <group>` and each of its subcommands print help with an example that uses the
/// group; every subcommand offers `--json`; the top-level help lists the group.
pub fn assert_group_help(project: &Path, group: &str, subcommands: &[&str]) {
    let top = agent_relay(project, &["--help"]);
    assert!(text(&top.stdout).contains(group), "{}", text(&top.stdout));
    let mut commands: Vec<Vec<&str>> = vec![vec![group]];
    commands.extend(subcommands.iter().map(|s| vec![group, *s]));
    for cmd in commands {
        let mut args = cmd.clone();
        args.push("--help");
        let out = agent_relay(project, &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let help = text(&out.stdout);
        assert!(help.contains("Example"), "{args:?} has no example:\n{help}");
        assert!(
            help.contains(&format!("agent-relay {group}")),
            "{args:?}:\n{help}"
        );
        if cmd.len() == 2 {
            assert!(help.contains("--json"), "{args:?} has no --json:\n{help}");
        }
    }
}

/// Runs `args` and checks it is a usage error (exit 2, nothing on stdout) whose message
/// contains `expected`.
pub fn usage_error(project: &Path, args: &[&str], expected: &str) {
    let out = agent_relay(project, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    assert!(
        stderr.contains(expected),
        "{args:?}: expected {expected:?} in\n{stderr}"
    );
}
