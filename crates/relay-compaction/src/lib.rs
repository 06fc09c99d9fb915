//! Context compaction for agent-relay: keeps each agent's relay
//! conversation within a token budget.
//!
//! The daemon records the messages an agent sends and receives in an
//! [`AgentHistory`] (ordered, bounded, with a running token total). When
//! the total passes `threshold × max_tokens`
//! ([`Compactor::needs_compaction`]), [`Compactor::compact`] shrinks a copy
//! of it to `target_usage × max_tokens` or less, and [`render_context`]
//! turns the result into the text handed to the agent.
//!
//! # Algorithm
//!
//! 1. Every message is counted ([`TokenCounter`]: the `o200k_base` BPE
//!    tokenizer, built once and embedded in the binary, or a monotonic
//!    Unicode-aware heuristic; counts are cached by content). A message
//!    costs its sender, recipient and body plus a fixed framing overhead
//!    ([`MESSAGE_OVERHEAD_TOKENS`]).
//! 2. If the total is at most `threshold × max_tokens`, nothing happens
//!    ([`CompactionOutcome::NotNeeded`]).
//! 3. Otherwise the configured [`Strategy`]s run in order, each only while
//!    the total is above the target:
//!    * `deduplicate`: near-duplicates (Jaccard similarity of word sets,
//!      same sender/thread/channel) collapse to the newest copy;
//!    * `trim_low_importance`: messages under `min_importance` (see
//!      [`importance`]) go, lowest first, only as many as needed;
//!    * `summarize`: the oldest messages (earlier summaries included) are
//!      replaced by one summary message, from the built-in extractive
//!      summariser or an external command, capped at
//!      `summarizer.max_summary_tokens`;
//!    * `aggressive`: the oldest messages go until the target is met.
//!
//!    No strategy touches the last `keep_recent` messages or system
//!    messages; only `summarize` may fold an earlier summary.
//! 4. The result says what happened: every step with its true counts, and
//!    [`CompactionOutcome::Reached`] or
//!    [`CompactionOutcome::CannotReachTarget`] with the reason (for example
//!    when the recent messages alone exceed the target).
//!
//! # Main types
//!
//! * [`CompactionConfig`] (serde, defaults, [`CompactionConfig::validate`]).
//! * [`TokenCounter`] and [`TokenizerMode`]; [`estimate_tokens`] is the
//!   heuristic.
//! * [`HistoryMessage`], [`MessageRole`], [`AgentHistory`].
//! * [`Compactor`], [`CompactionResult`], [`StepReport`],
//!   [`CompactionOutcome`], [`SummarizerUsed`].
//! * [`render_context`], [`render_message`].
//!
//! # Integration
//!
//! * Keep one [`AgentHistory`] per agent in the daemon (created with
//!   [`Compactor::new_history`], so that history and compactor share one
//!   [`TokenCounter`] and its cache) and push every message the agent sends
//!   or receives.
//! * After a push, [`Compactor::needs_compaction`] is a cheap check. If it
//!   says yes, take [`AgentHistory::mark`] and a copy of the messages,
//!   compact in a spawned task (the future is `Send`; the work is tens of
//!   milliseconds for 10,000 messages, plus the external summariser's time
//!   if one is configured), then apply the result with
//!   [`AgentHistory::replace_compacted`]; messages that arrived meanwhile
//!   are kept after it. Run at most one compaction per agent at a time.
//! * To answer a context request, render the (compacted) history with
//!   [`render_context`]; log or return [`CompactionResult::outcome`] so that
//!   a `CannotReachTarget` is visible to the operator.
//! * Build the tokenizer at start-up with [`TokenCounter::preload`] (from a
//!   blocking task) so that the first count does not pay for it.
//!
//! # Example
//!
//! ```
//! use relay_compaction::{
//!     render_context, CompactionConfig, Compactor, HistoryMessage, TokenizerMode,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), relay_compaction::CompactionError> {
//! let config = CompactionConfig {
//!     enabled: true,
//!     max_tokens: 2_000,
//!     keep_recent: 5,
//!     tokenizer: TokenizerMode::Heuristic,
//!     ..CompactionConfig::default()
//! };
//! let compactor = Compactor::new(config)?;
//! let mut history = compactor.new_history("Backend");
//! for i in 0..200u64 {
//!     let body = format!("Status {i}: migrated table t{i}, 3 rows left to check.");
//!     history.push(HistoryMessage::new(format!("m{i}"), "Lead", "Backend", body, i * 1_000));
//! }
//! if compactor.needs_compaction(&history) {
//!     let mark = history.mark();
//!     let result = compactor.compact(&history.to_vec()).await;
//!     assert!(result.final_tokens <= result.target_tokens);
//!     let context = render_context("Backend", &result);
//!     assert!(context.contains("Status 199"));
//!     history.replace_compacted(mark, result.messages);
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compactor;
mod config;
mod dedupe;
mod error;
mod external;
mod history;
mod importance;
mod render;
mod strategies;
mod summary;
mod text;
mod timefmt;
mod tokens;

pub use compactor::{
    CompactionOutcome, CompactionResult, Compactor, StepReport, SummarizerUsed, SUMMARY_KIND,
    SUMMARY_RECIPIENT, SUMMARY_SENDER,
};
pub use config::{CompactionConfig, Strategy, SummarizerConfig, TokenizerMode};
pub use dedupe::{similarity, WINDOW as DEDUPE_WINDOW};
pub use error::CompactionError;
pub use external::{SummarizerError, MAX_TOKENS_ENV};
pub use history::{AgentHistory, HistoryMark, HistoryMessage, MessageRole, DEFAULT_MAX_HISTORY};
pub use importance::importance;
pub use render::{render_context, render_message};
pub use tokens::{
    estimate_tokens, CacheStats, TokenCounter, DEFAULT_CACHE_CAPACITY, MESSAGE_OVERHEAD_TOKENS,
    THREAD_OVERHEAD_TOKENS,
};
