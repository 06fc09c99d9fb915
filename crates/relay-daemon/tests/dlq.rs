//! The dead letter queue end to end over a real socket: every failure reason lands in the DLQ,
//! a replay arrives exactly once and the letter becomes `delivered` on the recipient's ACK.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn dlq_config() -> relay_config::RelayConfig {
    let mut c = fast_config();
    c.delivery.ack_timeout_ms = 100;
    c.delivery.max_backoff_ms = 150;
    c.delivery.max_attempts = 2;
    c.dlq.initial_backoff_ms = 60_000; // no timed replays unless a test asks for them
    c.dlq.check_interval_ms = 50;
    c
}

/// Polls DLQ_LIST until `pred` holds for the letters.
async fn letters_until(
    c: &mut Client,
    filter: Value,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..100 {
        let r = c.query("DLQ_LIST", filter.clone()).await;
        assert_eq!(r["type"], "DLQ_LIST_RESPONSE", "{r}");
        last = r["payload"]["letters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("condition never held; last letters: {last:?}");
}

async fn state_of(c: &mut Client, id: &str) -> String {
    let g = c.query("DLQ_GET", json!({"id": id})).await;
    g["payload"]["letter"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn until_state(c: &mut Client, id: &str, want: &str) {
    let mut state = String::new();
    for _ in 0..100 {
        state = state_of(c, id).await;
        if state == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("letter {id} is {state:?}, expected {want:?}");
}

/// Receives the replay (checking its marker), ACKs it, and checks nothing else arrives.
async fn take_replay_once(bob: &mut Client, dlq_id: &str, body: &str) -> Value {
    let m = bob.recv_ack().await;
    assert_eq!(m["payload"]["body"], body);
    assert_eq!(
        m["payload"]["data"]["_replayOf"], dlq_id,
        "replays are marked: {m}"
    );
    bob.expect_silence(Duration::from_millis(400)).await;
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_then_replay_on_reconnect_exactly_once() {
    let d = TestDaemon::start(dlq_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice
        .send(
            json!({"v":1,"type":"SEND","id":"keep","ts":1,"to":"Bob","topic":"t",
            "payload":{"kind":"action","body":"never acked","data":{"k":[1,2]},"thread":"th"},
            "payload_meta":{"importance":90,"custom":"x"}}),
        )
        .await;
    let first = bob.expect("DELIVER").await;
    let second = bob.expect("DELIVER").await;
    assert_eq!(first["id"], second["id"]);
    let letters = letters_until(&mut alice, json!({"to":"Bob"}), |l| l.len() == 1).await;
    let l = &letters[0];
    assert_eq!(l["reason"], "max_retries_exceeded");
    assert_eq!(l["attemptCount"], 2);
    assert_eq!(l["msgType"], "DELIVER");
    assert_eq!(l["messageId"], first["id"]);
    assert_eq!(
        (
            l["from"].as_str(),
            l["kind"].as_str(),
            l["thread"].as_str(),
            l["topic"].as_str()
        ),
        (Some("Alice"), Some("action"), Some("th"), Some("t"))
    );
    assert_eq!(l["data"]["k"][1], 2);
    assert_eq!(l["payloadMeta"]["custom"], "x", "the whole message is kept");
    assert_eq!(l["state"], "pending");
    let dlq_id = l["id"].as_str().unwrap().to_string();

    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = d.client("Bob").await;
    let m = take_replay_once(&mut bob, &dlq_id, "never acked").await;
    assert_eq!(m["id"], first["id"], "the replay keeps the message id");
    assert_eq!(m["payload"]["data"]["k"][0], 1);
    until_state(&mut alice, &dlq_id, "delivered").await;
    let g = alice.query("DLQ_GET", json!({"id": &dlq_id[..10]})).await;
    assert_eq!(g["payload"]["letter"]["acknowledged"], true);
    assert_eq!(g["payload"]["letter"]["dlqRetryCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_target_is_replayed_when_the_agent_registers() {
    let d = TestDaemon::start(dlq_config()).await;
    let mut alice = d.client("Alice").await;
    alice.send_to("Ghost", "boo").await;
    assert_eq!(alice.expect("NACK").await["payload"]["code"], "INVALID");
    let letters = letters_until(&mut alice, json!({"reason":"target_not_found"}), |l| {
        l.len() == 1
    })
    .await;
    assert_eq!(letters[0]["msgType"], "SEND");
    let dlq_id = letters[0]["id"].as_str().unwrap().to_string();
    let mut ghost = d.client("Ghost").await;
    take_replay_once(&mut ghost, &dlq_id, "boo").await;
    until_state(&mut alice, &dlq_id, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_messages_are_replayed_with_backoff() {
    let mut cfg = dlq_config();
    cfg.limits.rate_limit_per_sec = 1.0;
    cfg.limits.rate_limit_burst = 1.0;
    cfg.dlq.initial_backoff_ms = 100;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send_to("Bob", "first").await;
    alice.send_to("Bob", "second").await;
    assert_eq!(bob.recv_ack().await["payload"]["body"], "first");
    let letters = letters_until(&mut alice, json!({"reason":"rate_limited"}), |l| {
        l.len() == 1
    })
    .await;
    let dlq_id = letters[0]["id"].as_str().unwrap().to_string();
    // No reconnect needed: the timed retry delivers it.
    take_replay_once(&mut bob, &dlq_id, "second").await;
    until_state(&mut alice, &dlq_id, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_kept_and_replayed_by_an_operator() {
    let mut cfg = dlq_config();
    cfg.delivery.max_attempts = 50;
    cfg.dlq.initial_backoff_ms = 50;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice
        .send(json!({"v":1,"type":"SEND","id":"ttl","ts":1,"to":"Bob","payload":{"kind":"message","body":"short-lived"},"payload_meta":{"ttl_ms":250}}))
        .await;
    bob.expect("DELIVER").await; // not acknowledged
    let letters = letters_until(&mut alice, json!({"reason":"ttl_expired"}), |l| {
        l.len() == 1
    })
    .await;
    let dlq_id = letters[0]["id"].as_str().unwrap().to_string();
    assert_eq!(letters[0]["ttlMs"], 250);
    // Drain redeliveries that were in flight, then check an expired letter is not replayed by itself.
    while bob.next_within(Duration::from_millis(300)).await.is_some() {}
    assert_eq!(state_of(&mut alice, &dlq_id).await, "pending");
    let r = alice.query("DLQ_REPLAY", json!({"ids": [&dlq_id]})).await;
    assert_eq!(r["payload"]["count"], 1, "{r}");
    take_replay_once(&mut bob, &dlq_id, "short-lived").await;
    until_state(&mut alice, &dlq_id, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_survive_a_restart_and_are_replayed_after_the_limit_is_raised() {
    let mut cfg = dlq_config();
    cfg.daemon.max_frame_bytes = 1024;
    let mut d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let _bob = d.client("Bob").await;
    let body = "x".repeat(1024 - 110);
    alice.send(json!({"v":1,"type":"SEND","id":"big","ts":1,"to":"Bob","payload":{"kind":"message","body":body}})).await;
    assert_eq!(alice.expect("NACK").await["payload"]["code"], "INVALID");
    let letters = letters_until(&mut alice, json!({"reason":"payload_too_large"}), |l| {
        l.len() == 1
    })
    .await;
    let dlq_id = letters[0]["id"].as_str().unwrap().to_string();
    drop((alice, _bob));

    d.config.daemon.max_frame_bytes = 4096;
    d.restart().await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let letters = letters_until(&mut alice, json!({"reason":"payload_too_large"}), |l| {
        l.len() == 1
    })
    .await;
    assert_eq!(
        letters[0]["id"],
        dlq_id.as_str(),
        "dead letters survive a restart"
    );
    assert_eq!(
        state_of(&mut alice, &dlq_id).await,
        "pending",
        "oversize is never replayed by itself"
    );
    let r = alice
        .query("DLQ_REPLAY", json!({"reason":"payload_too_large"}))
        .await;
    assert_eq!(r["payload"]["count"], 1);
    take_replay_once(&mut bob, &dlq_id, &body).await;
    until_state(&mut alice, &dlq_id, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_ack_purge_and_are_protected_from_accidents() {
    let d = TestDaemon::start(dlq_config()).await;
    let mut alice = d.client("Alice").await;
    for who in ["G1", "G2", "G3"] {
        alice.send_to(who, "hello").await;
        alice.expect("NACK").await;
    }
    letters_until(&mut alice, json!({}), |l| l.len() == 3).await;
    let stats = alice.query("DLQ_STATS", json!({})).await;
    assert_eq!(stats["payload"]["enabled"], true);
    assert_eq!(stats["payload"]["stats"]["total"], 3);
    assert_eq!(stats["payload"]["stats"]["byReason"]["target_not_found"], 3);
    assert_eq!(stats["payload"]["stats"]["byReason"]["rate_limited"], 0);
    assert_eq!(stats["payload"]["stats"]["byTarget"]["G2"], 1);
    assert_eq!(stats["payload"]["health"]["degraded"], false);

    for verb in ["DLQ_REPLAY", "DLQ_ACK", "DLQ_PURGE"] {
        let r = alice.query(verb, json!({})).await;
        assert_eq!(
            r["type"], "ERROR",
            "{verb} with no selection must be refused: {r}"
        );
        assert!(r["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("all=true"));
    }
    let r = alice.query("DLQ_LIST", json!({"reason":"bogus"})).await;
    assert!(r["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown reason"));

    let r = alice.query("DLQ_ACK", json!({"to":"G1","by":"ops"})).await;
    assert_eq!(r["payload"]["count"], 1);
    let acked = letters_until(&mut alice, json!({"to":"G1"}), |l| l.len() == 1).await;
    assert_eq!(acked[0]["acknowledgedBy"], "ops");
    let unacked = alice
        .query("DLQ_LIST", json!({"acknowledged": false}))
        .await;
    assert_eq!(unacked["payload"]["total"], 2);

    let r = alice.query("DLQ_PURGE", json!({"to":"G2"})).await;
    assert_eq!(r["payload"]["count"], 1);
    let r = alice.query("DLQ_PURGE", json!({"all": true})).await;
    assert_eq!(r["payload"]["count"], 2);
    assert_eq!(
        alice.query("DLQ_LIST", json!({})).await["payload"]["total"],
        0
    );
    let m = alice.query("METRICS", json!({})).await;
    assert_eq!(m["payload"]["daemon"]["dlq"]["counters"]["added"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_fires_once_with_hysteresis() {
    let mut cfg = dlq_config();
    cfg.dlq.alert_threshold = 2;
    cfg.dlq.alert_clear_ratio = 0.5;
    let d = TestDaemon::start(cfg).await;
    let mut ops = Client::hello(&d.socket, "Operator", json!({"entityType":"user"})).await;
    let mut alice = d.client("Alice").await;
    alice.send_to("N1", "x").await;
    alice.send_to("N2", "x").await;
    let alert = ops.recv_ack().await;
    assert_eq!(alert["from"], "_system");
    assert_eq!(alert["payload"]["data"]["_dlqAlert"], true);
    assert!(alert["payload"]["body"]
        .as_str()
        .unwrap()
        .contains("DEAD LETTER ALERT"));
    alice.send_to("N3", "x").await;
    ops.expect_silence(Duration::from_millis(400)).await;
    // Below threshold × clear ratio the alert re-arms, and crossing again alerts again.
    let r = alice.query("DLQ_PURGE", json!({"all": true})).await;
    assert_eq!(r["payload"]["count"], 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.send_to("N4", "x").await;
    alice.send_to("N5", "x").await;
    assert_eq!(ops.recv_ack().await["payload"]["data"]["_dlqAlert"], true);
    let h = alice.query("HEALTH", json!({})).await;
    let issues = h["payload"]["issues"].to_string();
    assert!(issues.contains("dead letter queue"), "{issues}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_dlq_says_so() {
    let mut cfg = dlq_config();
    cfg.dlq.enabled = false;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    assert_eq!(
        alice.query("DLQ_STATS", json!({})).await["payload"]["enabled"],
        false
    );
    let r = alice.query("DLQ_LIST", json!({})).await;
    assert!(r["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_gone_for_good_leave_connection_lost_letters() {
    let d = TestDaemon::start(dlq_config()).await;
    let mut alice = d.client("Alice").await;
    drop(d.client("Bob").await);
    for _ in 0..100 {
        let lc = alice.query("LIST_CONNECTED_AGENTS", json!({})).await;
        if lc["payload"]["agents"].as_array().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alice.send_to("Bob", "queued 1").await;
    alice.send_to("Bob", "queued 2").await;
    let r = alice.query("REMOVE_AGENT", json!({"name":"Bob"})).await;
    assert_eq!(r["payload"]["removed"], true);
    let letters = letters_until(&mut alice, json!({"to":"Bob"}), |l| l.len() == 2).await;
    assert!(
        letters.iter().all(|l| l["reason"] == "connection_lost"),
        "{letters:?}"
    );

    let mut tool = Client::hello(&d.socket, "cli-77", json!({"_isSystemComponent": true})).await;
    alice.send_to("cli-77", "for the tool").await;
    tool.expect("DELIVER").await; // never acknowledged
    drop(tool);
    let letters = letters_until(&mut alice, json!({"to":"cli-77"}), |l| l.len() == 1).await;
    assert_eq!(letters[0]["reason"], "connection_lost");
    assert_eq!(letters[0]["body"], "for the tool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selections_honour_a_limit() {
    let d = TestDaemon::start(dlq_config()).await;
    let mut alice = d.client("Alice").await;
    for who in ["L1", "L2", "L3"] {
        alice.send_to(who, "x").await;
        alice.expect("NACK").await;
        // Distinct dead-letter times: letters of the same millisecond have no defined order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    letters_until(&mut alice, json!({}), |l| l.len() == 3).await;
    let r = alice
        .query("DLQ_PURGE", json!({"reason":"target_not_found","limit":2}))
        .await;
    assert_eq!(r["payload"]["count"], 2, "{r}");
    let left = letters_until(&mut alice, json!({}), |l| l.len() == 1).await;
    assert_eq!(left[0]["to"], "L3", "the oldest letters are selected first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entry_limit_evicts_and_counts() {
    let mut cfg = dlq_config();
    cfg.dlq.max_entries = 2;
    cfg.dlq.cleanup_interval_ms = 1000;
    let d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    for who in ["E1", "E2", "E3"] {
        alice.send_to(who, "x").await;
        alice.expect("NACK").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The next cleanup (every second) evicts the oldest unacknowledged letter and counts it.
    let left = letters_until(&mut alice, json!({}), |l| l.len() == 2).await;
    let mut targets: Vec<&str> = left.iter().map(|l| l["to"].as_str().unwrap()).collect();
    targets.sort();
    assert_eq!(targets, ["E2", "E3"]);
    let stats = alice.query("DLQ_STATS", json!({})).await;
    assert_eq!(
        stats["payload"]["counters"]["evictedUnacknowledged"], 1,
        "{stats}"
    );
}
