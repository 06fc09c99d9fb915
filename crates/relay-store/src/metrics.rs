//! Counters describing the writer thread, readable without blocking it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Snapshot of the store's health, from [`StoreHandle::metrics`].
///
/// [`StoreHandle::metrics`]: crate::StoreHandle::metrics
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreMetrics {
    /// `"sqlite"`, `"memory"`, ...
    pub backend_name: &'static str,
    /// True when data survives a restart.
    pub persistent: bool,
    /// False after a failed commit, until a later commit succeeds.
    pub can_write: bool,
    /// Configured queue capacity.
    pub queue_capacity: usize,
    /// Writes accepted but not yet picked up by the writer thread.
    pub queue_depth: usize,
    /// Transactions committed.
    pub batches_committed: u64,
    /// Write operations committed.
    pub ops_committed: u64,
    /// Batches that kept failing after every retry.
    pub failed_batches: u64,
    /// Write operations dropped because they could not be committed.
    pub lost_ops: u64,
    /// Pending messages dropped by a bounded backend that ran out of room.
    pub evicted_pending: u64,
    /// Messages deleted by retention so far.
    pub cleanup_deleted: u64,
    /// CPU time the writer thread has used (user and system) as of its last commit, in µs.
    pub writer_cpu_us: u64,
    /// Most recent backend error, if any.
    pub last_error: Option<String>,
}

/// Shared, lock-free counters behind [`StoreMetrics`].
#[derive(Debug)]
pub(crate) struct MetricsCell {
    pub backend_name: &'static str,
    pub persistent: bool,
    pub queue_capacity: usize,
    /// Writes admitted to the queue and not yet received by the writer.
    /// Also the admission counter enforcing `queue_capacity`.
    pub queue_depth: AtomicUsize,
    pub can_write: AtomicBool,
    pub batches_committed: AtomicU64,
    pub ops_committed: AtomicU64,
    pub failed_batches: AtomicU64,
    pub lost_ops: AtomicU64,
    pub evicted_pending: AtomicU64,
    pub cleanup_deleted: AtomicU64,
    writer_cpu_us: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl MetricsCell {
    pub fn new(backend_name: &'static str, persistent: bool, queue_capacity: usize) -> Self {
        MetricsCell {
            backend_name,
            persistent,
            queue_capacity,
            queue_depth: AtomicUsize::new(0),
            can_write: AtomicBool::new(true),
            batches_committed: AtomicU64::new(0),
            ops_committed: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            lost_ops: AtomicU64::new(0),
            evicted_pending: AtomicU64::new(0),
            cleanup_deleted: AtomicU64::new(0),
            writer_cpu_us: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn set_last_error(&self, error: String) {
        let mut slot = self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(error);
    }

    pub fn committed(&self, ops: usize) {
        self.batches_committed.fetch_add(1, Ordering::Relaxed);
        self.ops_committed.fetch_add(ops as u64, Ordering::Relaxed);
        self.can_write.store(true, Ordering::Relaxed);
    }

    /// Reads the calling thread's CPU clock into `writer_cpu_us`; called by the writer thread
    /// after each commit (one clock read per batch).
    pub fn record_writer_cpu(&self) {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let micros = u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
            + u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000;
        self.writer_cpu_us.store(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StoreMetrics {
        StoreMetrics {
            backend_name: self.backend_name,
            persistent: self.persistent,
            can_write: self.can_write.load(Ordering::Relaxed),
            queue_capacity: self.queue_capacity,
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            batches_committed: self.batches_committed.load(Ordering::Relaxed),
            ops_committed: self.ops_committed.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            lost_ops: self.lost_ops.load(Ordering::Relaxed),
            evicted_pending: self.evicted_pending.load(Ordering::Relaxed),
            cleanup_deleted: self.cleanup_deleted.load(Ordering::Relaxed),
            writer_cpu_us: self.writer_cpu_us.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}
