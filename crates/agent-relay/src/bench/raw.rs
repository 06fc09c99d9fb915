//! Raw protocol connections for the benchmarks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use relay_protocol::{
    encode_frame, AckPayload, BusyPayload, Capabilities, Envelope, ErrorPayload, FrameCodec,
    HelloPayload, MessageType, NackPayload, PayloadKind, SendPayload,
};
use relay_signing::SigningKey;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::context::Ctx;

pub type Reader = FramedRead<OwnedReadHalf, FrameCodec>;
pub type Writer = FramedWrite<OwnedWriteHalf, FrameCodec>;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// One registered agent connection.
pub struct RawConn {
    pub reader: Reader,
    pub writer: Writer,
}

/// Connects and registers `name`.
pub async fn connect(ctx: &Ctx, name: &str) -> anyhow::Result<RawConn> {
    let max = ctx.config.daemon.max_frame_bytes;
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, UnixStream::connect(&ctx.socket))
        .await
    {
        Err(_) => anyhow::bail!("connecting to {} timed out", ctx.socket.display()),
        Ok(Err(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ctx.not_running().into())
        }
        Ok(Err(e)) => {
            return Err(e).with_context(|| format!("cannot connect to {}", ctx.socket.display()))
        }
        Ok(Ok(s)) => s,
    };
    let (r, w) = stream.into_split();
    let mut conn = RawConn {
        reader: FramedRead::new(r, FrameCodec::new(max)),
        writer: FramedWrite::new(w, FrameCodec::new(max)),
    };
    let hello = HelloPayload {
        agent: name.to_string(),
        capabilities: Capabilities {
            ack: true,
            resume: true,
            max_inflight: 256,
            supports_topics: true,
        },
        cli: Some("agent-relay-bench".into()),
        ..HelloPayload::default()
    };
    send_now(&mut conn.writer, &Envelope::new(MessageType::Hello, &hello)).await?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            match next(&mut conn.reader).await? {
                Incoming::Other(env) if env.msg_type == MessageType::Welcome => return Ok(()),
                Incoming::Ping(env) => send_now(&mut conn.writer, &pong(env)).await?,
                Incoming::Error(e) if e.fatal => {
                    anyhow::bail!("the daemon refused {name}: {}", e.message)
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| {
        anyhow::anyhow!("the daemon did not welcome {name} within {HANDSHAKE_TIMEOUT:?}")
    })??;
    Ok(conn)
}

/// What a benchmark cares about in a frame.
pub enum Incoming {
    Deliver { id: String, seq: u64, body: String },
    Ping(Envelope),
    Busy(BusyPayload),
    Nack(NackPayload),
    Error(ErrorPayload),
    Bye,
    Other(Envelope),
}

/// Reads the next frame; the connection ending is an error.
pub async fn next(reader: &mut Reader) -> anyhow::Result<Incoming> {
    match reader.next().await {
        None => anyhow::bail!("the daemon closed a benchmark connection"),
        Some(Err(e)) => Err(e).context("reading from the daemon"),
        Some(Ok(body)) => classify(&body),
    }
}

pub fn classify(body: &[u8]) -> anyhow::Result<Incoming> {
    let env = Envelope::from_slice(body).context("the daemon sent an invalid frame")?;
    Ok(match env.msg_type {
        MessageType::Deliver => {
            let p: SendPayload = env.payload_as().context("invalid DELIVER payload")?;
            Incoming::Deliver {
                seq: env.delivery.as_ref().map(|d| d.seq).unwrap_or(0),
                id: env.id,
                body: p.body,
            }
        }
        MessageType::Ping => Incoming::Ping(env),
        MessageType::Busy => Incoming::Busy(env.payload_as().context("invalid BUSY payload")?),
        MessageType::Nack => Incoming::Nack(env.payload_as().context("invalid NACK payload")?),
        MessageType::Error => Incoming::Error(env.payload_as().context("invalid ERROR payload")?),
        MessageType::Bye => Incoming::Bye,
        _ => Incoming::Other(env),
    })
}

pub fn send_envelope(to: &str, body: &str, id: String) -> Envelope {
    let payload = SendPayload {
        kind: PayloadKind::Message,
        body: body.to_string(),
        data: None,
        thread: None,
    };
    Envelope::new(MessageType::Send, &payload).id(id).to(to)
}

/// Signs the SENDs of one agent (`bench --sign`).
#[derive(Clone)]
pub struct Signer {
    agent: String,
    key: Arc<SigningKey>,
}

impl Signer {
    pub fn new(agent: &str, key: SigningKey) -> Signer {
        Signer {
            agent: agent.to_string(),
            key: Arc::new(key),
        }
    }

    /// Signs `env` now as this agent and attaches `_sig`.
    pub fn sign(&self, env: &mut Envelope) -> anyhow::Result<()> {
        relay_signing::sign_into(env, &self.agent, &self.key, relay_protocol::now_ms())
            .context("cannot sign a benchmark message")
    }
}

/// [`send_envelope`], signed when there is a signer.
pub fn signed_send(
    signer: Option<&Signer>,
    to: &str,
    body: &str,
    id: String,
) -> anyhow::Result<Envelope> {
    let mut env = send_envelope(to, body, id);
    if let Some(signer) = signer {
        signer.sign(&mut env)?;
    }
    Ok(env)
}

pub fn ack(id: &str, seq: u64) -> Envelope {
    Envelope::new(
        MessageType::Ack,
        &AckPayload {
            ack_id: id.to_string(),
            seq,
            ..AckPayload::default()
        },
    )
}

pub fn pong(ping: Envelope) -> Envelope {
    Envelope::with_raw_payload(MessageType::Pong, ping.payload)
}

fn frame(env: &Envelope) -> anyhow::Result<Bytes> {
    encode_frame(env, usize::MAX).context("cannot encode a frame")
}

/// Buffers a frame (written at the next flush).
pub async fn feed(writer: &mut Writer, env: &Envelope) -> anyhow::Result<()> {
    writer
        .feed(frame(env)?)
        .await
        .context("writing to the daemon")
}

pub async fn flush(writer: &mut Writer) -> anyhow::Result<()> {
    SinkExt::<Bytes>::flush(writer)
        .await
        .context("writing to the daemon")
}

pub async fn send_now(writer: &mut Writer, env: &Envelope) -> anyhow::Result<()> {
    feed(writer, env).await?;
    flush(writer).await
}

/// A STATUS round trip: everything sent before it has been processed by the daemon.
pub async fn barrier(conn: &mut RawConn) -> anyhow::Result<()> {
    let status = Envelope::new(MessageType::Status, &serde_json::json!({}));
    let id = status.id.clone();
    send_now(&mut conn.writer, &status).await?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            match next(&mut conn.reader).await? {
                Incoming::Other(env) if env.id == id => return Ok(()),
                Incoming::Ping(env) => send_now(&mut conn.writer, &pong(env)).await?,
                Incoming::Deliver { id, seq, .. } => {
                    send_now(&mut conn.writer, &ack(&id, seq)).await?
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the daemon did not answer STATUS within {HANDSHAKE_TIMEOUT:?}"))?
}

/// Says goodbye (best effort; the socket is dropped right after).
pub async fn bye(writer: &mut Writer) {
    let _ = send_now(
        writer,
        &Envelope::new(MessageType::Bye, &serde_json::json!({})),
    )
    .await;
}
