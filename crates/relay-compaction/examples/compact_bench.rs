//! Times the compaction of a synthetic 10,000-message history with both
//! token counters.
//!
//! ```text
//! cargo run --release -p relay-compaction --example compact_bench [MESSAGES]
//! ```

use std::time::{Duration, Instant};

use relay_compaction::{
    CompactionConfig, CompactionResult, Compactor, HistoryMessage, MessageRole, TokenCounter,
    TokenizerMode,
};

const AGENTS: [&str; 5] = ["Lead", "Backend", "Frontend", "Reviewer", "QA"];

/// A deterministic mix of what agents send: status pings (many repeated),
/// progress with numbers, questions, decisions, errors with traces, code,
/// acknowledgements and long explanations.
fn synthetic_history(n: usize) -> Vec<HistoryMessage> {
    let mut messages = vec![HistoryMessage::new(
        "sys",
        "Lead",
        "Backend",
        "You are Backend. Keep PRs small and ask before changing public APIs.",
        0,
    )
    .with_role(MessageRole::System)];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 1..n {
        let from = AGENTS[(next() % AGENTS.len() as u64) as usize];
        let to = if from == "Backend" { "Lead" } else { "Backend" };
        let r = next() % 100;
        let body = match r {
            0..=29 => "Status: still working on it, no blockers.".to_owned(),
            30..=44 => format!("Progress: {} of {} items migrated.", i * 37 % 9_000, 9_000),
            45..=54 => format!(
                "Question: should job {i} retry after {} seconds?",
                r % 7 + 1
            ),
            55..=62 => format!(
                "Decision: we will shard queue q{} by tenant and cap it at {} jobs.",
                i % 13,
                (r + 1) * 100
            ),
            63..=70 => format!(
                "Error: task {i} failed: connection reset by peer (os error 104)\n\
                 thread 'worker' panicked at src/jobs/run.rs:{}:9:\n   0: rust_begin_unwind",
                r * 3
            ),
            71..=78 => format!(
                "```rust\nfn limit_{i}(n: usize) -> usize {{\n    n.min({})\n}}\n```",
                r * 10
            ),
            79..=86 => "ok".to_owned(),
            _ => format!(
                "Long update {i}: I read through the scheduler and the retry code paths. The \
                 backoff doubles from 2 s up to 64 s, the queue keeps at most {} pending \
                 entries per agent, and the sweeper runs every 30 s. I think we can simplify \
                 the state machine by merging the Waiting and Retrying states; that removes \
                 about 120 lines and two locks.",
                r * 10
            ),
        };
        let mut m = HistoryMessage::new(format!("m{i}"), from, to, body, i as u64 * 1_000);
        if r % 3 == 0 {
            m = m.with_thread(format!("t{}", r % 5));
        }
        messages.push(m);
    }
    messages
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn print_result(label: &str, result: &CompactionResult) {
    println!(
        "    {label}: {} → {} tokens (target {}), {} → {} messages, {:?}, {}",
        result.original_tokens,
        result.final_tokens,
        result.target_tokens,
        result.original_messages,
        result.messages.len(),
        result.outcome,
        ms(result.duration)
    );
    for step in &result.steps {
        println!(
            "      {:<20} -{:<5} +{} {:>7} → {:>7} tokens",
            step.strategy.as_str(),
            step.messages_removed,
            step.messages_added,
            step.tokens_before,
            step.tokens_after
        );
    }
}

async fn bench(mode: TokenizerMode, messages: &[HistoryMessage]) {
    println!("{mode} ({} messages)", messages.len());
    let counter = TokenCounter::new(mode);
    let started = Instant::now();
    counter.preload();
    if mode == TokenizerMode::Tokenizer {
        println!(
            "  build the BPE (once per process): {}",
            ms(started.elapsed())
        );
    }

    // Counting while feeding the history (the daemon's steady state).
    let started = Instant::now();
    let mut history = relay_compaction::AgentHistory::new("Backend", counter.clone());
    for m in messages {
        history.push(m.clone());
    }
    println!(
        "  push + count {} messages: {} ({} tokens)",
        history.len(),
        ms(started.elapsed()),
        history.total_tokens()
    );

    // A budget the history exceeds by half (dedupe is enough), and a tight
    // one (every strategy runs).
    let snapshot = history.to_vec();
    for (label, max_tokens) in [
        ("budget 2/3 of the history", history.total_tokens() * 2 / 3),
        ("budget 1/20 of the history", history.total_tokens() / 20),
    ] {
        let config = CompactionConfig {
            enabled: true,
            max_tokens,
            tokenizer: mode,
            ..CompactionConfig::default()
        };
        let compactor = match Compactor::with_counter(config.clone(), counter.clone()) {
            Ok(c) => c,
            Err(e) => panic!("bench config: {e}"),
        };
        println!("  {label}:");
        let warm = compactor.compact(&snapshot).await;
        print_result("compact, warm cache", &warm);

        // The same with an empty cache: every message is counted again.
        let cold_compactor = match Compactor::new(config) {
            Ok(c) => c,
            Err(e) => panic!("bench config: {e}"),
        };
        let cold = cold_compactor.compact(&snapshot).await;
        print_result("compact, cold cache", &cold);
    }
    println!();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let messages = synthetic_history(n);
    bench(TokenizerMode::Heuristic, &messages).await;
    bench(TokenizerMode::Tokenizer, &messages).await;
}
