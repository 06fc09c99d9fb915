//! Fenced (`<<<` … `>>>`) messages, auto-close, limits, code fences, and windows that end
//! inside a block.

mod common;

use common::{fin, fin_with, messages, msg, open, rejected, sent, spans};
use relay_grammar::{
    parse_window, parse_window_with, Command, GrammarOptions, MessageKind, RejectionKind, SyncSpec,
    WindowEnd,
};

#[test]
fn basic_fenced_message() {
    let parsed = fin("->relay:Bob <<<\nline one\nline two\n>>>");
    assert_eq!(spans(&parsed), vec![(0, 3)]);
    assert_eq!(
        msg("->relay:Bob <<<\nline one\nline two\n>>>").body,
        "line one\nline two"
    );
}

#[test]
fn blank_lines_inside_are_kept() {
    assert_eq!(
        msg("->relay:Bob <<<\npara one\n\npara two\n>>>").body,
        "para one\n\npara two"
    );
}

#[test]
fn code_block_inside_body_is_kept_verbatim() {
    let m = msg("->relay:Bob <<<\nTry:\n```rust\nfn main() {}\n```\n>>>");
    assert_eq!(m.body, "Try:\n```rust\nfn main() {}\n```");
}

#[test]
fn fenced_thinking() {
    let m = msg("->thinking:Bob <<<\nhmm\n>>>");
    assert_eq!((m.kind, m.body.as_str()), (MessageKind::Thinking, "hmm"));
}

#[test]
fn fenced_with_tags() {
    let m = msg("->relay:Bob [thread:t1] [await:30s] <<<\nquestion\n>>>");
    assert_eq!(m.thread.as_deref(), Some("t1"));
    assert_eq!(
        m.sync,
        Some(SyncSpec {
            timeout_ms: Some(30_000)
        })
    );
    assert_eq!(m.body, "question");
    let m = msg("->relay:proj:Bob [thread:proj:t2] <<<\nx\n>>>");
    assert_eq!(
        (m.project.as_deref(), m.thread_project.as_deref()),
        (Some("proj"), Some("proj"))
    );
}

#[test]
fn content_after_close_is_parsed() {
    let parsed = fin("->relay:Bob <<<\nhi\n>>>\n->relay:Carol second");
    assert_eq!(spans(&parsed), vec![(0, 2), (3, 3)]);
}

#[test]
fn whitespace_around_markers_and_trimming() {
    let m = msg("  ->relay:Bob   <<<   \n\n   padded body   \n\n   >>>   ");
    assert_eq!(m.body, "padded body");
}

#[test]
fn only_blank_body_is_rejected_not_sent() {
    assert!(sent("->relay:Bob <<<\n\n>>>").is_empty());
    assert_eq!(
        rejected("->relay:Bob <<<\n   \n>>>")[0].kind,
        RejectionKind::EmptyBody
    );
    assert_eq!(
        rejected("->relay:Bob <<<>>>")[0].kind,
        RejectionKind::EmptyBody
    );
}

#[test]
fn bullet_prefixed_opener() {
    let m = msg("⏺ ->relay:Bob <<<\n  indented by the TUI\n    nested\n  >>>");
    assert_eq!(m.body, "indented by the TUI\n  nested");
}

#[test]
fn trailing_close_marker_keeps_text() {
    assert_eq!(
        msg("->relay:Bob <<<\nfirst\nlast line>>>").body,
        "first\nlast line"
    );
    assert_eq!(
        msg("->relay:Bob <<<\nfirst\nlast line >>>").body,
        "first\nlast line"
    );
}

#[test]
fn escaped_markers() {
    let m = msg("->relay:Bob <<<\nuse \\<<< to open\nand \\>>>\n>>>");
    assert_eq!(m.body, "use <<< to open\nand >>>");
    let m = msg("->relay:Bob <<<\n\\>>> quoted\n>>>");
    assert_eq!(m.body, ">>> quoted");
}

#[test]
fn body_text_on_the_opening_line() {
    let m = msg("->relay:Bob <<< first line\nsecond line\n>>>");
    assert_eq!(m.body, "first line\nsecond line");
}

#[test]
fn one_line_forms() {
    assert_eq!(msg("->relay:Bob <<<hello>>>").body, "hello");
    assert_eq!(msg("->relay:Bob <<< hello >>>").body, "hello");
    assert_eq!(msg("->relay:Bob<<<glued>>>").body, "glued");
    assert_eq!(
        spans(&fin("->relay:Bob <<<a>>>\n->relay:Carol b")),
        vec![(0, 0), (1, 1)]
    );
}

#[test]
fn two_blank_lines_auto_close() {
    let parsed = fin("->relay:Bob <<<\nforgot to close\n\n\nprose");
    assert_eq!(spans(&parsed), vec![(0, 3)]);
    assert_eq!(
        msg("->relay:Bob <<<\nforgot to close\n\n\nprose").body,
        "forgot to close"
    );
}

#[test]
fn new_command_auto_closes_and_is_parsed() {
    let parsed = fin("->relay:Bob <<<\nunfinished\n->relay:Carol next");
    assert_eq!(spans(&parsed), vec![(0, 1), (2, 2)]);
    let to: Vec<String> = messages("->relay:Bob <<<\nunfinished\n->relay:Carol next")
        .into_iter()
        .map(|m| m.to)
        .collect();
    assert_eq!(to, vec!["Bob", "Carol"]);
}

#[test]
fn new_fenced_command_auto_closes() {
    let text = "->relay:Bob <<<\nA\n->relay:Carol <<<\nB\n>>>";
    let bodies: Vec<String> = messages(text).into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, vec!["A", "B"]);
}

#[test]
fn block_and_file_triggers_auto_close() {
    let text =
        "->relay:Bob <<<\nA\n[[RELAY]]{\"to\":\"C\",\"type\":\"message\",\"body\":\"b\"}[[/RELAY]]";
    assert_eq!(messages(text).len(), 2);
    let parsed = fin("->relay:Bob <<<\nA\n->relay-file:msg");
    assert_eq!(spans(&parsed), vec![(0, 1), (2, 2)]);
    assert!(matches!(parsed[1].command, Command::File(_)));
}

#[test]
fn empty_unfinished_block_is_not_sent() {
    let parsed = fin("->relay:Bob <<<\n->relay:Carol hi");
    assert_eq!(parsed.len(), 2);
    assert!(
        matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::EmptyBody)
    );
    assert_eq!(messages("->relay:Bob <<<\n\n\n").len(), 0);
}

#[test]
fn too_many_lines_is_rejected_and_not_stuck() {
    let body = "line\n".repeat(40);
    let text = format!("->relay:Bob <<<\n{body}>>>\n->relay:Carol after");
    let parsed = fin(&text);
    assert_eq!(parsed.len(), 2);
    match &parsed[0].command {
        Command::Rejected(r) => {
            assert_eq!(r.kind, RejectionKind::TooLong);
            assert!(r.reason.contains("30"), "{}", r.reason);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((parsed[0].first_line, parsed[0].last_line), (0, 31));
    assert!(matches!(&parsed[1].command, Command::Message(m) if m.to == "Carol"));
    assert_eq!(parsed[1].first_line, 42);
}

#[test]
fn exactly_the_line_limit_is_accepted() {
    let body = "line\n".repeat(30);
    let m = msg(&format!("->relay:Bob <<<\n{body}>>>"));
    assert_eq!(m.body.lines().count(), 30);
    let parsed = fin(&format!("->relay:Bob <<<\n{}last>>>", "line\n".repeat(30)));
    assert!(matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::TooLong));
}

#[test]
fn rest_of_an_oversized_body_is_skipped() {
    // The code fence inside the discarded part must not toggle the outside state.
    let opts = GrammarOptions {
        max_fenced_lines: 2,
        ..GrammarOptions::default()
    };
    let text = "->relay:Bob <<<\na\nb\nc\n```\nd\n>>>\n->relay:Carol after";
    let parsed = fin_with(text, &opts);
    assert_eq!(spans(&parsed), vec![(0, 3), (7, 7)]);
    assert!(matches!(&parsed[1].command, Command::Message(m) if m.to == "Carol"));
}

#[test]
fn byte_limit() {
    let opts = GrammarOptions {
        max_block_bytes: 10,
        ..GrammarOptions::default()
    };
    let parsed = fin_with("->relay:Bob <<<\n0123456789abc\n>>>", &opts);
    assert!(matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::TooLong));
    assert_eq!(fin_with("->relay:Bob <<<\nshort\n>>>", &opts).len(), 1);
}

#[test]
fn window_ending_inside_block_emits_nothing_then_exactly_one() {
    let mut lines = vec!["prose", "->relay:Bob <<<", "part one", "part two"];
    let opts = GrammarOptions::default();
    assert!(parse_window(&lines, &opts).is_empty());
    lines.push(">>>");
    let parsed = parse_window(&lines, &opts);
    assert_eq!(parsed.len(), 1);
    assert_eq!((parsed[0].first_line, parsed[0].last_line), (1, 4));
    assert!(matches!(&parsed[0].command, Command::Message(m) if m.body == "part one\npart two"));
}

#[test]
fn every_prefix_of_a_streamed_block_is_silent_until_close() {
    let all = ["->relay:Bob <<<", "a", "", "b", "```", "c", "```", "d>>>"];
    let opts = GrammarOptions::default();
    for n in 1..all.len() {
        assert!(parse_window(&all[..n], &opts).is_empty(), "prefix {n}");
    }
    assert_eq!(spans(&parse_window(&all, &opts)), vec![(0, 7)]);
}

#[test]
fn single_trailing_blank_keeps_block_open() {
    assert!(open("->relay:Bob <<<\nbody\n").is_empty());
    assert!(parse_window(&["->relay:Bob <<<", "body", ""], &GrammarOptions::default()).is_empty());
}

#[test]
fn command_inside_a_code_fence_in_the_body_does_not_auto_close() {
    let text = "->relay:Bob <<<\nTo message Carol:\n```\n->relay:Carol hi\n\n\n```\n>>>";
    let parsed = fin(text);
    assert_eq!(parsed.len(), 1);
    match &parsed[0].command {
        Command::Message(m) => {
            assert_eq!(m.to, "Bob");
            assert!(m.body.contains("->relay:Carol hi"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unbalanced_code_fence_in_body_does_not_leak_outside() {
    let text = "->relay:Bob <<<\n```\nhalf a code block\n>>>\n->relay:Carol still parsed";
    let to: Vec<String> = messages(text).into_iter().map(|m| m.to).collect();
    assert_eq!(to, vec!["Bob", "Carol"]);
}

#[test]
fn fenced_command_inside_code_fence_is_ignored() {
    assert!(fin("```\n->relay:Bob <<<\nx\n>>>\n```").is_empty());
    assert_eq!(
        messages("```\n->relay:Bob <<<\n```\n->relay:Carol <<<\ny\n>>>").len(),
        1
    );
}

#[test]
fn unterminated_block_in_final_window_is_rejected() {
    let lines = ["->relay:Bob <<<", "never closed"];
    let parsed = parse_window_with(&lines, &GrammarOptions::default(), WindowEnd::Final);
    assert_eq!(spans(&parsed), vec![(0, 1)]);
    assert!(
        matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::Unterminated)
    );
}

#[test]
fn fenced_placeholder_and_instructional_bodies_are_rejected() {
    assert_eq!(
        rejected("->relay:AgentName <<<\nYour message\n>>>")[0].kind,
        RejectionKind::PlaceholderTarget
    );
    assert_eq!(
        rejected("->relay:Bob <<<\n[Agent Relay] protocol\n>>>")[0].kind,
        RejectionKind::Instructional
    );
}
