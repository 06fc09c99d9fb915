//! Helpers shared by the integration tests.
#![allow(dead_code)]

use relay_grammar::{
    parse_window, parse_window_with, Command, GrammarOptions, OutgoingMessage, Parsed, Rejection,
    WindowEnd,
};

/// Parses `text` (split into lines) as an open window.
pub fn open(text: &str) -> Vec<Parsed> {
    let lines: Vec<&str> = text.lines().collect();
    parse_window(&lines, &GrammarOptions::default())
}

/// Parses `text` as the complete output.
pub fn fin(text: &str) -> Vec<Parsed> {
    fin_with(text, &GrammarOptions::default())
}

pub fn fin_with(text: &str, opts: &GrammarOptions) -> Vec<Parsed> {
    let lines: Vec<&str> = text.lines().collect();
    parse_window_with(&lines, opts, WindowEnd::Final)
}

/// Commands that would be sent (everything but rejections), complete output.
pub fn sent(text: &str) -> Vec<Command> {
    fin(text)
        .into_iter()
        .map(|p| p.command)
        .filter(|c| !matches!(c, Command::Rejected(_)))
        .collect()
}

/// Messages that would be sent.
pub fn messages(text: &str) -> Vec<OutgoingMessage> {
    sent(text)
        .into_iter()
        .filter_map(|c| match c {
            Command::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The one command of `text`, which must be a message.
pub fn msg(text: &str) -> OutgoingMessage {
    let all = fin(text);
    assert_eq!(
        all.len(),
        1,
        "expected exactly one command from {text:?}, got {all:#?}"
    );
    match all.into_iter().next().map(|p| p.command) {
        Some(Command::Message(m)) => m,
        other => panic!("expected a message from {text:?}, got {other:?}"),
    }
}

/// Rejections of `text`.
pub fn rejected(text: &str) -> Vec<Rejection> {
    fin(text)
        .into_iter()
        .filter_map(|p| match p.command {
            Command::Rejected(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Line spans of all commands.
pub fn spans(parsed: &[Parsed]) -> Vec<(usize, usize)> {
    parsed.iter().map(|p| (p.first_line, p.last_line)).collect()
}
