//! `agent-relay dlq`: argument handling, help texts, usage errors, the message every
//! subcommand prints when no daemon is running, and a run against the real daemon.

mod common;
use common::*;

use serde_json::Value;

const SUBCOMMANDS: &[&str] = &["list", "show", "stats", "replay", "ack", "purge"];

#[test]
fn dlq_and_every_subcommand_have_help_with_examples_and_json() {
    let project = empty_project();
    assert_group_help(project.path(), "dlq", SUBCOMMANDS);
    for sub in ["list", "replay", "ack", "purge"] {
        let help = text(&agent_relay(project.path(), &["dlq", sub, "--help"]).stdout);
        for flag in [
            "--to",
            "--from",
            "--reason",
            "--state",
            "--since",
            "--unacked",
            "--limit",
        ] {
            assert!(help.contains(flag), "dlq {sub} has no {flag}:\n{help}");
        }
    }
    let purge = text(&agent_relay(project.path(), &["dlq", "purge", "--help"]).stdout);
    assert!(
        purge.contains("--yes") && purge.contains("--all"),
        "{purge}"
    );
    let ack = text(&agent_relay(project.path(), &["dlq", "ack", "--help"]).stdout);
    assert!(ack.contains("--by"), "{ack}");
}

#[test]
fn usage_errors_exit_2() {
    let project = empty_project();
    let p = project.path();
    usage_error(p, &["dlq"], "Usage");
    usage_error(p, &["dlq", "frobnicate"], "frobnicate");
    usage_error(p, &["dlq", "show"], "<ID>");
    usage_error(p, &["dlq", "list", "--reason", "bored"], "target_not_found");
    usage_error(p, &["dlq", "list", "--state", "lost"], "exhausted");
    usage_error(p, &["dlq", "list", "--since", "yesterday"], "RFC 3339");
    usage_error(p, &["dlq", "list", "--limit", "many"], "--limit");
    usage_error(p, &["dlq", "stats", "--to", "Bob"], "--to");
    usage_error(p, &["dlq", "replay", "dlq_0123", "--all"], "--all");
    usage_error(p, &["dlq", "ack", "--by", ""], "--by");
    for sub in ["replay", "ack", "purge"] {
        // Nothing says which letters: no ids, no filter, no --all.
        usage_error(p, &["dlq", sub], "pass their ids, a filter");
        usage_error(p, &["dlq", sub, "--json"], "or --all");
        usage_error(p, &["dlq", sub, "--limit", "5"], "or --all");
        usage_error(p, &["dlq", sub, "--reason", "nope"], "possible values");
    }
    usage_error(p, &["dlq", "ack", "--by", "oncall"], "or --all");
    usage_error(
        p,
        &["dlq", "purge", "--all"],
        "add --yes to delete every dead letter",
    );
    usage_error(
        p,
        &["dlq", "purge", "--all", "--to", "Bob"],
        "add --yes to delete every dead letter",
    );
}

#[test]
fn every_subcommand_says_no_daemon_is_running() {
    let project = empty_project();
    let root = project.path();
    let socket = root.join(".agent-relay").join("relay.sock");
    let expected = format!(
        "agent-relay: no daemon is running for {} (socket {}); start it with 'agent-relay up'\n",
        root.display(),
        socket.display()
    );
    for args in [
        &["dlq", "list"][..],
        &["dlq", "list", "--json"],
        &["dlq", "show", "dlq_0123"],
        &["dlq", "stats"],
        &["dlq", "stats", "--json"],
        &["dlq", "replay", "dlq_0123456789abcdef01234567"],
        &["dlq", "replay", "--to", "Bob"],
        &["dlq", "replay", "--all"],
        &["dlq", "ack", "dlq_0123", "dlq_4567", "--by", "oncall"],
        &["dlq", "ack", "--unacked"],
        &["dlq", "purge", "--state", "delivered"],
        &["dlq", "purge", "--all", "--yes"],
    ] {
        let out = agent_relay(root, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), expected, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn filters_accept_every_reason_state_and_time_form() {
    let project = empty_project();
    let reasons = [
        "max_retries_exceeded",
        "ttl_expired",
        "connection_lost",
        "target_not_found",
        "rate_limited",
        "signature_invalid",
        "payload_too_large",
        "unknown",
    ];
    let states = ["pending", "replaying", "delivered", "exhausted"];
    let since = ["10m", "2h", "1d", "2026-11-24T12:00:01Z", "1764000000000"];
    let mut runs: Vec<Vec<&str>> = Vec::new();
    runs.extend(reasons.iter().map(|r| vec!["dlq", "list", "--reason", r]));
    runs.extend(states.iter().map(|s| vec!["dlq", "purge", "--state", s]));
    runs.extend(since.iter().map(|s| vec!["dlq", "ack", "--since", s]));
    for args in runs {
        let out = agent_relay(project.path(), &args);
        // Parsing succeeded: the failure is the missing daemon, not the argument.
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("no daemon is running"),
            "{args:?}"
        );
    }
}

#[test]
fn dead_letters_against_the_real_daemon() {
    let dir = empty_project();
    let project = dir.path().to_path_buf();
    let started = ok(&project, &["up"]);
    let _daemon = Daemon {
        project: project.clone(),
    };
    assert!(
        started.starts_with("agent-relay daemon running"),
        "{started}"
    );

    // Nothing yet.
    let empty = json_of(&project, &["dlq", "list", "--json"]);
    assert_eq!(empty["total"], 0, "{empty}");
    assert_eq!(ok(&project, &["dlq", "list"]), "0 of 0 dead letters\n");

    // A message to an agent that does not exist is refused and dead-lettered.
    let sent = agent_relay(&project, &["send", "Ghost", "hi there", "--from", "Alice"]);
    assert_eq!(sent.status.code(), Some(1), "{}", text(&sent.stderr));

    let listed = json_of(&project, &["dlq", "list", "--json"]);
    assert_eq!(listed["total"], 1, "{listed}");
    let letter = &listed["letters"][0];
    assert_eq!(letter["reason"], "target_not_found", "{letter}");
    assert_eq!(letter["to"], "Ghost", "{letter}");
    assert_eq!(letter["from"], "Alice", "{letter}");
    assert_eq!(letter["body"], "hi there", "{letter}");
    assert_eq!(letter["acknowledged"], false, "{letter}");
    let id = letter["id"].as_str().expect("a letter id").to_string();
    assert!(id.starts_with("dlq_") && id.len() == 28, "{id}");

    let table = ok(&project, &["dlq", "list", "--reason", "target_not_found"]);
    assert!(
        table.starts_with("ID")
            && table.contains(&id[..12])
            && table.contains("Alice -> Ghost")
            && table.contains("hi there")
            && table.ends_with("1 of 1 dead letter\n"),
        "{table}"
    );
    let other = json_of(&project, &["dlq", "list", "--to", "Nobody", "--json"]);
    assert_eq!(other["total"], 0, "{other}");

    let shown = ok(&project, &["dlq", "show", &id[..12]]);
    assert!(
        shown.contains(&id)
            && shown.contains("target_not_found")
            && shown.contains("Alice")
            && shown.ends_with("\nhi there\n"),
        "{shown}"
    );
    let shown = json_of(&project, &["dlq", "show", &id[..12], "--json"]);
    assert_eq!(shown["id"], id.as_str());
    let missing = agent_relay(&project, &["dlq", "show", "dlq_ffffffffffff"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(!text(&missing.stderr).is_empty());

    let stats = json_of(&project, &["dlq", "stats", "--json"]);
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(stats["stats"]["total"], 1, "{stats}");
    assert_eq!(stats["stats"]["unacknowledged"], 1, "{stats}");
    assert_eq!(stats["stats"]["byReason"]["target_not_found"], 1, "{stats}");
    let stats = ok(&project, &["dlq", "stats"]);
    assert!(
        stats.contains("dead letters:") && stats.contains("target_not_found"),
        "{stats}"
    );

    // Acknowledge by a short prefix, as `dlq list` prints it.
    let acked = json_of(&project, &["dlq", "ack", &id[..12], "--json"]);
    assert_eq!(acked["count"], 1, "{acked}");
    assert_eq!(acked["ids"][0], id.as_str(), "{acked}");
    let unacked = json_of(&project, &["dlq", "list", "--unacked", "--json"]);
    assert_eq!(unacked["total"], 0, "{unacked}");
    let shown = json_of(&project, &["dlq", "show", &id, "--json"]);
    assert_eq!(shown["acknowledged"], true, "{shown}");

    assert_eq!(
        ok(&project, &["dlq", "purge", "--all", "--yes"]),
        "purged 1 dead letter\n"
    );
    let after = json_of(&project, &["dlq", "list", "--json"]);
    assert_eq!(after["total"], 0, "{after}");
    assert_eq!(after["letters"], Value::Array(Vec::new()), "{after}");
}

#[test]
fn a_disabled_queue_says_how_to_enable_it() {
    let dir = empty_project();
    let project = dir.path().to_path_buf();
    ok(&project, &["-c", "dlq.enabled=false", "up"]);
    let _daemon = Daemon {
        project: project.clone(),
    };
    let stats = ok(&project, &["dlq", "stats"]);
    assert!(
        stats.contains("disabled") && stats.contains("[dlq] enabled = true"),
        "{stats}"
    );
    assert_eq!(
        json_of(&project, &["dlq", "stats", "--json"])["enabled"],
        false
    );
    let out = agent_relay(&project, &["dlq", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("disabled") && stderr.contains("enabled = true"),
        "{stderr}"
    );
}
