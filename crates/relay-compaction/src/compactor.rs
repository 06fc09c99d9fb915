//! [`Compactor`]: runs the strategies and reports honestly what they did.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{CompactionConfig, Strategy};
use crate::error::CompactionError;
use crate::external::{self, SummarizerError};
use crate::history::{AgentHistory, HistoryMessage, MessageRole};
use crate::render::transcript;
use crate::strategies::{self, Working};
use crate::summary;
use crate::tokens::TokenCounter;

/// The smallest token cap given to a summary when the room left under the
/// target is smaller.
const MIN_SUMMARY_TOKENS: usize = 32;

/// The sender of summary messages.
pub const SUMMARY_SENDER: &str = "relay";
/// The recipient of summary messages.
pub const SUMMARY_RECIPIENT: &str = "*";
/// The kind of summary messages.
pub const SUMMARY_KIND: &str = "summary";

/// What one strategy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// The strategy.
    pub strategy: Strategy,
    /// Messages it took out of the history (for `summarize`: the messages
    /// folded into the summary).
    pub messages_removed: usize,
    /// Messages it added (1 for a summary, else 0).
    pub messages_added: usize,
    /// The total before it ran.
    pub tokens_before: usize,
    /// The total after it ran.
    pub tokens_after: usize,
}

/// How a compaction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CompactionOutcome {
    /// The total was at most `threshold × max_tokens`: nothing was done.
    NotNeeded,
    /// The total is now at most the target.
    Reached,
    /// Every allowed step was taken and the total is still above the
    /// target.
    CannotReachTarget {
        /// The total after compaction.
        final_tokens: usize,
        /// The target.
        target_tokens: usize,
        /// Why, and what to change.
        reason: String,
    },
}

/// Which summariser wrote the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SummarizerUsed {
    /// The built-in extractive summariser (no command configured).
    BuiltIn,
    /// The configured external command.
    External,
    /// The external command failed; the built-in summariser was used.
    BuiltInAfterExternalFailed {
        /// What went wrong with the command.
        #[serde(serialize_with = "serialize_display")]
        error: SummarizerError,
    },
}

fn serialize_display<S: serde::Serializer>(
    error: &SummarizerError,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(error)
}

/// The outcome of [`Compactor::compact`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactionResult {
    /// The compacted history, oldest first; a summary stands where the
    /// newest message it summarises stood. Token counts are filled in.
    pub messages: Vec<HistoryMessage>,
    /// How many messages were given.
    pub original_messages: usize,
    /// Their total tokens.
    pub original_tokens: usize,
    /// The total tokens of `messages`.
    pub final_tokens: usize,
    /// `target_usage × max_tokens`.
    pub target_tokens: usize,
    /// The strategies that ran, in order, with what each did (possibly
    /// nothing). Strategies after the target was reached did not run and
    /// are not listed.
    pub steps: Vec<StepReport>,
    /// Reached, not needed, or cannot reach the target.
    pub outcome: CompactionOutcome,
    /// The summariser that ran, if the `summarize` step ran one.
    pub summarizer_used: Option<SummarizerUsed>,
    /// How long the compaction took.
    pub duration: Duration,
}

impl CompactionResult {
    /// The newest summary message, if any.
    pub fn summary(&self) -> Option<&HistoryMessage> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == MessageRole::Summary)
    }

    /// Whether the history changed.
    pub fn changed(&self) -> bool {
        self.steps
            .iter()
            .any(|s| s.messages_removed > 0 || s.messages_added > 0)
    }
}

/// Compacts agent histories with one configuration.
#[derive(Debug, Clone)]
pub struct Compactor {
    config: CompactionConfig,
    counter: TokenCounter,
    summarizer_argv: Option<Vec<String>>,
}

impl Compactor {
    /// A compactor for `config` (validated) with a new [`TokenCounter`] in
    /// the configured mode.
    pub fn new(config: CompactionConfig) -> Result<Self, CompactionError> {
        let counter = TokenCounter::new(config.tokenizer);
        Compactor::with_counter(config, counter)
    }

    /// A compactor sharing `counter` (and its cache), e.g. with the
    /// histories. `config.tokenizer` is ignored in favour of the counter's
    /// mode.
    pub fn with_counter(
        config: CompactionConfig,
        counter: TokenCounter,
    ) -> Result<Self, CompactionError> {
        config.validate()?;
        let summarizer_argv = config.summarizer.argv()?;
        Ok(Compactor {
            config,
            counter,
            summarizer_argv,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CompactionConfig {
        &self.config
    }

    /// The token counter; give clones of it to the [`AgentHistory`]s so that
    /// their totals use the same counts.
    pub fn counter(&self) -> &TokenCounter {
        &self.counter
    }

    /// An empty history for `agent` bounded by `max_history`, counting with
    /// this compactor's counter.
    pub fn new_history(&self, agent: impl Into<String>) -> AgentHistory {
        AgentHistory::with_max_entries(agent, self.counter.clone(), self.config.max_history)
    }

    /// Whether compaction is enabled and `history` is above
    /// `threshold × max_tokens`.
    pub fn needs_compaction(&self, history: &AgentHistory) -> bool {
        self.config.enabled && self.over_threshold(history.total_tokens())
    }

    /// Whether `total_tokens` is above `threshold × max_tokens` (regardless
    /// of `enabled`).
    pub fn over_threshold(&self, total_tokens: usize) -> bool {
        total_tokens > self.config.threshold_tokens()
    }

    /// Compacts `messages` (oldest first) if their total is above the
    /// threshold, down to the target if the configured strategies allow.
    /// Does not look at `enabled`: the caller asked.
    ///
    /// Every message's tokens are counted again unless this compactor's
    /// counter (shared with the [`AgentHistory`] the messages came from)
    /// counted that very content before, so stale or hand-set `tokens`
    /// values in the input do not matter. Only the external
    /// summariser awaits anything; it needs a Tokio runtime with the time
    /// and I/O drivers enabled. Everything else is synchronous CPU work
    /// (tens of milliseconds for 10,000 messages).
    pub async fn compact(&self, messages: &[HistoryMessage]) -> CompactionResult {
        let started = Instant::now();
        let mut work = Working::new(messages, &self.counter, self.config.keep_recent);
        let original_tokens = work.total;
        let target = self.config.target_tokens();
        let mut steps = Vec::new();
        let mut summarizer_used = None;

        let outcome = if !self.over_threshold(original_tokens) {
            CompactionOutcome::NotNeeded
        } else {
            for &strategy in &self.config.strategies {
                if work.total <= target {
                    break;
                }
                let tokens_before = work.total;
                let (messages_removed, messages_added) = match strategy {
                    Strategy::Deduplicate => (
                        strategies::deduplicate(&mut work, self.config.dedupe_similarity),
                        0,
                    ),
                    Strategy::TrimLowImportance => (
                        strategies::trim_low_importance(
                            &mut work,
                            self.config.min_importance,
                            target,
                        ),
                        0,
                    ),
                    Strategy::Summarize => {
                        let (removed, added, used) = self.summarize(&mut work, target).await;
                        summarizer_used = used;
                        (removed, added)
                    }
                    Strategy::Aggressive => (strategies::aggressive(&mut work, target), 0),
                };
                let step = StepReport {
                    strategy,
                    messages_removed,
                    messages_added,
                    tokens_before,
                    tokens_after: work.total,
                };
                tracing::debug!(?step, "compaction step");
                steps.push(step);
            }
            if work.total <= target {
                CompactionOutcome::Reached
            } else {
                CompactionOutcome::CannotReachTarget {
                    final_tokens: work.total,
                    target_tokens: target,
                    reason: self.shortfall_reason(&work, target),
                }
            }
        };

        let final_tokens = work.total;
        let result = CompactionResult {
            messages: work.into_messages(),
            original_messages: messages.len(),
            original_tokens,
            final_tokens,
            target_tokens: target,
            steps,
            outcome,
            summarizer_used,
            duration: started.elapsed(),
        };
        if result.outcome != CompactionOutcome::NotNeeded {
            tracing::info!(
                original_tokens,
                final_tokens,
                target_tokens = target,
                kept = result.messages.len(),
                of = messages.len(),
                outcome = ?result.outcome,
                duration_ms = result.duration.as_millis() as u64,
                "compacted history"
            );
        }
        result
    }

    /// The `summarize` step: returns (removed, added, summariser used).
    async fn summarize(
        &self,
        work: &mut Working,
        target: usize,
    ) -> (usize, usize, Option<SummarizerUsed>) {
        let max_cap = self.config.summarizer.max_summary_tokens;
        let overhead = self.counter.count_message(&HistoryMessage::new(
            "",
            SUMMARY_SENDER,
            SUMMARY_RECIPIENT,
            "",
            0,
        ));
        let selected = strategies::select_for_summary(work, target, max_cap + overhead);
        let folded: Vec<HistoryMessage> = selected
            .iter()
            .map(|&i| work.entries[i].msg.clone())
            .collect();
        let Some(newest) = folded.last() else {
            return (0, 0, None);
        };
        let folded_tokens: usize = folded.iter().map(|m| m.tokens).sum();
        // The summary gets the room left under the target once the folded
        // messages are gone, up to max_summary_tokens (and at least a
        // minimum, when nothing can reach the target anyway).
        let room = target.saturating_sub(work.total - folded_tokens + overhead);
        let cap = room.clamp(MIN_SUMMARY_TOKENS.min(max_cap), max_cap);
        let (body, used) = self.summary_text(&folded, cap).await;
        let base_id = newest.id.strip_prefix("summary-").unwrap_or(&newest.id);
        let mut message = HistoryMessage::new(
            format!("summary-{base_id}"),
            SUMMARY_SENDER,
            SUMMARY_RECIPIENT,
            body,
            newest.timestamp_ms,
        )
        .with_kind(SUMMARY_KIND)
        .with_role(MessageRole::Summary);
        message.recount(&self.counter);
        if message.tokens >= folded_tokens {
            tracing::debug!(
                summary_tokens = message.tokens,
                folded_tokens,
                "summary not smaller than the messages it replaces; not used"
            );
            return (0, 0, Some(used));
        }
        let removed = strategies::replace_with_summary(work, &selected, message);
        (removed, 1, Some(used))
    }

    /// The summary body of `messages`, at most `cap` tokens.
    async fn summary_text(
        &self,
        messages: &[HistoryMessage],
        cap: usize,
    ) -> (String, SummarizerUsed) {
        let Some(argv) = &self.summarizer_argv else {
            return (
                summary::extractive(messages, &self.counter, cap),
                SummarizerUsed::BuiltIn,
            );
        };
        let timeout = Duration::from_millis(self.config.summarizer.timeout_ms);
        match external::run(argv, &transcript(messages), timeout, cap).await {
            Ok(text) => {
                let body = format!("{}\n{}", summary::header(messages), text);
                let body = self.counter.truncate(&body, cap).to_owned();
                (body, SummarizerUsed::External)
            }
            Err(error) => {
                tracing::warn!(%error, "external summariser failed; using the built-in one");
                (
                    summary::extractive(messages, &self.counter, cap),
                    SummarizerUsed::BuiltInAfterExternalFailed { error },
                )
            }
        }
    }

    fn shortfall_reason(&self, work: &Working, target: usize) -> String {
        let fixed = work.fixed_tokens();
        if fixed > target {
            let recent = work.recent_count();
            let protected = work.protected_count();
            return format!(
                "the {recent} most recent messages (keep_recent = {}) and {protected} older \
                 system/summary messages alone take {fixed} tokens; lower keep_recent, shorten \
                 the system messages, or raise max_tokens or target_usage",
                self.config.keep_recent
            );
        }
        let names: Vec<&str> = self.config.strategies.iter().map(|s| s.as_str()).collect();
        format!(
            "the configured strategies [{}] removed all they may and {} tokens remain in \
             messages only \"aggressive\" would drop; add \"aggressive\" to strategies or raise \
             max_tokens",
            names.join(", "),
            work.total - fixed
        )
    }
}
