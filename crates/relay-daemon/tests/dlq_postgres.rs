//! The dead letter queue on PostgreSQL, with the server going away mid-run.
//!
//! A TCP proxy in front of the real server (`RELAY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) plays the outage: while it refuses connections
//! the daemon keeps routing, keeps dead letters in its local spool and reports the degraded
//! state; when it accepts again the spool drains into PostgreSQL and nothing is lost.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

fn postgres_url() -> String {
    std::env::var("RELAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// host:port of a postgres:// URL.
fn address_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host_port = rest.split('/').next()?.rsplit('@').next()?;
    Some(if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    })
}

async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// Forwards connections to PostgreSQL while `up`; `down()` also cuts live connections.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, live2) = (up.clone(), live.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                live2.lock().expect("lock").push(task.abort_handle());
            }
        });
        Proxy { port, up, live }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.live.lock().expect("lock").drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// PostgreSQL behind a proxy the test can take down, and a daemon configuration whose DLQ
/// uses it in a fresh schema.
struct Outage {
    url: String,
    proxy: Proxy,
    schema: String,
    cfg: relay_config::RelayConfig,
}

/// `None` (after a loud notice) when PostgreSQL is not reachable; panics instead when
/// `RELAY_TEST_REQUIRE_SERVICES=1`.
async fn outage_setup() -> Option<Outage> {
    let url = postgres_url();
    let Some(addr) = address_of(&url) else {
        panic!("cannot parse RELAY_TEST_POSTGRES_URL {url}")
    };
    if !reachable(&addr).await {
        let msg = format!(
            "SKIPPED: PostgreSQL not reachable at {url}; the DLQ PostgreSQL test did not run"
        );
        if std::env::var("RELAY_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{msg} (RELAY_TEST_REQUIRE_SERVICES=1)");
        }
        eprintln!("\n*** {msg} ***\n");
        return None;
    }
    let proxy = Proxy::start(addr.clone()).await;
    let schema = format!("dlq_e2e_{:08x}", fastrand::u32(..));
    let proxied = url.replacen(&addr, &format!("127.0.0.1:{}", proxy.port), 1);

    let mut cfg = fast_config();
    cfg.dlq.backend = relay_config::DlqBackendKind::Postgres;
    cfg.dlq.url = proxied;
    cfg.dlq.schema = schema.clone();
    cfg.dlq.check_interval_ms = 100;
    cfg.dlq.initial_backoff_ms = 60_000;
    Some(Outage {
        url,
        proxy,
        schema,
        cfg,
    })
}

async fn dlq_status(c: &mut Client) -> serde_json::Value {
    c.query("STATUS", json!({})).await["payload"]["dlq"].clone()
}

/// The DLQ status once it reads `degraded` with `spooled` letters in the spool, or the last one
/// read after five seconds (for the caller's assertions to report).
async fn dlq_status_when(c: &mut Client, degraded: bool, spooled: u64) -> serde_json::Value {
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = dlq_status(c).await;
        if status["degraded"] == degraded && status["spooled"].as_u64() == Some(spooled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    status
}

/// A connection to the test server (its driver runs on a task of its own).
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// The recipients of the dead letters in PostgreSQL, in order.
async fn postgres_targets(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!("SELECT to_agent FROM \"{schema}\".dead_letters ORDER BY to_agent"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_loses_nothing_and_drains_on_return() {
    let Some(Outage {
        url,
        proxy,
        schema,
        cfg,
    }) = outage_setup().await
    else {
        return;
    };
    let mut d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    let mut bob = d.client("Bob").await;

    alice.send_to("Nobody1", "while up").await;
    alice.expect("NACK").await;
    let mut total = 0;
    for _ in 0..100 {
        total = alice.query("DLQ_LIST", json!({})).await["payload"]["total"]
            .as_u64()
            .unwrap_or(0);
        if total == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(total, 1);
    assert_eq!(dlq_status(&mut alice).await["degraded"], false);

    // PostgreSQL goes away: routing goes on, letters are spooled, the state is reported.
    proxy.down();
    for i in 0..5 {
        alice
            .send_to(&format!("Lost{i}"), "during the outage")
            .await;
        alice.expect("NACK").await;
    }
    alice.send_to("Bob", "routing still works").await;
    assert_eq!(
        bob.recv_ack().await["payload"]["body"],
        "routing still works"
    );
    let mut status = dlq_status_when(&mut alice, true, 5).await;
    assert_eq!(status["degraded"], true, "{status}");
    assert_eq!(status["spooled"], 5, "{status}");
    let health = alice.query("HEALTH", json!({})).await;
    assert!(
        health["payload"]["issues"]
            .to_string()
            .contains("unreachable"),
        "{health}"
    );
    // Readable during the outage, from the spool.
    let during = alice
        .query("DLQ_LIST", json!({"reason":"target_not_found"}))
        .await;
    assert!(
        during["payload"]["total"].as_u64().unwrap_or(0) >= 5,
        "{during}"
    );

    // A restart during the outage keeps the spool.
    drop((alice, bob));
    d.restart().await;
    let mut alice = d.client("Alice").await;

    // PostgreSQL returns: the spool drains and the daemon is healthy again.
    proxy.restore();
    status = dlq_status_when(&mut alice, false, 0).await;
    assert_eq!(status["degraded"], false, "{status}");
    assert_eq!(status["spooled"], 0, "{status}");
    d.stop().await;

    // Every letter is in PostgreSQL.
    let client = connect(&url).await;
    let targets = postgres_targets(&client, &schema)
        .await
        .expect("query dead letters");
    let _ = client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await;
    assert_eq!(
        targets,
        ["Lost0", "Lost1", "Lost2", "Lost3", "Lost4", "Nobody1"]
    );
}

/// Dead letters spooled by a daemon that stopped during an outage, and PostgreSQL back before
/// the next start: nothing fails any more, yet the new daemon must find the old spool, report
/// it and drain it. (It used to start with "not degraded, nothing spooled" and drained only
/// after a PostgreSQL failure, so this spool stayed on disk while STATUS said all was well.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_of_a_previous_run_drains_when_postgres_is_back_before_the_restart() {
    let Some(Outage {
        url,
        proxy,
        schema,
        cfg,
    }) = outage_setup().await
    else {
        return;
    };

    // PostgreSQL is down for the whole first run.
    proxy.down();
    let mut d = TestDaemon::start(cfg).await;
    let mut alice = d.client("Alice").await;
    for i in 0..3 {
        alice
            .send_to(&format!("Gone{i}"), "during the outage")
            .await;
        alice.expect("NACK").await;
    }
    let mut status = dlq_status_when(&mut alice, true, 3).await;
    assert_eq!(status["spooled"], 3, "{status}");
    drop(alice);
    d.stop().await;

    // Back before the next start.
    proxy.restore();
    d.restart().await;
    let mut alice = d.client("Alice").await;
    status = dlq_status_when(&mut alice, false, 0).await;
    assert_eq!(status["degraded"], false, "{status}");
    assert_eq!(status["spooled"], 0, "{status}");

    // Drained means in PostgreSQL now, while the daemon still runs.
    let client = connect(&url).await;
    let rows = postgres_targets(&client, &schema).await;
    drop(alice);
    d.stop().await;
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
    let rows = rows.unwrap_or_else(|e| {
        panic!("no dead letters in PostgreSQL (the spool was never drained?): {e}")
    });
    assert_eq!(rows, ["Gone0", "Gone1", "Gone2"]);
}
