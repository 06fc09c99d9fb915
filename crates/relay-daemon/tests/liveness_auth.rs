//! Heartbeat, read-side liveness, socket permissions and peer-credential checks.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_flow_and_silent_connections_are_closed() {
    let mut cfg = fast_config();
    cfg.daemon.heartbeat_ms = 100;
    cfg.daemon.heartbeat_timeout_multiplier = 3;
    let d = TestDaemon::start(cfg).await;

    // A client that keeps talking (any frame counts) stays up well past the timeout.
    let mut chatty = d.client("Chatty").await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chatty.query("STATUS", json!({})).await;
    }

    // A silent one gets PINGs, then ERROR TIMEOUT and BYE.
    let mut silent = d.client("Silent").await;
    let mut saw_ping = false;
    let mut frames = Vec::new();
    use futures::StreamExt;
    while let Ok(Some(Ok(body))) =
        tokio::time::timeout(Duration::from_secs(3), silent.framed.next()).await
    {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["type"] == "PING" {
            saw_ping = true;
            assert!(v["payload"]["nonce"].is_string());
        } else {
            frames.push(v);
        }
    }
    assert!(saw_ping);
    let err = frames
        .iter()
        .find(|f| f["type"] == "ERROR")
        .expect("an ERROR before the close");
    assert_eq!(err["payload"]["code"], "TIMEOUT");
    assert_eq!(frames.last().unwrap()["type"], "BYE");
    // The chatty client was never dropped.
    chatty.query("STATUS", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_private_and_a_live_daemon_is_not_replaced() {
    let d = TestDaemon::start(fast_config()).await;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    match relay_daemon::prepare_socket(&d.socket) {
        Err(relay_daemon::DaemonError::AlreadyRunning(_)) => {}
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    let lock = relay_daemon::InstanceLock::acquire(&d.dir.path().join("x.sock")).unwrap();
    assert!(matches!(
        relay_daemon::InstanceLock::acquire(&d.dir.path().join("x.sock")),
        Err(relay_daemon::DaemonError::AlreadyRunning(_))
    ));
    drop(lock);
    // A regular file where the socket should be is never removed.
    let f = d.dir.path().join("not-a-socket");
    std::fs::write(&f, "data").unwrap();
    assert!(matches!(
        relay_daemon::prepare_socket(&f),
        Err(relay_daemon::DaemonError::NotASocket(_))
    ));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "data");
    // A stale socket (nothing listening) is cleaned up.
    let stale = d.dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(relay_daemon::prepare_socket(&stale).is_ok());
}

/// Connects as another uid (needs root to switch users); the daemon must refuse the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_another_uid_are_refused() {
    // SAFETY: geteuid has no preconditions.
    // The interpreter must be reachable by the other user, so use the system one.
    let python = "/usr/bin/python3";
    if unsafe { libc::geteuid() } != 0
        || which("setpriv").is_none()
        || !std::path::Path::new(python).exists()
    {
        eprintln!(
            "SKIPPED: peers_with_another_uid_are_refused needs root, setpriv and /usr/bin/python3"
        );
        return;
    }
    let d = TestDaemon::start(fast_config()).await;
    // Let the other user reach the socket so that only SO_PEERCRED stands in the way.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = r#"
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
hello = json.dumps({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"agent":"Intruder","capabilities":{}}}).encode()
try:
    s.sendall(struct.pack(">I", len(hello)) + hello)
except BrokenPipeError:
    pass  # refused at accept time: the daemon may close before the HELLO is written
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        # The daemon closed without reading our HELLO; what it wrote before is already here.
        break
    if not chunk: break
    data += chunk
while data:
    n = struct.unpack(">I", data[:4])[0]
    print(data[4:4+n].decode())
    data = data[4+n:]
"#;
    let out = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            "-c",
            script,
        ])
        .arg(&d.socket)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value =
        serde_json::from_str(stdout.lines().next().unwrap_or("{}")).unwrap();
    assert_eq!(first["type"], "ERROR", "{stdout}");
    assert_eq!(first["payload"]["code"], "UNAUTHORIZED");
    assert!(first["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("UID 65534"));
    assert!(!stdout.contains("WELCOME"));

    // Allow-listing the uid lets it in.
    let mut cfg = fast_config();
    cfg.auth.allow_uids = vec![65534];
    let d2 = TestDaemon::start(cfg).await;
    std::fs::set_permissions(d2.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d2.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Read exactly one whole frame (the daemon answers a HELLO with WELCOME), with a deadline.
    let script_ok = r#"
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
hello = json.dumps({"v":1,"type":"HELLO","id":"h","ts":1,"payload":{"agent":"Intruder","capabilities":{}}}).encode()
s.sendall(struct.pack(">I", len(hello)) + hello)
def read(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk: raise SystemExit("closed after %d bytes" % len(buf))
        buf += chunk
    return buf
n = struct.unpack(">I", read(4))[0]
print(read(n).decode())
"#;
    let out = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            "-c",
            script_ok,
        ])
        .arg(&d2.socket)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("WELCOME"),
        "allow-listed uid should get WELCOME: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|p| p.exists())
    })
}
