//! Test harness: a real daemon on a temp socket and a raw-frame client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use relay_config::RelayConfig;
use relay_protocol::{Envelope, FrameCodec, MessageType};
use serde_json::{json, Value};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: RelayConfig,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), relay_daemon::DaemonError>>>,
}

pub fn fast_config() -> RelayConfig {
    let mut c = RelayConfig::default();
    c.delivery.ack_timeout_ms = 200;
    c.delivery.max_backoff_ms = 400;
    c.daemon.handshake_timeout_ms = 500;
    c
}

impl TestDaemon {
    pub async fn start(config: RelayConfig) -> TestDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: RelayConfig) -> TestDaemon {
        let socket = dir.path().join("relay.sock");
        let mut d = TestDaemon {
            dir,
            socket,
            config,
            shutdown: CancellationToken::new(),
            task: None,
        };
        d.launch().await;
        d
    }

    async fn launch(&mut self) {
        let listener = relay_daemon::prepare_socket(&self.socket).expect("bind socket");
        let db = self.dir.path().join("messages.sqlite");
        let store =
            relay_store::Store::open(relay_store::StoreConfig::sqlite(&db)).expect("open store");
        // The dead letter store is opened the way `serve` opens it, from the configuration.
        let paths = relay_config::ProjectPaths::for_root(self.dir.path());
        std::fs::create_dir_all(&paths.relay_dir).expect("relay dir");
        self.config.store.path = db.display().to_string();
        let dlq = relay_daemon::open_dlq(&self.config, &paths).expect("open dead letter store");
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(relay_daemon::run(
            self.config.clone(),
            listener,
            self.socket.clone(),
            store,
            relay_daemon::Subsystems {
                dlq,
                keys_dir: Some(paths.relay_dir.join("keys")),
                project: Some(paths.clone()),
            },
            self.shutdown.clone(),
        )));
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("daemon stops")
                .expect("join")
                .expect("clean stop");
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    /// Closes `clients`, restarts the daemon, and connects them again under their names.
    pub async fn restart_with<const N: usize>(&mut self, clients: [Client; N]) -> [Client; N] {
        let names = clients.map(|c| c.name);
        self.restart().await;
        let mut again = Vec::with_capacity(N);
        for name in &names {
            again.push(self.client(name).await);
        }
        again
            .try_into()
            .unwrap_or_else(|_| unreachable!("one client per name"))
    }

    /// The owed-broadcast tests' turning point: Alice, Bob and Carol, with Carol full (holding
    /// `held`, unacknowledged). With `restart` the daemon restarts first and `held`, never
    /// acknowledged, comes to Carol again. Carol then acknowledges it, so she has room again.
    pub async fn carol_catches_up(
        &mut self,
        clients: [Client; 3],
        mut held: Value,
        restart: bool,
    ) -> [Client; 3] {
        let [alice, bob, mut carol] = if restart {
            let mut again = self.restart_with(clients).await;
            held = again[2].expect("DELIVER").await;
            assert_eq!(held["payload"]["body"], "hold");
            again
        } else {
            clients
        };
        carol.ack(&held).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        [alice, bob, carol]
    }

    pub async fn client(&self, name: &str) -> Client {
        Client::hello(&self.socket, name, json!({})).await
    }
}

pub struct Client {
    pub name: String,
    pub framed: Framed<UnixStream, FrameCodec>,
    pub welcome: Value,
}

pub const WAIT: Duration = Duration::from_secs(5);

impl Client {
    pub async fn raw(socket: &Path) -> Framed<UnixStream, FrameCodec> {
        let stream = UnixStream::connect(socket).await.expect("connect");
        Framed::new(stream, FrameCodec::new(16 * 1024 * 1024))
    }

    pub async fn hello(socket: &Path, name: &str, extra: Value) -> Client {
        let mut framed = Self::raw(socket).await;
        let mut payload = json!({"agent": name, "capabilities": {"ack": true, "resume": true, "max_inflight": 256, "supports_topics": true}});
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        send_json(
            &mut framed,
            &json!({"v":1,"type":"HELLO","id":format!("h-{name}"),"ts":1,"payload":payload}),
        )
        .await;
        let mut c = Client {
            name: name.into(),
            framed,
            welcome: Value::Null,
        };
        let w = c.expect("WELCOME").await;
        c.welcome = w;
        c
    }

    pub fn session_id(&self) -> String {
        self.welcome["payload"]["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn resume_token(&self) -> String {
        self.welcome["payload"]["resume_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn send(&mut self, v: Value) {
        send_json(&mut self.framed, &v).await;
    }

    pub async fn send_to(&mut self, to: &str, body: &str) -> String {
        let id = relay_protocol::ids::new_id();
        self.send(json!({"v":1,"type":"SEND","id":id,"ts":1,"to":to,"payload":{"kind":"message","body":body}})).await;
        id
    }

    /// Next frame (any type) within the deadline, skipping PING and AGENT_READY.
    pub async fn next(&mut self) -> Value {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("{}: no frame within {WAIT:?}", self.name))
    }

    pub async fn next_within(&mut self, d: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .ok()??;
            let body = frame.expect("frame");
            let v: Value = serde_json::from_slice(&body).expect("json");
            match v["type"].as_str() {
                Some("PING") | Some("AGENT_READY") => continue,
                _ => return Some(v),
            }
        }
    }

    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.next().await;
        assert_eq!(v["type"], ty, "{}: expected {ty}, got {v}", self.name);
        v
    }

    /// Receives a DELIVER and ACKs it.
    pub async fn recv_ack(&mut self) -> Value {
        let d = self.expect("DELIVER").await;
        self.ack(&d).await;
        d
    }

    pub async fn ack(&mut self, d: &Value) {
        let ack = json!({"v":1,"type":"ACK","id":relay_protocol::ids::new_id(),"ts":1,"payload":{"ack_id":d["id"],"seq":d["delivery"]["seq"]}});
        self.send(ack).await;
    }

    /// Asserts nothing but PINGs arrives for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(v) = self.next_within(d).await {
            panic!("{}: expected no frame, got {v}", self.name);
        }
    }

    pub async fn query(&mut self, ty: &str, payload: Value) -> Value {
        let id = relay_protocol::ids::new_id();
        self.send(json!({"v":1,"type":ty,"id":id,"ts":1,"payload":payload}))
            .await;
        loop {
            let v = self.next().await;
            // Answers share the request id; errors name it in `replyTo`.
            if v["id"] == id || v["payload"]["replyTo"] == id {
                return v;
            }
        }
    }
}

pub async fn send_json(framed: &mut Framed<UnixStream, FrameCodec>, v: &Value) {
    let body = serde_json::to_vec(v).expect("encode");
    send_raw(framed, &body).await;
}

pub async fn send_raw(framed: &mut Framed<UnixStream, FrameCodec>, body: &[u8]) {
    let mut buf = BytesMut::with_capacity(body.len() + 4);
    buf.put_u32(body.len() as u32);
    buf.extend_from_slice(body);
    framed.send(Bytes::from(buf)).await.expect("write");
}

pub fn parse(v: &Value) -> Envelope {
    Envelope::from_slice(&serde_json::to_vec(v).expect("json")).expect("envelope")
}

pub fn is_type(v: &Value, t: MessageType) -> bool {
    v["type"] == t.as_str()
}
