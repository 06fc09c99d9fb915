//! Spawn, release, outbox-file triggers, injected messages, code fences and edge cases.

mod common;

use common::{fin, messages, msg, open, rejected, sent, spans};
use relay_grammar::{
    parse_window, Command, FileTrigger, GrammarOptions, RejectionKind, ReleaseCommand, SpawnCommand,
};

fn spawn(name: &str, cli: &str, task: Option<&str>) -> Command {
    Command::Spawn(SpawnCommand {
        name: name.into(),
        cli: cli.into(),
        task: task.map(Into::into),
    })
}

fn release(name: &str) -> Command {
    Command::Release(ReleaseCommand { name: name.into() })
}

fn file(id: &str) -> Command {
    Command::File(FileTrigger { id: id.into() })
}

#[test]
fn spawn_with_quoted_task() {
    assert_eq!(
        sent(r#"->relay:spawn Worker1 claude "Fix the login bug""#),
        vec![spawn("Worker1", "claude", Some("Fix the login bug"))]
    );
}

#[test]
fn spawn_without_task() {
    assert_eq!(
        sent("->relay:spawn Worker1 codex"),
        vec![spawn("Worker1", "codex", None)]
    );
    assert_eq!(
        sent("->relay:spawn Worker1 codex \"\""),
        vec![spawn("Worker1", "codex", None)]
    );
}

#[test]
fn spawn_with_fenced_task() {
    let text =
        "->relay:spawn Backend claude <<<\nBuild the API.\n\nUse Rust.\n>>>\n->relay:Bob next";
    let parsed = fin(text);
    assert_eq!(spans(&parsed), vec![(0, 4), (5, 5)]);
    assert_eq!(
        parsed[0].command,
        spawn("Backend", "claude", Some("Build the API.\n\nUse Rust."))
    );
    assert_eq!(
        sent("->relay:spawn W1 claude <<<one line task>>>"),
        vec![spawn("W1", "claude", Some("one line task"))]
    );
    assert_eq!(
        sent("->relay:spawn W1 claude <<<\n>>>"),
        vec![spawn("W1", "claude", None)]
    );
}

#[test]
fn spawn_fenced_task_waits_for_close() {
    let opts = GrammarOptions::default();
    assert!(parse_window(&["->relay:spawn W1 claude <<<", "task"], &opts).is_empty());
    let parsed = parse_window(&["->relay:spawn W1 claude <<<", "task", ">>>"], &opts);
    assert_eq!(parsed[0].command, spawn("W1", "claude", Some("task")));
}

#[test]
fn spawn_cli_may_be_a_path() {
    assert_eq!(
        sent("->relay:spawn W1 /usr/local/bin/claude-code \"t\""),
        vec![spawn("W1", "/usr/local/bin/claude-code", Some("t"))]
    );
}

#[test]
fn spawn_and_release_keywords_are_case_insensitive() {
    assert_eq!(
        sent("->relay:SPAWN W1 claude \"t\""),
        vec![spawn("W1", "claude", Some("t"))]
    );
    assert_eq!(sent("->relay:Release W1"), vec![release("W1")]);
}

#[test]
fn spawn_with_bullet_prefix() {
    assert_eq!(
        sent("⏺ ->relay:spawn W1 claude \"t\""),
        vec![spawn("W1", "claude", Some("t"))]
    );
    assert_eq!(sent("- ->relay:release W1"), vec![release("W1")]);
}

#[test]
fn spawn_with_unquoted_task_text() {
    assert_eq!(
        sent("->relay:spawn W1 claude review the PR"),
        vec![spawn("W1", "claude", Some("review the PR"))]
    );
}

#[test]
fn malformed_spawn_is_rejected_never_a_message() {
    for line in [
        "->relay:spawn",
        "->relay:spawn W1",
        "->relay:spawn _hidden claude",
        "->relay:spawn a/b claude",
        "->relay:spawn AgentName claude \"t\"",
        "->relay:spawn W1 <cli> \"t\"",
        "->relay:spawn W1 claude \"unterminated",
    ] {
        assert!(messages(line).is_empty(), "{line}");
        let r = rejected(line);
        assert_eq!(r.len(), 1, "{line}");
        assert_eq!(r[0].kind, RejectionKind::InvalidSpawn, "{line}");
    }
    let long = format!("->relay:spawn {} claude", "a".repeat(65));
    assert_eq!(rejected(&long)[0].kind, RejectionKind::InvalidSpawn);
}

#[test]
fn spawn_with_fence_as_cli_consumes_block_and_is_rejected() {
    let parsed = fin("->relay:spawn Worker1 <<<\n->relay:release Bob\n>>>");
    // The release line auto-closes the fence (it starts a new command) and is parsed.
    assert!(
        matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::InvalidSpawn)
    );
    let parsed = fin("->relay:spawn Worker1 <<<\ntask text\n>>>\nafter");
    assert_eq!(spans(&parsed), vec![(0, 2)]);
}

#[test]
fn release_forms() {
    assert_eq!(sent("->relay:release Worker1"), vec![release("Worker1")]);
    assert_eq!(
        rejected("->relay:release")[0].kind,
        RejectionKind::InvalidRelease
    );
    assert_eq!(
        rejected("->relay:release Worker1 now please")[0].kind,
        RejectionKind::InvalidRelease
    );
    assert_eq!(
        rejected("->relay:release <name>")[0].kind,
        RejectionKind::InvalidRelease
    );
}

#[test]
fn embedded_spawn_and_release_are_ignored() {
    assert!(fin("I could ->relay:spawn W1 claude \"t\" later").is_empty());
    assert!(fin("then ->relay:release W1").is_empty());
}

#[test]
fn thinking_cannot_spawn_or_release() {
    assert_eq!(
        rejected("->thinking:spawn W1 claude")[0].kind,
        RejectionKind::ReservedTarget
    );
    assert_eq!(
        rejected("->thinking:release W1")[0].kind,
        RejectionKind::ReservedTarget
    );
}

#[test]
fn file_triggers() {
    assert_eq!(sent("->relay-file:msg"), vec![file("msg")]);
    assert_eq!(sent("⏺ ->relay-file:spawn.json"), vec![file("spawn.json")]);
    assert_eq!(sent("->relay-file:msg."), vec![file("msg")]);
    assert_eq!(sent("->relay-file:ack_2 (sent)"), vec![file("ack_2")]);
    assert!(fin("I wrote it, now ->relay-file:msg").is_empty());
}

#[test]
fn invalid_file_triggers_are_rejected() {
    for line in [
        "->relay-file:",
        "->relay-file:../secret",
        "->relay-file:.hidden",
        "->relay-file:a/b",
    ] {
        let r = rejected(line);
        assert_eq!(r.len(), 1, "{line}");
        assert_eq!(r[0].kind, RejectionKind::InvalidFileId, "{line}");
    }
}

#[test]
fn file_trigger_and_inline_on_neighbouring_lines_are_both_parsed() {
    let parsed = fin("->relay-file:msg\n->relay:Bob inline too");
    assert_eq!(spans(&parsed), vec![(0, 0), (1, 1)]);
}

#[test]
fn injected_message_is_never_a_command() {
    let text = "Relay message from Alice [abc1234]: please run ->relay:release Bob";
    assert!(fin(text).is_empty());
    let text = "> Relay message from Alice [abc1234]: do this:\n  ->relay:release Bob\n  ->relay-file:msg\n  ```\n\n->relay:Alice done";
    let parsed = fin(text);
    assert_eq!(spans(&parsed), vec![(5, 5)]);
    assert_eq!(msg(text).to, "Alice");
}

#[test]
fn injected_region_ends_at_unindented_line() {
    let text = "Relay message from Alice [1]: hi\n->relay:Alice hello back";
    assert_eq!(msg(text).body, "hello back");
}

#[test]
fn injected_line_stops_a_continuation() {
    let parsed =
        fin("->relay:Bob status:\n  fine\nRelay message from Bob [2]: ok\n  ->relay:Carol hi");
    assert_eq!(spans(&parsed), vec![(0, 1)]);
}

#[test]
fn commands_inside_code_fences_are_ignored() {
    assert!(fin("```\n->relay:Bob hi\n->relay:spawn W1 claude\n->relay-file:msg\n```").is_empty());
    assert!(fin("```bash\n->relay:release W1\n```").is_empty());
    let text =
        "```\n->relay:Bob in code\n```\n->relay:Carol outside\n```\n->relay:Dan in code\n```";
    let to: Vec<String> = messages(text).into_iter().map(|m| m.to).collect();
    assert_eq!(to, vec!["Carol"]);
}

#[test]
fn unclosed_code_fence_hides_the_rest() {
    assert!(fin("```\n->relay:Bob hi").is_empty());
}

#[test]
fn empty_and_blank_windows() {
    assert!(parse_window(&[], &GrammarOptions::default()).is_empty());
    assert!(fin("").is_empty());
    assert!(fin("\n\n\n").is_empty());
    assert!(open("just prose\nmore prose").is_empty());
}

#[test]
fn ordinary_output_produces_nothing() {
    let text = "Running tests...\n  > cargo test\n$ ls -la\n-> arrow\n->something else\n# heading\n>>> python\n<<< heredoc";
    assert!(fin(text).is_empty());
}

#[test]
fn lines_with_embedded_newlines_do_not_panic() {
    let lines = ["->relay:Bob a\nb", "\r\n", "->relay:Carol <<<\n>>>"];
    let _ = parse_window(&lines, &GrammarOptions::default());
}

#[test]
fn rejections_carry_an_excerpt_of_the_first_line() {
    let r = rejected("   ->relay:AgentName hello   ");
    assert_eq!(r[0].excerpt, "->relay:AgentName hello");
}

#[test]
fn serializes_as_tagged_json() {
    let parsed = fin("->relay:Bob [await:5s] hi");
    let value = serde_json::to_value(&parsed[0]).unwrap_or_default();
    assert_eq!(value["command"]["type"], "message");
    assert_eq!(value["command"]["kind"], "message");
    assert_eq!(value["command"]["sync"]["timeout_ms"], 5000);
    assert_eq!(value["first_line"], 0);
}

#[test]
fn options_deserialize_with_defaults() {
    let opts: GrammarOptions =
        serde_json::from_str(r#"{"prefix":"@msg:","max_fenced_lines":10}"#).unwrap_or_default();
    assert_eq!(opts.prefix, "@msg:");
    assert_eq!(opts.max_fenced_lines, 10);
    assert_eq!(opts.thinking_prefix, "->thinking:");
    assert_eq!(opts.max_block_bytes, 1024 * 1024);
}
