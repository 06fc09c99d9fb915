//! SQLite backend: the `dead_letters` table in the daemon's database file.
//!
//! The table lives in the same file as the relay's message store
//! (`.agent-relay/messages.sqlite`) but is reached through a connection of
//! its own, owned by a dedicated worker thread (named `relay-dlq`). Async
//! callers send closures to that thread and await the answer on a oneshot
//! channel, so no SQLite call ever blocks the runtime. The connection runs
//! in WAL mode with `busy_timeout = 5000`, which lets it share the file with
//! the message store's writer.

mod migrations;
mod ops;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::DlqError;
use crate::query::DlqQuery;
use crate::store::DlqStore;
use crate::types::{CleanupReport, DeadLetter, DlqState, DlqStats, NewDeadLetter};

/// How long a statement waits for a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Dead letters in the `dead_letters` table of a SQLite database file,
/// normally the daemon's `.agent-relay/messages.sqlite`.
///
/// One connection of its own (WAL, `busy_timeout` [`SQLITE_BUSY_TIMEOUT`]),
/// owned by a dedicated `relay-dlq` thread; async calls never block the
/// runtime. Schema versions live in `dlq_schema_version`; the message
/// store's tables and `PRAGMA user_version` are never touched.
pub struct SqliteDlq {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Fires once the worker thread has dropped its connection.
    stopped: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl std::fmt::Debug for SqliteDlq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDlq")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteDlq {
    /// Open (creating if needed) the database at `path`, create or migrate
    /// the `dead_letters` table and start the worker thread. A missing
    /// parent directory is created with mode 0700 and a new file with mode
    /// 0600.
    ///
    /// Blocking (it opens the file and runs migrations): from async code,
    /// call it at startup or inside `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteDlq, DlqError> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(DlqError::Config(
                "empty SQLite database path; pass the daemon's messages.sqlite path".into(),
            ));
        }
        prepare_file(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL journal mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(64);
        migrations::migrate(&mut conn)?;

        let (jobs, rx) = mpsc::channel::<Job>();
        let (stopped_tx, stopped_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("relay-dlq".into())
            .spawn(move || {
                for job in rx {
                    job(&mut conn);
                }
                drop(conn);
                let _ = stopped_tx.send(());
            })?;
        tracing::debug!(path = %path.display(), "opened SQLite dead letter queue");
        Ok(SqliteDlq {
            path,
            jobs: Mutex::new(Some(jobs)),
            stopped: tokio::sync::Mutex::new(Some(stopped_rx)),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Version of the dead letter schema in the file.
    pub async fn schema_version(&self) -> Result<i64, DlqError> {
        self.call(|conn| migrations::current_version(conn)).await
    }

    /// Run `f` on the worker thread and wait for its answer.
    async fn call<T, F>(&self, f: F) -> Result<T, DlqError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DlqError> + Send + 'static,
    {
        let sender = self
            .jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or(DlqError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Box::new(move |conn: &mut Connection| {
                // The caller may have stopped waiting; that is fine.
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| DlqError::Internal("the SQLite dead letter thread stopped".into()))?;
        answer
            .await
            .map_err(|_| DlqError::Internal("the SQLite dead letter thread stopped".into()))?
    }
}

#[async_trait]
impl DlqStore for SqliteDlq {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn add(
        &self,
        letter: NewDeadLetter,
        now: i64,
        next_retry_at: Option<i64>,
    ) -> Result<DeadLetter, DlqError> {
        self.call(move |conn| ops::add(conn, letter, now, next_retry_at))
            .await
    }

    async fn import(&self, letter: DeadLetter) -> Result<DeadLetter, DlqError> {
        self.call(move |conn| ops::import(conn, letter)).await
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, DlqError> {
        let id = id.to_string();
        self.call(move |conn| ops::get(conn, &id)).await
    }

    async fn query(&self, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError> {
        let q = q.clone();
        self.call(move |conn| ops::query(conn, &q)).await
    }

    async fn count(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        let q = q.clone();
        self.call(move |conn| ops::count(conn, &q)).await
    }

    async fn acknowledge(&self, ids: &[String], by: &str, now: i64) -> Result<u64, DlqError> {
        let ids = ids.to_vec();
        let by = by.to_string();
        self.call(move |conn| ops::acknowledge(conn, &ids, &by, now))
            .await
    }

    async fn set_state(
        &self,
        id: &str,
        state: DlqState,
        next_retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, DlqError> {
        let id = id.to_string();
        self.call(move |conn| ops::set_state(conn, &id, state, next_retry_at, now))
            .await
    }

    async fn due_for_retry(
        &self,
        now: i64,
        max_retries: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        self.call(move |conn| ops::due_for_retry(conn, now, max_retries, limit))
            .await
    }

    async fn pending_for_target(&self, to: &str) -> Result<Vec<DeadLetter>, DlqError> {
        let to = to.to_string();
        self.call(move |conn| ops::pending_for_target(conn, &to))
            .await
    }

    async fn purge(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        let q = q.clone();
        self.call(move |conn| ops::purge(conn, &q)).await
    }

    async fn stats(&self) -> Result<DlqStats, DlqError> {
        self.call(ops::stats).await
    }

    async fn cleanup(
        &self,
        now: i64,
        retention_ms: Option<i64>,
        max_entries: Option<u64>,
    ) -> Result<CleanupReport, DlqError> {
        self.call(move |conn| ops::cleanup(conn, now, retention_ms, max_entries))
            .await
    }

    async fn close(&self) -> Result<(), DlqError> {
        // Dropping the sender ends the worker loop once queued jobs ran.
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        if let Some(stopped) = self.stopped.lock().await.take() {
            // An error only means the thread is already gone.
            let _ = stopped.await;
            tracing::debug!(path = %self.path.display(), "closed SQLite dead letter queue");
        }
        Ok(())
    }
}

/// Create the parent directory (0700) and the file (0600) when missing.
fn prepare_file(path: &Path) -> Result<(), DlqError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(parent)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}
