//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use relay_dlq::{
    CleanupReport, DeadLetter, DlqError, DlqQuery, DlqState, DlqStats, DlqStore, FailureReason,
    MemoryDlq, NewDeadLetter, PostgresConfig, PostgresDlq, SqliteDlq,
};
use tempfile::TempDir;

pub type TestError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), TestError>;

/// A base timestamp for the tests (ms).
pub const T0: i64 = 1_700_000_000_000;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> String {
    std::env::var("RELAY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

pub fn services_required() -> bool {
    std::env::var("RELAY_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Whatever must be cleaned up after a test.
pub enum Teardown {
    None,
    Dir(TempDir),
    Schema { url: String, schema: String },
}

/// An open store plus what keeps its resources alive.
pub struct Fixture {
    pub store: Arc<dyn DlqStore>,
    pub teardown: Teardown,
}

impl Fixture {
    pub async fn finish(self) -> TestResult {
        // Closing is part of every backend's contract; do it before dropping.
        self.store.close().await?;
        if let Teardown::Schema { url, schema } = self.teardown {
            drop_schema(&url, &schema).await?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

pub fn memory_fixture() -> Fixture {
    Fixture {
        store: Arc::new(MemoryDlq::new()),
        teardown: Teardown::None,
    }
}

pub fn sqlite_fixture() -> Result<Fixture, TestError> {
    let dir = tempfile::tempdir()?;
    let store = SqliteDlq::open(dir.path().join(".agent-relay").join("messages.sqlite"))?;
    Ok(Fixture {
        store: Arc::new(store),
        teardown: Teardown::Dir(dir),
    })
}

/// A fresh schema name for one test.
pub fn unique_schema() -> String {
    format!("dlq_test_{:016x}", fastrand::u64(..))
}

/// Check that the test server answers. When it does not, print a loud
/// SKIPPED line and return false, or panic when services are required.
pub async fn postgres_available() -> bool {
    let url = postgres_url();
    let attempt = tokio::time::timeout(Duration::from_secs(3), async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        let result = client.simple_query("SELECT 1").await.map(|_| ());
        drop(client);
        let _ = task.await;
        result
    })
    .await;
    let problem = match attempt {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
        Err(_) => "no answer within 3s".to_string(),
    };
    if services_required() {
        panic!("PostgreSQL not reachable at {url} ({problem}) and RELAY_TEST_REQUIRE_SERVICES=1");
    }
    eprintln!(
        "\n==============================================================\n\
         SKIPPED: PostgreSQL not reachable at {url} ({problem})\n\
         set RELAY_TEST_POSTGRES_URL, or RELAY_TEST_REQUIRE_SERVICES=1 to fail instead\n\
         ==============================================================\n"
    );
    false
}

/// A PostgresDlq in a schema of its own, or `None` when skipped.
pub async fn postgres_fixture() -> Result<Option<Fixture>, TestError> {
    if !postgres_available().await {
        return Ok(None);
    }
    let url = postgres_url();
    let schema = unique_schema();
    let store =
        PostgresDlq::connect_with(PostgresConfig::new(&url, 2).with_schema(&schema)).await?;
    Ok(Some(Fixture {
        store: Arc::new(store),
        teardown: Teardown::Schema { url, schema },
    }))
}

pub async fn drop_schema(url: &str, schema: &str) -> TestResult {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    // `schema` comes from `unique_schema` (hex digits only).
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(())
}

pub async fn fixture(backend: Backend) -> Result<Option<Fixture>, TestError> {
    match backend {
        Backend::Memory => Ok(Some(memory_fixture())),
        Backend::Sqlite => sqlite_fixture().map(Some),
        Backend::Postgres => postgres_fixture().await,
    }
}

/// Run `scenario` against a fresh store of `backend`, then tear the store
/// down even when the scenario panicked.
pub async fn run<F, Fut>(backend: Backend, scenario: F) -> TestResult
where
    F: FnOnce(Arc<dyn DlqStore>) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let Some(fixture) = fixture(backend).await? else {
        return Ok(());
    };
    let outcome = tokio::spawn(scenario(fixture.store.clone())).await;
    let cleaned = fixture.finish().await;
    match outcome {
        Ok(result) => {
            result?;
            cleaned
        }
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(join.into()),
    }
}

/// A letter with every optional field filled in, including awkward JSON.
pub fn full_letter(message_id: &str, to: &str) -> NewDeadLetter {
    NewDeadLetter {
        message_id: message_id.to_string(),
        msg_type: "DELIVER".into(),
        from: "alice".into(),
        to: to.to_string(),
        original_to: Some("#build".into()),
        topic: Some("ci".into()),
        kind: "action".into(),
        body: "run the tests \u{1F680} 'quoted' \"double\" \\ back\nnewline".into(),
        data: Some(serde_json::json!({
            "step": 3,
            "nested": {"ok": true, "none": null, "list": [1, "two", 3.5, {"x": []}]},
            "big": 9_007_199_254_740_993_u64,
            "neg": -42,
            "float": 0.1,
            "unicode": "h\u{e9}llo \u{4e16}\u{754c}",
        })),
        payload_meta: Some(serde_json::json!({"importance": 80, "replyTo": "m-0"})),
        payload_extra: Some(serde_json::json!({"mentions": ["bob"], "attachments": []})),
        thread: Some("thread-9".into()),
        sig: Some(serde_json::json!({"alg": "ed25519", "sig": "abc=="})),
        original_ts: T0 - 5_000,
        reason: FailureReason::SignatureInvalid,
        error_message: Some("bad signature: 'x'".into()),
        attempt_count: 4,
        ttl_ms: Some(60_000),
    }
}

/// A plain letter.
pub fn letter(message_id: &str, from: &str, to: &str, reason: FailureReason) -> NewDeadLetter {
    NewDeadLetter::new(
        message_id,
        from,
        to,
        format!("body of {message_id}"),
        T0 - 1_000,
        reason,
    )
}

/// A stored record with a chosen id, for `import`.
pub fn record(id: &str, message_id: &str, to: &str, dlq_ts: i64) -> DeadLetter {
    let mut l = DeadLetter::from_new(
        letter(message_id, "alice", to, FailureReason::Unknown),
        dlq_ts,
        None,
    );
    l.id = id.to_string();
    l
}

pub fn ids(letters: &[DeadLetter]) -> Vec<String> {
    letters.iter().map(|l| l.id.clone()).collect()
}

pub fn message_ids(letters: &[DeadLetter]) -> Vec<String> {
    letters.iter().map(|l| l.message_id.clone()).collect()
}

/// A store that fails every call with `Unavailable` while `failing` is set.
pub struct FlakyStore {
    pub inner: Arc<dyn DlqStore>,
    pub failing: AtomicBool,
}

impl FlakyStore {
    pub fn new(inner: Arc<dyn DlqStore>) -> Arc<FlakyStore> {
        Arc::new(FlakyStore {
            inner,
            failing: AtomicBool::new(false),
        })
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), DlqError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(DlqError::Unavailable("simulated outage".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl DlqStore for FlakyStore {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    async fn add(
        &self,
        letter: NewDeadLetter,
        now: i64,
        next_retry_at: Option<i64>,
    ) -> Result<DeadLetter, DlqError> {
        self.check()?;
        self.inner.add(letter, now, next_retry_at).await
    }
    async fn import(&self, letter: DeadLetter) -> Result<DeadLetter, DlqError> {
        self.check()?;
        self.inner.import(letter).await
    }
    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, DlqError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn query(&self, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError> {
        self.check()?;
        self.inner.query(q).await
    }
    async fn count(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        self.check()?;
        self.inner.count(q).await
    }
    async fn acknowledge(&self, ids: &[String], by: &str, now: i64) -> Result<u64, DlqError> {
        self.check()?;
        self.inner.acknowledge(ids, by, now).await
    }
    async fn set_state(
        &self,
        id: &str,
        state: DlqState,
        next_retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, DlqError> {
        self.check()?;
        self.inner.set_state(id, state, next_retry_at, now).await
    }
    async fn due_for_retry(
        &self,
        now: i64,
        max_retries: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        self.check()?;
        self.inner.due_for_retry(now, max_retries, limit).await
    }
    async fn pending_for_target(&self, to: &str) -> Result<Vec<DeadLetter>, DlqError> {
        self.check()?;
        self.inner.pending_for_target(to).await
    }
    async fn purge(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        self.check()?;
        self.inner.purge(q).await
    }
    async fn stats(&self) -> Result<DlqStats, DlqError> {
        self.check()?;
        self.inner.stats().await
    }
    async fn cleanup(
        &self,
        now: i64,
        retention_ms: Option<i64>,
        max_entries: Option<u64>,
    ) -> Result<CleanupReport, DlqError> {
        self.check()?;
        self.inner.cleanup(now, retention_ms, max_entries).await
    }
    async fn close(&self) -> Result<(), DlqError> {
        self.inner.close().await
    }
}
