//! Inline messages: anchoring, targets, tags, continuation, filters, escapes, prefixes.

mod common;

use common::{fin, fin_with, messages, msg, open, rejected, sent, spans};
use relay_grammar::{
    is_placeholder_target, Command, GrammarOptions, MessageKind, RejectionKind, SyncSpec,
};

#[test]
fn single_line_message() {
    let m = msg("->relay:Bob Hello Bob!");
    assert_eq!(m.to, "Bob");
    assert_eq!(m.body, "Hello Bob!");
    assert_eq!(m.kind, MessageKind::Message);
    assert_eq!(m.project, None);
    assert_eq!(m.sync, None);
}

#[test]
fn leading_whitespace_is_allowed() {
    assert_eq!(msg("    ->relay:Bob hi").body, "hi");
    assert_eq!(msg("\t->relay:Bob hi").to, "Bob");
}

#[test]
fn tui_bullets_and_boxes_are_allowed() {
    for line in [
        "⏺ ->relay:Bob hi",
        "✦ ->relay:Bob hi",
        "│ ->relay:Bob hi",
        "> ->relay:Bob hi",
        "• ->relay:Bob hi",
        "  ● » ->relay:Bob hi",
        "$->relay:Bob hi",
        "-->relay:Bob hi",
        "# ->relay:Bob hi",
    ] {
        let m = msg(line);
        assert_eq!(
            (m.to.as_str(), m.body.as_str()),
            ("Bob", "hi"),
            "line {line:?}"
        );
    }
}

#[test]
fn command_in_the_middle_of_a_line_is_not_a_command() {
    assert!(fin("I will send ->relay:Bob hi later").is_empty());
    assert!(fin("x ->relay:Bob hi").is_empty());
    assert!(fin("Use `->relay:Bob hi` to talk").is_empty());
}

#[test]
fn thinking_prefix() {
    let m = msg("->thinking:Bob considering options");
    assert_eq!(m.kind, MessageKind::Thinking);
    assert_eq!(m.body, "considering options");
}

#[test]
fn multiple_commands_keep_order_and_spans() {
    let parsed = fin("->relay:Alice one\nsome prose\n->relay:Bob two\n->thinking:Carol three");
    assert_eq!(spans(&parsed), vec![(0, 0), (2, 2), (3, 3)]);
    let to: Vec<String> = messages("->relay:Alice one\nprose\n->relay:Bob two")
        .into_iter()
        .map(|m| m.to)
        .collect();
    assert_eq!(to, vec!["Alice", "Bob"]);
}

#[test]
fn identical_commands_on_different_lines_are_two_commands() {
    let parsed = fin("->relay:Bob ping\n\n->relay:Bob ping");
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0].command, parsed[1].command);
    assert_eq!(spans(&parsed), vec![(0, 0), (2, 2)]);
}

#[test]
fn indented_lines_continue_the_body() {
    let m = msg("->relay:Bob first line\n  second line\n  third line\n\nafter");
    assert_eq!(m.body, "first line\nsecond line\nthird line");
}

#[test]
fn bullets_continue_the_body() {
    let m = msg("->relay:Bob Status:\n- done A\n- done B\n\nprose");
    assert_eq!(m.body, "Status:\n- done A\n- done B");
    let m = msg("->relay:Bob list\n1. one\n2) two");
    assert_eq!(m.body, "list\n1. one\n2) two");
}

#[test]
fn punctuation_announces_a_continuation_then_any_line_joins() {
    let m = msg("->relay:Bob Here is the plan,\nstep one\nstep two\n\nnot part");
    assert_eq!(m.body, "Here is the plan,\nstep one\nstep two");
    let m = msg("->relay:Bob ends with a dash -\nnext");
    assert_eq!(m.body, "ends with a dash -\nnext");
}

#[test]
fn plain_next_line_does_not_join() {
    let parsed = fin("->relay:Bob done\nNow I will run the tests");
    assert_eq!(spans(&parsed), vec![(0, 0)]);
    assert_eq!(
        msg("->relay:Bob done\nNow I will run the tests").body,
        "done"
    );
}

#[test]
fn continuation_stops_at_prompt_line() {
    let parsed = fin("->relay:Bob hi:\n  more\n>\n  after prompt");
    assert_eq!(spans(&parsed), vec![(0, 1)]);
}

#[test]
fn continuation_stops_at_another_command() {
    let parsed = fin("->relay:Bob a:\n  b\n->relay:Carol c");
    assert_eq!(spans(&parsed), vec![(0, 1), (2, 2)]);
    let parsed = fin("->relay:Bob a:\n  ->relay:Carol c");
    assert_eq!(spans(&parsed), vec![(0, 0), (1, 1)]);
}

#[test]
fn continuation_stops_at_code_fence_block_and_injected_lines() {
    assert_eq!(spans(&fin("->relay:Bob a:\n```\nx\n```")), vec![(0, 0)]);
    assert_eq!(
        spans(&fin("->relay:Bob a:\n[[/RELAY]]\n  more")),
        vec![(0, 0)]
    );
    assert_eq!(
        spans(&fin("->relay:Bob a:\nRelay message from Carol [1]: hi")),
        vec![(0, 0)]
    );
    assert_eq!(spans(&fin("->relay:Bob a:\n\\->relay:X y")), vec![(0, 0)]);
}

#[test]
fn blank_line_stops_before_a_continuation_started() {
    assert_eq!(msg("->relay:Bob intro:\n\n  indented").body, "intro:");
}

#[test]
fn blank_line_inside_continuation_before_table_or_numbered_item() {
    let m = msg("->relay:Bob Results:\n  summary\n\n| a | b |\n| 1 | 2 |\n\n\nafter");
    assert_eq!(m.body, "Results:\n  summary\n\n| a | b |\n| 1 | 2 |");
    let m = msg("->relay:Bob Steps:\n  first\n\n2. second\n\nprose");
    assert_eq!(m.body, "Steps:\n  first\n\n2. second");
    let m = msg("->relay:Bob Steps:\n  first\n\nprose");
    assert_eq!(m.body, "Steps:\nfirst");
}

#[test]
fn double_blank_always_stops() {
    let parsed = fin("->relay:Bob a:\n  b\n\n\n| t |");
    assert_eq!(spans(&parsed), vec![(0, 1)]);
}

#[test]
fn continuation_is_capped() {
    let opts = GrammarOptions {
        max_continuation_lines: 3,
        ..GrammarOptions::default()
    };
    let parsed = fin_with("->relay:Bob a:\n  1\n  2\n  3\n  4\n  5", &opts);
    assert_eq!(spans(&parsed), vec![(0, 3)]);
    let default = fin(&format!("->relay:Bob a:\n{}", "  x\n".repeat(40)));
    assert_eq!(spans(&default), vec![(0, 30)]);
}

#[test]
fn await_tags() {
    assert_eq!(
        msg("->relay:Bob [await] ready?").sync,
        Some(SyncSpec { timeout_ms: None })
    );
    let cases = [
        ("[await:30s]", 30_000),
        ("[await:5]", 5_000),
        ("[await:250ms]", 250),
        ("[await:2m]", 120_000),
        ("[await:1h]", 3_600_000),
    ];
    for (tag, ms) in cases {
        let m = msg(&format!("->relay:Bob {tag} ready?"));
        assert_eq!(
            m.sync,
            Some(SyncSpec {
                timeout_ms: Some(ms)
            }),
            "{tag}"
        );
        assert_eq!(m.body, "ready?");
    }
}

#[test]
fn thread_tags() {
    let m = msg("->relay:Bob [thread:task-1.2] update");
    assert_eq!(m.thread.as_deref(), Some("task-1.2"));
    assert_eq!(m.thread_project, None);
    assert_eq!(m.body, "update");
    let m = msg("->relay:Bob [thread:other:t_9] update");
    assert_eq!(m.thread.as_deref(), Some("t_9"));
    assert_eq!(m.thread_project.as_deref(), Some("other"));
}

#[test]
fn tags_in_any_order_and_repeated() {
    let m = msg("->relay:Bob [thread:a] [await:10s][thread:b] body [await]");
    assert_eq!(m.thread.as_deref(), Some("b"));
    assert_eq!(
        m.sync,
        Some(SyncSpec {
            timeout_ms: Some(10_000)
        })
    );
    assert_eq!(m.body, "body [await]");
}

#[test]
fn unknown_or_malformed_tags_stay_in_the_body() {
    assert_eq!(msg("->relay:Bob [urgent] fix it").body, "[urgent] fix it");
    let m = msg("->relay:Bob [await:soon] fix it");
    assert_eq!((m.sync, m.body.as_str()), (None, "[await:soon] fix it"));
    assert_eq!(
        msg("->relay:Bob [thread:has space] x").body,
        "[thread:has space] x"
    );
}

#[test]
fn target_forms() {
    let cases = [
        ("*", "*", None),
        ("#general", "#general", None),
        ("@users", "@users", None),
        ("proj:Bob", "Bob", Some("proj")),
        ("proj:a:b", "a:b", Some("proj")),
        ("*:lead", "lead", Some("*")),
        ("proj:*", "*", Some("proj")),
        ("my-proj_2:agent_1-x", "agent_1-x", Some("my-proj_2")),
        ("Bob.v2", "Bob.v2", None),
    ];
    for (target, to, project) in cases {
        let m = msg(&format!("->relay:{target} hi"));
        assert_eq!(m.to, to, "{target}");
        assert_eq!(m.project.as_deref(), project, "{target}");
    }
}

#[test]
fn thinking_with_project_target() {
    let m = msg("->thinking:proj:Bob hmm");
    assert_eq!(
        (m.kind, m.to.as_str(), m.project.as_deref()),
        (MessageKind::Thinking, "Bob", Some("proj"))
    );
}

#[test]
fn invalid_targets_are_rejected() {
    for line in ["->relay::Bob hi", "->relay:proj: hi"] {
        let r = rejected(line);
        assert_eq!(r.len(), 1, "{line}");
        assert_eq!(r[0].kind, RejectionKind::InvalidTarget, "{line}");
    }
}

#[test]
fn placeholder_targets_are_rejected_case_insensitively() {
    for target in [
        "AgentName",
        "agentname",
        "TARGET",
        "Recipient",
        "YourTarget",
        "TargetAgent",
        "SomeAgent",
        "OtherAgent",
        "Worker",
        "name",
        "<name>",
        "<agent-name>",
        "...",
        "proj:AgentName",
    ] {
        let line = format!("->relay:{target} hello there");
        assert!(sent(&line).is_empty(), "{target} was sent");
        let r = rejected(&line);
        assert_eq!(r.len(), 1, "{target}");
        assert_eq!(r[0].kind, RejectionKind::PlaceholderTarget, "{target}");
        assert!(r[0].reason.contains("placeholder"), "{}", r[0].reason);
    }
}

#[test]
fn placeholder_helper() {
    assert!(is_placeholder_target("AgentName"));
    assert!(is_placeholder_target(" <x> "));
    assert!(is_placeholder_target("…"));
    assert!(!is_placeholder_target("Bob"));
    assert!(!is_placeholder_target("Worker1"));
    assert!(!is_placeholder_target("<"));
}

#[test]
fn missing_body_is_rejected() {
    for line in ["->relay:Bob", "->relay:Bob   ", "->relay:Bob [await]"] {
        let r = rejected(line);
        assert_eq!(r.len(), 1, "{line:?}");
        assert_eq!(r[0].kind, RejectionKind::EmptyBody);
    }
}

#[test]
fn body_on_continuation_lines_only() {
    assert_eq!(
        msg("->relay:Bob\n  the actual body").body,
        "the actual body"
    );
}

#[test]
fn missing_target_is_not_a_command() {
    assert!(fin("->relay: Bob hi").is_empty());
    assert!(fin("->relay:").is_empty());
}

#[test]
fn escaped_commands_are_not_commands() {
    for text in [
        "\\->relay:Bob hi",
        "   \\->relay:Bob hi",
        "\\->thinking:Bob hi",
        "⏺ \\->relay:Bob hi",
        "\\->relay-file:msg",
        "\\->relay.json:{\"to\":\"Bob\",\"body\":\"x\"}",
    ] {
        assert!(fin(text).is_empty(), "{text:?}");
    }
}

#[test]
fn instructional_bodies_are_rejected() {
    for body in [
        "PROTOCOL: 1 says hello",
        "see the [Agent Relay] rules",
        "Example: ->relay:Bob hi",
        "MULTI-LINE: use fences",
        "RECEIVE: messages appear as…",
        "AgentName message text",
        "Target message",
        "To send a message SEND:",
        "write \\->relay: to escape",
    ] {
        let line = format!("->relay:Bob {body}");
        assert!(sent(&line).is_empty(), "{body:?} was sent");
        let r = rejected(&line);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, RejectionKind::Instructional, "{body:?}");
    }
}

#[test]
fn real_bodies_with_similar_words_pass() {
    for body in [
        "for example, the build is green",
        "an example: none needed",
        "Targeting the API next",
        "Our target is Friday",
        "PROTOCOL: undecided",
        "please SEND: the logs now",
        "AgentNames are case-sensitive",
        "receive: lowercase is fine",
    ] {
        let m = msg(&format!("->relay:Bob {body}"));
        assert_eq!(m.body, body);
    }
}

#[test]
fn weak_markers_only_count_on_the_first_line() {
    let m = msg("->relay:Bob Review notes:\n  Example: use Result here");
    assert_eq!(m.body, "Review notes:\nExample: use Result here");
    let r = rejected("->relay:Bob Notes:\n  see [Agent Relay] docs");
    assert_eq!(r[0].kind, RejectionKind::Instructional);
}

#[test]
fn configurable_prefixes() {
    let cases = [">>", "@msg:", "/relay ", "$$relay(.*)+?:"];
    for prefix in cases {
        let opts = GrammarOptions {
            prefix: prefix.to_owned(),
            ..GrammarOptions::default()
        };
        let parsed = fin_with(&format!("{prefix}Bob hello\n->relay:Carol ignored"), &opts);
        assert_eq!(parsed.len(), 1, "{prefix}");
        match &parsed[0].command {
            Command::Message(m) => assert_eq!((m.to.as_str(), m.body.as_str()), ("Bob", "hello")),
            other => panic!("{prefix}: {other:?}"),
        }
    }
}

#[test]
fn configurable_prefix_with_bullets_and_broadcast() {
    let opts = GrammarOptions {
        prefix: "@msg:".to_owned(),
        ..GrammarOptions::default()
    };
    let parsed = fin_with("⏺ @msg:* everyone hi", &opts);
    match &parsed[0].command {
        Command::Message(m) => assert_eq!((m.to.as_str(), m.body.as_str()), ("*", "everyone hi")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_prefix_disables_the_construct() {
    let opts = GrammarOptions {
        thinking_prefix: String::new(),
        ..GrammarOptions::default()
    };
    assert!(fin_with("->thinking:Bob hmm", &opts).is_empty());
    assert_eq!(fin_with("->relay:Bob hi", &opts).len(), 1);
}

#[test]
fn unicode_bodies_and_trailing_carriage_returns() {
    assert_eq!(msg("->relay:Bob héllo 🚀 — 完成").body, "héllo 🚀 — 完成");
    assert_eq!(msg("->relay:Bob hi\r").body, "hi");
}

#[test]
fn inline_message_at_end_of_open_window_waits_for_next_line() {
    let opts = GrammarOptions::default();
    assert!(relay_grammar::parse_window(&["->relay:Bob hi"], &opts).is_empty());
    assert_eq!(spans(&open("->relay:Bob hi\nprose")), vec![(0, 0)]);
    // A single trailing blank line decides a continuation that has not started.
    let parsed = relay_grammar::parse_window(&["->relay:Bob hi", ""], &opts);
    assert_eq!(spans(&parsed), vec![(0, 0)]);
}

#[test]
fn started_continuation_needs_the_line_after_a_blank() {
    assert!(open("->relay:Bob a:\n  b\n").is_empty());
    let lines = ["->relay:Bob a:", "  b", ""];
    assert!(relay_grammar::parse_window(&lines, &GrammarOptions::default()).is_empty());
    let lines = ["->relay:Bob a:", "  b", "", ""];
    assert_eq!(
        spans(&relay_grammar::parse_window(
            &lines,
            &GrammarOptions::default()
        )),
        vec![(0, 1)]
    );
}

#[test]
fn large_inline_body_is_rejected() {
    let opts = GrammarOptions {
        max_block_bytes: 16,
        ..GrammarOptions::default()
    };
    let parsed = fin_with(
        "->relay:Bob this body is far longer than sixteen bytes",
        &opts,
    );
    match &parsed[0].command {
        Command::Rejected(r) => assert_eq!(r.kind, RejectionKind::TooLong),
        other => panic!("{other:?}"),
    }
}
