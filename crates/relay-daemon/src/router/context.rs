//! Context compaction in the router: one `try_send` of each routed message to the compaction
//! service, `CONTEXT` requests handed to it, and the delivery of compacted contexts, which is
//! held back while a sync (`[await]`) wait involving the agent is pending.

use std::collections::HashMap;

use relay_protocol::{
    encode_frame, ContextPayload, DeliveryInfo, Envelope, ErrorCode, MessageType, SendPayload,
};

use super::Router;
use crate::compaction::{
    answer_injection, CompactionCommand, CompactionHandle, ContextDelivery, ContextRequest,
    EventFields,
};

/// The name compacted contexts come from.
pub const SYSTEM_SENDER: &str = "_system";

/// A context delivered in a session.
struct Delivered {
    session_id: String,
    snapshot_id: String,
    message_id: String,
    acked: bool,
}

/// The router's side of context compaction.
pub(crate) struct ContextLink {
    pub(crate) handle: CompactionHandle,
    /// The latest context held back per agent (a sync wait involving it is pending).
    deferred: HashMap<String, ContextDelivery>,
    /// The latest context delivered per agent.
    delivered: HashMap<String, Delivered>,
    /// Delivery id → agent, for contexts not acknowledged yet.
    unacked: HashMap<String, String>,
}

impl ContextLink {
    pub(crate) fn new(handle: CompactionHandle) -> ContextLink {
        ContextLink {
            handle,
            deferred: HashMap::new(),
            delivered: HashMap::new(),
            unacked: HashMap::new(),
        }
    }
}

/// Who received a routed message (besides its sender).
pub(crate) enum Recipients<'a> {
    None,
    One(&'a str),
    Names(&'a [String]),
    /// Every member of the channel.
    Channel(&'a str),
}

/// A routed message, as the router describes it to the compaction service.
pub(crate) struct Routed<'a> {
    /// The message; its `ts` is stamped by [`Router::record_history`], only when compaction
    /// is on.
    pub message: EventFields<'a>,
    pub recipients: Recipients<'a>,
}

impl<'a> Routed<'a> {
    /// A SEND (or a message the daemon composed like one).
    pub(crate) fn send(
        env: &'a Envelope,
        from: &'a str,
        to: &'a str,
        payload: &'a SendPayload,
        recipients: Recipients<'a>,
    ) -> Routed<'a> {
        Routed {
            message: EventFields {
                id: &env.id,
                from,
                to,
                kind: payload.kind.as_str(),
                body: &payload.body,
                thread: payload.thread.as_deref(),
                channel: None,
                importance: env.payload_meta.as_ref().and_then(|m| m.importance),
                system: payload
                    .data
                    .as_ref()
                    .and_then(|d| d.get("_spawnTask"))
                    .and_then(|v| v.as_bool())
                    == Some(true),
                ts: 0,
            },
            recipients,
        }
    }
}

/// Whether `name` gets a history: a known agent or user that is not a tool connection and not
/// one of the daemon's own names (`_consensus`, `_system`).
fn keeps_history(
    name: &str,
    by_name: &HashMap<String, u64>,
    conns: &HashMap<u64, super::Conn>,
    registry: &HashMap<String, relay_store::AgentRecord>,
) -> bool {
    if name.starts_with('_') {
        return false;
    }
    match by_name.get(name).and_then(|id| conns.get(id)) {
        Some(conn) => !conn.system,
        None => registry.contains_key(name),
    }
}

impl Router {
    /// Connects the router to the compaction service (`None` when compaction is off).
    pub(crate) fn with_compaction(mut self, handle: Option<CompactionHandle>) -> Router {
        self.compaction = handle.map(ContextLink::new);
        self
    }

    /// Whether the compaction service wants routed messages.
    pub(crate) fn records_history(&self) -> bool {
        self.compaction.is_some()
    }

    /// Names of the connections in `ids`, for the history of a fan-out (empty when compaction
    /// is off, so that nothing is allocated then).
    pub(crate) fn history_names(&self, ids: &[u64]) -> Vec<String> {
        if !self.records_history() {
            return Vec::new();
        }
        ids.iter()
            .filter_map(|id| self.conns.get(id))
            .map(|c| c.name.clone())
            .collect()
    }

    /// After each pass of the router's loop: hands the recorded messages to the compaction
    /// service when enough are waiting or a few milliseconds have passed (one `try_send`, never
    /// a wait). The registry tick makes sure nothing waits more than a second.
    pub(crate) fn flush_history(&mut self) {
        if let Some(link) = self.compaction.as_mut() {
            link.handle.flush_due();
        }
    }

    /// When recorded messages are due to be handed over (the router's loop wakes up for it).
    pub(crate) fn history_flush_at(&self) -> Option<std::time::Instant> {
        self.compaction.as_ref().and_then(|l| l.handle.flush_at())
    }

    /// Records a routed message for the compaction service (sent by [`Self::flush_history`]).
    /// Allocates nothing of its own: the message is copied into the pass's batch.
    pub(crate) fn record_history(&mut self, routed: Routed<'_>) {
        let Some(link) = self.compaction.as_mut() else {
            return;
        };
        let Routed {
            message: m,
            recipients,
        } = routed;
        let batch = &mut link.handle.batch;
        let keeps = |name: &str| keeps_history(name, &self.by_name, &self.conns, &self.registry);
        if keeps(m.from) {
            batch.participant(m.from);
        }
        let mut add = |r: &str| {
            if r != m.from && keeps(r) {
                batch.participant(r);
            }
        };
        match recipients {
            Recipients::None => {}
            Recipients::One(r) => add(r),
            Recipients::Names(names) => names.iter().for_each(|r| add(r)),
            Recipients::Channel(channel) => {
                self.channels.members(channel).iter().for_each(|r| add(r))
            }
        }
        if batch.open_participants() == 0 {
            return batch.discard();
        }
        batch.finish(EventFields {
            ts: relay_protocol::now_ms(),
            ..m
        });
    }

    /// `CONTEXT{agent, compact?, inject?}`: checked here, answered by the compaction service.
    pub(crate) fn on_context_request(&mut self, conn_id: u64, env: Envelope) {
        if self.compaction.is_none() {
            return self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                "context compaction is disabled on this daemon; enable it with `[compaction] \
                 enabled = true` in .agent-relay/relay.toml (or start the daemon with \
                 `agent-relay up -c compaction.enabled=true`)"
                    .into(),
                &env.id,
            );
        }
        let payload: ContextPayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid CONTEXT payload: {e}; expected {{agent, compact?, inject?}}"),
                    &env.id,
                )
            }
        };
        if !self.registry.contains_key(&payload.agent) {
            let message = format!(
                "unknown agent {:?}: no agent of that name has ever connected (see `agent-relay \
                 agents`)",
                payload.agent
            );
            return self.reply_error(conn_id, ErrorCode::BadRequest, message, &env.id);
        }
        let Some(outlet) = self.conns.get(&conn_id).map(|c| c.outlet.clone()) else {
            return;
        };
        self.counters.queries += 1;
        let request = ContextRequest {
            request_id: env.id.clone(),
            payload,
            outlet,
        };
        let queued = self.compaction.as_mut().is_some_and(|link| {
            link.handle
                .command(CompactionCommand::Request(Box::new(request)))
        });
        if !queued {
            self.reply_error(
                conn_id,
                ErrorCode::Internal,
                "the compaction service is busy; retry shortly".into(),
                &env.id,
            );
        }
    }

    /// An agent registered: the service offers it its stored snapshot for this session.
    pub(crate) fn offer_context(&mut self, agent: &str, session_id: &str) {
        if let Some(link) = self.compaction.as_mut() {
            link.handle.command(CompactionCommand::AgentOnline {
                agent: agent.to_string(),
                session_id: session_id.to_string(),
            });
        }
    }

    /// REMOVE_AGENT: its history, deferred and delivered contexts are forgotten.
    pub(crate) fn forget_context(&mut self, agent: &str) {
        if let Some(link) = self.compaction.as_mut() {
            link.deferred.remove(agent);
            link.delivered.remove(agent);
            link.handle.command(CompactionCommand::Forget {
                agent: agent.to_string(),
            });
        }
    }

    /// A context from the service: delivered now, or held back while a sync wait involving
    /// the agent is pending.
    pub(crate) fn on_context_delivery(&mut self, d: ContextDelivery) {
        let Some(conn_id) = self.by_name.get(&d.agent).copied() else {
            // Offered again when the agent connects.
            if let Some(reply) = d.reply {
                answer_injection(reply, "offline");
            }
            return;
        };
        let Some(session_id) = self.conns.get(&conn_id).map(|c| c.session_id.clone()) else {
            return;
        };
        if d.session.as_ref().is_some_and(|s| *s != session_id) {
            return;
        }
        let Some(link) = self.compaction.as_mut() else {
            return;
        };
        if d.reply.is_none()
            && link.delivered.get(&d.agent).is_some_and(|x| {
                x.session_id == session_id && x.snapshot_id == d.snapshot_id && x.acked
            })
        {
            return;
        }
        if self.syncs.involves(&d.agent, conn_id) {
            let mut d = d;
            link.handle.counters.deferred_for_sync += 1;
            if let Some(reply) = d.reply.take() {
                answer_injection(reply, "deferred");
            }
            tracing::info!(agent = %d.agent, "context delivery deferred: a sync wait involving the agent is pending");
            link.deferred.insert(d.agent.clone(), d);
            return;
        }
        self.inject_context(conn_id, d);
    }

    /// Every second: hand over the recorded messages, and deliver held-back contexts whose agent
    /// has no sync wait pending any more.
    pub(crate) fn retry_deferred_contexts(&mut self) {
        let Some(link) = self.compaction.as_mut() else {
            return;
        };
        link.handle.flush();
        if link.deferred.is_empty() {
            return;
        }
        let agents: Vec<String> = link.deferred.keys().cloned().collect();
        for agent in agents {
            let conn_id = self.by_name.get(&agent).copied();
            if conn_id.is_some_and(|id| self.syncs.involves(&agent, id)) {
                continue;
            }
            let Some(d) = self
                .compaction
                .as_mut()
                .and_then(|l| l.deferred.remove(&agent))
            else {
                continue;
            };
            // An agent that went away gets its snapshot offered when it connects again.
            let Some(conn_id) = conn_id else { continue };
            let session = self.conns.get(&conn_id).map(|c| c.session_id.as_str());
            if d.session.is_some() && d.session.as_deref() != session {
                continue;
            }
            self.inject_context(conn_id, d);
        }
    }

    /// Delivers a context as a tracked DELIVER from `_system` (`kind:"state"`).
    fn inject_context(&mut self, conn_id: u64, d: ContextDelivery) {
        let ContextDelivery {
            agent,
            snapshot_id,
            body,
            info,
            reply,
            ..
        } = d;
        let payload = serde_json::json!({
            "kind": "state",
            "body": body,
            "data": {"_isSystemMessage": true, "_contextCompaction": info},
        });
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let seq = conn.next_seq(None, SYSTEM_SENDER);
        let session_id = conn.session_id.clone();
        let mut env = Envelope::new(MessageType::Deliver, &payload)
            .from(SYSTEM_SENDER)
            .to(agent.clone());
        env.delivery = Some(DeliveryInfo {
            seq,
            session_id: session_id.clone(),
            original_to: None,
        });
        let frame = match encode_frame(&env, self.shared.config.daemon.max_frame_bytes) {
            Ok(f) => f,
            Err(e) => {
                if let Some(link) = self.compaction.as_mut() {
                    link.handle.counters.injection_failures += 1;
                }
                tracing::error!(%agent, "cannot deliver the compacted context: {e}; lower compaction.max_tokens or raise daemon.max_frame_bytes");
                if let Some(reply) = reply {
                    answer_injection(reply, "failed: the context does not fit in one frame");
                }
                return;
            }
        };
        let id = env.id.clone();
        self.send_delivery(conn_id, id.clone(), frame, None, false);
        let Some(link) = self.compaction.as_mut() else {
            return;
        };
        link.handle.counters.injections += 1;
        if let Some(old) = link.delivered.insert(
            agent.clone(),
            Delivered {
                session_id,
                snapshot_id,
                message_id: id.clone(),
                acked: false,
            },
        ) {
            link.unacked.remove(&old.message_id);
        }
        link.unacked.insert(id, agent.clone());
        tracing::info!(%agent, "compacted context delivered");
        if let Some(reply) = reply {
            answer_injection(reply, "delivered");
        }
    }

    /// An ACK of a delivery that was not stored (shadow copies, contexts).
    pub(crate) fn context_acked(&mut self, id: &str) {
        let Some(link) = self.compaction.as_mut() else {
            return;
        };
        if let Some(agent) = link.unacked.remove(id) {
            if let Some(d) = link.delivered.get_mut(&agent) {
                if d.message_id == id {
                    d.acked = true;
                }
            }
        }
    }
}
