//! Parsing single profile files.

use std::path::{Path, PathBuf};

use relay_agents::{
    parse_profile, parse_profile_with_warnings, AgentProfile, ProfileError, ProfileSource,
    ProfileWarning, WarningKind,
};
use serde_json::json;

fn path(stem: &str) -> PathBuf {
    Path::new("project/.claude/agents").join(format!("{stem}.md"))
}

fn parse(stem: &str, text: &str) -> AgentProfile {
    match parse_profile(&path(stem), ProfileSource::ClaudeAgents, text) {
        Ok(profile) => profile,
        Err(err) => panic!("expected {stem} to parse: {err}"),
    }
}

fn parse_warned(stem: &str, text: &str) -> (AgentProfile, Vec<ProfileWarning>) {
    match parse_profile_with_warnings(&path(stem), ProfileSource::ClaudeAgents, text) {
        Ok(parsed) => parsed,
        Err(err) => panic!("expected {stem} to parse: {err}"),
    }
}

fn parse_err(stem: &str, text: &str) -> ProfileError {
    match parse_profile(&path(stem), ProfileSource::ClaudeAgents, text) {
        Ok(profile) => panic!("expected {stem} to be rejected, got {profile:?}"),
        Err(err) => err,
    }
}

#[test]
fn full_front_matter_with_every_field() {
    let text = "---
name: code-reviewer
description: Reviews code for quality and security
tools: Read, Grep, Glob
model: opus
role: reviewer
agentType: specialist
skills: rust, security
shadowRole: auditor
shadowTriggers:
  - SESSION_END
  - EXPLICIT_ASK
color: purple
---

You are a senior code reviewer.

Check every diff.
";
    let (p, warnings) = parse_warned("reviewer-file", text);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.name, "code-reviewer");
    assert_eq!(p.file_stem, "reviewer-file");
    assert_eq!(p.path, path("reviewer-file"));
    assert_eq!(p.source, ProfileSource::ClaudeAgents);
    assert_eq!(
        p.description.as_deref(),
        Some("Reviews code for quality and security")
    );
    assert_eq!(p.tools, ["Read", "Grep", "Glob"]);
    assert_eq!(p.model.as_deref(), Some("opus"));
    assert_eq!(p.role.as_deref(), Some("reviewer"));
    assert_eq!(p.agent_type.as_deref(), Some("specialist"));
    assert_eq!(p.skills, ["rust", "security"]);
    assert_eq!(p.shadow_role.as_deref(), Some("auditor"));
    assert_eq!(p.shadow_triggers, ["SESSION_END", "EXPLICIT_ASK"]);
    assert_eq!(
        p.prompt,
        "You are a senior code reviewer.\n\nCheck every diff."
    );
    assert_eq!(p.extra.len(), 1);
    assert_eq!(p.extra["color"], json!("purple"));
}

#[test]
fn tools_as_comma_separated_string() {
    let p = parse(
        "a",
        "---\ntools: Read,Grep ,  Glob,,Bash(git add:*, git commit:*)\n---\n",
    );
    assert_eq!(
        p.tools,
        ["Read", "Grep", "Glob", "Bash(git add:*, git commit:*)"]
    );
}

#[test]
fn tools_as_yaml_lists() {
    let block = parse(
        "a",
        "---\ntools:\n  - Read\n  - \"Grep\"\n  -\n  - Glob\n---\n",
    );
    assert_eq!(block.tools, ["Read", "Grep", "Glob"]);
    let flow = parse("b", "---\ntools: [Read, Grep, 'Bash(ls:*)']\n---\n");
    assert_eq!(flow.tools, ["Read", "Grep", "Bash(ls:*)"]);
}

#[test]
fn allowed_tools_alone_and_merged_with_tools() {
    let alone = parse("a", "---\nallowed-tools: Read, Grep, Glob\n---\n");
    assert_eq!(alone.tools, ["Read", "Grep", "Glob"]);
    assert!(alone.extra.is_empty(), "allowed-tools is not an extra key");

    // `tools` first, then `allowed-tools`, whatever the order in the file;
    // duplicates dropped, first position kept.
    let merged = parse(
        "b",
        "---\nallowed-tools: [Write, Read, Bash]\ntools: Read, Grep, Read\n---\n",
    );
    assert_eq!(merged.tools, ["Read", "Grep", "Write", "Bash"]);
}

#[test]
fn quoted_values_are_unquoted() {
    let p = parse(
        "a",
        "---\nname: \"quoted-name\"\ndescription: 'It''s: \"fine\" # not a comment'\nmodel: \"sonnet\"\nskills: \"a, b\"\n---\n",
    );
    assert_eq!(p.name, "quoted-name");
    assert_eq!(
        p.description.as_deref(),
        Some("It's: \"fine\" # not a comment")
    );
    assert_eq!(p.model.as_deref(), Some("sonnet"));
    assert_eq!(p.skills, ["a", "b"]);
}

#[test]
fn triple_dash_inside_values_does_not_close_the_front_matter() {
    let text = "---
name: dashes
description: before --- after
role: \"---\"
notes: |
  first
  ---
  last
---
Body with --- inside.
---
Still body.
";
    let p = parse("dashes", text);
    assert_eq!(p.description.as_deref(), Some("before --- after"));
    assert_eq!(p.role.as_deref(), Some("---"));
    assert_eq!(p.extra["notes"], json!("first\n---\nlast\n"));
    assert_eq!(p.prompt, "Body with --- inside.\n---\nStill body.");
}

#[test]
fn closing_line_may_be_dots_or_have_trailing_blanks() {
    let dots = parse("a", "---\nmodel: haiku\n...\nBody\n");
    assert_eq!(dots.model.as_deref(), Some("haiku"));
    assert_eq!(dots.prompt, "Body");

    let blanks = parse("b", "--- \nmodel: haiku\n---\t \nBody\n");
    assert_eq!(blanks.model.as_deref(), Some("haiku"));
    assert_eq!(blanks.prompt, "Body");

    let at_eof = parse("c", "---\nmodel: haiku\n---");
    assert_eq!(at_eof.model.as_deref(), Some("haiku"));
    assert_eq!(at_eof.prompt, "");
}

#[test]
fn leading_byte_order_mark_is_ignored() {
    let p = parse(
        "a",
        "\u{feff}---\nname: bom-agent\nmodel: sonnet\n---\nHello\n",
    );
    assert_eq!(p.name, "bom-agent");
    assert_eq!(p.model.as_deref(), Some("sonnet"));
    assert_eq!(p.prompt, "Hello");

    let no_front_matter = parse("plain", "\u{feff}Just a prompt.");
    assert_eq!(no_front_matter.prompt, "Just a prompt.");
}

#[test]
fn crlf_line_ends_are_accepted() {
    let text = "---\r\nname: crlf-agent\r\ntools:\r\n  - Read\r\n  - Grep\r\ndescription: |\r\n  one\r\n  two\r\n---\r\nLine one\r\nLine two\r\n";
    let p = parse("a", text);
    assert_eq!(p.name, "crlf-agent");
    assert_eq!(p.tools, ["Read", "Grep"]);
    assert_eq!(p.description.as_deref(), Some("one\ntwo"));
    assert_eq!(p.prompt, "Line one\nLine two");
}

#[test]
fn file_without_front_matter_is_a_profile_named_after_its_stem() {
    let (p, warnings) = parse_warned("helper", "  You help.\n\nname: not a field\n");
    assert!(warnings.is_empty());
    assert_eq!(p.name, "helper");
    assert_eq!(p.file_stem, "helper");
    assert_eq!(p.prompt, "You help.\n\nname: not a field");
    assert!(p.description.is_none());
    assert!(p.tools.is_empty());
    assert!(p.extra.is_empty());

    let empty = parse("empty", "");
    assert_eq!(empty.name, "empty");
    assert_eq!(empty.prompt, "");

    // `----` is not a delimiter.
    let rule = parse("rule", "----\nname: x\n----\n");
    assert_eq!(rule.name, "rule");
}

#[test]
fn front_matter_after_blank_lines_is_prompt_with_a_warning() {
    let (p, warnings) = parse_warned("late", "\n\n---\nname: other\n---\nBody\n");
    assert_eq!(p.name, "late");
    assert_eq!(p.prompt, "---\nname: other\n---\nBody");
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].kind, WarningKind::FrontMatterNotAtStart);
    assert!(warnings[0].message.contains("first line"));
}

#[test]
fn unclosed_front_matter_is_an_error() {
    let err = parse_err(
        "open",
        "---\nname: open\ndescription: never closed\n\nBody\n",
    );
    assert_eq!(
        err,
        ProfileError::UnclosedFrontMatter { path: path("open") }
    );
    let text = err.to_string();
    assert!(text.contains("open.md"), "{text}");
    assert!(text.contains("never closed"), "{text}");
    assert!(text.contains("add a line containing only `---`"), "{text}");

    assert!(matches!(
        parse_err("bare", "---"),
        ProfileError::UnclosedFrontMatter { .. }
    ));
}

#[test]
fn invalid_yaml_is_reported_with_its_file_position() {
    let text = "---\nname: broken\ndescription: a: b\n---\nBody\n";
    match parse_err("broken", text) {
        ProfileError::InvalidYaml {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!(line, Some(3));
            assert_eq!(column, Some(15));
            assert!(!message.contains("at line"), "{message}");
            assert!(message.contains("mapping values"), "{message}");
        }
        other => panic!("expected InvalidYaml, got {other:?}"),
    }

    // A BOM and CRLF do not shift the reported line.
    let text = "\u{feff}---\r\nname: ok\r\nmodel: sonnet\r\n  tools: [Read\r\n---\r\n";
    let err = parse_err("shifted", text);
    let ProfileError::InvalidYaml { line, .. } = &err else {
        panic!("expected InvalidYaml, got {err:?}");
    };
    assert!(matches!(line, Some(3..=5)), "{err}");
    let shown = err.to_string();
    assert!(shown.contains("shifted.md"), "{shown}");
    assert!(shown.contains("at line"), "{shown}");
    assert!(shown.contains("quote"), "{shown}");
}

#[test]
fn tab_indentation_is_explained() {
    let err = parse_err("tabs", "---\nname: tabs\n\tmodel: opus\n---\n");
    let ProfileError::InvalidYaml { line, message, .. } = &err else {
        panic!("expected InvalidYaml, got {err:?}");
    };
    assert_eq!(*line, Some(3));
    assert!(message.contains("indented with a tab"), "{message}");
}

#[test]
fn duplicate_keys_are_invalid_yaml() {
    let err = parse_err("dup", "---\nmodel: a\nmodel: b\n---\n");
    assert!(matches!(err, ProfileError::InvalidYaml { .. }), "{err:?}");
}

#[test]
fn front_matter_that_is_not_a_mapping_is_an_error() {
    let err = parse_err("list", "---\n- a\n- b\n---\n");
    assert_eq!(
        err,
        ProfileError::FrontMatterNotMapping {
            path: path("list"),
            found: "a list".to_string()
        }
    );
    assert!(err.to_string().contains("key: value"));
    assert!(matches!(
        parse_err("scalar", "---\njust text\n---\n"),
        ProfileError::FrontMatterNotMapping { .. }
    ));
}

#[test]
fn empty_values_count_as_absent() {
    let text = "---
name:
description: \"\"
model: '   '
tools:
skills: []
role: ~
shadowTriggers: ' , '
---
";
    let (p, warnings) = parse_warned("blank", text);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.name, "blank");
    assert!(p.description.is_none());
    assert!(p.model.is_none());
    assert!(p.role.is_none());
    assert!(p.tools.is_empty());
    assert!(p.skills.is_empty());
    assert!(p.shadow_triggers.is_empty());
    assert!(p.extra.is_empty());

    let empty_front_matter = parse("bare", "---\n---\nBody");
    assert_eq!(empty_front_matter.name, "bare");
    assert_eq!(empty_front_matter.prompt, "Body");
}

#[test]
fn values_are_trimmed() {
    let p = parse("a", "---\nname: \"  spaced  \"\nmodel: \" opus \"\n---\n");
    assert_eq!(p.name, "spaced");
    assert_eq!(p.model.as_deref(), Some("opus"));
}

#[test]
fn non_string_scalars_are_read_as_text_with_a_warning() {
    let (p, warnings) = parse_warned(
        "numbers",
        "---\nname: 42\nmodel: 4\nrole: true\ntools: [Read, 7]\n---\n",
    );
    assert_eq!(p.name, "42");
    assert_eq!(p.model.as_deref(), Some("4"));
    assert_eq!(p.role.as_deref(), Some("true"));
    assert_eq!(p.tools, ["Read", "7"]);
    let keys: Vec<_> = warnings
        .iter()
        .map(|w| match &w.kind {
            WarningKind::FieldType { key } => key.as_str(),
            other => panic!("unexpected warning {other:?}"),
        })
        .collect();
    assert_eq!(keys, ["name", "model", "role", "tools"]);
    let model = &warnings[1];
    assert_eq!(model.path, path("numbers"));
    assert!(model.message.contains("a number"), "{}", model.message);
    assert!(
        model.message.contains("`model: \"4\"`"),
        "{}",
        model.message
    );
    assert!(model.to_string().contains("numbers.md"));

    let float = parse("f", "---\nmodel: 3.5\n---\n");
    assert_eq!(float.model.as_deref(), Some("3.5"));
}

#[test]
fn lists_and_mappings_where_a_string_is_expected_are_ignored_with_a_warning() {
    let (p, warnings) = parse_warned(
        "shapes",
        "---\nname: [a, b]\nmodel: {id: opus}\nskills: {a: 1}\ntools: [Read, [Nested], {k: v}]\n---\n",
    );
    assert_eq!(p.name, "shapes", "falls back to the stem");
    assert!(p.model.is_none());
    assert!(p.skills.is_empty());
    assert_eq!(p.tools, ["Read"]);
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    assert!(warnings
        .iter()
        .all(|w| matches!(w.kind, WarningKind::FieldType { .. })));
    assert!(warnings[0].message.contains("`name` is a list"));
    assert!(warnings[1].message.contains("`model` is a mapping"));
    assert!(warnings[2].message.contains("`skills` is a mapping"));
    assert!(warnings[3].message.contains("an item of `tools` is a list"));
}

#[test]
fn alias_keys_and_conflicts() {
    let kebab = parse(
        "a",
        "---\nagent-type: worker\nshadow-role: reviewer\nshadow-triggers: CODE_WRITTEN, EXPLICIT_ASK\n---\n",
    );
    assert_eq!(kebab.agent_type.as_deref(), Some("worker"));
    assert_eq!(kebab.shadow_role.as_deref(), Some("reviewer"));
    assert_eq!(kebab.shadow_triggers, ["CODE_WRITTEN", "EXPLICIT_ASK"]);
    assert!(kebab.extra.is_empty());

    let plain_type = parse("b", "---\ntype: worker\n---\n");
    assert_eq!(plain_type.agent_type.as_deref(), Some("worker"));

    // Same value twice: no warning.
    let (_, warnings) = parse_warned("c", "---\ntype: lead\nagentType: lead\n---\n");
    assert!(warnings.is_empty());

    // Different values: `agentType` wins and the conflict is reported.
    let (p, warnings) = parse_warned("d", "---\ntype: worker\nagentType: lead\n---\n");
    assert_eq!(p.agent_type.as_deref(), Some("lead"));
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].kind,
        WarningKind::ConflictingKeys {
            keys: vec!["agentType".to_string(), "type".to_string()]
        }
    );
    assert!(warnings[0].message.contains("keep only one"));
}

#[test]
fn extra_keys_are_converted_to_json_and_round_trip() {
    let text = "---
name: extras
color: blue
maxTurns: 10
temperature: 0.25
enabled: false
nothing: null
permissions:
  allow: [Read, Write]
  deny:
    - Bash
tagged: !secret hidden
anchors:
  base: &base {retries: 3}
  derived:
    <<: *base
    timeout: 5
---
Prompt.
";
    let p = parse("extras", text);
    let expected = json!({
        "color": "blue",
        "maxTurns": 10,
        "temperature": 0.25,
        "enabled": false,
        "nothing": null,
        "permissions": {"allow": ["Read", "Write"], "deny": ["Bash"]},
        "tagged": "hidden",
        "anchors": {"base": {"retries": 3}, "derived": {"retries": 3, "timeout": 5}},
    });
    assert_eq!(serde_json::to_value(&p.extra).ok(), Some(expected));

    // The whole profile survives a JSON round trip.
    let encoded = serde_json::to_string(&p).unwrap_or_default();
    assert!(encoded.contains("\"fileStem\":\"extras\""), "{encoded}");
    assert!(
        encoded.contains("\"source\":\"claude_agents\""),
        "{encoded}"
    );
    let decoded: Option<AgentProfile> = serde_json::from_str(&encoded).ok();
    assert_eq!(decoded.as_ref(), Some(&p));
}

#[test]
fn open_agents_source_is_kept_and_stem_drops_only_the_md_extension() {
    let p = parse_profile(
        Path::new("x/.openagents/team.lead.md"),
        ProfileSource::OpenAgents,
        "Body",
    );
    let p = p.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(p.source, ProfileSource::OpenAgents);
    assert_eq!(p.file_stem, "team.lead");
    assert_eq!(p.name, "team.lead");
}

#[test]
fn missing_name_is_an_error() {
    let err = parse_profile(Path::new("/"), ProfileSource::ClaudeAgents, "Body");
    assert!(
        matches!(err, Err(ProfileError::MissingName { .. })),
        "{err:?}"
    );
    let named = parse_profile(
        Path::new("/"),
        ProfileSource::ClaudeAgents,
        "---\nname: ok\n---\n",
    );
    assert_eq!(named.map(|p| p.name).ok().as_deref(), Some("ok"));
}

#[test]
fn profile_matches_name_or_stem_ignoring_case() {
    let p = parse("Code-Reviewer", "---\nname: Reviewer\n---\n");
    assert!(p.matches("reviewer"));
    assert!(p.matches("REVIEWER"));
    assert!(p.matches("code-reviewer"));
    assert!(p.matches(" Code-Reviewer "));
    assert!(!p.matches("code"));
}
