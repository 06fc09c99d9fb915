//! The dead letter queue subsystem.
//!
//! Every message the router gives up on reaches the [`DlqSink`] (the router's failure hook),
//! which hands it to the [`DlqService`] task. The service owns the dead letter store (SQLite,
//! PostgreSQL behind a local spool, or memory) and
//! - stores the letter with everything needed for an exact replay, and schedules an automatic
//!   replay with exponential backoff and jitter for reasons worth retrying;
//! - replays due letters, and at once every pending letter of an agent that connects, by
//!   sending them back into the router (`RouterMsg::Replay`); a replay counts as delivered only
//!   when the recipient ACKs it;
//! - enforces retention and the entry limit, raises one alert (log + system message to
//!   `@users`) when unacknowledged letters cross the threshold and clears it with hysteresis;
//! - answers the `DLQ_*` requests of operators;
//! - while PostgreSQL is unreachable keeps letters in the local spool, reports the degraded
//!   state, and drains the spool when the server is back.
//!
//! None of this touches the routing hot path: the router only `try_send`s to this task.

mod requests;
mod service;

use std::sync::{Arc, Mutex};

use relay_dlq::{DlqStore, ResilientDlq};
use relay_protocol::Envelope;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::connection::Outlet;
use crate::failure::{DeadLetter, FailureSink};

pub use service::DlqService;

/// The dead letter store the daemon runs with.
#[derive(Clone)]
pub enum DlqBackend {
    /// SQLite or memory.
    Plain(Arc<dyn DlqStore>),
    /// PostgreSQL with a local spool for when it is unreachable.
    Resilient(Arc<ResilientDlq>),
}

impl DlqBackend {
    pub fn store(&self) -> Arc<dyn DlqStore> {
        match self {
            DlqBackend::Plain(s) => s.clone(),
            DlqBackend::Resilient(r) => r.clone(),
        }
    }

    /// The backend's health for the status. Until the spool has been counted the backend
    /// counts as degraded: the spool may still hold letters of a previous run, and "not
    /// degraded, nothing spooled" would claim they are in PostgreSQL.
    pub(crate) fn health(&self) -> BackendHealth {
        match self {
            DlqBackend::Resilient(r) => {
                let h = r.status();
                let checking_spool = !h.spool_checked && h.last_error.is_none();
                let last_error = match h.last_error {
                    None if !h.spool_checked => {
                        Some("the local spool has not been checked since start".to_string())
                    }
                    e => e,
                };
                BackendHealth {
                    degraded: h.degraded || !h.spool_checked,
                    checking_spool,
                    spooled: h.spooled,
                    last_error,
                }
            }
            DlqBackend::Plain(_) => BackendHealth::default(),
        }
    }
}

/// What [`DlqBackend::health`] reports.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct BackendHealth {
    pub degraded: bool,
    /// Degraded only because the spool of an earlier run has not been checked yet (the moments
    /// after start-up), not because PostgreSQL failed.
    pub checking_spool: bool,
    pub spooled: u64,
    pub last_error: Option<String>,
}

/// What the router tells the service.
pub enum DlqCommand {
    Letter(Box<DeadLetter>),
    /// A replayed message was acknowledged by its recipient.
    Delivered {
        dlq_id: String,
    },
    /// A replay could not be delivered.
    ReplayFailed {
        dlq_id: String,
        error: String,
    },
    /// An agent connected: replay its pending letters now.
    TargetOnline {
        name: String,
    },
    /// A `DLQ_*` request, answered directly on the requester's connection.
    Request {
        env: Box<Envelope>,
        requester: String,
        outlet: Outlet,
    },
}

/// Counters since start, shown by DLQ_STATS, STATUS and METRICS.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqCounters {
    pub added: u64,
    pub replayed: u64,
    pub delivered: u64,
    pub replay_failed: u64,
    pub exhausted: u64,
    pub expired: u64,
    pub evicted_acknowledged: u64,
    pub evicted_unacknowledged: u64,
    pub alerts_raised: u64,
    pub store_errors: u64,
    /// Letters that could not be queued for the service (its queue was full).
    pub dropped: u64,
}

/// The service's state as the router reports it (STATUS, HEALTH, METRICS).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqStatus {
    pub enabled: bool,
    pub backend: String,
    pub degraded: bool,
    /// Degraded only while the spool of an earlier run is being checked after start-up.
    pub checking_spool: bool,
    pub spooled: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub unacknowledged: u64,
    pub alerting: bool,
    pub counters: DlqCounters,
}

impl DlqStatus {
    /// Takes the backend's health.
    pub(crate) fn set_health(&mut self, health: BackendHealth) {
        self.degraded = health.degraded;
        self.checking_spool = health.checking_spool;
        self.spooled = health.spooled;
        self.last_error = health.last_error;
    }
}

/// The router's handle on the service.
#[derive(Clone)]
pub struct DlqHandle {
    tx: mpsc::Sender<DlqCommand>,
    pub status: Arc<Mutex<DlqStatus>>,
}

impl DlqHandle {
    fn send(&self, cmd: DlqCommand) {
        if let Err(e) = self.tx.try_send(cmd) {
            let what = match e.into_inner() {
                DlqCommand::Letter(l) => {
                    format!("dead letter {} ({})", l.message.id, l.reason.as_str())
                }
                DlqCommand::Delivered { dlq_id } => format!("delivery of {dlq_id}"),
                DlqCommand::ReplayFailed { dlq_id, .. } => format!("failed replay of {dlq_id}"),
                DlqCommand::TargetOnline { name } => format!("replay for {name}"),
                DlqCommand::Request { .. } => "an operator request".to_string(),
            };
            if let Ok(mut s) = self.status.lock() {
                s.counters.dropped += 1;
            }
            tracing::error!("dead letter queue is overloaded; dropped {what}");
        }
    }

    pub fn delivered(&self, dlq_id: String) {
        self.send(DlqCommand::Delivered { dlq_id });
    }

    pub fn replay_failed(&self, dlq_id: String, error: String) {
        self.send(DlqCommand::ReplayFailed { dlq_id, error });
    }

    pub fn target_online(&self, name: String) {
        self.send(DlqCommand::TargetOnline { name });
    }

    pub fn request(&self, env: Envelope, requester: String, outlet: Outlet) {
        self.send(DlqCommand::Request {
            env: Box::new(env),
            requester,
            outlet,
        });
    }

    pub fn snapshot(&self) -> DlqStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The router's failure hook when the DLQ is enabled: log, then queue for the service.
pub struct DlqSink {
    handle: DlqHandle,
}

impl FailureSink for DlqSink {
    fn dead_letter(&mut self, letter: DeadLetter) {
        crate::failure::log_dead_letter(&letter);
        self.handle.send(DlqCommand::Letter(Box::new(letter)));
    }
}

/// Capacity of the service's command queue.
pub const DLQ_QUEUE: usize = 65_536;

/// Creates the service, its router handle and the failure sink.
pub fn channel(
    backend: DlqBackend,
    config: relay_config::DlqSection,
    messages: relay_store::StoreHandle,
    router_tx: mpsc::Sender<crate::router::RouterMsg>,
) -> (DlqService, DlqHandle, DlqSink) {
    let (tx, rx) = mpsc::channel(DLQ_QUEUE);
    let mut status = DlqStatus {
        enabled: true,
        backend: backend.store().backend().to_string(),
        ..Default::default()
    };
    status.set_health(backend.health());
    let status = Arc::new(Mutex::new(status));
    let handle = DlqHandle {
        tx,
        status: status.clone(),
    };
    let service = DlqService::new(backend, config, messages, router_tx, rx, status);
    (service, handle.clone(), DlqSink { handle })
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_dlq::MemoryDlq;

    #[tokio::test]
    async fn an_unchecked_spool_reads_as_starting_not_as_an_outage() {
        let primary: Arc<dyn DlqStore> = Arc::new(MemoryDlq::new());
        let spool: Arc<dyn DlqStore> = Arc::new(MemoryDlq::new());
        let resilient = Arc::new(ResilientDlq::new(primary, spool));
        let backend = DlqBackend::Resilient(resilient.clone());

        let starting = backend.health();
        assert!(starting.degraded, "{starting:?}");
        assert!(starting.checking_spool, "{starting:?}");

        resilient.drain(0).await.expect("drains an empty spool");
        assert_eq!(backend.health(), BackendHealth::default());
    }
}
