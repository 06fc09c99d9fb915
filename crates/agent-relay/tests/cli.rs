//! The `agent-relay` binary: argument handling, help texts, exit codes, and the message every
//! data command prints when no daemon is running.

mod common;
use common::*;

const COMMANDS: &[&[&str]] = &[
    &[],
    &["up"],
    &["down"],
    &["status"],
    &["send"],
    &["agents"],
    &["who"],
    &["history"],
    &["read"],
    &["tail"],
    &["context"],
    &["bench"],
    &["bench", "latency"],
    &["bench", "throughput"],
    &["bench", "fanout"],
    &["bench", "signing"],
];

#[test]
fn every_command_has_help_with_an_example() {
    let project = empty_project();
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = agent_relay(project.path(), &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let help = text(&out.stdout);
        assert!(
            help.contains("Example"),
            "{args:?} --help has no example:\n{help}"
        );
        assert!(help.contains("agent-relay"), "{args:?}");
    }
}

#[test]
fn data_commands_have_json() {
    let project = empty_project();
    for cmd in [
        &["status"][..],
        &["send"],
        &["agents"],
        &["who"],
        &["history"],
        &["read"],
        &["tail"],
        &["context"],
        &["bench", "latency"],
        &["bench", "throughput"],
        &["bench", "fanout"],
        &["bench", "signing"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = text(&agent_relay(project.path(), &args).stdout);
        assert!(help.contains("--json"), "{cmd:?} has no --json");
    }
}

#[test]
fn usage_errors_exit_2() {
    let project = empty_project();
    for args in [
        &["frobnicate"][..],
        &["status", "--no-such-flag"],
        &["send", "Bob"],
        &["send", "Bob", "hi", "--data", "not json"],
        &["send", "Bob", "hi", "--from", "_router"],
        &["history", "--since", "yesterday"],
        &["history", "--limit", "many"],
        &["-c", "missing-dot", "status"],
        &["bench", "throughput", "--pairs", "0"],
        &["bench", "signing", "--rounds", "0"],
        &["bench", "signing", "--sign", "rsa"],
    ] {
        let out = agent_relay(project.path(), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).is_empty(), "{args:?} explains the error");
    }
}

#[test]
fn since_accepts_durations_times_and_epoch_ms() {
    let project = empty_project();
    for since in ["10m", "2h", "1d", "2026-11-24T12:00:01Z", "1764000000000"] {
        let out = agent_relay(project.path(), &["history", "--since", since]);
        // Parsing succeeded: the failure is the missing daemon, not the argument.
        assert_eq!(out.status.code(), Some(1), "{since}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("no daemon is running"),
            "{since}"
        );
    }
}

#[test]
fn data_commands_say_no_daemon_is_running() {
    let project = empty_project();
    let root = project.path();
    let socket = root.join(".agent-relay").join("relay.sock");
    let expected = format!(
        "agent-relay: no daemon is running for {} (socket {}); start it with 'agent-relay up'\n",
        root.display(),
        socket.display()
    );
    for args in [
        &["status"][..],
        &["send", "Bob", "hello"],
        &["send", "Bob", "hello", "--wait"],
        &["agents"],
        &["who"],
        &["history"],
        &["read", "a1b2c3d4"],
        &["tail"],
        &["context", "Backend"],
        &["context", "Backend", "--compact", "--inject", "--json"],
        &["bench", "latency"],
        &["bench", "throughput"],
        &["bench", "fanout"],
    ] {
        let out = agent_relay(root, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), expected, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn status_json_reports_not_running() {
    let project = empty_project();
    let out = agent_relay(project.path(), &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["running"], false);
    assert!(v["socket"]
        .as_str()
        .is_some_and(|s| s.ends_with("relay.sock")));
}

#[test]
fn socket_flag_overrides_the_default() {
    let project = empty_project();
    let socket = project.path().join("elsewhere.sock");
    let out = agent_relay(
        project.path(),
        &["--socket", socket.to_str().expect("utf-8 path"), "status"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("(socket {})", socket.display())),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn down_without_a_daemon_succeeds() {
    let project = empty_project();
    let out = agent_relay(project.path(), &["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no agent-relay daemon is running"));
}

#[test]
fn down_removes_a_stale_pid_file() {
    let project = empty_project();
    let dir = project.path().join(".agent-relay");
    std::fs::create_dir(&dir).expect("relay dir");
    // A pid that cannot be running.
    std::fs::write(dir.join("relay.sock.pid"), "4194304999\n").expect("pid file");
    let out = agent_relay(project.path(), &["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stale pid file"),
        "{}",
        text(&out.stdout)
    );
    assert!(!dir.join("relay.sock.pid").exists());
}

#[test]
fn invalid_configuration_is_a_failure_naming_the_key() {
    let project = empty_project();
    let out = agent_relay(project.path(), &["-c", "delivery.nope=1", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("delivery.nope"),
        "{}",
        text(&out.stderr)
    );
}
