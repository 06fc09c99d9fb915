//! Message signing end to end, for both algorithms: signed messages are delivered with their
//! `_sig` and verify at the recipient; tampering, a wrong signer, replays, stale timestamps,
//! revoked keys and bad signatures are refused and dead-lettered; enforce/warn modes; rotation
//! overlap; a restart does not reopen the replay window. Channel posts likewise.

mod common;

use common::*;
use relay_protocol::Envelope;
use relay_signing::{Algorithm, Keystore, Signature, SigningKey};
use serde_json::{json, Value};
use std::time::Duration;

/// Longer than the daemon's key-file refresh interval (1 s).
const KEY_REFRESH: Duration = Duration::from_millis(1_300);

fn signing_config(mode: &str) -> relay_config::RelayConfig {
    let mut c = fast_config();
    c.signing.enabled = true;
    c.signing.require_signatures = mode.into();
    c.signing.allow_unsigned_from = vec!["Legacy".into()];
    c.dlq.initial_backoff_ms = 60_000;
    c.dlq.check_interval_ms = 50;
    c
}

fn keystore(d: &TestDaemon) -> Keystore {
    Keystore::new(d.dir.path().join(".agent-relay/keys"))
}

fn now() -> u64 {
    relay_protocol::now_ms()
}

fn send_env(to: &str, body: &str) -> Envelope {
    let mut env = Envelope::new(
        relay_protocol::MessageType::Send,
        &json!({"kind":"message","body":body,"data":{"n":1}}),
    );
    env.to = Some(to.into());
    env
}

fn signed(mut env: Envelope, signer: &str, key: &SigningKey, at: u64) -> Value {
    let sig = relay_signing::sign(&env, signer, key, at).expect("sign");
    sig.attach_to(&mut env);
    serde_json::to_value(&env).expect("json")
}

/// A new key for `agent`, once the daemon has read it.
async fn key_for(keys: &Keystore, agent: &str, alg: Algorithm) -> SigningKey {
    let key = keys
        .create(agent, alg, now())
        .expect("create the key")
        .signing_key(now())
        .expect("signing key");
    tokio::time::sleep(KEY_REFRESH).await;
    key
}

/// Asserts that the DELIVER `frame` carries `_sig` and that it verifies as `signer`'s message to
/// `original_to`, as a recipient would check it.
fn verifies_at_recipient(frame: &Value, signer: &str, original_to: Option<&str>, keys: &Keystore) {
    let delivered: Envelope = parse(frame);
    let sig = Signature::from_envelope(&delivered)
        .expect("_sig parses")
        .expect("_sig forwarded on DELIVER");
    relay_signing::verify_delivered(&delivered, signer, original_to, &sig, keys, now())
        .expect("verifies end to end");
}

async fn refused(c: &mut Client, frame: Value, needle: &str) {
    let id = frame["id"].as_str().unwrap().to_string();
    c.send(frame).await;
    let n = c.expect("NACK").await;
    assert_eq!(n["payload"]["ack_id"], id.as_str());
    assert_eq!(n["payload"]["code"], "FORBIDDEN", "{n}");
    let msg = n["payload"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
}

async fn signature_invalid_letters(c: &mut Client) -> u64 {
    let r = c
        .query("DLQ_LIST", json!({"reason":"signature_invalid"}))
        .await;
    r["payload"]["total"].as_u64().unwrap_or(0)
}

async fn scenario(alg: Algorithm) {
    let mut d = TestDaemon::start(signing_config("enforce")).await;
    let keys = keystore(&d);
    let alice_file = keys
        .create("Alice", alg, now())
        .expect("create Alice's key");
    keys.create("Mallory", alg, now())
        .expect("create Mallory's key");
    let alice_key = alice_file.signing_key(now()).expect("signing key");
    let mallory_key = keys.load("Mallory").unwrap().signing_key(now()).unwrap();
    tokio::time::sleep(KEY_REFRESH).await; // the daemon re-reads key files every second
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let mut legacy = d.client("Legacy").await;

    // A signed message is delivered with its signature and verifies at the recipient.
    alice
        .send(signed(
            send_env("Bob", "signed hello"),
            "Alice",
            &alice_key,
            now(),
        ))
        .await;
    let m = bob.recv_ack().await;
    assert_eq!(m["payload"]["body"], "signed hello");
    verifies_at_recipient(&m, "Alice", Some("Bob"), &keys);

    // Tampered body.
    let mut tampered = signed(send_env("Bob", "original"), "Alice", &alice_key, now());
    tampered["payload"]["body"] = json!("changed");
    refused(&mut alice, tampered, "signature").await;
    // Signed by someone else than the connection.
    refused(
        &mut alice,
        signed(send_env("Bob", "x"), "Mallory", &mallory_key, now()),
        "signature",
    )
    .await;
    // Replayed frame.
    let once = signed(send_env("Bob", "only once"), "Alice", &alice_key, now());
    alice.send(once.clone()).await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "only once");
    refused(&mut alice, once.clone(), "").await;
    // Stale timestamp.
    refused(
        &mut alice,
        signed(send_env("Bob", "old"), "Alice", &alice_key, now() - 600_000),
        "",
    )
    .await;
    // Unsigned under enforce.
    let unsigned = serde_json::to_value(send_env("Bob", "unsigned")).unwrap();
    refused(&mut alice, unsigned.clone(), "unsigned").await;
    // allow_unsigned_from tolerates absence ...
    legacy
        .send(serde_json::to_value(send_env("Bob", "legacy unsigned")).unwrap())
        .await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "legacy unsigned");
    // ... but never a bad signature.
    let mut bad = serde_json::to_value(send_env("Bob", "legacy bad")).unwrap();
    bad["_sig"] =
        json!({"s":"00ff","k":"0000000000000000","t":now(),"a":alg.as_str(),"m":bad["id"]});
    refused(&mut legacy, bad, "").await;
    bob.expect_silence(Duration::from_millis(100)).await;

    // Rotation: the previous key still verifies during the overlap.
    keys.rotate("Alice", now(), 3_600_000).expect("rotate");
    tokio::time::sleep(KEY_REFRESH).await;
    alice
        .send(signed(
            send_env("Bob", "old key, in overlap"),
            "Alice",
            &alice_key,
            now(),
        ))
        .await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "old key, in overlap"
    );
    let new_key = keys.load("Alice").unwrap().signing_key(now()).unwrap();
    alice
        .send(signed(send_env("Bob", "new key"), "Alice", &new_key, now()))
        .await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "new key");

    // A revoked key never verifies.
    keys.revoke("Alice", alice_key.key_id()).expect("revoke");
    tokio::time::sleep(KEY_REFRESH).await;
    refused(
        &mut alice,
        signed(send_env("Bob", "revoked"), "Alice", &alice_key, now()),
        "",
    )
    .await;

    let mut letters = 0;
    for _ in 0..100 {
        letters = signature_invalid_letters(&mut alice).await;
        if letters >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        letters, 7,
        "every refusal is a signature_invalid dead letter"
    );

    // A restart does not reopen the replay window.
    drop((alice, bob, legacy));
    d.restart().await;
    let mut alice = d.client("Alice").await;
    refused(&mut alice, once, "").await;
}

fn channel_post(body: &str) -> Envelope {
    Envelope::new(
        relay_protocol::MessageType::ChannelMessage,
        &json!({"channel":"#general","body":body,"mentions":["Bob"],"data":{"n":1}}),
    )
}

/// Channel posts (CHANNEL_MESSAGE) are checked like SENDs and reach every member with the
/// sender's `_sig`, which verifies there; refusals are dead letters addressed to the channel;
/// a restart does not reopen the replay window for them either.
async fn channel_scenario(alg: Algorithm) {
    let mut d = TestDaemon::start(signing_config("enforce")).await;
    let keys = keystore(&d);
    let alice_key = key_for(&keys, "Alice", alg).await;
    // Everyone is in #general.
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let mut legacy = d.client("Legacy").await;

    let post = signed(channel_post("signed post"), "Alice", &alice_key, now());
    alice.send(post.clone()).await;
    for member in [&mut bob, &mut legacy] {
        let m = member.expect("CHANNEL_MESSAGE").await;
        assert_eq!(m["from"], "Alice");
        assert_eq!(m["payload"], post["payload"], "forwarded verbatim");
        assert_ne!(m["id"], post["id"], "members get the stored row's id");
        verifies_at_recipient(&m, "Alice", None, &keys);
    }

    let mut tampered = signed(channel_post("original"), "Alice", &alice_key, now());
    tampered["payload"]["body"] = json!("changed");
    refused(&mut alice, tampered, "signature").await;
    let unsigned = serde_json::to_value(channel_post("unsigned")).expect("json");
    refused(&mut alice, unsigned, "unsigned").await;
    refused(&mut alice, post.clone(), "").await;
    // `allow_unsigned_from` applies to channel posts as to SENDs.
    let tolerated = serde_json::to_value(channel_post("from legacy")).expect("json");
    legacy.send(tolerated).await;
    assert_eq!(
        bob.expect("CHANNEL_MESSAGE").await["payload"]["body"],
        "from legacy"
    );
    bob.expect_silence(Duration::from_millis(300)).await;

    let letters = alice
        .query("DLQ_LIST", json!({"reason":"signature_invalid"}))
        .await;
    let letters = letters["payload"]["letters"].as_array().expect("letters");
    assert_eq!(letters.len(), 3, "{letters:?}");
    for letter in letters {
        assert_eq!(letter["to"], "#general", "{letter}");
        assert_eq!(letter["from"], "Alice", "{letter}");
    }

    drop((alice, bob, legacy));
    d.restart().await;
    let mut alice = d.client("Alice").await;
    refused(&mut alice, post, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_channel_posts_are_checked_and_verify_at_every_member() {
    channel_scenario(Algorithm::HmacSha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_channel_posts_are_checked_and_verify_at_every_member() {
    channel_scenario(Algorithm::Ed25519).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_signatures_end_to_end() {
    scenario(Algorithm::HmacSha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signatures_end_to_end() {
    scenario(Algorithm::Ed25519).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_delivers_unsigned_and_shared_secrets_work() {
    let mut cfg = signing_config("warn");
    cfg.signing.shared_secret = "team-secret".into();
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice
        .send(serde_json::to_value(send_env("Bob", "unsigned but warned")).unwrap())
        .await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "unsigned but warned"
    );
    let shared = relay_signing::SharedSecret::new("team-secret").signing_key();
    alice
        .send(signed(
            send_env("Bob", "shared secret"),
            "Alice",
            &shared,
            now(),
        ))
        .await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "shared secret");
    let wrong = relay_signing::SharedSecret::new("other-secret").signing_key();
    refused(
        &mut alice,
        signed(send_env("Bob", "wrong secret"), "Alice", &wrong, now()),
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_commands_need_signatures_under_enforce() {
    let d = TestDaemon::start(signing_config("enforce")).await;
    let mut legacy = d.client("Legacy").await;
    // Allowed to send unsigned messages, but not unsigned consensus commands.
    refused(
        &mut legacy,
        serde_json::to_value(send_env(
            "_consensus",
            "PROPOSE: x\nTYPE: majority\nPARTICIPANTS: A\nDESCRIPTION: y",
        ))
        .unwrap(),
        "consensus",
    )
    .await;
}

/// A signature in the signers' layout is stored packed (the row holds the 50-byte blob, not the
/// text), and what is read back — a queued message delivered when its recipient connects — is
/// the sender's `_sig`, still verifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_rows_are_stored_packed_and_delivered_from_storage_unchanged() {
    // Header, `t`, `k`, length byte and the MAC or signature; `m` is the row's source_id.
    stored_packed(Algorithm::HmacSha256, 18 + 32).await;
    stored_packed(Algorithm::Ed25519, 18 + 64).await;
}

async fn stored_packed(alg: Algorithm, blob_len: i64) {
    let d = TestDaemon::start(signing_config("enforce")).await;
    let keys = keystore(&d);
    let alice_key = key_for(&keys, "Alice", alg).await;
    let mut alice = d.client("Alice").await;
    // Carol is known (she connected once) and offline: her message waits in storage.
    drop(d.client("Carol").await);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Sent as the signer wrote it (a JSON value would reorder `_sig`'s members).
    let mut env = send_env("Carol", "kept for later");
    relay_signing::sign(&env, "Alice", &alice_key, now())
        .expect("sign")
        .attach_to(&mut env);
    let id = env.id.clone();
    let sent_sig: Value =
        serde_json::from_str(env.sig.as_ref().expect("signed").get()).expect("json");
    send_raw(&mut alice.framed, &serde_json::to_vec(&env).expect("json")).await;

    let db = rusqlite::Connection::open(d.dir.path().join("messages.sqlite")).expect("open db");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (kind, len) = loop {
        let row = db.query_row(
            "SELECT typeof(sig), length(sig) FROM messages WHERE source_id = ?1",
            [&id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        );
        match row {
            Ok(found) => break found,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("the signed message was not stored: {e}"),
        }
    };
    assert_eq!((kind.as_str(), len), ("blob", blob_len), "{alg}");

    let mut carol = d.client("Carol").await;
    let m = carol.recv_ack().await;
    assert_eq!(m["payload"]["body"], "kept for later");
    assert_eq!(m["_sig"], sent_sig);
    verifies_at_recipient(&m, "Alice", Some("Carol"), &keys);
}

/// Config for the owed-broadcast tests: Carol takes one unacknowledged message at a time, and
/// her held message is not redelivered while a test looks for silence.
fn one_pending_config() -> relay_config::RelayConfig {
    let mut cfg = signing_config("enforce");
    cfg.limits.max_pending_per_agent = 1;
    cfg.delivery.ack_timeout_ms = 10_000;
    cfg
}

/// Carol holds one unacknowledged message from Alice, so a signed broadcast from Alice reaches
/// Bob and is refused by Carol (NACK BUSY to Alice). Returns Carol's held message and the
/// broadcast as sent.
async fn broadcast_refused_by_carol(
    alice: &mut Client,
    bob: &mut Client,
    carol: &mut Client,
    alice_key: &SigningKey,
) -> (Value, Value) {
    alice
        .send(signed(send_env("Carol", "hold"), "Alice", alice_key, now()))
        .await;
    let held = carol.expect("DELIVER").await;

    let broadcast = signed(send_env("*", "to all"), "Alice", alice_key, now());
    let id = broadcast["id"].as_str().expect("id").to_string();
    alice.send(broadcast.clone()).await;
    let to_bob = bob.expect("DELIVER").await;
    assert_eq!(to_bob["payload"]["body"], "to all");
    bob.ack(&to_bob).await;
    let nack = alice.expect("NACK").await;
    assert_eq!(nack["payload"]["ack_id"], id.as_str());
    assert_eq!(nack["payload"]["code"], "BUSY", "{nack}");
    carol.expect_silence(Duration::from_millis(200)).await;
    (held, broadcast)
}

/// The retry of `broadcast` reaches Carol, verifying, and nobody else; a further copy, owed to
/// nobody, is a replay.
async fn retry_reaches_carol_only(
    alice: &mut Client,
    bob: &mut Client,
    carol: &mut Client,
    broadcast: Value,
    keys: &Keystore,
) {
    alice.send(broadcast.clone()).await;
    let to_carol = carol.expect("DELIVER").await;
    assert_eq!(to_carol["payload"]["body"], "to all");
    assert_eq!(to_carol["delivery"]["originalTo"], "*");
    verifies_at_recipient(&to_carol, "Alice", Some("*"), keys);
    carol.ack(&to_carol).await;
    bob.expect_silence(Duration::from_millis(200)).await;
    // The retry was accepted: no NACK (the BUSY advice from the first attempt may still come).
    while let Some(f) = alice.next_within(Duration::from_millis(200)).await {
        assert_ne!(f["type"], "NACK", "{f}");
    }

    // Everyone has it now: the same frame again is a replay.
    refused(alice, broadcast, "already accepted").await;
    bob.expect_silence(Duration::from_millis(200)).await;
    carol.expect_silence(Duration::from_millis(200)).await;
}

/// A signed broadcast that one recipient refused (too many unacknowledged messages) is sent
/// again as the very same frame: the retry reaches only the one that refused it instead of being
/// refused as a replay, and a third copy, owed to nobody, is a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_refused_signed_broadcast_is_retried_under_its_id() {
    signed_partly_refused_broadcast(false).await;
}

/// Who is still owed a partly refused signed broadcast survives a daemon restart: the retry
/// after it reaches only them, where the replay cache (restored from storage) would otherwise
/// refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_refused_signed_broadcast_is_still_owed_after_a_restart() {
    signed_partly_refused_broadcast(true).await;
}

async fn signed_partly_refused_broadcast(restart: bool) {
    let mut d = TestDaemon::start(one_pending_config()).await;
    let keys = keystore(&d);
    let alice_key = key_for(&keys, "Alice", Algorithm::HmacSha256).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let mut carol = d.client("Carol").await;
    let (held, broadcast) =
        broadcast_refused_by_carol(&mut alice, &mut bob, &mut carol, &alice_key).await;

    // Carol catches up; the same signed frame reaches her and nobody else.
    let [mut alice, mut bob, mut carol] =
        d.carol_catches_up([alice, bob, carol], held, restart).await;
    retry_reaches_carol_only(&mut alice, &mut bob, &mut carol, broadcast, &keys).await;
}

/// A signed SEND's id is kept by the replay cache instead of the sender's dedupe window; an
/// unsigned copy of it (warn mode) is still a duplicate, and so is a signed copy of an id first
/// sent unsigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_unsigned_copies_of_one_id_are_delivered_once() {
    let mut cfg = signing_config("warn");
    cfg.signing.shared_secret = "team-secret".into();
    let d = TestDaemon::start(cfg).await;
    let key = relay_signing::SharedSecret::new("team-secret").signing_key();
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;

    let first = send_env("Bob", "signed first").id("mixed-1");
    alice
        .send(signed(first.clone(), "Alice", &key, now()))
        .await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "signed first");
    alice.send(serde_json::to_value(&first).unwrap()).await;
    alice.send_to("Bob", "after the unsigned copy").await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "after the unsigned copy",
        "the unsigned copy of a signed id is not delivered"
    );

    let second = send_env("Bob", "unsigned first").id("mixed-2");
    alice.send(serde_json::to_value(&second).unwrap()).await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "unsigned first");
    alice.send(signed(second, "Alice", &key, now())).await;
    alice.send_to("Bob", "after the signed copy").await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "after the signed copy",
        "the signed copy of an unsigned id is not delivered"
    );
    bob.expect_silence(Duration::from_millis(200)).await;
}

/// A connection of the Rust client signing with its key file in the daemon's key directory.
async fn signing_client(
    d: &TestDaemon,
    name: &str,
) -> (relay_client::Client, relay_client::EventStream) {
    let mut config = relay_client::ClientConfig::new(&d.socket, name);
    config.reconnect = false;
    config.signing = Some(relay_client::ClientSigning::KeyFile {
        keys_dir: d.dir.path().join(".agent-relay/keys"),
    });
    relay_client::Client::connect(config)
        .await
        .expect("connect")
}

/// The next message `events` report, within the test's patience.
async fn next_delivered(events: &mut relay_client::EventStream) -> relay_client::Delivered {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(relay_client::Event::Message(m))) => return m,
            Ok(Some(_)) => {}
            other => panic!("no message: {other:?}"),
        }
    }
}

/// Alice asks `whom` a sync question (waiting 1.5 s at most); returns her pending answer and
/// the payload of an ACK answering it.
async fn ask(
    alice: &relay_client::Client,
    whom: &mut Client,
) -> (relay_client::PendingSync, Value) {
    let pending = alice
        .send_sync(
            relay_client::SendOptions::new(whom.name.clone(), "are you Bob?"),
            Duration::from_millis(1_500),
        )
        .await
        .expect("send");
    let asked = whom.recv_ack().await;
    let answer = json!({"ack_id": asked["id"], "seq": 0,
        "correlationId": asked["payload_meta"]["sync"]["correlationId"],
        "response": true, "responseData": {"ok": true}});
    (pending, answer)
}

/// Sync answers (an ACK with a correlation id) carry content to another agent: they are checked
/// like SENDs, and the waiting sender gets the answerer's `_sig` and can check it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_answers_are_checked_and_verify_at_the_waiting_sender() {
    let d = TestDaemon::start(signing_config("enforce")).await;
    let keys = keystore(&d);
    key_for(&keys, "Alice", Algorithm::HmacSha256).await;
    key_for(&keys, "Bob", Algorithm::Ed25519).await;
    let (alice, _alice_events) = signing_client(&d, "Alice").await;
    let (bob, mut bob_events) = signing_client(&d, "Bob").await;

    let pending = alice
        .send_sync(
            relay_client::SendOptions::new("Bob", "ship it?"),
            Duration::from_secs(10),
        )
        .await
        .expect("send");
    let asked = next_delivered(&mut bob_events).await;
    bob.reply_sync(&asked, Some(json!({"ok": true})))
        .await
        .expect("answer");
    let answer = pending.signed_answer().await.expect("Bob's answer");
    assert_eq!(answer.ack.response_data, Some(json!({"ok": true})));
    let kept = answer.signed.expect("the answer keeps Bob's signature");
    assert_eq!(kept.envelope().from.as_deref(), Some("Bob"));
    relay_client::Client::verify_signed(&kept, &keys).expect("Bob's answer verifies at Alice");

    // Mallory has no key: her answer is refused and dead-lettered, and Alice is not answered.
    let mut mallory = d.client("Mallory").await;
    let (pending, answer) = ask(&alice, &mut mallory).await;
    let forged = json!({"v":1,"type":"ACK","id":"forged-1","ts":1,"to":"Alice","payload":answer});
    refused(&mut mallory, forged, "unsigned").await;
    let waited = pending.answer().await;
    assert!(
        matches!(
            waited,
            Err(relay_client::ClientError::Timeout { .. })
                | Err(relay_client::ClientError::Server(_))
        ),
        "{waited:?}"
    );
    assert_eq!(signature_invalid_letters(&mut mallory).await, 1);
    // The delivery itself was acknowledged: it is not sent again.
    mallory.expect_silence(Duration::from_millis(300)).await;

    // Signed, but addressed to someone other than the waiting sender: Alice could not verify
    // it, so the daemon refuses it and says how to sign it.
    let dave_key = key_for(&keys, "Dave", Algorithm::HmacSha256).await;
    let mut dave = d.client("Dave").await;
    let (pending, answer) = ask(&alice, &mut dave).await;
    let mut answer = Envelope::new(relay_protocol::MessageType::Ack, &answer);
    answer.to = Some("Carol".into());
    refused(
        &mut dave,
        signed(answer, "Dave", &dave_key, now()),
        "this answer goes to alice, who checks it as addressed to alice, but it was signed \
         with to = \"carol\"; sign it with to = \"alice\"",
    )
    .await;
    assert!(pending.answer().await.is_err(), "Alice gets no answer");
    assert_eq!(signature_invalid_letters(&mut dave).await, 2);
}

/// A refused sync answer is dead-lettered as the answer it was: addressed to the sender that
/// waited for it (whatever `to` it named), its `response` as the body and `correlationId` and
/// `responseData` in `data`; replayed, the asker gets it as a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sync_answer_is_kept_as_the_answer_and_replays_to_the_asker() {
    let d = TestDaemon::start(signing_config("enforce")).await;
    let keys = keystore(&d);
    key_for(&keys, "Alice", Algorithm::HmacSha256).await;
    let (alice, mut alice_events) = signing_client(&d, "Alice").await;
    let mut mallory = d.client("Mallory").await;

    let (pending, mut answer) = ask(&alice, &mut mallory).await;
    let correlation_id = answer["correlationId"].clone();
    answer["response"] = json!("yes, ship it");
    // No `to`: the letter is still Alice's, the sender waiting for this answer.
    let forged = json!({"v":1,"type":"ACK","id":"forged-2","ts":1,"payload":answer});
    refused(&mut mallory, forged, "unsigned").await;
    assert!(pending.answer().await.is_err(), "Alice gets no answer");

    let r = mallory
        .query("DLQ_LIST", json!({"reason":"signature_invalid"}))
        .await;
    let letters = r["payload"]["letters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(letters.len(), 1, "{r}");
    let letter = &letters[0];
    assert_eq!(letter["from"], "Mallory", "{letter}");
    assert_eq!(letter["to"], "Alice", "{letter}");
    assert_eq!(letter["body"], "yes, ship it", "{letter}");
    assert_eq!(letter["data"]["correlationId"], correlation_id, "{letter}");
    assert_eq!(
        letter["data"]["responseData"],
        json!({"ok": true}),
        "{letter}"
    );

    let dlq_id = letter["id"].as_str().expect("letter id").to_string();
    let r = mallory.query("DLQ_REPLAY", json!({"ids": [&dlq_id]})).await;
    assert_eq!(r["payload"]["count"], 1, "{r}");
    let replayed = next_delivered(&mut alice_events).await;
    assert_eq!(replayed.from, "Mallory");
    assert_eq!(replayed.payload.body, "yes, ship it");
    let data = replayed.payload.data.clone().unwrap_or_default();
    assert_eq!(data.get("_replayOf"), Some(&json!(dlq_id)), "{data:?}");
    assert_eq!(data.get("correlationId"), Some(&correlation_id), "{data:?}");
}
