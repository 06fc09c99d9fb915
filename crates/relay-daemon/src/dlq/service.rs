//! The DLQ task: storing, scheduling, replaying, alerting, cleaning up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_config::DlqSection;
use relay_dlq::{
    DeadLetter as Letter, DlqQuery, DlqState, DlqStore, FailureReason as DlqReason, NewDeadLetter,
};
use relay_store::{MessageStatus, SignatureJson, StoreHandle};
use tokio::sync::mpsc;

use super::{DlqBackend, DlqCommand, DlqCounters, DlqStatus};
use crate::failure::DeadLetter;
use crate::router::{ReplayRequest, RouterMsg};

pub struct DlqService {
    pub(super) backend: DlqBackend,
    pub(super) store: Arc<dyn DlqStore>,
    pub(super) config: DlqSection,
    messages: StoreHandle,
    router_tx: mpsc::Sender<RouterMsg>,
    rx: mpsc::Receiver<DlqCommand>,
    pub(super) status: Arc<Mutex<DlqStatus>>,
    pub(super) counters: DlqCounters,
    alerting: bool,
    unacknowledged: u64,
}

pub(super) fn now_ms() -> i64 {
    relay_protocol::now_ms() as i64
}

/// Reasons where delivering again later can succeed.
fn retryable(r: DlqReason) -> bool {
    matches!(
        r,
        DlqReason::MaxRetriesExceeded
            | DlqReason::ConnectionLost
            | DlqReason::TargetNotFound
            | DlqReason::RateLimited
            | DlqReason::Unknown
    )
}

impl DlqService {
    pub(super) fn new(
        backend: DlqBackend,
        config: DlqSection,
        messages: StoreHandle,
        router_tx: mpsc::Sender<RouterMsg>,
        rx: mpsc::Receiver<DlqCommand>,
        status: Arc<Mutex<DlqStatus>>,
    ) -> DlqService {
        DlqService {
            store: backend.store(),
            backend,
            config,
            messages,
            router_tx,
            rx,
            status,
            counters: DlqCounters::default(),
            alerting: false,
            unacknowledged: 0,
        }
    }

    /// Runs until the router is gone (its handles dropped); every letter queued before that is
    /// stored first.
    pub async fn run(mut self) {
        // Before any letter or request: a previous run may have left letters in the spool, and
        // the status must not report it empty before it has been looked at.
        self.drain_spool().await;
        self.publish();
        self.recover_interrupted_replays().await;
        let mut check = tokio::time::interval(Duration::from_millis(self.config.check_interval_ms));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cleanup =
            tokio::time::interval(Duration::from_millis(self.config.cleanup_interval_ms));
        cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = check.tick() => {
                    self.drain_spool().await;
                    if self.config.auto_retry {
                        self.retry_due().await;
                    }
                    self.check_alert().await;
                    self.publish();
                }
                _ = cleanup.tick() => self.cleanup().await,
            }
        }
        self.drain_spool().await;
        self.publish();
        if let Err(e) = self.store.close().await {
            tracing::warn!("closing the dead letter store: {e}");
        }
    }

    async fn handle(&mut self, cmd: DlqCommand) {
        match cmd {
            DlqCommand::Letter(letter) => self.add(*letter).await,
            DlqCommand::Delivered { dlq_id } => {
                match self
                    .store
                    .set_state(&dlq_id, DlqState::Delivered, None, now_ms())
                    .await
                {
                    Ok(_) => {
                        self.counters.delivered += 1;
                        tracing::info!(%dlq_id, "dead letter delivered on replay");
                    }
                    Err(e) => self.store_error("marking a letter delivered", e),
                }
            }
            DlqCommand::ReplayFailed { dlq_id, error } => self.replay_failed(&dlq_id, &error).await,
            DlqCommand::TargetOnline { name } => {
                if self.config.auto_retry {
                    self.replay_for_target(&name).await;
                }
            }
            DlqCommand::Request {
                env,
                requester,
                outlet,
            } => self.answer(*env, &requester, outlet).await,
        }
        self.publish();
    }

    fn backoff_ms(&self, retries: i64) -> i64 {
        let exp = self.config.multiplier.powi(retries.clamp(0, 60) as i32);
        let base =
            (self.config.initial_backoff_ms as f64 * exp).min(self.config.max_backoff_ms as f64);
        (base * (0.85 + fastrand::f64() * 0.3)) as i64
    }

    fn expired(&self, l: &Letter, now: i64) -> bool {
        let ttl = l
            .ttl_ms
            .filter(|t| *t > 0)
            .or((self.config.default_ttl_ms > 0).then_some(self.config.default_ttl_ms as i64));
        ttl.is_some_and(|t| now - l.original_ts >= t)
    }

    async fn add(&mut self, letter: DeadLetter) {
        let m = &letter.message;
        if let Some(dlq_id) = m
            .data
            .as_ref()
            .and_then(|d| d.get("_replayOf"))
            .and_then(|v| v.as_str())
        {
            let dlq_id = dlq_id.to_string();
            return self.replay_failed(&dlq_id, &letter.error).await;
        }
        let now = now_ms();
        let reason = letter.reason;
        let mut new = NewDeadLetter::new(
            m.id.clone(),
            m.from.clone(),
            m.to.clone(),
            m.body.clone(),
            m.ts,
            reason,
        );
        new.msg_type = if letter.stored { "DELIVER" } else { "SEND" }.to_string();
        new.original_to = m.original_to.clone();
        new.topic = m.topic.clone();
        new.kind = m.kind.clone();
        new.data = m.data.clone();
        new.payload_meta = m.payload_meta.clone();
        new.payload_extra = m.payload_extra.clone();
        new.thread = m.thread.clone();
        new.sig = m.sig.as_ref().and_then(SignatureJson::to_value);
        new.error_message = Some(letter.error.clone());
        new.attempt_count = m.attempts;
        new.ttl_ms = m
            .payload_meta
            .as_ref()
            .and_then(|p| p.get("ttl_ms"))
            .and_then(|v| v.as_i64());
        let probe = Letter::from_new(new.clone(), now, None);
        let next = (self.config.auto_retry && retryable(reason) && !self.expired(&probe, now))
            .then(|| now + self.backoff_ms(0));
        match self.store.add(new, now, next).await {
            Ok(stored) => {
                self.counters.added += 1;
                self.unacknowledged += 1;
                tracing::debug!(dlq_id = %stored.id, reason = reason.as_str(), "dead letter stored");
            }
            Err(e) => self.store_error("storing a dead letter", e),
        }
    }

    async fn replay_failed(&mut self, dlq_id: &str, error: &str) {
        self.counters.replay_failed += 1;
        let letter = match self.store.get(dlq_id).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => return self.store_error("reading a replayed letter", e),
        };
        let now = now_ms();
        let (state, next) = if letter.dlq_retry_count >= self.config.max_dlq_retries as i64
            || self.expired(&letter, now)
        {
            self.counters.exhausted += 1;
            tracing::warn!(
                dlq_id,
                retries = letter.dlq_retry_count,
                "dead letter exhausted: {error}"
            );
            (DlqState::Exhausted, None)
        } else {
            (
                DlqState::Pending,
                self.config
                    .auto_retry
                    .then(|| now + self.backoff_ms(letter.dlq_retry_count)),
            )
        };
        if let Err(e) = self.store.set_state(dlq_id, state, next, now).await {
            self.store_error("rescheduling a dead letter", e);
        }
    }

    /// Sends a letter back into the router. `manual` replays ignore the retry budget and TTL.
    pub(super) async fn replay(&mut self, letter: Letter, manual: bool) -> bool {
        let now = now_ms();
        if letter.state == DlqState::Replaying || letter.state == DlqState::Delivered {
            return false;
        }
        // The stored message may have been acknowledged after all (a late ACK, or a delivery
        // from the recipient's backlog): then it is delivered and must not be sent twice.
        if letter.msg_type == "DELIVER" {
            if let Ok(Some(row)) = self
                .messages
                .message_by_id_prefix(letter.message_id.clone())
                .await
            {
                if row.id == letter.message_id && row.status == MessageStatus::Acked {
                    let _ = self
                        .store
                        .set_state(&letter.id, DlqState::Delivered, None, now)
                        .await;
                    self.counters.delivered += 1;
                    return false;
                }
            }
        }
        if !manual && self.expired(&letter, now) {
            let _ = self
                .store
                .set_state(&letter.id, DlqState::Exhausted, None, now)
                .await;
            self.counters.exhausted += 1;
            return false;
        }
        if let Err(e) = self
            .store
            .set_state(&letter.id, DlqState::Replaying, None, now)
            .await
        {
            self.store_error("marking a letter replaying", e);
            return false;
        }
        self.counters.replayed += 1;
        let req = ReplayRequest {
            dlq_id: letter.id.clone(),
            letter,
        };
        if self
            .router_tx
            .send(RouterMsg::Replay(Box::new(req)))
            .await
            .is_err()
        {
            return false;
        }
        true
    }

    async fn retry_due(&mut self) {
        let due = match self
            .store
            .due_for_retry(now_ms(), self.config.max_dlq_retries as i64, 100)
            .await
        {
            Ok(d) => d,
            Err(e) => return self.store_error("finding letters due for retry", e),
        };
        for letter in due {
            self.replay(letter, false).await;
        }
    }

    async fn replay_for_target(&mut self, name: &str) {
        let letters = match self.store.pending_for_target(name).await {
            Ok(l) => l,
            Err(e) => return self.store_error("finding letters for a reconnected agent", e),
        };
        let mut n = 0;
        for letter in letters {
            if retryable(letter.reason)
                && letter.dlq_retry_count < self.config.max_dlq_retries as i64
                && self.replay(letter, false).await
            {
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(
                agent = name,
                replayed = n,
                "replaying dead letters for a reconnected agent"
            );
        }
    }

    /// Letters left `replaying` by a previous run are due again now.
    async fn recover_interrupted_replays(&mut self) {
        let q = DlqQuery {
            state: Some(DlqState::Replaying),
            limit: Some(usize::MAX),
            ..DlqQuery::default()
        };
        match self.store.query(&q).await {
            Ok(letters) => {
                let now = now_ms();
                for l in letters {
                    let _ = self
                        .store
                        .set_state(&l.id, DlqState::Pending, Some(now), now)
                        .await;
                }
            }
            Err(e) => self.store_error("recovering interrupted replays", e),
        }
        self.refresh_unacknowledged().await;
    }

    async fn refresh_unacknowledged(&mut self) {
        let q = DlqQuery {
            acknowledged: Some(false),
            ..DlqQuery::default()
        };
        if let Ok(n) = self.store.count(&q).await {
            self.unacknowledged = n;
        }
    }

    async fn check_alert(&mut self) {
        self.refresh_unacknowledged().await;
        let threshold = self.config.alert_threshold;
        if threshold == 0 {
            return;
        }
        let clear_at = (threshold as f64 * self.config.alert_clear_ratio) as u64;
        if !self.alerting && self.unacknowledged >= threshold {
            self.alerting = true;
            self.counters.alerts_raised += 1;
            let text = format!(
                "DEAD LETTER ALERT: {} undelivered messages in the dead letter queue (threshold {threshold}). Inspect them with `agent-relay dlq list`.",
                self.unacknowledged
            );
            tracing::error!(unacknowledged = self.unacknowledged, threshold, "{text}");
            let data = serde_json::json!({"_dlqAlert": true, "unacknowledged": self.unacknowledged, "threshold": threshold});
            let _ = self
                .router_tx
                .send(RouterMsg::SystemNotice {
                    to: "@users".into(),
                    text,
                    data,
                })
                .await;
        } else if self.alerting && self.unacknowledged <= clear_at {
            self.alerting = false;
            tracing::info!(
                unacknowledged = self.unacknowledged,
                "dead letter alert cleared"
            );
        }
    }

    async fn cleanup(&mut self) {
        let retention = (self.config.retention_hours > 0)
            .then(|| self.config.retention_hours as i64 * 3_600_000);
        let max = (self.config.max_entries > 0).then_some(self.config.max_entries);
        match self.store.cleanup(now_ms(), retention, max).await {
            Ok(report) => {
                self.counters.expired += report.expired;
                self.counters.evicted_acknowledged += report.evicted_acknowledged;
                self.counters.evicted_unacknowledged += report.evicted_unacknowledged;
                if report.evicted_unacknowledged > 0 {
                    tracing::warn!(
                        evicted = report.evicted_unacknowledged,
                        max_entries = self.config.max_entries,
                        "dead letter queue over dlq.max_entries: evicted the oldest unacknowledged letters"
                    );
                }
            }
            Err(e) => self.store_error("cleaning up dead letters", e),
        }
    }

    /// Moves spooled letters to PostgreSQL while there are any, while degraded, and until the
    /// spool has been counted at all: a new `ResilientDlq` reports an empty spool even when a
    /// previous run left letters in it, so gating on `spooled`/`degraded` alone never drained
    /// that spool unless some PostgreSQL operation happened to fail first.
    async fn drain_spool(&mut self) {
        if let DlqBackend::Resilient(r) = &self.backend {
            let h = r.status();
            if h.degraded || h.spooled > 0 || !h.spool_checked {
                match r.drain(now_ms()).await {
                    Ok(n) if n > 0 => tracing::info!(
                        moved = n,
                        "dead letters moved from the local spool to PostgreSQL"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::debug!("PostgreSQL still unavailable for dead letters: {e}"),
                }
            }
        }
    }

    pub(super) fn store_error(&mut self, what: &str, e: relay_dlq::DlqError) {
        self.counters.store_errors += 1;
        tracing::error!("dead letter queue: {what} failed: {e}");
    }

    pub(super) fn publish(&self) {
        let health = self.backend.health();
        if let Ok(mut s) = self.status.lock() {
            let dropped = s.counters.dropped;
            s.set_health(health);
            s.unacknowledged = self.unacknowledged;
            s.alerting = self.alerting;
            s.counters = DlqCounters {
                dropped,
                ..self.counters.clone()
            };
        }
    }
}
