//! [`render_context`]: the text handed to an agent.

use std::fmt::Write as _;

use crate::compactor::{CompactionOutcome, CompactionResult};
use crate::history::{HistoryMessage, MessageRole};
use crate::timefmt::hms;

/// The recipient as shown: `#channel` for channel messages, else `to`.
fn recipient(m: &HistoryMessage) -> String {
    match &m.channel {
        Some(channel) if channel.starts_with('#') => channel.clone(),
        Some(channel) => format!("#{channel}"),
        None => m.to.clone(),
    }
}

/// One message as a transcript line: `[hh:mm:ss] from → to: body`, with
/// ` (thread: t)` after the recipient when the message is in a thread and
/// ` [system]` for system messages. Times are UTC.
pub fn render_message(m: &HistoryMessage) -> String {
    let mut line = format!("[{}] {} → {}", hms(m.timestamp_ms), m.from, recipient(m));
    if let Some(thread) = &m.thread {
        let _ = write!(line, " (thread: {thread})");
    }
    if m.role == MessageRole::System {
        line.push_str(" [system]");
    }
    line.push_str(": ");
    line.push_str(&m.body);
    line
}

/// The transcript of `messages` (one [`render_message`] line each), as fed
/// to an external summariser.
pub(crate) fn transcript(messages: &[HistoryMessage]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(&render_message(m));
        out.push('\n');
    }
    out
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The context handed to `agent`: a header with the counts, then the
/// history in chronological order: summaries as a delimited block, every
/// other message verbatim as `[hh:mm:ss] from → to: body` (times UTC).
pub fn render_context(agent: &str, result: &CompactionResult) -> String {
    let summaries = result
        .messages
        .iter()
        .filter(|m| m.role == MessageRole::Summary)
        .count();
    let verbatim = result.messages.len() - summaries;
    let mut out = String::new();
    let _ = writeln!(out, "# Relay context for {agent}");
    let _ = write!(
        out,
        "# {verbatim} of {} messages verbatim",
        result.original_messages
    );
    if summaries > 0 {
        let _ = write!(
            out,
            ", {summaries} summar{}",
            if summaries == 1 { "y" } else { "ies" }
        );
    }
    let _ = write!(out, "; {} tokens", thousands(result.final_tokens));
    match &result.outcome {
        CompactionOutcome::NotNeeded => {
            let _ = writeln!(out, " (no compaction needed)");
        }
        CompactionOutcome::Reached => {
            let _ = writeln!(
                out,
                " (compacted from {}; target {})",
                thousands(result.original_tokens),
                thousands(result.target_tokens)
            );
        }
        CompactionOutcome::CannotReachTarget { reason, .. } => {
            let _ = writeln!(
                out,
                " (compacted from {}; still above the target of {}: {reason})",
                thousands(result.original_tokens),
                thousands(result.target_tokens)
            );
        }
    }
    let _ = writeln!(out, "# Times are UTC.");
    for m in &result.messages {
        out.push('\n');
        if m.role == MessageRole::Summary {
            out.push_str("--- summary of earlier messages ---\n");
            out.push_str(m.body.trim_end());
            out.push_str("\n--- end of summary ---");
        } else {
            out.push_str(&render_message(m));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_lines_and_numbers() {
        let m = HistoryMessage::new("1", "Alice", "Bob", "hi", 3_723_000).with_thread("auth");
        assert_eq!(
            render_message(&m),
            "[01:02:03] Alice → Bob (thread: auth): hi"
        );
        let c = HistoryMessage::new("2", "Alice", "general", "hey", 0).with_channel("general");
        assert_eq!(render_message(&c), "[00:00:00] Alice → #general: hey");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
