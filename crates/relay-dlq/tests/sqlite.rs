//! SQLite specifics: sharing the daemon's database file, adopting an older
//! `dead_letters` table, persistence and schema versions.

mod common;

use std::sync::Arc;

use common::*;
use relay_dlq::{DlqError, DlqQuery, DlqStore, FailureReason, SqliteDlq};
use relay_store::{MessageQuery, Store, StoreConfig, StoredMessage, WriteOp};
use rusqlite::Connection;

fn user_version(path: &std::path::Path) -> Result<i64, TestError> {
    let conn = Connection::open(path)?;
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

#[tokio::test]
async fn shares_the_message_store_file_without_touching_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(".agent-relay").join("messages.sqlite");
    let mut config = StoreConfig::sqlite(&path);
    config.retention = None;
    let store = Store::open(config)?;
    store.write(WriteOp::InsertMessage(StoredMessage::new(
        "msg-1", T0, "alice", "bob", "hello",
    )))?;
    store.flush().await?;
    let store_version = user_version(&path)?;

    let dlq = SqliteDlq::open(&path)?;
    assert_eq!(dlq.schema_version().await?, 1);
    let letter = dlq
        .add(
            letter("msg-1", "alice", "bob", FailureReason::ConnectionLost),
            T0,
            None,
        )
        .await?;
    // Both write concurrently through their own connections.
    store.write(WriteOp::InsertMessage(StoredMessage::new(
        "msg-2",
        T0 + 1,
        "alice",
        "bob",
        "again",
    )))?;
    dlq.add(letter_for(2), T0 + 1, None).await?;
    store.flush().await?;

    assert_eq!(
        user_version(&path)?,
        store_version,
        "user_version belongs to relay-store"
    );
    let messages = store
        .messages(MessageQuery {
            limit: Some(10),
            ..Default::default()
        })
        .await?;
    assert_eq!(messages.len(), 2);
    assert_eq!(dlq.get(&letter.id).await?, Some(letter));
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 2);
    dlq.close().await?;
    tokio::task::spawn_blocking(move || store.close()).await??;

    // Reopening both finds everything where it was.
    let dlq = SqliteDlq::open(&path)?;
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 2);
    assert_eq!(dlq.schema_version().await?, 1);
    dlq.close().await?;
    let mut config = StoreConfig::sqlite(&path);
    config.retention = None;
    let store = Store::open(config)?;
    assert_eq!(store.pending_for("bob").await?.len(), 2);
    tokio::task::spawn_blocking(move || store.close()).await??;
    Ok(())
}

fn letter_for(i: usize) -> relay_dlq::NewDeadLetter {
    letter(
        &format!("msg-{i}"),
        "alice",
        "bob",
        FailureReason::TtlExpired,
    )
}

#[tokio::test]
async fn letters_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dlq.sqlite");
    let dlq = SqliteDlq::open(&path)?;
    let stored = dlq.add(full_letter("m-1", "bob"), T0, Some(T0 + 5)).await?;
    dlq.close().await?;
    drop(dlq);
    let dlq = SqliteDlq::open(&path)?;
    assert_eq!(dlq.get(&stored.id).await?, Some(stored));
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn adopts_an_older_dead_letters_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("messages.sqlite");
    {
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "CREATE TABLE dead_letters (
                id TEXT PRIMARY KEY, message_id TEXT NOT NULL, from_agent TEXT NOT NULL,
                to_agent TEXT NOT NULL, topic TEXT, kind TEXT NOT NULL, body TEXT NOT NULL,
                data TEXT, thread TEXT, original_ts INTEGER NOT NULL, dlq_ts INTEGER NOT NULL,
                reason TEXT NOT NULL, error_message TEXT, attempt_count INTEGER NOT NULL,
                last_attempt_ts INTEGER, dlq_retry_count INTEGER NOT NULL DEFAULT 0,
                acknowledged INTEGER NOT NULL DEFAULT 0, acknowledged_ts INTEGER,
                acknowledged_by TEXT);
             INSERT INTO dead_letters VALUES ('dlq_old1', 'm-1', 'alice', 'bob', NULL,
                'message', 'first', '{\"a\":1}', NULL, 1, 100, 'ttl_expired', NULL, 3, NULL,
                0, 0, NULL, NULL);
             INSERT INTO dead_letters VALUES ('dlq_old2', 'm-1', 'alice', 'bob', NULL,
                'message', 'second', NULL, NULL, 1, 200, 'some_future_reason', 'x', 4, NULL,
                1, 1, 250, 'ops');
             INSERT INTO dead_letters VALUES ('dlq_old3', 'm-2', 'alice', 'carol', 't',
                'message', 'third', NULL, 'th', 2, 300, 'connection_lost', NULL, 1, NULL,
                0, 0, NULL, NULL);",
        )?;
    }
    let dlq: Arc<dyn DlqStore> = Arc::new(SqliteDlq::open(&path)?);
    // The duplicate (m-1, bob) pair keeps its newest row.
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 2);
    assert_eq!(dlq.get("dlq_old1").await?, None);
    let kept = dlq.get("dlq_old2").await?.ok_or("dlq_old2 missing")?;
    assert_eq!(kept.reason, FailureReason::Unknown);
    assert_eq!(kept.msg_type, "SEND");
    assert!(kept.acknowledged);
    assert_eq!(kept.acknowledged_by.as_deref(), Some("ops"));
    assert_eq!(kept.state, relay_dlq::DlqState::Pending);
    let stats = dlq.stats().await?;
    assert_eq!(stats.by_reason.len(), 8);
    assert_eq!(stats.by_reason["unknown"], 1);
    // And the upsert works on the adopted table.
    let again = dlq
        .add(
            letter("m-2", "alice", "carol", FailureReason::RateLimited),
            400,
            None,
        )
        .await?;
    assert_eq!(again.id, "dlq_old3");
    assert_eq!(again.thread.as_deref(), Some("th"));
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn refuses_unrelated_dead_letters_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("messages.sqlite");
    Connection::open(&path)?
        .execute_batch("CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, payload TEXT)")?;
    match SqliteDlq::open(&path) {
        Err(DlqError::Migration(msg)) => assert!(msg.contains("message_id"), "{msg}"),
        other => panic!("expected a migration error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn refuses_a_newer_schema() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("messages.sqlite");
    SqliteDlq::open(&path)?.close().await?;
    Connection::open(&path)?.execute(
        "INSERT INTO dlq_schema_version (version, description, applied_at) VALUES (99, 'x', 0)",
        [],
    )?;
    match SqliteDlq::open(&path) {
        Err(DlqError::Migration(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected a migration error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn corrupt_json_is_an_error_not_a_panic() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("messages.sqlite");
    let dlq = SqliteDlq::open(&path)?;
    let stored = dlq.add(full_letter("m-1", "bob"), T0, None).await?;
    Connection::open(&path)?.execute(
        "UPDATE dead_letters SET data = '{not json' WHERE id = ?1",
        [&stored.id],
    )?;
    assert!(dlq.get(&stored.id).await.is_err());
    Connection::open(&path)?.execute(
        "UPDATE dead_letters SET data = NULL, state = 'bogus' WHERE id = ?1",
        [&stored.id],
    )?;
    assert!(dlq.query(&DlqQuery::all()).await.is_err());
    dlq.close().await?;
    Ok(())
}

#[tokio::test]
async fn empty_path_is_a_config_error() {
    assert!(matches!(SqliteDlq::open(""), Err(DlqError::Config(_))));
}

#[tokio::test]
async fn concurrent_callers_share_the_worker() -> TestResult {
    let dir = tempfile::tempdir()?;
    let dlq: Arc<dyn DlqStore> = Arc::new(SqliteDlq::open(dir.path().join("m.sqlite"))?);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let dlq = dlq.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                dlq.add(
                    letter(
                        &format!("m-{t}-{i}"),
                        "alice",
                        "bob",
                        FailureReason::Unknown,
                    ),
                    T0 + i,
                    None,
                )
                .await?;
            }
            Ok::<_, DlqError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    assert_eq!(dlq.count(&DlqQuery::all()).await?, 200);
    dlq.close().await?;
    Ok(())
}
