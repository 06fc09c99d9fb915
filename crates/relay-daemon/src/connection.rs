//! One client connection: framing, handshake, heartbeat and the socket writer.
//!
//! The reader half runs in the connection task: it decodes frames, answers protocol errors
//! itself, and forwards valid envelopes to the router. The writer half is a separate task fed by
//! a bounded queue of pre-encoded frames, so the router never waits on a slow socket. Fatal
//! errors are queued, flushed, followed by BYE and only then is the socket closed, so the client
//! always learns why it was disconnected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use relay_protocol::ids::{validate_agent_name, MAX_ID_LEN};
use relay_protocol::{
    encode_frame, Envelope, ErrorCode, ErrorPayload, FrameCodec, FrameError, HelloPayload,
    MessageType, PingPayload,
};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedWriteHalf, UCred};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::router::{Registration, RouterMsg, SessionStart};
use crate::Shared;

/// What the router (or the connection itself) asks the writer to do.
#[derive(Debug)]
pub enum Outbound {
    Frame(Bytes),
    /// Flush everything queued so far, then close the socket.
    Close,
}

/// The router's handle on a connection's writer.
#[derive(Debug, Clone)]
pub struct Outlet {
    pub tx: mpsc::Sender<Outbound>,
    /// Set by the router when it had to hold frames back because the queue was full; the
    /// writer then reports when it has drained.
    pub congested: Arc<AtomicBool>,
}

/// Encodes a daemon-originated envelope; these are small and always fit a frame.
pub fn frame_of(env: &Envelope, max: usize) -> Bytes {
    encode_frame(env, max).unwrap_or_else(|_| {
        let err = Envelope::new(
            MessageType::Error,
            &ErrorPayload::new(ErrorCode::Internal, "response too large to send", false),
        );
        encode_frame(&err, usize::MAX).unwrap_or_default()
    })
}

pub fn error_frame(
    code: ErrorCode,
    message: impl Into<String>,
    fatal: bool,
    reply_to: Option<&str>,
) -> Bytes {
    let mut payload = ErrorPayload::new(code, message, fatal);
    payload.reply_to = reply_to.map(str::to_string);
    frame_of(&Envelope::new(MessageType::Error, &payload), usize::MAX)
}

pub fn bye_frame() -> Bytes {
    frame_of(
        &Envelope::new(MessageType::Bye, &serde_json::Map::new()),
        usize::MAX,
    )
}

/// Serves one accepted socket until it closes.
pub async fn serve_connection(
    shared: Arc<Shared>,
    stream: UnixStream,
    conn_id: u64,
    cred: Option<UCred>,
) {
    let (read_half, write_half) = stream.into_split();
    let cfg = &shared.config;
    let (tx, rx) = mpsc::channel::<Outbound>(cfg.limits.outbound_queue_frames);
    let congested = Arc::new(AtomicBool::new(false));
    let closed = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        write_half,
        rx,
        congested.clone(),
        closed.clone(),
        shared.router_tx.clone(),
        conn_id,
    ));
    let outlet = Outlet { tx, congested };
    let mut frames = FramedRead::new(read_half, FrameCodec::new(cfg.daemon.max_frame_bytes));

    let peer = match shared.auth.check_peer(cred) {
        Ok(peer) => peer,
        Err(msg) => {
            tracing::warn!(conn_id, "refused peer: {msg}");
            close_with(&outlet, ErrorCode::Unauthorized, msg, None).await;
            let _ = writer.await;
            return;
        }
    };

    let handshake_deadline =
        Instant::now() + Duration::from_millis(cfg.daemon.handshake_timeout_ms);
    let hello = loop {
        let next = tokio::time::timeout_at(handshake_deadline, frames.next()).await;
        let body = match next {
            Err(_) => {
                close_with(
                    &outlet,
                    ErrorCode::Timeout,
                    format!(
                        "no HELLO within {} ms; send HELLO as the first frame",
                        cfg.daemon.handshake_timeout_ms
                    ),
                    None,
                )
                .await;
                let _ = writer.await;
                return;
            }
            Ok(None) => {
                drop(outlet);
                let _ = writer.await;
                return;
            }
            Ok(Some(Err(e))) => {
                frame_failure(&outlet, e).await;
                let _ = writer.await;
                return;
            }
            Ok(Some(Ok(body))) => body,
        };
        match Envelope::from_slice(&body) {
            Err(e) if e.is_fatal() => {
                close_with(&outlet, ErrorCode::BadRequest, e.to_string(), None).await;
                let _ = writer.await;
                return;
            }
            Err(e) => {
                let _ = outlet
                    .tx
                    .send(Outbound::Frame(error_frame(
                        ErrorCode::BadRequest,
                        e.to_string(),
                        false,
                        None,
                    )))
                    .await;
            }
            Ok(env) if env.msg_type == MessageType::Hello => match env.payload_as::<HelloPayload>()
            {
                Ok(hello) => break (env, hello),
                Err(e) => {
                    close_with(
                        &outlet,
                        ErrorCode::BadRequest,
                        format!("invalid HELLO payload: {e}"),
                        Some(&env.id),
                    )
                    .await;
                    let _ = writer.await;
                    return;
                }
            },
            Ok(env) => {
                let _ = outlet
                    .tx
                    .send(Outbound::Frame(error_frame(
                        ErrorCode::BadRequest,
                        format!(
                            "{} before HELLO; the first frame must be HELLO",
                            env.msg_type
                        ),
                        false,
                        Some(&env.id),
                    )))
                    .await;
            }
        }
    };
    let (hello_env, hello) = hello;
    if let Err(e) = validate_agent_name(&hello.agent) {
        close_with(
            &outlet,
            ErrorCode::BadRequest,
            e.to_string(),
            Some(&hello_env.id),
        )
        .await;
        let _ = writer.await;
        return;
    }
    if let Err(msg) = shared.auth.check_name(&peer, &hello.agent) {
        close_with(&outlet, ErrorCode::Unauthorized, msg, Some(&hello_env.id)).await;
        let _ = writer.await;
        return;
    }

    // The name every signature on this connection must verify for (the router's, too).
    let agent = hello.agent.clone();
    let session = resolve_session(&shared, &hello, &outlet).await;
    let registration = Registration {
        conn_id,
        hello,
        outlet: outlet.clone(),
        session,
        pid: peer.pid,
        uid: peer.uid,
    };
    if shared
        .router_tx
        .send(RouterMsg::Register(Box::new(registration)))
        .await
        .is_err()
    {
        close_with(
            &outlet,
            ErrorCode::Internal,
            "daemon is shutting down",
            None,
        )
        .await;
        let _ = writer.await;
        return;
    }

    let heartbeat = Duration::from_millis(cfg.daemon.heartbeat_ms);
    let dead_after = heartbeat * cfg.daemon.heartbeat_timeout_multiplier;
    let mut last_inbound = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            _ = closed.cancelled() => break "closed by the daemon".to_string(),
            _ = ping.tick() => {
                if last_inbound.elapsed() > dead_after {
                    close_with(
                        &outlet,
                        ErrorCode::Timeout,
                        format!("no frame received for {} ms; connection considered dead", dead_after.as_millis()),
                        None,
                    ).await;
                    break "heartbeat timeout".to_string();
                }
                let ping = Envelope::new(MessageType::Ping, &PingPayload { nonce: relay_protocol::ids::new_id() });
                // A full queue means the client is far behind; skipping a PING is harmless.
                let _ = outlet.tx.try_send(Outbound::Frame(frame_of(&ping, usize::MAX)));
            }
            next = frames.next() => {
                last_inbound = Instant::now();
                match next {
                    None => break "peer closed the connection".to_string(),
                    Some(Err(e)) => {
                        let why = e.to_string();
                        frame_failure(&outlet, e).await;
                        break why;
                    }
                    Some(Ok(body)) => match Envelope::from_slice(&body) {
                        Err(e) if e.is_fatal() => {
                            let why = e.to_string();
                            close_with(&outlet, ErrorCode::BadRequest, why.clone(), None).await;
                            break why;
                        }
                        Err(e) => {
                            let _ = outlet.tx.send(Outbound::Frame(error_frame(ErrorCode::BadRequest, e.to_string(), false, None))).await;
                        }
                        Ok(env) => {
                            if let Some(err) = envelope_problem(&env) {
                                let _ = outlet.tx.send(Outbound::Frame(err)).await;
                                continue;
                            }
                            match env.msg_type {
                                MessageType::Pong => {}
                                MessageType::Bye => {
                                    let _ = outlet.tx.send(Outbound::Frame(bye_frame())).await;
                                    let _ = outlet.tx.send(Outbound::Close).await;
                                    break "client said BYE".to_string();
                                }
                                MessageType::Hello => {
                                    let _ = outlet.tx.send(Outbound::Frame(error_frame(
                                        ErrorCode::BadRequest, "Unexpected HELLO: this connection is already registered", false, Some(&env.id)))).await;
                                }
                                _ => {
                                    if matches!(env.msg_type, MessageType::Send | MessageType::ChannelMessage) {
                                        wait_for_storage(&shared).await;
                                    }
                                    let signature = match &shared.signing {
                                        Some(verifier) if crate::signing::checked_on_ingress(&env.msg_type) => verifier.precheck(&env, &agent),
                                        _ => None,
                                    };
                                    if shared.router_tx.send(RouterMsg::Frame { conn_id, env: Box::new(env), signature }).await.is_err() {
                                        break "daemon is shutting down".to_string();
                                    }
                                }
                            }
                        }
                    },
                }
            }
        }
    };
    tracing::debug!(conn_id, %reason, "connection closing");
    let _ = shared
        .router_tx
        .send(RouterMsg::Closed { conn_id, reason })
        .await;
    drop(outlet);
    let _ = writer.await;
}

/// Backpressure: while storage is more than three quarters behind, hold new messages at the
/// socket (the sender's writes block) instead of refusing them. Bounded: after 2 s the message
/// goes on and the router answers NACK BUSY if storage is still full.
async fn wait_for_storage(shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (depth, capacity) = shared.store.queue_fill();
        if depth * 4 < capacity * 3 || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Checks the envelope fields the decoder cannot: id length.
fn envelope_problem(env: &Envelope) -> Option<Bytes> {
    if env.id.is_empty() || env.id.len() > MAX_ID_LEN {
        return Some(error_frame(
            ErrorCode::BadRequest,
            format!(
                "envelope id must be 1-{MAX_ID_LEN} bytes, got {}",
                env.id.len()
            ),
            false,
            None,
        ));
    }
    None
}

/// Looks up the resume token (if any) before registration, so the router never waits on storage.
async fn resolve_session(shared: &Shared, hello: &HelloPayload, outlet: &Outlet) -> SessionStart {
    let fresh = SessionStart {
        session_id: relay_protocol::ids::new_id(),
        resume_token: relay_protocol::ids::new_id(),
        resumed: false,
        seeds: Vec::new(),
    };
    let Some(token) = hello.session.as_ref().and_then(|s| s.resume_token.clone()) else {
        return fresh;
    };
    let rejected = |why: &str| {
        Outbound::Frame(error_frame(
            ErrorCode::ResumeTooOld,
            why.to_string(),
            false,
            None,
        ))
    };
    match shared.store.session_by_resume_token(token.clone()).await {
        Ok(Some(s)) if s.agent_name == hello.agent => {
            let seeds = shared
                .store
                .max_seq_by_session(s.id.clone())
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(from, topic, max)| (from, topic, max.max(0) as u64))
                .collect();
            SessionStart {
                session_id: s.id,
                resume_token: token,
                resumed: true,
                seeds,
            }
        }
        Ok(_) => {
            let _ = outlet
                .tx
                .send(rejected("Resume token rejected; starting new session"))
                .await;
            fresh
        }
        Err(e) => {
            let _ = outlet
                .tx
                .send(rejected(&format!(
                    "Resume validation failed: {e}; starting new session"
                )))
                .await;
            fresh
        }
    }
}

async fn frame_failure(outlet: &Outlet, e: FrameError) {
    let msg = match &e {
        FrameError::TooLarge { .. } => {
            format!("Frame error: {e}; split the message or raise daemon.max_frame_bytes")
        }
        _ => format!("Frame error: {e}"),
    };
    close_with(outlet, ErrorCode::BadRequest, msg, None).await;
}

/// Queues a fatal ERROR, BYE and a close; the writer flushes them before closing the socket.
pub async fn close_with(
    outlet: &Outlet,
    code: ErrorCode,
    message: impl Into<String>,
    reply_to: Option<&str>,
) {
    let deadline = Duration::from_secs(2);
    for item in [
        Outbound::Frame(error_frame(code, message, true, reply_to)),
        Outbound::Frame(bye_frame()),
        Outbound::Close,
    ] {
        if tokio::time::timeout(deadline, outlet.tx.send(item))
            .await
            .is_err()
        {
            break;
        }
    }
}

async fn write_loop(
    half: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outbound>,
    congested: Arc<AtomicBool>,
    closed: CancellationToken,
    router: mpsc::Sender<RouterMsg>,
    conn_id: u64,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, half);
    let mut batch = Vec::with_capacity(64);
    'outer: while rx.recv_many(&mut batch, 256).await > 0 {
        for item in batch.drain(..) {
            match item {
                Outbound::Frame(frame) => {
                    if out.write_all(&frame).await.is_err() {
                        break 'outer;
                    }
                }
                Outbound::Close => {
                    let _ = out.flush().await;
                    break 'outer;
                }
            }
        }
        if out.flush().await.is_err() {
            break;
        }
        if congested.load(Ordering::Acquire) && rx.len() < rx.capacity() / 2 + 1 {
            congested.store(false, Ordering::Release);
            let _ = router.try_send(RouterMsg::Drained { conn_id });
        }
    }
    let _ = out.shutdown().await;
    closed.cancel();
}
