//! The strategies, alone and together, and the honesty of the report.

mod common;

use common::{compactor, config, filler, ids, msg, system, total};
use relay_compaction::{
    CompactionConfig, CompactionOutcome, Compactor, HistoryMessage, MessageRole, Strategy,
    SummarizerUsed, TokenCounter, TokenizerMode,
};

use Strategy::{Aggressive, Deduplicate, Summarize, TrimLowImportance};

fn counter() -> TokenCounter {
    TokenCounter::new(TokenizerMode::Heuristic)
}

/// Counts `messages` with the heuristic and returns the total.
fn count_all(messages: &mut [HistoryMessage]) -> usize {
    let counter = counter();
    messages.iter_mut().map(|m| m.recount(&counter)).sum()
}

/// A config whose threshold is just under `total` and whose target is
/// exactly `target` tokens.
fn exact(
    total: usize,
    target: usize,
    keep_recent: usize,
    strategies: &[Strategy],
) -> CompactionConfig {
    let c = CompactionConfig {
        max_tokens: total,
        threshold: 0.99,
        target_usage: (target as f64 + 0.5) / total as f64,
        ..config(total, keep_recent, strategies)
    };
    assert_eq!(c.target_tokens(), target);
    assert!(c.threshold_tokens() < total);
    c
}

/// Asserts the report's arithmetic: steps chain, counts add up.
fn assert_report_consistent(input: &[HistoryMessage], result: &relay_compaction::CompactionResult) {
    assert_eq!(result.original_messages, input.len());
    assert_eq!(result.final_tokens, total(&result.messages));
    let mut tokens = result.original_tokens;
    let mut len = input.len();
    for step in &result.steps {
        assert_eq!(step.tokens_before, tokens, "{step:?}");
        tokens = step.tokens_after;
        len = len - step.messages_removed + step.messages_added;
    }
    assert_eq!(tokens, result.final_tokens);
    assert_eq!(len, result.messages.len());
    // Chronological order is kept.
    assert!(result
        .messages
        .windows(2)
        .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
}

#[tokio::test]
async fn under_threshold_is_not_needed_and_unchanged() {
    let input: Vec<HistoryMessage> = (0..20).map(|i| msg(i, "A", &filler(i, 10))).collect();
    let c = compactor(config(1_000_000, 5, &Strategy::ALL));
    let result = c.compact(&input).await;
    assert_eq!(result.outcome, CompactionOutcome::NotNeeded);
    assert!(result.steps.is_empty());
    assert_eq!(result.original_tokens, result.final_tokens);
    assert_eq!(
        ids(&result),
        input.iter().map(|m| m.id.as_str()).collect::<Vec<_>>()
    );
    assert!(result.messages.iter().all(|m| m.tokens > 0));
    assert!(result.summarizer_used.is_none());
}

#[tokio::test]
async fn threshold_is_strictly_greater_and_enabled_gates_needs_compaction() {
    let c = compactor(CompactionConfig {
        max_tokens: 1_000,
        threshold: 0.8,
        ..config(1_000, 5, &Strategy::ALL)
    });
    assert!(!c.over_threshold(800));
    assert!(c.over_threshold(801));

    let mut history = c.new_history("Agent");
    for i in 0..200 {
        history.push(msg(i, "A", &filler(i, 10)));
    }
    assert!(c.needs_compaction(&history));
    let disabled = compactor(CompactionConfig {
        enabled: false,
        ..c.config().clone()
    });
    assert!(!disabled.needs_compaction(&history));
}

#[tokio::test]
async fn deduplicate_keeps_the_newest_copy() {
    let mut input = vec![
        msg(0, "Worker", "Status: still migrating, no issues."),
        msg(1, "Worker", &filler(1, 30)),
        msg(2, "Worker", "status - still migrating; no issues"),
        msg(3, "Other", "Status: still migrating, no issues."),
        msg(4, "Worker", &filler(4, 30)),
        msg(5, "Worker", "Status: still migrating, no issues!"),
        msg(6, "Worker", &filler(6, 30)),
    ];
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 2, 1, &[Deduplicate]));
    let result = c.compact(&input).await;
    // m0 and m2 are older copies of m5 (same sender); m3 is another sender.
    assert_eq!(ids(&result), ["m1", "m3", "m4", "m5", "m6"]);
    assert_eq!(result.steps.len(), 1);
    assert_eq!(result.steps[0].strategy, Deduplicate);
    assert_eq!(result.steps[0].messages_removed, 2);
    assert_eq!(result.steps[0].messages_added, 0);
    assert_report_consistent(&input, &result);
    // Dedupe alone cannot reach half of the tokens here: said so.
    assert!(matches!(
        result.outcome,
        CompactionOutcome::CannotReachTarget { .. }
    ));
}

#[tokio::test]
async fn deduplicate_never_touches_protected_or_recent_messages() {
    let mut input = vec![
        system(0, "Rules: be brief."),
        msg(1, "Lead", "Rules: be brief.").with_role(MessageRole::System),
        msg(2, "Lead", &filler(2, 40)),
        msg(3, "Lead", "Please rebase on main."),
        msg(4, "Lead", "Please rebase on main."),
        msg(5, "Lead", "Please rebase on main."),
    ];
    let sum = count_all(&mut input);
    // keep_recent = 2: m4 and m5 are recent; m3 is an older copy of them.
    let c = compactor(exact(sum, sum / 2, 2, &[Deduplicate]));
    let result = c.compact(&input).await;
    assert_eq!(ids(&result), ["m0", "m1", "m2", "m4", "m5"]);
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn deduplicate_handles_a_large_history_without_quadratic_blowup() {
    let mut input: Vec<HistoryMessage> = (0..5_000)
        .map(|i| {
            let from = format!("Worker-{}", i % 5);
            if i % 2 == 0 {
                msg(i, &from, "Status: still migrating, no issues.")
            } else {
                msg(i, &from, &filler(i, 12))
            }
        })
        .collect();
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 2, 10, &[Deduplicate]));
    let started = std::time::Instant::now();
    let result = c.compact(&input).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // One status line per sender survives (the newest); none of the unique
    // messages is removed.
    let status: Vec<&HistoryMessage> = result
        .messages
        .iter()
        .filter(|m| m.body.starts_with("Status"))
        .collect();
    assert!(status.len() <= 5 + 10, "{}", status.len());
    assert_eq!(
        result
            .messages
            .iter()
            .filter(|m| m.body.starts_with('w'))
            .count(),
        2_500
    );
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn trim_removes_only_as_much_as_needed_lowest_then_oldest() {
    // Equal-size bodies; explicit importance decides the order.
    let importances = [50u8, 10, 20, 10, 60, 5, 25, 90];
    let mut input: Vec<HistoryMessage> = importances
        .iter()
        .enumerate()
        .map(|(i, &imp)| msg(i, "A", &filler(i, 20)).with_importance(imp))
        .collect();
    let sum = count_all(&mut input);
    let t = |id: usize| input[id].tokens;
    // Removing m5 (5) and then m1 (10, older than m3) is exactly enough.
    let target = sum - t(5) - t(1);
    let c = compactor(exact(sum, target, 1, &[TrimLowImportance]));
    let result = c.compact(&input).await;
    assert_eq!(ids(&result), ["m0", "m2", "m3", "m4", "m6", "m7"]);
    assert_eq!(result.outcome, CompactionOutcome::Reached);
    assert_eq!(result.steps[0].messages_removed, 2);
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn trim_only_drops_below_min_importance() {
    let mut input: Vec<HistoryMessage> = (0..6)
        .map(|i| msg(i, "A", &filler(i, 20)).with_importance(if i == 2 { 10 } else { 80 }))
        .collect();
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 4, 0, &[TrimLowImportance]));
    let result = c.compact(&input).await;
    assert_eq!(ids(&result), ["m0", "m1", "m3", "m4", "m5"]);
    assert!(matches!(
        result.outcome,
        CompactionOutcome::CannotReachTarget { .. }
    ));
}

#[tokio::test]
async fn summarize_replaces_the_oldest_messages_in_place() {
    let mut input = vec![system(0, "You are Agent. Keep answers short.")];
    input.extend((1..=30).map(|i| {
        msg(
            i,
            if i % 2 == 0 { "Alice" } else { "Bob" },
            &format!(
                "Item {i}: we decided the limit for queue q{i} is {} jobs.",
                i * 10
            ),
        )
    }));
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 2, 5, &[Summarize]));
    let result = c.compact(&input).await;
    assert_eq!(result.outcome, CompactionOutcome::Reached);
    assert_eq!(result.summarizer_used, Some(SummarizerUsed::BuiltIn));
    let step = &result.steps[0];
    assert_eq!(step.strategy, Summarize);
    assert_eq!(step.messages_added, 1);
    assert!(step.messages_removed >= 2);
    // System first, then the summary where the folded messages were, then
    // the rest verbatim; the last 5 are untouched.
    assert_eq!(result.messages[0].id, "m0");
    let summary = &result.messages[1];
    assert_eq!(summary.role, MessageRole::Summary);
    assert_eq!(summary.kind, "summary");
    let folded = step.messages_removed;
    assert_eq!(summary.id, format!("summary-m{folded}"));
    assert_eq!(summary.timestamp_ms, input[folded].timestamp_ms);
    assert!(summary
        .body
        .starts_with(&format!("Summary of {folded} earlier messages")));
    assert!(summary
        .body
        .contains("Bob: Item 1: we decided the limit for queue q1 is 10 jobs."));
    assert_eq!(result.messages[2].id, format!("m{}", folded + 1));
    assert!(ids(&result).ends_with(&["m26", "m27", "m28", "m29", "m30"]));
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn summary_respects_max_summary_tokens() {
    let mut input: Vec<HistoryMessage> = (0..200)
        .map(|i| {
            msg(
                i,
                "Ops",
                &format!("Error: disk {i} failed with code E{i}; replaced it."),
            )
        })
        .collect();
    let sum = count_all(&mut input);
    let mut cfg = exact(sum, sum / 2, 3, &[Summarize]);
    cfg.summarizer.max_summary_tokens = 120;
    let c = compactor(cfg);
    let result = c.compact(&input).await;
    let summary = result.summary().expect("a summary");
    assert!(c.counter().count(&summary.body) <= 120);
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn summarize_folds_an_earlier_summary_but_never_a_system_message() {
    let earlier = HistoryMessage::new(
        "summary-m5",
        "relay",
        "*",
        "Summary of 5 earlier messages, 1970-01-01 00:00:00–00:00:05 UTC, from Lead:\n\
         - Lead: We agreed on port 8443.",
        5_000,
    )
    .with_role(MessageRole::Summary);
    let mut input = vec![system(0, "Rules."), earlier];
    input.extend((6..40).map(|i| msg(i, "Dev", &format!("Step {i} of the rollout is done."))));
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 2, 4, &[Summarize]));
    let result = c.compact(&input).await;
    let summaries: Vec<&HistoryMessage> = result
        .messages
        .iter()
        .filter(|m| m.role == MessageRole::Summary)
        .collect();
    assert_eq!(summaries.len(), 1);
    let body = &summaries[0].body;
    let folded = result.steps[0].messages_removed;
    // The earlier summary's 5 messages count, plus the newly folded ones.
    assert!(body.starts_with(&format!("Summary of {} earlier messages", 5 + folded - 1)));
    assert!(body.contains("We agreed on port 8443."));
    assert_eq!(result.messages[0].role, MessageRole::System);
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn aggressive_drops_the_oldest_until_the_target() {
    let mut input = vec![system(0, "Rules.")];
    input.extend((1..=20).map(|i| msg(i, "A", &filler(i, 20))));
    let sum = count_all(&mut input);
    let t: Vec<usize> = input.iter().map(|m| m.tokens).collect();
    let target = sum - t[1] - t[2] - t[3];
    let c = compactor(exact(sum, target, 3, &[Aggressive]));
    let result = c.compact(&input).await;
    assert_eq!(result.outcome, CompactionOutcome::Reached);
    assert_eq!(result.steps[0].messages_removed, 3);
    assert_eq!(&ids(&result)[..3], ["m0", "m4", "m5"]);
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn keep_recent_zero_protects_nothing_by_recency() {
    // Aggressive may drop everything but protected messages.
    let mut input = vec![system(0, "Rules.")];
    input.extend((1..=10).map(|i| msg(i, "A", &filler(i, 20))));
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, input[0].tokens, 0, &[Aggressive]));
    let result = c.compact(&input).await;
    assert_eq!(ids(&result), ["m0"]);
    assert_eq!(result.outcome, CompactionOutcome::Reached);

    // Summarize runs with keep_recent = 0 (it never did in the original).
    let c = compactor(exact(sum, sum / 2, 0, &[Summarize]));
    let result = c.compact(&input).await;
    assert_eq!(result.steps[0].messages_added, 1);
    assert!(result.summary().is_some());

    // Trim with keep_recent = 0 may drop the newest message too.
    let mut input: Vec<HistoryMessage> = (0..4)
        .map(|i| msg(i, "A", &filler(i, 20)).with_importance(if i == 3 { 1 } else { 90 }))
        .collect();
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum - input[3].tokens, 0, &[TrimLowImportance]));
    let result = c.compact(&input).await;
    assert_eq!(ids(&result), ["m0", "m1", "m2"]);
}

#[tokio::test]
async fn protected_messages_survive_every_dropping_strategy() {
    let summary = HistoryMessage::new("s1", "relay", "*", "Summary of 3 earlier messages:", 500)
        .with_role(MessageRole::Summary)
        .with_importance(0);
    let mut input = vec![
        system(0, "Status: still migrating, no issues.").with_importance(0),
        summary,
    ];
    input.extend(
        (2..12).map(|i| msg(i, "Lead", "Status: still migrating, no issues.").with_importance(0)),
    );
    input.push(system(12, "Status: still migrating, no issues.").with_importance(0));
    let sum = count_all(&mut input);
    let c = compactor(exact(
        sum,
        1,
        0,
        &[Deduplicate, TrimLowImportance, Aggressive],
    ));
    let result = c.compact(&input).await;
    assert_eq!(ids(&result), ["m0", "s1", "m12"]);
    match &result.outcome {
        CompactionOutcome::CannotReachTarget {
            final_tokens,
            target_tokens,
            reason,
        } => {
            assert_eq!(*final_tokens, result.final_tokens);
            assert_eq!(*target_tokens, 1);
            assert!(reason.contains("system/summary"), "{reason}");
        }
        other => panic!("expected CannotReachTarget, got {other:?}"),
    }
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn recent_messages_over_the_target_cannot_reach_it() {
    let mut input: Vec<HistoryMessage> = (0..30).map(|i| msg(i, "A", &filler(i, 50))).collect();
    let sum = count_all(&mut input);
    let recent: usize = input[20..].iter().map(|m| m.tokens).sum();
    let c = compactor(exact(sum, recent / 2, 10, &Strategy::ALL));
    let result = c.compact(&input).await;
    match &result.outcome {
        CompactionOutcome::CannotReachTarget {
            final_tokens,
            target_tokens,
            reason,
        } => {
            assert!(final_tokens > target_tokens);
            assert!(reason.contains("keep_recent = 10"), "{reason}");
        }
        other => panic!("expected CannotReachTarget, got {other:?}"),
    }
    // All 10 recent messages are still there, verbatim.
    for m in &input[20..] {
        assert!(result.messages.contains(m), "{} missing", m.id);
    }
    assert_report_consistent(&input, &result);
}

#[tokio::test]
async fn without_aggressive_the_reason_says_so() {
    let mut input: Vec<HistoryMessage> = (0..30)
        .map(|i| msg(i, "A", &filler(i, 30)).with_importance(90))
        .collect();
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 2, 2, &[Deduplicate, TrimLowImportance]));
    let result = c.compact(&input).await;
    match &result.outcome {
        CompactionOutcome::CannotReachTarget { reason, .. } => {
            assert!(reason.contains("add \"aggressive\""), "{reason}");
        }
        other => panic!("expected CannotReachTarget, got {other:?}"),
    }
    // Both strategies ran and truthfully removed nothing.
    assert_eq!(result.steps.len(), 2);
    assert!(result.steps.iter().all(|s| s.messages_removed == 0));
    assert!(!result.changed());
}

#[tokio::test]
async fn steps_report_the_truth_and_stop_at_the_target() {
    // Duplicates, acknowledgements, real content.
    let mut input = vec![system(0, "You are Agent.")];
    for i in 1..=60 {
        let body = match i % 4 {
            0 => "Status: still working, no blockers.".to_owned(),
            1 => "ok".to_owned(),
            _ => format!(
                "Finding {i}: the cache hit rate is {}% on shard s{i}.",
                50 + i % 40
            ),
        };
        input.push(msg(i, "Dev", &body));
    }
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum * 4 / 10, 5, &Strategy::ALL));
    let result = c.compact(&input).await;
    assert_eq!(result.outcome, CompactionOutcome::Reached);
    assert!(result.final_tokens <= result.target_tokens);
    assert_report_consistent(&input, &result);
    // The first step is dedupe and it removed the repeated status lines.
    assert_eq!(result.steps[0].strategy, Deduplicate);
    assert!(result.steps[0].messages_removed >= 10);
    // Steps after reaching the target did not run; each listed one was
    // needed (the total was above the target when it started).
    for step in &result.steps {
        assert!(step.tokens_before > result.target_tokens, "{step:?}");
    }
    let order: Vec<Strategy> = result.steps.iter().map(|s| s.strategy).collect();
    assert_eq!(order, Strategy::ALL[..order.len()].to_vec());
}

#[tokio::test]
async fn strategy_order_follows_the_config() {
    let mut input: Vec<HistoryMessage> = (0..40).map(|i| msg(i, "A", &filler(i, 20))).collect();
    let sum = count_all(&mut input);
    let c = compactor(exact(sum, sum / 2, 2, &[Aggressive, Summarize]));
    let result = c.compact(&input).await;
    // Aggressive reaches the target alone, so summarize never runs.
    assert_eq!(result.steps.len(), 1);
    assert_eq!(result.steps[0].strategy, Aggressive);
    assert!(result.summarizer_used.is_none());
}

#[tokio::test]
async fn stale_token_counts_from_the_caller_are_ignored() {
    let mut input: Vec<HistoryMessage> = (0..50).map(|i| msg(i, "A", &filler(i, 20))).collect();
    let sum = count_all(&mut input);
    for m in &mut input {
        m.tokens = 1; // stale / wrong
    }
    let c: Compactor = compactor(exact(sum, sum / 2, 5, &[Aggressive]));
    let result = c.compact(&input).await;
    assert_eq!(result.original_tokens, sum);
    assert_eq!(result.outcome, CompactionOutcome::Reached);
}

#[tokio::test]
async fn empty_and_single_message_histories() {
    let c = compactor(config(100, 0, &Strategy::ALL));
    let result = c.compact(&[]).await;
    assert_eq!(result.outcome, CompactionOutcome::NotNeeded);
    assert!(result.messages.is_empty());

    let big = msg(0, "A", &filler(0, 400));
    let result = c.compact(std::slice::from_ref(&big)).await;
    // One huge message with keep_recent 0: summarised into a capped summary.
    assert_eq!(
        result.outcome,
        CompactionOutcome::Reached,
        "{:?}",
        result.steps
    );
    assert!(result.summary().is_some());
}
