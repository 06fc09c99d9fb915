//! Discovery over the committed example project in `tests/fixtures/project`.

use std::path::{Path, PathBuf};

use relay_agents::{apply_claude_profile, ProfileRegistry, ProfileSource, WarningKind};
use serde_json::json;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/project")
}

#[test]
fn fixture_project_is_discovered() {
    let registry = ProfileRegistry::discover(&fixture());
    let listed: Vec<(&str, ProfileSource)> = registry
        .profiles()
        .iter()
        .map(|p| (p.name.as_str(), p.source))
        .collect();
    assert_eq!(
        listed,
        [
            ("lead", ProfileSource::ClaudeAgents),
            ("code-reviewer", ProfileSource::ClaudeAgents),
            ("test-runner", ProfileSource::ClaudeAgents),
            ("code-reviewer", ProfileSource::OpenAgents),
            ("planner", ProfileSource::OpenAgents),
        ]
    );

    // The only warning: the `.openagents` reviewer is shadowed.
    assert_eq!(registry.warnings().len(), 1, "{:?}", registry.warnings());
    let warning = &registry.warnings()[0];
    assert!(warning.path.ends_with(".openagents/code-reviewer.md"));
    assert!(matches!(
        &warning.kind,
        WarningKind::NameCollision { winner, .. } if winner.ends_with(".claude/agents/code-reviewer.md")
    ));
}

#[test]
fn fixture_code_reviewer() {
    let registry = ProfileRegistry::discover(&fixture());
    let Some(p) = registry.find("Code-Reviewer") else {
        panic!("code-reviewer not found");
    };
    assert_eq!(p.source, ProfileSource::ClaudeAgents);
    assert_eq!(p.model.as_deref(), Some("sonnet"));
    assert_eq!(
        p.tools,
        ["Read", "Grep", "Glob", "Bash(git diff:*, git log:*)"]
    );
    assert!(p
        .description
        .as_deref()
        .is_some_and(|d| d.starts_with("Expert code review specialist.")));
    assert!(p.prompt.starts_with("You are a senior code reviewer"));
    assert!(p.prompt.ends_with("- Suggestions (consider improving)"));
    assert_eq!(p.extra.get("color"), Some(&json!("purple")));
    assert_eq!(
        apply_claude_profile(&["--dangerously-skip-permissions".to_string()], p),
        [
            "--dangerously-skip-permissions",
            "--model",
            "sonnet",
            "--agent",
            "code-reviewer"
        ]
    );
}

#[test]
fn fixture_lead_uses_lists_and_shadow_fields() {
    let registry = ProfileRegistry::discover(&fixture());
    let Some(p) = registry.find("LEAD") else {
        panic!("lead not found");
    };
    assert_eq!(p.file_stem, "Lead");
    assert_eq!(p.tools, ["Read", "Write", "Edit", "Bash", "TodoWrite"]);
    assert_eq!(p.skills, ["relay-messaging", "task-planning"]);
    assert_eq!(p.role.as_deref(), Some("lead"));
    assert_eq!(p.agent_type.as_deref(), Some("coordinator"));
    assert_eq!(p.shadow_role.as_deref(), Some("auditor"));
    assert_eq!(p.shadow_triggers, ["SESSION_END", "EXPLICIT_ASK"]);
    assert_eq!(p.extra.get("maxTurns"), Some(&json!(40)));
    assert!(p.model.is_none());
    assert!(p.prompt.starts_with("# Lead"));
    assert_eq!(apply_claude_profile(&[], p), ["--agent", "lead"]);
}

#[test]
fn fixture_test_runner_and_planner() {
    let registry = ProfileRegistry::discover(&fixture());
    let Some(runner) = registry.find("test-runner") else {
        panic!("test-runner not found");
    };
    assert_eq!(runner.tools, ["Bash", "Read", "Edit", "Grep"]);
    assert_eq!(runner.model.as_deref(), Some("haiku"));
    assert_eq!(
        runner.description.as_deref(),
        Some(
            "Runs the test suite after code changes, diagnoses failures and fixes them \
             without weakening the tests."
        )
    );

    let Some(planner) = registry.find("planner") else {
        panic!("planner not found");
    };
    assert_eq!(planner.source, ProfileSource::OpenAgents);
    assert_eq!(planner.agent_type.as_deref(), Some("worker"));
    assert_eq!(planner.role.as_deref(), Some("planner"));
    assert_eq!(planner.tools, ["Read", "Grep", "Glob"]);
}
