//! Opening a store and talking to it: [`Store`] and [`StoreHandle`].

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::config::{BackendConfig, StoreConfig};
use crate::error::StoreError;
use crate::memory::MemoryBackend;
use crate::metrics::{MetricsCell, StoreMetrics};
use crate::sqlite::SqliteBackend;
use crate::types::{
    AgentRecord, ChannelMembership, ContextSnapshot, MessageQuery, OwedBroadcast, ProposalRecord,
    Query, QueryResult, SeqSeed, SessionRecord, SignatureHorizon, StoreStats, StoredMessage,
    WriteOp,
};
use crate::writer::{Command, Core, Writer};

/// How long `write_blocking` sleeps between re-checks of a full queue when no
/// wake-up arrives.
const BLOCKED_WRITER_POLL: Duration = Duration::from_millis(10);

/// Entry point: opens a backend and starts its writer thread.
#[derive(Debug)]
pub struct Store;

impl Store {
    /// Open the backend described by `config` and start the writer thread.
    ///
    /// Opening (creating the SQLite file, running migrations) happens on the
    /// calling thread, so configuration and schema errors are reported here.
    pub fn open(config: StoreConfig) -> Result<StoreHandle, StoreError> {
        validate(&config)?;
        match &config.backend {
            BackendConfig::Sqlite { path } => {
                let backend = SqliteBackend::open(path)?;
                Self::open_with_backend(backend, &config)
            }
            BackendConfig::Memory { max_messages } => {
                if *max_messages == 0 {
                    return Err(StoreError::Config("max_messages must be at least 1".into()));
                }
                Self::open_with_backend(MemoryBackend::new(*max_messages), &config)
            }
        }
    }

    /// Start a writer thread for an already-open backend. `config.backend` is
    /// ignored; the queue, batch and retention settings apply.
    pub fn open_with_backend<B: Backend>(
        backend: B,
        config: &StoreConfig,
    ) -> Result<StoreHandle, StoreError> {
        validate(config)?;
        let metrics = MetricsCell::new(backend.name(), backend.persistent(), config.queue_capacity);
        let core = Arc::new(Core::new(metrics));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            backend: Box::new(backend),
            rx,
            core: Arc::clone(&core),
            max_batch: config.max_batch,
            retention: config.retention,
            cleanup_interval: config.cleanup_interval,
        };
        let thread = std::thread::Builder::new()
            .name("relay-store".into())
            .spawn(move || writer.run())?;
        Ok(StoreHandle {
            inner: Arc::new(HandleInner {
                tx: Some(tx),
                core,
                capacity: config.queue_capacity,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

fn validate(config: &StoreConfig) -> Result<(), StoreError> {
    if config.queue_capacity == 0 {
        return Err(StoreError::Config(
            "queue_capacity must be at least 1".into(),
        ));
    }
    if config.max_batch == 0 {
        return Err(StoreError::Config("max_batch must be at least 1".into()));
    }
    if config.retention.is_some() && config.cleanup_interval.is_zero() {
        return Err(StoreError::Config(
            "cleanup_interval must be non-zero when retention is enabled".into(),
        ));
    }
    Ok(())
}

/// Cheap, cloneable handle to an open store. `Send + Sync`.
///
/// * Writes ([`write`](Self::write)) never block: they are queued for the
///   writer thread, which commits them in batches. A full queue is reported
///   as [`StoreError::Overloaded`].
/// * Queries are `async` and see every write submitted before them.
/// * [`flush`](Self::flush) waits until everything submitted before it is
///   committed.
///
/// The writer thread stops when [`close`](Self::close) is called on any
/// clone, or when the last clone is dropped. In both cases every write
/// already accepted is committed first. Dropping the last clone waits for
/// that final commit, so async code should drop it (or call `close`) from
/// `spawn_blocking` if the final batch may be large.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    /// `None` only while dropping.
    tx: Option<Sender<Command>>,
    core: Arc<Core>,
    capacity: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl HandleInner {
    fn join_writer(&self) {
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        // Disconnect the channel so the writer commits what it has and exits.
        self.tx.take();
        self.join_writer();
    }
}

enum Reserve {
    Ok,
    Full,
}

impl StoreHandle {
    fn core(&self) -> &Core {
        &self.inner.core
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        match &self.inner.tx {
            Some(tx) => tx.send(cmd).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        }
    }

    /// Claim one slot of the write queue.
    fn reserve(&self) -> Result<Reserve, StoreError> {
        let core = self.core();
        if core.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let depth = &core.metrics.queue_depth;
        if depth.fetch_add(1, Ordering::SeqCst) >= self.inner.capacity {
            depth.fetch_sub(1, Ordering::SeqCst);
            return Ok(Reserve::Full);
        }
        // Checked again after claiming the slot: shutdown waits for every
        // claimed slot, so a write that gets past this point is committed.
        if core.closed.load(Ordering::SeqCst) {
            depth.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Closed);
        }
        Ok(Reserve::Ok)
    }

    fn send_reserved(&self, op: WriteOp) -> Result<(), StoreError> {
        self.send(Command::Write(op)).inspect_err(|_| {
            self.core()
                .metrics
                .queue_depth
                .fetch_sub(1, Ordering::SeqCst);
        })
    }

    /// Queue a write without blocking. Returns
    /// [`StoreError::Overloaded`] when `queue_capacity` writes are already
    /// waiting, and [`StoreError::Closed`] after shutdown.
    pub fn write(&self, op: WriteOp) -> Result<(), StoreError> {
        match self.reserve()? {
            Reserve::Ok => self.send_reserved(op),
            Reserve::Full => Err(StoreError::Overloaded {
                capacity: self.inner.capacity,
            }),
        }
    }

    /// Queue a write, blocking the calling thread while the queue is full.
    /// Not for use on an async executor thread.
    pub fn write_blocking(&self, op: WriteOp) -> Result<(), StoreError> {
        let core = self.core();
        loop {
            if let Reserve::Ok = self.reserve()? {
                return self.send_reserved(op);
            }
            core.blocked_writers.fetch_add(1, Ordering::SeqCst);
            let guard = core
                .space_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // A missed wake-up only costs one poll interval.
            let _ = core.space.wait_timeout(guard, BLOCKED_WRITER_POLL);
            core.blocked_writers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        if self.core().closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run any [`Query`]. The typed methods below are usually more convenient.
    pub async fn query(&self, q: Query) -> Result<QueryResult, StoreError> {
        self.request(|tx| Command::Query(q, tx)).await
    }

    /// Messages matching `q`.
    pub async fn messages(&self, q: MessageQuery) -> Result<Vec<StoredMessage>, StoreError> {
        match self.query(Query::Messages(q)).await? {
            QueryResult::Messages(rows) => Ok(rows),
            other => Err(unexpected("Messages", &other)),
        }
    }

    /// The message whose id is `prefix`, else the only message whose id
    /// starts with `prefix`. Several matches give [`StoreError::AmbiguousId`].
    pub async fn message_by_id_prefix(
        &self,
        prefix: impl Into<String>,
    ) -> Result<Option<StoredMessage>, StoreError> {
        match self.query(Query::MessageByIdPrefix(prefix.into())).await? {
            QueryResult::Message(row) => Ok(row),
            other => Err(unexpected("Message", &other)),
        }
    }

    /// Every pending (`Unread`/`Read`) message addressed to `agent`, oldest
    /// first, uncapped.
    pub async fn pending_for(
        &self,
        agent: impl Into<String>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        match self
            .query(Query::PendingFor {
                agent: agent.into(),
            })
            .await?
        {
            QueryResult::Messages(rows) => Ok(rows),
            other => Err(unexpected("Messages", &other)),
        }
    }

    /// The most recently started session holding `token`.
    pub async fn session_by_resume_token(
        &self,
        token: impl Into<String>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match self
            .query(Query::SessionByResumeToken(token.into()))
            .await?
        {
            QueryResult::Session(session) => Ok(session),
            other => Err(unexpected("Session", &other)),
        }
    }

    /// Highest delivery sequence per `(from, topic)` delivered into
    /// `session_id`, for resuming sequence numbering.
    pub async fn max_seq_by_session(
        &self,
        session_id: impl Into<String>,
    ) -> Result<Vec<SeqSeed>, StoreError> {
        match self
            .query(Query::MaxSeqBySession {
                session_id: session_id.into(),
            })
            .await?
        {
            QueryResult::SeqSeeds(seeds) => Ok(seeds),
            other => Err(unexpected("SeqSeeds", &other)),
        }
    }

    /// All known agents, sorted by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        match self.query(Query::Agents).await? {
            QueryResult::Agents(agents) => Ok(agents),
            other => Err(unexpected("Agents", &other)),
        }
    }

    /// All channel memberships, sorted by channel then member.
    pub async fn channel_memberships(&self) -> Result<Vec<ChannelMembership>, StoreError> {
        match self.query(Query::ChannelMemberships).await? {
            QueryResult::Memberships(rows) => Ok(rows),
            other => Err(unexpected("Memberships", &other)),
        }
    }

    /// Every stored consensus proposal, sorted by id.
    pub async fn proposals(&self) -> Result<Vec<ProposalRecord>, StoreError> {
        match self.query(Query::Proposals).await? {
            QueryResult::Proposals(rows) => Ok(rows),
            other => Err(unexpected("Proposals", &other)),
        }
    }

    /// `(signer, message id, signing time)` of the signatures that can still be replayed.
    pub async fn recent_signatures(
        &self,
        replayable: SignatureHorizon,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        match self.query(Query::RecentSignatures(replayable)).await? {
            QueryResult::Signatures(rows) => Ok(rows),
            other => Err(unexpected("Signatures", &other)),
        }
    }

    /// `(sender, SEND id)` of the newest `limit` unsigned messages stored at or after `since`,
    /// oldest first: what the daemon's duplicate check knew before a restart.
    pub async fn recent_send_ids(
        &self,
        since: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        match self.query(Query::RecentSendIds { since, limit }).await? {
            QueryResult::SendIds(rows) => Ok(rows),
            other => Err(unexpected("SendIds", &other)),
        }
    }

    /// Broadcasts still owed to some recipients, updated at or after `since`, oldest first.
    pub async fn owed_broadcasts(&self, since: i64) -> Result<Vec<OwedBroadcast>, StoreError> {
        match self.query(Query::OwedBroadcasts { since }).await? {
            QueryResult::Owed(rows) => Ok(rows),
            other => Err(unexpected("Owed", &other)),
        }
    }

    /// The context snapshot of `agent`, if one was stored.
    pub async fn context_snapshot(
        &self,
        agent: impl Into<String>,
    ) -> Result<Option<ContextSnapshot>, StoreError> {
        match self
            .query(Query::ContextSnapshot {
                agent: agent.into(),
            })
            .await?
        {
            QueryResult::ContextSnapshot(snapshot) => Ok(snapshot),
            other => Err(unexpected("ContextSnapshot", &other)),
        }
    }

    /// The newest `limit` messages of `agent`'s conversation (sent by it, addressed to it, or
    /// posted to one of `channels`), at or after `since_ts` and before `until_ts` when given,
    /// **oldest first**.
    pub async fn conversation(
        &self,
        agent: impl Into<String>,
        channels: Vec<String>,
        since_ts: Option<i64>,
        until_ts: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        match self
            .query(Query::Conversation {
                agent: agent.into(),
                channels,
                since_ts,
                until_ts,
                limit,
            })
            .await?
        {
            QueryResult::Messages(mut rows) => {
                rows.reverse();
                Ok(rows)
            }
            other => Err(unexpected("Messages", &other)),
        }
    }

    /// Row counts and the oldest message timestamp.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        match self.query(Query::Stats).await? {
            QueryResult::Stats(stats) => Ok(stats),
            other => Err(unexpected("Stats", &other)),
        }
    }

    /// Run a retention pass now: delete non-pending messages older than
    /// `older_than_ts` (epoch ms). Returns the number of rows deleted.
    pub async fn cleanup(&self, older_than_ts: i64) -> Result<u64, StoreError> {
        self.request(|tx| Command::Cleanup(older_than_ts, tx)).await
    }

    /// Barrier: resolves once every write submitted before it is committed.
    /// Reports [`StoreError::WritesLost`] if writes committed in the same
    /// batch had to be dropped; [`metrics`](Self::metrics) keeps the totals.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.request(Command::Flush).await
    }

    /// Current counters. Never blocks on the writer thread.
    pub fn metrics(&self) -> StoreMetrics {
        self.core().metrics.snapshot()
    }

    /// Writes queued and not yet committed, and the queue's capacity (cheap: two atomic loads).
    pub fn queue_fill(&self) -> (usize, usize) {
        let m = &self.core().metrics;
        (
            m.queue_depth.load(std::sync::atomic::Ordering::Relaxed),
            m.queue_capacity,
        )
    }

    /// Backend name (`"sqlite"`, `"memory"`).
    pub fn backend_name(&self) -> &'static str {
        self.core().metrics.backend_name
    }

    /// True when the backend keeps data across restarts.
    pub fn persistent(&self) -> bool {
        self.core().metrics.persistent
    }

    /// Shut the store down for every clone of this handle: commit all
    /// accepted writes, flush the backend and join the writer thread. Later
    /// calls on other clones fail with [`StoreError::Closed`].
    ///
    /// This blocks the calling thread; async callers should run it in
    /// `spawn_blocking`.
    pub fn close(self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        let result = match self.send(Command::Shutdown(tx)) {
            Ok(()) => rx.recv().unwrap_or(Err(StoreError::Closed)),
            Err(e) => Err(e),
        };
        self.inner.join_writer();
        result
    }
}

fn unexpected(wanted: &str, got: &QueryResult) -> StoreError {
    let got = match got {
        QueryResult::Messages(_) => "Messages",
        QueryResult::Message(_) => "Message",
        QueryResult::Session(_) => "Session",
        QueryResult::SeqSeeds(_) => "SeqSeeds",
        QueryResult::Agents(_) => "Agents",
        QueryResult::Memberships(_) => "Memberships",
        QueryResult::Stats(_) => "Stats",
        QueryResult::Proposals(_) => "Proposals",
        QueryResult::Signatures(_) => "Signatures",
        QueryResult::ContextSnapshot(_) => "ContextSnapshot",
        QueryResult::Owed(_) => "Owed",
        QueryResult::SendIds(_) => "SendIds",
    };
    StoreError::Internal(format!(
        "backend answered {got} where {wanted} was expected"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn handle_is_send_sync_clone() {
        assert_send_sync::<StoreHandle>();
    }

    #[test]
    fn zero_sizes_are_rejected() {
        let mut config = StoreConfig::memory();
        config.queue_capacity = 0;
        assert!(matches!(Store::open(config), Err(StoreError::Config(_))));
        let mut config = StoreConfig::memory();
        config.max_batch = 0;
        assert!(matches!(Store::open(config), Err(StoreError::Config(_))));
        let config = StoreConfig::new(BackendConfig::Memory { max_messages: 0 });
        assert!(matches!(Store::open(config), Err(StoreError::Config(_))));
    }
}
