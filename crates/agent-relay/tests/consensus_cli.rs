//! `agent-relay consensus`: argument handling, help texts, usage errors, the message every
//! subcommand prints when no daemon is running, and a run against the real daemon.

mod common;
use common::*;

use std::path::Path;

use serde_json::Value;

const SUBCOMMANDS: &[&str] = &["propose", "vote", "list", "show", "cancel", "stats"];

#[test]
fn consensus_and_every_subcommand_have_help_with_examples_and_json() {
    let project = empty_project();
    assert_group_help(project.path(), "consensus", SUBCOMMANDS);
    let propose = text(&agent_relay(project.path(), &["consensus", "propose", "--help"]).stdout);
    for flag in [
        "--participants",
        "--type",
        "--description",
        "--timeout",
        "--quorum",
        "--threshold",
        "--weight",
        "--as",
        "supermajority",
    ] {
        assert!(propose.contains(flag), "propose has no {flag}:\n{propose}");
    }
    let vote = text(&agent_relay(project.path(), &["consensus", "vote", "--help"]).stdout);
    assert!(
        vote.contains("--as") && vote.contains("--reason") && vote.contains("takes over"),
        "{vote}"
    );
    let list = text(&agent_relay(project.path(), &["consensus", "list", "--help"]).stdout);
    assert!(
        list.contains("--status")
            && list.contains("--participant")
            && list.contains("no_consensus"),
        "{list}"
    );
    let cancel = text(&agent_relay(project.path(), &["consensus", "cancel", "--help"]).stdout);
    assert!(cancel.contains("--as"), "{cancel}");
}

#[test]
fn usage_errors_exit_2() {
    let project = empty_project();
    let p = project.path();
    let propose = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["consensus", "propose", "Ship it", "--participants", "A,B,C"];
        args.extend_from_slice(extra);
        args
    };
    usage_error(p, &["consensus"], "Usage");
    usage_error(p, &["consensus", "frobnicate"], "frobnicate");
    usage_error(p, &["consensus", "propose", "Ship it"], "--participants");
    usage_error(
        p,
        &["consensus", "propose", "--participants", "A"],
        "<TITLE>",
    );
    usage_error(
        p,
        &["consensus", "propose", "", "--participants", "A"],
        "empty",
    );
    usage_error(p, &propose(&["--participants", "A,,B"]), "separate names");
    usage_error(p, &propose(&["--participants", "_consensus"]), "_consensus");
    usage_error(p, &propose(&["--type", "plurality"]), "supermajority");
    usage_error(p, &propose(&["--timeout", "soon"]), "30s, 5m, 1h");
    usage_error(p, &propose(&["--timeout", "0"]), "longer than zero");
    usage_error(
        p,
        &propose(&["--type", "supermajority", "--threshold", "0.4"]),
        "above 0.5",
    );
    usage_error(
        p,
        &propose(&["--type", "supermajority", "--threshold", "most"]),
        "0.67, 67% or 2/3",
    );
    usage_error(
        p,
        &propose(&["--threshold", "0.75"]),
        "--threshold is only used with --type supermajority",
    );
    usage_error(
        p,
        &propose(&["--quorum", "2"]),
        "--quorum is only used with --type quorum",
    );
    usage_error(
        p,
        &propose(&["--type", "quorum", "--quorum", "4"]),
        "more than the 3 participants",
    );
    usage_error(
        p,
        &propose(&["--type", "quorum", "--quorum", "0"]),
        "at least 1",
    );
    usage_error(
        p,
        &propose(&["--weight", "A=2"]),
        "--weight is only used with --type weighted",
    );
    usage_error(
        p,
        &propose(&["--type", "weighted", "--weight", "A"]),
        "NAME=WEIGHT",
    );
    usage_error(
        p,
        &propose(&["--type", "weighted", "--weight", "A=-1"]),
        "greater than 0",
    );
    usage_error(
        p,
        &propose(&["--type", "weighted", "--weight", "Z=2"]),
        "not in --participants",
    );
    usage_error(p, &propose(&["--as", ""]), "--as");
    usage_error(
        p,
        &["consensus", "vote", "prop_1", "approve"],
        "--as <NAME>",
    );
    usage_error(
        p,
        &["consensus", "vote", "prop_1", "maybe", "--as", "alice"],
        "abstain",
    );
    usage_error(
        p,
        &["consensus", "vote", "prop_1", "--as", "alice"],
        "<VOTE>",
    );
    usage_error(
        p,
        &["consensus", "vote", "prop_1", "approve", "--as", "bad name"],
        "--as",
    );
    usage_error(p, &["consensus", "cancel", "prop_1"], "--as <NAME>");
    usage_error(p, &["consensus", "show"], "<ID>");
    usage_error(
        p,
        &["consensus", "list", "--status", "open"],
        "no_consensus",
    );
    usage_error(
        p,
        &["consensus", "stats", "--status", "pending"],
        "--status",
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
        &["consensus", "propose", "Ship it", "--participants", "A,B"][..],
        &[
            "consensus",
            "propose",
            "Ship it",
            "--participants",
            "A,B,C",
            "--type",
            "weighted",
            "--weight",
            "A=2.5",
            "--timeout",
            "1h",
            "--as",
            "alice",
            "--json",
        ],
        &[
            "consensus",
            "propose",
            "Ship it",
            "--participants",
            "A,B,C",
            "--type",
            "supermajority",
            "--threshold",
            "3/4",
        ],
        &[
            "consensus",
            "propose",
            "Ship it",
            "--participants",
            "A,B,C",
            "--type",
            "quorum",
            "--quorum",
            "3",
        ],
        &["consensus", "vote", "prop_1", "approve", "--as", "alice"],
        &[
            "consensus",
            "vote",
            "prop_1",
            "Reject",
            "--as",
            "alice",
            "--reason",
            "no",
        ],
        &["consensus", "list"],
        &["consensus", "list", "--status", "pending", "--json"],
        &["consensus", "show", "prop_1"],
        &["consensus", "cancel", "prop_1", "--as", "alice"],
        &["consensus", "stats"],
        &["consensus", "stats", "--json"],
    ] {
        let out = agent_relay(root, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), expected, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

/// The id of the newest pending proposal.
fn newest_pending(project: &Path) -> String {
    let listed = json_of(
        project,
        &["consensus", "list", "--status", "pending", "--json"],
    );
    listed["proposals"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no pending proposal: {listed}"))
        .to_string()
}

#[test]
fn proposals_against_the_real_daemon() {
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

    assert_eq!(ok(&project, &["consensus", "list"]), "0 proposals\n");

    let opened = json_of(
        &project,
        &[
            "consensus",
            "propose",
            "Ship it",
            "--participants",
            "Quinn,Rita",
            "--type",
            "majority",
            "--json",
        ],
    );
    assert_eq!(opened["ok"], true, "{opened}");
    let id = opened["proposalId"]
        .as_str()
        .expect("a proposal id")
        .to_string();
    assert!(id.starts_with("prop_"), "{id}");
    assert_eq!(opened["proposal"]["status"], "pending", "{opened}");
    assert_eq!(opened["proposal"]["type"], "majority", "{opened}");

    let pending = ok(&project, &["consensus", "list", "--status", "pending"]);
    assert!(
        pending.starts_with("ID")
            && pending.contains(&id)
            && pending.contains("Ship it")
            && pending.contains("0/2")
            && pending.ends_with("1 proposal\n"),
        "{pending}"
    );

    let first = ok(
        &project,
        &[
            "consensus",
            "vote",
            &id,
            "approve",
            "--as",
            "Quinn",
            "--reason",
            "tests pass",
        ],
    );
    assert!(first.starts_with("ACCEPTED:"), "{first}");
    let second = ok(
        &project,
        &["consensus", "vote", &id, "approve", "--as", "Rita"],
    );
    assert!(
        second.starts_with("ACCEPTED:") && second.contains("APPROVED"),
        "{second}"
    );

    let shown = json_of(&project, &["consensus", "show", &id, "--json"]);
    assert_eq!(shown["status"], "approved", "{shown}");
    assert_eq!(shown["result"]["decision"], "approved", "{shown}");
    assert_eq!(shown["votes"][0]["voter"], "Quinn", "{shown}");
    assert_eq!(shown["votes"][0]["reason"], "tests pass", "{shown}");
    let shown = ok(&project, &["consensus", "show", &id]);
    assert!(
        shown.contains(&id)
            && shown.contains("approved")
            && shown.contains("Quinn")
            && shown.contains("tests pass")
            && shown.contains("APPROVED")
            && shown.contains("more than half"),
        "{shown}"
    );

    let approved = ok(&project, &["consensus", "list", "--status", "approved"]);
    assert!(
        approved.contains(&id) && approved.contains("2/2"),
        "{approved}"
    );
    let by_rita = json_of(
        &project,
        &["consensus", "list", "--participant", "Rita", "--json"],
    );
    assert_eq!(by_rita["proposals"][0]["id"], id.as_str(), "{by_rita}");
    let cancelled = json_of(
        &project,
        &["consensus", "list", "--status", "cancelled", "--json"],
    );
    assert_eq!(
        cancelled["proposals"],
        Value::Array(Vec::new()),
        "{cancelled}"
    );

    // Too late, and not a participant: refused with the daemon's reason.
    let late = agent_relay(
        &project,
        &["consensus", "vote", &id, "reject", "--as", "Sam"],
    );
    assert_eq!(late.status.code(), Some(1), "{}", text(&late.stdout));
    assert!(late.stdout.is_empty(), "{}", text(&late.stdout));
    assert!(text(&late.stderr).contains(&id), "{}", text(&late.stderr));

    let missing = agent_relay(
        &project,
        &["consensus", "show", "prop_ffffffffffffffffffff"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no proposal"),
        "{}",
        text(&missing.stderr)
    );

    // Only the proposer can cancel.
    let opened = ok(
        &project,
        &[
            "consensus",
            "propose",
            "Later",
            "--participants",
            "Quinn,Rita",
            "--type",
            "supermajority",
            "--threshold",
            "75%",
            "--timeout",
            "1h",
            "--as",
            "Pat",
        ],
    );
    let pat = newest_pending(&project);
    assert!(
        opened.starts_with(&format!(
            "proposal {pat} opened: Later (supermajority, 2 participants, closes "
        )),
        "{opened}"
    );
    let shown = json_of(&project, &["consensus", "show", &pat, "--json"]);
    assert_eq!(shown["proposer"], "Pat", "{shown}");
    assert_eq!(shown["threshold"], 0.75, "{shown}");
    let refused = agent_relay(&project, &["consensus", "cancel", &pat, "--as", "Quinn"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("only the proposer (Pat)"),
        "{}",
        text(&refused.stderr)
    );
    let cancel = ok(&project, &["consensus", "cancel", &pat, "--as", "Pat"]);
    assert!(cancel.contains("cancelled"), "{cancel}");
    let shown = json_of(&project, &["consensus", "show", &pat, "--json"]);
    assert_eq!(shown["status"], "cancelled", "{shown}");

    let stats = json_of(&project, &["consensus", "stats", "--json"]);
    assert_eq!(stats["stats"]["total"], 2, "{stats}");
    assert_eq!(stats["stats"]["approved"], 1, "{stats}");
    assert_eq!(stats["stats"]["cancelled"], 1, "{stats}");
    let stats = ok(&project, &["consensus", "stats"]);
    assert!(
        stats.contains("proposals:") && stats.contains("supermajority"),
        "{stats}"
    );

    // Every reply from _consensus reached a connection and was acknowledged.
    let dlq = json_of(&project, &["dlq", "list", "--json"]);
    assert_eq!(dlq["total"], 0, "{dlq}");
}

#[test]
fn a_disabled_daemon_says_how_to_enable_it() {
    let dir = empty_project();
    let project = dir.path().to_path_buf();
    ok(&project, &["-c", "consensus.enabled=false", "up"]);
    let _daemon = Daemon {
        project: project.clone(),
    };
    for args in [
        &["consensus", "list"][..],
        &["consensus", "stats"],
        &["consensus", "propose", "x", "--participants", "A"],
    ] {
        let out = agent_relay(&project, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("disabled") && stderr.contains("[consensus] enabled = true"),
            "{args:?}: {stderr}"
        );
    }
}
