//! `agent-relay keys`: the key files it writes, its listings and exports, help texts and usage
//! errors; and signing end to end against a daemon that requires signatures.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_client::{Client, ClientConfig, Event};
use relay_signing::Keystore;
use serde_json::Value;

const SUBCOMMANDS: &[&str] = &["create", "rotate", "list", "export", "revoke"];

fn keys_dir(project: &Path) -> PathBuf {
    project.join(".agent-relay").join("keys")
}

/// Runs a command that must fail at run time (exit 1, nothing on stdout); returns stderr.
fn fails(project: &Path, args: &[&str]) -> String {
    let out = agent_relay(project, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    stderr
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn keys_and_every_subcommand_have_help_with_examples() {
    let project = empty_project();
    assert_group_help(project.path(), "keys", SUBCOMMANDS);
    let create = text(&agent_relay(project.path(), &["keys", "create", "--help"]).stdout);
    for needle in ["--algorithm", "--expires-in", "hmac-sha256", "ed25519"] {
        assert!(create.contains(needle), "create has no {needle}:\n{create}");
    }
    let rotate = text(&agent_relay(project.path(), &["keys", "rotate", "--help"]).stdout);
    assert!(rotate.contains("--overlap"), "{rotate}");
    for bench in ["latency", "throughput", "signing"] {
        let help = text(&agent_relay(project.path(), &["bench", bench, "--help"]).stdout);
        assert!(
            help.contains("--sign"),
            "bench {bench} has no --sign:\n{help}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let project = empty_project();
    let p = project.path();
    usage_error(p, &["keys"], "Usage");
    usage_error(p, &["keys", "frobnicate"], "frobnicate");
    usage_error(p, &["keys", "create"], "<NAME>");
    usage_error(p, &["keys", "create", ".hidden"], "starts with '.'");
    usage_error(p, &["keys", "create", "a/b"], "'/'");
    usage_error(p, &["keys", "create", "_system"], "_");
    usage_error(p, &["keys", "create", &"x".repeat(65)], "64");
    usage_error(
        p,
        &["keys", "create", "A", "--algorithm", "rsa"],
        "hmac-sha256",
    );
    usage_error(
        p,
        &["keys", "create", "A", "--expires-in", "0d"],
        "longer than zero",
    );
    usage_error(
        p,
        &["keys", "create", "A", "--expires-in", "soon"],
        "not a duration",
    );
    usage_error(
        p,
        &["keys", "rotate", "A", "--overlap", "30"],
        "not a duration",
    );
    usage_error(p, &["keys", "revoke", "A"], "<KEY_ID>");
    usage_error(p, &["keys", "revoke", "A", "xyz"], "16 hex digits");
    usage_error(p, &["keys", "export"], "<NAME>");
    usage_error(p, &["keys", "list", "Alice"], "Alice");
    usage_error(p, &["bench", "latency", "--sign", "rsa"], "ed25519");
    assert!(!keys_dir(p).exists(), "usage errors write nothing");
}

#[test]
fn create_list_export_rotate_revoke_on_an_empty_project() {
    let dir = empty_project();
    let p = dir.path();
    let keys = keys_dir(p);

    assert_eq!(
        ok(p, &["keys", "list"]),
        format!(
            "no keys in {}; create one with 'agent-relay keys create NAME'\n",
            keys.display()
        )
    );
    let empty = json_of(p, &["keys", "list", "--json"]);
    assert_eq!(empty["keys"], Value::Array(vec![]), "{empty}");

    // Create: the configured algorithm (hmac-sha256 unless set) or --algorithm.
    let out = ok(p, &["keys", "create", "Alice"]);
    assert!(out.starts_with("created hmac-sha256 key "), "{out}");
    assert!(out.contains("for Alice"), "{out}");
    let bob = json_of(
        p,
        &[
            "keys",
            "create",
            "Bob",
            "--algorithm",
            "ed25519",
            "--expires-in",
            "30d",
            "--json",
        ],
    );
    assert_eq!(bob["agent"], "Bob");
    assert_eq!(bob["algorithm"], "ed25519");
    assert_eq!(bob["canSign"], true);
    let created = bob["createdAt"].as_u64().expect("createdAt");
    assert_eq!(bob["expiresAt"].as_u64(), Some(created + 30 * 86_400_000));
    let bob_key = bob["keyId"].as_str().expect("keyId").to_string();
    let carol = json_of(
        p,
        &[
            "-c",
            "signing.algorithm=ed25519",
            "keys",
            "create",
            "Carol",
            "--json",
        ],
    );
    assert_eq!(carol["algorithm"], "ed25519", "{carol}");

    // Private files in a private directory.
    #[cfg(unix)]
    {
        assert_eq!(mode(&keys), 0o700);
        for name in ["Alice", "Bob", "Carol"] {
            assert_eq!(
                mode(&keys.join(format!("{name}.key.json"))),
                0o600,
                "{name}"
            );
        }
    }

    // An existing key is not replaced.
    let err = fails(p, &["keys", "create", "Alice", "--algorithm", "ed25519"]);
    assert!(
        err.contains("Alice already has a key") && err.contains("agent-relay keys rotate Alice"),
        "{err}"
    );

    // List: every agent, sorted, no key material.
    let listed = json_of(p, &["keys", "list", "--json"]);
    let names: Vec<&str> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["agent"].as_str())
        .collect();
    assert_eq!(names, ["Alice", "Bob", "Carol"], "{listed}");
    let alice_key = listed["keys"][0]["keyId"]
        .as_str()
        .expect("keyId")
        .to_string();
    let secret = std::fs::read_to_string(keys.join("Alice.key.json")).expect("read Alice's key");
    let secret: Value = serde_json::from_str(&secret).expect("key file JSON");
    let secret = secret["secret"]
        .as_str()
        .expect("an HMAC secret")
        .to_string();
    let table = ok(p, &["keys", "list"]);
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "NAME",
        "ALGORITHM",
        "KEY ID",
        "CREATED",
        "EXPIRES",
        "RETIRED",
        "REVOKED",
    ] {
        assert!(header.contains(col), "no {col} in {header}");
    }
    assert!(
        table.contains(&alice_key) && table.contains("never"),
        "{table}"
    );
    assert!(!table.contains(&secret) && !listed.to_string().contains(&secret));

    // Export: public parts only; HMAC says there is none.
    let exported = json_of(p, &["keys", "export", "Bob", "--json"]);
    assert_eq!(exported["keyId"], bob_key.as_str());
    assert_eq!(
        exported["public"].as_str().map(str::len),
        Some(64),
        "{exported}"
    );
    assert!(exported.get("seed").is_none() && exported.get("secret").is_none());
    let exported = json_of(p, &["keys", "export", "Alice", "--json"]);
    assert!(exported.get("public").is_none(), "{exported}");
    assert!(
        exported["note"]
            .as_str()
            .is_some_and(|n| n.contains("the secret itself is the key")),
        "{exported}"
    );
    let text_export = ok(p, &["keys", "export", "Alice"]);
    assert!(
        text_export.contains("the secret itself is the key"),
        "{text_export}"
    );
    assert!(!text_export.contains(&secret) && !exported.to_string().contains(&secret));

    // Rotate: a new current key, the old one retired for the overlap.
    let rotated = json_of(p, &["keys", "rotate", "Alice", "--overlap", "1h", "--json"]);
    let new_key = rotated["keyId"].as_str().expect("keyId").to_string();
    assert_ne!(new_key, alice_key);
    assert_eq!(rotated["previousKeyId"], alice_key.as_str());
    assert_eq!(rotated["retired"], serde_json::json!([alice_key]));
    let until = rotated["previousValidUntil"].as_u64().expect("validUntil");
    let rotated_at = rotated["createdAt"].as_u64().expect("createdAt");
    assert_eq!(until, rotated_at + 3_600_000);
    let text_rotate = ok(p, &["keys", "rotate", "Bob"]);
    assert!(
        text_rotate.contains("verifies until") && text_rotate.contains("1d 0h overlap"),
        "the configured 24 h overlap: {text_rotate}"
    );

    // Revoke: a retired key, then the current one.
    let out = ok(p, &["keys", "revoke", "Alice", &alice_key]);
    assert_eq!(out, format!("revoked key {alice_key} of Alice\n"));
    let out = ok(p, &["keys", "revoke", "Alice", &new_key.to_uppercase()]);
    assert!(out.contains("cannot sign until"), "{out}");
    let listed = json_of(p, &["keys", "list", "--json"]);
    let alice = &listed["keys"][0];
    assert_eq!(alice["retired"], serde_json::json!([]), "{alice}");
    assert_eq!(
        alice["revoked"],
        serde_json::json!([alice_key, new_key]),
        "{alice}"
    );
    let err = fails(p, &["keys", "revoke", "Alice", "0123456789abcdef"]);
    assert!(
        err.contains("Alice has no key 0123456789abcdef") && err.contains("keys list"),
        "{err}"
    );

    // Missing agents.
    for args in [
        &["keys", "export", "Dave"][..],
        &["keys", "rotate", "Dave"],
        &["keys", "revoke", "Dave", "0123456789abcdef"],
    ] {
        let err = fails(p, args);
        assert!(
            err.contains("Dave has no key") && err.contains("agent-relay keys create Dave"),
            "{args:?}: {err}"
        );
    }

    // A file that cannot be read is reported; the others are still listed.
    std::fs::write(keys.join("Zed.key.json"), "{ not json").expect("write");
    let out = agent_relay(p, &["keys", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("Carol"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("corrupt key file"),
        "{}",
        text(&out.stderr)
    );

    // signing.keys_dir moves the directory.
    ok(
        p,
        &[
            "-c",
            "signing.keys_dir=other-keys",
            "keys",
            "create",
            "Erin",
        ],
    );
    assert!(p.join("other-keys").join("Erin.key.json").is_file());
}

/// Bob's relay-client connection; returns its next message, if one comes within `wait`.
async fn next_message(
    events: &mut relay_client::EventStream,
    wait: Duration,
) -> Option<relay_client::Delivered> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Message(m))) => return Some(m),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Bob's next channel post: its body and, when signed, the post as it arrived.
async fn next_post(
    events: &mut relay_client::EventStream,
    wait: Duration,
) -> Option<(String, Option<Box<relay_client::Signed>>)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::ChannelMessage {
                payload, signed, ..
            })) => return Some((payload.body, signed)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

#[test]
fn sends_are_signed_with_the_senders_key_under_enforce() {
    let dir = empty_project();
    let project = dir.path().to_path_buf();
    let p = project.as_path();
    let started = ok(
        p,
        &[
            "-c",
            "signing.enabled=true",
            "-c",
            "signing.require_signatures=enforce",
            "up",
        ],
    );
    let _daemon = Daemon {
        project: project.clone(),
    };
    assert!(
        started.starts_with("agent-relay daemon running"),
        "{started}"
    );
    ok(p, &["keys", "create", "Alice", "--algorithm", "ed25519"]);
    // The daemon re-reads the key files every second.
    std::thread::sleep(Duration::from_millis(1500));

    // Bob, a recipient, stays connected and verifies what he gets.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let socket = project.join(".agent-relay").join("relay.sock");
    let (bob, mut bob_events) = rt
        .block_on(Client::connect(ClientConfig::new(&socket, "Bob")))
        .expect("Bob connects");

    let out = ok(p, &["send", "Bob", "hi", "--from", "Alice"]);
    assert!(out.starts_with("sent ["), "{out}");
    let m = rt
        .block_on(next_message(&mut bob_events, Duration::from_secs(5)))
        .expect("Bob receives Alice's message");
    assert_eq!((m.from.as_str(), m.payload.body.as_str()), ("Alice", "hi"));
    assert!(m.is_signed(), "the daemon forwards the signature: {m:?}");
    let store = Keystore::new(keys_dir(p));
    assert_eq!(Client::verify(&m, &store), Ok(()));

    // A post to a channel (everyone is in #general) is signed too and verifies at Bob.
    let out = ok(p, &["send", "#general", "to the team", "--from", "Alice"]);
    assert!(out.starts_with("sent ["), "{out}");
    let post = rt
        .block_on(next_post(&mut bob_events, Duration::from_secs(5)))
        .expect("Bob receives Alice's channel post");
    assert_eq!(post.0, "to the team");
    let signed = post.1.expect("the daemon forwards the post's signature");
    assert_eq!(Client::verify_signed(&signed, &store), Ok(()));

    // No key: refused with the daemon's FORBIDDEN reason, and dead-lettered.
    let err = fails(p, &["send", "Bob", "hi", "--from", "Mallory"]);
    assert!(
        err.contains("the daemon refused the message")
            && err.contains("unsigned message from Mallory refused: signatures are required"),
        "{err}"
    );
    let letters = json_of(p, &["dlq", "list", "--from", "Mallory", "--json"]);
    assert_eq!(letters["total"], 1, "{letters}");
    assert_eq!(
        letters["letters"][0]["reason"], "signature_invalid",
        "{letters}"
    );

    // A revoked key cannot sign: the CLI says so before sending anything.
    let listed = json_of(p, &["keys", "list", "--json"]);
    let key_id = listed["keys"][0]["keyId"]
        .as_str()
        .expect("keyId")
        .to_string();
    ok(p, &["keys", "revoke", "Alice", &key_id]);
    let err = fails(
        p,
        &[
            "-c",
            "signing.enabled=true",
            "send",
            "Bob",
            "again",
            "--from",
            "Alice",
        ],
    );
    assert!(err.contains("revoked") && err.contains("rotate"), "{err}");
    // A rotation gives Alice a working key again.
    ok(p, &["keys", "rotate", "Alice"]);
    std::thread::sleep(Duration::from_millis(1500));
    ok(p, &["send", "Bob", "after rotation", "--from", "Alice"]);
    let m = rt
        .block_on(next_message(&mut bob_events, Duration::from_secs(5)))
        .expect("Bob receives the message signed with the new key");
    assert_eq!(m.payload.body, "after rotation");
    assert_eq!(Client::verify(&m, &store), Ok(()));
    assert!(
        rt.block_on(next_message(&mut bob_events, Duration::from_millis(300)))
            .is_none(),
        "refused messages are never delivered"
    );
    rt.block_on(bob.close());

    // The benchmarks sign every message with keys of their own, removed afterwards.
    for (bench, algorithm, extra) in [
        (
            "latency",
            "ed25519",
            &["--count", "20", "--warmup", "2"][..],
        ),
        (
            "throughput",
            "hmac-sha256",
            &["--pairs", "2", "--messages", "100"],
        ),
    ] {
        let mut args = vec!["bench", bench, "--sign", algorithm, "--json"];
        args.extend_from_slice(extra);
        // A refused signature would fail the run (exit 1): latency gives up on a message
        // refused again and again, throughput counts it as lost.
        let result = json_of(p, &args);
        assert_eq!(result["signed"], algorithm, "{result}");
    }
    let listed = json_of(p, &["keys", "list", "--json"]);
    assert_eq!(
        listed["keys"].as_array().map(Vec::len),
        Some(1),
        "only Alice's key is left: {listed}"
    );

    ok(p, &["down"]);
}
