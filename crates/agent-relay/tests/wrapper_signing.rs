//! Signing with wrapped and spawned agents: with Ed25519 signatures enforced, agents started by
//! `agent-relay run` and by the spawn manager get a key without any manual step and sign what
//! they send (messages and channel posts); SPAWN and RELEASE must be signed.

mod common;
#[path = "wrapper/harness.rs"]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use harness::{eventually, Project, Wrapped};
use relay_client::{Client, ClientConfig, ClientSigning, Event};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

const ENFORCED: &[&str] = &[
    "-c",
    "signing.enabled=true",
    "-c",
    "signing.algorithm=ed25519",
    "-c",
    "signing.require_signatures=enforce",
];

fn args_with(extra: &[&str], tail: &[&str]) -> Vec<String> {
    extra
        .iter()
        .chain(tail.iter())
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_and_spawned_agents_sign_without_manual_steps() {
    let project = Project::start(ENFORCED);
    let keys = project.path().join(".agent-relay/keys");

    // Lead is an SDK agent with its own key.
    let args = args_with(
        ENFORCED,
        &["keys", "create", "Lead", "--algorithm", "ed25519"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::ok(project.path(), &args);
    // A running daemon reads new key files within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut config = ClientConfig::new(project.socket(), "Lead");
    config.signing = Some(ClientSigning::KeyFile {
        keys_dir: keys.clone(),
    });
    let (lead, mut lead_events) = Client::connect(config).await.expect("Lead connects");
    let keystore = relay_signing::Keystore::new(&keys);

    // The CLI's own connection has no key: its SPAWN is refused, with the reason.
    let out = common::agent_relay(
        project.path(),
        &args_with(ENFORCED, &["spawn", "Nobody", "true"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = common::text(&out.stderr);
    assert!(
        err.contains("FORBIDDEN") && err.contains("unsigned"),
        "{err}"
    );

    // A signed SPAWN: the spawned agent gets a key (0600) and signs what it prints.
    let control = project.file("Worker.control");
    let record = project.file("Worker.record");
    let script = project.file("worker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport FAKE_AGENT_RECORD={}\nexport FAKE_AGENT_CONTROL={}\nexec {}\n",
            record.display(),
            control.display(),
            harness::fake_agent().display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spawned = lead
        .spawn(relay_protocol::SpawnPayload {
            name: "Worker".into(),
            cli: script.display().to_string(),
            task: "report when ready".into(),
            ..Default::default()
        })
        .await
        .expect("spawn answer");
    assert!(spawned.success, "{spawned:?}");
    let key_file = keys.join("Worker.key.json");
    let mode = std::fs::metadata(&key_file)
        .expect("Worker's key was provisioned")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    eventually(T, "the task to reach Worker", || {
        harness::submits(&record)
            .into_iter()
            .find(|s| s.contains("report when ready"))
    })
    .await;
    harness::control(&control, json!({"print": "->relay:Lead worker reporting"}));
    let from_worker = eventually(T, "Worker's signed message", || {
        match lead_events.try_recv() {
            Ok(Event::Message(m)) if m.from == "Worker" => Some(m),
            _ => None,
        }
    })
    .await;
    assert!(
        from_worker.is_signed(),
        "Worker's message carries a signature"
    );
    Client::verify(&from_worker, &keystore).expect("Worker's signature verifies at Lead");

    // `agent-relay run`: Alice has no key; one is created and her messages are signed.
    let alice = Wrapped::start_with(&project, "Alice", &[], ENFORCED).await;
    assert!(
        keys.join("Alice.key.json").exists(),
        "Alice's key was provisioned"
    );
    alice.send(json!({"print": "->relay:Lead alice here"}));
    let from_alice = eventually(T, "Alice's signed message", || {
        match lead_events.try_recv() {
            Ok(Event::Message(m)) if m.from == "Alice" => Some(m),
            _ => None,
        }
    })
    .await;
    Client::verify(&from_alice, &keystore).expect("Alice's signature verifies at Lead");
    // Her channel posts are signed too (everyone is in #general).
    alice.send(json!({"print": "->relay:#general alice to the team"}));
    let post = eventually(T, "Alice's signed channel post", || {
        match lead_events.try_recv() {
            Ok(Event::ChannelMessage {
                from,
                payload,
                signed,
                ..
            }) if from == "Alice" => Some((payload, signed)),
            _ => None,
        }
    })
    .await;
    assert_eq!(post.0.body, "alice to the team");
    let signed = post.1.expect("Alice's channel post carries a signature");
    Client::verify_signed(&signed, &keystore).expect("Alice's post verifies at Lead");

    // RELEASE signed by Lead works.
    let released = lead
        .release(relay_protocol::ReleasePayload {
            name: "Worker".into(),
            reason: None,
        })
        .await
        .expect("release answer");
    assert!(released.success, "{released:?}");
}
