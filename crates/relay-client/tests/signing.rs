//! Signing what the client sends and verifying what it receives, against the scripted fake
//! daemon.

mod common;

use common::{next_event, FakeServer, WithDelivery};
use relay_client::{Client, ClientConfig, ClientError, ClientSigning, Event, SendOptions};
use relay_protocol::{now_ms, Envelope, MessageType, PayloadKind, SendPayload};
use relay_signing::{
    sign, verify, Algorithm, Keystore, SharedSecret, Signature, VerifyError, DEFAULT_WINDOW_MS,
};
use serde_json::json;

/// Connects `config` to the fake server; returns the client, its events and the server side.
async fn connect(
    srv: &FakeServer,
    config: ClientConfig,
) -> (Client, relay_client::EventStream, common::Conn) {
    let connecting = tokio::spawn(Client::connect(config));
    let mut conn = srv.accept().await;
    conn.handshake("s1", None).await;
    let (client, mut events) = connecting.await.expect("join").expect("connect");
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    (client, events, conn)
}

fn signature(env: &Envelope) -> Signature {
    Signature::from_envelope(env)
        .expect("a well-formed _sig")
        .expect("the frame is signed")
}

#[tokio::test]
async fn key_file_clients_sign_sends_channel_posts_and_consensus_commands() {
    let keys = tempfile::tempdir().expect("temp dir");
    let store = Keystore::new(keys.path());
    let file = store
        .create("Alice", Algorithm::Ed25519, now_ms())
        .expect("create Alice's key");
    let srv = FakeServer::start();
    let mut config = srv.config("Alice");
    config.signing = Some(ClientSigning::KeyFile {
        keys_dir: keys.path().to_path_buf(),
    });
    let (client, _events, mut conn) = connect(&srv, config).await;

    let opts = SendOptions::new("Bob", "tests pass").data(
        json!({"pr": 12, "nested": {"b": 1, "a": [1.5, "x"]}})
            .as_object()
            .cloned()
            .expect("an object"),
    );
    let id = client.send(opts).await.expect("send");
    let send = conn.recv_type(MessageType::Send).await;
    assert_eq!(send.id, id);
    let sig = signature(&send);
    assert_eq!(sig.a, Algorithm::Ed25519);
    assert_eq!(sig.k, file.key_id);
    assert_eq!(sig.m, id);
    let now = now_ms();
    verify(
        &send,
        "Alice",
        send.to.as_deref(),
        &sig,
        &store,
        now,
        DEFAULT_WINDOW_MS,
    )
    .expect("the signature verifies with Alice's key");
    // Bound to the sender: the same frame is not Mallory's.
    assert_eq!(
        verify(
            &send,
            "Mallory",
            send.to.as_deref(),
            &sig,
            &store,
            now,
            DEFAULT_WINDOW_MS
        ),
        Err(VerifyError::UnknownKey {
            signer: "Mallory".into(),
            k: file.key_id.clone()
        })
    );

    // Channel posts are signed, so every member can check them.
    let post_id = client
        .channel_message("#eng", "merged", Some("t1"))
        .await
        .expect("post");
    let post = conn.recv_type(MessageType::ChannelMessage).await;
    assert_eq!(post.id, post_id);
    verify(
        &post,
        "Alice",
        None,
        &signature(&post),
        &store,
        now_ms(),
        DEFAULT_WINDOW_MS,
    )
    .expect("the channel post verifies");

    // Consensus commands are signed; queries are not.
    let c = client.clone();
    let voting = tokio::spawn(async move { c.consensus_vote("prop_1", "approve", None).await });
    let vote = conn.recv_type(MessageType::Vote).await;
    verify(
        &vote,
        "Alice",
        None,
        &signature(&vote),
        &store,
        now_ms(),
        DEFAULT_WINDOW_MS,
    )
    .expect("the vote verifies");
    voting.abort();
    let c = client.clone();
    let status = tokio::spawn(async move { c.status().await });
    let query = conn.recv_type(MessageType::Status).await;
    assert!(query.sig.is_none(), "queries are not signed: {query:?}");
    status.abort();
}

#[tokio::test]
async fn shared_secret_clients_sign_with_the_team_secret() {
    let srv = FakeServer::start();
    let mut config = srv.config("Alice");
    config.signing = Some(ClientSigning::SharedSecret("team secret".into()));
    let (client, _events, mut conn) = connect(&srv, config).await;
    client
        .send(SendOptions::new("*", "deploying").thread("deploy"))
        .await
        .expect("send");
    let send = conn.recv_type(MessageType::Send).await;
    let sig = signature(&send);
    assert_eq!(sig.a, Algorithm::HmacSha256);
    let team = SharedSecret::new("team secret");
    verify(
        &send,
        "Alice",
        Some("*"),
        &sig,
        &team,
        now_ms(),
        DEFAULT_WINDOW_MS,
    )
    .expect("verifies with the shared secret");
    assert!(verify(
        &send,
        "Alice",
        Some("*"),
        &sig,
        &SharedSecret::new("another secret"),
        now_ms(),
        DEFAULT_WINDOW_MS
    )
    .is_err());
}

#[tokio::test]
async fn a_missing_key_file_fails_the_connect_with_the_remedy() {
    let keys = tempfile::tempdir().expect("temp dir");
    let srv = FakeServer::start();
    let mut config = srv.config("Alice");
    config.signing = Some(ClientSigning::KeyFile {
        keys_dir: keys.path().to_path_buf(),
    });
    let err = Client::connect(config).await.expect_err("no key for Alice");
    assert!(matches!(err, ClientError::Signing(_)), "{err:?}");
    assert!(err.to_string().contains("create one first"), "{err}");
    assert!(
        srv.quiet_for(std::time::Duration::from_millis(100)).await,
        "nothing is sent without a key"
    );
}

/// Alice connected to the fake daemon, about to receive what Bob signed with a key of `alg`.
struct Receiving {
    _keys: tempfile::TempDir,
    store: Keystore,
    bob: relay_signing::KeyFile,
    key: relay_signing::SigningKey,
    _srv: FakeServer,
    _client: Client,
    events: relay_client::EventStream,
    conn: common::Conn,
}

async fn alice_receiving_from_bob(alg: Algorithm) -> Receiving {
    let keys = tempfile::tempdir().expect("temp dir");
    let store = Keystore::new(keys.path());
    let bob = store
        .create("Bob", alg, now_ms())
        .expect("create Bob's key");
    let key = bob.signing_key(now_ms()).expect("Bob can sign");
    let srv = FakeServer::start();
    let (client, events, conn) = connect(&srv, srv.config("Alice")).await;
    Receiving {
        _keys: keys,
        store,
        bob,
        key,
        _srv: srv,
        _client: client,
        events,
        conn,
    }
}

/// A DELIVER of a SEND from `from` signed with `key`, as the daemon forwards it.
fn signed_deliver(from: &str, key: &relay_signing::SigningKey, body: &str) -> Envelope {
    let payload = SendPayload {
        kind: PayloadKind::Message,
        body: body.into(),
        data: None,
        thread: Some("t1".into()),
    };
    let mut env = Envelope::new(MessageType::Send, &payload).to("*");
    sign(&env, from, key, now_ms())
        .expect("sign")
        .attach_to(&mut env);
    // The daemon's copy: a new id and type, the sender, the recipient and delivery info.
    env.msg_type = MessageType::Deliver;
    env.id = format!("d-{}", env.id);
    env.from = Some(from.into());
    env.to = Some("Alice".into());
    let mut env = env.with_delivery(1);
    if let Some(d) = env.delivery.as_mut() {
        d.original_to = Some("*".into());
    }
    env
}

#[tokio::test]
async fn verify_accepts_signed_deliveries_and_rejects_tampered_ones() {
    let Receiving {
        _keys,
        store,
        bob,
        key,
        _srv,
        _client,
        mut events,
        mut conn,
    } = alice_receiving_from_bob(Algorithm::HmacSha256).await;

    let good = signed_deliver("Bob", &key, "ship it");
    // Altered after signing: the body, or the sender the daemon reports.
    let mut tampered = signed_deliver("Bob", &key, "ship it");
    tampered.payload =
        relay_protocol::to_raw(&json!({"kind": "message", "body": "delete it", "thread": "t1"}));
    let mut forged = signed_deliver("Bob", &key, "ship it");
    forged.from = Some("Carol".into());
    let unsigned = common::deliver("d-plain", "Bob", "hi", 4);
    for env in [&good, &tampered, &forged, &unsigned] {
        conn.send(env).await;
    }
    let mut received = Vec::new();
    while received.len() < 4 {
        if let Event::Message(m) = next_event(&mut events).await {
            received.push(m);
        }
    }
    assert!(received[0].is_signed());
    assert_eq!(Client::verify(&received[0], &store), Ok(()));
    assert_eq!(
        Client::verify(&received[1], &store),
        Err(VerifyError::BadSignature)
    );
    assert!(matches!(
        Client::verify(&received[2], &store),
        Err(VerifyError::UnknownKey { .. })
    ));
    assert!(!received[3].is_signed());
    assert!(matches!(
        Client::verify(&received[3], &store),
        Err(VerifyError::Malformed(m)) if m.contains("not signed")
    ));

    // A revoked key no longer verifies what it signed.
    store.revoke("Bob", &bob.key_id).expect("revoke");
    assert!(matches!(
        Client::verify(&received[0], &store),
        Err(VerifyError::KeyRevoked { .. })
    ));
}

/// A post to #eng by `from`, signed with `key`, as the daemon hands it to the other members:
/// the payload verbatim, the stored row's id.
fn signed_post(from: &str, key: &relay_signing::SigningKey, body: &str) -> Envelope {
    let payload = relay_protocol::ChannelMessagePayload {
        channel: "#eng".into(),
        body: body.into(),
        thread: None,
        mentions: Some(vec!["Alice".into()]),
        attachments: None,
        data: None,
    };
    let mut env = Envelope::new(MessageType::ChannelMessage, &payload);
    sign(&env, from, key, now_ms())
        .expect("sign")
        .attach_to(&mut env);
    env.id = format!("row-{}", env.id);
    env.from = Some(from.into());
    env
}

#[tokio::test]
async fn verify_signed_accepts_signed_channel_posts_and_rejects_tampered_ones() {
    let Receiving {
        _keys,
        store,
        key,
        _srv,
        _client,
        mut events,
        mut conn,
        ..
    } = alice_receiving_from_bob(Algorithm::Ed25519).await;

    let good = signed_post("Bob", &key, "standup in 5");
    let mut tampered = signed_post("Bob", &key, "standup in 5");
    tampered.payload = relay_protocol::to_raw(
        &json!({"channel": "#eng", "body": "standup cancelled", "mentions": ["Alice"]}),
    );
    let mut forged = signed_post("Bob", &key, "standup in 5");
    forged.from = Some("Carol".into());
    let mut unsigned = signed_post("Bob", &key, "no signature");
    unsigned.sig = None;
    for env in [&good, &tampered, &forged, &unsigned] {
        conn.send(env).await;
    }
    let mut received = Vec::new();
    while received.len() < 4 {
        if let Event::ChannelMessage {
            from,
            payload,
            signed,
            ..
        } = next_event(&mut events).await
        {
            received.push((from, payload, signed));
        }
    }
    let (from, payload, signed) = &received[0];
    assert_eq!(
        (from.as_str(), payload.body.as_str()),
        ("Bob", "standup in 5")
    );
    let signed = signed
        .as_deref()
        .expect("a signed post keeps its signature");
    assert!(signed.sig().is_some());
    assert_eq!(Client::verify_signed(signed, &store), Ok(()));
    let tampered = received[1].2.as_deref().expect("signed");
    assert_eq!(
        Client::verify_signed(tampered, &store),
        Err(VerifyError::BadSignature)
    );
    let forged = received[2].2.as_deref().expect("signed");
    assert!(matches!(
        Client::verify_signed(forged, &store),
        Err(VerifyError::UnknownKey { .. })
    ));
    assert!(
        received[3].2.is_none(),
        "an unsigned post has nothing to check"
    );
}
