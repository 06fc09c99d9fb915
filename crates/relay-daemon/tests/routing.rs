//! Routing over a real socket: direct, broadcast, topics, @users, channels, shadows, queries.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_message_preserves_payload_and_sequences_per_stream() {
    let d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    assert_eq!(
        alice.welcome["payload"]["server"]["max_frame_bytes"],
        1048576
    );
    assert_eq!(alice.welcome["payload"]["server"]["heartbeat_ms"], 5000);
    assert!(!alice.resume_token().is_empty());

    alice
        .send(json!({"v":1,"type":"SEND","id":"m1","ts":1,"from":"Mallory","to":"Bob","topic":"chat",
            "payload":{"kind":"action","body":"hello","data":{"k":1,"deep":{"x":[1,2]}},"thread":"t-1"},
            "payload_meta":{"importance":80,"replyTo":"r1","custom_meta":"keep"}}))
        .await;
    let m = bob.recv_ack().await;
    assert_eq!(
        m["from"], "Alice",
        "from is set by the daemon, not the client"
    );
    assert_eq!(m["to"], "Bob");
    assert_eq!(m["topic"], "chat");
    assert_eq!(m["payload"]["kind"], "action");
    assert_eq!(m["payload"]["data"]["deep"]["x"][1], 2);
    assert_eq!(m["payload"]["thread"], "t-1");
    assert_eq!(m["payload_meta"]["custom_meta"], "keep");
    assert_eq!(m["payload_meta"]["replyTo"], "r1");
    assert_eq!(m["delivery"]["seq"], 1);
    assert_eq!(m["delivery"]["session_id"], bob.session_id());
    assert!(
        m["delivery"].get("originalTo").is_none(),
        "direct messages carry no originalTo"
    );
    assert_ne!(m["id"], "m1", "each DELIVER gets its own id");
    assert!(!serde_json::to_string(&m).unwrap().contains("null"));

    alice.send_to("Bob", "second").await;
    let m2 = bob.recv_ack().await;
    assert_eq!(
        m2["delivery"]["seq"], 1,
        "stream default:Alice is separate from chat:Alice"
    );
    alice.send_to("Bob", "third").await;
    assert_eq!(bob.recv_ack().await["delivery"]["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_topics_and_users() {
    let d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    let mut carol = d.client("Carol").await;
    let mut human = Client::hello(&d.socket, "Hugo", json!({"entityType":"user"})).await;

    alice.send_to("*", "all hands").await;
    for c in [&mut bob, &mut carol, &mut human] {
        let m = c.recv_ack().await;
        assert_eq!(m["payload"]["body"], "all hands");
        assert_eq!(m["delivery"]["originalTo"], "*");
    }
    alice.expect_silence(Duration::from_millis(200)).await;

    carol
        .send(json!({"v":1,"type":"SUBSCRIBE","id":"s1","ts":1,"topic":"deploys","payload":{}}))
        .await;
    carol.query("STATUS", json!({})).await; // the subscription is processed before this answer
    alice.send(json!({"v":1,"type":"SEND","id":"t1","ts":1,"to":"*","topic":"deploys","payload":{"kind":"message","body":"v2 shipped"}})).await;
    let m = carol.recv_ack().await;
    assert_eq!(m["topic"], "deploys");
    bob.expect_silence(Duration::from_millis(200)).await;
    human.expect_silence(Duration::from_millis(50)).await;

    alice.send_to("@users", "for humans").await;
    let m = human.recv_ack().await;
    assert_eq!(m["delivery"]["originalTo"], "@users");
    bob.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_notify_deliver_persist_and_refuse_non_members() {
    let mut d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    bob.send(json!({"v":1,"type":"CHANNEL_JOIN","id":"j1","ts":1,"payload":{"channel":"#eng","displayName":"Bob"}})).await;
    bob.query("STATUS", json!({})).await;
    alice
        .send(json!({"v":1,"type":"CHANNEL_JOIN","id":"j2","ts":1,"payload":{"channel":"#eng"}}))
        .await;
    let note = bob.expect("CHANNEL_JOIN").await;
    assert_eq!(note["from"], "Alice");

    alice.send(json!({"v":1,"type":"CHANNEL_MESSAGE","id":"c1","ts":1,"payload":{"channel":"#eng","body":"hi team","thread":"t9","mentions":["Bob"]}})).await;
    let m = bob.expect("CHANNEL_MESSAGE").await;
    assert_eq!(m["from"], "Alice");
    assert_eq!(m["payload"]["body"], "hi team");
    assert_eq!(m["payload"]["mentions"][0], "Bob");

    // A SEND to #eng is a channel message too.
    alice.send_to("#eng", "via send").await;
    assert_eq!(
        bob.expect("CHANNEL_MESSAGE").await["payload"]["body"],
        "via send"
    );

    // Everyone is in #general.
    alice.send(json!({"v":1,"type":"CHANNEL_MESSAGE","id":"g1","ts":1,"payload":{"channel":"#general","body":"hello general"}})).await;
    assert_eq!(
        bob.expect("CHANNEL_MESSAGE").await["payload"]["channel"],
        "#general"
    );

    // Non-members are told, not ignored.
    let mut carol = d.client("Carol").await;
    carol.send(json!({"v":1,"type":"CHANNEL_MESSAGE","id":"x1","ts":1,"payload":{"channel":"#eng","body":"let me in"}})).await;
    let n = carol.expect("NACK").await;
    assert_eq!(n["payload"]["ack_id"], "x1");
    assert_eq!(n["payload"]["code"], "FORBIDDEN");

    // History of the channel for someone who was offline.
    let inbox = carol
        .query("INBOX", json!({"agent":"Carol","channel":"#eng"}))
        .await;
    let bodies: Vec<&str> = inbox["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert!(
        bodies.contains(&"hi team") && bodies.contains(&"via send"),
        "{bodies:?}"
    );

    // Memberships survive a restart.
    drop((alice, bob, carol));
    d.restart().await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send(json!({"v":1,"type":"CHANNEL_MESSAGE","id":"c2","ts":1,"payload":{"channel":"#eng","body":"after restart"}})).await;
    assert_eq!(
        bob.expect("CHANNEL_MESSAGE").await["payload"]["body"],
        "after restart"
    );

    bob.send(json!({"v":1,"type":"CHANNEL_LEAVE","id":"l1","ts":1,"payload":{"channel":"#eng"}}))
        .await;
    assert_eq!(alice.expect("CHANNEL_LEAVE").await["from"], "Bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadows_receive_copies() {
    let d = TestDaemon::start(fast_config()).await;
    let mut lead = d.client("Lead").await;
    let mut dev = d.client("Dev").await;
    let mut shadow = d.client("Shadow").await;
    shadow
        .send(
            json!({"v":1,"type":"SHADOW_BIND","id":"b1","ts":1,"payload":{"primaryAgent":"Lead"}}),
        )
        .await;
    shadow.query("STATUS", json!({})).await;
    dev.send_to("Lead", "to lead").await;
    lead.recv_ack().await;
    let copy = shadow.recv_ack().await;
    assert_eq!(copy["payload"]["data"]["_shadowCopy"], true);
    assert_eq!(copy["payload"]["data"]["_shadowOf"], "Lead");
    assert_eq!(copy["payload"]["data"]["_shadowDirection"], "incoming");
    assert_eq!(copy["delivery"]["originalTo"], "Lead");
    lead.send_to("Dev", "from lead").await;
    dev.recv_ack().await;
    assert_eq!(
        shadow.recv_ack().await["payload"]["data"]["_shadowDirection"],
        "outgoing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_with_the_request_id() {
    let d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send(json!({"v":1,"type":"SEND","id":"q1","ts":1,"to":"Bob","payload":{"kind":"message","body":"find me","thread":"th"}})).await;
    bob.recv_ack().await;

    let s = alice.query("STATUS", json!({})).await;
    assert_eq!(s["type"], "STATUS_RESPONSE");
    assert_eq!(s["payload"]["storage"]["driver"], "sqlite");
    assert_eq!(s["payload"]["storage"]["persistent"], true);
    assert_eq!(s["payload"]["agentCount"], 2);

    let m = alice
        .query("MESSAGES_QUERY", json!({"thread":"th","limit":5}))
        .await;
    assert_eq!(m["type"], "MESSAGES_RESPONSE");
    let msgs = m["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["from"], "Alice");
    assert_eq!(msgs[0]["to"], "Bob");
    let id = msgs[0]["id"].as_str().unwrap().to_string();
    // The ACK is committed shortly after it is processed.
    let mut status = String::new();
    for _ in 0..50 {
        let m = alice.query("MESSAGES_QUERY", json!({"thread":"th"})).await;
        status = m["payload"]["messages"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == "acked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "acked");

    let g = alice
        .query(
            "MESSAGE_GET",
            json!({"id": relay_protocol::ids::short_id(&id)}),
        )
        .await;
    assert_eq!(g["payload"]["message"]["body"], "find me");
    let g = alice.query("MESSAGE_GET", json!({"id": "zzzz"})).await;
    assert!(g["payload"]["error"]
        .as_str()
        .unwrap()
        .contains("no message"));

    let inbox = bob.query("INBOX", json!({"agent":"Bob"})).await;
    assert_eq!(inbox["payload"]["messages"][0]["body"], "find me");

    let la = alice.query("LIST_AGENTS", json!({})).await;
    let names: Vec<&str> = la["payload"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice", "Bob"]);
    drop(bob);
    let mut connected = Vec::new();
    for _ in 0..50 {
        let lc = alice.query("LIST_CONNECTED_AGENTS", json!({})).await;
        connected = lc["payload"]["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect();
        if connected.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connected, ["Alice"]);
    let r = alice.query("REMOVE_AGENT", json!({"name":"Bob"})).await;
    assert_eq!(r["payload"]["removed"], true);
    let r = alice.query("REMOVE_AGENT", json!({"name":"Alice"})).await;
    assert_eq!(
        r["payload"]["success"], false,
        "a connected agent is not removed"
    );

    let h = alice.query("HEALTH", json!({})).await;
    assert!(h["payload"]["healthScore"].as_u64().unwrap() <= 100);
    let mt = alice.query("METRICS", json!({})).await;
    assert!(mt["payload"]["system"]["heapUsed"].as_u64().unwrap() > 0);
    assert!(mt["payload"]["daemon"]["delivered"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_routed_messages_and_logs() {
    let d = TestDaemon::start(fast_config()).await;
    let mut watcher = d.client("Watcher").await;
    watcher
        .send(json!({"v":1,"type":"WATCH","id":"w","ts":1,"payload":{"logs":true}}))
        .await;
    watcher.query("STATUS", json!({})).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;
    alice.send_to("Bob", "watched").await;
    bob.recv_ack().await;
    let e = watcher.expect("WATCH_EVENT").await;
    assert_eq!(e["payload"]["event"], "message");
    assert_eq!(e["payload"]["body"], "watched");
    alice.send(json!({"v":1,"type":"LOG","id":"l","ts":1,"payload":{"data":"compiling…\n","timestamp":5}})).await;
    let e = watcher.expect("WATCH_EVENT").await;
    assert_eq!(e["payload"]["event"], "log");
    assert_eq!(e["payload"]["agent"], "Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_components_are_tools_not_agents() {
    let d = TestDaemon::start(fast_config()).await;
    let mut alice = d.client("Alice").await;
    let mut tool = Client::hello(&d.socket, "cli-4242", json!({"_isSystemComponent": true})).await;
    // Not listed, not counted, not a broadcast recipient.
    let la = alice.query("LIST_AGENTS", json!({})).await;
    let names: Vec<&str> = la["payload"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice"]);
    let lc = alice.query("LIST_CONNECTED_AGENTS", json!({})).await;
    assert_eq!(lc["payload"]["agents"].as_array().unwrap().len(), 1);
    assert_eq!(
        alice.query("STATUS", json!({})).await["payload"]["agentCount"],
        1
    );
    alice.send_to("*", "everyone").await;
    tool.expect_silence(Duration::from_millis(200)).await;
    // It can still talk and be answered directly while connected.
    tool.send_to("Alice", "from the tool").await;
    assert_eq!(alice.recv_ack().await["from"], "cli-4242");
    alice.send_to("cli-4242", "reply").await;
    assert_eq!(tool.recv_ack().await["payload"]["body"], "reply");
    // Once gone it is not remembered: messages to it are refused, not queued forever.
    drop(tool);
    let mut refused = false;
    for _ in 0..50 {
        alice.send_to("cli-4242", "anyone?").await;
        if let Some(v) = alice.next_within(Duration::from_millis(100)).await {
            if v["type"] == "NACK" {
                assert!(v["payload"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown recipient"));
                refused = true;
                break;
            }
        }
    }
    assert!(refused);
}
