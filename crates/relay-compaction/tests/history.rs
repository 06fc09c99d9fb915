//! AgentHistory: running totals, the bound, and applying a compaction.

mod common;

use common::{compactor, config, filler, msg, system, total};
use relay_compaction::{
    AgentHistory, CompactionOutcome, HistoryMessage, MessageRole, Strategy, TokenCounter,
    TokenizerMode,
};

fn heuristic() -> TokenCounter {
    TokenCounter::new(TokenizerMode::Heuristic)
}

#[test]
fn running_total_matches_the_messages() {
    let mut history = AgentHistory::new("Backend", heuristic());
    assert!(history.is_empty());
    for i in 0..50 {
        history.push(msg(i, "Lead", &filler(i, 5)));
    }
    let messages = history.to_vec();
    assert_eq!(history.len(), 50);
    assert_eq!(history.total_tokens(), total(&messages));
    assert!(messages.iter().all(|m| m.tokens > 0));
    assert_eq!(history.agent(), "Backend");
    assert_eq!(history.max_entries(), 10_000);
}

#[test]
fn caller_token_counts_are_replaced() {
    let mut history = AgentHistory::new("A", heuristic());
    let mut m = msg(0, "Lead", "hello there");
    m.tokens = 9_999;
    history.push(m);
    assert!(history.total_tokens() < 100);
}

#[test]
fn bound_drops_the_oldest_normal_message_and_counts_it() {
    let mut history = AgentHistory::with_max_entries("A", heuristic(), 3);
    history.push(system(0, "rules"));
    history.push(msg(1, "Lead", "one"));
    history.push(msg(2, "Lead", "two"));
    let dropped = history.push(msg(3, "Lead", "three"));
    assert_eq!(dropped.map(|m| m.id), Some("m1".to_owned()));
    let ids: Vec<String> = history.messages().map(|m| m.id.clone()).collect();
    assert_eq!(ids, ["m0", "m2", "m3"]);
    assert_eq!(history.dropped(), 1);
    assert_eq!(history.total_tokens(), total(&history.to_vec()));

    // Only protected messages left: the bound still holds.
    let mut all_system = AgentHistory::with_max_entries("A", heuristic(), 2);
    for i in 0..5 {
        all_system.push(msg(i, "Lead", "rule").with_role(MessageRole::System));
    }
    assert_eq!(all_system.len(), 2);
    assert_eq!(all_system.dropped(), 3);
}

#[test]
fn default_bound_is_ten_thousand() {
    let mut history = AgentHistory::new("A", heuristic());
    for i in 0..10_050 {
        history.push(msg(i, "Lead", "x"));
    }
    assert_eq!(history.len(), 10_000);
    assert_eq!(history.dropped(), 50);
    assert_eq!(
        history.messages().next().map(|m| m.id.as_str()),
        Some("m50")
    );
}

#[tokio::test]
async fn replace_compacted_keeps_messages_pushed_meanwhile() {
    let c = compactor(config(2_000, 3, &Strategy::ALL));
    let mut history = c.new_history("Backend");
    for i in 0..300 {
        history.push(msg(i, "Lead", &filler(i, 8)));
    }
    assert!(c.needs_compaction(&history));
    let mark = history.mark();
    let snapshot = history.to_vec();
    // Messages arrive while the compaction runs.
    history.push(msg(300, "Lead", "arrived during compaction"));
    history.push(msg(301, "Lead", "and another one"));
    let result = c.compact(&snapshot).await;
    assert_eq!(result.outcome, CompactionOutcome::Reached);
    let kept = result.messages.len();
    history.replace_compacted(mark, result.messages);
    assert_eq!(history.len(), kept + 2);
    let last: Vec<String> = history
        .messages()
        .rev()
        .take(2)
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(last, ["m301", "m300"]);
    assert_eq!(history.total_tokens(), total(&history.to_vec()));
    assert!(!c.needs_compaction(&history));
}

#[test]
fn messages_deserialise_with_defaults() {
    let m: HistoryMessage = serde_json::from_str(
        r#"{"id":"m1","from":"Lead","to":"Backend","body":"hi","timestamp_ms":5}"#,
    )
    .expect("minimal message");
    assert_eq!(m.kind, "message");
    assert_eq!(m.role, MessageRole::Normal);
    assert_eq!(
        (m.thread, m.channel, m.importance, m.tokens),
        (None, None, None, 0)
    );
    let s: HistoryMessage = serde_json::from_str(
        r#"{"id":"s","from":"relay","to":"*","body":"x","timestamp_ms":5,"role":"summary"}"#,
    )
    .expect("summary message");
    assert_eq!(s.role, MessageRole::Summary);
}

#[tokio::test]
async fn compaction_can_run_in_a_spawned_task() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<relay_compaction::Compactor>();
    send_sync::<TokenCounter>();
    send_sync::<AgentHistory>();
    send_sync::<relay_compaction::CompactionResult>();

    let c = std::sync::Arc::new(compactor(config(2_000, 3, &Strategy::ALL)));
    let messages: Vec<HistoryMessage> = (0..300).map(|i| msg(i, "Lead", &filler(i, 8))).collect();
    let task = tokio::spawn({
        let c = c.clone();
        async move { c.compact(&messages).await }
    });
    let result = task.await.expect("the compaction task");
    assert_eq!(result.outcome, CompactionOutcome::Reached);
}
