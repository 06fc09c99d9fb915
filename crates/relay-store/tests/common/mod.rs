//! Fixtures shared by the integration tests.
#![allow(dead_code, unused_macros)]

/// Generates one `#[tokio::test]` per backend for each listed scenario (a scenario is an
/// `async fn(Fixture) -> TestResult` in the including file).
macro_rules! suite {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    super::$scenario(super::sqlite_fixture()?).await
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() -> super::TestResult {
                    super::$scenario(super::memory_fixture()?).await
                }
            )*
        }
    };
}

use relay_store::{
    AgentRecord, MessageStatus, SessionRecord, Store, StoreConfig, StoreError, StoreHandle,
    StoredMessage,
};
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An open store plus whatever keeps its files alive.
pub struct Fixture {
    pub store: StoreHandle,
    pub dir: Option<TempDir>,
}

/// Configuration used by the behavioural suite: retention disabled so tests
/// control cleanup explicitly.
pub fn quiet(mut config: StoreConfig) -> StoreConfig {
    config.retention = None;
    config
}

pub fn sqlite_fixture() -> Result<Fixture, StoreError> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(quiet(StoreConfig::sqlite(dir.path().join("relay.db"))))?;
    Ok(Fixture {
        store,
        dir: Some(dir),
    })
}

pub fn memory_fixture() -> Result<Fixture, StoreError> {
    let store = Store::open(quiet(StoreConfig::memory()))?;
    Ok(Fixture { store, dir: None })
}

pub fn msg(id: &str, ts: i64, from: &str, to: &str) -> StoredMessage {
    StoredMessage::new(id, ts, from, to, format!("body of {id}"))
}

pub fn with_status(mut m: StoredMessage, status: MessageStatus) -> StoredMessage {
    m.status = status;
    m
}

/// A message with every optional field filled in.
pub fn full_message(id: &str) -> StoredMessage {
    StoredMessage {
        id: id.to_string(),
        ts: 1_700_000_000_123,
        from: "alice".into(),
        to: "bob".into(),
        topic: Some("build".into()),
        kind: "action".into(),
        body: "run the tests \u{1F680} 'quoted' \"double\"".into(),
        data: Some(serde_json::json!({"step": 3, "nested": {"ok": true}})),
        payload_meta: Some(serde_json::json!({"importance": 80, "replyTo": "m-0"})),
        payload_extra: Some(serde_json::json!({"mentions": ["bob"], "attachments": []})),
        thread: Some("thread-9".into()),
        delivery_seq: Some(42),
        delivery_session_id: Some("sess-bob".into()),
        session_id: Some("sess-alice".into()),
        status: MessageStatus::Read,
        is_urgent: true,
        is_broadcast: true,
        original_to: Some("*".into()),
        source_id: Some("env-77".into()),
        sig: relay_store::SignatureJson::from_text(
            r#"{"alg":"ed25519","sig":"abc=="}"#.to_string(),
        ),
        attempts: 2,
        last_error: Some("timeout".into()),
    }
}

pub fn session(id: &str, agent: &str, started_at: i64, token: Option<&str>) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        agent_name: agent.into(),
        cli: Some("claude".into()),
        started_at,
        ended_at: None,
        resume_token: token.map(str::to_string),
        closed_by: None,
        message_count: 0,
    }
}

pub fn agent(name: &str, first_seen: i64, last_seen: i64) -> AgentRecord {
    AgentRecord {
        name: name.into(),
        entity_type: "agent".into(),
        cli: Some("codex".into()),
        program: Some("codex".into()),
        model: Some("model-x".into()),
        task: Some("review".into()),
        working_directory: Some("/src/project".into()),
        team: Some("core".into()),
        display_name: Some(name.to_uppercase()),
        first_seen,
        last_seen,
        messages_sent: 1,
        messages_received: 2,
    }
}

pub fn ids(rows: &[StoredMessage]) -> Vec<&str> {
    rows.iter().map(|m| m.id.as_str()).collect()
}
