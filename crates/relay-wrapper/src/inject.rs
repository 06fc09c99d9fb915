//! Incoming messages: the queue, the injected text, and the injection state machine.
//!
//! Each message becomes one line (or one bracketed paste) typed into the agent:
//!
//! ```text
//! Relay message from Alice [3f9c2a7b] [thread:T] [!] [#general]: body
//! ```
//!
//! The short id is the random tail of the message id, so `agent-relay read 3f9c2a7b` finds the
//! full text of a truncated body. An injection succeeds when the short id shows up on the agent's
//! screen and the Enter key visibly took effect; only then is the daemon ACK (and a sync ACK)
//! sent. Text that never appears is retried with a fresh attempt, then reported as failed and
//! left unacknowledged so the daemon redelivers or dead-letters it. An Enter that shows no effect
//! is reported as `unverified` and acknowledged, never typed twice.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Where a message came from and what it carries, ready to be typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The DELIVER id (what the ACK names); `None` for local notices.
    pub delivery_id: Option<String>,
    pub seq: u64,
    pub short_id: String,
    pub from: String,
    pub body: String,
    pub thread: Option<String>,
    pub importance: Option<u8>,
    /// `#channel` for channel messages, `*` for broadcasts.
    pub channel: Option<String>,
    /// The sync correlation id when the sender waits for us.
    pub sync_correlation: Option<String>,
}

/// How a multi-line body is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multiline {
    /// As one bracketed paste (the agent enabled bracketed paste mode).
    Paste,
    /// Joined into one line.
    Flatten,
}

/// Removes what must never reach a terminal from a message body: control characters (C0 except
/// newline and tab, DEL, C1) — an ESC or Ctrl-C in a body could drive the agent.
pub fn sanitize(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The injected text for one message.
pub fn format_injection(msg: &Incoming, max_body_chars: usize, multiline: Multiline) -> String {
    let mut body = sanitize(&msg.body).trim().to_string();
    if body.chars().count() > max_body_chars {
        let cut: String = body.chars().take(max_body_chars).collect();
        body = format!(
            "{} … [truncated: run `agent-relay read {}` for the full message]",
            cut.trim_end(),
            msg.short_id
        );
    }
    if multiline == Multiline::Flatten || !body.contains('\n') {
        body = body
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ↵ ");
    }
    let mut head = format!("Relay message from {} [{}]", msg.from, msg.short_id);
    if let Some(t) = &msg.thread {
        head.push_str(&format!(" [thread:{t}]"));
    }
    match msg.importance {
        Some(i) if i > 75 => head.push_str(" [!!]"),
        Some(i) if i > 50 => head.push_str(" [!]"),
        _ => {}
    }
    match msg.channel.as_deref() {
        Some("*") => head.push_str(" [#general]"),
        Some(c) if c.starts_with('#') => head.push_str(&format!(" [{c}]")),
        _ => {}
    }
    format!("{head}: {body}")
}

/// A short id that is unique enough for humans: 8 random hex digits.
pub fn random_short_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

/// The outcome of one injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Text seen on screen and the Enter key took effect.
    Delivered,
    /// Text seen, but the Enter key showed no visible effect.
    Unverified,
    /// The text never appeared.
    Failed(String),
}

/// The queue of messages waiting to be typed: highest importance first, then arrival order.
#[derive(Default)]
pub struct InjectQueue {
    items: VecDeque<(u64, Incoming)>,
    counter: u64,
    /// Delivery ids queued, in progress or delivered (bounded).
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
}

const SEEN_CAP: usize = 8192;

impl InjectQueue {
    /// Adds a message; false when this delivery id is already queued or was injected.
    pub fn push(&mut self, msg: Incoming) -> bool {
        if let Some(id) = &msg.delivery_id {
            if self.seen.contains(id) {
                return false;
            }
            self.seen.insert(id.clone());
            self.seen_order.push_back(id.clone());
            while self.seen_order.len() > SEEN_CAP {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
        self.counter += 1;
        let rank = u64::from(msg.importance.unwrap_or(50));
        // Stable: insert after every item of equal or higher importance.
        let pos = self
            .items
            .iter()
            .position(|(_, m)| u64::from(m.importance.unwrap_or(50)) < rank)
            .unwrap_or(self.items.len());
        self.items.insert(pos, (self.counter, msg));
        true
    }

    /// Puts a notice (from the relay itself) at the front.
    pub fn push_front(&mut self, msg: Incoming) {
        self.counter += 1;
        self.items.push_front((self.counter, msg));
    }

    pub fn pop(&mut self) -> Option<Incoming> {
        self.items.pop_front().map(|(_, m)| m)
    }

    /// Forgets a delivery id so that a redelivery is injected again (after a failure).
    pub fn forget(&mut self, delivery_id: &str) {
        self.seen.remove(delivery_id);
    }

    /// Whether a message with this delivery id waits in the queue.
    pub fn contains(&self, delivery_id: &str) -> bool {
        self.items
            .iter()
            .any(|(_, m)| m.delivery_id.as_deref() == Some(delivery_id))
    }

    pub fn is_seen(&self, delivery_id: &str) -> bool {
        self.seen.contains(delivery_id)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Knobs of the injection state machine.
#[derive(Debug, Clone)]
pub struct InjectConfig {
    pub max_body_chars: usize,
    /// How long the short id may take to appear on screen.
    pub verify_text: Duration,
    /// How long the Enter key may take to show an effect.
    pub verify_enter: Duration,
    /// Attempts before an injection is reported failed.
    pub attempts: u32,
    /// Pause after each injection before the next.
    pub gap: Duration,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            max_body_chars: 2000,
            verify_text: Duration::from_millis(2000),
            verify_enter: Duration::from_millis(2000),
            attempts: 3,
            gap: Duration::from_millis(100),
        }
    }
}

/// Where the current injection is.
#[derive(Debug)]
pub enum Stage {
    Idle {
        until: Instant,
    },
    WaitReady {
        msg: Box<Incoming>,
        since: Instant,
        attempt: u32,
    },
    VerifyText {
        msg: Box<Incoming>,
        text: String,
        deadline: Instant,
        attempt: u32,
        forced: bool,
    },
    Enter {
        msg: Box<Incoming>,
        text: String,
        at: Instant,
        forced: bool,
    },
    VerifyEnter {
        msg: Box<Incoming>,
        text: String,
        before: u64,
        deadline: Instant,
        presses: u32,
        forced: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, body: &str) -> Incoming {
        Incoming {
            delivery_id: Some(format!("id-{body}")),
            seq: 1,
            short_id: "3f9c2a7b".into(),
            from: from.into(),
            body: body.into(),
            thread: None,
            importance: None,
            channel: None,
            sync_correlation: None,
        }
    }

    #[test]
    fn format_has_markers() {
        let mut m = msg("Alice", "hello");
        assert_eq!(
            format_injection(&m, 100, Multiline::Flatten),
            "Relay message from Alice [3f9c2a7b]: hello"
        );
        m.thread = Some("t1".into());
        m.importance = Some(80);
        m.channel = Some("#dev".into());
        assert_eq!(
            format_injection(&m, 100, Multiline::Flatten),
            "Relay message from Alice [3f9c2a7b] [thread:t1] [!!] [#dev]: hello"
        );
        m.channel = Some("*".into());
        m.importance = Some(60);
        assert!(format_injection(&m, 100, Multiline::Flatten).contains("[!] [#general]"));
    }

    #[test]
    fn control_characters_are_stripped() {
        let m = msg("Eve", "hi\x03\x1b[2Jthere\x07\u{9b}x");
        assert_eq!(
            format_injection(&m, 100, Multiline::Flatten),
            "Relay message from Eve [3f9c2a7b]: hi[2Jtherex"
        );
    }

    #[test]
    fn long_bodies_are_truncated_with_a_read_hint() {
        let m = msg("Bob", &"é".repeat(50));
        let t = format_injection(&m, 10, Multiline::Flatten);
        assert!(t.contains(&"é".repeat(10)));
        assert!(!t.contains(&"é".repeat(11)));
        assert!(t.contains("agent-relay read 3f9c2a7b"));
    }

    #[test]
    fn multiline_flattened_or_kept() {
        let m = msg("Bob", "line one\r\nline two\n\nline three");
        assert_eq!(
            format_injection(&m, 100, Multiline::Flatten),
            "Relay message from Bob [3f9c2a7b]: line one ↵ line two ↵ line three"
        );
        assert_eq!(
            format_injection(&m, 100, Multiline::Paste),
            "Relay message from Bob [3f9c2a7b]: line one\nline two\n\nline three"
        );
    }

    #[test]
    fn queue_orders_by_importance_then_arrival_and_dedupes() {
        let mut q = InjectQueue::default();
        assert!(q.push(msg("A", "1")));
        assert!(q.push(msg("A", "2")));
        let mut urgent = msg("A", "3");
        urgent.importance = Some(90);
        assert!(q.push(urgent));
        assert!(
            !q.push(msg("A", "1")),
            "a duplicate delivery is not queued twice"
        );
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).map(|m| m.body).collect();
        assert_eq!(order, vec!["3", "1", "2"]);
        q.forget("id-1");
        assert!(
            q.push(msg("A", "1")),
            "a failed delivery can be queued again"
        );
    }

    #[test]
    fn short_ids_are_eight_hex_digits() {
        let ids: HashSet<String> = (0..1000).map(|_| random_short_id()).collect();
        assert!(ids.len() > 995);
        assert!(ids
            .iter()
            .all(|i| i.len() == 8 && i.chars().all(|c| c.is_ascii_hexdigit())));
    }
}
