//! Writer thread behaviour: back-pressure, failure handling, shutdown,
//! throughput.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use relay_store::{
    Backend, MemoryBackend, Query, QueryResult, Store, StoreConfig, StoreError, WriteOp,
};

fn insert_op(id: &str) -> WriteOp {
    WriteOp::InsertMessage(msg(id, 1, "a", "b"))
}

/// Memory backend whose first `apply` call blocks until released, so tests
/// can hold the writer thread still deterministically.
struct GateBackend {
    inner: MemoryBackend,
    entered: Option<mpsc::Sender<()>>,
    release: Option<mpsc::Receiver<()>>,
}

impl Backend for GateBackend {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn persistent(&self) -> bool {
        false
    }
    fn apply(&mut self, batch: &[WriteOp]) -> Result<(), StoreError> {
        if let (Some(entered), Some(release)) = (self.entered.take(), self.release.take()) {
            let _ = entered.send(());
            let _ = release.recv();
        }
        self.inner.apply(batch)
    }
    fn query(&mut self, q: &Query) -> Result<QueryResult, StoreError> {
        self.inner.query(q)
    }
    fn cleanup(&mut self, older_than_ts: i64) -> Result<u64, StoreError> {
        self.inner.cleanup(older_than_ts)
    }
}

/// Memory backend that fails every batch while `failing` is set, and every
/// batch containing a message with id `poison`.
struct FlakyBackend {
    inner: MemoryBackend,
    failing: Arc<AtomicBool>,
}

impl Backend for FlakyBackend {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn persistent(&self) -> bool {
        false
    }
    fn apply(&mut self, batch: &[WriteOp]) -> Result<(), StoreError> {
        let poisoned = batch
            .iter()
            .any(|op| matches!(op, WriteOp::InsertMessage(m) if m.id == "poison"));
        if self.failing.load(Ordering::SeqCst) || poisoned {
            return Err(StoreError::Internal("disk on fire".into()));
        }
        self.inner.apply(batch)
    }
    fn query(&mut self, q: &Query) -> Result<QueryResult, StoreError> {
        self.inner.query(q)
    }
    fn cleanup(&mut self, older_than_ts: i64) -> Result<u64, StoreError> {
        self.inner.cleanup(older_than_ts)
    }
}

fn small_queue(capacity: usize) -> StoreConfig {
    let mut config = quiet(StoreConfig::memory());
    config.queue_capacity = capacity;
    config
}

fn gate() -> (GateBackend, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let backend = GateBackend {
        inner: MemoryBackend::default(),
        entered: Some(entered_tx),
        release: Some(release_rx),
    };
    (backend, entered_rx, release_tx)
}

#[tokio::test]
async fn full_queue_reports_overloaded() -> TestResult {
    let (backend, entered, release) = gate();
    let store = Store::open_with_backend(backend, &small_queue(4))?;

    // The writer takes the first write and blocks inside the backend.
    store.write(insert_op("first"))?;
    entered.recv_timeout(Duration::from_secs(10))?;

    for i in 0..4 {
        store.write(insert_op(&format!("q{i}")))?;
    }
    assert_eq!(store.metrics().queue_depth, 4);
    match store.write(insert_op("rejected")) {
        Err(e @ StoreError::Overloaded { capacity: 4 }) => assert!(e.is_overloaded()),
        other => return Err(format!("expected Overloaded, got {other:?}").into()),
    }
    // Queries are not writes: they still queue behind the backlog.
    let stats = {
        let store = store.clone();
        tokio::spawn(async move { store.stats().await })
    };

    release.send(())?;
    store.flush().await?;
    assert_eq!(stats.await??.message_count, 5);
    assert_eq!(store.metrics().queue_depth, 0);
    assert!(store.message_by_id_prefix("rejected").await?.is_none());
    store.write(insert_op("after"))?;
    store.flush().await?;
    assert_eq!(store.stats().await?.message_count, 6);
    Ok(())
}

#[tokio::test]
async fn write_blocking_waits_for_room() -> TestResult {
    let (backend, entered, release) = gate();
    let store = Store::open_with_backend(backend, &small_queue(2))?;
    store.write(insert_op("first"))?;
    entered.recv_timeout(Duration::from_secs(10))?;
    store.write(insert_op("q0"))?;
    store.write(insert_op("q1"))?;

    let (done_tx, done_rx) = mpsc::channel();
    let blocked = store.clone();
    let worker = std::thread::spawn(move || {
        let result = blocked.write_blocking(insert_op("blocked"));
        let _ = done_tx.send(());
        result
    });
    // Still full: the blocking writer cannot have finished.
    assert!(done_rx.recv_timeout(Duration::from_millis(100)).is_err());
    release.send(())?;
    done_rx.recv_timeout(Duration::from_secs(10))?;
    worker.join().map_err(|_| "writer thread panicked")??;
    store.flush().await?;
    assert_eq!(store.stats().await?.message_count, 4);
    Ok(())
}

#[tokio::test]
async fn failed_batches_are_retried_then_counted_as_lost() -> TestResult {
    let failing = Arc::new(AtomicBool::new(true));
    let backend = FlakyBackend {
        inner: MemoryBackend::default(),
        failing: Arc::clone(&failing),
    };
    let store = Store::open_with_backend(backend, &quiet(StoreConfig::memory()))?;
    assert_eq!(store.backend_name(), "flaky");
    store.write(insert_op("doomed"))?;
    match store.flush().await {
        Err(StoreError::WritesLost { count: 1 }) => {}
        other => return Err(format!("expected WritesLost, got {other:?}").into()),
    }
    let m = store.metrics();
    assert_eq!((m.failed_batches, m.lost_ops, m.ops_committed), (1, 1, 0));
    assert!(!m.can_write);
    assert!(m
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("disk on fire"));
    // Queries still work while writes fail.
    assert_eq!(store.stats().await?.message_count, 0);

    failing.store(false, Ordering::SeqCst);
    store.write(insert_op("fine"))?;
    store.flush().await?;
    let m = store.metrics();
    assert!(m.can_write, "a successful commit restores can_write");
    assert_eq!(m.ops_committed, 1);
    assert_eq!(store.stats().await?.message_count, 1);
    Ok(())
}

#[tokio::test]
async fn one_bad_write_does_not_sink_its_batch() -> TestResult {
    let backend = FlakyBackend {
        inner: MemoryBackend::default(),
        failing: Arc::new(AtomicBool::new(false)),
    };
    let store = Store::open_with_backend(backend, &quiet(StoreConfig::memory()))?;
    for i in 0..50 {
        store.write(insert_op(&format!("ok-{i}")))?;
    }
    store.write(insert_op("poison"))?;
    for i in 50..100 {
        store.write(insert_op(&format!("ok-{i}")))?;
    }
    // The poisoned op may share a batch with any of its neighbours; either
    // way exactly it is lost.
    let _ = store.flush().await;
    store.flush().await?;
    assert_eq!(store.stats().await?.message_count, 100);
    let m = store.metrics();
    assert_eq!((m.lost_ops, m.ops_committed, m.failed_batches), (1, 100, 1));
    Ok(())
}

#[tokio::test]
async fn close_stops_every_clone() -> TestResult {
    let store = Store::open(quiet(StoreConfig::memory()))?;
    let other = store.clone();
    store.write(insert_op("a"))?;
    tokio::task::spawn_blocking(move || store.close()).await??;
    assert!(matches!(
        other.write(insert_op("b")),
        Err(StoreError::Closed)
    ));
    assert!(matches!(other.stats().await, Err(StoreError::Closed)));
    assert!(matches!(other.flush().await, Err(StoreError::Closed)));
    assert!(matches!(other.close(), Err(StoreError::Closed)));
    Ok(())
}

#[test]
fn concurrent_writers_lose_nothing_across_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.db");
    let store = Store::open(quiet(StoreConfig::sqlite(&path)))?;
    let accepted: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut ok = 0u64;
                for i in 0..5_000 {
                    match store.write_blocking(insert_op(&format!("t{t}-{i}"))) {
                        Ok(()) => ok += 1,
                        Err(StoreError::Closed) => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(ok)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    store.close()?;
    let mut total = 0;
    for handle in accepted {
        total += handle.join().map_err(|_| "writer panicked")??;
    }
    // Every write that was accepted before the close is on disk.
    let store = Store::open(quiet(StoreConfig::sqlite(&path)))?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let stored = rt.block_on(store.stats())?.message_count;
    assert_eq!(stored as u64, total);
    store.close()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_read_their_own_writes() -> TestResult {
    let store = Store::open(quiet(StoreConfig::memory()))?;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let agent = format!("agent-{t}");
            for i in 0..200 {
                store.write(WriteOp::InsertMessage(msg(
                    &format!("{agent}-{i}"),
                    i,
                    "sender",
                    &agent,
                )))?;
                if i % 50 == 49 {
                    let seen = store.pending_for(agent.clone()).await?.len();
                    assert_eq!(seen, i as usize + 1);
                }
            }
            Ok::<_, StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    assert_eq!(store.stats().await?.pending_count, 1600);
    Ok(())
}

#[tokio::test]
async fn periodic_cleanup_runs_while_idle() -> TestResult {
    let mut config = StoreConfig::memory();
    config.retention = Some(Duration::from_secs(60));
    config.cleanup_interval = Duration::from_millis(20);
    let store = Store::open(config)?;
    let hour_ago = relay_store::now_ms() - 60 * 60 * 1000;
    let mut old = msg("old", hour_ago, "a", "b");
    old.status = relay_store::MessageStatus::Acked;
    store.write(WriteOp::InsertMessage(old))?;
    store.write(WriteOp::InsertMessage(msg("pending", hour_ago, "a", "b")))?;
    store.flush().await?;
    // No further commands: only the timer can wake the writer now.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.metrics().cleanup_deleted == 0 {
        if Instant::now() > deadline {
            return Err("retention never ran".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ids(&store.pending_for("b").await?), ["pending"]);
    assert_eq!(store.stats().await?.message_count, 1);
    Ok(())
}

#[tokio::test]
async fn huge_cleanup_interval_is_accepted() -> TestResult {
    let mut config = StoreConfig::memory();
    config.retention = Some(Duration::MAX);
    config.cleanup_interval = Duration::MAX;
    let store = Store::open(config)?;
    store.write(insert_op("a"))?;
    store.flush().await?;
    assert_eq!(store.stats().await?.message_count, 1);
    tokio::task::spawn_blocking(move || store.close()).await??;
    Ok(())
}

/// Rough insert throughput for the lead to track:
/// `cargo test -p relay-store --release -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn bench_insert_throughput() -> TestResult {
    const N: usize = 200_000;
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    for (label, config) in [
        (
            "sqlite",
            quiet(StoreConfig::sqlite(dir.path().join("bench.db"))),
        ),
        ("memory", {
            let mut c = quiet(StoreConfig::memory());
            c.backend = relay_store::BackendConfig::Memory { max_messages: N };
            c
        }),
    ] {
        let store = Store::open(config)?;
        let started = Instant::now();
        for i in 0..N {
            let mut m = msg(
                &format!("msg-{i:08}"),
                i as i64,
                "sender-agent",
                "receiver-agent",
            );
            m.topic = Some("bench".into());
            m.body = "x".repeat(120);
            m.data = Some(serde_json::json!({"seq": i}));
            store.write_blocking(WriteOp::InsertMessage(m))?;
        }
        let queued = started.elapsed();
        rt.block_on(store.flush())?;
        let elapsed = started.elapsed();
        let m = store.metrics();
        println!(
            "{label}: {N} inserts in {:.3}s = {:.0} inserts/s (enqueue {:.3}s, {} batches, avg {:.0} ops/batch)",
            elapsed.as_secs_f64(),
            N as f64 / elapsed.as_secs_f64(),
            queued.as_secs_f64(),
            m.batches_committed,
            m.ops_committed as f64 / m.batches_committed.max(1) as f64,
        );
        assert_eq!(m.ops_committed, N as u64);
        store.close()?;
    }
    Ok(())
}
