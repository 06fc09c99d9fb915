//! Interoperability with the published TypeScript client.
//!
//! The Rust daemon is meant to be a drop-in replacement for the original TypeScript daemon, so
//! the npm package `@agent-relay/sdk` (pinned to exactly 2.1.14 in `tests/interop/package.json`)
//! must work against it unchanged. This test starts the daemon in-process on a temporary socket
//! with the default configuration and a SQLite store, then runs `tests/interop/scenarios.mjs`
//! under Node: direct messages, broadcast, `sendAndWait`, `request`/`respond`, channels, topic
//! subscriptions, offline delivery on reconnect, a 500-message burst, every query method of
//! `RelayClient` and the unknown-recipient error path. The test fails if any scenario fails;
//! the panic message carries the script's full output.
//!
//! Run it with:
//!
//! ```text
//! cargo test -p relay-daemon --test interop_sdk
//! ```
//!
//! It needs `node` (>= 18) and `npm` on the PATH, and network access the first time: the SDK
//! is installed once into `target/tmp/interop-node/<hash of package.json>/` and reused. Without
//! node/npm, or when the install fails, the test prints `SKIPPED: ...` to stderr and passes,
//! unless `RELAY_TEST_REQUIRE_SERVICES=1` is set, in which case it fails.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Hard limit for the whole Node scenario script.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// Hard limit for the one-time `npm install`.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_sdk_works_against_the_daemon() {
    run_node_scenarios("scenarios.mjs").await;
}

/// `createProposal`/`vote` of the published SDK against the consensus engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_sdk_consensus() {
    run_node_scenarios("consensus.mjs").await;
}

/// Starts a fresh daemon and runs one scenario script from `tests/interop/` against it.
async fn run_node_scenarios(file: &str) {
    let Some(workdir) = node_project().await else {
        return;
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("relay.sock");
    let config = relay_config::RelayConfig::default();
    config.validate().expect("default config is valid");
    let listener = relay_daemon::prepare_socket(&socket).expect("bind the daemon socket");
    let store = relay_store::Store::open(relay_store::StoreConfig::sqlite(
        dir.path().join("messages.sqlite"),
    ))
    .expect("open the SQLite store");
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(relay_daemon::run(
        config,
        listener,
        socket.clone(),
        store,
        relay_daemon::Subsystems {
            dlq: Some(relay_daemon::dlq::DlqBackend::Plain(std::sync::Arc::new(
                relay_dlq::SqliteDlq::open(dir.path().join("messages.sqlite"))
                    .expect("open the dead letter store"),
            ))),
            keys_dir: None,
            project: None,
        },
        shutdown.clone(),
    ));

    // The script must sit next to node_modules: ESM resolves bare imports from the importing
    // file's location (NODE_PATH does not apply to `import`).
    let script_src = repo_root().join("tests/interop").join(file);
    let stem = file.trim_end_matches(".mjs");
    let script = workdir.join(format!("{stem}-{}.mjs", std::process::id()));
    fs::copy(&script_src, &script)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", script_src.display(), script.display()));

    let mut node = Command::new("node");
    node.arg(&script)
        .current_dir(&workdir)
        .env("RELAY_SOCKET", &socket)
        .env(
            "RELAY_INTEROP_TIMEOUT_MS",
            (SCENARIO_TIMEOUT.as_millis() - 10_000).to_string(),
        );
    let started = Instant::now();
    let run = run_bounded(node, SCENARIO_TIMEOUT, dir.path(), stem).await;
    let _ = fs::remove_file(&script);
    let run = run.unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
    let elapsed = started.elapsed();

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), daemon).await;

    let passed = !run.timed_out && run.status.is_some_and(|s| s.success());
    if passed {
        println!("node {file} passed in {elapsed:?}\n{}", run.stdout);
    }
    assert!(
        passed,
        "SDK interop {file} failed ({}, after {elapsed:?}).\n--- node stdout ---\n{}\n--- node stderr ---\n{}",
        if run.timed_out {
            format!("killed after {SCENARIO_TIMEOUT:?}")
        } else {
            format!("exit status {:?}", run.status)
        },
        run.stdout,
        run.stderr,
    );
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("daemon stopped with an error: {e}"),
        Ok(Err(e)) => panic!("daemon task panicked: {e}"),
        Err(_) => panic!("daemon did not shut down within 15 s"),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Skips (loudly) or, with `RELAY_TEST_REQUIRE_SERVICES=1`, fails.
fn skip(why: &str) -> Option<PathBuf> {
    let msg = format!("SKIPPED: interop test needs node and npm ({why})");
    if std::env::var("RELAY_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{msg}; RELAY_TEST_REQUIRE_SERVICES=1 forbids skipping");
    }
    // Straight to the process's stderr, past the test harness's output capture, so the skip
    // is visible even when the test "passes".
    let banner = "=".repeat(78);
    let _ = std::io::stderr().write_all(format!("\n{banner}\n{msg}\n{banner}\n\n").as_bytes());
    None
}

/// The installed SDK directory, prepared once per test process: the scenario tests run in
/// parallel and must not run `npm install` into the same place at the same time.
async fn node_project() -> Option<PathBuf> {
    static PREPARED: tokio::sync::OnceCell<Option<PathBuf>> = tokio::sync::OnceCell::const_new();
    PREPARED.get_or_init(prepare_node_project).await.clone()
}

/// Makes sure a directory with `@agent-relay/sdk` installed exists and returns it; `None`
/// (after reporting) when the test has to be skipped.
async fn prepare_node_project() -> Option<PathBuf> {
    for tool in ["node", "npm"] {
        let mut cmd = Command::new(tool);
        cmd.arg("--version");
        let scratch = tempfile::tempdir().expect("temp dir");
        match run_bounded(cmd, Duration::from_secs(30), scratch.path(), tool).await {
            Ok(r) if r.status.is_some_and(|s| s.success()) => {
                println!("{tool} {}", r.stdout.trim())
            }
            Ok(r) => {
                return skip(&format!(
                    "`{tool} --version` failed: {:?} {}",
                    r.status,
                    r.stderr.trim()
                ))
            }
            Err(e) => return skip(&format!("cannot run `{tool}`: {e}")),
        }
    }

    let manifest_path = repo_root().join("tests/interop/package.json");
    let manifest = fs::read(&manifest_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", manifest_path.display()));
    let cache_root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-node");
    let workdir = cache_root.join(format!("{:016x}", fnv1a(&manifest)));
    let done_marker = workdir.join(".installed");
    if done_marker.exists() {
        return Some(workdir);
    }

    fs::create_dir_all(&cache_root).expect("create the npm cache directory");
    let staging = cache_root.join(format!("staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).expect("create the staging directory");
    fs::write(staging.join("package.json"), &manifest).expect("write package.json");
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&staging)
        .env("npm_config_update_notifier", "false");
    let logs = tempfile::tempdir().expect("temp dir");
    let installed = match run_bounded(npm, INSTALL_TIMEOUT, logs.path(), "npm-install").await {
        Ok(r) if r.status.is_some_and(|s| s.success()) => Ok(()),
        Ok(r) if r.timed_out => Err(format!(
            "`npm install` did not finish within {INSTALL_TIMEOUT:?}"
        )),
        Ok(r) => Err(format!(
            "`npm install` failed with {}; output: {:?}; for details run `npm install` in tests/interop",
            r.status.map_or_else(|| "no status".to_string(), |s| s.to_string()),
            r.stdout.trim().to_string() + r.stderr.trim(),
        )),
        Err(e) => Err(format!("cannot run `npm install`: {e}")),
    };
    let sdk_manifest = staging.join("node_modules/@agent-relay/sdk/package.json");
    let installed = installed.and_then(|()| {
        let text = fs::read_to_string(&sdk_manifest)
            .map_err(|e| format!("{} missing after install: {e}", sdk_manifest.display()))?;
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_string));
        match version.as_deref() {
            Some("2.1.14") => Ok(()),
            other => Err(format!(
                "installed @agent-relay/sdk has version {other:?}, expected 2.1.14"
            )),
        }
    });
    if let Err(why) = installed {
        let _ = fs::remove_dir_all(&staging);
        return skip(&why);
    }
    fs::write(staging.join(".installed"), b"").expect("write the install marker");
    if fs::rename(&staging, &workdir).is_err() {
        // Another run installed it concurrently; use theirs.
        let _ = fs::remove_dir_all(&staging);
        if !done_marker.exists() {
            panic!("cannot move {} to {}", staging.display(), workdir.display());
        }
    }
    Some(workdir)
}

/// 64-bit FNV-1a: a stable cache key for the package.json contents.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Finished {
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// Kills the child if the test unwinds while it runs.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `cmd` with stdout/stderr captured to files under `logs`, killing it after `timeout`.
async fn run_bounded(
    mut cmd: Command,
    timeout: Duration,
    logs: &Path,
    tag: &str,
) -> std::io::Result<Finished> {
    let out_path = logs.join(format!("{tag}.stdout"));
    let err_path = logs.join(format!("{tag}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?);
    let mut child = KillOnDrop(cmd.spawn()?);
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.0.try_wait()? {
            break (Some(status), false);
        }
        if Instant::now() >= deadline {
            let _ = child.0.kill();
            break (child.0.wait().ok(), true);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let read = |p: &Path| {
        fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(Finished {
        status,
        timed_out,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}
