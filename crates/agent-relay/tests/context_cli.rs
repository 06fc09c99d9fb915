//! `agent-relay context`: help, the no-daemon and disabled messages, and a run against a real
//! daemon started with a small compaction budget.

mod common;
use common::*;

#[test]
fn context_has_help_with_examples_and_json() {
    let project = empty_project();
    let top = text(&agent_relay(project.path(), &["--help"]).stdout);
    assert!(top.contains("context"), "{top}");
    let out = agent_relay(project.path(), &["context", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    assert!(help.contains("Examples:"), "{help}");
    assert!(
        help.contains("agent-relay context Backend --compact"),
        "{help}"
    );
    for flag in ["--compact", "--inject", "--json"] {
        assert!(help.contains(flag), "no {flag}:\n{help}");
    }
    usage_error(project.path(), &["context"], "<AGENT>");
    usage_error(project.path(), &["context", "Bob", "--squash"], "--squash");
}

#[test]
fn context_says_no_daemon_is_running() {
    let project = empty_project();
    let root = project.path();
    let out = agent_relay(root, &["context", "Backend"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no daemon is running"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn context_with_compaction_disabled_says_how_to_enable_it() {
    let dir = empty_project();
    let project = dir.path().to_path_buf();
    ok(&project, &["up"]);
    let _daemon = Daemon {
        project: project.clone(),
    };
    ok(&project, &["send", "*", "hello", "--from", "Backend"]);
    let out = agent_relay(&project, &["context", "Backend"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("context compaction is disabled"),
        "{stderr}"
    );
    assert!(stderr.contains("compaction.enabled=true"), "{stderr}");
}

/// A status line from Lead to Backend of about 60 tokens.
fn report(i: usize) -> String {
    format!(
        "Status {i}: migrated the orders table shard {i} to the new schema, verified row counts, \
         and re-enabled the replication slot; the next shard starts in a minute."
    )
}

#[test]
fn context_against_the_real_daemon() {
    let dir = empty_project();
    let project = dir.path().to_path_buf();
    ok(
        &project,
        &[
            "-c",
            "compaction.enabled=true",
            "-c",
            "compaction.max_tokens=2000",
            "-c",
            "compaction.keep_recent=5",
            "-c",
            "compaction.tokenizer=heuristic",
            "-c",
            "limits.rate_limit_enabled=false",
            "up",
        ],
    );
    let _daemon = Daemon {
        project: project.clone(),
    };

    // Backend registers; Lead then sends it a decision and a few reports (Backend is offline:
    // the messages are stored, and they are part of its conversation all the same).
    ok(
        &project,
        &["send", "*", "Backend online", "--from", "Backend"],
    );
    ok(
        &project,
        &[
            "send",
            "Backend",
            "Decision: we use PostgreSQL 15 on port 5433 for the orders service.",
            "--from",
            "Lead",
        ],
    );
    for i in 0..8 {
        ok(&project, &["send", "Backend", &report(i), "--from", "Lead"]);
    }

    let json = json_of(&project, &["context", "Backend", "--json"]);
    assert_eq!(json["agent"], "Backend", "{json}");
    assert_eq!(json["thresholdTokens"], 1600, "{json}");
    assert_eq!(json["targetTokens"], 1000, "{json}");
    assert_eq!(json["tokenizer"], "heuristic", "{json}");
    assert_eq!(json["needsCompaction"], false, "{json}");
    assert!(json.get("snapshot").is_none(), "{json}");
    let messages = json["historyMessages"].as_u64().unwrap_or(0);
    assert!(messages >= 9, "{json}");

    let out = ok(&project, &["context", "Backend"]);
    assert!(out.contains("history:"), "{out}");
    assert!(out.contains(&format!("{messages} messages")), "{out}");
    assert!(
        out.contains("compacted above 1,600, down to 1,000"),
        "{out}"
    );
    assert!(out.contains("snapshot:       none yet"), "{out}");

    // More reports push the history past the threshold: a snapshot is made by itself.
    for i in 8..40 {
        ok(&project, &["send", "Backend", &report(i), "--from", "Lead"]);
    }
    let mut snapshot = serde_json::Value::Null;
    for _ in 0..50 {
        let json = json_of(&project, &["context", "Backend", "--json"]);
        if json.get("snapshot").is_some() {
            snapshot = json["snapshot"].clone();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let last = json_of(&project, &["context", "Backend", "--json"]);
    assert!(snapshot.is_object(), "no snapshot was made: {last}");
    assert!(
        snapshot["tokens"].as_u64() <= snapshot["targetTokens"].as_u64(),
        "{snapshot}"
    );
    assert_eq!(snapshot["report"]["trigger"], "threshold", "{snapshot}");
    let content = snapshot["content"].as_str().unwrap_or_default();
    assert!(content.contains("5433"), "{content}");

    let out = ok(&project, &["context", "Backend"]);
    assert!(out.contains("snapshot:"), "{out}");
    assert!(out.contains("# Relay context for Backend"), "{out}");
    assert!(out.contains("Lead → Backend: Status"), "{out}");

    // --compact compacts now and reports what it did; --inject tells where the snapshot went.
    let out = ok(&project, &["context", "Backend", "--compact"]);
    assert!(out.contains("compaction:"), "{out}");
    assert!(out.contains("asked for"), "{out}");
    let json = json_of(
        &project,
        &["context", "Backend", "--compact", "--inject", "--json"],
    );
    assert_eq!(json["result"]["trigger"], "request", "{json}");
    assert_eq!(
        json["injection"], "offline",
        "Backend is not connected: {json}"
    );
    let out = ok(&project, &["context", "Backend", "--inject"]);
    assert!(
        out.contains("offered the snapshot when it connects"),
        "{out}"
    );

    // Errors come back as one line.
    let out = agent_relay(&project, &["context", "Nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown agent \"Nobody\""),
        "{}",
        text(&out.stderr)
    );

    let status = json_of(&project, &["status", "--json"]);
    let counters = &status["compaction"]["counters"];
    assert!(
        counters["compactions"].as_u64().unwrap_or(0) >= 3,
        "{status}"
    );
}
