//! The agent-relay daemon as a library.
//!
//! [`serve`] runs a daemon for a project until SIGINT/SIGTERM: it takes the single-instance lock,
//! prepares the socket (0700 directory, 0600 socket, stale-socket cleanup), opens the store and
//! calls [`run`]. [`run`] is the testable core: given a bound listener, a store and a shutdown
//! token it serves connections until the token fires, then flushes everything.
//!
//! Inside, one task per connection ([`connection`]) does framing, handshake and heartbeat; a
//! single [`router::Router`] task owns all routing state (connections, registry, channels,
//! subscriptions, shadows, delivery tracking, sync waits) and talks to connections over bounded
//! channels. Undeliverable messages go to a [`failure::FailureSink`].

pub mod auth;
pub mod compaction;
pub mod connection;
pub mod dlq;
pub mod failure;
pub mod metrics;
mod ratelimit;
pub mod router;
mod server;
pub mod signing;
mod sysinfo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use relay_config::RelayConfig;
use relay_store::StoreHandle;
use tokio::sync::mpsc;

pub use sysinfo::{cpu_time, set_memory_releaser};

pub use server::{
    open_dlq, prepare_socket, run, serve, store_config, DaemonError, InstanceLock, Subsystems,
};

/// What every connection task and the router share (read-only after start).
pub struct Shared {
    pub config: RelayConfig,
    pub store: StoreHandle,
    pub router_tx: mpsc::Sender<router::RouterMsg>,
    pub auth: auth::AuthPolicy,
    pub started: Instant,
    pub socket_path: PathBuf,
    /// The project the daemon serves (spawned agents run in its root); `None` in tests that
    /// serve a bare socket, where the socket's directory stands in for `.agent-relay/`.
    pub project: Option<relay_config::ProjectPaths>,
    /// Signature checks (`[signing] enabled`), shared by the router and the connection tasks.
    pub signing: Option<Arc<signing::Verifier>>,
}
