//! Durable storage for the agent-relay daemon.
//!
//! The relay persists every message it accepts, the agents' sessions, the
//! agent registry and channel memberships, so that messages for offline
//! agents survive until delivered, sessions can be resumed with their
//! delivery sequence numbers, and history can be queried.
//!
//! # Architecture
//!
//! [`Store::open`] opens a [`Backend`] and hands it to a dedicated writer
//! thread (named `relay-store`). Everything else talks to that thread through
//! a cloneable [`StoreHandle`]:
//!
//! * [`StoreHandle::write`] queues a [`WriteOp`] and returns immediately. The
//!   writer thread commits queued writes in groups (up to
//!   [`StoreConfig::max_batch`] per transaction), so persistence keeps up
//!   with the relay instead of paying one fsync per message. A full queue
//!   returns [`StoreError::Overloaded`], which the daemon reports as `BUSY`.
//! * Queries (`messages`, `pending_for`, `stats`, ...) are `async` and are
//!   answered after every write submitted before them has been committed.
//! * [`StoreHandle::flush`] is a barrier; [`StoreHandle::close`] commits
//!   everything and stops the thread.
//! * Retention runs on the writer thread at open and every
//!   [`StoreConfig::cleanup_interval`]: it deletes delivered (acked/failed)
//!   and channel messages older than [`StoreConfig::retention`], and never
//!   deletes messages still pending for an agent.
//!
//! # Backends
//!
//! * [`SqliteBackend`]: a WAL-mode SQLite file with a versioned schema (see
//!   [`migrations`]). It also adopts databases written by the original
//!   TypeScript relay, keeping their table and column names.
//! * [`MemoryBackend`]: bounded, volatile storage with the same behaviour.
//!
//! # Records
//!
//! The store knows nothing about the wire protocol. It keeps plain records
//! ([`StoredMessage`], [`SessionRecord`], [`AgentRecord`],
//! [`ChannelMembership`]); the daemon converts frames to and from them.
//!
//! ```
//! use relay_store::{MessageQuery, Store, StoreConfig, StoredMessage, WriteOp};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! let store = Store::open(StoreConfig::memory())?;
//! store.write(WriteOp::InsertMessage(StoredMessage::new(
//!     "m-1", 1_700_000_000_000, "alice", "bob", "hello",
//! )))?;
//! # rt.block_on(async {
//! let pending = store.pending_for("bob").await?;
//! assert_eq!(pending.len(), 1);
//! let recent = store.messages(MessageQuery { limit: Some(10), ..Default::default() }).await?;
//! assert_eq!(recent[0].body, "hello");
//! # Ok::<_, relay_store::StoreError>(())
//! # })?;
//! // Blocking: from async code, call it inside `spawn_blocking`.
//! store.close()?;
//! # Ok(())
//! # }
//! ```

mod backend;
mod config;
mod error;
mod handle;
mod memory;
mod metrics;
pub mod migrations;
mod packed_sig;
mod sqlite;
mod types;
mod writer;

pub use backend::Backend;
pub use config::{
    BackendConfig, StoreConfig, DEFAULT_CLEANUP_INTERVAL, DEFAULT_MAX_BATCH,
    DEFAULT_MEMORY_MAX_MESSAGES, DEFAULT_QUEUE_CAPACITY, DEFAULT_RETENTION,
};
pub use error::{StoreError, StoreResult};
pub use handle::{Store, StoreHandle};
pub use memory::MemoryBackend;
pub use metrics::StoreMetrics;
pub use sqlite::SqliteBackend;
pub use types::{
    is_channel_recipient, member_key, now_ms, AgentRecord, ChannelMembership, ContextSnapshot,
    MessageQuery, MessageStatus, Order, OwedBroadcast, ParseStatusError, ProposalRecord, Query,
    QueryResult, SeqSeed, SessionRecord, SignatureHorizon, SignatureJson, StoreStats,
    StoredMessage, WriteOp,
};
