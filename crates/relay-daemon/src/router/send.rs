//! SEND routing: direct, broadcast, topic, `@users`, `#channel`, offline queue, shadows, sync
//! waits, idempotent ids, rate limiting and backpressure.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use relay_protocol::{
    encode_frame, BusyPayload, DeliveryInfo, EntityType, Envelope, ErrorCode, MessageType,
    NackCode, NackPayload, SendPayload, ShadowBindPayload, ShadowUnbindPayload,
};
use relay_store::{MessageStatus, StoredMessage, WriteOp};
use tokio_util::time::{delay_queue, DelayQueue};

use super::context::{Recipients, Routed};
use super::dedupe::{IdKey, Seen};
use super::delivery::{stored_from_deliver, ttl_of};
use super::{Pushed, Router};
use crate::failure::FailureReason;

#[derive(Debug, Clone)]
pub(crate) struct ShadowBinding {
    pub shadow: String,
    pub incoming: bool,
    pub outgoing: bool,
}

/// What [`Router::fan_out`] did with one SEND.
struct FanOut {
    /// Recipients that accepted it.
    accepted: usize,
    /// Recipients that refused it for now (NACK BUSY): a retry may reach them.
    refused: Vec<String>,
}

/// Blocking SENDs waiting for a correlated ACK.
#[derive(Default)]
pub(crate) struct SyncWaits {
    waits: HashMap<String, SyncWait>,
    timers: DelayQueue<String>,
}

struct SyncWait {
    sender_conn: u64,
    /// Who is awaited: an agent, or `*` / `@users`.
    to: String,
    send_id: String,
    timeout_ms: u64,
    timer: delay_queue::Key,
}

impl SyncWaits {
    pub async fn next_expired(&mut self) -> Option<String> {
        self.timers.next().await.map(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.waits.len()
    }

    /// Whether a wait involves `agent` (connected as `conn_id`): it waits for an answer, or an
    /// answer is awaited from it (broadcast waits count for everyone).
    pub fn involves(&self, agent: &str, conn_id: u64) -> bool {
        self.waits
            .values()
            .any(|w| w.sender_conn == conn_id || w.to == agent || w.to == "*" || w.to == "@users")
    }

    pub fn forget_sender(&mut self, conn_id: u64) {
        let ids: Vec<String> = self
            .waits
            .iter()
            .filter(|(_, w)| w.sender_conn == conn_id)
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
            if let Some(w) = self.waits.remove(&id) {
                self.timers.try_remove(&w.timer);
            }
        }
    }
}

/// Who a SEND goes to.
enum Target {
    Direct(String),
    Broadcast,
    Users,
}

impl Router {
    pub(crate) fn on_send(&mut self, conn_id: u64, env: Envelope) {
        let Some(sender) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        let payload: SendPayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid SEND payload: {e}; expected {{kind, body, data?, thread?}}"),
                    &env.id,
                )
            }
        };
        let to = env.to.clone().unwrap_or_default();
        if to.is_empty() {
            return self.nack(
                conn_id,
                &env.id,
                NackCode::Invalid,
                "SEND needs a `to` (an agent name, *, @users or #channel)".into(),
            );
        }
        // Signatures first: a replayed signed frame is refused, not silently de-duplicated.
        let consensus_command = to == super::consensus::CONSENSUS;
        let signed = match self.verify_ingress(conn_id, &env, consensus_command) {
            Ingress::Refused => return,
            Ingress::Signed => true,
            Ingress::Unsigned => false,
        };
        // Only accepted SENDs are remembered (`remember_send`): a retry of a refused one under
        // the same id must not be taken for a duplicate and dropped. A broadcast that some
        // recipients refused is retried to those recipients only. A signed SEND's id is in the
        // replay cache now, which refuses that id again for the whole replay window, so its
        // sender's dedupe window is consulted only if it has one.
        let id_key = (!signed || self.dedupe.has_window(&sender)).then(|| self.dedupe.key(&env.id));
        let owed = match self.seen_before(&sender, &env.id, id_key, signed) {
            Seen::New => None,
            Seen::Owed(names) => Some(names.clone()),
            Seen::Duplicate => {
                self.counters.duplicate_sends += 1;
                return;
            }
        };
        // A retry's blocking wait, if any, was registered by the first attempt.
        let sync = env
            .payload_meta
            .as_ref()
            .and_then(|m| m.sync.clone())
            .filter(|s| s.blocking && owed.is_none());
        if let Some(s) = &sync {
            if s.correlation_id.is_empty() {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    "Missing sync correlationId for blocking SEND; the message was not routed"
                        .into(),
                    &env.id,
                );
            }
            if self.syncs.waits.contains_key(&s.correlation_id) {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!(
                        "Duplicate correlationId: {}; the message was not routed",
                        s.correlation_id
                    ),
                    &env.id,
                );
            }
        }
        // Consensus commands are answered by the engine: not rate-limited, never routed.
        if to == super::consensus::CONSENSUS {
            self.remember_send(&sender, &env.id, id_key, HashSet::new());
            let recipients = Recipients::None;
            self.record_history(Routed::send(&env, &sender, &to, &payload, recipients));
            return self.on_consensus_text(&sender, &payload.body);
        }
        if let Err(wait) = self.take_token(&sender) {
            self.counters.rate_limited += 1;
            let l = &self.shared.config.limits;
            let msg = format!(
                "{} ({} msgs/s, burst {}); retry after {} ms",
                relay_protocol::RATE_LIMIT_NACK_PREFIX,
                l.rate_limit_per_sec,
                l.rate_limit_burst,
                wait.as_millis()
            );
            self.nack(conn_id, &env.id, NackCode::Busy, msg.clone());
            self.busy(conn_id, wait.as_millis() as u64 + 1, 0);
            let letter = self.letter_from_send(&sender, &to, &env, &payload);
            return self.dead_letter(FailureReason::RateLimited, letter, msg, false);
        }

        if to.starts_with('#') {
            return self.route_to_channel(conn_id, &sender, &to, &env, &payload);
        }
        let template = self.letter_from_send(&sender, &to, &env, &payload);
        let target = match to.as_str() {
            "*" => Target::Broadcast,
            "@users" => Target::Users,

            name => Target::Direct(name.to_string()),
        };

        let mut reached = Vec::new();
        let mut direct = None;
        // On a retry of a partly refused broadcast, only those still owed it.
        let owed_only = |name: &String| owed.as_ref().is_none_or(|o| o.contains(name));
        let routed = match target {
            Target::Direct(name) => {
                let accepted = self.route_direct(conn_id, &sender, &name, &env, &template);
                direct = Some(name);
                FanOut {
                    accepted,
                    refused: Vec::new(),
                }
            }
            Target::Broadcast => {
                let recipients: Vec<u64> = match env.topic.as_deref() {
                    Some(topic) => {
                        let subs = self.subscriptions.get(topic);
                        self.conns
                            .values()
                            .filter(|c| {
                                !c.system
                                    && c.name != sender
                                    && subs.is_some_and(|s| s.contains(&c.name))
                                    && owed_only(&c.name)
                            })
                            .map(|c| c.id)
                            .collect()
                    }
                    None => self
                        .conns
                        .values()
                        .filter(|c| !c.system && c.name != sender && owed_only(&c.name))
                        .map(|c| c.id)
                        .collect(),
                };
                reached = self.history_names(&recipients);
                self.fan_out(conn_id, &sender, "*", recipients, &env, &template)
            }
            Target::Users => {
                let recipients: Vec<u64> = self
                    .conns
                    .values()
                    .filter(|c| {
                        !c.system
                            && c.name != sender
                            && c.entity == EntityType::User
                            && owed_only(&c.name)
                    })
                    .map(|c| c.id)
                    .collect();
                reached = self.history_names(&recipients);
                self.fan_out(conn_id, &sender, "@users", recipients, &env, &template)
            }
        };
        let FanOut { accepted, refused } = routed;
        if let Some(owed) = owed {
            // A retry: whoever it reached now is struck off; the rest stays owed (an owed agent
            // that has left is not waited for). The first attempt did the rest below.
            let still_owed = refused
                .into_iter()
                .filter(|name| owed.contains(name))
                .collect();
            self.store_owed(&sender, &env.id, &still_owed);
            self.remember_send(&sender, &env.id, id_key, still_owed);
            return;
        }
        if accepted == 0 {
            // Refused, or nobody to deliver to: not accepted, so not remembered.
            return;
        }
        let refused: HashSet<String> = refused.into_iter().collect();
        if !refused.is_empty() {
            self.store_owed(&sender, &env.id, &refused);
        }
        self.remember_send(&sender, &env.id, id_key, refused);
        // Storage falling behind: ask the sender to slow down before anything is refused.
        let (depth, capacity) = self.shared.store.queue_fill();
        if depth * 2 > capacity {
            let retry_after = (10 * depth / capacity.max(1)) as u64 + 5;
            self.busy(conn_id, retry_after, depth as u64);
        }
        self.touch_registry(&sender, 1, 0);
        self.shadow_copies(&sender, &to, &env);
        self.notify_watchers(&sender, &to, &env, &payload);
        let recipients = match &direct {
            Some(name) => Recipients::One(name),
            None => Recipients::Names(&reached),
        };
        self.record_history(Routed::send(&env, &sender, &to, &payload, recipients));
        if let Some(s) = sync {
            let timeout_ms = s
                .timeout_ms
                .unwrap_or(self.shared.config.delivery.sync_timeout_ms)
                .max(1);
            let timer = self
                .syncs
                .timers
                .insert(s.correlation_id.clone(), Duration::from_millis(timeout_ms));
            self.syncs.waits.insert(
                s.correlation_id,
                SyncWait {
                    sender_conn: conn_id,
                    to: to.clone(),
                    send_id: env.id.clone(),
                    timeout_ms,
                    timer,
                },
            );
        }
    }

    /// Routes a message the daemon composes on behalf of `sender` (a spawned agent's task from its
    /// spawner): stored and delivered like any direct message, whether or not `sender` is
    /// connected. Refusals are logged, since nobody waits for an answer.
    pub(crate) fn route_internal(
        &mut self,
        sender: &str,
        to: &str,
        env: Envelope,
        payload: &SendPayload,
    ) {
        let conn_id = self.by_name.get(sender).copied().unwrap_or(0);
        let template = self.letter_from_send(sender, to, &env, payload);
        let routed = self.route_direct(conn_id, sender, to, &env, &template);
        if routed == 0 {
            tracing::warn!(from = %sender, %to, "a message composed by the daemon was not routed");
            return;
        }
        self.touch_registry(sender, 1, 0);
        self.notify_watchers(sender, to, &env, payload);
        let recipients = Recipients::One(to);
        self.record_history(Routed::send(&env, sender, to, payload, recipients));
    }

    /// Returns the number of recipients the message was accepted for (0 = refused, already answered).
    fn route_direct(
        &mut self,
        conn_id: u64,
        sender: &str,
        name: &str,
        env: &Envelope,
        template: &StoredMessage,
    ) -> usize {
        if let Some(rcpt) = self.by_name.get(name).copied() {
            return self
                .fan_out(conn_id, sender, name, vec![rcpt], env, template)
                .accepted;
        }
        if !self.registry.contains_key(name) {
            self.counters.unknown_recipient += 1;
            let msg =
                format!("unknown recipient {name:?}: no agent of that name has ever connected");
            self.nack(conn_id, &env.id, NackCode::Invalid, msg.clone());
            let letter = template.clone();
            self.dead_letter(FailureReason::TargetNotFound, letter, msg, false);
            return 0;
        }
        // Known but offline: persist; it is delivered, in order, when the agent connects.
        let mut row = template.clone();
        row.id = relay_protocol::ids::new_id();
        row.status = MessageStatus::Unread;
        if !self.store_write(WriteOp::InsertMessage(row)) {
            self.nack(
                conn_id,
                &env.id,
                NackCode::Busy,
                "storage is overloaded; retry shortly".into(),
            );
            self.busy(conn_id, 100, self.shared.store.metrics().queue_depth as u64);
            return 0;
        }
        self.counters.queued_offline += 1;
        1
    }

    /// Delivers one SEND to connected recipients: how many accepted it, and who refused it
    /// for now.
    fn fan_out(
        &mut self,
        conn_id: u64,
        sender: &str,
        to: &str,
        recipients: Vec<u64>,
        env: &Envelope,
        template: &StoredMessage,
    ) -> FanOut {
        if recipients.is_empty() && to != "*" && to != "@users" {
            return FanOut {
                accepted: 0,
                refused: Vec::new(),
            };
        }
        let max_frame = self.shared.config.daemon.max_frame_bytes;
        let max_pending = self.shared.config.limits.max_pending_per_agent;
        let ttl = ttl_of(
            template.payload_meta.as_ref(),
            self.shared.config.delivery.default_ttl_ms,
        );
        let expires_at = ttl.map(|t| tokio::time::Instant::now() + Duration::from_millis(t));
        let original_to = (to == "*" || to == "@users").then(|| to.to_string());
        let mut accepted = 0usize;
        let mut refused = Vec::new();
        let mut congested_depth = None;
        let now = relay_protocol::now_ms();
        for rcpt in recipients {
            let Some(conn) = self.conns.get_mut(&rcpt) else {
                continue;
            };
            let rname = conn.name.clone();
            if self.tracker.count_for(&rname) >= max_pending {
                self.counters.backpressure_refusals += 1;
                let msg = format!("recipient {rname} has {max_pending} unacknowledged messages; not delivered to it, retry later");
                self.nack(conn_id, &env.id, NackCode::Busy, msg);
                self.busy(conn_id, 200, max_pending as u64);
                refused.push(rname);
                continue;
            }
            let Some(conn) = self.conns.get_mut(&rcpt) else {
                continue;
            };
            let seq = conn.next_seq(env.topic.as_deref(), sender);
            let mut deliver = Envelope::with_raw_payload(MessageType::Deliver, env.payload.clone())
                .from(sender)
                .to(rname.clone());
            deliver.ts = now;
            deliver.topic = env.topic.clone();
            deliver.payload_meta = env.payload_meta.clone();
            deliver.sig = env.sig.clone();
            deliver.delivery = Some(DeliveryInfo {
                seq,
                session_id: conn.session_id.clone(),
                original_to: original_to.clone(),
            });
            let frame = match encode_frame(&deliver, max_frame) {
                Ok(f) => f,
                Err(e) => {
                    let msg = format!("payload too large: {e}");
                    self.nack(conn_id, &env.id, NackCode::Invalid, msg.clone());
                    self.dead_letter(
                        FailureReason::PayloadTooLarge,
                        stored_from_deliver(&deliver, MessageStatus::Failed),
                        msg,
                        false,
                    );
                    continue;
                }
            };
            let mut row = template.clone();
            row.id = deliver.id.clone();
            row.ts = now as i64;
            row.to = rname.clone();
            row.status = MessageStatus::Read;
            row.delivery_seq = Some(seq as i64);
            row.delivery_session_id = deliver.delivery.as_ref().map(|d| d.session_id.clone());
            row.original_to = original_to.clone();
            row.is_broadcast = original_to.is_some();
            if !self.store_write(WriteOp::InsertMessage(row)) {
                self.nack(
                    conn_id,
                    &env.id,
                    NackCode::Busy,
                    format!("storage is overloaded; not delivered to {rname}, retry shortly"),
                );
                self.busy(conn_id, 100, self.shared.store.metrics().queue_depth as u64);
                refused.push(rname);
                continue;
            }
            accepted += 1;
            if self.send_delivery(rcpt, deliver.id.clone(), frame, expires_at, true)
                == Pushed::Congested
            {
                let depth = self.conns.get(&rcpt).map(|c| c.overflow.len()).unwrap_or(0);
                congested_depth = Some(congested_depth.unwrap_or(0).max(depth));
            }
        }
        if let Some(depth) = congested_depth {
            self.busy(conn_id, 50, depth as u64);
        }
        if accepted == 0 && (to == "*" || to == "@users") {
            // A broadcast that reached nobody is still accepted (there was nobody to reach),
            // but a blocking one could never be answered: say so now rather than at the timeout.
            let blocking = env
                .payload_meta
                .as_ref()
                .and_then(|m| m.sync.as_ref())
                .is_some_and(|s| s.blocking);
            if blocking {
                self.nack(
                    conn_id,
                    &env.id,
                    NackCode::Invalid,
                    format!("no recipients for {to}; nobody can answer this blocking SEND"),
                );
            }
            return FanOut {
                accepted: usize::from(!blocking),
                refused,
            };
        }
        FanOut { accepted, refused }
    }

    fn shadow_copies(&mut self, sender: &str, to: &str, env: &Envelope) {
        if self.shadows.is_empty() {
            return;
        }
        let mut copies: Vec<(String, &'static str, String)> = Vec::new();
        if let Some(binds) = self.shadows.get(sender) {
            copies.extend(
                binds
                    .iter()
                    .filter(|b| b.outgoing && b.shadow != sender)
                    .map(|b| (b.shadow.clone(), "outgoing", sender.to_string())),
            );
        }
        if to != "*" {
            if let Some(binds) = self.shadows.get(to) {
                copies.extend(
                    binds
                        .iter()
                        .filter(|b| b.incoming && b.shadow != sender)
                        .map(|b| (b.shadow.clone(), "incoming", to.to_string())),
                );
            }
        }
        let Ok(mut payload) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(env.payload.get())
        else {
            return;
        };
        for (shadow, direction, primary) in copies {
            let Some(rcpt) = self.by_name.get(&shadow).copied() else {
                continue;
            };
            let mut data = payload
                .get("data")
                .and_then(|d| d.as_object())
                .cloned()
                .unwrap_or_default();
            data.insert("_shadowCopy".into(), true.into());
            data.insert("_shadowOf".into(), primary.into());
            data.insert("_shadowDirection".into(), direction.into());
            payload.insert("data".into(), data.into());
            let Some(conn) = self.conns.get_mut(&rcpt) else {
                continue;
            };
            let seq = conn.next_seq(env.topic.as_deref(), sender);
            let mut copy = Envelope::new(MessageType::Deliver, &payload)
                .from(sender)
                .to(shadow.clone());
            copy.topic = env.topic.clone();
            copy.payload_meta = env.payload_meta.clone();
            copy.sig = env.sig.clone();
            copy.delivery = Some(DeliveryInfo {
                seq,
                session_id: conn.session_id.clone(),
                original_to: Some(to.to_string()),
            });
            if let Ok(frame) = encode_frame(&copy, self.shared.config.daemon.max_frame_bytes) {
                self.counters.shadow_copies += 1;
                self.send_delivery(rcpt, copy.id.clone(), frame, None, false);
            }
        }
    }

    pub(crate) fn complete_sync(&mut self, correlation_id: &str, acker: &str, ack: &Envelope) {
        let Some(wait) = self.syncs.waits.remove(correlation_id) else {
            return;
        };
        self.syncs.timers.try_remove(&wait.timer);
        let Some(sender) = self.conn_name(wait.sender_conn).map(str::to_string) else {
            return;
        };
        let mut fwd = Envelope::with_raw_payload(MessageType::Ack, ack.payload.clone())
            .from(acker)
            .to(sender);
        fwd.v = ack.v;
        // The answer's signature (made with `to` = this sender, see `misaddressed_answer`)
        // travels with it, so the waiting sender can check who answered.
        fwd.topic = ack.topic.clone();
        fwd.payload_meta = ack.payload_meta.clone();
        fwd.sig = ack.sig.clone();
        self.counters.sync_completed += 1;
        self.reply(wait.sender_conn, &fwd);
    }

    pub(crate) fn on_sync_timeout(&mut self, correlation_id: String) {
        let Some(wait) = self.syncs.waits.remove(&correlation_id) else {
            return;
        };
        self.counters.sync_timeouts += 1;
        let msg = format!("ACK timeout after {}ms: no correlated ACK for SEND {} (correlationId {correlation_id})", wait.timeout_ms, wait.send_id);
        self.reply_error(wait.sender_conn, ErrorCode::Timeout, msg, &wait.send_id);
    }

    /// Records an accepted SEND's id: the same id from `sender` within the dedupe window is a
    /// duplicate, except to the recipients in `owed` (those that refused it for now), signed or
    /// not (`verify_ingress` lets a signed retry of an owed broadcast past the replay check). A
    /// SEND refused outright is not recorded; signed, it cannot be retried under its id (its
    /// signature is spent). A signed SEND whose sender has no window (`id_key` is `None`) is
    /// recorded only while someone is owed it: the replay cache refuses its id again already.
    fn remember_send(
        &mut self,
        sender: &str,
        id: &str,
        id_key: Option<IdKey>,
        owed: HashSet<String>,
    ) {
        let key = match id_key {
            Some(key) => key,
            None if owed.is_empty() => return,
            None => self.dedupe.key(id),
        };
        let window = self.shared.config.delivery.dedupe_window;
        self.dedupe.remember(sender, key, window, owed);
    }

    /// What is known of SEND `id` from `sender`: its dedupe window (when `id_key` is given),
    /// and for an unsigned SEND the replay cache too, where an id the sender signed before is
    /// a duplicate.
    fn seen_before(&self, sender: &str, id: &str, id_key: Option<IdKey>, signed: bool) -> Seen<'_> {
        let signed_before =
            |guard: &crate::signing::SigningGuard| guard.accepted_signed(sender, id);
        match id_key.map_or(Seen::New, |key| self.dedupe.seen(sender, key)) {
            Seen::New if !signed && self.signing.as_ref().is_some_and(signed_before) => {
                Seen::Duplicate
            }
            seen => seen,
        }
    }

    pub(crate) fn nack(&mut self, conn_id: u64, send_id: &str, code: NackCode, message: String) {
        self.counters.nacks_sent += 1;
        let env = Envelope::new(MessageType::Nack, &NackPayload::new(send_id, code, message));
        self.reply(conn_id, &env);
    }

    /// Tells a sender to slow down (at most every 100 ms per sender).
    pub(crate) fn busy(&mut self, conn_id: u64, retry_after_ms: u64, queue_depth: u64) {
        let Some(name) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        let now = Instant::now();
        if self
            .last_busy
            .get(&name)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_millis(100))
        {
            return;
        }
        self.last_busy.insert(name, now);
        self.counters.busy_sent += 1;
        let env = Envelope::new(
            MessageType::Busy,
            &BusyPayload {
                retry_after_ms,
                queue_depth,
            },
        );
        self.reply(conn_id, &env);
    }

    fn take_token(&mut self, sender: &str) -> Result<(), Duration> {
        let l = &self.shared.config.limits;
        if !l.rate_limit_enabled {
            return Ok(());
        }
        let (rate, burst) = (l.rate_limit_per_sec, l.rate_limit_burst);
        self.buckets
            .entry(sender.to_string())
            .or_insert_with(|| crate::ratelimit::TokenBucket::new(burst))
            .try_take(rate, burst, Instant::now())
    }

    /// The whole SEND as a stored message (for the offline queue and dead letters).
    pub(crate) fn letter_from_send(
        &self,
        sender: &str,
        to: &str,
        env: &Envelope,
        payload: &SendPayload,
    ) -> StoredMessage {
        let mut msg = StoredMessage::new(
            env.id.clone(),
            relay_protocol::now_ms() as i64,
            sender,
            to,
            payload.body.clone(),
        );
        msg.kind = payload.kind.as_str().to_string();
        msg.data = payload.data.clone().map(serde_json::Value::Object);
        msg.thread = payload.thread.clone();
        msg.topic = env.topic.clone();
        msg.payload_meta = env
            .payload_meta
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok());
        msg.sig = env.sig.clone();
        msg.source_id = Some(env.id.clone());
        msg.session_id = self
            .by_name
            .get(sender)
            .and_then(|id| self.conns.get(id))
            .map(|c| c.session_id.clone());
        msg.is_urgent = env
            .payload_meta
            .as_ref()
            .and_then(|m| m.importance)
            .is_some_and(|i| i >= 80);
        msg
    }

    pub(crate) fn on_subscription(&mut self, conn_id: u64, env: Envelope) {
        let Some(name) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        let Some(topic) = env.topic.clone().filter(|t| !t.is_empty()) else {
            return self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                format!("{} needs a `topic` field", env.msg_type),
                &env.id,
            );
        };
        if env.msg_type == MessageType::Subscribe {
            self.subscriptions.entry(topic).or_default().insert(name);
        } else if let Some(subs) = self.subscriptions.get_mut(&topic) {
            subs.remove(&name);
            if subs.is_empty() {
                self.subscriptions.remove(&topic);
            }
        }
    }

    pub(crate) fn on_shadow(&mut self, conn_id: u64, env: Envelope) {
        let Some(name) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        if env.msg_type == MessageType::ShadowBind {
            let p: ShadowBindPayload = match env.payload_as() {
                Ok(p) => p,
                Err(e) => {
                    return self.reply_error(
                        conn_id,
                        ErrorCode::BadRequest,
                        format!("invalid SHADOW_BIND payload: {e}"),
                        &env.id,
                    )
                }
            };
            if p.primary_agent == name {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    "an agent cannot shadow itself".into(),
                    &env.id,
                );
            }
            for binds in self.shadows.values_mut() {
                binds.retain(|b| b.shadow != name);
            }
            self.shadows
                .entry(p.primary_agent)
                .or_default()
                .push(ShadowBinding {
                    shadow: name,
                    incoming: p.receive_incoming.unwrap_or(true),
                    outgoing: p.receive_outgoing.unwrap_or(true),
                });
        } else {
            let p: ShadowUnbindPayload = match env.payload_as() {
                Ok(p) => p,
                Err(e) => {
                    return self.reply_error(
                        conn_id,
                        ErrorCode::BadRequest,
                        format!("invalid SHADOW_UNBIND payload: {e}"),
                        &env.id,
                    )
                }
            };
            if let Some(binds) = self.shadows.get_mut(&p.primary_agent) {
                binds.retain(|b| b.shadow != name);
            }
        }
        self.shadows.retain(|_, b| !b.is_empty());
    }
}

impl Router {
    /// Applies `[signing]` to an inbound frame. [`Ingress::Refused`] means the sender got NACK
    /// FORBIDDEN and the message is dead-lettered as `signature_invalid`.
    pub(crate) fn verify_ingress(
        &mut self,
        conn_id: u64,
        env: &Envelope,
        needs_signature: bool,
    ) -> Ingress {
        let Some(guard) = self.signing.as_mut() else {
            return Ingress::Unsigned;
        };
        let Some(sender) = self.conns.get(&conn_id).map(|c| c.name.clone()) else {
            return Ingress::Refused;
        };
        let precheck = self.ingress_signature.take();
        // The same signed broadcast again, to recipients that refused it for now: a retry.
        let owed_retry = env.msg_type == MessageType::Send && self.dedupe.is_owed(&sender, &env.id);
        let verdict = if owed_retry {
            guard.check_owed_retry(env, &sender, precheck)
        } else {
            guard.check(env, &sender, precheck)
        };
        let verdict = match verdict {
            Ok(crate::signing::Verdict::Unsigned) if needs_signature && guard.enforced() => {
                Err(format!(
                    "unsigned {} from {sender} refused: with signatures enforced, consensus \
                     commands, SPAWN and RELEASE must be signed (give {sender} a key: \
                     agent-relay keys create {sender})",
                    env.msg_type
                ))
            }
            other => other,
        };
        match verdict {
            Ok(crate::signing::Verdict::Verified { t }) => {
                self.counters.signatures_verified += 1;
                // Persisted with the message row, or on its own once the frame is handled.
                self.unrecorded_signature = Some((sender, env.id.clone(), t as i64));
                Ingress::Signed
            }
            Ok(crate::signing::Verdict::Unsigned) => Ingress::Unsigned,
            Err(why) => {
                self.refuse_signature(conn_id, &sender, env, why);
                Ingress::Refused
            }
        }
    }

    /// Refuses `env` from `sender` for its signature: NACK FORBIDDEN and a `signature_invalid`
    /// dead letter.
    pub(crate) fn refuse_signature(
        &mut self,
        conn_id: u64,
        sender: &str,
        env: &Envelope,
        why: String,
    ) {
        self.counters.signatures_rejected += 1;
        self.nack(conn_id, &env.id, NackCode::Forbidden, why.clone());
        let (to, payload) = match refused_answer(env) {
            // Kept for the sender that waits for it, whatever `to` the answer named.
            Some((correlation_id, payload)) => {
                let waiting = self.waiting_sender(&correlation_id).map(str::to_string);
                (
                    waiting.or_else(|| env.to.clone()).unwrap_or_default(),
                    payload,
                )
            }
            None => refused_message(env),
        };
        let letter = self.letter_from_send(sender, &to, env, &payload);
        self.dead_letter(FailureReason::SignatureInvalid, letter, why, false);
    }

    /// The name of the sender waiting for an answer to `correlation_id`, if one still is.
    fn waiting_sender(&self, correlation_id: &str) -> Option<&str> {
        let wait = self.syncs.waits.get(correlation_id)?;
        self.conn_name(wait.sender_conn)
    }

    /// Why a signed answer to the sync wait `correlation_id` could not verify at the sender
    /// waiting for it: the copy forwarded to that sender names it in `to`, so the answer must
    /// have been signed with that `to`. `None` when it was, or the answer is unsigned, or nobody
    /// waits for it.
    pub(crate) fn misaddressed_answer(
        &self,
        correlation_id: &str,
        answer: &Envelope,
    ) -> Option<String> {
        answer.sig.as_ref()?;
        let sender = self.waiting_sender(correlation_id)?;
        (answer.to.as_deref() != Some(sender)).then(|| {
            format!(
                "signature rejected: this answer goes to {sender}, who checks it as addressed to \
                 {sender}, but it was signed with to = {:?}; sign it with to = {sender:?}",
                answer.to.as_deref().unwrap_or("(none)")
            )
        })
    }
}

/// The target and content a refused frame is dead-lettered with: a channel post's channel and
/// text, a SEND's own; a payload that does not decode is kept whole as the body.
fn refused_message(env: &Envelope) -> (String, SendPayload) {
    let whole = || SendPayload {
        kind: relay_protocol::PayloadKind::Message,
        body: env.payload.get().to_string(),
        data: None,
        thread: None,
    };
    if env.msg_type == MessageType::ChannelMessage {
        return match env.payload_as::<relay_protocol::ChannelMessagePayload>() {
            Ok(p) => (
                p.channel,
                SendPayload {
                    kind: relay_protocol::PayloadKind::Message,
                    body: p.body,
                    data: p.data,
                    thread: p.thread,
                },
            ),
            Err(_) => (env.to.clone().unwrap_or_default(), whole()),
        };
    }
    let payload = env.payload_as().unwrap_or_else(|_| whole());
    (env.to.clone().unwrap_or_default(), payload)
}

/// A refused sync answer (an ACK with a `correlationId`) as a dead letter's content: the
/// answer's `response` as the body (as it stands when it is text, as JSON otherwise), and
/// `correlationId` and `responseData` in `data`, so that `dlq show` reads as the answer and a
/// replay delivers it to the sender as a message (the blocking SEND it answered has ended by
/// then). `None` for any other frame.
fn refused_answer(env: &Envelope) -> Option<(String, SendPayload)> {
    if env.msg_type != MessageType::Ack {
        return None;
    }
    let ack = env.payload_as::<relay_protocol::AckPayload>().ok()?;
    let correlation_id = ack.correlation_id?;
    let body = match ack.response {
        Some(serde_json::Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut data = serde_json::Map::new();
    data.insert("correlationId".into(), correlation_id.clone().into());
    if let Some(response_data) = ack.response_data {
        data.insert("responseData".into(), response_data);
    }
    let payload = SendPayload {
        kind: relay_protocol::PayloadKind::Message,
        body,
        data: Some(data),
        thread: None,
    };
    Some((correlation_id, payload))
}

/// What [`Router::verify_ingress`] made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ingress {
    /// Refused (answered and dead-lettered already).
    Refused,
    /// Accepted without a signature.
    Unsigned,
    /// Its signature verified, and its `(sender, id)` is in the replay cache now.
    Signed,
}

impl Ingress {
    pub(crate) fn accepted(self) -> bool {
        self != Ingress::Refused
    }
}
