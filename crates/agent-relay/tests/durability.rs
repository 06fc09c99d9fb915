//! `kill -9` of the daemon while messages wait for an offline agent loses none of them: after a
//! restart the agent receives every one, in order.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use relay_client::{Client, ClientConfig, Event, SendOptions};

const BIN: &str = env!("CARGO_BIN_EXE_agent-relay");

fn cli(project: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--project")
        .arg(project)
        .args(args)
        .env_remove("AGENT_RELAY_SOCKET")
        .output()
        .expect("run agent-relay")
}

fn up(project: &Path) {
    let out = cli(project, &["up"]);
    assert!(
        out.status.success(),
        "up failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = cli(self.0, &["down"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_queued_message() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::create_dir(project.join(".git")).unwrap();
    let socket = project.join(".agent-relay/relay.sock");
    up(project);
    let _down = Down(project);

    // Bob is known (he connected once) and offline.
    let (bob, _) = Client::connect(ClientConfig::new(&socket, "Bob"))
        .await
        .unwrap();
    bob.close().await;
    let (alice, _events) = Client::connect(ClientConfig::new(&socket, "Alice"))
        .await
        .unwrap();
    for _ in 0..100 {
        if alice
            .list_connected_agents()
            .await
            .unwrap()
            .agents
            .iter()
            .all(|a| a.name != "Bob")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    const N: usize = 250;
    for i in 0..N {
        alice
            .send(SendOptions::new("Bob", format!("queued {i}")))
            .await
            .unwrap();
    }
    // A query is answered after every write queued before it is committed.
    let stored = alice
        .messages(relay_protocol::MessagesQueryPayload {
            to: Some("Bob".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.messages.len(), N);

    let pid: i32 = std::fs::read_to_string(project.join(".agent-relay/relay.sock.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        // Reap happens in the launcher; just wait for the process to disappear.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(alice);

    // The stale socket and lock from the killed daemon do not prevent a restart.
    up(project);
    let (_bob, mut events) = Client::connect(ClientConfig::new(&socket, "Bob"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < N {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Event::Message(m))) => got.push(m.payload.body),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let expected: Vec<String> = (0..N).map(|i| format!("queued {i}")).collect();
    assert_eq!(
        got, expected,
        "every queued message arrives once, in order, after kill -9"
    );
}
