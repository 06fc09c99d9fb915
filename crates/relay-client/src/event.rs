//! What the client reports to the application.

use relay_protocol::{
    AckPayload, AgentReadyPayload, BusyPayload, ChannelJoinPayload, ChannelLeavePayload,
    ChannelMessagePayload, DeliveryInfo, Envelope, ErrorPayload, MessageType, NackPayload,
    SendMeta, SendPayload, SignatureJson, WatchEventPayload,
};
use relay_signing::{KeyLookup, Signature, VerifyError};
use serde_json::value::RawValue;
use serde_json::Value;

/// One thing that happened on the connection, in arrival order.
// Nearly every event is a `Message`: boxing it to shrink the rare variants would cost an
// allocation per message received.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// The handshake completed (first connect or a reconnect). `resumed` is true when the
    /// daemon continued the previous session, replaying its unacknowledged messages.
    Connected { session_id: String, resumed: bool },
    /// A message addressed to this agent (already acknowledged when `auto_ack` is on).
    Message(Delivered),
    /// A message in a channel this agent is a member of.
    ChannelMessage {
        id: String,
        from: String,
        payload: ChannelMessagePayload,
        /// The post as it arrived when it carries a signature: check it with
        /// [`Client::verify_signed`](crate::Client::verify_signed).
        signed: Option<Box<Signed>>,
    },
    ChannelJoin {
        from: String,
        payload: ChannelJoinPayload,
    },
    ChannelLeave {
        from: String,
        payload: ChannelLeavePayload,
    },
    /// A SEND was refused and no `send_and_wait`/`request` was waiting for it.
    Nack(NackPayload),
    /// The daemon asks this sender to slow down.
    Busy(BusyPayload),
    /// An ERROR that did not answer a pending request.
    ServerError(ErrorPayload),
    /// A spawned agent registered.
    AgentReady(AgentReadyPayload),
    /// A routed message or log line (after [`Client::watch`](crate::Client::watch)).
    Watch(WatchEventPayload),
    /// A forwarded ACK (sync answer) that no `send_and_wait` was waiting for.
    SyncAck {
        from: String,
        payload: AckPayload,
        /// The answer as it arrived when it carries a signature: check it with
        /// [`Client::verify_signed`](crate::Client::verify_signed).
        signed: Option<Box<Signed>>,
    },
    /// The connection was lost; the client is reconnecting (when `reconnect` is on).
    Disconnected { reason: String },
    /// The client stopped for good; no further events follow.
    Closed { reason: String },
}

/// A signed frame that is not a message, exactly as the daemon forwarded it: a channel post
/// (CHANNEL_MESSAGE) or a sync answer (ACK).
#[derive(Debug, Clone)]
pub struct Signed(Envelope);

impl Signed {
    /// Keeps `env` when it carries `_sig`.
    pub(crate) fn of(env: Envelope) -> Option<Box<Signed>> {
        env.sig.is_some().then(|| Box::new(Signed(env)))
    }

    /// The sender's signature (`_sig`), untouched.
    pub fn sig(&self) -> Option<&SignatureJson> {
        self.0.sig.as_ref()
    }

    /// The envelope as it arrived.
    pub fn envelope(&self) -> &Envelope {
        &self.0
    }

    /// [`Client::verify_signed`](crate::Client::verify_signed) at time `now_ms`: the signature
    /// must be the sender's (`from`) and cover the frame's type, target, topic, payload and
    /// metadata as they arrived.
    pub(crate) fn verify_at(&self, keys: &dyn KeyLookup, now_ms: u64) -> Result<(), VerifyError> {
        let env = &self.0;
        let from = env.from.as_deref().unwrap_or_default();
        let what = env.msg_type.as_str();
        verify_forwarded(what, env, from, env.sig.as_ref(), keys, now_ms)
    }
}

/// Checks `sig` as `from`'s signature over `env`, a copy the daemon forwarded (`what` names it
/// in the errors): an absent signature or sender is malformed.
fn verify_forwarded(
    what: &str,
    env: &Envelope,
    from: &str,
    sig: Option<&SignatureJson>,
    keys: &dyn KeyLookup,
    now_ms: u64,
) -> Result<(), VerifyError> {
    let Some(sig) = sig else {
        return Err(VerifyError::Malformed(format!(
            "{what} {} from {from} is not signed (no _sig)",
            env.id
        )));
    };
    let sig = Signature::from_json(sig)?;
    if from.is_empty() {
        return Err(VerifyError::Malformed(format!(
            "{what} {} names no sender to verify against",
            env.id
        )));
    }
    let original_to = relay_signing::original_target(env);
    relay_signing::verify_delivered(env, from, original_to, &sig, keys, now_ms)
}

/// A DELIVER, decoded.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The DELIVER's envelope id (what an ACK names).
    pub id: String,
    pub from: String,
    pub to: Option<String>,
    pub topic: Option<String>,
    /// Epoch milliseconds.
    pub ts: u64,
    pub payload: SendPayload,
    pub meta: Option<SendMeta>,
    pub delivery: Option<DeliveryInfo>,
    /// The sender's signature (`_sig`), untouched.
    pub sig: Option<SignatureJson>,
    /// The payload exactly as it arrived, kept for signed messages: what
    /// [`Client::verify`](crate::Client::verify) checks the signature against.
    pub raw_payload: Option<Box<RawValue>>,
}

impl Delivered {
    /// Decodes a DELIVER envelope.
    pub fn from_envelope(env: Envelope) -> Result<Delivered, serde_json::Error> {
        let payload: SendPayload = env.payload_as()?;
        let raw_payload = env.sig.is_some().then_some(env.payload);
        Ok(Delivered {
            id: env.id,
            from: env.from.unwrap_or_default(),
            to: env.to,
            topic: env.topic,
            ts: env.ts,
            payload,
            meta: env.payload_meta,
            delivery: env.delivery,
            sig: env.sig,
            raw_payload,
        })
    }

    /// Whether the message carries a signature (`_sig`).
    pub fn is_signed(&self) -> bool {
        self.sig.is_some()
    }

    /// [`Client::verify`](crate::Client::verify) at time `now_ms`.
    pub(crate) fn verify_at(&self, keys: &dyn KeyLookup, now_ms: u64) -> Result<(), VerifyError> {
        let payload = match &self.raw_payload {
            Some(raw) => raw.clone(),
            None => relay_protocol::to_raw(&self.payload),
        };
        let mut env = Envelope::with_raw_payload(MessageType::Deliver, payload);
        env.id = self.id.clone();
        env.ts = self.ts;
        env.from = Some(self.from.clone());
        env.to = self.to.clone();
        env.topic = self.topic.clone();
        env.payload_meta = self.meta.clone();
        env.delivery = self.delivery.clone();
        verify_forwarded("message", &env, &self.from, self.sig.as_ref(), keys, now_ms)
    }

    /// The delivery sequence number (0 when the daemon sent none).
    pub fn seq(&self) -> u64 {
        self.delivery.as_ref().map(|d| d.seq).unwrap_or(0)
    }

    /// The correlation id of a request/response exchange: `data._correlationId`, else
    /// `payload_meta.replyTo`.
    pub fn correlation_id(&self) -> Option<&str> {
        self.data_str("_correlationId")
            .or_else(|| self.meta.as_ref().and_then(|m| m.reply_to.as_deref()))
    }

    /// Whether this message answers a [`Client::request`](crate::Client::request)
    /// (`data._isResponse: true`).
    pub fn is_response(&self) -> bool {
        self.payload
            .data
            .as_ref()
            .and_then(|d| d.get("_isResponse"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The sync correlation id when the sender waits for an answer
    /// (answer with [`Client::reply_sync`](crate::Client::reply_sync)).
    pub fn sync_correlation_id(&self) -> Option<&str> {
        self.meta
            .as_ref()
            .and_then(|m| m.sync.as_ref())
            .map(|s| s.correlation_id.as_str())
    }

    fn data_str(&self, key: &str) -> Option<&str> {
        self.payload.data.as_ref()?.get(key)?.as_str()
    }
}
