//! Token counting: the heuristic estimate, the BPE tokenizer and the cache.

use std::sync::Arc;

use proptest::prelude::*;
use relay_compaction::{estimate_tokens, HistoryMessage, TokenCounter, TokenizerMode};

#[test]
fn empty_string_is_zero_in_both_modes() {
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(TokenCounter::new(TokenizerMode::Heuristic).count(""), 0);
    assert_eq!(TokenCounter::new(TokenizerMode::Tokenizer).count(""), 0);
}

#[test]
fn tokenizer_counts_known_strings() {
    let counter = TokenCounter::new(TokenizerMode::Tokenizer);
    assert_eq!(counter.effective_mode(), TokenizerMode::Tokenizer);
    assert_eq!(counter.count("hello world"), 2);
    assert_eq!(counter.count("Hello world"), 2);
    assert_eq!(counter.count("hello"), 1);
    // Reference counts from OpenAI's tiktoken (`o200k_base`, encode_ordinary).
    for (text, tokens) in [
        (
            "Relay message from Alice [a1b2c3]: the build is green ✓",
            17,
        ),
        ("日本語のテキストを数える", 9),
        ("fn main() { println!(\"hi\"); }", 9),
        ("    indented\n\n\ttabs  and   spaces", 10),
        ("👍🏽 café naïve", 6),
    ] {
        assert_eq!(counter.count(text), tokens, "{text:?}");
    }
    // Special-token text is counted as ordinary text, never as a control token.
    assert!(counter.count("<|endoftext|>") > 1);
}

#[test]
fn no_discontinuity_at_100_chars() {
    // The original estimator gave 29 tokens for 99 chars and 25 for 100.
    let mut previous = 0;
    for n in 0..=2_000 {
        let estimate = estimate_tokens(&"a".repeat(n));
        assert!(estimate >= previous, "{n} chars: {estimate} < {previous}");
        previous = estimate;
    }
}

#[test]
fn whole_text_is_read_not_a_sample() {
    // The original only sampled the first 1000 chars.
    let prose = "word ".repeat(200);
    let code = "{}();".repeat(400);
    let mixed = format!("{prose}{code}");
    assert!(estimate_tokens(&mixed) > estimate_tokens(&prose) + 300);
}

#[test]
fn unicode_is_counted_by_chars_not_bytes_or_utf16_units() {
    // One ideograph ≈ one token (BPE gives 0.5–1); three UTF-8 bytes would
    // triple it, one UTF-16 unit per 3.5 would be far too low.
    let cjk = "我们决定使用数据库来存储任务队列";
    let n = cjk.chars().count();
    let estimate = estimate_tokens(cjk);
    assert!(
        estimate >= n / 2 && estimate <= n,
        "{estimate} for {n} ideographs"
    );

    // Emoji cost more than a letter, and skin tones / ZWJ sequences add a
    // little per extra code point.
    let thumbs = estimate_tokens("👍");
    assert!(thumbs >= 1);
    assert!(estimate_tokens("👍🏽") > thumbs);
    assert!(estimate_tokens("👨‍👩‍👧‍👦") > estimate_tokens("👨"));

    // Combining marks: decomposed text is not cheaper than precomposed.
    let composed = estimate_tokens("résumé déjà");
    let decomposed = estimate_tokens("re\u{301}sume\u{301} de\u{301}ja\u{300}");
    assert!(decomposed >= composed);

    // Mixed scripts are all counted.
    assert!(estimate_tokens("你好世界 🌍 مرحبا العالم") >= 6);
}

#[test]
fn heuristic_is_close_to_the_tokenizer_on_real_text() {
    let tokenizer = TokenCounter::new(TokenizerMode::Tokenizer);
    let samples = [
        "We decided to use Postgres for the job queue because it already runs in production.",
        "fn main() { let x = compute(&items).map_err(|e| anyhow!(\"bad: {e}\"))?; }",
        "2025-03-05T14:02:11.482Z ERROR relay_daemon::router: delivery failed (os error 104)",
        "我们决定使用数据库来存储任务队列。这个方案已经在生产环境中运行了三个月。",
        "Привет, мир! Мы решили использовать базу данных для очереди задач.",
    ];
    for text in samples {
        let exact = tokenizer.count(text) as f64;
        let estimate = estimate_tokens(text) as f64;
        let ratio = estimate / exact;
        assert!(
            (0.75..=1.6).contains(&ratio),
            "ratio {ratio:.2} for {text:?}"
        );
    }
}

#[test]
fn cache_hits_on_repeated_text() {
    let counter = TokenCounter::new(TokenizerMode::Tokenizer);
    let text = "The export job pages through audit_events in pages of 5,000 rows.";
    let first = counter.count(text);
    let before = counter.cache_stats();
    for _ in 0..10 {
        assert_eq!(counter.count(text), first);
    }
    let after = counter.cache_stats();
    assert_eq!(after.hits - before.hits, 10);
    assert_eq!(after.misses, before.misses);
    // Clones share the cache.
    let clone = counter.clone();
    assert_eq!(clone.count(text), first);
    assert_eq!(counter.cache_stats().hits, after.hits + 1);
}

#[test]
fn cache_is_bounded() {
    let counter = TokenCounter::with_cache_capacity(TokenizerMode::Tokenizer, 100);
    for i in 0..1_000 {
        counter.count(&format!("message number {i}"));
    }
    let stats = counter.cache_stats();
    assert!(stats.entries <= 100, "{stats:?}");
    assert_eq!(stats.capacity, 100);
}

#[test]
fn counting_from_many_threads_agrees() {
    let counter = Arc::new(TokenCounter::new(TokenizerMode::Tokenizer));
    let texts: Vec<String> = (0..200)
        .map(|i| format!("agent {i} says: build {i} passed"))
        .collect();
    let expected: Vec<usize> = texts.iter().map(|t| counter.count(t)).collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for (text, &want) in texts.iter().zip(&expected) {
                    assert_eq!(counter.count(text), want);
                }
            });
        }
    });
}

#[test]
fn message_tokens_include_framing_sender_recipient_and_thread() {
    let counter = TokenCounter::new(TokenizerMode::Tokenizer);
    let plain = HistoryMessage::new("1", "Lead", "Backend", "hi", 0);
    let in_thread = plain.clone().with_thread("jobs-api");
    let a = counter.count_message(&plain);
    let b = counter.count_message(&in_thread);
    assert_eq!(a, relay_compaction::MESSAGE_OVERHEAD_TOKENS + 3);
    assert!(b > a);
    // The rendered line costs about what the counter says.
    let line = relay_compaction::render_message(&in_thread) + "\n";
    let rendered = counter.count(&line);
    assert!(
        rendered.abs_diff(b) <= 2,
        "rendered {rendered}, counted {b}"
    );
}

#[test]
fn truncate_fits_the_cap() {
    let counter = TokenCounter::new(TokenizerMode::Tokenizer);
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
    let cut = counter.truncate(&text, 40);
    assert!(counter.count(cut) <= 40);
    assert!(counter.count(cut) >= 35);
    assert!(text.starts_with(cut));
    assert_eq!(counter.truncate("short", 40), "short");
}

proptest! {
    #[test]
    fn estimate_is_monotonic(a in any::<String>(), b in any::<String>()) {
        let joined = format!("{a}{b}");
        prop_assert!(estimate_tokens(&a) <= estimate_tokens(&joined));
    }

    #[test]
    fn estimate_is_monotonic_on_mixed_scripts(
        a in "[a-zA-Z0-9 .,;:(){}_\n\t\u{300}-\u{36f}é你好世界🌍👍🏽\u{200d}\u{fe0f}مرحبا]{0,60}",
        b in "[a-zA-Z0-9 .,;:(){}_\n\t\u{300}-\u{36f}é你好世界🌍👍🏽\u{200d}\u{fe0f}مرحبا]{0,60}",
    ) {
        let joined = format!("{a}{b}");
        prop_assert!(estimate_tokens(&a) <= estimate_tokens(&joined));
    }

    #[test]
    fn nonempty_text_counts_at_least_one(a in ".{1,40}") {
        prop_assert!(estimate_tokens(&a) >= 1);
    }
}

/// A count is reused only by the counter that made it and only while the
/// counted content is unchanged; a hand-set count is never trusted.
#[test]
fn stored_counts_are_reused_only_when_they_are_the_counters_own() {
    use relay_compaction::HistoryMessage;
    let counter = TokenCounter::new(TokenizerMode::Tokenizer);
    let mut m = HistoryMessage::new("1", "Alice", "Bob", "the schema migration is done", 1);
    let first = m.recount(&counter);
    assert!(first > 0);
    let before = counter.cache_stats();
    assert_eq!(m.recount(&counter), first);
    let after = counter.cache_stats();
    assert_eq!(
        (after.hits, after.misses),
        (before.hits, before.misses),
        "the second count reused the stored one without counting"
    );

    m.tokens = 1;
    m.body.push_str(" and the indexes are rebuilt");
    assert!(m.recount(&counter) > first, "changed body is counted again");

    let other = TokenCounter::new(TokenizerMode::Heuristic);
    let mut copy = m.clone();
    copy.tokens = 0;
    assert_eq!(copy.recount(&other), other.count_message(&copy));

    let mut forged = HistoryMessage::new("2", "Alice", "Bob", "a long body of many words", 1);
    forged.tokens = 1;
    assert_eq!(forged.recount(&counter), counter.count_message(&forged));
    assert!(forged.tokens > 1);
}
