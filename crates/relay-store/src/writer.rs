//! The writer thread: sole owner of the backend.
//!
//! Each cycle blocks for one command, then drains whatever else is already
//! queued (up to `max_batch` writes) and commits all those writes in a single
//! backend transaction (group commit). Queries, flush barriers and cleanup
//! requests received in the same cycle are answered after that commit, so a
//! query always sees every write submitted before it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::metrics::MetricsCell;
use crate::types::{now_ms, Query, QueryResult, WriteOp};

/// Attempts made to commit a batch before it is split up or dropped.
pub(crate) const COMMIT_ATTEMPTS: u32 = 5;
/// Delay before the first retry; doubled for each further retry.
pub(crate) const RETRY_BASE_DELAY: Duration = Duration::from_millis(25);

/// Messages sent to the writer thread.
// `Write` is the largest and the dominant variant; boxing it would cost an
// allocation per write without shrinking the queue.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Write(WriteOp),
    Query(Query, oneshot::Sender<Result<QueryResult, StoreError>>),
    Cleanup(i64, oneshot::Sender<Result<u64, StoreError>>),
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Shutdown(std::sync::mpsc::Sender<Result<(), StoreError>>),
}

/// State shared between the handles and the writer thread.
#[derive(Debug)]
pub(crate) struct Core {
    pub metrics: MetricsCell,
    /// Set once shutdown starts; new writes and queries are refused.
    pub closed: AtomicBool,
    /// Writers parked in `write_blocking` waiting for queue space.
    pub blocked_writers: AtomicUsize,
    pub space_lock: Mutex<()>,
    pub space: Condvar,
}

impl Core {
    pub fn new(metrics: MetricsCell) -> Self {
        Core {
            metrics,
            closed: AtomicBool::new(false),
            blocked_writers: AtomicUsize::new(0),
            space_lock: Mutex::new(()),
            space: Condvar::new(),
        }
    }

    fn wake_blocked_writers(&self) {
        if self.blocked_writers.load(Ordering::SeqCst) > 0 {
            let _guard = self
                .space_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.space.notify_all();
        }
    }
}

pub(crate) struct Writer {
    pub backend: Box<dyn Backend>,
    pub rx: Receiver<Command>,
    pub core: Arc<Core>,
    pub max_batch: usize,
    pub retention: Option<Duration>,
    pub cleanup_interval: Duration,
}

/// Per-cycle buffers.
struct Cycle {
    writes: Vec<WriteOp>,
    waiting: Vec<Command>,
    shutdowns: Vec<std::sync::mpsc::Sender<Result<(), StoreError>>>,
}

impl Writer {
    pub fn run(mut self) {
        let mut next_cleanup = Instant::now();
        self.cleanup_if_due(&mut next_cleanup);
        let mut cycle = Cycle {
            writes: Vec::with_capacity(self.max_batch.min(4096)),
            waiting: Vec::new(),
            shutdowns: Vec::new(),
        };
        loop {
            let Some(first) = self.next_command(&mut next_cleanup) else {
                // Every handle is gone; everything received has been committed.
                break;
            };
            self.take(first, &mut cycle);
            while cycle.writes.len() < self.max_batch
                && cycle.waiting.len() < self.max_batch
                && cycle.shutdowns.is_empty()
            {
                match self.rx.try_recv() {
                    Ok(cmd) => self.take(cmd, &mut cycle),
                    Err(_) => break,
                }
            }
            self.core.wake_blocked_writers();
            coalesce(&mut cycle.writes);
            let batch_len = cycle.writes.len();
            let lost = self.commit(&mut cycle.writes);
            // A burst grows the batch buffer to tens of megabytes; do not keep that when idle.
            if batch_len < 1024 && cycle.writes.capacity() > 8192 {
                cycle.writes.shrink_to(1024);
            }
            self.answer(&mut cycle.waiting, lost);
            self.cleanup_if_due(&mut next_cleanup);
            self.core.metrics.record_writer_cpu();
            if !cycle.shutdowns.is_empty() {
                self.shutdown(cycle);
                return;
            }
        }
        if let Err(e) = self.backend.flush() {
            tracing::error!(error = %e, "store backend flush failed at shutdown");
        }
        tracing::debug!("store writer thread finished");
    }

    /// Block for the next command, running retention whenever it falls due.
    /// `None` once every sender is gone.
    fn next_command(&mut self, next_cleanup: &mut Instant) -> Option<Command> {
        if self.retention.is_none() {
            return self.rx.recv().ok();
        }
        loop {
            let wait = next_cleanup.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(cmd) => return Some(cmd),
                Err(RecvTimeoutError::Timeout) => self.cleanup_if_due(next_cleanup),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn take(&self, cmd: Command, cycle: &mut Cycle) {
        match cmd {
            Command::Write(op) => {
                self.core.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
                cycle.writes.push(op);
            }
            Command::Shutdown(reply) => cycle.shutdowns.push(reply),
            other => cycle.waiting.push(other),
        }
    }

    /// Commit `writes` as one transaction, retrying with backoff. A batch that
    /// keeps failing is split and committed op by op so one bad operation
    /// cannot take the rest down with it. Returns the number of ops dropped.
    fn commit(&mut self, writes: &mut Vec<WriteOp>) -> u64 {
        if writes.is_empty() {
            return 0;
        }
        let metrics = &self.core.metrics;
        let mut delay = RETRY_BASE_DELAY;
        for attempt in 1..=COMMIT_ATTEMPTS {
            match self.backend.apply(writes) {
                Ok(()) => {
                    metrics.committed(writes.len());
                    writes.clear();
                    return 0;
                }
                Err(e) => {
                    metrics.can_write.store(false, Ordering::Relaxed);
                    metrics.set_last_error(e.to_string());
                    tracing::warn!(
                        attempt,
                        ops = writes.len(),
                        error = %e,
                        "store commit failed"
                    );
                    if attempt < COMMIT_ATTEMPTS {
                        std::thread::sleep(delay);
                        delay *= 2;
                    }
                }
            }
        }
        metrics.failed_batches.fetch_add(1, Ordering::Relaxed);
        let mut lost = 0u64;
        if writes.len() > 1 {
            for op in writes.iter() {
                match self.backend.apply(std::slice::from_ref(op)) {
                    Ok(()) => metrics.committed(1),
                    Err(e) => {
                        metrics.can_write.store(false, Ordering::Relaxed);
                        metrics.set_last_error(e.to_string());
                        lost += 1;
                    }
                }
            }
        } else {
            lost = writes.len() as u64;
        }
        writes.clear();
        if lost > 0 {
            metrics.lost_ops.fetch_add(lost, Ordering::Relaxed);
            tracing::error!(
                lost,
                "store could not commit writes after {COMMIT_ATTEMPTS} attempts; they were dropped"
            );
        }
        lost
    }

    fn answer(&mut self, waiting: &mut Vec<Command>, lost: u64) {
        self.core.metrics.evicted_pending.store(
            self.backend.evicted_pending(),
            std::sync::atomic::Ordering::Relaxed,
        );
        for cmd in waiting.drain(..) {
            match cmd {
                Command::Query(q, reply) => {
                    let result = self.backend.query(&q);
                    if let Err(e) = &result {
                        tracing::debug!(error = %e, "store query failed");
                    }
                    // The caller may have stopped waiting; that is fine.
                    let _ = reply.send(result);
                }
                Command::Cleanup(older_than, reply) => {
                    let _ = reply.send(self.cleanup(older_than));
                }
                Command::Flush(reply) => {
                    let result = if lost > 0 {
                        Err(StoreError::WritesLost { count: lost })
                    } else {
                        Ok(())
                    };
                    let _ = reply.send(result);
                }
                Command::Write(_) | Command::Shutdown(_) => {
                    tracing::error!("store writer misrouted a command");
                }
            }
        }
    }

    fn cleanup(&mut self, older_than: i64) -> Result<u64, StoreError> {
        match self.backend.cleanup(older_than) {
            Ok(deleted) => {
                self.core
                    .metrics
                    .cleanup_deleted
                    .fetch_add(deleted, Ordering::Relaxed);
                if deleted > 0 {
                    tracing::info!(deleted, older_than, "store retention removed old messages");
                }
                Ok(deleted)
            }
            Err(e) => {
                self.core.metrics.set_last_error(e.to_string());
                tracing::warn!(error = %e, "store retention pass failed");
                Err(e)
            }
        }
    }

    fn cleanup_if_due(&mut self, next_cleanup: &mut Instant) {
        let Some(retention) = self.retention else {
            return;
        };
        let now = Instant::now();
        if now < *next_cleanup {
            return;
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(retention_ms);
        // Failures are logged and recorded by `cleanup`; try again next time.
        let _ = self.cleanup(cutoff);
        // A huge interval means "practically never"; avoid Instant overflow.
        *next_cleanup = now
            .checked_add(self.cleanup_interval)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 60 * 60));
    }

    /// Refuse new work, commit everything already admitted, flush the
    /// backend and acknowledge every shutdown request.
    fn shutdown(&mut self, mut cycle: Cycle) {
        self.core.closed.store(true, Ordering::SeqCst);
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => {
                    self.take(cmd, &mut cycle);
                    if cycle.writes.len() >= self.max_batch {
                        let batch_len = cycle.writes.len();
                        let lost = self.commit(&mut cycle.writes);
                        // A burst grows the batch buffer to tens of megabytes; do not keep that when idle.
                        if batch_len < 1024 && cycle.writes.capacity() > 8192 {
                            cycle.writes.shrink_to(1024);
                        }
                        self.answer(&mut cycle.waiting, lost);
                    }
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // A writer that saw the store open has already counted its
                    // write in `queue_depth`; wait until it has been received.
                    if self.core.metrics.queue_depth.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
        self.core.wake_blocked_writers();
        let lost = self.commit(&mut cycle.writes);
        self.answer(&mut cycle.waiting, lost);
        let result = self.backend.flush();
        if let Err(e) = &result {
            tracing::error!(error = %e, "store backend flush failed at shutdown");
        }
        let lost_total = self.core.metrics.lost_ops.load(Ordering::Relaxed);
        for reply in cycle.shutdowns {
            let answer = match &result {
                Ok(()) if lost > 0 => Err(StoreError::WritesLost { count: lost }),
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Internal(format!("backend flush failed: {e}"))),
            };
            let _ = reply.send(answer);
        }
        tracing::debug!(lost_total, "store writer thread shut down");
    }
}

/// Folds status, attempt and delivery updates into an `InsertMessage` of the same id queued
/// earlier in the same batch. Under load most messages are acknowledged before their insert is
/// committed, so this turns an INSERT plus an UPDATE into one INSERT. The result is identical:
/// the ops would have run in this order inside one transaction anyway.
pub(crate) fn coalesce(writes: &mut Vec<WriteOp>) {
    if writes.len() < 2 {
        return;
    }
    let mut inserted: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut keep = vec![true; writes.len()];
    for i in 0..writes.len() {
        let target = match &writes[i] {
            WriteOp::InsertMessage(m) => {
                inserted.insert(m.id.clone(), i);
                continue;
            }
            WriteOp::SetStatus { id, .. }
            | WriteOp::SetDelivery { id, .. }
            | WriteOp::IncrementAttempts { id } => inserted.get(id).copied(),
            _ => None,
        };
        let Some(at) = target else { continue };
        let update = std::mem::replace(
            &mut writes[i],
            WriteOp::IncrementAttempts { id: String::new() },
        );
        let WriteOp::InsertMessage(m) = &mut writes[at] else {
            continue;
        };
        match update {
            WriteOp::SetStatus {
                status, last_error, ..
            } => {
                m.status = status;
                if last_error.is_some() {
                    m.last_error = last_error;
                }
            }
            WriteOp::SetDelivery {
                session_id,
                seq,
                status,
                ..
            } => {
                m.delivery_session_id = Some(session_id);
                m.delivery_seq = Some(seq);
                m.status = status;
            }
            WriteOp::IncrementAttempts { .. } => m.attempts += 1,
            _ => {}
        }
        keep[i] = false;
    }
    let mut flags = keep.into_iter();
    writes.retain(|_| flags.next().unwrap_or(true));
}

#[cfg(test)]
mod coalesce_tests {
    use super::*;
    use crate::types::{MessageStatus, StoredMessage};

    #[test]
    fn updates_fold_into_an_insert_of_the_same_batch() {
        let mut ops = vec![
            WriteOp::InsertMessage(StoredMessage::new("a", 1, "A", "B", "x")),
            WriteOp::SetStatus {
                id: "other".into(),
                status: MessageStatus::Acked,
                last_error: None,
            },
            WriteOp::IncrementAttempts { id: "a".into() },
            WriteOp::SetStatus {
                id: "a".into(),
                status: MessageStatus::Failed,
                last_error: Some("boom".into()),
            },
            WriteOp::SetStatus {
                id: "a".into(),
                status: MessageStatus::Acked,
                last_error: None,
            },
        ];
        coalesce(&mut ops);
        assert_eq!(ops.len(), 2, "{ops:?}");
        let WriteOp::InsertMessage(m) = &ops[0] else {
            panic!("insert first: {ops:?}")
        };
        assert_eq!(m.status, MessageStatus::Acked);
        assert_eq!(m.attempts, 1);
        assert_eq!(
            m.last_error.as_deref(),
            Some("boom"),
            "a None error keeps the earlier one"
        );
        assert!(matches!(&ops[1], WriteOp::SetStatus { id, .. } if id == "other"));
    }
}
