//! The instructional filter: message bodies that are protocol documentation echoed by the
//! agent (or injected into it), not messages.
//!
//! Markers that never occur in real messages are looked for anywhere in the body:
//! `[Agent Relay]`, `MULTI-LINE:`, `RECEIVE:`, `PROTOCOL: <digit>` and an escaped prefix
//! (`\->relay:`, `\->thinking:`). Markers that a real message could contain in passing are
//! only looked for on the first non-blank line: it starts with `AgentName ` or `Target `,
//! contains `Example:`, or ends with `SEND:`. All markers are case-sensitive, so a body that
//! merely uses the word "example" or "target" passes.

use crate::GrammarOptions;

/// The reason `body` is documentation rather than a message, if it is.
pub(crate) fn instructional_marker(body: &str, opts: &GrammarOptions) -> Option<String> {
    for marker in ["[Agent Relay]", "MULTI-LINE:", "RECEIVE:"] {
        if body.contains(marker) {
            return Some(format!("contains `{marker}`"));
        }
    }
    if body
        .match_indices("PROTOCOL: ")
        .any(|(i, m)| body[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
    {
        return Some("contains `PROTOCOL: <version>`".to_owned());
    }
    for prefix in [&opts.prefix, &opts.thinking_prefix] {
        if !prefix.is_empty() && body.contains(&format!("\\{prefix}")) {
            return Some(format!("contains the escaped prefix `\\{prefix}`"));
        }
    }
    let first = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    for word in ["AgentName", "Target"] {
        if first
            .strip_prefix(word)
            .is_some_and(|rest| rest.starts_with(char::is_whitespace))
        {
            return Some(format!("starts with `{word} `"));
        }
    }
    if first.contains("Example:") {
        return Some("contains `Example:`".to_owned());
    }
    if first.ends_with("SEND:") {
        return Some("ends with `SEND:`".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Option<String> {
        instructional_marker(body, &GrammarOptions::default())
    }

    #[test]
    fn markers() {
        assert!(check("PROTOCOL: 2 rules").is_some());
        assert!(check("PROTOCOL: none").is_none());
        assert!(check("see [Agent Relay] docs").is_some());
        assert!(check("Target message here").is_some());
        assert!(check("Targets are met").is_none());
        assert!(check("for example, this works").is_none());
        assert!(check("line one\nExample: later").is_none());
        assert!(check("to send, write SEND:").is_some());
        assert!(check("escape with \\->relay:").is_some());
    }
}
