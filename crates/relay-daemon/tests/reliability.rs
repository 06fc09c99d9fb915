//! Reliability over a real socket: offline queue, redelivery, dead letters, resume, sync waits,
//! idempotent sends, rate limiting, takeover, restart.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_is_complete_ordered_and_survives_restart() {
    let mut cfg = fast_config();
    cfg.limits.rate_limit_enabled = false;
    let mut d = TestDaemon::start(cfg).await;
    let bob = d.client("Bob").await;
    drop(bob);
    let mut alice = d.client("Alice").await;
    // Wait until Bob is gone so the messages are queued rather than delivered.
    for _ in 0..100 {
        let lc = alice.query("LIST_CONNECTED_AGENTS", json!({})).await;
        if lc["payload"]["agents"].as_array().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..300 {
        alice.send_to("Bob", &format!("m{i}")).await;
    }
    alice.query("STATUS", json!({})).await;
    drop(alice);
    d.restart().await;

    let mut bob = d.client("Bob").await;
    for i in 0..300 {
        let m = bob.recv_ack().await;
        assert_eq!(
            m["payload"]["body"],
            format!("m{i}"),
            "offline messages arrive complete and in order"
        );
        assert_eq!(m["from"], "Alice");
        assert_eq!(m["delivery"]["seq"], i + 1);
    }
    bob.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_delivery_is_redelivered_then_dead_lettered() {
    let mut cfg = fast_config();
    cfg.delivery.ack_timeout_ms = 100;
    cfg.delivery.max_backoff_ms = 150;
    cfg.delivery.max_attempts = 3;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send_to("Bob", "ack me").await;
    let first = bob.expect("DELIVER").await;
    let second = bob.expect("DELIVER").await;
    assert_eq!(first["id"], second["id"], "a redelivery keeps its id");
    assert_eq!(
        first["delivery"]["seq"], second["delivery"]["seq"],
        "and its seq"
    );
    let third = bob.expect("DELIVER").await;
    assert_eq!(third["id"], first["id"]);
    bob.expect_silence(Duration::from_millis(500)).await;
    let mut status = String::new();
    for _ in 0..50 {
        let q = alice.query("MESSAGES_QUERY", json!({"to":"Bob"})).await;
        status = q["payload"]["messages"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status, "failed",
        "given-up messages are marked failed, not dropped"
    );
    let mt = alice.query("METRICS", json!({})).await;
    assert_eq!(mt["payload"]["daemon"]["deadLettered"], 1);
    assert_eq!(mt["payload"]["daemon"]["redelivered"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_delivery_is_not_redelivered() {
    let mut cfg = fast_config();
    cfg.delivery.ack_timeout_ms = 100;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send_to("Bob", "once").await;
    bob.recv_ack().await;
    bob.expect_silence(Duration::from_millis(400)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_unacked_deliveries_with_the_same_id_and_seq() {
    let mut cfg = fast_config();
    cfg.delivery.ack_timeout_ms = 5_000;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send_to("Bob", "one").await;
    let acked = bob.recv_ack().await;
    alice.send_to("Bob", "two").await;
    let unacked = bob.expect("DELIVER").await;
    bob.query("STATUS", json!({})).await; // the ACK of "one" is processed
    let token = bob.resume_token();
    let session = bob.session_id();
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut bob = Client::hello(&d.socket, "Bob", json!({"session":{"resume_token": token}})).await;
    assert_eq!(bob.session_id(), session, "the session is resumed");
    let replay = bob.recv_ack().await;
    assert_eq!(replay["id"], unacked["id"]);
    assert_eq!(replay["delivery"]["seq"], unacked["delivery"]["seq"]);
    assert_ne!(replay["id"], acked["id"]);
    alice.send_to("Bob", "three").await;
    let next = bob.recv_ack().await;
    assert_eq!(
        next["delivery"]["seq"], 3,
        "sequence numbering continues after resume"
    );

    // An unknown token: non-fatal RESUME_TOO_OLD before WELCOME, then a fresh session.
    let mut raw = Client::raw(&d.socket).await;
    send_json(&mut raw, &json!({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"agent":"Eve","capabilities":{},"session":{"resume_token":"bogus"}}})).await;
    let mut eve = Client {
        name: "Eve".into(),
        framed: raw,
        welcome: serde_json::Value::Null,
    };
    let e = eve.expect("ERROR").await;
    assert_eq!(e["payload"]["code"], "RESUME_TOO_OLD");
    assert_eq!(e["payload"]["fatal"], false);
    eve.expect("WELCOME").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_send_gets_the_correlated_ack_or_a_timeout() {
    let d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice
        .send(json!({"v":1,"type":"SEND","id":"s1","ts":1,"to":"Bob","payload":{"kind":"message","body":"approve?"},
            "payload_meta":{"sync":{"correlationId":"corr-1","timeoutMs":5000,"blocking":true}}}))
        .await;
    let m = bob.recv_ack().await;
    assert_eq!(m["payload_meta"]["sync"]["correlationId"], "corr-1");
    bob.send(json!({"v":1,"type":"ACK","id":"a1","ts":1,"payload":{"ack_id":m["id"],"seq":0,"correlationId":"corr-1","response":true,"responseData":{"ok":1}}})).await;
    let fwd = alice.expect("ACK").await;
    assert_eq!(fwd["from"], "Bob");
    assert_eq!(fwd["to"], "Alice");
    assert_eq!(fwd["payload"]["responseData"]["ok"], 1);

    // Nobody answers: TIMEOUT, naming the SEND.
    alice
        .send(json!({"v":1,"type":"SEND","id":"s2","ts":1,"to":"Bob","payload":{"kind":"message","body":"hello?"},
            "payload_meta":{"sync":{"correlationId":"corr-2","timeoutMs":200,"blocking":true}}}))
        .await;
    bob.recv_ack().await;
    let e = alice.expect("ERROR").await;
    assert_eq!(e["payload"]["code"], "TIMEOUT");
    assert_eq!(e["payload"]["fatal"], false);
    assert_eq!(e["payload"]["replyTo"], "s2");

    // Cannot be routed: answered at once.
    alice
        .send(json!({"v":1,"type":"SEND","id":"s3","ts":1,"to":"Nobody","payload":{"kind":"message","body":"x"},
            "payload_meta":{"sync":{"correlationId":"corr-3","timeoutMs":30000,"blocking":true}}}))
        .await;
    let n = alice.expect("NACK").await;
    assert_eq!(n["payload"]["ack_id"], "s3");

    // Missing correlation id: BAD_REQUEST and not routed.
    alice
        .send(json!({"v":1,"type":"SEND","id":"s4","ts":1,"to":"Bob","payload":{"kind":"message","body":"x"},
            "payload_meta":{"sync":{"correlationId":"","blocking":true}}}))
        .await;
    let e = alice.expect("ERROR").await;
    assert_eq!(e["payload"]["code"], "BAD_REQUEST");
    bob.expect_silence(Duration::from_millis(200)).await;

    // Not routed means not accepted: corrected and sent again under the same id, it is routed
    // (not dropped as a duplicate).
    alice
        .send(json!({"v":1,"type":"SEND","id":"s4","ts":1,"to":"Bob","payload":{"kind":"message","body":"x"},
            "payload_meta":{"sync":{"correlationId":"corr-4","timeoutMs":30000,"blocking":true}}}))
        .await;
    let m = bob.recv_ack().await;
    assert_eq!(m["payload_meta"]["sync"]["correlationId"], "corr-4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_recipients_duplicates_and_rate_limits_are_answered() {
    let mut cfg = fast_config();
    cfg.limits.rate_limit_per_sec = 5.0;
    cfg.limits.rate_limit_burst = 5.0;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;

    let id = alice.send_to("Ghost", "boo").await;
    let n = alice.expect("NACK").await;
    assert_eq!(n["payload"]["ack_id"], id);
    assert_eq!(n["payload"]["code"], "INVALID");
    assert!(n["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown recipient"));

    let dup = json!({"v":1,"type":"SEND","id":"same-id","ts":1,"to":"Bob","payload":{"kind":"message","body":"once"}});
    alice.send(dup.clone()).await;
    alice.send(dup).await;
    bob.recv_ack().await;
    bob.expect_silence(Duration::from_millis(200)).await;

    let mut sent = Vec::new();
    for i in 0..6 {
        let body = format!("r{i}");
        sent.push((alice.send_to("Bob", &body).await, body));
    }
    for _ in 0..3 {
        bob.recv_ack().await; // 5 tokens, 2 used above
    }
    let mut saw_nack = false;
    let mut saw_busy = false;
    let mut refused = None;
    while let Some(v) = alice.next_within(Duration::from_millis(300)).await {
        match v["type"].as_str() {
            Some("NACK") => {
                assert_eq!(v["payload"]["code"], "BUSY");
                refused = v["payload"]["ack_id"].as_str().map(str::to_string);
                // Clients (the bench) tell rate limiting apart from backpressure by this.
                let nack: relay_protocol::NackPayload =
                    serde_json::from_value(v["payload"].clone()).expect("NACK payload");
                assert!(nack.is_rate_limit(), "{v}");
                saw_nack = true;
            }
            Some("BUSY") => {
                assert!(v["payload"]["retry_after_ms"].as_u64().unwrap() > 0);
                saw_busy = true;
            }
            _ => {}
        }
    }
    assert!(
        saw_nack && saw_busy,
        "rate-limited sends get NACK BUSY and BUSY"
    );

    // A refused SEND was not accepted: sent again under the same id once tokens are back, it
    // is delivered, not dropped as a duplicate.
    let refused = refused.expect("a refused id");
    let body = &sent.iter().find(|(id, _)| *id == refused).expect("sent").1;
    while let Some(v) = bob.next_within(Duration::from_millis(100)).await {
        if v["type"] == "DELIVER" {
            bob.ack(&v).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    alice
        .send(json!({"v":1,"type":"SEND","id":refused,"ts":1,"to":"Bob",
                     "payload":{"kind":"message","body":body}}))
        .await;
    let again = loop {
        let v = bob.expect("DELIVER").await;
        bob.ack(&v).await;
        // Redeliveries of the accepted ones may still be on their way.
        if v["payload"]["body"] == body.as_str() {
            break v;
        }
    };
    assert_eq!(again["from"], "Alice", "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_resent_after_reconnecting_is_delivered_once() {
    let d = TestDaemon::start(fast_config()).await;
    let mut bob = d.client("Bob").await;
    let frame = json!({"v":1,"type":"SEND","id":"resent-1","ts":1,"to":"Bob",
                       "payload":{"kind":"message","body":"once"}});
    let mut alice = d.client("Alice").await;
    alice.send(frame.clone()).await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "once");
    // The sender's connection drops before it saw the ACK; it reconnects and sends again.
    drop(alice);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut alice = d.client("Alice").await;
    alice.send(frame).await;
    alice.send_to("Bob", "next").await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "next",
        "the resent frame is not delivered again"
    );
    bob.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_takes_over_the_name() {
    let d = TestDaemon::start(fast_config()).await;
    let mut old = d.client("Bob").await;
    let mut new = d.client("Bob").await;
    let e = old.expect("ERROR").await;
    assert_eq!(e["payload"]["code"], "DUPLICATE_CONNECTION");
    assert_eq!(e["payload"]["fatal"], true);
    old.expect("BYE").await;
    assert!(
        old.next_within(Duration::from_secs(2)).await.is_none(),
        "then the socket closes"
    );
    let mut alice = d.client("Alice").await;
    alice.send_to("Bob", "to the new one").await;
    assert_eq!(new.recv_ack().await["payload"]["body"], "to the new one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_move_to_the_reconnected_agent() {
    let mut cfg = fast_config();
    cfg.delivery.ack_timeout_ms = 5_000;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send_to("Bob", "unacked").await;
    let first = bob.expect("DELIVER").await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = d.client("Bob").await; // no resume token: a new session
    let again = bob.recv_ack().await;
    assert_eq!(
        again["id"], first["id"],
        "the same message, so clients can de-duplicate"
    );
    assert_eq!(again["delivery"]["session_id"], bob.session_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_delivery_is_refused_without_hurting_the_recipient() {
    let mut cfg = fast_config();
    cfg.daemon.max_frame_bytes = 1024;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    // The SEND fits in 1024 bytes; the DELIVER (with from, delivery, …) does not.
    let body = "x".repeat(1024 - 110);
    let send = json!({"v":1,"type":"SEND","id":"big","ts":1,"to":"Bob","payload":{"kind":"message","body":body}});
    assert!(serde_json::to_vec(&send).unwrap().len() <= 1024);
    alice.send(send).await;
    let n = alice.expect("NACK").await;
    assert_eq!(n["payload"]["code"], "INVALID");
    assert!(n["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("payload too large"));
    alice.send_to("Bob", "small").await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_bye_to_everyone() {
    let mut d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    d.stop().await;
    alice.expect("BYE").await;
    assert!(alice.next_within(Duration::from_secs(2)).await.is_none());
    assert!(!d.socket.exists() || std::os::unix::net::UnixStream::connect(&d.socket).is_err());
}

/// A SEND sent again after a daemon restart under an id accepted before it (a client whose ACK
/// was lost with the old daemon) is a duplicate, for a direct message and for a broadcast alike;
/// new ids still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_repeated_after_a_restart_is_still_a_duplicate() {
    let mut d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let direct = json!({"v":1,"type":"SEND","id":"before-restart","ts":1,"to":"Bob",
                        "payload":{"kind":"message","body":"once"}});
    let broadcast = json!({"v":1,"type":"SEND","id":"bc-before-restart","ts":1,"to":"*",
                           "payload":{"kind":"message","body":"once to all"}});
    alice.send(direct.clone()).await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "once");
    alice.send(broadcast.clone()).await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "once to all");
    alice.query("STATUS", json!({})).await;

    let [mut alice, mut bob] = d.restart_with([alice, bob]).await;
    alice.send(direct).await;
    alice.send(broadcast).await;
    alice.send_to("Bob", "after the restart").await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "after the restart",
        "the copies sent again are not delivered"
    );
    bob.expect_silence(Duration::from_millis(200)).await;
}

/// A broadcast that one recipient refused (too many unacknowledged messages) is accepted for the
/// others; sent again under the same id it reaches only the one that refused it, and a third
/// copy is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_refused_broadcast_is_retried_to_the_refusers_only() {
    partly_refused_broadcast(false).await;
}

/// The same across a daemon restart between the first attempt and the retry: who is owed the
/// broadcast is kept in storage, so Bob does not get it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_refused_broadcast_is_still_owed_after_a_restart() {
    partly_refused_broadcast(true).await;
}

async fn partly_refused_broadcast(restart: bool) {
    let mut cfg = fast_config();
    cfg.limits.max_pending_per_agent = 1;
    // Carol's held message must not be redelivered while the test looks for silence.
    cfg.delivery.ack_timeout_ms = 10_000;
    let mut d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let mut carol = d.client("Carol").await;

    // Carol holds one unacknowledged message: she is full.
    alice.send_to("Carol", "hold").await;
    let held = carol.expect("DELIVER").await;

    let broadcast = json!({"v":1,"type":"SEND","id":"bc-1","ts":1,"to":"*",
                           "payload":{"kind":"message","body":"to all"}});
    alice.send(broadcast.clone()).await;
    let to_bob = bob.expect("DELIVER").await;
    assert_eq!(to_bob["payload"]["body"], "to all");
    bob.ack(&to_bob).await;
    let nack = alice.expect("NACK").await;
    assert_eq!(nack["payload"]["ack_id"], "bc-1");
    assert_eq!(nack["payload"]["code"], "BUSY");
    assert!(
        nack["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("Carol"),
        "{nack}"
    );
    carol.expect_silence(Duration::from_millis(200)).await;

    // Carol catches up; the retry reaches her and nobody else.
    let [mut alice, mut bob, mut carol] =
        d.carol_catches_up([alice, bob, carol], held, restart).await;
    alice.send(broadcast.clone()).await;
    let to_carol = carol.expect("DELIVER").await;
    assert_eq!(to_carol["payload"]["body"], "to all");
    assert_eq!(to_carol["delivery"]["originalTo"], "*");
    carol.ack(&to_carol).await;
    bob.expect_silence(Duration::from_millis(200)).await;

    // Everyone has it now: the same id again is a duplicate.
    alice.send(broadcast).await;
    bob.expect_silence(Duration::from_millis(200)).await;
    carol.expect_silence(Duration::from_millis(200)).await;
}
