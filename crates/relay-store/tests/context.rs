//! Context snapshots and conversation queries, run against every backend, plus the snapshot's
//! survival across a reopen of the SQLite file.

#[macro_use]
mod common;

use common::*;
use relay_store::{ContextSnapshot, Store, StoreConfig, WriteOp};

suite!(
    snapshot_put_replace_and_get,
    snapshot_goes_with_its_agent,
    conversation_selects_sent_received_and_channels,
);

fn snapshot(agent: &str, id: &str, created_at: i64) -> ContextSnapshot {
    ContextSnapshot {
        agent: agent.into(),
        id: id.into(),
        created_at,
        content: format!("# Relay context for {agent}\n\n[00:00:01] A → {agent}: hi 🌍\n"),
        tokens: 420,
        original_tokens: 1700,
        target_tokens: 1000,
        message_count: 6,
        outcome: "reached".into(),
        report: serde_json::json!({"outcome": "reached", "steps": [{"strategy": "summarize"}]}),
        messages: serde_json::json!([{"id": "m1", "from": "A", "to": agent, "body": "hi"}]),
        covered_until: created_at - 5,
    }
}

async fn snapshot_put_replace_and_get(f: Fixture) -> TestResult {
    assert_eq!(f.store.context_snapshot("Backend").await?, None);
    f.store.write(WriteOp::PutContextSnapshot(snapshot(
        "Backend", "ctx-1", 100,
    )))?;
    f.store.write(WriteOp::PutContextSnapshot(snapshot(
        "Frontend", "ctx-2", 150,
    )))?;
    assert_eq!(
        f.store.context_snapshot("Backend").await?,
        Some(snapshot("Backend", "ctx-1", 100))
    );
    f.store.write(WriteOp::PutContextSnapshot(snapshot(
        "Backend", "ctx-3", 200,
    )))?;
    let latest = f.store.context_snapshot("Backend").await?;
    assert_eq!(
        latest,
        Some(snapshot("Backend", "ctx-3", 200)),
        "one snapshot per agent: the latest replaces the previous"
    );
    assert_eq!(
        f.store.context_snapshot("Frontend").await?.map(|s| s.id),
        Some("ctx-2".to_string())
    );
    Ok(())
}

async fn snapshot_goes_with_its_agent(f: Fixture) -> TestResult {
    f.store
        .write(WriteOp::PutContextSnapshot(snapshot("Gone", "ctx-1", 100)))?;
    f.store.write(WriteOp::RemoveAgent {
        name: "Gone".into(),
        remove_messages: false,
        replayable: relay_store::SignatureHorizon {
            since: 0,
            max_skew_ms: 0,
        },
    })?;
    assert_eq!(f.store.context_snapshot("Gone").await?, None);
    Ok(())
}

async fn conversation_selects_sent_received_and_channels(f: Fixture) -> TestResult {
    let rows = [
        msg("1", 10, "A", "B"),
        msg("2", 20, "B", "A"),
        msg("3", 30, "C", "D"),
        msg("4", 40, "C", "#eng"),
        msg("5", 50, "A", "#eng"),
        msg("6", 60, "D", "#ops"),
        msg("7", 70, "C", "A"),
    ];
    for m in rows {
        f.store.write(WriteOp::InsertMessage(m))?;
    }
    let ids =
        |rows: Vec<relay_store::StoredMessage>| rows.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(f
            .store
            .conversation("A", vec!["#eng".into()], None, None, 100)
            .await?),
        ["1", "2", "4", "5", "7"],
        "sent, received and the channels it is in, oldest first"
    );
    assert_eq!(
        ids(f.store.conversation("A", vec![], None, None, 100).await?),
        ["1", "2", "5", "7"],
        "its own channel posts count as sent"
    );
    assert_eq!(
        ids(f
            .store
            .conversation("A", vec!["#eng".into()], None, None, 2)
            .await?),
        ["5", "7"],
        "the limit keeps the newest"
    );
    assert_eq!(
        ids(f
            .store
            .conversation("A", vec!["#eng".into()], Some(40), None, 100)
            .await?),
        ["4", "5", "7"]
    );
    assert_eq!(
        ids(f
            .store
            .conversation("A", vec!["#eng".into()], Some(20), Some(50), 100)
            .await?),
        ["2", "4"],
        "since is inclusive, until exclusive"
    );
    assert!(f
        .store
        .conversation("Nobody", vec![], None, None, 10)
        .await?
        .is_empty());
    Ok(())
}

#[tokio::test]
async fn snapshot_survives_reopening_the_database() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.db");
    let store = Store::open(quiet(StoreConfig::sqlite(&path)))?;
    store.write(WriteOp::PutContextSnapshot(snapshot(
        "Backend", "ctx-9", 900,
    )))?;
    store.flush().await?;
    tokio::task::spawn_blocking(move || store.close()).await??;

    let store = Store::open(quiet(StoreConfig::sqlite(&path)))?;
    assert_eq!(
        store.context_snapshot("Backend").await?,
        Some(snapshot("Backend", "ctx-9", 900))
    );
    tokio::task::spawn_blocking(move || store.close()).await??;
    Ok(())
}
