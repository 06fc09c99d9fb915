//! The context compaction subsystem (`[compaction]`).
//!
//! The router, after it has routed a message (direct, broadcast, `@users`, channel, consensus
//! traffic), records it in an [`EventBatch`] handed to the [`CompactionService`] with a
//! non-blocking `try_send`; when the queue is full (`compaction.queue_events`) the batch is
//! dropped and counted, never waited for, and once the service has caught up it rebuilds the
//! histories it holds from storage, so the gap does not stay in them. The service owns
//! everything else:
//! - one [`AgentHistory`](relay_compaction::AgentHistory) per participant (sender and
//!   recipients), rebuilt lazily from storage after a restart: the stored snapshot's compacted
//!   history, then the messages the agent sent or received after it (at most `max_history`);
//! - after each push, the cheap `needs_compaction` check; past the threshold it compacts a copy
//!   of the history in a spawned task (never two at once for one agent), applies the result,
//!   stores it as the agent's snapshot (`context_snapshots` table) and, with `inject`, hands the
//!   rendered context to the router for delivery ([`ContextDelivery`]);
//! - on an agent's (re)connection, the stored snapshot is offered for that session;
//! - `CONTEXT` requests, answered on the requester's connection (or by the router when a
//!   delivery was asked for, so that the answer says whether it was delivered or deferred).
//!
//! The router delivers a context as a tracked DELIVER from `_system` (`kind:"state"`,
//! `data._contextCompaction`), and never while a sync (`[await]`) wait involving the agent is
//! pending: it defers it and re-checks every second.

mod events;
mod report;
mod requests;
mod service;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use relay_compaction::{CompactionConfig, Strategy, SummarizerConfig, TokenizerMode};
use relay_config::CompactionSection;
use relay_protocol::{ContextPayload, ContextResponsePayload};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::connection::Outlet;

pub use events::{EventBatch, EventFields};
pub(crate) use requests::answer_injection;
pub use service::CompactionService;

/// Capacity of the command channel (batches of events count as one command).
const COMMAND_QUEUE: usize = 4096;
/// Routed messages are handed over when this many are recorded, or when the last hand-over is
/// this old, so that a busy router wakes the service a few hundred times a second at most.
const FLUSH_EVENTS: usize = 1024;
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// A `CONTEXT` request handed to the service.
#[derive(Debug)]
pub struct ContextRequest {
    pub request_id: String,
    pub payload: ContextPayload,
    pub outlet: Outlet,
}

/// What the router tells the service.
#[derive(Debug)]
pub enum CompactionCommand {
    /// The messages the router routed in one pass of its loop.
    Events(EventBatch),
    /// An agent registered (a new or resumed session): offer it its stored snapshot.
    AgentOnline {
        agent: String,
        session_id: String,
    },
    Request(Box<ContextRequest>),
    /// The agent was removed (REMOVE_AGENT): forget its history.
    Forget {
        agent: String,
    },
}

/// The answer to a `CONTEXT{inject:true}` the router sends once it has tried the delivery.
#[derive(Debug)]
pub struct ContextReply {
    pub outlet: Outlet,
    pub request_id: String,
    pub response: ContextResponsePayload,
}

/// A compacted context for the router to deliver to `agent`.
#[derive(Debug)]
pub struct ContextDelivery {
    pub agent: String,
    pub snapshot_id: String,
    /// The rendered context (the message body).
    pub body: String,
    /// The `data._contextCompaction` object.
    pub info: serde_json::Value,
    /// A reconnection offer: deliver only into this session, and only if this snapshot was not
    /// delivered in it yet.
    pub session: Option<String>,
    /// Set for `CONTEXT{inject:true}`: delivered even if it was already delivered in this
    /// session, and answered by the router.
    pub reply: Option<ContextReply>,
}

/// Counters since start, shown by STATUS and METRICS.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactionCounters {
    /// Routed messages recorded.
    pub events: u64,
    /// Routed messages not recorded because the service's queue was full.
    pub dropped_events: u64,
    /// Histories rebuilt from storage after routed messages were dropped.
    pub histories_repaired: u64,
    pub compactions: u64,
    /// Compactions that could not reach the target (the report says why).
    pub cannot_reach_target: u64,
    /// Compactions where the external summariser failed and the built-in one was used.
    pub summarizer_fallbacks: u64,
    pub snapshots_stored: u64,
    /// Compacted contexts delivered to agents.
    pub injections: u64,
    /// Deliveries held back because a sync wait involving the agent was pending.
    pub deferred_for_sync: u64,
    /// Deliveries that could not be sent (e.g. larger than `daemon.max_frame_bytes`).
    pub injection_failures: u64,
    /// Histories rebuilt from storage.
    pub histories_loaded: u64,
    pub store_errors: u64,
}

/// The service's state as STATUS and METRICS report it.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactionStatus {
    pub enabled: bool,
    pub tokenizer: String,
    pub inject: bool,
    pub max_tokens: usize,
    pub threshold_tokens: usize,
    pub target_tokens: usize,
    /// Agent histories held in memory.
    pub histories: usize,
    /// Compactions running now.
    pub compacting: usize,
    /// Routed messages waiting for the service.
    pub queued_events: usize,
    /// How long the last compaction took.
    pub last_compaction_ms: u64,
    pub counters: CompactionCounters,
}

/// The router's hand-overs as both sides see them.
#[derive(Debug, Default)]
pub(crate) struct QueueGauge {
    /// Events handed over and not yet processed by the service.
    pub queued: AtomicUsize,
    /// Events dropped since start (the queue was full); the service repairs the histories
    /// when this grows.
    pub dropped: AtomicU64,
}

/// The router's handle on the service.
pub struct CompactionHandle {
    tx: mpsc::Sender<CompactionCommand>,
    status: Arc<Mutex<CompactionStatus>>,
    gauge: Arc<QueueGauge>,
    /// `compaction.queue_events`.
    capacity: usize,
    /// Events recorded in the current pass of the router's loop.
    pub batch: EventBatch,
    /// When to log the next warning about dropped events.
    warn_at: u64,
    /// When the last batch was handed over.
    last_flush: std::time::Instant,
    /// The counters the router keeps itself (`dropped_events`, `injections`,
    /// `deferred_for_sync`, `injection_failures`), merged into [`Self::snapshot`].
    pub counters: CompactionCounters,
}

impl CompactionHandle {
    /// Hands the recorded messages over if enough are waiting or the last hand-over is a few
    /// milliseconds old (called after every pass of the router's loop, and at least every
    /// second).
    pub fn flush_due(&mut self) {
        if self.batch.len() >= FLUSH_EVENTS
            || (!self.batch.is_empty() && self.last_flush.elapsed() >= FLUSH_INTERVAL)
        {
            self.flush();
        }
    }

    /// When [`Self::flush_due`] will hand over the messages recorded so far (`None`: nothing is
    /// waiting).
    pub fn flush_at(&self) -> Option<std::time::Instant> {
        (!self.batch.is_empty()).then(|| self.last_flush + FLUSH_INTERVAL)
    }

    /// Hands the recorded messages to the service in one batch (one wake-up), without waiting:
    /// when the service is too far behind they are dropped and counted.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.last_flush = std::time::Instant::now();
        let n = self.batch.len();
        let next = self.batch.empty_like();
        let batch = std::mem::replace(&mut self.batch, next);
        let room = self.gauge.queued.load(Ordering::Relaxed) + n <= self.capacity;
        if room {
            self.gauge.queued.fetch_add(n, Ordering::Relaxed);
            match self.tx.try_send(CompactionCommand::Events(batch)) {
                Ok(()) => return,
                Err(_) => {
                    self.gauge.queued.fetch_sub(n, Ordering::Relaxed);
                }
            }
        }
        self.counters.dropped_events += n as u64;
        self.gauge.dropped.fetch_add(n as u64, Ordering::Relaxed);
        if self.counters.dropped_events >= self.warn_at {
            self.warn_at = self.counters.dropped_events.saturating_mul(2);
            tracing::warn!(
                dropped = self.counters.dropped_events,
                "the compaction service is behind; routed messages are left out of agent histories \
                 until it has caught up and rebuilt them from storage"
            );
        }
    }

    /// Hands over a command other than events (after the events recorded before it); false
    /// when the queue is full.
    pub fn command(&mut self, cmd: CompactionCommand) -> bool {
        self.flush();
        self.tx.try_send(cmd).is_ok()
    }

    /// The service's status with the router's own counters filled in.
    pub fn snapshot(&self) -> CompactionStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let c = &self.counters;
        s.counters.dropped_events = c.dropped_events;
        s.counters.injections = c.injections;
        s.counters.deferred_for_sync = c.deferred_for_sync;
        s.counters.injection_failures = c.injection_failures;
        s.queued_events = self.gauge.queued.load(Ordering::Relaxed);
        s
    }
}

/// Runs the service on its own thread under the idle scheduling policy (`SCHED_IDLE` on Linux),
/// with its own single-threaded runtime: history bookkeeping and compactions use the CPU that
/// routing leaves idle and give way at once when the router, the storage thread or anything
/// else on the machine wants it. Under a load that saturates every core the service falls
/// behind; once its queue is full, routed messages are left out (counted in `droppedEvents`)
/// rather than slowing routing down, and the histories are rebuilt from storage when the
/// service has caught up (`historiesRepaired`).
///
/// The returned receiver completes when the service has stopped (after the router is gone).
pub fn spawn(service: CompactionService) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("relay-compaction".into())
        .spawn(move || {
            lower_priority();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(service.run()),
                Err(e) => tracing::error!("cannot start the compaction service's runtime: {e}"),
            }
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

/// Puts the calling thread (and the threads and processes it starts) under the idle policy.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux the policy belongs to the thread: pid 0 is the calling thread.
        // SAFETY: sched_setscheduler reads the sched_param it is given, which lives on this
        // stack frame for the whole call, and keeps no pointer to it.
        let param = libc::sched_param { sched_priority: 0 };
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::debug!(
                "cannot lower the compaction thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Converts `[compaction]` into the library's configuration, validated; the error names the
/// key and says what is allowed.
pub fn library_config(section: &CompactionSection) -> Result<CompactionConfig, String> {
    let strategies = section
        .strategies
        .iter()
        .map(|s| s.parse::<Strategy>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let tokenizer = section
        .tokenizer
        .parse::<TokenizerMode>()
        .map_err(|e| e.to_string())?;
    let config = CompactionConfig {
        enabled: section.enabled,
        max_tokens: section.max_tokens,
        threshold: section.threshold,
        target_usage: section.target_usage,
        keep_recent: section.keep_recent,
        min_importance: u8::try_from(section.min_importance).unwrap_or(u8::MAX),
        dedupe_similarity: section.dedupe_similarity,
        strategies,
        tokenizer,
        summarizer: SummarizerConfig {
            command: (!section.summarizer.command.trim().is_empty())
                .then(|| section.summarizer.command.clone()),
            timeout_ms: section.summarizer.timeout_ms,
            max_summary_tokens: section.summarizer.max_summary_tokens,
        },
        max_history: section.max_history,
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Creates the service and the router's handle. Fails (naming the key) when the section is
/// invalid.
pub fn channel(
    section: &CompactionSection,
    store: relay_store::StoreHandle,
    router_tx: mpsc::Sender<crate::router::RouterMsg>,
) -> Result<(CompactionService, CompactionHandle), String> {
    let config = library_config(section)?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let gauge = Arc::new(QueueGauge::default());
    let status = Arc::new(Mutex::new(CompactionStatus {
        enabled: true,
        tokenizer: config.tokenizer.as_str().to_string(),
        inject: section.inject,
        max_tokens: config.max_tokens,
        threshold_tokens: config.threshold_tokens(),
        target_tokens: config.target_tokens(),
        ..CompactionStatus::default()
    }));
    let service = CompactionService::new(
        config,
        section.inject,
        store,
        router_tx,
        rx,
        status.clone(),
        gauge.clone(),
    )?;
    Ok((
        service,
        CompactionHandle {
            tx,
            status,
            gauge,
            capacity: section.queue_events.max(1),
            batch: EventBatch::default(),
            warn_at: 1,
            last_flush: std::time::Instant::now(),
            counters: CompactionCounters::default(),
        },
    ))
}
