//! The [`Client`] handle.

use std::sync::Arc;
use std::time::Duration;

use relay_protocol::ids::{new_id, validate_agent_name};
use relay_protocol::{
    now_ms, AckPayload, ChannelJoinPayload, ChannelLeavePayload, ChannelMessagePayload,
    ConsensusGetResponsePayload, ConsensusIdPayload, ConsensusListPayload,
    ConsensusListResponsePayload, ConsensusResponsePayload, ContextPayload, ContextResponsePayload,
    DlqCountResponsePayload, DlqFilter, DlqGetPayload, DlqGetResponsePayload,
    DlqListResponsePayload, DlqSelectPayload, DlqStatsResponsePayload, Envelope, HealthPayload,
    HealthResponsePayload, InboxPayload, InboxResponsePayload, ListAgentsPayload,
    ListAgentsResponsePayload, LogPayload, MessageGetPayload, MessageGetResponsePayload,
    MessageType, MessagesQueryPayload, MessagesResponsePayload, MetricsPayload,
    MetricsResponsePayload, ReleasePayload, ReleaseResultPayload, RemoveAgentPayload,
    RemoveAgentResponsePayload, SpawnPayload, SpawnResultPayload, StatusResponsePayload, SyncMeta,
    WatchPayload,
};
use relay_signing::{KeyLookup, VerifyError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ClientConfig;
use crate::dedupe::Dedupe;
use crate::driver::{encode, establish, Driver, Outgoing, Queues, CONTROL_CAPACITY};
use crate::error::ClientError;
use crate::event::{Delivered, Event, Signed};
use crate::options::SendOptions;
use crate::shared::{Shared, WaitGuard, Waiter};
use crate::signing::{is_signed_type, SignedFrame, Signer};

/// The events of one client, in arrival order. Keep reading it: when it is full the client
/// stops reading the socket.
pub type EventStream = mpsc::Receiver<Event>;

/// Extra time a `send_and_wait` waits past its timeout for the daemon's TIMEOUT error.
const SYNC_GRACE: Duration = Duration::from_secs(1);
/// Deadline of SPAWN and RELEASE: starting or stopping a process (with its grace period).
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `close` waits for the connection task to finish.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A connection to the daemon. Cheap to clone; every clone drives the same connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    out_tx: mpsc::Sender<Outgoing>,
    shutdown_tx: watch::Sender<bool>,
    done_rx: watch::Receiver<bool>,
}

impl Client {
    /// Connects, completes the handshake (within `connect_timeout`) and starts the
    /// connection task. The first event on the stream is [`Event::Connected`].
    pub async fn connect(config: ClientConfig) -> Result<(Client, EventStream), ClientError> {
        validate_agent_name(&config.agent_name)?;
        let signer = match &config.signing {
            Some(signing) => Some(Signer::new(&config.agent_name, signing)?),
            None => None,
        };
        let shared = Shared::new(config, signer);
        let first = establish(&shared).await?;
        let config = &shared.config;
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (out_tx, out_rx) = mpsc::channel(config.outgoing_capacity.max(1));
        let (ctrl_tx, ctrl_rx) = mpsc::channel(CONTROL_CAPACITY);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let driver = Driver {
            shared: Arc::clone(&shared),
            events: events_tx,
            ctrl_tx,
            queues: Some(Queues { out_rx, ctrl_rx }),
            shutdown: shutdown_rx,
            done: done_tx,
            dedupe: Dedupe::new(config.dedupe_capacity),
            closing: false,
        };
        tokio::spawn(driver.run(first));
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                out_tx,
                shutdown_tx,
                done_rx,
            }),
        };
        Ok((client, events_rx))
    }

    /// The configuration this client was started with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.shared.config
    }

    /// The registered agent name.
    pub fn agent_name(&self) -> &str {
        &self.inner.shared.config.agent_name
    }

    /// Checks the signature of a received message against `keys` (a
    /// [`SharedSecret`](relay_signing::SharedSecret), a [`Keystore`](relay_signing::Keystore)
    /// directory, a [`KeyRing`](relay_signing::KeyRing)…): the sender's key must be known, not
    /// revoked and still valid now, and the signature must cover exactly the type, sender,
    /// original target, topic, payload and metadata that arrived. An unsigned message is refused
    /// as malformed. The client never verifies on its own; call this for the messages that
    /// matter.
    pub fn verify(delivered: &Delivered, keys: &dyn KeyLookup) -> Result<(), VerifyError> {
        delivered.verify_at(keys, now_ms())
    }

    /// Checks the signature of a received channel post or sync answer (the `signed` part of
    /// [`Event::ChannelMessage`](crate::Event::ChannelMessage),
    /// [`Event::SyncAck`](crate::Event::SyncAck) or [`SyncAnswer`]) against `keys`, as
    /// [`Client::verify`] does for messages: the sender's key must be known, not revoked and
    /// still valid now, and the signature must cover the frame as it arrived.
    pub fn verify_signed(signed: &Signed, keys: &dyn KeyLookup) -> Result<(), VerifyError> {
        signed.verify_at(keys, now_ms())
    }

    /// The current session id; `None` while disconnected or after close.
    pub fn session_id(&self) -> Option<String> {
        self.inner.shared.state().session_id.clone()
    }

    /// Whether the client stopped for good.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.state().closed.is_some()
    }

    /// Sends a message; returns the SEND's envelope id (what a NACK names). Returns once the
    /// frame is queued, not when it is delivered.
    pub async fn send(&self, opts: SendOptions) -> Result<String, ClientError> {
        let env = send_envelope(&opts);
        let id = env.id.clone();
        self.enqueue(env).await?;
        Ok(id)
    }

    /// Sends a message with `payload_meta.sync` and waits for the recipient's answer (an ACK
    /// with the same correlation id, forwarded by the daemon). Fails fast on a NACK for this
    /// send or the daemon's TIMEOUT error, and locally shortly after `timeout`.
    pub async fn send_and_wait(
        &self,
        opts: SendOptions,
        timeout: Duration,
    ) -> Result<AckPayload, ClientError> {
        self.send_sync(opts, timeout).await?.answer().await
    }

    /// The first half of [`Client::send_and_wait`]: queues the message now (so it keeps its
    /// place among the caller's sends) and returns the pending answer, to await elsewhere.
    pub async fn send_sync(
        &self,
        mut opts: SendOptions,
        timeout: Duration,
    ) -> Result<PendingSync, ClientError> {
        let correlation_id = new_id();
        opts.meta_mut().sync = Some(SyncMeta {
            correlation_id: correlation_id.clone(),
            timeout_ms: Some(duration_ms(timeout)),
            blocking: true,
        });
        let env = send_envelope(&opts);
        let (tx, rx) = oneshot::channel();
        let guard = self.register(correlation_id, env.id.clone(), Waiter::Sync(tx));
        self.enqueue(env).await?;
        Ok(PendingSync {
            rx,
            _guard: guard,
            deadline: timeout + SYNC_GRACE,
            to: opts.to,
        })
    }

    /// Sends a request and waits for the response (SDK convention: `data._correlationId` and
    /// `payload_meta.replyTo` carry a fresh correlation id; the responder echoes it).
    pub async fn request(
        &self,
        to: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<Delivered, ClientError> {
        self.request_with(SendOptions::new(to, body), timeout).await
    }

    /// [`Client::request`] with full send options.
    pub async fn request_with(
        &self,
        mut opts: SendOptions,
        timeout: Duration,
    ) -> Result<Delivered, ClientError> {
        let correlation_id = new_id();
        opts.set_data("_correlationId", Value::String(correlation_id.clone()));
        opts.meta_mut().reply_to = Some(correlation_id.clone());
        let env = send_envelope(&opts);
        let (tx, rx) = oneshot::channel();
        let _guard = self.register(correlation_id, env.id.clone(), Waiter::Request(tx));
        self.enqueue(env).await?;
        wait(rx, timeout, || format!("request to {}", opts.to)).await
    }

    /// Answers a [`Client::request`]: sends `body` to `to` with `data._correlationId`,
    /// `data._isResponse: true` and `payload_meta.replyTo`.
    pub async fn respond(
        &self,
        correlation_id: &str,
        to: &str,
        body: &str,
        data: Option<Map<String, Value>>,
    ) -> Result<String, ClientError> {
        let mut opts = SendOptions::new(to, body);
        opts.data = data;
        opts.set_data("_correlationId", Value::String(correlation_id.to_string()));
        opts.set_data("_isResponse", Value::Bool(true));
        opts.meta_mut().reply_to = Some(correlation_id.to_string());
        self.send(opts).await
    }

    /// Answers a message sent with sync (`send_and_wait`): an ACK with its correlation id and
    /// `response: true`, which the daemon forwards to the waiting sender. Signed when signing
    /// is on, addressed (`to`) to that sender.
    pub async fn reply_sync(
        &self,
        delivered: &Delivered,
        response_data: Option<Value>,
    ) -> Result<(), ClientError> {
        let Some(correlation_id) = delivered.sync_correlation_id() else {
            return Err(ClientError::NotSync {
                id: delivered.id.clone(),
            });
        };
        self.sync_ack(
            &delivered.id,
            correlation_id,
            &delivered.from,
            true,
            response_data,
        )
        .await
    }

    /// Acknowledges a DELIVER (only needed with `auto_ack: false`).
    pub async fn ack(&self, id: &str, seq: u64) -> Result<(), ClientError> {
        let ack = AckPayload {
            ack_id: id.to_string(),
            seq,
            ..AckPayload::default()
        };
        self.enqueue(Envelope::new(MessageType::Ack, &ack)).await
    }

    /// Answers a sync message by ids (for callers that no longer hold the [`Delivered`]): an ACK
    /// with the correlation id, forwarded by the daemon to the waiting sender `to` (the
    /// message's `from`). Signed when signing is on.
    pub async fn sync_ack(
        &self,
        ack_id: &str,
        correlation_id: &str,
        to: &str,
        response: bool,
        response_data: Option<Value>,
    ) -> Result<(), ClientError> {
        let ack = AckPayload {
            ack_id: ack_id.to_string(),
            seq: 0,
            correlation_id: Some(correlation_id.to_string()),
            response: Some(Value::Bool(response)),
            response_data,
            ..AckPayload::default()
        };
        self.enqueue_answer(Envelope::new(MessageType::Ack, &ack).to(to))
            .await
    }

    /// Streams agent output to observers (a LOG frame). Never waits: when the outgoing queue is
    /// full the text is refused, since log lines must not delay messages.
    pub fn try_log(&self, data: &str) -> Result<(), ClientError> {
        if let Some(reason) = self.inner.shared.state().closed.clone() {
            return Err(ClientError::Closed { reason });
        }
        let payload = LogPayload {
            data: data.to_string(),
            timestamp: Some(now_ms()),
        };
        let env = Envelope::new(MessageType::Log, &payload);
        let frame = encode(&env, self.inner.shared.config.max_frame_bytes)?;
        self.inner
            .out_tx
            .try_send(Outgoing::Frame(frame))
            .map_err(|_| ClientError::QueueFull {
                after: Duration::ZERO,
            })
    }

    /// Asks the daemon's spawn manager to start an agent; answers when the process runs.
    pub async fn spawn(&self, payload: SpawnPayload) -> Result<SpawnResultPayload, ClientError> {
        self.query(MessageType::Spawn, &payload, SPAWN_TIMEOUT)
            .await
    }

    /// Asks the daemon's spawn manager to stop an agent it spawned; answers when it is gone.
    pub async fn release(
        &self,
        payload: ReleasePayload,
    ) -> Result<ReleaseResultPayload, ClientError> {
        self.query(MessageType::Release, &payload, SPAWN_TIMEOUT)
            .await
    }

    /// Subscribes to a topic (kept across reconnects).
    pub async fn subscribe(&self, topic: &str) -> Result<(), ClientError> {
        self.inner
            .shared
            .state()
            .subscriptions
            .insert(topic.to_string());
        let env = Envelope::new(MessageType::Subscribe, &empty()).topic(topic);
        self.enqueue(env).await
    }

    pub async fn unsubscribe(&self, topic: &str) -> Result<(), ClientError> {
        self.inner.shared.state().subscriptions.remove(topic);
        let env = Envelope::new(MessageType::Unsubscribe, &empty()).topic(topic);
        self.enqueue(env).await
    }

    /// Joins a channel (`#name`); memberships are kept by the daemon.
    pub async fn join_channel(&self, channel: &str) -> Result<(), ClientError> {
        let payload = ChannelJoinPayload {
            channel: channel.to_string(),
            display_name: self.inner.shared.config.display_name.clone(),
            avatar_url: None,
            member: None,
        };
        self.enqueue(Envelope::new(MessageType::ChannelJoin, &payload))
            .await
    }

    pub async fn leave_channel(&self, channel: &str) -> Result<(), ClientError> {
        let payload = ChannelLeavePayload {
            channel: channel.to_string(),
            reason: None,
            member: None,
        };
        self.enqueue(Envelope::new(MessageType::ChannelLeave, &payload))
            .await
    }

    /// Posts to a channel; returns the envelope id.
    pub async fn channel_message(
        &self,
        channel: &str,
        body: &str,
        thread: Option<&str>,
    ) -> Result<String, ClientError> {
        self.channel_post(ChannelMessagePayload {
            channel: channel.to_string(),
            body: body.to_string(),
            thread: thread.map(str::to_string),
            mentions: None,
            attachments: None,
            data: None,
        })
        .await
    }

    /// Posts to a channel with every field of CHANNEL_MESSAGE (mentions, attachments, data);
    /// returns the envelope id. Signed when signing is on.
    pub async fn channel_post(
        &self,
        payload: ChannelMessagePayload,
    ) -> Result<String, ClientError> {
        let env = Envelope::new(MessageType::ChannelMessage, &payload);
        let id = env.id.clone();
        self.enqueue(env).await?;
        Ok(id)
    }

    /// Sends any query and decodes the answer: the envelope whose `id` equals the request's.
    /// An ERROR naming the request (`replyTo`) fails it.
    pub async fn query<T: DeserializeOwned>(
        &self,
        msg_type: MessageType,
        payload: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let what = msg_type.to_string();
        let env = Envelope::new(msg_type, payload);
        let (tx, rx) = oneshot::channel();
        let _guard = self.register(env.id.clone(), env.id.clone(), Waiter::Query(tx));
        self.enqueue(env).await?;
        let answer = wait(rx, timeout, || what.clone()).await?;
        answer.payload_as::<T>().map_err(|e| {
            ClientError::Protocol(format!(
                "cannot decode the {} answer to {what}: {e}",
                answer.msg_type
            ))
        })
    }

    fn timeout(&self) -> Duration {
        self.inner.shared.config.request_timeout
    }

    pub async fn status(&self) -> Result<StatusResponsePayload, ClientError> {
        self.query(MessageType::Status, &empty(), self.timeout())
            .await
    }

    pub async fn inbox(&self, query: InboxPayload) -> Result<InboxResponsePayload, ClientError> {
        self.query(MessageType::Inbox, &query, self.timeout()).await
    }

    pub async fn messages(
        &self,
        query: MessagesQueryPayload,
    ) -> Result<MessagesResponsePayload, ClientError> {
        self.query(MessageType::MessagesQuery, &query, self.timeout())
            .await
    }

    /// Every agent the daemon knows, online or not.
    pub async fn list_agents(&self) -> Result<ListAgentsResponsePayload, ClientError> {
        let payload = ListAgentsPayload {
            include_idle: Some(true),
            project: None,
        };
        self.query(MessageType::ListAgents, &payload, self.timeout())
            .await
    }

    /// The agents connected right now.
    pub async fn list_connected_agents(&self) -> Result<ListAgentsResponsePayload, ClientError> {
        self.query(MessageType::ListConnectedAgents, &empty(), self.timeout())
            .await
    }

    pub async fn remove_agent(
        &self,
        name: &str,
        remove_messages: bool,
    ) -> Result<RemoveAgentResponsePayload, ClientError> {
        let payload = RemoveAgentPayload {
            name: name.to_string(),
            remove_messages: Some(remove_messages),
        };
        self.query(MessageType::RemoveAgent, &payload, self.timeout())
            .await
    }

    pub async fn health(&self) -> Result<HealthResponsePayload, ClientError> {
        self.query(
            MessageType::Health,
            &HealthPayload::default(),
            self.timeout(),
        )
        .await
    }

    pub async fn metrics(&self) -> Result<MetricsResponsePayload, ClientError> {
        self.query(
            MessageType::Metrics,
            &MetricsPayload::default(),
            self.timeout(),
        )
        .await
    }

    /// Looks a message up by id or unique id prefix (MESSAGE_GET). A missing or ambiguous id
    /// comes back as `error` in the answer.
    pub async fn message_get(
        &self,
        id_or_prefix: &str,
    ) -> Result<MessageGetResponsePayload, ClientError> {
        let payload = MessageGetPayload {
            id: id_or_prefix.to_string(),
        };
        self.query(MessageType::MessageGet, &payload, self.timeout())
            .await
    }

    /// Lists dead letters matching `filter` (DLQ_LIST), oldest first as the daemon returns
    /// them; `total` counts every match, ignoring `limit` and `offset`.
    pub async fn dlq_list(&self, filter: DlqFilter) -> Result<DlqListResponsePayload, ClientError> {
        self.query(MessageType::DlqList, &filter, self.timeout())
            .await
    }

    /// Looks a dead letter up by id or unique id prefix (DLQ_GET). A missing or ambiguous id
    /// comes back as `error` in the answer.
    pub async fn dlq_get(&self, id_or_prefix: &str) -> Result<DlqGetResponsePayload, ClientError> {
        let payload = DlqGetPayload {
            id: id_or_prefix.to_string(),
        };
        self.query(MessageType::DlqGet, &payload, self.timeout())
            .await
    }

    /// Dead letter queue statistics, backend health and counters (DLQ_STATS).
    pub async fn dlq_stats(&self) -> Result<DlqStatsResponsePayload, ClientError> {
        self.query(MessageType::DlqStats, &empty(), self.timeout())
            .await
    }

    /// Hands the selected dead letters back to the router (DLQ_REPLAY). The daemon refuses an
    /// empty filter unless `all` is set.
    pub async fn dlq_replay(
        &self,
        sel: DlqSelectPayload,
    ) -> Result<DlqCountResponsePayload, ClientError> {
        self.query(MessageType::DlqReplay, &sel, self.timeout())
            .await
    }

    /// Marks the selected dead letters acknowledged (DLQ_ACK), by `sel.by` or the connection's
    /// name.
    pub async fn dlq_ack(
        &self,
        sel: DlqSelectPayload,
    ) -> Result<DlqCountResponsePayload, ClientError> {
        self.query(MessageType::DlqAck, &sel, self.timeout()).await
    }

    /// Deletes the selected dead letters (DLQ_PURGE).
    pub async fn dlq_purge(
        &self,
        sel: DlqSelectPayload,
    ) -> Result<DlqCountResponsePayload, ClientError> {
        self.query(MessageType::DlqPurge, &sel, self.timeout())
            .await
    }

    /// An agent's context compaction state (CONTEXT): its history size against the budget and
    /// its stored snapshot. `compact` compacts its history now (and waits for it: up to a
    /// minute, so that an external summariser may run); `inject` delivers the snapshot to the
    /// agent. Compaction disabled or an unknown agent is [`ClientError::Server`]
    /// (`BAD_REQUEST`) with the reason.
    pub async fn context(
        &self,
        agent: &str,
        compact: bool,
        inject: bool,
    ) -> Result<ContextResponsePayload, ClientError> {
        let payload = ContextPayload {
            agent: agent.to_string(),
            compact: compact.then_some(true),
            inject: inject.then_some(true),
        };
        let timeout = if compact {
            self.timeout().max(Duration::from_secs(60))
        } else {
            self.timeout()
        };
        self.query(MessageType::Context, &payload, timeout).await
    }

    /// Opens a proposal (PROPOSAL_CREATE) with this connection as its proposer. `req` is the
    /// `relay_consensus::CreateProposal` JSON: `{title, description?, participants, type?,
    /// timeoutMs?, quorum?, threshold?, weights?}`. A refused proposal comes back with
    /// `ok: false` and the reason in `message`.
    pub async fn consensus_propose(
        &self,
        req: &impl Serialize,
    ) -> Result<ConsensusResponsePayload, ClientError> {
        self.query(MessageType::ProposalCreate, req, self.timeout())
            .await
    }

    /// Votes `value` (`approve`, `reject` or `abstain`) on a proposal as this connection's
    /// name (VOTE). A refused vote comes back with `ok: false` and the reason in `message`.
    pub async fn consensus_vote(
        &self,
        proposal_id: &str,
        value: &str,
        reason: Option<&str>,
    ) -> Result<ConsensusResponsePayload, ClientError> {
        let mut payload = Map::new();
        payload.insert("proposalId".into(), Value::String(proposal_id.to_string()));
        payload.insert("value".into(), Value::String(value.to_string()));
        if let Some(reason) = reason {
            payload.insert("reason".into(), Value::String(reason.to_string()));
        }
        self.query(MessageType::Vote, &payload, self.timeout())
            .await
    }

    /// Cancels a pending proposal (CONSENSUS_CANCEL); only its proposer may.
    pub async fn consensus_cancel(
        &self,
        proposal_id: &str,
    ) -> Result<ConsensusResponsePayload, ClientError> {
        let payload = ConsensusIdPayload {
            id: proposal_id.to_string(),
        };
        self.query(MessageType::ConsensusCancel, &payload, self.timeout())
            .await
    }

    /// Lists proposals, newest first (CONSENSUS_LIST), optionally only those in one status or
    /// with one participant.
    pub async fn consensus_list(
        &self,
        query: ConsensusListPayload,
    ) -> Result<ConsensusListResponsePayload, ClientError> {
        self.query(MessageType::ConsensusList, &query, self.timeout())
            .await
    }

    /// Looks a proposal up by id (CONSENSUS_GET). An unknown id comes back as `error` in the
    /// answer.
    pub async fn consensus_get(
        &self,
        proposal_id: &str,
    ) -> Result<ConsensusGetResponsePayload, ClientError> {
        let payload = ConsensusIdPayload {
            id: proposal_id.to_string(),
        };
        self.query(MessageType::ConsensusGet, &payload, self.timeout())
            .await
    }

    /// Proposal counts by status and type (CONSENSUS_STATS): `{stats}`.
    pub async fn consensus_stats(&self) -> Result<Value, ClientError> {
        self.query(MessageType::ConsensusStats, &empty(), self.timeout())
            .await
    }

    /// Asks for a copy of every routed message (and optionally agent logs) as
    /// [`Event::Watch`]; kept across reconnects.
    pub async fn watch(&self, watch: WatchPayload) -> Result<(), ClientError> {
        self.inner.shared.state().watch = Some(watch.clone());
        self.enqueue(Envelope::new(MessageType::Watch, &watch))
            .await
    }

    /// Says BYE after everything already queued, then stops (no reconnect). Waits a bounded
    /// time for the connection task to finish; [`Event::Closed`] is the last event.
    pub async fn close(&self) {
        if !self.is_closed() {
            if let Ok(bye) = encode(
                &Envelope::new(MessageType::Bye, &empty()),
                self.inner.shared.config.max_frame_bytes,
            ) {
                // A full queue only means the BYE is skipped; the socket is closed anyway.
                let _ = self
                    .inner
                    .out_tx
                    .send_timeout(Outgoing::Bye(bye), Duration::from_millis(500))
                    .await;
            }
            // No receiver means the connection task already ended.
            let _ = self.inner.shutdown_tx.send(true);
        }
        let mut done = self.inner.done_rx.clone();
        // Past the deadline the task is left to finish on its own.
        let _ = tokio::time::timeout(CLOSE_WAIT, done.wait_for(|d| *d)).await;
    }

    fn register(&self, key: String, sent_id: String, waiter: Waiter) -> WaitGuard {
        self.inner
            .shared
            .waits()
            .insert(key.clone(), sent_id, waiter);
        WaitGuard {
            shared: Arc::clone(&self.inner.shared),
            key,
        }
    }

    /// Queues a frame; SENDs, channel posts and consensus commands are signed first when
    /// signing is on.
    async fn enqueue(&self, env: Envelope) -> Result<(), ClientError> {
        let sign = is_signed_type(&env.msg_type);
        self.enqueue_as(env, sign).await
    }

    /// Queues a sync answer (an ACK with a correlation id): signed like a SEND, since it
    /// carries content to another agent; plain ACKs are not.
    async fn enqueue_answer(&self, env: Envelope) -> Result<(), ClientError> {
        self.enqueue_as(env, true).await
    }

    async fn enqueue_as(&self, mut env: Envelope, sign: bool) -> Result<(), ClientError> {
        if let Some(reason) = self.inner.shared.state().closed.clone() {
            return Err(ClientError::Closed { reason });
        }
        let shared = &self.inner.shared;
        let config = &shared.config;
        let item = match &shared.signer {
            Some(signer) if sign => {
                signer.sign(&mut env)?;
                let frame = encode(&env, config.max_frame_bytes)?;
                Outgoing::Signed(Box::new(SignedFrame {
                    env,
                    frame,
                    signed_at: now_ms(),
                }))
            }
            _ => Outgoing::Frame(encode(&env, config.max_frame_bytes)?),
        };
        match self
            .inner
            .out_tx
            .send_timeout(item, config.queue_timeout)
            .await
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(ClientError::QueueFull {
                after: config.queue_timeout,
            }),
            Err(SendTimeoutError::Closed(_)) => Err(ClientError::Closed {
                reason: self
                    .inner
                    .shared
                    .state()
                    .closed
                    .clone()
                    .unwrap_or_else(|| "the connection task stopped".into()),
            }),
        }
    }
}

fn empty() -> Map<String, Value> {
    Map::new()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn send_envelope(opts: &SendOptions) -> Envelope {
    let mut env = Envelope::new(MessageType::Send, &opts.payload()).to(opts.to.clone());
    if let Some(topic) = &opts.topic {
        env = env.topic(topic.clone());
    }
    if let Some(meta) = &opts.meta {
        env = env.meta(meta.clone());
    }
    env
}

/// A sync message in flight (see [`Client::send_sync`]).
pub struct PendingSync {
    rx: oneshot::Receiver<Result<SyncAnswer, ClientError>>,
    _guard: WaitGuard,
    deadline: Duration,
    to: String,
}

impl PendingSync {
    /// Waits for the recipient's answer (or the NACK, TIMEOUT or local deadline).
    pub async fn answer(self) -> Result<AckPayload, ClientError> {
        self.signed_answer().await.map(|answer| answer.ack)
    }

    /// [`PendingSync::answer`] with the answer's signature, when it carries one: check it with
    /// [`Client::verify_signed`] to know who answered.
    pub async fn signed_answer(self) -> Result<SyncAnswer, ClientError> {
        let to = self.to;
        wait(self.rx, self.deadline, || format!("sync message to {to}")).await
    }
}

/// The answer to a sync message.
#[derive(Debug, Clone)]
pub struct SyncAnswer {
    pub ack: AckPayload,
    /// The answer as it arrived, when signed.
    pub signed: Option<Box<Signed>>,
}

async fn wait<T>(
    rx: oneshot::Receiver<Result<T, ClientError>>,
    after: Duration,
    what: impl FnOnce() -> String,
) -> Result<T, ClientError> {
    match tokio::time::timeout(after, rx).await {
        Err(_) => Err(ClientError::Timeout {
            what: what(),
            after,
        }),
        Ok(Err(_)) => Err(ClientError::Disconnected),
        Ok(Ok(result)) => result,
    }
}
