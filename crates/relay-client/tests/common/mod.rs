//! A scripted stand-in for the daemon: a Unix listener on a temporary socket that speaks real
//! frames, driven step by step by each test.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use relay_client::{ClientConfig, Event, EventStream};
use relay_protocol::{
    DeliveryInfo, Envelope, FrameCodec, MessageType, PayloadKind, SendMeta, SendPayload,
    ServerInfo, WelcomePayload,
};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;
use tokio_util::codec::{FramedRead, FramedWrite};

pub const STEP: Duration = Duration::from_secs(5);

pub struct FakeServer {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    listener: UnixListener,
}

impl FakeServer {
    pub fn start() -> FakeServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).expect("bind the test socket");
        FakeServer {
            _dir: dir,
            path,
            listener,
        }
    }

    pub fn config(&self, name: &str) -> ClientConfig {
        let mut c = ClientConfig::new(&self.path, name);
        c.reconnect_initial = Duration::from_millis(10);
        c.reconnect_max = Duration::from_millis(50);
        c.connect_timeout = Duration::from_secs(2);
        c
    }

    pub async fn accept(&self) -> Conn {
        let (stream, _) = tokio::time::timeout(STEP, self.listener.accept())
            .await
            .expect("the client connects in time")
            .expect("accept");
        let (r, w) = stream.into_split();
        Conn {
            read: FramedRead::new(r, FrameCodec::default()),
            write: FramedWrite::new(w, FrameCodec::default()),
        }
    }

    /// True when no client connects within `d`.
    pub async fn quiet_for(&self, d: Duration) -> bool {
        tokio::time::timeout(d, self.listener.accept())
            .await
            .is_err()
    }
}

pub struct Conn {
    read: FramedRead<OwnedReadHalf, FrameCodec>,
    write: FramedWrite<OwnedWriteHalf, FrameCodec>,
}

impl Conn {
    pub async fn recv(&mut self) -> Envelope {
        let body = tokio::time::timeout(STEP, self.read.next())
            .await
            .expect("a frame arrives in time")
            .expect("the client keeps the connection open")
            .expect("a well-formed frame");
        Envelope::from_slice(&body).expect("a valid envelope")
    }

    pub async fn recv_type(&mut self, t: MessageType) -> Envelope {
        let env = self.recv().await;
        assert_eq!(env.msg_type, t, "unexpected frame {env:?}");
        env
    }

    /// True when the client closed the connection.
    pub async fn closed(&mut self) -> bool {
        matches!(tokio::time::timeout(STEP, self.read.next()).await, Ok(None))
    }

    pub async fn send(&mut self, env: &Envelope) {
        self.write.send(env).await.expect("write to the client");
    }

    /// Reads HELLO and answers WELCOME.
    pub async fn handshake(&mut self, session: &str, token: Option<&str>) -> Envelope {
        let hello = self.recv_type(MessageType::Hello).await;
        self.send(&welcome(session, token)).await;
        hello
    }
}

pub fn welcome(session: &str, token: Option<&str>) -> Envelope {
    Envelope::new(
        MessageType::Welcome,
        &WelcomePayload {
            session_id: session.into(),
            resume_token: token.map(str::to_string),
            server: ServerInfo {
                max_frame_bytes: 1024 * 1024,
                heartbeat_ms: 5000,
            },
        },
    )
}

pub fn deliver(id: &str, from: &str, body: &str, seq: u64) -> Envelope {
    Envelope::new(
        MessageType::Deliver,
        &SendPayload {
            kind: PayloadKind::Message,
            body: body.into(),
            data: None,
            thread: None,
        },
    )
    .id(id)
    .from(from)
    .to("Alice")
    .with_delivery(seq)
}

pub trait WithDelivery {
    fn with_delivery(self, seq: u64) -> Envelope;
    fn with_meta(self, meta: SendMeta) -> Envelope;
}

impl WithDelivery for Envelope {
    fn with_delivery(mut self, seq: u64) -> Envelope {
        self.delivery = Some(DeliveryInfo {
            seq,
            session_id: "s1".into(),
            original_to: None,
        });
        self
    }
    fn with_meta(self, meta: SendMeta) -> Envelope {
        self.meta(meta)
    }
}

pub async fn next_event(events: &mut EventStream) -> Event {
    tokio::time::timeout(STEP, events.recv())
        .await
        .expect("an event arrives in time")
        .expect("the event stream is open")
}
