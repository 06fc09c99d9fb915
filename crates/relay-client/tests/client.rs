//! The client against a scripted fake daemon speaking real frames on a temporary socket.

mod common;

use std::time::Duration;

use common::{deliver, next_event, welcome, FakeServer, WithDelivery};
use relay_client::{Client, ClientError, Event, EventStream, SendOptions};
use relay_protocol::{
    AckPayload, Envelope, ErrorCode, ErrorPayload, HelloPayload, MessageType, NackCode,
    NackPayload, SendMeta, SendPayload, StatusResponsePayload, SyncMeta,
};
use serde_json::{json, Value};

async fn connected(srv: &FakeServer, token: Option<&str>) -> (Client, EventStream, common::Conn) {
    let connecting = tokio::spawn(Client::connect(srv.config("Alice")));
    let mut conn = srv.accept().await;
    conn.handshake("s1", token).await;
    let (client, mut events) = connecting.await.expect("join").expect("connect");
    match next_event(&mut events).await {
        Event::Connected {
            session_id,
            resumed,
        } => {
            assert_eq!(session_id, "s1");
            assert!(!resumed);
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    (client, events, conn)
}

#[tokio::test]
async fn handshake_sends_hello_with_capabilities() {
    let srv = FakeServer::start();
    let mut config = srv.config("Alice");
    config.cli = Some("claude".into());
    let connecting = tokio::spawn(Client::connect(config));
    let mut conn = srv.accept().await;
    let hello = conn.handshake("s1", Some("tok1")).await;
    let p: HelloPayload = hello.payload_as().expect("HELLO payload");
    assert_eq!(p.agent, "Alice");
    assert_eq!(p.cli.as_deref(), Some("claude"));
    assert!(p.capabilities.ack && p.capabilities.resume && p.capabilities.supports_topics);
    assert_eq!(p.capabilities.max_inflight, 256);
    assert!(p.session.is_none(), "no resume token on the first connect");
    let (client, mut events) = connecting.await.expect("join").expect("connect");
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    assert_eq!(client.session_id().as_deref(), Some("s1"));
}

#[tokio::test]
async fn deliveries_are_acked_and_duplicates_dropped() {
    let srv = FakeServer::start();
    let (_client, mut events, mut conn) = connected(&srv, None).await;
    conn.send(&deliver("d1", "Bob", "one", 1)).await;
    conn.send(&deliver("d1", "Bob", "one", 1)).await;
    conn.send(&deliver("d2", "Bob", "two", 2)).await;
    for (id, seq) in [("d1", 1), ("d1", 1), ("d2", 2)] {
        let ack: AckPayload = conn
            .recv_type(MessageType::Ack)
            .await
            .payload_as()
            .expect("ACK");
        assert_eq!((ack.ack_id.as_str(), ack.seq), (id, seq));
    }
    match next_event(&mut events).await {
        Event::Message(m) => {
            assert_eq!((m.id.as_str(), m.from.as_str()), ("d1", "Bob"));
            assert_eq!(m.payload.body, "one");
        }
        other => panic!("expected d1, got {other:?}"),
    }
    match next_event(&mut events).await {
        Event::Message(m) => assert_eq!(m.id, "d2", "the duplicate d1 was dropped"),
        other => panic!("expected d2, got {other:?}"),
    }
}

#[tokio::test]
async fn ping_is_answered_with_the_same_payload() {
    let srv = FakeServer::start();
    let (_client, _events, mut conn) = connected(&srv, None).await;
    conn.send(&Envelope::new(
        MessageType::Ping,
        &json!({"nonce": "n1", "extra": 5}),
    ))
    .await;
    let pong = conn.recv_type(MessageType::Pong).await;
    let payload: Value = pong.payload_as().expect("PONG payload");
    assert_eq!(payload, json!({"nonce": "n1", "extra": 5}));
}

#[tokio::test]
async fn send_and_wait_resolves_on_the_forwarded_ack() {
    let srv = FakeServer::start();
    let (client, mut events, mut conn) = connected(&srv, None).await;
    let c = client.clone();
    let waiting = tokio::spawn(async move {
        c.send_and_wait(SendOptions::new("Bob", "ready?"), Duration::from_secs(5))
            .await
    });
    let send = conn.recv_type(MessageType::Send).await;
    assert_eq!(send.to.as_deref(), Some("Bob"));
    let sync = send
        .payload_meta
        .as_ref()
        .and_then(|m| m.sync.clone())
        .expect("payload_meta.sync");
    assert!(sync.blocking);
    assert_eq!(sync.timeout_ms, Some(5000));

    // An ACK for someone else's correlation id is reported, not consumed.
    let other = AckPayload {
        ack_id: "x".into(),
        correlation_id: Some("other".into()),
        ..AckPayload::default()
    };
    conn.send(&Envelope::new(MessageType::Ack, &other).from("Carol"))
        .await;
    let answer = AckPayload {
        ack_id: "d9".into(),
        correlation_id: Some(sync.correlation_id.clone()),
        response: Some(Value::Bool(true)),
        response_data: Some(json!({"answer": 42})),
        ..AckPayload::default()
    };
    conn.send(&Envelope::new(MessageType::Ack, &answer).from("Bob"))
        .await;
    let ack = waiting.await.expect("join").expect("answered");
    assert_eq!(ack.response_data, Some(json!({"answer": 42})));
    match next_event(&mut events).await {
        Event::SyncAck { from, payload, .. } => {
            assert_eq!(from, "Carol");
            assert_eq!(payload.correlation_id.as_deref(), Some("other"));
        }
        other => panic!("expected the unclaimed ACK, got {other:?}"),
    }
}

#[tokio::test]
async fn send_and_wait_fails_fast_on_nack_and_daemon_timeout() {
    let srv = FakeServer::start();
    let (client, _events, mut conn) = connected(&srv, None).await;

    let c = client.clone();
    let waiting = tokio::spawn(async move {
        c.send_and_wait(SendOptions::new("Nobody", "hi"), Duration::from_secs(30))
            .await
    });
    let send = conn.recv_type(MessageType::Send).await;
    let nack = NackPayload::new(send.id.clone(), NackCode::Invalid, "unknown recipient");
    conn.send(&Envelope::new(MessageType::Nack, &nack)).await;
    let started = std::time::Instant::now();
    match waiting.await.expect("join") {
        Err(ClientError::Nack(n)) => assert_eq!(n.ack_id, send.id),
        other => panic!("expected a NACK error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast");

    let c = client.clone();
    let waiting = tokio::spawn(async move {
        c.send_and_wait(SendOptions::new("Bob", "hi"), Duration::from_secs(30))
            .await
    });
    let send = conn.recv_type(MessageType::Send).await;
    let err =
        ErrorPayload::new(ErrorCode::Timeout, "no answer from Bob", false).replying_to(&send.id);
    conn.send(&Envelope::new(MessageType::Error, &err)).await;
    match waiting.await.expect("join") {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Timeout),
        other => panic!("expected the daemon's TIMEOUT, got {other:?}"),
    }
}

#[tokio::test]
async fn queries_are_matched_by_id_and_time_out_locally() {
    let srv = FakeServer::start();
    let mut config = srv.config("Alice");
    config.request_timeout = Duration::from_millis(300);
    let connecting = tokio::spawn(Client::connect(config));
    let mut conn = srv.accept().await;
    conn.handshake("s1", None).await;
    let (client, _events) = connecting.await.expect("join").expect("connect");

    let c = client.clone();
    let status = tokio::spawn(async move { c.status().await });
    let req = conn.recv_type(MessageType::Status).await;
    let wrong = StatusResponsePayload {
        version: Some("wrong".into()),
        ..Default::default()
    };
    conn.send(&Envelope::new(MessageType::StatusResponse, &wrong).id("someone-else"))
        .await;
    let right = StatusResponsePayload {
        version: Some("9.9.9".into()),
        ..Default::default()
    };
    conn.send(&Envelope::new(MessageType::StatusResponse, &right).id(req.id.clone()))
        .await;
    let got = status.await.expect("join").expect("status");
    assert_eq!(got.version.as_deref(), Some("9.9.9"));

    let c = client.clone();
    let lookup = tokio::spawn(async move { c.message_get("abc").await });
    let req = conn.recv_type(MessageType::MessageGet).await;
    let err = ErrorPayload::new(ErrorCode::NotFound, "no message abc", false).replying_to(&req.id);
    conn.send(&Envelope::new(MessageType::Error, &err)).await;
    assert!(matches!(
        lookup.await.expect("join"),
        Err(ClientError::Server(ErrorPayload {
            code: ErrorCode::NotFound,
            ..
        }))
    ));

    match client.health().await {
        Err(ClientError::Timeout { what, .. }) => assert_eq!(what, "HEALTH"),
        other => panic!("expected a local timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn reconnects_with_the_resume_token_and_resubscribes() {
    let srv = FakeServer::start();
    let (client, mut events, mut conn) = connected(&srv, Some("tok1")).await;
    client.subscribe("builds").await.expect("subscribe");
    let sub = conn.recv_type(MessageType::Subscribe).await;
    assert_eq!(sub.topic.as_deref(), Some("builds"));
    drop(conn);

    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    let mut conn = srv.accept().await;
    let hello = conn.recv_type(MessageType::Hello).await;
    let p: HelloPayload = hello.payload_as().expect("HELLO");
    assert_eq!(
        p.session.and_then(|s| s.resume_token).as_deref(),
        Some("tok1")
    );
    conn.send(&welcome("s1", Some("tok2"))).await;
    let sub = conn.recv_type(MessageType::Subscribe).await;
    assert_eq!(sub.topic.as_deref(), Some("builds"));
    match next_event(&mut events).await {
        Event::Connected {
            session_id,
            resumed,
        } => {
            assert_eq!(session_id, "s1");
            assert!(resumed);
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    client
        .send(SendOptions::new("Bob", "after reconnect"))
        .await
        .expect("send");
    let send = conn.recv_type(MessageType::Send).await;
    let p: SendPayload = send.payload_as().expect("SEND");
    assert_eq!(p.body, "after reconnect");
}

#[tokio::test]
async fn resume_too_old_starts_a_fresh_session() {
    let srv = FakeServer::start();
    let connecting = tokio::spawn(Client::connect(srv.config("Alice")));
    let mut conn = srv.accept().await;
    conn.recv_type(MessageType::Hello).await;
    let err = ErrorPayload::new(ErrorCode::ResumeTooOld, "unknown session", false);
    conn.send(&Envelope::new(MessageType::Error, &err)).await;
    conn.send(&welcome("s2", None)).await;
    let (client, _events) = connecting.await.expect("join").expect("connect");
    assert_eq!(client.session_id().as_deref(), Some("s2"));
}

#[tokio::test]
async fn nothing_listening_is_not_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("relay.sock");
    let err = Client::connect(relay_client::ClientConfig::new(&missing, "Alice"))
        .await
        .expect_err("no daemon");
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
    assert!(err.to_string().contains("agent-relay up"), "{err}");

    // A stale socket file: the file exists but nobody accepts.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let err = Client::connect(relay_client::ClientConfig::new(&stale, "Alice"))
        .await
        .expect_err("no daemon");
    assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
}

#[tokio::test]
async fn a_fatal_error_stops_reconnecting() {
    let srv = FakeServer::start();
    let (client, mut events, mut conn) = connected(&srv, None).await;
    let err = ErrorPayload::new(
        ErrorCode::DuplicateConnection,
        "replaced by a newer connection",
        true,
    );
    conn.send(&Envelope::new(MessageType::Error, &err)).await;
    drop(conn);
    assert!(matches!(
        next_event(&mut events).await,
        Event::ServerError(ErrorPayload {
            code: ErrorCode::DuplicateConnection,
            ..
        })
    ));
    match next_event(&mut events).await {
        Event::Closed { reason } => assert!(reason.contains("DUPLICATE_CONNECTION"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(
        srv.quiet_for(Duration::from_millis(300)).await,
        "no reconnect"
    );
    assert!(matches!(
        client.send(SendOptions::new("Bob", "x")).await,
        Err(ClientError::Closed { .. })
    ));
}

#[tokio::test]
async fn a_refused_handshake_is_an_error() {
    let srv = FakeServer::start();
    let connecting = tokio::spawn(Client::connect(srv.config("Alice")));
    let mut conn = srv.accept().await;
    conn.recv_type(MessageType::Hello).await;
    let err = ErrorPayload::new(ErrorCode::Unauthorized, "uid 1001 is not allowed", true);
    conn.send(&Envelope::new(MessageType::Error, &err)).await;
    match connecting.await.expect("join") {
        Err(e @ ClientError::Rejected { .. }) => {
            assert!(e.to_string().contains("UNAUTHORIZED"), "{e}");
            assert!(e.is_fatal());
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn request_is_resolved_by_the_correlated_response() {
    let srv = FakeServer::start();
    let (client, _events, mut conn) = connected(&srv, None).await;
    let c = client.clone();
    let asking =
        tokio::spawn(async move { c.request("Bob", "2+2?", Duration::from_secs(5)).await });
    let send = conn.recv_type(MessageType::Send).await;
    let p: SendPayload = send.payload_as().expect("SEND");
    let cid = p
        .data
        .as_ref()
        .and_then(|d| d.get("_correlationId"))
        .and_then(Value::as_str)
        .expect("data._correlationId")
        .to_string();
    assert_eq!(
        send.payload_meta
            .as_ref()
            .and_then(|m| m.reply_to.as_deref()),
        Some(cid.as_str())
    );
    let mut answer = deliver("r1", "Bob", "4", 1);
    let payload = SendPayload {
        data: json!({"_correlationId": cid, "_isResponse": true})
            .as_object()
            .cloned(),
        ..p
    };
    answer.payload = relay_protocol::to_raw(&SendPayload {
        body: "4".into(),
        ..payload
    });
    conn.send(&answer.with_meta(SendMeta {
        reply_to: Some(cid.clone()),
        ..SendMeta::default()
    }))
    .await;
    let got = asking.await.expect("join").expect("response");
    assert_eq!(got.payload.body, "4");
    assert!(got.is_response());
    conn.recv_type(MessageType::Ack).await;
}

#[tokio::test]
async fn reply_sync_and_respond_use_the_sdk_fields() {
    let srv = FakeServer::start();
    let (client, mut events, mut conn) = connected(&srv, None).await;
    let sync = SendMeta {
        sync: Some(SyncMeta {
            correlation_id: "c7".into(),
            timeout_ms: Some(1000),
            blocking: true,
        }),
        ..SendMeta::default()
    };
    conn.send(&deliver("d7", "Bob", "approve?", 3).with_meta(sync))
        .await;
    conn.recv_type(MessageType::Ack).await;
    let Event::Message(m) = next_event(&mut events).await else {
        panic!("expected the message");
    };
    client
        .reply_sync(&m, Some(json!({"approved": true})))
        .await
        .expect("reply");
    let ack: AckPayload = conn
        .recv_type(MessageType::Ack)
        .await
        .payload_as()
        .expect("ACK");
    assert_eq!(ack.ack_id, "d7");
    assert_eq!(ack.correlation_id.as_deref(), Some("c7"));
    assert_eq!(ack.response, Some(Value::Bool(true)));
    assert_eq!(ack.response_data, Some(json!({"approved": true})));

    let plain = deliver("d8", "Bob", "hi", 4);
    conn.send(&plain).await;
    conn.recv_type(MessageType::Ack).await;
    let Event::Message(m) = next_event(&mut events).await else {
        panic!("expected the message");
    };
    assert!(matches!(
        client.reply_sync(&m, None).await,
        Err(ClientError::NotSync { .. })
    ));

    client
        .respond("c9", "Bob", "done", None)
        .await
        .expect("respond");
    let send = conn.recv_type(MessageType::Send).await;
    let p: SendPayload = send.payload_as().expect("SEND");
    let data = p.data.expect("data");
    assert_eq!(data["_correlationId"], "c9");
    assert_eq!(data["_isResponse"], true);
    assert_eq!(
        send.payload_meta.and_then(|m| m.reply_to).as_deref(),
        Some("c9")
    );
}

#[tokio::test]
async fn close_says_bye_after_queued_frames() {
    let srv = FakeServer::start();
    let (client, mut events, mut conn) = connected(&srv, None).await;
    client
        .send(SendOptions::new("Bob", "last words"))
        .await
        .expect("send");
    let closing = {
        let c = client.clone();
        tokio::spawn(async move { c.close().await })
    };
    conn.recv_type(MessageType::Send).await;
    conn.recv_type(MessageType::Bye).await;
    conn.send(&Envelope::new(MessageType::Bye, &json!({})))
        .await;
    closing.await.expect("join");
    match next_event(&mut events).await {
        Event::Closed { reason } => {
            assert!(reason.contains("closed by the application"), "{reason}")
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(client.is_closed());
    assert!(
        srv.quiet_for(Duration::from_millis(200)).await,
        "no reconnect after close"
    );
}

#[tokio::test]
async fn oversized_sends_are_refused_locally() {
    let srv = FakeServer::start();
    let (client, _events, _conn) = connected(&srv, None).await;
    let body = "x".repeat(1024 * 1024 + 1);
    assert!(matches!(
        client.send(SendOptions::new("Bob", body)).await,
        Err(ClientError::FrameTooLarge { .. })
    ));
}

#[tokio::test]
async fn a_lost_connection_fails_pending_waits_and_keeps_queued_sends() {
    let srv = FakeServer::start();
    let (client, mut events, mut conn) = connected(&srv, Some("tok1")).await;
    let c = client.clone();
    let status = tokio::spawn(async move { c.status().await });
    conn.recv_type(MessageType::Status).await;
    drop(conn);
    assert!(matches!(
        status.await.expect("join"),
        Err(ClientError::Disconnected)
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    // Sent while disconnected: delivered once the connection is back.
    client
        .send(SendOptions::new("Bob", "queued"))
        .await
        .expect("queued");
    let mut conn = srv.accept().await;
    conn.handshake("s1", Some("tok2")).await;
    let send = conn.recv_type(MessageType::Send).await;
    let p: SendPayload = send.payload_as().expect("SEND");
    assert_eq!(p.body, "queued");
}
