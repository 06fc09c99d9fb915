//! Helpers shared by the integration tests.

#![allow(dead_code)]

use relay_compaction::{
    CompactionConfig, CompactionResult, Compactor, HistoryMessage, MessageRole, Strategy,
    TokenizerMode,
};

/// A normal message `m{i}` from `from` to `Agent` at `i` seconds.
pub fn msg(i: usize, from: &str, body: &str) -> HistoryMessage {
    HistoryMessage::new(format!("m{i}"), from, "Agent", body, i as u64 * 1_000)
}

/// A config with the heuristic counter, `max_tokens`, `keep_recent` and
/// only `strategies`.
pub fn config(max_tokens: usize, keep_recent: usize, strategies: &[Strategy]) -> CompactionConfig {
    CompactionConfig {
        enabled: true,
        max_tokens,
        keep_recent,
        strategies: strategies.to_vec(),
        tokenizer: TokenizerMode::Heuristic,
        ..CompactionConfig::default()
    }
}

pub fn compactor(config: CompactionConfig) -> Compactor {
    match Compactor::new(config) {
        Ok(c) => c,
        Err(e) => panic!("test config rejected: {e}"),
    }
}

pub fn ids(result: &CompactionResult) -> Vec<&str> {
    result.messages.iter().map(|m| m.id.as_str()).collect()
}

pub fn total(messages: &[HistoryMessage]) -> usize {
    messages.iter().map(|m| m.tokens).sum()
}

/// A body of roughly `words` distinct-looking words (unique per `seed`).
pub fn filler(seed: usize, words: usize) -> String {
    (0..words)
        .map(|w| format!("w{seed}x{w}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn system(i: usize, body: &str) -> HistoryMessage {
    msg(i, "Lead", body).with_role(MessageRole::System)
}
