//! State shared by the [`Client`](crate::Client) handles and the connection task.
//!
//! Locks here are `std::sync::Mutex`es held only for a few map operations, never across an
//! `.await`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use relay_protocol::{Envelope, WatchPayload};
use tokio::sync::oneshot;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::event::Delivered;
use crate::signing::Signer;

/// Session facts that survive reconnects.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// The current session, `None` while disconnected.
    pub session_id: Option<String>,
    /// The last session this client had (to tell a resumed session from a fresh one).
    pub last_session_id: Option<String>,
    pub resume_token: Option<String>,
    /// Topics to re-subscribe after a reconnect.
    pub subscriptions: BTreeSet<String>,
    /// The active WATCH, re-sent after a reconnect.
    pub watch: Option<WatchPayload>,
    /// Why the client stopped; `Some` once it will never send again.
    pub closed: Option<String>,
}

/// Someone waiting for an answer.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// A query: completed by the envelope whose `id` equals the request's.
    Query(oneshot::Sender<Result<Envelope, ClientError>>),
    /// `send_and_wait`: completed by an ACK carrying the correlation id.
    Sync(oneshot::Sender<Result<crate::client::SyncAnswer, ClientError>>),
    /// `request`: completed by a DELIVER carrying the correlation id.
    Request(oneshot::Sender<Result<Delivered, ClientError>>),
}

impl Waiter {
    pub(crate) fn fail(self, err: ClientError) {
        // A dropped receiver means the caller gave up; nothing to report.
        match self {
            Waiter::Query(tx) => drop(tx.send(Err(err))),
            Waiter::Sync(tx) => drop(tx.send(Err(err))),
            Waiter::Request(tx) => drop(tx.send(Err(err))),
        }
    }
}

/// Pending waits, keyed by what completes them (request id or correlation id) and indexed by
/// the id of the envelope that was sent (what a NACK's `ack_id` or an ERROR's `replyTo` names).
#[derive(Debug, Default)]
pub(crate) struct Waits {
    by_key: HashMap<String, (String, Waiter)>,
    key_of_sent: HashMap<String, String>,
}

impl Waits {
    pub(crate) fn insert(&mut self, key: String, sent_id: String, waiter: Waiter) {
        self.key_of_sent.insert(sent_id.clone(), key.clone());
        self.by_key.insert(key, (sent_id, waiter));
    }

    /// Removes and returns the waiter for `key` if `accept` says it is the right kind.
    pub(crate) fn take_key(&mut self, key: &str, accept: fn(&Waiter) -> bool) -> Option<Waiter> {
        if !self.by_key.get(key).is_some_and(|(_, w)| accept(w)) {
            return None;
        }
        let (sent_id, waiter) = self.by_key.remove(key)?;
        self.key_of_sent.remove(&sent_id);
        Some(waiter)
    }

    /// Removes and returns the waiter whose sent envelope had id `sent_id`.
    pub(crate) fn take_sent(&mut self, sent_id: &str) -> Option<Waiter> {
        let key = self.key_of_sent.remove(sent_id)?;
        self.by_key.remove(&key).map(|(_, w)| w)
    }

    pub(crate) fn remove(&mut self, key: &str) {
        if let Some((sent_id, _)) = self.by_key.remove(key) {
            self.key_of_sent.remove(&sent_id);
        }
    }

    pub(crate) fn drain(&mut self) -> Vec<Waiter> {
        self.key_of_sent.clear();
        self.by_key.drain().map(|(_, (_, w))| w).collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// What both sides see.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ClientConfig,
    /// Signs outgoing SENDs and consensus commands when signing is configured.
    pub signer: Option<Signer>,
    state: Mutex<SessionState>,
    waits: Mutex<Waits>,
}

impl Shared {
    pub(crate) fn new(config: ClientConfig, signer: Option<Signer>) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            signer,
            state: Mutex::new(SessionState::default()),
            waits: Mutex::new(Waits::default()),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, SessionState> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than losing the client, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn waits(&self) -> MutexGuard<'_, Waits> {
        self.waits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails every pending wait (the connection they were sent on is gone).
    pub(crate) fn fail_all_waits(&self, err: impl Fn() -> ClientError) {
        let waiters = self.waits().drain();
        for w in waiters {
            w.fail(err());
        }
    }
}

/// Removes a wait when the waiting future finishes or is dropped.
pub(crate) struct WaitGuard {
    pub shared: Arc<Shared>,
    pub key: String,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.shared.waits().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_found_by_key_or_sent_id_and_kind() {
        let mut w = Waits::default();
        let (tx, _rx) = oneshot::channel();
        w.insert("corr".into(), "send-1".into(), Waiter::Sync(tx));
        assert!(w
            .take_key("corr", |w| matches!(w, Waiter::Query(_)))
            .is_none());
        assert_eq!(w.len(), 1);
        assert!(w.take_sent("send-1").is_some());
        assert_eq!(w.len(), 0);
        assert!(w.take_key("corr", |_| true).is_none());
    }
}
