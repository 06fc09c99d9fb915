//! SQLite-specific behaviour: durability, schema migration, file layout.

mod common;

use std::time::Duration;

use common::*;
use relay_store::{
    migrations, now_ms, ChannelMembership, MessageQuery, MessageStatus, Order, OwedBroadcast,
    Store, StoreConfig, StoreError, WriteOp,
};
use rusqlite::{params, Connection};

/// The layout written by the original TypeScript relay.
const ORIGINAL_SCHEMA: &str = "
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    topic TEXT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT,
    payload_meta TEXT,
    thread TEXT,
    delivery_seq INTEGER,
    delivery_session_id TEXT,
    session_id TEXT,
    status TEXT NOT NULL DEFAULT 'unread',
    is_urgent INTEGER NOT NULL DEFAULT 0,
    is_broadcast INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_messages_ts ON messages (ts);
CREATE INDEX idx_messages_sender ON messages (sender);
CREATE INDEX idx_messages_recipient ON messages (recipient);
CREATE INDEX idx_messages_topic ON messages (topic);
CREATE INDEX idx_messages_thread ON messages (thread);
CREATE INDEX idx_messages_status ON messages (status);
CREATE INDEX idx_messages_is_urgent ON messages (is_urgent);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    agent_name TEXT NOT NULL,
    cli TEXT,
    project_id TEXT,
    project_root TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    message_count INTEGER DEFAULT 0,
    summary TEXT,
    resume_token TEXT,
    closed_by TEXT
);
CREATE INDEX idx_sessions_agent_name ON sessions (agent_name);
CREATE TABLE agent_summaries (
    agent_name TEXT PRIMARY KEY,
    last_updated INTEGER NOT NULL,
    summary TEXT
);
";

fn sqlite_config(path: &std::path::Path) -> StoreConfig {
    quiet(StoreConfig::sqlite(path))
}

#[tokio::test]
async fn data_survives_close_and_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.db");

    let store = Store::open(sqlite_config(&path))?;
    assert_eq!(store.backend_name(), "sqlite");
    assert!(store.persistent());
    store.write(WriteOp::InsertMessage(full_message("full")))?;
    store.write(WriteOp::InsertMessage(msg("plain", 7, "a", "b")))?;
    store.write(WriteOp::StartSession(session("s1", "bob", 3, Some("tok"))))?;
    store.write(WriteOp::UpsertAgent(agent("bob", 1, 2)))?;
    store.write(WriteOp::JoinChannel(ChannelMembership {
        channel: "#general".into(),
        member: "Bob".into(),
        joined_at: 4,
    }))?;
    let owed = OwedBroadcast {
        sender: "alice".into(),
        id: "b-1".into(),
        recipients: vec!["bob".into(), "carol".into()],
        updated_at: 5,
    };
    store.write(WriteOp::SetOwed(owed.clone()))?;
    let before = store.stats().await?;
    tokio::task::spawn_blocking(move || store.close()).await??;

    let store = Store::open(sqlite_config(&path))?;
    assert_eq!(store.stats().await?, before);
    assert_eq!(
        store.message_by_id_prefix("full").await?,
        Some(full_message("full"))
    );
    assert_eq!(
        store.session_by_resume_token("tok").await?,
        Some(session("s1", "bob", 3, Some("tok")))
    );
    assert_eq!(store.agents().await?, vec![agent("bob", 1, 2)]);
    assert_eq!(store.channel_memberships().await?.len(), 1);
    assert_eq!(store.owed_broadcasts(0).await?, vec![owed]);
    // Re-joining with another letter case after a restart stays idempotent.
    store.write(WriteOp::JoinChannel(ChannelMembership {
        channel: "#general".into(),
        member: "BOB".into(),
        joined_at: 9,
    }))?;
    assert_eq!(store.channel_memberships().await?[0].member, "Bob");
    store.close()?;
    Ok(())
}

#[tokio::test]
async fn dropping_the_last_handle_commits_queued_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.db");
    let store = Store::open(sqlite_config(&path))?;
    let clone = store.clone();
    for i in 0..1000 {
        store.write(WriteOp::InsertMessage(msg(&format!("m{i}"), i, "a", "b")))?;
    }
    drop(store);
    clone.write(WriteOp::InsertMessage(msg("last", 5000, "a", "b")))?;
    drop(clone);

    let store = Store::open(sqlite_config(&path))?;
    assert_eq!(store.stats().await?.message_count, 1001);
    Ok(())
}

#[tokio::test]
async fn other_readers_see_the_original_column_names() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.db");
    let store = Store::open(sqlite_config(&path))?;
    store.write(WriteOp::InsertMessage(full_message("m1")))?;
    store.flush().await?;

    // A second connection (e.g. an inspection tool) reads while the store is open.
    let conn = Connection::open(&path)?;
    let (sender, recipient, status, data): (String, String, String, String) = conn.query_row(
        "SELECT sender, recipient, status, data FROM messages WHERE id = 'm1'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    assert_eq!((sender.as_str(), recipient.as_str()), ("alice", "bob"));
    assert_eq!(status, "read");
    let data: serde_json::Value = serde_json::from_str(&data)?;
    assert_eq!(data["step"], 3);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    store.close()?;
    Ok(())
}

#[tokio::test]
async fn adopts_a_database_written_by_the_original_relay() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("messages.sqlite");
    let ts = 1_700_000_000_000i64;
    {
        let conn = Connection::open(&path)?;
        conn.execute_batch(ORIGINAL_SCHEMA)?;
        let insert = "INSERT INTO messages (id, ts, sender, recipient, topic, kind, body, data, \
            payload_meta, thread, delivery_seq, delivery_session_id, session_id, status, \
            is_urgent, is_broadcast) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
            ?13, ?14, ?15, ?16)";
        conn.execute(
            insert,
            params![
                "legacy-1",
                ts,
                "alice",
                "bob",
                "deploy",
                "message",
                "hello bob",
                r#"{"k":1}"#,
                r#"{"importance":90}"#,
                "th-1",
                3,
                "sess-bob",
                "sess-alice",
                "unread",
                1,
                0
            ],
        )?;
        conn.execute(
            insert,
            params![
                "legacy-2",
                ts + 1,
                "bob",
                "alice",
                None::<String>,
                "state",
                "done",
                None::<String>,
                None::<String>,
                None::<String>,
                None::<i64>,
                None::<String>,
                None::<String>,
                "acked",
                0,
                1
            ],
        )?;
        conn.execute(
            "INSERT INTO sessions (id, agent_name, cli, project_id, project_root, started_at, \
             ended_at, message_count, summary, resume_token, closed_by) \
             VALUES ('sess-bob', 'bob', 'claude', 'p1', '/p', ?1, NULL, 12, 'sum', 'tok-bob', NULL)",
            [ts - 10],
        )?;
        conn.execute(
            "INSERT INTO agent_summaries (agent_name, last_updated, summary) VALUES ('bob', 1, 's')",
            [],
        )?;
    }

    let store = Store::open(sqlite_config(&path))?;
    let m = store
        .message_by_id_prefix("legacy-1")
        .await?
        .ok_or("legacy-1 missing")?;
    assert_eq!(m.from, "alice");
    assert_eq!(m.to, "bob");
    assert_eq!(m.topic.as_deref(), Some("deploy"));
    assert_eq!(m.data, Some(serde_json::json!({"k": 1})));
    assert_eq!(m.payload_meta, Some(serde_json::json!({"importance": 90})));
    assert_eq!(m.thread.as_deref(), Some("th-1"));
    assert_eq!(m.delivery_seq, Some(3));
    assert_eq!(m.status, MessageStatus::Unread);
    assert!(m.is_urgent && !m.is_broadcast);
    assert_eq!((m.attempts, m.payload_extra, m.sig), (0, None, None));

    assert_eq!(ids(&store.pending_for("bob").await?), ["legacy-1"]);
    let all = store
        .messages(MessageQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .await?;
    assert_eq!(ids(&all), ["legacy-1", "legacy-2"]);
    assert_eq!(all[1].status, MessageStatus::Acked);
    assert!(all[1].is_broadcast);

    let s = store
        .session_by_resume_token("tok-bob")
        .await?
        .ok_or("legacy session missing")?;
    assert_eq!((s.agent_name.as_str(), s.message_count), ("bob", 12));
    assert_eq!(
        store.max_seq_by_session("sess-bob").await?,
        vec![("alice".to_string(), Some("deploy".to_string()), 3)]
    );

    // New rows land in the same layout.
    let mut fresh = full_message("new-1");
    fresh.ts = ts + 5;
    store.write(WriteOp::InsertMessage(fresh.clone()))?;
    store.write(WriteOp::StartSession(session(
        "sess-bob",
        "bob",
        0,
        Some("tok-2"),
    )))?;
    assert_eq!(store.message_by_id_prefix("new-1").await?, Some(fresh));
    store.close()?;

    let conn = Connection::open(&path)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, migrations::latest_version());
    let (sender, attempts, project): (String, i64, Option<String>) = conn.query_row(
        "SELECT m.sender, m.attempts, s.project_id FROM messages m, sessions s \
         WHERE m.id = 'new-1' AND s.id = 'sess-bob'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    assert_eq!((sender.as_str(), attempts), ("alice", 2));
    assert_eq!(
        project.as_deref(),
        Some("p1"),
        "unknown legacy columns are kept"
    );
    let summaries: i64 =
        conn.query_row("SELECT count(*) FROM agent_summaries", [], |r| r.get(0))?;
    assert_eq!(summaries, 1, "unrelated legacy tables are untouched");
    drop(conn);

    // Opening again is a no-op migration.
    let store = Store::open(sqlite_config(&path))?;
    assert_eq!(store.stats().await?.message_count, 3);
    store.close()?;
    Ok(())
}

#[tokio::test]
async fn adopts_the_oldest_original_layout() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.sqlite");
    {
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "CREATE TABLE messages (
                id TEXT PRIMARY KEY, ts INTEGER NOT NULL, sender TEXT NOT NULL,
                recipient TEXT NOT NULL, topic TEXT, kind TEXT NOT NULL, body TEXT NOT NULL,
                data TEXT, delivery_seq INTEGER, delivery_session_id TEXT, session_id TEXT);
             INSERT INTO messages (id, ts, sender, recipient, kind, body)
                VALUES ('old-1', 10, 'a', 'b', 'message', 'hi');",
        )?;
    }
    let store = Store::open(sqlite_config(&path))?;
    let m = store
        .message_by_id_prefix("old")
        .await?
        .ok_or("old-1 missing")?;
    assert_eq!(m.status, MessageStatus::Unread);
    assert!(!m.is_urgent && !m.is_broadcast);
    assert_eq!(store.pending_for("b").await?.len(), 1);
    store.write(WriteOp::StartSession(session("s", "a", 1, Some("t"))))?;
    assert!(store.session_by_resume_token("t").await?.is_some());
    store.close()?;
    Ok(())
}

#[test]
fn refuses_a_newer_schema() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("future.db");
    {
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "user_version", migrations::latest_version() + 1)?;
    }
    match Store::open(sqlite_config(&path)) {
        Err(StoreError::Migration(_)) => Ok(()),
        other => Err(format!("expected a migration error, got {other:?}").into()),
    }
}

#[tokio::test]
async fn retention_runs_when_the_store_opens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.db");
    let now = now_ms();
    let day = 24 * 60 * 60 * 1000;
    let store = Store::open(sqlite_config(&path))?;
    for (id, ts, to, status) in [
        ("old-acked", now - 10 * day, "bob", MessageStatus::Acked),
        ("old-channel", now - 10 * day, "#dev", MessageStatus::Acked),
        ("old-unread", now - 10 * day, "bob", MessageStatus::Unread),
        ("recent-acked", now - day, "bob", MessageStatus::Acked),
    ] {
        store.write(WriteOp::InsertMessage(with_status(
            msg(id, ts, "a", to),
            status,
        )))?;
    }
    store.close()?;

    let mut config = StoreConfig::sqlite(&path);
    config.retention = Some(Duration::from_secs(7 * 24 * 60 * 60));
    let store = Store::open(config)?;
    let rest = store
        .messages(MessageQuery {
            include_channel: true,
            order: Order::Asc,
            ..Default::default()
        })
        .await?;
    assert_eq!(ids(&rest), ["old-unread", "recent-acked"]);
    assert_eq!(store.metrics().cleanup_deleted, 2);
    store.close()?;
    Ok(())
}

#[test]
fn unusable_path_is_reported_at_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x")?;
    let result = Store::open(sqlite_config(&blocker.join("relay.db")));
    assert!(matches!(result, Err(StoreError::Io(_))), "{result:?}");
    Ok(())
}
