//! The router: the single owner of routing state.
//!
//! Connections talk to it over one bounded channel ([`RouterMsg`]); it never awaits storage or a
//! socket. Frames go out through each connection's bounded writer queue; frames that do not fit
//! wait in a per-connection overflow queue (bounded by the pending-delivery limit) until the
//! writer reports it has drained. Storage writes are handed to the store's writer thread; storage
//! reads run in spawned tasks that answer the client directly or report back to the router.

mod channels;
pub(crate) mod consensus;
mod context;
mod dedupe;
mod delivery;
mod queries;
mod replay;
mod restart;
mod send;
pub(crate) mod spawn;

pub use replay::ReplayRequest;
pub(crate) use restart::{OWED_KEPT_MS, RESTORED_MAX_AGE_MS, RESTORED_MAX_IDS};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_protocol::{
    AgentReadyPayload, EntityType, Envelope, ErrorCode, HelloPayload, MessageType, ServerInfo,
    WatchPayload, WelcomePayload,
};
use relay_store::{AgentRecord, SessionRecord, StoredMessage, WriteOp};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use crate::connection::{bye_frame, error_frame, frame_of, Outbound, Outlet};
use crate::failure::{DeadLetter, FailureReason, FailureSink};
use crate::metrics::Counters;
use crate::ratelimit::TokenBucket;
use crate::signing::Precheck;
use crate::Shared;

pub use channels::Channels;

use delivery::Tracker;

/// A new session, resolved by the connection before registration.
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub session_id: String,
    pub resume_token: String,
    pub resumed: bool,
    /// (sender, topic, max seq) already used in a resumed session.
    pub seeds: Vec<(String, Option<String>, u64)>,
}

#[derive(Debug)]
pub struct Registration {
    pub conn_id: u64,
    pub hello: HelloPayload,
    pub outlet: Outlet,
    pub session: SessionStart,
    pub pid: Option<u32>,
    pub uid: u32,
}

/// Everything the router is told.
#[derive(Debug)]
pub enum RouterMsg {
    Register(Box<Registration>),
    Frame {
        conn_id: u64,
        env: Box<Envelope>,
        /// The connection task's check of the frame's signature (signed frames of the types
        /// [`checked_on_ingress`](crate::signing::checked_on_ingress), with signing on).
        signature: Option<crate::signing::Precheck>,
    },
    Closed {
        conn_id: u64,
        reason: String,
    },
    /// A congested writer queue has room again.
    Drained {
        conn_id: u64,
    },
    /// Pending messages for a newly registered connection, read from storage.
    BacklogLoaded {
        conn_id: u64,
        rows: Result<Vec<StoredMessage>, String>,
    },
    /// The dead letter queue sends a letter back for delivery.
    Replay(Box<ReplayRequest>),
    /// A message from `_system` to connected users (`@users`) or everyone (`*`).
    SystemNotice {
        to: String,
        text: String,
        data: serde_json::Value,
    },
    /// The spawn manager's tasks report.
    Spawn(spawn::SpawnEvent),
    /// A compacted context for an agent, from the compaction service.
    Context(Box<crate::compaction::ContextDelivery>),
    /// Stored messages that can never be delivered (their recipient was removed).
    Undeliverable {
        rows: Vec<StoredMessage>,
        reason: FailureReason,
        error: String,
    },
}

/// A registry record for an agent seen for the first time at `now`.
pub(crate) fn new_record(name: &str, entity: EntityType, now: u64) -> AgentRecord {
    AgentRecord {
        name: name.to_string(),
        entity_type: entity.as_str().to_string(),
        cli: None,
        program: None,
        model: None,
        task: None,
        working_directory: None,
        team: None,
        display_name: None,
        first_seen: now as i64,
        last_seen: now as i64,
        messages_sent: 0,
        messages_received: 0,
    }
}

/// A registered connection, as the router sees it.
pub(crate) struct Conn {
    pub id: u64,
    pub name: String,
    pub entity: EntityType,
    pub outlet: Outlet,
    pub overflow: VecDeque<Bytes>,
    pub session_id: String,
    pub seqs: HashMap<String, u64>,
    pub pid: Option<u32>,
    pub cli: Option<String>,
    pub task: Option<String>,
    pub team: Option<String>,
    pub connected_at: u64,
    /// Deliveries held back while the stored backlog is loaded, to keep order.
    pub held: Option<Vec<Bytes>>,
    pub watch: Option<WatchPayload>,
    pub resumed: bool,
    /// A tool connection (`_isSystemComponent`): not registered, listed or broadcast to.
    pub system: bool,
}

impl Conn {
    pub fn next_seq(&mut self, topic: Option<&str>, from: &str) -> u64 {
        let key = format!("{}:{}", topic.unwrap_or("default"), from);
        let seq = self.seqs.entry(key).or_insert(0);
        *seq += 1;
        *seq
    }
}

/// How a frame push went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Sent,
    /// Queued in the overflow: the recipient is slow.
    Congested,
    Gone,
}

pub struct Router {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conns: HashMap<u64, Conn>,
    pub(crate) by_name: HashMap<String, u64>,
    pub(crate) registry: HashMap<String, AgentRecord>,
    registry_dirty: HashSet<String>,
    pub(crate) subscriptions: HashMap<String, HashSet<String>>,
    pub(crate) channels: Channels,
    pub(crate) shadows: HashMap<String, Vec<send::ShadowBinding>>,
    pub(crate) tracker: Tracker,
    pub(crate) syncs: send::SyncWaits,
    pub(crate) dedupe: dedupe::SendDedupe,
    pub(crate) buckets: HashMap<String, TokenBucket>,
    pub(crate) last_busy: HashMap<String, Instant>,
    pub(crate) watchers: HashSet<u64>,
    pub(crate) counters: Counters,
    failures: Box<dyn FailureSink>,
    pub(crate) dlq: Option<crate::dlq::DlqHandle>,
    pub(crate) consensus: Option<relay_consensus::Engine>,
    pub(crate) signing: Option<crate::signing::SigningGuard>,
    /// Context compaction (`[compaction] enabled`); set after [`Router::new`].
    pub(crate) compaction: Option<context::ContextLink>,
    pub(crate) spawner: spawn::Spawner,
    /// `(signer, message id, time)` of the frame being handled, verified and not yet persisted
    /// for replay protection.
    pub(crate) unrecorded_signature: Option<(String, String, i64)>,
    /// The connection task's check of the signature of the frame being handled.
    pub(crate) ingress_signature: Option<Precheck>,
    ticks: u64,
    /// Message id → dead letter id, for replays in flight.
    pub(crate) replays: HashMap<String, String>,
    last_store_warning: Option<Instant>,
    last_activity: u64,
    quiet_ticks: u32,
    trimmed: bool,
}

impl Router {
    pub fn new(
        shared: Arc<Shared>,
        agents: Vec<AgentRecord>,
        channels: Channels,
        failures: Box<dyn FailureSink>,
        dlq: Option<crate::dlq::DlqHandle>,
        consensus: Option<relay_consensus::Engine>,
        signing: Option<crate::signing::SigningGuard>,
    ) -> Router {
        Router {
            tracker: Tracker::new(&shared.config.delivery),
            syncs: send::SyncWaits::default(),
            registry: agents.into_iter().map(|a| (a.name.clone(), a)).collect(),
            shared,
            conns: HashMap::new(),
            by_name: HashMap::new(),
            registry_dirty: HashSet::new(),
            subscriptions: HashMap::new(),
            channels,
            shadows: HashMap::new(),
            dedupe: dedupe::SendDedupe::default(),
            buckets: HashMap::new(),
            last_busy: HashMap::new(),
            watchers: HashSet::new(),
            counters: Counters::default(),
            failures,
            dlq,
            consensus,
            signing,
            compaction: None,
            spawner: spawn::Spawner::default(),
            unrecorded_signature: None,
            ingress_signature: None,
            ticks: 0,
            replays: HashMap::new(),
            last_store_warning: None,
            last_activity: 0,
            quiet_ticks: 0,
            trimmed: true,
        }
    }

    /// Runs until `shutdown` fires, then says BYE to every connection and flushes state.
    pub async fn run(mut self, mut rx: mpsc::Receiver<RouterMsg>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(512);
        let mut registry_tick = tokio::time::interval(Duration::from_secs(1));
        registry_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer for the compaction hand-over, moved only when its deadline changes: a new
        // sleep per pass of the loop would register and cancel a timer on every wake-up.
        let flush_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(flush_timer);
        let mut armed_at = None;
        loop {
            let next_expiry = self.next_consensus_expiry();
            let flush_at = self.history_flush_at();
            if let Some(at) = flush_at.filter(|at| armed_at != Some(*at)) {
                flush_timer.as_mut().reset(at.into());
                armed_at = Some(at);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                n = rx.recv_many(&mut batch, 512) => {
                    if n == 0 { break; }
                    for msg in batch.drain(..) {
                        self.handle(msg);
                    }
                }
                Some(expired) = self.tracker.next_expired() => self.on_delivery_timeout(expired),
                Some(expired) = self.syncs.next_expired() => self.on_sync_timeout(expired),
                _ = consensus::consensus_deadline(next_expiry) => self.on_consensus_expiry(),
                _ = &mut flush_timer, if flush_at.is_some() => {}
                _ = registry_tick.tick() => {
                    self.flush_registry();
                    self.retry_deferred_contexts();
                    self.release_memory_when_idle();
                    self.ticks += 1;
                    if self.ticks % 600 == 1 {
                        self.prune_proposals();
                    }
                    if self.ticks.is_multiple_of(60) {
                        self.prune_signatures();
                        self.prune_owed();
                    }
                }
            }
            self.flush_history();
        }
        let grace = Duration::from_millis(self.shared.config.spawn.stop_grace_ms);
        self.spawner.stop_all(grace).await;
        self.shutdown();
    }

    fn handle(&mut self, msg: RouterMsg) {
        match msg {
            RouterMsg::Register(reg) => self.register(*reg),
            RouterMsg::Frame {
                conn_id,
                env,
                signature,
            } => self.on_frame(conn_id, *env, signature),
            RouterMsg::Closed { conn_id, reason } => self.unregister(conn_id, &reason),
            RouterMsg::Drained { conn_id } => self.drain_overflow(conn_id),
            RouterMsg::BacklogLoaded { conn_id, rows } => self.on_backlog(conn_id, rows),
            RouterMsg::Replay(req) => self.on_replay(*req),
            RouterMsg::SystemNotice { to, text, data } => self.on_system_notice(&to, &text, data),
            RouterMsg::Spawn(event) => self.on_spawn_event(event),
            RouterMsg::Context(delivery) => self.on_context_delivery(*delivery),
            RouterMsg::Undeliverable {
                rows,
                reason,
                error,
            } => {
                for row in rows {
                    self.counters.failed += 1;
                    self.store_write(WriteOp::SetStatus {
                        id: row.id.clone(),
                        status: relay_store::MessageStatus::Failed,
                        last_error: Some(format!("{}: {error}", reason.as_str())),
                    });
                    self.dead_letter(reason, row, error.clone(), true);
                }
            }
        }
    }

    fn on_frame(&mut self, conn_id: u64, env: Envelope, signature: Option<Precheck>) {
        if !self.conns.contains_key(&conn_id) {
            return;
        }
        self.ingress_signature = signature;
        self.dispatch_frame(conn_id, env);
        // Belongs to this frame only, whether or not its handler looked at it.
        self.ingress_signature = None;
        // A verified signature the frame's stored rows did not carry (nothing was stored, or
        // the frame is not a message) is remembered on its own for replay protection.
        if let Some((signer, m, t)) = self.unrecorded_signature.take() {
            self.store_write(WriteOp::RecordSignature { signer, m, t });
        }
    }

    fn dispatch_frame(&mut self, conn_id: u64, env: Envelope) {
        use MessageType as T;
        match &env.msg_type {
            T::Send => self.on_send(conn_id, env),
            T::Ack => self.on_ack(conn_id, env),
            T::Nack => self.on_client_nack(conn_id, env),
            T::Subscribe | T::Unsubscribe => self.on_subscription(conn_id, env),
            T::ShadowBind | T::ShadowUnbind => self.on_shadow(conn_id, env),
            T::ChannelJoin | T::ChannelLeave => self.on_channel_membership(conn_id, env),
            T::ChannelMessage => self.on_channel_message(conn_id, env),
            T::ChannelTyping => self.on_channel_typing(conn_id, env),
            T::ChannelInfo | T::ChannelMembers => self.on_channel_info(conn_id, env),
            T::Log => self.on_log(conn_id, env),
            T::Watch => self.on_watch(conn_id, env),
            T::Status
            | T::Inbox
            | T::MessagesQuery
            | T::ListAgents
            | T::ListConnectedAgents
            | T::RemoveAgent
            | T::Health
            | T::Metrics
            | T::MessageGet => self.on_query(conn_id, env),
            T::Spawn => self.on_spawn(conn_id, env),
            T::Context => self.on_context_request(conn_id, env),
            T::Release => self.on_release(conn_id, env),
            T::DlqList | T::DlqGet | T::DlqStats | T::DlqReplay | T::DlqAck | T::DlqPurge => {
                self.on_dlq_request(conn_id, env)
            }
            T::ProposalCreate | T::Vote | T::ConsensusCancel => {
                if self.verify_ingress(conn_id, &env, true).accepted() {
                    self.on_consensus_frame(conn_id, env)
                }
            }
            T::ConsensusGet | T::ConsensusList | T::ConsensusStats => {
                self.on_consensus_frame(conn_id, env)
            }
            T::Welcome
            | T::Deliver
            | T::Ping
            | T::Error
            | T::Busy
            | T::SpawnResult
            | T::ReleaseResult
            | T::AgentReady
            | T::StatusResponse
            | T::InboxResponse
            | T::ListAgentsResponse
            | T::ListConnectedAgentsResponse
            | T::RemoveAgentResponse
            | T::HealthResponse
            | T::MetricsResponse
            | T::MessagesResponse
            | T::MessageGetResponse
            | T::DlqListResponse
            | T::DlqGetResponse
            | T::DlqStatsResponse
            | T::DlqReplayResponse
            | T::DlqAckResponse
            | T::DlqPurgeResponse
            | T::ConsensusResponse
            | T::ConsensusListResponse
            | T::ConsensusGetResponse
            | T::ConsensusStatsResponse
            | T::ContextResponse
            | T::WatchEvent => self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                format!("{} is sent by the daemon, not to it", env.msg_type),
                &env.id,
            ),
            other => {
                let message = format!("unsupported type {other}");
                self.reply_error(conn_id, ErrorCode::BadRequest, message, &env.id)
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Registration
    // ----------------------------------------------------------------------------------------

    fn register(&mut self, reg: Registration) {
        let name = reg.hello.agent.clone();
        let now = relay_protocol::now_ms();
        if let Some(old_id) = self.by_name.get(&name).copied() {
            if let Some(old) = self.conns.get(&old_id) {
                let outlet = old.outlet.clone();
                let _ = outlet.tx.try_send(Outbound::Frame(error_frame(
                    ErrorCode::DuplicateConnection,
                    format!("another connection registered as {name}; this one is closed"),
                    true,
                    None,
                )));
                let _ = outlet.tx.try_send(Outbound::Frame(bye_frame()));
                let _ = outlet.tx.try_send(Outbound::Close);
            }
            self.detach(old_id, "replaced by a new connection", false);
            self.counters.takeovers += 1;
        }
        let entity = reg.hello.entity_type.unwrap_or_default();
        let mut conn = Conn {
            id: reg.conn_id,
            name: name.clone(),
            entity,
            outlet: reg.outlet,
            overflow: VecDeque::new(),
            session_id: reg.session.session_id.clone(),
            seqs: HashMap::new(),
            pid: reg.pid,
            cli: reg.hello.cli.clone(),
            task: reg.hello.task.clone(),
            team: reg.hello.team.clone(),
            connected_at: now,
            held: Some(Vec::new()),
            watch: None,
            resumed: reg.session.resumed,
            system: reg.hello.is_system_component == Some(true),
        };
        for (from, topic, max) in &reg.session.seeds {
            let key = format!("{}:{}", topic.as_deref().unwrap_or("default"), from);
            let e = conn.seqs.entry(key).or_insert(0);
            *e = (*e).max(*max);
        }
        let welcome = Envelope::new(
            MessageType::Welcome,
            &WelcomePayload {
                session_id: reg.session.session_id.clone(),
                resume_token: Some(reg.session.resume_token.clone()),
                server: ServerInfo {
                    max_frame_bytes: self.shared.config.daemon.max_frame_bytes,
                    heartbeat_ms: self.shared.config.daemon.heartbeat_ms,
                },
            },
        );
        let _ = conn
            .outlet
            .tx
            .try_send(Outbound::Frame(frame_of(&welcome, usize::MAX)));
        self.conns.insert(reg.conn_id, conn);
        self.by_name.insert(name.clone(), reg.conn_id);
        self.counters.connections_total += 1;

        let h = &reg.hello;
        let system = h.is_system_component == Some(true);
        if !system {
            self.remember_agent(&name, entity, h, now);
        }
        self.store_write(WriteOp::StartSession(SessionRecord {
            id: reg.session.session_id.clone(),
            agent_name: name.clone(),
            cli: h.cli.clone(),
            started_at: now as i64,
            ended_at: None,
            resume_token: Some(reg.session.resume_token.clone()),
            closed_by: None,
            message_count: 0,
        }));
        let ready = Envelope::new(
            MessageType::AgentReady,
            &AgentReadyPayload {
                name: name.clone(),
                cli: h.cli.clone(),
                task: h.task.clone(),
                connected_at: now,
            },
        );
        let ready = frame_of(&ready, usize::MAX);
        let others: Vec<u64> = self
            .conns
            .keys()
            .copied()
            .filter(|id| *id != reg.conn_id)
            .collect();
        if !system {
            for id in others {
                self.push(id, ready.clone());
            }
        }
        tracing::info!(agent = %name, conn_id = reg.conn_id, resumed = reg.session.resumed, pid = ?reg.pid, "agent connected");
        if let (false, Some(dlq)) = (system, &self.dlq) {
            dlq.target_online(name.clone());
        }
        if !system {
            self.on_worker_registered(&name);
            self.offer_context(&name, &reg.session.session_id);
        }

        let store = self.shared.store.clone();
        let tx = self.shared.router_tx.clone();
        let conn_id = reg.conn_id;
        tokio::spawn(async move {
            let rows = store.pending_for(name).await.map_err(|e| e.to_string());
            let _ = tx.send(RouterMsg::BacklogLoaded { conn_id, rows }).await;
        });
    }

    /// Records (or refreshes) an agent in the registry and puts it in `#general`.
    fn remember_agent(&mut self, name: &str, entity: EntityType, h: &HelloPayload, now: u64) {
        let name = name.to_string();
        let record = self
            .registry
            .entry(name.clone())
            .or_insert_with(|| new_record(&name, entity, now));
        record.entity_type = entity.as_str().to_string();
        record.last_seen = now as i64;
        for (slot, value) in [
            (&mut record.cli, &h.cli),
            (&mut record.program, &h.program),
            (&mut record.model, &h.model),
            (&mut record.task, &h.task),
            (&mut record.working_directory, &h.working_directory),
            (&mut record.team, &h.team),
            (&mut record.display_name, &h.display_name),
        ] {
            if value.is_some() {
                *slot = value.clone();
            }
        }
        self.registry_dirty.insert(name.clone());
        if self.channels.join("#general", &name) {
            self.store_write(WriteOp::JoinChannel(relay_store::ChannelMembership {
                channel: "#general".into(),
                member: name.clone(),
                joined_at: now as i64,
            }));
        }
    }

    fn unregister(&mut self, conn_id: u64, reason: &str) {
        if self.conns.contains_key(&conn_id) {
            self.detach(conn_id, reason, true);
        }
    }

    /// Removes a connection. Its unacknowledged deliveries stay pending in storage and are
    /// replayed when the agent next connects.
    fn detach(&mut self, conn_id: u64, reason: &str, end_session: bool) {
        let Some(conn) = self.conns.remove(&conn_id) else {
            return;
        };
        self.watchers.remove(&conn_id);
        let current = self.by_name.get(&conn.name) == Some(&conn_id);
        if current {
            self.by_name.remove(&conn.name);
            for subs in self.subscriptions.values_mut() {
                subs.remove(&conn.name);
            }
            for binds in self.shadows.values_mut() {
                binds.retain(|b| b.shadow != conn.name);
            }
            self.buckets.remove(&conn.name);
            self.last_busy.remove(&conn.name);
            // Dedupe windows outlive a connection (a client resends after reconnecting), but
            // only for a bounded number of absent senders.
            let by_name = &self.by_name;
            self.dedupe
                .sender_left(&conn.name, |name| by_name.contains_key(name));
        }
        if conn.system {
            // A tool connection is not remembered: what it never acknowledged cannot wait for it.
            for id in self.tracker.ids_for_connection(conn_id) {
                self.fail_tracked(
                    &id,
                    FailureReason::ConnectionLost,
                    format!("{} closed before acknowledging it", conn.name),
                );
            }
        }
        self.tracker.forget_connection(conn_id);
        self.syncs.forget_sender(conn_id);
        let now = relay_protocol::now_ms() as i64;
        if let Some(rec) = self.registry.get_mut(&conn.name) {
            rec.last_seen = now;
            self.registry_dirty.insert(conn.name.clone());
        }
        if end_session {
            self.store_write(WriteOp::EndSession {
                id: conn.session_id.clone(),
                ended_at: now,
                closed_by: if reason.contains("BYE") {
                    "agent"
                } else {
                    "disconnect"
                }
                .into(),
            });
        }
        tracing::info!(agent = %conn.name, conn_id, %reason, "agent disconnected");
    }

    /// After a burst, give freed heap back to the OS once traffic has been quiet for a few
    /// seconds, so an idle daemon stays small.
    fn release_memory_when_idle(&mut self) {
        let activity = self.counters.delivered + self.counters.acked + self.counters.queries;
        if activity != self.last_activity {
            self.last_activity = activity;
            self.quiet_ticks = 0;
            self.trimmed = false;
            return;
        }
        self.quiet_ticks += 1;
        if self.quiet_ticks >= 3 && !self.trimmed {
            self.trimmed = true;
            crate::sysinfo::release_free_memory();
        }
    }

    /// Signatures older than the replay window can no longer be replayed: forget them.
    fn prune_signatures(&mut self) {
        let Some(guard) = self.signing.as_mut() else {
            return;
        };
        guard.forget_expired();
        let before = relay_protocol::now_ms() as i64 - guard.window_ms() as i64;
        self.store_write(WriteOp::PruneSignatures { before });
    }

    fn flush_registry(&mut self) {
        for name in std::mem::take(&mut self.registry_dirty) {
            if let Some(rec) = self.registry.get(&name) {
                self.store_write(WriteOp::UpsertAgent(rec.clone()));
            }
        }
    }

    fn shutdown(&mut self) {
        tracing::info!(connections = self.conns.len(), "router shutting down");
        let bye = bye_frame();
        for conn in self.conns.values() {
            for frame in conn.overflow.iter() {
                if conn
                    .outlet
                    .tx
                    .try_send(Outbound::Frame(frame.clone()))
                    .is_err()
                {
                    break;
                }
            }
            let _ = conn.outlet.tx.try_send(Outbound::Frame(bye.clone()));
            let _ = conn.outlet.tx.try_send(Outbound::Close);
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.detach(id, "daemon shutting down", true);
        }
        self.flush_registry();
    }

    // ----------------------------------------------------------------------------------------
    // Output helpers
    // ----------------------------------------------------------------------------------------

    pub(crate) fn push(&mut self, conn_id: u64, frame: Bytes) -> Pushed {
        let limit = self.shared.config.limits.max_pending_per_agent;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Pushed::Gone;
        };
        if !conn.overflow.is_empty() {
            if conn.overflow.len() >= limit {
                self.counters.frames_dropped_slow_consumer += 1;
                tracing::warn!(agent = %conn.name, "outbound overflow full; dropping a non-delivery frame");
                return Pushed::Congested;
            }
            conn.overflow.push_back(frame);
            return Pushed::Congested;
        }
        match conn.outlet.tx.try_send(Outbound::Frame(frame)) {
            Ok(()) => Pushed::Sent,
            Err(TrySendError::Full(Outbound::Frame(frame))) => {
                conn.overflow.push_back(frame);
                conn.outlet
                    .congested
                    .store(true, std::sync::atomic::Ordering::Release);
                self.counters.congestion_events += 1;
                Pushed::Congested
            }
            Err(TrySendError::Full(_)) => Pushed::Congested,
            Err(TrySendError::Closed(_)) => Pushed::Gone,
        }
    }

    fn drain_overflow(&mut self, conn_id: u64) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        while let Some(frame) = conn.overflow.pop_front() {
            match conn.outlet.tx.try_send(Outbound::Frame(frame)) {
                Ok(()) => {}
                Err(TrySendError::Full(Outbound::Frame(frame))) => {
                    conn.overflow.push_front(frame);
                    conn.outlet
                        .congested
                        .store(true, std::sync::atomic::Ordering::Release);
                    return;
                }
                Err(_) => return,
            }
        }
    }

    pub(crate) fn reply(&mut self, conn_id: u64, env: &Envelope) {
        let frame = frame_of(env, usize::MAX);
        self.push(conn_id, frame);
    }

    pub(crate) fn reply_error(
        &mut self,
        conn_id: u64,
        code: ErrorCode,
        message: String,
        reply_to: &str,
    ) {
        self.push(conn_id, error_frame(code, message, false, Some(reply_to)));
    }

    /// Hands a write to the storage thread. Returns false when storage is overloaded.
    pub(crate) fn store_write(&mut self, op: WriteOp) -> bool {
        // A stored message row keeps its `_sig`, and the replay cache is rebuilt from those rows
        // at start-up: no separate record of the signature is needed.
        let carries_signature = matches!(&op, WriteOp::InsertMessage(row) if row.sig.is_some());
        match self.shared.store.write(op) {
            Ok(()) => {
                if carries_signature {
                    self.unrecorded_signature = None;
                }
                true
            }
            Err(e) => {
                self.counters.store_rejections += 1;
                // One line per second at most: under overload this fires per message.
                let now = Instant::now();
                if self
                    .last_store_warning
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                {
                    self.last_store_warning = Some(now);
                    tracing::warn!(
                        total_refused = self.counters.store_rejections,
                        "storage refused a write: {e}; senders get NACK BUSY"
                    );
                }
                false
            }
        }
    }

    pub(crate) fn dead_letter(
        &mut self,
        reason: FailureReason,
        message: StoredMessage,
        error: String,
        stored: bool,
    ) {
        self.counters.dead_lettered += 1;
        self.failures.dead_letter(DeadLetter {
            reason,
            message,
            error,
            stored,
        });
    }

    pub(crate) fn conn_name(&self, conn_id: u64) -> Option<&str> {
        self.conns.get(&conn_id).map(|c| c.name.as_str())
    }

    pub(crate) fn touch_registry(&mut self, name: &str, sent: i64, received: i64) {
        if let Some(rec) = self.registry.get_mut(name) {
            rec.messages_sent += sent;
            rec.messages_received += received;
            rec.last_seen = relay_protocol::now_ms() as i64;
            if !self.registry_dirty.contains(name) {
                self.registry_dirty.insert(name.to_string());
            }
        }
    }
}
