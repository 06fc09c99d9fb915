//! [`CompactionConfig`]: when to compact, how far, and with which strategies.
//!
//! Every field has a default, so an empty table (or `{}`) is a valid config.
//! Unknown keys are rejected, so a typo does not silently fall back to a
//! default. Call [`CompactionConfig::validate`] (done by
//! [`Compactor::new`](crate::Compactor::new)) to check the ranges.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CompactionError;

/// One compaction strategy. They run in the configured order until the
/// history fits the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Strategy {
    /// Collapse near-duplicate messages to the newest copy.
    Deduplicate,
    /// Drop messages whose importance is below `min_importance`.
    TrimLowImportance,
    /// Replace the oldest messages with one summary message.
    Summarize,
    /// Drop the oldest messages.
    Aggressive,
}

impl Strategy {
    /// Every strategy, in the default order.
    pub const ALL: [Strategy; 4] = [
        Strategy::Deduplicate,
        Strategy::TrimLowImportance,
        Strategy::Summarize,
        Strategy::Aggressive,
    ];

    /// The name used in configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Deduplicate => "deduplicate",
            Strategy::TrimLowImportance => "trim_low_importance",
            Strategy::Summarize => "summarize",
            Strategy::Aggressive => "aggressive",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = CompactionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| CompactionError::UnknownStrategy { name: s.to_owned() })
    }
}

impl TryFrom<String> for Strategy {
    type Error = CompactionError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Strategy> for String {
    fn from(strategy: Strategy) -> String {
        strategy.as_str().to_owned()
    }
}

/// How tokens are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TokenizerMode {
    /// The `o200k_base` BPE tokenizer (exact counts for current OpenAI
    /// models, a close estimate for other models). Config name `o200k`.
    #[default]
    Tokenizer,
    /// A fast character-class estimate. Config name `heuristic`.
    Heuristic,
}

impl TokenizerMode {
    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenizerMode::Tokenizer => "o200k",
            TokenizerMode::Heuristic => "heuristic",
        }
    }
}

impl fmt::Display for TokenizerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenizerMode {
    type Err = CompactionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "o200k" | "o200k_base" => Ok(TokenizerMode::Tokenizer),
            "heuristic" => Ok(TokenizerMode::Heuristic),
            _ => Err(CompactionError::UnknownTokenizer { name: s.to_owned() }),
        }
    }
}

impl TryFrom<String> for TokenizerMode {
    type Error = CompactionError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TokenizerMode> for String {
    fn from(kind: TokenizerMode) -> String {
        kind.as_str().to_owned()
    }
}

/// The summariser used by the `summarize` strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummarizerConfig {
    /// An external summariser: a program and its arguments, quoted like in a
    /// shell but run without one. It gets the transcript on stdin and writes
    /// the summary to stdout. `None` (the default) uses the built-in
    /// extractive summariser.
    pub command: Option<String>,
    /// How long the external command may run before it is killed and the
    /// built-in summariser is used instead.
    pub timeout_ms: u64,
    /// The most tokens a summary may have; longer output is cut. A summary
    /// also gets no more than the room left under the target once the
    /// messages it replaces are gone (but at least 32 tokens).
    pub max_summary_tokens: usize,
}

impl Default for SummarizerConfig {
    fn default() -> Self {
        SummarizerConfig {
            command: None,
            timeout_ms: 10_000,
            max_summary_tokens: 1_000,
        }
    }
}

impl SummarizerConfig {
    /// The external command split into program and arguments, if one is
    /// configured.
    pub fn argv(&self) -> Result<Option<Vec<String>>, CompactionError> {
        let Some(command) = &self.command else {
            return Ok(None);
        };
        let bad = |reason: String| CompactionError::BadSummarizerCommand {
            command: command.clone(),
            reason,
        };
        let argv = shell_words::split(command).map_err(|e| bad(e.to_string()))?;
        if argv.is_empty() {
            return Err(bad("it names no program".to_owned()));
        }
        Ok(Some(argv))
    }
}

/// When and how to compact an agent's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// The daemon's switch: when false, [`Compactor::needs_compaction`]
    /// always says no. [`Compactor::compact`] itself does what it is asked.
    ///
    /// [`Compactor::needs_compaction`]: crate::Compactor::needs_compaction
    /// [`Compactor::compact`]: crate::Compactor::compact
    pub enabled: bool,
    /// The token budget of one agent's context.
    pub max_tokens: usize,
    /// Compaction is needed when the total is above `threshold × max_tokens`.
    pub threshold: f64,
    /// Compaction aims at `target_usage × max_tokens` or less.
    pub target_usage: f64,
    /// The last `keep_recent` messages are always kept verbatim. 0 protects
    /// none by recency.
    pub keep_recent: usize,
    /// `trim_low_importance` drops messages whose importance (0–100) is
    /// below this.
    pub min_importance: u8,
    /// Two messages are near-duplicates when the Jaccard similarity of their
    /// word sets is at least this (0 < x ≤ 1; 1 means the same words).
    pub dedupe_similarity: f64,
    /// The strategies, in the order they are tried.
    pub strategies: Vec<Strategy>,
    /// How tokens are counted.
    pub tokenizer: TokenizerMode,
    /// The summariser of the `summarize` strategy.
    pub summarizer: SummarizerConfig,
    /// The most messages an [`AgentHistory`](crate::AgentHistory) keeps
    /// before it drops the oldest.
    pub max_history: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: false,
            max_tokens: 100_000,
            threshold: 0.8,
            target_usage: 0.5,
            keep_recent: 10,
            min_importance: 30,
            dedupe_similarity: 0.85,
            strategies: Strategy::ALL.to_vec(),
            tokenizer: TokenizerMode::Tokenizer,
            summarizer: SummarizerConfig::default(),
            max_history: 10_000,
        }
    }
}

fn out_of_range(field: &'static str, value: impl fmt::Display, expected: &str) -> CompactionError {
    CompactionError::OutOfRange {
        field,
        value: value.to_string(),
        expected: expected.to_owned(),
    }
}

impl CompactionConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), CompactionError> {
        if self.max_tokens == 0 {
            return Err(out_of_range("max_tokens", 0, "greater than 0"));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(out_of_range(
                "threshold",
                self.threshold,
                "in (0, 1], a fraction of max_tokens",
            ));
        }
        if !(self.target_usage > 0.0 && self.target_usage < self.threshold) {
            return Err(out_of_range(
                "target_usage",
                self.target_usage,
                &format!(
                    "in (0, threshold) = (0, {}), so compaction frees room below the trigger",
                    self.threshold
                ),
            ));
        }
        if self.target_tokens() == 0 {
            return Err(out_of_range(
                "target_usage",
                self.target_usage,
                "large enough that target_usage × max_tokens is at least 1 token",
            ));
        }
        if self.min_importance > 100 {
            return Err(out_of_range(
                "min_importance",
                self.min_importance,
                "in 0..=100",
            ));
        }
        if !(self.dedupe_similarity > 0.0 && self.dedupe_similarity <= 1.0) {
            return Err(out_of_range(
                "dedupe_similarity",
                self.dedupe_similarity,
                "in (0, 1]",
            ));
        }
        for (i, strategy) in self.strategies.iter().enumerate() {
            if self.strategies[..i].contains(strategy) {
                return Err(CompactionError::DuplicateStrategy {
                    name: strategy.as_str().to_owned(),
                });
            }
        }
        if self.summarizer.timeout_ms == 0 {
            return Err(out_of_range(
                "summarizer.timeout_ms",
                0,
                "greater than 0 (milliseconds)",
            ));
        }
        if self.summarizer.max_summary_tokens < 16 {
            return Err(out_of_range(
                "summarizer.max_summary_tokens",
                self.summarizer.max_summary_tokens,
                "at least 16",
            ));
        }
        if self.max_history == 0 {
            return Err(out_of_range("max_history", 0, "greater than 0"));
        }
        self.summarizer.argv()?;
        Ok(())
    }

    /// `threshold × max_tokens`, rounded down: above this, compaction is
    /// needed.
    pub fn threshold_tokens(&self) -> usize {
        (self.threshold * self.max_tokens as f64).floor() as usize
    }

    /// `target_usage × max_tokens`, rounded down: compaction aims at this
    /// or less.
    pub fn target_tokens(&self) -> usize {
        (self.target_usage * self.max_tokens as f64).floor() as usize
    }
}
