//! Token counting: the `o200k_base` BPE tokenizer or a fast heuristic.
//!
//! The BPE ranks are compiled into the `tiktoken-rs` crate, so counting
//! works offline. Building the tokenizer takes a noticeable fraction of a
//! second, so it is built once per process, on first use (or on
//! [`TokenCounter::preload`]), and shared by every counter.
//!
//! Tokenizer counts are cached by content (see [`CacheStats`]); the
//! heuristic ([`estimate_tokens`]) is cheaper than a cache lookup and is not
//! cached.

mod cache;
mod heuristic;

use std::fmt;
use std::sync::{Arc, OnceLock};

use tiktoken_rs::CoreBPE;

pub use cache::CacheStats;
use cache::{key_of, CountCache};
pub use heuristic::estimate as estimate_tokens;

pub use crate::config::TokenizerMode;
use crate::history::HistoryMessage;

/// The default number of counts a [`TokenCounter`] caches.
pub const DEFAULT_CACHE_CAPACITY: usize = 50_000;

/// Tokens added to every message for its framing in the rendered context
/// (`[hh:mm:ss] `, ` → `, `: ` and the line break), on top of the tokens of
/// its sender, recipient and body. Measured with `o200k_base`.
pub const MESSAGE_OVERHEAD_TOKENS: usize = 11;

/// Tokens added for the ` (thread: …)` tag of a message in a thread, on
/// top of the thread name's.
pub const THREAD_OVERHEAD_TOKENS: usize = 4;

static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();

fn o200k() -> Option<&'static CoreBPE> {
    O200K
        .get_or_init(|| match tiktoken_rs::o200k_base() {
            Ok(bpe) => Some(bpe),
            Err(error) => {
                tracing::warn!(
                    %error,
                    "cannot build the o200k_base tokenizer; counting tokens with the heuristic"
                );
                None
            }
        })
        .as_ref()
}

/// Counts tokens, in the configured [`TokenizerMode`], with a shared cache.
///
/// Cloning is cheap and clones share the cache, so the daemon can hand one
/// counter to every agent's history and to the compactor. All methods take
/// `&self` and are safe to call from several threads at once.
#[derive(Clone)]
pub struct TokenCounter {
    inner: Arc<Inner>,
}

struct Inner {
    mode: TokenizerMode,
    cache: CountCache,
}

impl fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCounter")
            .field("mode", &self.inner.mode)
            .field("cache", &self.cache_stats())
            .finish()
    }
}

impl Default for TokenCounter {
    fn default() -> Self {
        TokenCounter::new(TokenizerMode::default())
    }
}

impl TokenCounter {
    /// A counter in `mode` with a cache of [`DEFAULT_CACHE_CAPACITY`] counts.
    pub fn new(mode: TokenizerMode) -> Self {
        TokenCounter::with_cache_capacity(mode, DEFAULT_CACHE_CAPACITY)
    }

    /// A counter in `mode` caching at most `capacity` counts (at least 2).
    pub fn with_cache_capacity(mode: TokenizerMode, capacity: usize) -> Self {
        TokenCounter {
            inner: Arc::new(Inner {
                mode,
                cache: CountCache::new(capacity.max(2)),
            }),
        }
    }

    /// The mode this counter was created with.
    pub fn mode(&self) -> TokenizerMode {
        self.inner.mode
    }

    /// The mode actually used: [`TokenizerMode::Heuristic`] if the tokenizer
    /// was asked for but could not be built (logged once).
    pub fn effective_mode(&self) -> TokenizerMode {
        match self.inner.mode {
            TokenizerMode::Tokenizer if o200k().is_some() => TokenizerMode::Tokenizer,
            _ => TokenizerMode::Heuristic,
        }
    }

    /// Builds the tokenizer now instead of on the first count. It takes a
    /// while and blocks: call it from a blocking task at start-up.
    pub fn preload(&self) {
        if self.inner.mode == TokenizerMode::Tokenizer {
            let _ = o200k();
        }
    }

    /// The number of tokens of `text`; 0 for the empty string.
    pub fn count(&self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        if self.inner.mode == TokenizerMode::Heuristic {
            return estimate_tokens(text);
        }
        let Some(bpe) = o200k() else {
            return estimate_tokens(text);
        };
        let key = key_of(text);
        if let Some(count) = self.inner.cache.get(key) {
            return count;
        }
        let count = bpe.encode_ordinary(text).len();
        self.inner.cache.insert(key, count);
        count
    }

    /// The tokens a message takes in the rendered context: sender,
    /// recipient (or channel), thread and body plus
    /// [`MESSAGE_OVERHEAD_TOKENS`] (and [`THREAD_OVERHEAD_TOKENS`] in a
    /// thread).
    pub fn count_message(&self, message: &HistoryMessage) -> usize {
        let recipient = match &message.channel {
            Some(channel) => self.count(channel) + 1,
            None => self.count(&message.to),
        };
        let thread = match &message.thread {
            Some(thread) => THREAD_OVERHEAD_TOKENS + self.count(thread),
            None => 0,
        };
        MESSAGE_OVERHEAD_TOKENS
            + self.count(&message.from)
            + recipient
            + thread
            + self.count(&message.body)
    }

    /// Hits, misses and size of the cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Empties the cache (the hit and miss figures are kept).
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// The longest prefix of `text` with at most `max_tokens` tokens, cut at
    /// a char boundary (at a word boundary when one is near).
    pub fn truncate<'a>(&self, text: &'a str, max_tokens: usize) -> &'a str {
        if self.count(text) <= max_tokens {
            return text;
        }
        // Binary search over char counts for the longest fitting prefix
        // (the empty prefix always fits).
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let fits = |chars: usize| self.count(&text[..boundaries[chars]]) <= max_tokens;
        let (mut lo, mut hi) = (0usize, boundaries.len() - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let prefix = &text[..boundaries[lo]];
        // Prefer ending at whitespace if that loses little.
        match prefix.rfind(char::is_whitespace) {
            Some(ws) if ws * 5 >= prefix.len() * 4 => {
                let at_word = prefix[..ws].trim_end();
                if self.count(at_word) <= max_tokens {
                    at_word
                } else {
                    prefix
                }
            }
            _ => prefix,
        }
    }
}
