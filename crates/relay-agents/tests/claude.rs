//! Applying profiles to `claude` command lines.

use std::path::Path;

use relay_agents::{
    apply_claude_profile, is_claude_cli, parse_profile, AgentProfile, ProfileSource,
};

fn profile(text: &str) -> AgentProfile {
    match parse_profile(
        Path::new(".claude/agents/reviewer.md"),
        ProfileSource::ClaudeAgents,
        text,
    ) {
        Ok(profile) => profile,
        Err(err) => panic!("{err}"),
    }
}

fn with_model() -> AgentProfile {
    profile("---\nname: Code-Reviewer\nmodel: sonnet\n---\nReview.")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn adds_model_and_agent_when_absent() {
    assert_eq!(
        apply_claude_profile(&[], &with_model()),
        ["--model", "sonnet", "--agent", "Code-Reviewer"]
    );
    let given = args(&["--dangerously-skip-permissions", "-p"]);
    assert_eq!(
        apply_claude_profile(&given, &with_model()),
        [
            "--dangerously-skip-permissions",
            "-p",
            "--model",
            "sonnet",
            "--agent",
            "Code-Reviewer"
        ]
    );
    assert_eq!(
        given,
        args(&["--dangerously-skip-permissions", "-p"]),
        "input untouched"
    );
}

#[test]
fn keeps_an_explicit_model_in_either_form() {
    assert_eq!(
        apply_claude_profile(&args(&["--model", "opus"]), &with_model()),
        ["--model", "opus", "--agent", "Code-Reviewer"]
    );
    assert_eq!(
        apply_claude_profile(&args(&["--model=opus", "-c"]), &with_model()),
        ["--model=opus", "-c", "--agent", "Code-Reviewer"]
    );
    // A longer flag sharing the prefix is not `--model`.
    assert_eq!(
        apply_claude_profile(&args(&["--models-list"]), &with_model()),
        [
            "--models-list",
            "--model",
            "sonnet",
            "--agent",
            "Code-Reviewer"
        ]
    );
}

#[test]
fn keeps_an_explicit_agent_in_either_form() {
    assert_eq!(
        apply_claude_profile(&args(&["--agent", "other"]), &with_model()),
        ["--agent", "other", "--model", "sonnet"]
    );
    assert_eq!(
        apply_claude_profile(&args(&["--agent=other", "--model=haiku"]), &with_model()),
        ["--agent=other", "--model=haiku"]
    );
}

#[test]
fn profile_without_model_only_adds_agent() {
    let plain = profile("---\nname: reviewer\n---\n");
    assert_eq!(apply_claude_profile(&[], &plain), ["--agent", "reviewer"]);
    assert_eq!(
        apply_claude_profile(&args(&["--model", "opus"]), &plain),
        ["--model", "opus", "--agent", "reviewer"]
    );
}

#[test]
fn flags_go_before_a_double_dash_and_positionals_are_not_searched() {
    assert_eq!(
        apply_claude_profile(&args(&["-p", "--", "--model", "x"]), &with_model()),
        [
            "-p",
            "--model",
            "sonnet",
            "--agent",
            "Code-Reviewer",
            "--",
            "--model",
            "x"
        ]
    );
}

#[test]
fn recognises_the_claude_cli() {
    for command in [
        "claude",
        "Claude",
        "CLAUDE",
        "/usr/local/bin/claude",
        "claude --resume",
        "  claude\t--model opus",
        "~/.local/bin/claude -c",
        "\"/opt/my tools/claude\" --verbose",
        "'claude'",
        "C:\\Tools\\claude.exe",
        "./claude",
    ] {
        assert!(is_claude_cli(command), "{command:?} should be claude");
    }
}

#[test]
fn rejects_other_programs() {
    for command in [
        "",
        "   ",
        "codex",
        "gemini",
        "node",
        "node claude.js",
        "claude-code-wrapper",
        "claudex",
        "my-claude",
        "/opt/claude/bin/codex",
        "/usr/bin/claude-wrapper --x",
        "npx claude",
        "\"\"",
        "claude.sh",
    ] {
        assert!(!is_claude_cli(command), "{command:?} should not be claude");
    }
}
