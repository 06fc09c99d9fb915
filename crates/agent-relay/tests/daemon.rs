//! The CLI against the real daemon: `up` in the background, the data commands, a small run of
//! each benchmark, `tail`, and `down`.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use relay_client::{Client, ClientConfig, Event};
use serde_json::{json, Value};

/// Answers every sync message with `{"ok": true, "echo": <body>}`.
async fn responder(socket: PathBuf) -> Client {
    let (client, mut events) = Client::connect(ClientConfig::new(socket, "Responder"))
        .await
        .expect("the responder connects");
    let c = client.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Message(m) = event {
                if m.sync_correlation_id().is_some() {
                    let data = json!({"ok": true, "echo": m.payload.body});
                    let _ = c.reply_sync(&m, Some(data)).await;
                }
            }
        }
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_against_the_real_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect("project marker");
    let project = dir.path().to_path_buf();
    let socket = project.join(".agent-relay").join("relay.sock");

    let started = ok(&project, &["-c", "limits.rate_limit_enabled=false", "up"]);
    let _daemon = Daemon {
        project: project.clone(),
    };
    assert!(
        started.starts_with("agent-relay daemon running (pid "),
        "{started}"
    );
    assert!(ok(&project, &["up"]).contains("already running"));

    let status = json_of(&project, &["status", "--json"]);
    assert_eq!(status["running"], true);
    assert_eq!(status["socket"], socket.to_string_lossy().as_ref());
    assert!(status["pid"].as_u64().is_some(), "{status}");

    let responder = responder(socket.clone()).await;

    // A sync send is answered by the responder.
    let reply = ok(
        &project,
        &[
            "send",
            "Responder",
            "approve?",
            "--wait",
            "--timeout-secs",
            "10",
        ],
    );
    let reply: Value = serde_json::from_str(&reply).expect("the reply is JSON");
    assert_eq!(reply, json!({"ok": true, "echo": "approve?"}));

    // A plain send, then history and read.
    let sent = ok(
        &project,
        &[
            "send",
            "Responder",
            "the build is green",
            "--from",
            "Alice",
            "--thread",
            "ci",
        ],
    );
    assert!(sent.starts_with("sent ["), "{sent}");
    let history = ok(&project, &["history", "--thread", "ci"]);
    assert!(
        history.contains("Alice -> Responder")
            && history.contains("[thread:ci]  the build is green"),
        "{history}"
    );
    let messages = json_of(&project, &["history", "--from", "Alice", "--json"]);
    let id = messages["messages"][0]["id"]
        .as_str()
        .expect("a stored message id")
        .to_string();
    let full = ok(&project, &["read", relay_protocol::ids::short_id(&id)]);
    assert!(
        full.contains("from:    Alice") && full.ends_with("the build is green\n"),
        "{full}"
    );

    // Refusals are failures with the daemon's reason.
    let out = agent_relay(&project, &["send", "NoSuchAgent", "hello?"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown recipient"),
        "{}",
        text(&out.stderr)
    );

    // Who is online.
    let who = json_of(&project, &["who", "--json"]);
    let names: Vec<&str> = who["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(names.contains(&"Responder"), "{who}");
    let agents = ok(&project, &["agents"]);
    assert!(
        agents.contains("Responder") && agents.contains("online"),
        "{agents}"
    );
    assert!(agents.contains("Alice"), "{agents}");

    // tail prints messages as they are routed and stops on Ctrl-C.
    let mut tail = command(&project)
        .args(["tail", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tail");
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok(
        &project,
        &["send", "Responder", "seen by tail", "--from", "Alice"],
    );
    let stdout = tail.stdout.take().expect("tail stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .expect("tail prints in time")
        .expect("join");
    let event: Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(event["event"], "message");
    assert_eq!(event["body"], "seen by tail");
    let pid = rustix::process::Pid::from_raw(i32::try_from(tail.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("interrupt tail");
    let status = tail.wait().expect("tail exits");
    assert_eq!(status.code(), Some(0));

    // A small run of each benchmark.
    let latency = json_of(
        &project,
        &[
            "bench", "latency", "--count", "200", "--warmup", "20", "--json",
        ],
    );
    assert!(
        latency["p50_us"].as_u64().is_some_and(|v| v > 0),
        "{latency}"
    );
    let throughput = json_of(
        &project,
        &[
            "bench",
            "throughput",
            "--pairs",
            "2",
            "--messages",
            "500",
            "--json",
        ],
    );
    assert_eq!(throughput["losses"], 0, "{throughput}");
    assert_eq!(throughput["duplicates_by_id"], 0, "{throughput}");
    // CPU per message is reported for both sides (and the daemon's storage thread), and each
    // did work for 1,000 messages.
    for side in ["daemon", "storage", "client"] {
        assert!(
            throughput["cpu_us_per_message"][side]
                .as_f64()
                .is_some_and(|us| us > 0.0),
            "{side}: {throughput}"
        );
    }
    let fanout = json_of(
        &project,
        &[
            "bench", "fanout", "--agents", "3", "--count", "50", "--json",
        ],
    );
    assert!(fanout["p99_us"].as_u64().is_some(), "{fanout}");

    responder.close().await;
    let stopped = ok(&project, &["down"]);
    assert!(
        stopped.starts_with("agent-relay daemon stopped (pid "),
        "{stopped}"
    );
    assert!(!socket.exists(), "the socket is removed");
    let out = agent_relay(&project, &["status"]);
    assert_eq!(out.status.code(), Some(1));
}
