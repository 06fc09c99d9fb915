//! Token counting: the `o200k_base` BPE tokenizer or a fast heuristic.
//!
//! The BPE ranks are compiled into the `bpe-openai` crate (a byte-pair
//! counter that gives exactly tiktoken's `o200k_base` counts, about twice
//! as fast), so counting works offline. Loading the tokenizer takes tens of
//! milliseconds, so it is loaded once per process, on first use (or on
//! [`TokenCounter::preload`]), and shared by every counter.
//!
//! Tokenizer counts are cached by content (see [`CacheStats`]); the
//! heuristic ([`estimate_tokens`]) is cheaper than a cache lookup and is not
//! cached.

mod cache;
mod heuristic;

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bpe_openai::Tokenizer;

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

static O200K: OnceLock<Option<&'static Tokenizer>> = OnceLock::new();

fn o200k() -> Option<&'static Tokenizer> {
    *O200K.get_or_init(|| {
        // The ranks are embedded at build time; loading them fails only if
        // the crate itself is broken, and then counting falls back to the
        // heuristic instead of taking the process down.
        match std::panic::catch_unwind(bpe_openai::o200k_base) {
            Ok(bpe) => Some(bpe),
            Err(_) => {
                tracing::warn!(
                    "cannot load the o200k_base tokenizer; counting tokens with the heuristic"
                );
                None
            }
        }
    })
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
    /// Unique per counter (clones share it): see [`CountStamp`].
    id: u64,
    mode: TokenizerMode,
    cache: CountCache,
}

/// Identifies a [`HistoryMessage`]'s stored count: the counter that made it
/// and a hash of the counted fields. Two messages compare equal whatever
/// their stamps (it is a cache, not part of the message).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CountStamp {
    /// 0: never counted.
    counter: u64,
    content: u64,
}

impl CountStamp {
    /// Whether a count carrying `self` may be reused where `current` (the
    /// stamp of the message as it is now) is asked for.
    pub(crate) fn matches(&self, current: &CountStamp) -> bool {
        self.counter != 0 && self.counter == current.counter && self.content == current.content
    }
}

impl PartialEq for CountStamp {
    /// Always equal: the stamp must not make two otherwise equal messages
    /// differ.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

static NEXT_COUNTER_ID: AtomicU64 = AtomicU64::new(1);

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
                id: NEXT_COUNTER_ID.fetch_add(1, Ordering::Relaxed),
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
        let count = bpe.count(text);
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

    /// The stamp a count of `message` by this counter carries: the fields
    /// [`Self::count_message`] reads, hashed.
    pub(crate) fn stamp_of(&self, message: &HistoryMessage) -> CountStamp {
        let mut hasher = DefaultHasher::new();
        message.from.hash(&mut hasher);
        message.to.hash(&mut hasher);
        message.channel.hash(&mut hasher);
        message.thread.hash(&mut hasher);
        message.body.hash(&mut hasher);
        CountStamp {
            counter: self.inner.id,
            content: hasher.finish(),
        }
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
