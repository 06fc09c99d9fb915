//! [`HistoryMessage`] and [`AgentHistory`]: one agent's conversation, in
//! order, with token counts and a running total.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::tokens::{CountStamp, TokenCounter};

/// The role of a message in an agent's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// An ordinary relay message.
    #[default]
    Normal,
    /// An instruction to the agent (task brief, rules). Protected.
    System,
    /// A summary written by compaction. Protected from trimming, dedupe and
    /// aggressive drops; a later `summarize` step may fold it into a newer
    /// summary.
    Summary,
}

impl MessageRole {
    /// System and summary messages are never dropped by `deduplicate`,
    /// `trim_low_importance` or `aggressive`.
    pub fn is_protected(self) -> bool {
        matches!(self, MessageRole::System | MessageRole::Summary)
    }
}

/// One message of an agent's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// The relay message id.
    pub id: String,
    /// The sender.
    pub from: String,
    /// The recipient: an agent name, `*` for a broadcast, or the channel.
    pub to: String,
    /// The payload kind (`message`, `action`, `state`, `thinking`, or a
    /// kind of the integrator's own, e.g. `summary`).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The text.
    pub body: String,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The thread, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The channel, for channel messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The importance the sender set (0–100); it wins over the computed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<u8>,
    /// Normal, system or summary.
    #[serde(default)]
    pub role: MessageRole,
    /// The message's tokens ([`TokenCounter::count_message`]). A cache:
    /// [`AgentHistory`] and the compactor fill it in and do not trust a
    /// value set by the caller.
    #[serde(default)]
    pub tokens: usize,
    /// Which counter filled in `tokens`, over which content: a counter
    /// trusts only its own count of unchanged content, so the compactor
    /// does not count again what the history already counted.
    #[serde(skip)]
    counted: CountStamp,
}

fn default_kind() -> String {
    "message".to_owned()
}

impl HistoryMessage {
    /// A normal message of kind `message` with no thread, channel or
    /// importance; `tokens` is 0 until counted.
    pub fn new(
        id: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        body: impl Into<String>,
        timestamp_ms: u64,
    ) -> Self {
        HistoryMessage {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            kind: default_kind(),
            body: body.into(),
            timestamp_ms,
            thread: None,
            channel: None,
            importance: None,
            role: MessageRole::Normal,
            tokens: 0,
            counted: CountStamp::default(),
        }
    }

    /// The same message with `role`.
    pub fn with_role(mut self, role: MessageRole) -> Self {
        self.role = role;
        self
    }

    /// The same message with `kind`.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// The same message in `thread`.
    pub fn with_thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(thread.into());
        self
    }

    /// The same message in `channel`.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// The same message with an explicit importance (capped at 100).
    pub fn with_importance(mut self, importance: u8) -> Self {
        self.importance = Some(importance.min(100));
        self
    }

    /// Counts the message's tokens with `counter` and stores them in
    /// `tokens`; returns the count. A count `counter` itself made of the
    /// same sender, recipient, channel, thread and body is reused.
    pub fn recount(&mut self, counter: &TokenCounter) -> usize {
        let stamp = counter.stamp_of(self);
        if !self.counted.matches(&stamp) {
            self.tokens = counter.count_message(self);
            self.counted = stamp;
        }
        self.tokens
    }
}

/// A position in an [`AgentHistory`]'s stream of pushed messages, taken
/// with [`AgentHistory::mark`] before a compaction and handed back to
/// [`AgentHistory::replace_compacted`] after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryMark(u64);

/// One agent's history: ordered messages with token counts and a running
/// total, bounded to `max_entries` messages.
///
/// When full, pushing drops the oldest normal message (the oldest message
/// of any role only if every message is protected) and counts it in
/// [`dropped`](AgentHistory::dropped).
///
/// Compaction runs on a copy so that it can take its time (an external
/// summariser may run for seconds) while new messages keep arriving:
///
/// ```
/// # use relay_compaction::{AgentHistory, CompactionConfig, Compactor, HistoryMessage};
/// # async fn run(compactor: &Compactor, history: &mut AgentHistory) {
/// if compactor.needs_compaction(history) {
///     let mark = history.mark();
///     let snapshot = history.to_vec();
///     let result = compactor.compact(&snapshot).await;
///     // Messages pushed while compacting are kept after the compacted ones.
///     history.replace_compacted(mark, result.messages);
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AgentHistory {
    agent: String,
    messages: VecDeque<HistoryMessage>,
    total_tokens: usize,
    max_entries: usize,
    dropped: u64,
    pushed: u64,
    counter: TokenCounter,
}

/// The default bound of an [`AgentHistory`].
pub const DEFAULT_MAX_HISTORY: usize = 10_000;

impl AgentHistory {
    /// An empty history for `agent`, bounded to [`DEFAULT_MAX_HISTORY`]
    /// messages, counting with `counter`.
    pub fn new(agent: impl Into<String>, counter: TokenCounter) -> Self {
        AgentHistory::with_max_entries(agent, counter, DEFAULT_MAX_HISTORY)
    }

    /// An empty history bounded to `max_entries` messages (at least 1).
    pub fn with_max_entries(
        agent: impl Into<String>,
        counter: TokenCounter,
        max_entries: usize,
    ) -> Self {
        AgentHistory {
            agent: agent.into(),
            messages: VecDeque::new(),
            total_tokens: 0,
            max_entries: max_entries.max(1),
            dropped: 0,
            pushed: 0,
            counter,
        }
    }

    /// The agent whose history this is.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Appends a message (its tokens are counted here) and, if the history
    /// is full, drops the oldest. Returns the dropped message, if any.
    pub fn push(&mut self, mut message: HistoryMessage) -> Option<HistoryMessage> {
        self.total_tokens += message.recount(&self.counter);
        self.messages.push_back(message);
        self.pushed += 1;
        self.enforce_bound()
    }

    fn enforce_bound(&mut self) -> Option<HistoryMessage> {
        let mut last = None;
        while self.messages.len() > self.max_entries {
            let index = self
                .messages
                .iter()
                .position(|m| !m.role.is_protected())
                .unwrap_or(0);
            if let Some(removed) = self.messages.remove(index) {
                self.total_tokens -= removed.tokens;
                self.dropped += 1;
                last = Some(removed);
            }
        }
        last
    }

    /// The messages, oldest first.
    pub fn messages(
        &self,
    ) -> impl DoubleEndedIterator<Item = &HistoryMessage> + ExactSizeIterator + '_ {
        self.messages.iter()
    }

    /// A copy of the messages, oldest first, e.g. to compact.
    pub fn to_vec(&self) -> Vec<HistoryMessage> {
        self.messages.iter().cloned().collect()
    }

    /// The number of messages held.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The sum of the held messages' tokens.
    pub fn total_tokens(&self) -> usize {
        self.total_tokens
    }

    /// How many messages were dropped because the history was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The bound on the number of messages.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The counter used for this history.
    pub fn counter(&self) -> &TokenCounter {
        &self.counter
    }

    /// The current end of the history, to pass to
    /// [`replace_compacted`](AgentHistory::replace_compacted).
    pub fn mark(&self) -> HistoryMark {
        HistoryMark(self.pushed)
    }

    /// Replaces the messages held at `mark` with `compacted` (a
    /// [`CompactionResult`](crate::CompactionResult)'s messages); the
    /// messages pushed since `mark` stay, after them. Tokens are recounted.
    pub fn replace_compacted(&mut self, mark: HistoryMark, compacted: Vec<HistoryMessage>) {
        let newer = usize::try_from(self.pushed.saturating_sub(mark.0)).unwrap_or(usize::MAX);
        let keep_from = self.messages.len().saturating_sub(newer);
        let newer_messages: Vec<HistoryMessage> = self.messages.drain(keep_from..).collect();
        self.messages.clear();
        self.total_tokens = 0;
        for mut message in compacted.into_iter().chain(newer_messages) {
            self.total_tokens += message.recount(&self.counter);
            self.messages.push_back(message);
        }
        self.enforce_bound();
    }

    /// Removes every message (the drop counter is kept).
    pub fn clear(&mut self) {
        self.messages.clear();
        self.total_tokens = 0;
    }
}
