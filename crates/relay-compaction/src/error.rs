//! Errors of this crate. Each message says what was wrong and what to do.

use thiserror::Error;

/// Why a [`CompactionConfig`](crate::CompactionConfig) was rejected, or why a
/// [`Compactor`](crate::Compactor) could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CompactionError {
    /// A numeric field is out of its allowed range.
    #[error("compaction config: `{field}` is {value}, but it must be {expected}")]
    OutOfRange {
        /// The config field, as written in the config file.
        field: &'static str,
        /// The value that was given, as text.
        value: String,
        /// The allowed range, in words.
        expected: String,
    },

    /// `strategies` names a strategy this crate does not know.
    #[error(
        "compaction config: `strategies` contains unknown strategy {name:?}; use any of \
         \"deduplicate\", \"trim_low_importance\", \"summarize\", \"aggressive\""
    )]
    UnknownStrategy {
        /// The unknown name.
        name: String,
    },

    /// `strategies` lists the same strategy twice.
    #[error("compaction config: `strategies` lists {name:?} more than once; list each strategy at most once")]
    DuplicateStrategy {
        /// The repeated name.
        name: String,
    },

    /// `tokenizer` is neither `o200k` nor `heuristic`.
    #[error(
        "compaction config: `tokenizer` is {name:?}; use \"o200k\" (BPE tokenizer) or \
         \"heuristic\" (fast estimate)"
    )]
    UnknownTokenizer {
        /// The unknown name.
        name: String,
    },

    /// `summarizer.command` could not be split into a program and arguments,
    /// or is empty.
    #[error(
        "compaction config: `summarizer.command` {command:?} cannot be used: {reason}; write \
         it as a program followed by its arguments, quoted like in a shell (no pipes or \
         redirections: wrap those in `sh -c '...'`)"
    )]
    BadSummarizerCommand {
        /// The command line as configured.
        command: String,
        /// What is wrong with it.
        reason: String,
    },
}
