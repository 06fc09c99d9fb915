//! An async client for the agent-relay daemon.
//!
//! The daemon routes JSON envelopes between agents over a Unix socket (see `relay-protocol`).
//! This crate is what programs use to talk to it: the CLI, the PTY wrapper and SDK users.
//!
//! - [`ClientConfig`] names the socket and the agent, and holds the knobs (reconnect backoff,
//!   timeouts, auto-ACK, dedupe window, frame limit).
//! - [`Client::connect`] opens the socket, performs the HELLO/WELCOME handshake and returns a
//!   cloneable [`Client`] plus an [`EventStream`] of [`Event`]s. A background task owns the
//!   socket: it answers PINGs, acknowledges every DELIVER (unless `auto_ack` is off), drops
//!   redelivered duplicates, and on a lost connection reconnects forever with capped
//!   exponential backoff, resuming the session (unacknowledged messages are replayed by the
//!   daemon) and re-sending subscriptions and the active WATCH.
//! - Sending: [`Client::send`] with [`SendOptions`]; [`Client::send_and_wait`] blocks until the
//!   recipient answers with a sync ACK; [`Client::request`] / [`Client::respond`] implement
//!   the SDK's request/response convention; [`Client::reply_sync`] answers a sync message.
//! - Queries ([`Client::status`], [`Client::messages`], [`Client::list_agents`],
//!   [`Client::message_get`], …) are request/response pairs matched by envelope id; the
//!   generic [`Client::query`] covers any query type.
//! - Signing: with [`ClientConfig::signing`] every SEND and consensus command carries a
//!   signature (`_sig`) made with a shared secret or the agent's key file
//!   ([`ClientSigning`]); [`Client::verify`] checks the signature of a received message.
//! - Every failure is a [`ClientError`] whose message says what failed and what to do.
//!
//! ```no_run
//! # async fn demo() -> Result<(), relay_client::ClientError> {
//! use relay_client::{Client, ClientConfig, Event, SendOptions};
//!
//! let config = ClientConfig::new(".agent-relay/relay.sock", "Alice");
//! let (client, mut events) = Client::connect(config).await?;
//! client.send(SendOptions::new("Bob", "hello")).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(m) = event {
//!         println!("{} says {}", m.from, m.payload.body);
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod config;
mod dedupe;
mod dispatch;
mod driver;
mod error;
mod event;
mod options;
mod shared;
mod signing;

pub use client::{Client, EventStream, PendingSync, SyncAnswer};
pub use config::ClientConfig;
pub use error::ClientError;
pub use event::{Delivered, Event, Signed};
pub use options::SendOptions;
pub use relay_signing::{KeyLookup, VerifyError};
pub use signing::{ClientSigning, RESIGN_AFTER_MS};
