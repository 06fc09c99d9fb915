//! Delivery tracking: every DELIVER stays pending until its recipient ACKs it, is redelivered
//! with exponential backoff and jitter, and is dead-lettered once attempts or TTL run out.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use relay_config::DeliverySection;
use relay_protocol::{
    AckPayload, DeliveryInfo, Envelope, ErrorCode, MessageType, NackPayload, SendMeta,
};
use relay_store::{MessageStatus, StoredMessage, WriteOp};
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};

use super::{Pushed, Router};
use crate::failure::FailureReason;

/// One unacknowledged DELIVER.
pub(crate) struct Pending {
    pub recipient: String,
    pub conn_id: u64,
    pub frame: Bytes,
    pub attempts: u32,
    pub expires_at: Option<Instant>,
    pub persisted: bool,
    timer: delay_queue::Key,
}

pub(crate) struct Tracker {
    pending: HashMap<String, Pending>,
    per_recipient: HashMap<String, usize>,
    timers: DelayQueue<String>,
    ack_timeout: Duration,
    multiplier: f64,
    max_backoff: Duration,
    pub max_attempts: u32,
}

impl Tracker {
    pub fn new(cfg: &DeliverySection) -> Tracker {
        Tracker {
            pending: HashMap::new(),
            per_recipient: HashMap::new(),
            timers: DelayQueue::new(),
            ack_timeout: Duration::from_millis(cfg.ack_timeout_ms),
            multiplier: cfg.backoff_multiplier,
            max_backoff: Duration::from_millis(cfg.max_backoff_ms),
            max_attempts: cfg.max_attempts,
        }
    }

    pub async fn next_expired(&mut self) -> Option<String> {
        self.timers.next().await.map(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn count_for(&self, recipient: &str) -> usize {
        self.per_recipient.get(recipient).copied().unwrap_or(0)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.pending.contains_key(id)
    }

    /// Delay before the next attempt after `attempts` sends: ack_timeout × multiplier^(n-1),
    /// capped, with ±15 % jitter so a burst of redeliveries spreads out.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self.multiplier.powi(attempts.saturating_sub(1) as i32);
        let base = self.ack_timeout.mul_f64(exp).min(self.max_backoff);
        base.mul_f64(0.85 + fastrand::f64() * 0.3)
    }

    pub fn track(
        &mut self,
        id: String,
        recipient: String,
        conn_id: u64,
        frame: Bytes,
        expires_at: Option<Instant>,
        persisted: bool,
    ) {
        let timer = self.timers.insert(id.clone(), self.ack_timeout);
        *self.per_recipient.entry(recipient.clone()).or_insert(0) += 1;
        if let Some(old) = self.pending.insert(
            id,
            Pending {
                recipient,
                conn_id,
                frame,
                attempts: 1,
                expires_at,
                persisted,
                timer,
            },
        ) {
            self.timers.try_remove(&old.timer);
            self.dec(&old.recipient);
        }
    }

    pub fn take(&mut self, id: &str) -> Option<Pending> {
        let p = self.pending.remove(id)?;
        self.timers.try_remove(&p.timer);
        self.dec(&p.recipient);
        Some(p)
    }

    fn dec(&mut self, recipient: &str) {
        if let Some(n) = self.per_recipient.get_mut(recipient) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_recipient.remove(recipient);
            }
        }
    }

    /// Re-arms a delivery after a (re)send.
    fn rearm(&mut self, id: &str, delay: Duration) {
        if let Some(p) = self.pending.get_mut(id) {
            p.timer = self.timers.insert(id.to_string(), delay);
        }
    }

    /// Ids of the deliveries awaiting an ACK on one connection.
    pub fn ids_for_connection(&self, conn_id: u64) -> Vec<String> {
        self.pending
            .iter()
            .filter(|(_, p)| p.conn_id == conn_id)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Drops in-memory tracking for a closed connection; storage keeps the messages pending.
    pub fn forget_connection(&mut self, conn_id: u64) {
        let ids: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn_id == conn_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.take(&id);
        }
    }
}

impl Router {
    /// Tracks and sends one DELIVER frame to a registered connection.
    pub(crate) fn send_delivery(
        &mut self,
        conn_id: u64,
        id: String,
        frame: Bytes,
        expires_at: Option<Instant>,
        persisted: bool,
    ) -> Pushed {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Pushed::Gone;
        };
        let recipient = conn.name.clone();
        self.tracker
            .track(id, recipient, conn_id, frame.clone(), expires_at, persisted);
        self.counters.delivered += 1;
        if let Some(held) = conn.held.as_mut() {
            held.push(frame);
            return Pushed::Sent;
        }
        self.push(conn_id, frame)
    }

    pub(crate) fn on_delivery_timeout(&mut self, id: String) {
        let (conn_id, attempts, expired, loading) = match self.tracker.pending.get(&id) {
            None => return,
            Some(p) => (
                p.conn_id,
                p.attempts,
                p.expires_at.is_some_and(|t| Instant::now() >= t),
                self.conns.get(&p.conn_id).map(|c| c.held.is_some()),
            ),
        };
        let Some(loading) = loading else {
            self.tracker.take(&id);
            return;
        };
        if expired {
            self.fail_tracked(
                &id,
                FailureReason::TtlExpired,
                format!("time-to-live expired after {attempts} delivery attempts"),
            );
            return;
        }
        if loading {
            // Still replaying the stored backlog ahead of this message; wait without counting.
            self.tracker.rearm(&id, self.tracker.ack_timeout);
            return;
        }
        if attempts >= self.tracker.max_attempts {
            self.fail_tracked(
                &id,
                FailureReason::MaxRetriesExceeded,
                format!("no ACK after {attempts} delivery attempts"),
            );
            return;
        }
        let (frame, persisted) = match self.tracker.pending.get_mut(&id) {
            Some(p) => {
                p.attempts += 1;
                (p.frame.clone(), p.persisted)
            }
            None => return,
        };
        let delay = self.tracker.backoff(attempts + 1);
        self.tracker.rearm(&id, delay);
        self.counters.redelivered += 1;
        if persisted {
            self.store_write(WriteOp::IncrementAttempts { id: id.clone() });
        }
        if self.push(conn_id, frame) == Pushed::Gone {
            self.tracker.take(&id);
        }
    }

    pub(crate) fn fail_tracked(&mut self, id: &str, reason: FailureReason, error: String) {
        let Some(p) = self.tracker.take(id) else {
            return;
        };
        self.counters.failed += 1;
        if p.persisted {
            self.store_write(WriteOp::SetStatus {
                id: id.to_string(),
                status: MessageStatus::Failed,
                last_error: Some(format!("{}: {error}", reason.as_str())),
            });
        }
        // A replay that failed again goes back to its existing dead letter, not a new one.
        if let Some(dlq_id) = self.replays.remove(id) {
            if let Some(dlq) = &self.dlq {
                dlq.replay_failed(dlq_id, format!("{}: {error}", reason.as_str()));
            }
            return;
        }
        let body = p.frame.get(4..).unwrap_or_default();
        match Envelope::from_slice(body) {
            Ok(env) => {
                let mut msg = stored_from_deliver(&env, MessageStatus::Failed);
                msg.attempts = p.attempts as i64;
                msg.last_error = Some(error.clone());
                self.dead_letter(reason, msg, error, p.persisted);
            }
            Err(e) => tracing::error!(
                id,
                "cannot decode a tracked frame for the failure sink: {e}"
            ),
        }
    }

    pub(crate) fn on_ack(&mut self, conn_id: u64, env: Envelope) {
        let ack: AckPayload = match env.payload_as() {
            Ok(a) => a,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid ACK payload: {e}"),
                    &env.id,
                )
            }
        };
        let Some(acker) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        if let Some(corr) = ack.correlation_id.as_deref() {
            // A sync answer carries content to the waiting sender: its signature is checked
            // like a SEND's. A refused answer is not forwarded; the delivery it confirms still
            // counts as acknowledged.
            if let Some(why) = self.misaddressed_answer(corr, &env) {
                self.refuse_signature(conn_id, &acker, &env, why);
            } else if self.verify_ingress(conn_id, &env, false).accepted() {
                self.complete_sync(corr, &acker, &env);
            }
        }
        let owned = self
            .tracker
            .pending
            .get(&ack.ack_id)
            .is_some_and(|p| p.recipient == acker);
        if owned {
            if let Some(p) = self.tracker.take(&ack.ack_id) {
                self.counters.acked += 1;
                if let Some(dlq_id) = self.replays.remove(&ack.ack_id) {
                    if let Some(dlq) = &self.dlq {
                        dlq.delivered(dlq_id);
                    }
                }
                if p.persisted {
                    self.store_write(WriteOp::SetStatus {
                        id: ack.ack_id.clone(),
                        status: MessageStatus::Acked,
                        last_error: None,
                    });
                } else {
                    self.context_acked(&ack.ack_id);
                }
                self.touch_registry(&acker, 0, 1);
            }
        } else if ack.correlation_id.is_none() {
            self.counters.unmatched_acks += 1;
        }
    }

    /// A recipient refused a DELIVER: try again after the backoff (it counts as an attempt).
    pub(crate) fn on_client_nack(&mut self, conn_id: u64, env: Envelope) {
        let nack: NackPayload = match env.payload_as() {
            Ok(n) => n,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid NACK payload: {e}"),
                    &env.id,
                )
            }
        };
        let attempts = match self.tracker.pending.get(&nack.ack_id) {
            Some(p) if p.conn_id == conn_id => p.attempts,
            _ => return,
        };
        let delay = self.tracker.backoff(attempts);
        if let Some(p) = self.tracker.pending.get(&nack.ack_id) {
            let key = p.timer;
            self.tracker.timers.try_remove(&key);
        }
        self.tracker.rearm(&nack.ack_id, delay);
        self.counters.refused_by_recipient += 1;
    }

    /// Replays the stored backlog of a newly registered connection in order, then whatever
    /// arrived while it was loading.
    pub(crate) fn on_backlog(&mut self, conn_id: u64, rows: Result<Vec<StoredMessage>, String>) {
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(conn_id, "cannot load pending messages: {e}; they stay stored and are retried on reconnect");
                Vec::new()
            }
        };
        let max = self.shared.config.daemon.max_frame_bytes;
        let default_ttl = self.shared.config.delivery.default_ttl_ms;
        let mut replayed = 0usize;
        for row in rows {
            if self.tracker.contains(&row.id) {
                continue;
            }
            let Some(conn) = self.conns.get_mut(&conn_id) else {
                return;
            };
            let ttl = ttl_of(row.payload_meta.as_ref(), default_ttl);
            let age = (relay_protocol::now_ms() as i64 - row.ts).max(0) as u64;
            if ttl.is_some_and(|t| age >= t) {
                self.counters.failed += 1;
                self.store_write(WriteOp::SetStatus {
                    id: row.id.clone(),
                    status: MessageStatus::Failed,
                    last_error: Some("ttl_expired".into()),
                });
                self.dead_letter(
                    FailureReason::TtlExpired,
                    row,
                    format!("time-to-live expired while the recipient was offline ({age} ms)"),
                    true,
                );
                continue;
            }
            let keep_seq = conn.resumed
                && row.delivery_session_id.as_deref() == Some(conn.session_id.as_str());
            let seq = match (keep_seq, row.delivery_seq) {
                (true, Some(s)) if s > 0 => s as u64,
                _ => conn.next_seq(row.topic.as_deref(), &row.from),
            };
            let session_id = conn.session_id.clone();
            let mut env = deliver_from_stored(&row, seq, &session_id);
            if let Some(dlq_id) = self.replays.get(&row.id) {
                super::replay::mark_replay(&mut env, dlq_id);
            }
            let frame = match relay_protocol::encode_frame(&env, max) {
                Ok(f) => f,
                Err(e) => {
                    self.store_write(WriteOp::SetStatus {
                        id: row.id.clone(),
                        status: MessageStatus::Failed,
                        last_error: Some(e.to_string()),
                    });
                    self.dead_letter(FailureReason::PayloadTooLarge, row, e.to_string(), true);
                    continue;
                }
            };
            if !keep_seq || row.status == MessageStatus::Unread {
                self.store_write(WriteOp::SetDelivery {
                    id: row.id.clone(),
                    session_id,
                    seq: seq as i64,
                    status: MessageStatus::Read,
                });
            }
            let expires =
                ttl.map(|t| Instant::now() + Duration::from_millis(t.saturating_sub(age)));
            self.send_delivery(conn_id, row.id.clone(), frame, expires, true);
            replayed += 1;
        }
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let held = conn.held.take().unwrap_or_default();
        if replayed > 0 {
            tracing::info!(agent = %conn.name, replayed, "replayed stored messages");
            self.counters.replayed += replayed as u64;
        }
        for frame in held {
            if self.push(conn_id, frame) == Pushed::Gone {
                break;
            }
        }
    }
}

/// The TTL of a message in ms: its `payload_meta.ttl_ms`, else the configured default (0 = none).
pub(crate) fn ttl_of(meta: Option<&serde_json::Value>, default_ttl: u64) -> Option<u64> {
    meta.and_then(|m| m.get("ttl_ms"))
        .and_then(|v| v.as_u64())
        .filter(|t| *t > 0)
        .or((default_ttl > 0).then_some(default_ttl))
}

/// Rebuilds a DELIVER from a stored row.
pub(crate) fn deliver_from_stored(row: &StoredMessage, seq: u64, session_id: &str) -> Envelope {
    let mut payload = serde_json::Map::new();
    if let Some(serde_json::Value::Object(extra)) = &row.payload_extra {
        payload.extend(extra.clone());
    }
    payload.insert("kind".into(), row.kind.clone().into());
    payload.insert("body".into(), row.body.clone().into());
    if let Some(data) = &row.data {
        payload.insert("data".into(), data.clone());
    }
    if let Some(thread) = &row.thread {
        payload.insert("thread".into(), thread.clone().into());
    }
    let mut env = Envelope::new(MessageType::Deliver, &payload)
        .id(row.id.clone())
        .from(row.from.clone())
        .to(row.to.clone());
    env.ts = row.ts.max(0) as u64;
    env.topic = row.topic.clone();
    env.payload_meta = row
        .payload_meta
        .clone()
        .and_then(|m| serde_json::from_value::<SendMeta>(m).ok());
    env.delivery = Some(DeliveryInfo {
        seq,
        session_id: session_id.to_string(),
        original_to: row.original_to.clone(),
    });
    env.sig = row.sig.clone();
    env
}

/// The stored form of a DELIVER envelope.
pub(crate) fn stored_from_deliver(env: &Envelope, status: MessageStatus) -> StoredMessage {
    let payload: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(env.payload.get()).unwrap_or_default();
    let mut extra = payload.clone();
    for k in ["kind", "body", "data", "thread"] {
        extra.remove(k);
    }
    let str_field = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut msg = StoredMessage::new(
        env.id.clone(),
        env.ts as i64,
        env.from.clone().unwrap_or_default(),
        env.to.clone().unwrap_or_default(),
        str_field("body").unwrap_or_default(),
    );
    msg.kind = str_field("kind").unwrap_or_else(|| "message".into());
    msg.data = payload.get("data").cloned().filter(|d| d.is_object());
    msg.thread = str_field("thread");
    msg.payload_extra = (!extra.is_empty()).then_some(serde_json::Value::Object(extra));
    msg.topic = env.topic.clone();
    msg.payload_meta = env
        .payload_meta
        .as_ref()
        .and_then(|m| serde_json::to_value(m).ok());
    if let Some(d) = &env.delivery {
        msg.delivery_seq = Some(d.seq as i64);
        msg.delivery_session_id = Some(d.session_id.clone());
        msg.original_to = d.original_to.clone();
        msg.is_broadcast = matches!(d.original_to.as_deref(), Some("*") | Some("@users"));
    }
    msg.sig = env.sig.clone();
    msg.status = status;
    msg
}
