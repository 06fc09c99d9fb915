//! Importance of a message, 0–100, used by `trim_low_importance`.
//!
//! # Formula
//!
//! An importance set on the message ([`HistoryMessage::importance`]) wins
//! and is returned as is (capped at 100). Otherwise:
//!
//! ```text
//! score = base + recency + boosts − penalties, clamped to 0..=100
//! ```
//!
//! * **base**: role `system` 100, role `summary` 90; for normal messages by
//!   kind: `action` 55, `message` 50, `state` 30, `thinking` 20, any other
//!   kind 50.
//! * **recency**: `round(20 × position / (len − 1))`: 0 for the oldest,
//!   20 for the newest (a single message gets 20).
//! * **boosts** (whole-word keywords, case-insensitive): decision
//!   ("decided", "agreed", "approved", "going with", "we will", …) +25;
//!   error ("error", "panic", "failed", "exception", "traceback",
//!   "timed out", …) +20; task ("todo", "fix", "bug", "blocker",
//!   "urgent", …) +10; a question mark +10; code (a fence, inline code or
//!   an indented line) +10; an `@name` mention +5; a digit +5.
//! * **penalties** (normal messages only): the whole body is an acknowledgement ("ok", "got it",
//!   "thanks", "lgtm", 👍, … — the whole text, not a prefix, so "okay, the
//!   parser is broken" is not one) −30; a body under 20 chars with no boost
//!   −10.

use crate::history::{HistoryMessage, MessageRole};
use crate::text::signals;

/// The importance (0–100) of `message` at `position` in a history of `len`
/// messages. See the module docs for the formula.
pub fn importance(message: &HistoryMessage, position: usize, len: usize) -> u8 {
    if let Some(explicit) = message.importance {
        return explicit.min(100);
    }
    let base: i32 = match message.role {
        MessageRole::System => 100,
        MessageRole::Summary => 90,
        MessageRole::Normal => match message.kind.as_str() {
            "action" => 55,
            "message" => 50,
            "state" => 30,
            "thinking" => 20,
            _ => 50,
        },
    };
    let recency = if len <= 1 {
        20
    } else {
        let position = position.min(len - 1) as f64;
        (20.0 * position / (len - 1) as f64).round() as i32
    };
    let s = signals(&message.body);
    let mut boosts = 0;
    if s.decision {
        boosts += 25;
    }
    if s.error {
        boosts += 20;
    }
    if s.task {
        boosts += 10;
    }
    if s.question {
        boosts += 10;
    }
    if s.code {
        boosts += 10;
    }
    if s.mention {
        boosts += 5;
    }
    if s.number {
        boosts += 5;
    }
    let mut penalties = 0;
    if message.role == MessageRole::Normal {
        if s.ack {
            penalties += 30;
        }
        if boosts == 0 && message.body.chars().count() < 20 {
            penalties += 10;
        }
    }
    (base + recency + boosts - penalties).clamp(0, 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> HistoryMessage {
        HistoryMessage::new("1", "Alice", "Bob", body, 0)
    }

    #[test]
    fn newest_gets_the_full_recency_boost() {
        let m = msg("a plain remark about the weather today");
        assert_eq!(importance(&m, 0, 10), 50);
        assert_eq!(importance(&m, 9, 10), 70);
        assert_eq!(importance(&m, 0, 1), 70);
    }

    #[test]
    fn explicit_importance_wins() {
        let m = msg("ok").with_importance(95);
        assert_eq!(importance(&m, 0, 10), 95);
    }

    #[test]
    fn boosts_and_penalties() {
        let plain = importance(&msg("a plain remark about the weather today"), 0, 2);
        assert!(importance(&msg("We decided to use Postgres for the queue"), 0, 2) > plain);
        assert!(importance(&msg("Error: connection refused on port 5432"), 0, 2) > plain);
        assert!(importance(&msg("Can you review the parser change today?"), 0, 2) > plain);
        assert!(importance(&msg("ok"), 0, 2) < 30);
        assert!(importance(&msg("okay, so the parser is broken again"), 0, 2) > 30);
        let system = msg("rules").with_role(MessageRole::System);
        assert_eq!(importance(&system, 0, 2), 100);
    }
}
