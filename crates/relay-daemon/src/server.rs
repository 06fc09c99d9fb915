//! Socket setup, the accept loop and orderly shutdown.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_config::{ensure_relay_dir, ProjectPaths, RelayConfig, StoreBackendKind};
use relay_store::{BackendConfig, Store, StoreConfig, StoreHandle};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::AuthPolicy;
use crate::dlq::DlqBackend;
use crate::failure::{FailureSink, LogFailures};
use crate::router::{Channels, Router};
use crate::Shared;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another agent-relay daemon is already running for this project (socket {0}); stop it with `agent-relay down`")]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; refusing to remove it. Move it away or configure another daemon.socket")]
    NotASocket(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the message store: {0}")]
    Store(#[from] relay_store::StoreError),
    #[error("cannot open the dead letter queue: {0}; fix [dlq] in relay.toml or set dlq.enabled = false")]
    Dlq(#[from] relay_dlq::DlqError),
    #[error("invalid [compaction] configuration: {0}; fix it in relay.toml (or with -c compaction.<key>=<value>), or set compaction.enabled = false")]
    Compaction(String),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("the message store did not answer the start-up read of {what} within {after:?}; its database may be on a stalled disk or locked by another program: check the disk and [store] in relay.toml, then start again")]
    StartupRead { what: &'static str, after: Duration },
}

/// How long start-up waits for each read of the store. Every read is bounded (the newest rows of
/// a time window at most) and answers in well under a second; one that takes this long means the
/// database is stuck, and the daemon stops, saying so, instead of holding its socket unserved.
const STARTUP_READ_DEADLINE: Duration = Duration::from_secs(60);

/// Awaits the start-up read `read` of `what` for at most `deadline`.
async fn startup_read<T>(
    what: &'static str,
    deadline: Duration,
    read: impl std::future::Future<Output = Result<T, relay_store::StoreError>>,
) -> Result<T, DaemonError> {
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| DaemonError::StartupRead {
            what,
            after: deadline,
        })?
        .map_err(DaemonError::Store)
}

/// Optional subsystems a daemon runs with.
#[derive(Clone, Default)]
pub struct Subsystems {
    /// The dead letter queue; `None` logs undeliverable messages instead.
    pub dlq: Option<DlqBackend>,
    /// Where per-agent signing keys live; `None` = `keys/` beside the socket.
    pub keys_dir: Option<PathBuf>,
    /// The project served (where spawned agents run, outbox and logs); `None` = the socket's
    /// directory stands in for `.agent-relay/`.
    pub project: Option<ProjectPaths>,
}

/// Opens the dead letter store `[dlq]` asks for (`None` when disabled). A PostgreSQL backend is
/// opened lazily behind a local SQLite spool, so an unreachable server never stops the daemon.
pub fn open_dlq(
    config: &RelayConfig,
    paths: &ProjectPaths,
) -> Result<Option<DlqBackend>, DaemonError> {
    use relay_config::DlqBackendKind;
    use std::sync::Arc;
    let q = &config.dlq;
    if !q.enabled {
        return Ok(None);
    }
    Ok(Some(match q.backend {
        DlqBackendKind::Sqlite => DlqBackend::Plain(Arc::new(relay_dlq::SqliteDlq::open(
            config.dlq_path(paths),
        )?)),
        DlqBackendKind::Memory => DlqBackend::Plain(Arc::new(relay_dlq::MemoryDlq::new())),
        DlqBackendKind::Postgres => {
            let mut pg = relay_dlq::PostgresConfig::new(q.url.clone(), q.pool_size);
            if !q.schema.is_empty() {
                pg = pg.with_schema(q.schema.clone());
            }
            let primary = Arc::new(relay_dlq::PostgresDlq::connect_lazy(pg)?);
            let spool = Arc::new(relay_dlq::SqliteDlq::open(
                paths.relay_dir.join("dlq-spool.sqlite"),
            )?);
            DlqBackend::Resilient(Arc::new(relay_dlq::ResilientDlq::new(primary, spool)))
        }
    }))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Holds the exclusive lock file for as long as the daemon runs.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes `<socket>.lock`; fails with AlreadyRunning when another process holds it.
    pub fn acquire(socket: &Path) -> Result<InstanceLock, DaemonError> {
        let mut name = socket.as_os_str().to_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(InstanceLock { _file: file, path }),
            Err(fs::TryLockError::WouldBlock) => {
                Err(DaemonError::AlreadyRunning(socket.to_path_buf()))
            }
            Err(fs::TryLockError::Error(e)) => Err(DaemonError::Io { path, source: e }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds the socket: refuses when a live daemon answers, removes a stale socket file, never
/// removes something that is not a socket, and sets the socket to 0600.
pub fn prepare_socket(socket: &Path) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = socket.parent() {
        if !dir.exists() {
            ensure_relay_dir(dir).map_err(io_err(dir))?;
        }
    }
    match fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(DaemonError::AlreadyRunning(socket.to_path_buf()));
            }
            tracing::info!(socket = %socket.display(), "removing stale socket");
            fs::remove_file(socket).map_err(io_err(socket))?;
        }
        Ok(_) => return Err(DaemonError::NotASocket(socket.to_path_buf())),
        Err(_) => {}
    }
    let listener = UnixListener::bind(socket).map_err(io_err(socket))?;
    fs::set_permissions(socket, fs::Permissions::from_mode(0o600)).map_err(io_err(socket))?;
    Ok(listener)
}

/// The store configuration for a project.
pub fn store_config(config: &RelayConfig, paths: &ProjectPaths) -> StoreConfig {
    let s = &config.store;
    let backend = match s.backend {
        StoreBackendKind::Sqlite => BackendConfig::Sqlite {
            path: config.database_path(paths),
        },
        StoreBackendKind::Memory => BackendConfig::Memory {
            max_messages: s.memory_max_messages,
        },
    };
    let mut sc = StoreConfig::new(backend);
    sc.queue_capacity = s.queue_capacity;
    // Large batches let an ACK fold into the INSERT of its message when storage is busy.
    sc.max_batch = (s.queue_capacity / 2).max(1024);
    sc.retention = (s.retention_days > 0).then(|| Duration::from_secs(s.retention_days * 86_400));
    sc
}

/// Runs the daemon for a project until SIGINT or SIGTERM.
pub async fn serve(config: RelayConfig, paths: ProjectPaths) -> Result<(), DaemonError> {
    ensure_relay_dir(&paths.relay_dir).map_err(io_err(&paths.relay_dir))?;
    let socket = config.socket_path(&paths);
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let lock = InstanceLock::acquire(&socket)?;
    let listener = prepare_socket(&socket)?;
    let pid_file = ProjectPaths::pid_file_for(&socket);
    let store_cfg = store_config(&config, &paths);
    let store = tokio::task::spawn_blocking(move || Store::open(store_cfg))
        .await
        .map_err(|e| DaemonError::Io {
            path: pid_file.clone(),
            source: std::io::Error::other(e),
        })??;
    let dlq = open_dlq(&config, &paths)?;
    let config_keys_dir = config.keys_dir(&paths);
    write_pid_file(&pid_file)?;

    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signals.cancel();
    });
    tracing::info!(socket = %socket.display(), pid = std::process::id(), store = store.backend_name(), "agent-relay daemon listening");
    let result = run(
        config,
        listener,
        socket.clone(),
        store,
        Subsystems {
            dlq,
            keys_dir: Some(config_keys_dir),
            project: Some(paths.clone()),
        },
        shutdown,
    )
    .await;
    let _ = fs::remove_file(&socket);
    let _ = fs::remove_file(&pid_file);
    let _ = fs::remove_file(lock.path());
    drop(lock);
    tracing::info!("agent-relay daemon stopped");
    result
}

fn write_pid_file(path: &Path) -> Result<(), DaemonError> {
    let tmp = path.with_extension("pid.tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    writeln!(f, "{}", std::process::id()).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// Serves `listener` until `shutdown` fires; then says BYE to every client, flushes the store
/// and closes it.
pub async fn run(
    config: RelayConfig,
    listener: UnixListener,
    socket_path: PathBuf,
    store: StoreHandle,
    subsystems: Subsystems,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let agents = startup_read("agents", STARTUP_READ_DEADLINE, store.agents()).await?;
    let memberships = startup_read(
        "channel memberships",
        STARTUP_READ_DEADLINE,
        store.channel_memberships(),
    )
    .await?;
    let channels = Channels::from_memberships(memberships);
    let (router_tx, router_rx) = mpsc::channel(65_536);
    let verifier = config.signing.enabled.then(|| {
        let keys_dir = subsystems
            .keys_dir
            .clone()
            .or_else(|| socket_path.parent().map(|d| d.join("keys")))
            .unwrap_or_else(|| PathBuf::from("keys"));
        Arc::new(crate::signing::Verifier::new(&config.signing, keys_dir))
    });
    let shared = Arc::new(Shared {
        auth: AuthPolicy::new(config.auth.clone()),
        config,
        store: store.clone(),
        router_tx,
        started: Instant::now(),
        socket_path,
        project: subsystems.project.clone(),
        signing: verifier.clone(),
    });
    // Checked before anything starts: an invalid section stops the daemon, naming the key.
    let compaction = if shared.config.compaction.enabled {
        let (service, handle) = crate::compaction::channel(
            &shared.config.compaction,
            store.clone(),
            shared.router_tx.clone(),
        )
        .map_err(DaemonError::Compaction)?;
        Some((service, handle))
    } else {
        None
    };
    let (failures, dlq_handle, dlq_task): (Box<dyn FailureSink>, _, _) = match subsystems.dlq {
        Some(backend) => {
            let (service, handle, sink) = crate::dlq::channel(
                backend,
                shared.config.dlq.clone(),
                store.clone(),
                shared.router_tx.clone(),
            );
            (
                Box::new(sink),
                Some(handle),
                Some(tokio::spawn(service.run())),
            )
        }
        None => (Box::new(LogFailures), None, None),
    };
    let consensus = if shared.config.consensus.enabled {
        let records = startup_read(
            "consensus proposals",
            STARTUP_READ_DEADLINE,
            store.proposals(),
        )
        .await?;
        Some(crate::router::consensus::restore_engine(
            &shared.config.consensus,
            records,
        ))
    } else {
        None
    };
    let started = relay_protocol::now_ms() as i64;
    let recent_sends = startup_read(
        "recent SEND ids",
        STARTUP_READ_DEADLINE,
        store.recent_send_ids(
            started - crate::router::RESTORED_MAX_AGE_MS,
            crate::router::RESTORED_MAX_IDS,
        ),
    )
    .await?;
    let owed = startup_read(
        "owed broadcasts",
        STARTUP_READ_DEADLINE,
        store.owed_broadcasts(started - crate::router::OWED_KEPT_MS),
    )
    .await?;
    let signing = match verifier {
        Some(verifier) => {
            let recent = startup_read(
                "recent signatures",
                STARTUP_READ_DEADLINE,
                store.recent_signatures(crate::signing::replayable_now(&shared.config.signing)),
            )
            .await?;
            if shared.config.signing.shared_secret.is_empty() {
                tokio::spawn(crate::signing::refresh_keys(
                    verifier.clone(),
                    shared.config.signing.clone(),
                    shutdown.clone(),
                ));
            }
            Some(crate::signing::SigningGuard::new(verifier, recent))
        }
        None => None,
    };
    let (compaction_handle, compaction_task) = match compaction {
        Some((service, handle)) => {
            let done = crate::compaction::spawn(service)
                .map_err(|e| DaemonError::Thread("compaction", e))?;
            (Some(handle), Some(done))
        }
        None => (None, None),
    };
    let router = Router::new(
        shared.clone(),
        agents,
        channels,
        failures,
        dlq_handle,
        consensus,
        signing,
    )
    .with_compaction(compaction_handle)
    .with_recent_sends(recent_sends, owed);
    let router_task = tokio::spawn(router.run(router_rx, shutdown.clone()));

    let next_id = AtomicU64::new(1);
    let max_conns = shared.config.limits.max_connections;
    let live = Arc::new(tokio::sync::Semaphore::new(max_conns));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
                let cred = stream.peer_cred().ok();
                let shared = shared.clone();
                match live.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            crate::connection::serve_connection(shared, stream, conn_id, cred).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tokio::spawn(async move {
                            let (_r, w) = stream.into_split();
                            let (tx, rx) = mpsc::channel(4);
                            let outlet = crate::connection::Outlet { tx, congested: Default::default() };
                            let writer = tokio::spawn(refuse_writer(w, rx));
                            crate::connection::close_with(&outlet, relay_protocol::ErrorCode::Internal,
                                format!("too many connections (limit {max_conns}); raise limits.max_connections"), None).await;
                            drop(outlet);
                            let _ = writer.await;
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = router_task.await;
    // The router is gone, so the DLQ service sees its queue close after storing what was sent.
    if let Some(task) = dlq_task {
        if tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .is_err()
        {
            tracing::error!("the dead letter queue did not finish within 10 s of shutdown");
        }
    }
    // Likewise the compaction service, which finishes the compactions still running.
    if let Some(task) = compaction_task {
        if tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .is_err()
        {
            tracing::error!("the compaction service did not finish within 10 s of shutdown");
        }
    }
    // Give writers a moment to flush their BYE frames.
    let grace = Duration::from_millis(shared.config.daemon.shutdown_grace_ms.min(2000));
    let deadline = tokio::time::Instant::now() + grace;
    while live.available_permits() < max_conns && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.flush().await?;
    tokio::task::spawn_blocking(move || store.close())
        .await
        .map_err(|e| DaemonError::Io {
            path: PathBuf::from("store"),
            source: std::io::Error::other(e),
        })??;
    Ok(())
}

async fn refuse_writer(
    mut w: tokio::net::unix::OwnedWriteHalf,
    mut rx: mpsc::Receiver<crate::connection::Outbound>,
) {
    use tokio::io::AsyncWriteExt;
    while let Some(item) = rx.recv().await {
        match item {
            crate::connection::Outbound::Frame(f) => {
                if w.write_all(&f).await.is_err() {
                    break;
                }
            }
            crate::connection::Outbound::Close => break,
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_startup_read_that_never_answers_stops_the_daemon_with_a_clear_error() {
        let stuck = std::future::pending::<Result<(), relay_store::StoreError>>();
        // Bounded here too, so that a missing deadline fails the test instead of hanging it.
        let read = startup_read("owed broadcasts", Duration::from_millis(50), stuck);
        let err = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("startup_read must give up at its own deadline")
            .expect_err("a read that never answers must fail at its deadline");
        assert!(
            matches!(err, DaemonError::StartupRead { what: "owed broadcasts", after } if after == Duration::from_millis(50)),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("did not answer the start-up read of owed broadcasts within 50ms"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_startup_read_passes_on_its_answer_and_its_error() {
        let answer = startup_read("agents", Duration::from_secs(5), async { Ok(7) }).await;
        assert_eq!(answer.ok(), Some(7));
        let failed = startup_read("agents", Duration::from_secs(5), async {
            Err::<(), _>(relay_store::StoreError::Closed)
        })
        .await;
        assert!(matches!(
            failed,
            Err(DaemonError::Store(relay_store::StoreError::Closed))
        ));
    }
}
