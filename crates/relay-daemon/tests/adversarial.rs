//! Hostile and broken input: every case gets a precise error, and the daemon keeps serving
//! everyone else afterwards.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Reads frames until EOF; returns them.
async fn drain(
    framed: &mut tokio_util::codec::Framed<tokio::net::UnixStream, relay_protocol::FrameCodec>,
) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(body))) = tokio::time::timeout(Duration::from_secs(3), framed.next()).await
    {
        out.push(serde_json::from_slice(&body).expect("daemon frames are JSON"));
    }
    out
}

async fn assert_still_serving(d: &TestDaemon) {
    let mut a = d.client(&format!("ok-a-{}", fastrand::u32(..))).await;
    let b_name = format!("ok-b-{}", fastrand::u32(..));
    let mut b = d.client(&b_name).await;
    a.send_to(&b_name, "still here").await;
    assert_eq!(b.recv_ack().await["payload"]["body"], "still here");
}

fn assert_fatal_then_bye(frames: &[Value], code: &str, needle: &str) {
    assert!(frames.len() >= 2, "expected ERROR then BYE, got {frames:?}");
    assert_eq!(frames[0]["type"], "ERROR", "{frames:?}");
    assert_eq!(frames[0]["payload"]["code"], code, "{frames:?}");
    assert_eq!(frames[0]["payload"]["fatal"], true);
    let msg = frames[0]["payload"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message {msg:?} should mention {needle:?}"
    );
    assert_eq!(frames[1]["type"], "BYE", "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_prefix() {
    let d = TestDaemon::start(fast_config()).await;
    let mut c = d.client("Big").await;
    c.framed
        .get_mut()
        .write_all(&(2u32 * 1024 * 1024).to_be_bytes())
        .await
        .unwrap();
    let frames = drain(&mut c.framed).await;
    let frames: Vec<Value> = frames.into_iter().filter(|f| f["type"] != "PING").collect();
    assert_fatal_then_bye(&frames, "BAD_REQUEST", "exceeds");
    assert_still_serving(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_and_non_objects_are_fatal() {
    let d = TestDaemon::start(fast_config()).await;
    for (body, needle) in [
        (&b"{not json"[..], "not valid JSON"),
        (&b"[1,2,3]"[..], "an array"),
        (&b"\"just a string\""[..], "a string"),
        (&[0xffu8, 0xfe, 0x00][..], "UTF-8"),
    ] {
        let mut raw = Client::raw(&d.socket).await;
        send_raw(&mut raw, body).await;
        assert_fatal_then_bye(&drain(&mut raw).await, "BAD_REQUEST", needle);
        // The same after a completed handshake.
        let mut c = d.client("Json").await;
        send_raw(&mut c.framed, body).await;
        let frames: Vec<Value> = drain(&mut c.framed)
            .await
            .into_iter()
            .filter(|f| f["type"] != "PING")
            .collect();
        assert_fatal_then_bye(&frames, "BAD_REQUEST", needle);
    }
    assert_still_serving(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_envelopes_are_not_fatal() {
    let d = TestDaemon::start(fast_config()).await;
    let mut c = d.client("Sloppy").await;
    send_json(
        &mut c.framed,
        &json!({"v":1,"type":"SEND","ts":1,"payload":{}}),
    )
    .await;
    let e = c.expect("ERROR").await;
    assert_eq!(e["payload"]["fatal"], false);
    assert!(e["payload"]["message"].as_str().unwrap().contains("id"));
    c.send(
        json!({"v":1,"type":"SEND","id":"k","ts":1,"to":"x","payload":{"kind":"shout","body":"x"}}),
    )
    .await;
    let e = c.expect("ERROR").await;
    assert!(e["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid SEND payload"));
    assert_eq!(e["payload"]["replyTo"], "k");
    c.send(json!({"v":1,"type":"FROBNICATE","id":"f","ts":1,"payload":{}}))
        .await;
    let e = c.expect("ERROR").await;
    assert_eq!(e["payload"]["message"], "unsupported type FROBNICATE");
    assert_eq!(e["payload"]["fatal"], false);
    c.send(json!({"v":1,"type":"RESUME","id":"r","ts":1,"payload":{}}))
        .await;
    assert!(c.expect("ERROR").await["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("unsupported type RESUME"));
    c.send(json!({"v":1,"type":"DELIVER","id":"d","ts":1,"payload":{}}))
        .await;
    assert!(c.expect("ERROR").await["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("sent by the daemon"));
    c.send(json!({"v":1,"type":"HELLO","id":"h2","ts":1,"payload":{"agent":"Sloppy"}}))
        .await;
    assert!(c.expect("ERROR").await["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("Unexpected HELLO"));
    let long_id = "i".repeat(200);
    c.send(json!({"v":1,"type":"STATUS","id":long_id,"ts":1,"payload":{}}))
        .await;
    assert!(c.expect("ERROR").await["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("1-128"));
    // Still usable.
    let s = c.query("STATUS", json!({})).await;
    assert_eq!(s["type"], "STATUS_RESPONSE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_and_abrupt_disconnects() {
    let d = TestDaemon::start(fast_config()).await;
    for _ in 0..20 {
        let mut s = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
        s.write_all(&100u32.to_be_bytes()).await.unwrap();
        s.write_all(b"{\"v\":1,").await.unwrap();
        drop(s);
    }
    let mut c = d.client("Half").await;
    c.framed
        .get_mut()
        .write_all(&50u32.to_be_bytes())
        .await
        .unwrap();
    c.framed.get_mut().write_all(b"{\"v\"").await.unwrap();
    c.framed.get_mut().shutdown().await.unwrap();
    let _ = drain(&mut c.framed).await;
    assert_still_serving(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_sending_hello_times_out() {
    let d = TestDaemon::start(fast_config()).await; // handshake_timeout_ms = 500
    let mut raw = Client::raw(&d.socket).await;
    let started = std::time::Instant::now();
    let frames = drain(&mut raw).await;
    assert_fatal_then_bye(&frames, "TIMEOUT", "HELLO");
    assert!(started.elapsed() >= Duration::from_millis(450));

    // Something other than HELLO first: told, not dropped, then HELLO still works.
    let mut raw = Client::raw(&d.socket).await;
    send_json(&mut raw, &json!({"v":1,"type":"SEND","id":"early","ts":1,"to":"x","payload":{"kind":"message","body":"x"}})).await;
    let body = raw.next().await.unwrap().unwrap();
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["payload"]["code"], "BAD_REQUEST");
    assert!(e["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("first frame must be HELLO"));
    send_json(
        &mut raw,
        &json!({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"agent":"Late","capabilities":{}}}),
    )
    .await;
    let body = raw.next().await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["type"],
        "WELCOME"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_with_the_rule() {
    let d = TestDaemon::start(fast_config()).await;
    for (name, needle) in [
        ("", "empty"),
        ("_consensus", "reserved"),
        ("has space", "only A-Z"),
        ("proj:agent", "only A-Z"),
        (&"n".repeat(65)[..], "limit is 64"),
    ] {
        let mut raw = Client::raw(&d.socket).await;
        send_json(&mut raw, &json!({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"agent":name,"capabilities":{}}})).await;
        assert_fatal_then_bye(&drain(&mut raw).await, "BAD_REQUEST", needle);
    }
    let mut raw = Client::raw(&d.socket).await;
    send_json(
        &mut raw,
        &json!({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"capabilities":{}}}),
    )
    .await;
    assert_fatal_then_bye(&drain(&mut raw).await, "BAD_REQUEST", "agent");
    assert_still_serving(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_is_bounded_and_survivable() {
    let mut cfg = fast_config();
    cfg.limits.max_connections = 64;
    let d = TestDaemon::start(cfg).await;
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(Client::raw(&d.socket).await);
    }
    // Over the limit: told why, then closed.
    let mut extra = Client::raw(&d.socket).await;
    let frames = drain(&mut extra).await;
    assert_fatal_then_bye(&frames, "INTERNAL", "too many connections");
    drop(held);
    // The handshake-less connections above are closed; slots free up.
    let mut ok = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut raw = Client::raw(&d.socket).await;
        send_json(&mut raw, &json!({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"agent":"After","capabilities":{}}})).await;
        if let Ok(Some(Ok(body))) = tokio::time::timeout(Duration::from_secs(1), raw.next()).await {
            if serde_json::from_slice::<Value>(&body).unwrap()["type"] == "WELCOME" {
                ok = true;
                break;
            }
        }
    }
    assert!(ok, "connections are accepted again once the flood is gone");
    // Many short-lived registered clients.
    for i in 0..200 {
        let c = d.client(&format!("burst{i}")).await;
        drop(c);
    }
    assert_still_serving(&d).await;
}
