//! `agent-relay bench signing`: alternating unsigned and signed throughput runs, each against a
//! daemon of its own, summarised as the change in throughput with an interval.

mod common;
use common::*;
use serde_json::Value;

fn runs<'a>(report: &'a Value, side: &str) -> &'a Vec<Value> {
    report["runs"][side]
        .as_array()
        .unwrap_or_else(|| panic!("runs.{side} is a list: {report}"))
}

#[test]
fn compares_signed_with_unsigned_runs_on_daemons_of_its_own() {
    let project = empty_project();
    let out = agent_relay(
        project.path(),
        &[
            "bench",
            "signing",
            "--sign",
            "hmac-sha256",
            "--rounds",
            "2",
            "--pairs",
            "2",
            "--messages",
            "300",
            "--json",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["bench"], "signing");
    assert_eq!(report["algorithm"], "hmac-sha256");
    assert_eq!(report["rounds"], 2);

    // Two runs a side, each complete. The signed daemons enforce signatures, so a signed run
    // without losses is one whose every message was signed and verified.
    for (side, signed) in [("unsigned", Value::Null), ("signed", "hmac-sha256".into())] {
        let side_runs = runs(&report, side);
        assert_eq!(side_runs.len(), 2, "{side}: {report}");
        for run in side_runs {
            assert_eq!(run["delivered_unique"], 600, "{side}: {run}");
            assert_eq!(run["losses"], 0, "{side}: {run}");
            assert_eq!(run["duplicates_by_id"], 0, "{side}: {run}");
            assert_eq!(run["rate_limited"], 0, "{side}: {run}");
            assert_eq!(run["signed"], signed, "{side}: {run}");
        }
        let mean = report[side]["mean_messages_per_sec"]
            .as_f64()
            .expect("mean");
        assert!(mean > 0.0, "{side}: {report}");
        for part in ["total", "daemon", "storage", "client"] {
            assert!(
                report[side]["cpu_us_per_message"][part]
                    .as_f64()
                    .is_some_and(|c| c > 0.0),
                "{side} {part}: {report}"
            );
        }
    }

    // The change is the ratio of the means, inside its interval.
    let mean = |side: &str| report[side]["mean_messages_per_sec"].as_f64().unwrap();
    let change = report["throughput_change_percent"]
        .as_f64()
        .expect("change");
    let expected = 100.0 * (mean("signed") / mean("unsigned") - 1.0);
    assert!(
        (change - expected).abs() < 0.1,
        "{change} vs {expected}: {report}"
    );
    let lo = report["throughput_change_ci95_percent"][0]
        .as_f64()
        .expect("lo");
    let hi = report["throughput_change_ci95_percent"][1]
        .as_f64()
        .expect("hi");
    assert!(
        lo <= change + 0.01 && change <= hi + 0.01,
        "{lo} {change} {hi}"
    );
    assert!(report["extra_cpu_us_per_message"].as_f64().is_some());
    for part in ["daemon_except_storage", "storage", "client"] {
        assert!(
            report["extra_cpu_us_per_message_by_part"][part]
                .as_f64()
                .is_some(),
            "{part}: {report}"
        );
    }

    // Progress went to stderr, in alternating order; the caller's project was left alone.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("round ")).collect();
    assert_eq!(progress.len(), 4, "{stderr}");
    assert!(
        progress[0].contains("unsigned") && progress[1].contains("hmac-sha256"),
        "{stderr}"
    );
    assert!(
        progress[2].contains("hmac-sha256") && progress[3].contains("unsigned"),
        "{stderr}"
    );
    assert!(
        !project.path().join(".agent-relay").exists(),
        "the benchmark works in temporary projects"
    );
}

#[test]
fn ed25519_runs_and_text_output() {
    let project = empty_project();
    let out = ok(
        project.path(),
        &[
            "bench",
            "signing",
            "--sign",
            "ed25519",
            "--rounds",
            "1",
            "--pairs",
            "1",
            "--messages",
            "200",
        ],
    );
    assert!(
        out.starts_with("bench signing: ed25519 against unsigned, 1 round of"),
        "{out}"
    );
    assert!(out.contains("cost "), "{out}");
    assert!(out.contains("extra CPU    daemon except storage "), "{out}");
    assert!(out.contains("% of throughput (95 % interval"), "{out}");
    assert!(
        out.contains("command: agent-relay bench signing --sign ed25519 --rounds 1"),
        "{out}"
    );
}

#[test]
fn a_bad_override_fails_before_any_run() {
    let project = empty_project();
    let out = agent_relay(
        project.path(),
        &[
            "-c",
            "signing.replay_window_secs=soon",
            "bench",
            "signing",
            "--rounds",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("replay_window_secs"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("round 1/1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_interrupted_run_stops_its_daemon_and_removes_its_project() {
    use std::time::{Duration, Instant};
    let project = empty_project();
    // The temporary projects go where TMPDIR says: here, where the test can watch them.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let bench = command(project.path())
        .env("TMPDIR", scratch.path())
        .args(["bench", "signing", "--rounds", "50", "--pairs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start bench signing");
    let socket = || {
        std::fs::read_dir(scratch.path())
            .ok()?
            .flatten()
            .map(|e| e.path().join(".agent-relay").join("relay.sock"))
            .find(|s| s.exists())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        if let Some(s) = socket() {
            break s;
        }
        assert!(Instant::now() < deadline, "no daemon started within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let it answer and the run get going.
    std::thread::sleep(Duration::from_millis(500));
    let pid_file = running.with_extension("sock.pid");
    let daemon: i32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
        .trim()
        .parse()
        .expect("a pid");
    let daemon = rustix::process::Pid::from_raw(daemon).expect("pid");
    assert!(
        rustix::process::test_kill_process(daemon).is_ok(),
        "the daemon runs"
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(bench.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("interrupt");
    let out = bench.wait_with_output().expect("bench exits");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted; no summary"), "{stderr}");
    assert!(out.stdout.is_empty(), "no summary: {}", text(&out.stdout));
    assert!(
        rustix::process::test_kill_process(daemon).is_err(),
        "the daemon was stopped (and reaped)"
    );
    assert!(!running.exists(), "the daemon's socket is gone");
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("scratch dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temporary projects left behind: {left:?}");
}
