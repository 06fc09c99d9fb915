//! Property tests of the window parser.
//!
//! 1. It never panics, on arbitrary Unicode lines or on lines built from grammar fragments,
//!    and every span lies inside the window, is ordered and does not overlap the next one.
//! 2. It is deterministic: the same window gives the same result twice.
//! 3. Appending lines never changes what was already emitted: the result for a window is a
//!    prefix of the result for the window with more lines appended. This holds because every
//!    decision about a construct looks only at lines up to the one that ends it; when the
//!    window ends before such a line exists (a fenced body without `>>>`, a `[[RELAY]]` block
//!    without `[[/RELAY]]`, an inline message whose next line is missing) nothing from that
//!    construct on is emitted. A construct that a new line auto-closes (a fenced body followed
//!    by a new command or a second blank line) was therefore not in the earlier result: it
//!    appears as a new command, after all earlier ones.
//! 4. Outbox parsing never panics on arbitrary bytes, and the shell sanitiser leaves valid
//!    JSON meaning the same.

use proptest::prelude::*;
use relay_grammar::{
    parse_outbox_file, parse_window, parse_window_with, GrammarOptions, Parsed, WindowEnd,
};

const FRAGMENTS: &[&str] = &[
    "->relay:Bob hi",
    "->relay:Bob list:",
    "⏺ ->relay:Carol [await:5s] [thread:t] ready?",
    "->relay:Bob <<<",
    "->relay:Bob <<< start",
    "->relay:Bob <<<one>>>",
    "->thinking:* hmm",
    "->relay:AgentName example",
    "->relay:spawn W1 claude \"task\"",
    "->relay:spawn W1 claude <<<",
    "->relay:release W1",
    "->relay-file:msg",
    "->relay.json:{\"to\":\"Bob\",\"body\":\"x\"}",
    "[[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"b\"}[[/RELAY]]",
    "[[RELAY]]{\"to\":\"Bob\",",
    "\"type\":\"message\"}[[/RELAY]]",
    "[[RELAY_METADATA]]{\"subject\":\"s\"}[[/RELAY_METADATA]]",
    "[[RELAY_METADATA]]{",
    "}[[/RELAY_METADATA]]",
    "Relay message from Alice [1]: hi",
    "\\->relay:Bob escaped",
    ">>>",
    "end>>>",
    "\\>>>",
    "```",
    "```rust",
    "",
    "",
    "   ",
    "  indented text",
    "- bullet",
    "1. numbered",
    "| a | b |",
    "plain prose",
    "ends with colon:",
    ">",
];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => "[ \t>⏺│-]{0,3}(->relay:|->thinking:|\\[\\[RELAY\\]\\]|<<<|>>>)[a-zA-Z:*#<>. ]{0,12}",
    ]
}

fn window() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(line(), 0..40)
}

fn small_opts() -> GrammarOptions {
    GrammarOptions {
        max_fenced_lines: 4,
        max_continuation_lines: 3,
        max_block_bytes: 200,
        ..GrammarOptions::default()
    }
}

fn parse(lines: &[String], opts: &GrammarOptions, end: WindowEnd) -> Vec<Parsed> {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    parse_window_with(&refs, opts, end)
}

fn check_spans(parsed: &[Parsed], len: usize) -> Result<(), TestCaseError> {
    let mut previous_last: Option<usize> = None;
    for p in parsed {
        prop_assert!(p.first_line <= p.last_line, "{p:?}");
        prop_assert!(p.last_line < len, "{p:?} beyond {len}");
        if let Some(prev) = previous_last {
            // Spans are ordered and disjoint.
            prop_assert!(p.first_line > prev, "{p:?} overlaps line {prev}");
        }
        previous_last = Some(p.last_line);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_unicode(lines in prop::collection::vec(any::<String>(), 0..30)) {
        for end in [WindowEnd::Open, WindowEnd::Final] {
            let parsed = parse(&lines, &GrammarOptions::default(), end);
            check_spans(&parsed, lines.len())?;
        }
    }

    #[test]
    fn never_panics_on_grammar_fragments(lines in window()) {
        for opts in [GrammarOptions::default(), small_opts()] {
            for end in [WindowEnd::Open, WindowEnd::Final] {
                let parsed = parse(&lines, &opts, end);
                check_spans(&parsed, lines.len())?;
            }
        }
    }

    #[test]
    fn deterministic(lines in window()) {
        let opts = small_opts();
        prop_assert_eq!(parse(&lines, &opts, WindowEnd::Open), parse(&lines, &opts, WindowEnd::Open));
        prop_assert_eq!(parse(&lines, &opts, WindowEnd::Final), parse(&lines, &opts, WindowEnd::Final));
    }

    #[test]
    fn appending_lines_keeps_earlier_commands(lines in window(), more in window()) {
        for opts in [GrammarOptions::default(), small_opts()] {
            let before = parse(&lines, &opts, WindowEnd::Open);
            let mut longer = lines.clone();
            longer.extend(more.iter().cloned());
            let after = parse(&longer, &opts, WindowEnd::Open);
            prop_assert!(after.len() >= before.len(), "{before:#?}\n{after:#?}");
            prop_assert_eq!(&after[..before.len()], &before[..]);
        }
    }

    #[test]
    fn growing_one_line_at_a_time_only_adds(lines in window()) {
        let opts = small_opts();
        let mut previous: Vec<Parsed> = Vec::new();
        for n in 0..=lines.len() {
            let current = parse(&lines[..n], &opts, WindowEnd::Open);
            prop_assert_eq!(&current[..previous.len()], &previous[..]);
            previous = current;
        }
    }

    #[test]
    fn final_window_extends_open_window(lines in window()) {
        let opts = small_opts();
        let open = parse(&lines, &opts, WindowEnd::Open);
        let fin = parse(&lines, &opts, WindowEnd::Final);
        prop_assert_eq!(&fin[..open.len()], &open[..]);
    }

    #[test]
    fn outbox_never_panics(name in "[a-z.]{0,8}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_outbox_file(&name, &bytes);
    }

    #[test]
    fn outbox_never_panics_on_header_like_text(text in "([A-Za-z]{1,6}: ?[ -~]{0,10}\r?\n){0,5}\r?\n?[ -~\n]{0,20}") {
        let _ = parse_outbox_file("msg", text.as_bytes());
    }

    #[test]
    fn sanitiser_keeps_valid_json_meaning(to in "[A-Za-z]{1,8}", body in any::<String>()) {
        let value = serde_json::json!({"to": to, "body": body});
        let text = value.to_string();
        if body.trim().is_empty() {
            return Ok(());
        }
        match parse_outbox_file("msg.json", text.as_bytes()) {
            Ok(relay_grammar::Command::Message(m)) => prop_assert_eq!(m.body, body.trim()),
            Ok(other) => prop_assert!(false, "unexpected {other:?}"),
            // A generated `to` may be a placeholder word such as "target".
            Err(e) => prop_assert!(relay_grammar::is_placeholder_target(&to), "{e}"),
        }
    }
}

#[test]
fn plain_parse_window_is_the_open_mode() {
    let lines = ["->relay:Bob a", "x", "->relay:Carol <<<", "b"];
    assert_eq!(
        parse_window(&lines, &GrammarOptions::default()),
        parse_window_with(&lines, &GrammarOptions::default(), WindowEnd::Open)
    );
}
