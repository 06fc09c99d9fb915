//! Consensus over a real socket: commands to `_consensus`, structured PROPOSAL_CREATE/VOTE,
//! queries, and proposals that survive a daemon restart (resolved by votes or by expiry).

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The next message from `_consensus` whose body contains `needle`.
async fn from_consensus(c: &mut Client, needle: &str) -> Value {
    loop {
        let m = c.recv_ack().await;
        if m["from"] == "_consensus"
            && m["payload"]["body"]
                .as_str()
                .unwrap_or_default()
                .contains(needle)
        {
            return m;
        }
    }
}

fn prop_id(m: &Value) -> String {
    m["payload"]["data"]["_consensus"]["proposalId"]
        .as_str()
        .expect("proposal id")
        .to_string()
}

async fn propose(c: &mut Client, body: &str) {
    c.send(json!({"v":1,"type":"SEND","id":relay_protocol::ids::new_id(),"ts":1,"to":"_consensus","payload":{"kind":"action","body":body}})).await;
}

async fn vote(c: &mut Client, id: &str, value: &str) {
    let body = format!("VOTE {id} {value}");
    propose(c, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_survive_a_restart_and_still_resolve_or_expire() {
    let mut d = TestDaemon::start(fast_config()).await;
    let mut pat = d.client("Pat").await;
    let mut quinn = d.client("Quinn").await;
    let mut rita = d.client("Rita").await;
    propose(&mut pat, "propose: Keep going\ntype: unanimous\nparticipants: Quinn, Rita\ndescription: after restart\ntimeout: 1h").await;
    let p = from_consensus(&mut quinn, "Keep going").await;
    let id = prop_id(&p);
    from_consensus(&mut rita, "Keep going").await;
    propose(&mut pat, "PROPOSE: Runs out\nTYPE: majority\nPARTICIPANTS: Quinn, Rita\nDESCRIPTION: nobody votes\nTIMEOUT: 1500").await;
    from_consensus(&mut quinn, "Runs out").await;
    vote(&mut quinn, &id, "approve").await;
    from_consensus(&mut quinn, "ACCEPTED").await;
    quinn.query("STATUS", json!({})).await;
    drop((pat, quinn, rita));

    d.restart().await;
    let mut pat = d.client("Pat").await;
    let mut quinn = d.client("Quinn").await;
    let mut rita = d.client("Rita").await;
    let listed = pat
        .query("CONSENSUS_LIST", json!({"status":"pending"}))
        .await;
    assert_eq!(
        listed["payload"]["proposals"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    vote(&mut rita, &id, "approve").await;
    for c in [&mut pat, &mut quinn, &mut rita] {
        let r = from_consensus(c, "CONSENSUS RESULT: APPROVED").await;
        assert_eq!(prop_id(&r), id);
    }
    // The other one expires on the timer re-armed after the restart.
    for c in [&mut pat, &mut quinn, &mut rita] {
        let r = from_consensus(c, "NO_CONSENSUS").await;
        assert!(r["payload"]["body"].as_str().unwrap().contains("Runs out"));
    }
    let got = pat.query("CONSENSUS_GET", json!({"id": id})).await;
    assert_eq!(got["payload"]["proposal"]["status"], "approved", "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_commands_are_answered_and_not_rate_limited() {
    let mut cfg = fast_config();
    cfg.limits.rate_limit_per_sec = 1.0;
    cfg.limits.rate_limit_burst = 1.0;
    let d = TestDaemon::start(cfg).await;
    let mut pat = d.client("Pat").await;
    let mut quinn = d.client("Quinn").await;
    let r = pat
        .query(
            "PROPOSAL_CREATE",
            json!({"title":"Structured","participants":["Quinn"],"type":"majority"}),
        )
        .await;
    assert_eq!(r["type"], "CONSENSUS_RESPONSE", "{r}");
    assert_eq!(r["payload"]["ok"], true);
    let id = r["payload"]["proposalId"].as_str().unwrap().to_string();
    let bad = pat
        .query("PROPOSAL_CREATE", json!({"title":"","participants":[]}))
        .await;
    assert_eq!(bad["payload"]["ok"], false, "{bad}");
    let wrong = pat
        .query("VOTE", json!({"proposalId": id, "value": "approve"}))
        .await;
    assert_eq!(
        wrong["payload"]["ok"], false,
        "the proposer is not a participant: {wrong}"
    );
    let v = quinn
        .query("VOTE", json!({"proposalId": id, "value": "approve"}))
        .await;
    assert_eq!(v["payload"]["ok"], true, "{v}");
    assert_eq!(v["payload"]["proposal"]["status"], "approved");
    // Many commands in a row: consensus traffic is not rate-limited, and makes no registry entry.
    for i in 0..5 {
        propose(
            &mut pat,
            &format!("PROPOSE: p{i}\nTYPE: majority\nPARTICIPANTS: Quinn\nDESCRIPTION: x"),
        )
        .await;
    }
    for i in 0..5 {
        from_consensus(&mut quinn, &format!("p{i}")).await;
    }
    let agents = pat.query("LIST_AGENTS", json!({})).await;
    assert!(!agents.to_string().contains("_consensus"));
    let stats = pat.query("CONSENSUS_STATS", json!({})).await;
    assert!(stats["payload"]["stats"].is_object(), "{stats}");
    // Malformed text gets an error reply that says what is wrong.
    propose(
        &mut pat,
        "PROPOSE: x\nTYPE: majoritee\nPARTICIPANTS: Quinn\nDESCRIPTION: y",
    )
    .await;
    let e = from_consensus(&mut pat, "majoritee").await;
    assert!(
        e["payload"]["body"].as_str().unwrap().contains("majority"),
        "{e}"
    );
    quinn.expect_silence(Duration::from_millis(100)).await;
}
