//! What the duplicate check keeps across a daemon restart.
//!
//! The per-sender dedupe windows ([`super::dedupe`]) live in memory. Two things they know are
//! rebuilt at start-up: the ids of recently stored unsigned SENDs (signed ids are the replay
//! cache's, which is rebuilt the same way), read back from the stored messages, and who is still
//! owed a partly refused broadcast, which the router writes to storage as it changes.

use std::collections::HashSet;

use relay_store::{OwedBroadcast, WriteOp};

use super::Router;

/// At a restart the dedupe windows are refilled from the ids of the unsigned messages stored in
/// this many ms before it...
pub(crate) const RESTORED_MAX_AGE_MS: i64 = 600_000;

/// ...at most this many (the newest).
pub(crate) const RESTORED_MAX_IDS: usize = 100_000;

/// How long storage keeps a partly refused broadcast's owed recipients after its last attempt
/// (what a retry after a daemon restart can rely on); in memory they stay as long as the id is
/// in its sender's dedupe window.
pub(crate) const OWED_KEPT_MS: i64 = 3_600_000;

impl Router {
    /// Keeps who is still owed broadcast `id` in storage (nobody: forgets it), so that the
    /// sender's retry reaches them, and only them, after a daemon restart too; a signed retry
    /// would otherwise be refused there as a replay. Written only when a broadcast is partly
    /// refused and after each retry of one.
    pub(super) fn store_owed(&mut self, sender: &str, id: &str, owed: &HashSet<String>) {
        let mut recipients: Vec<String> = owed.iter().cloned().collect();
        recipients.sort();
        self.store_write(WriteOp::SetOwed(OwedBroadcast {
            sender: sender.to_string(),
            id: id.to_string(),
            recipients,
            updated_at: relay_protocol::now_ms() as i64,
        }));
    }

    /// Takes back what the duplicate check knew when the daemon last stopped: the ids of the
    /// unsigned SENDs stored shortly before (signed ones are in the replay cache), then the
    /// broadcasts still owed ([`Router::store_owed`]).
    pub(crate) fn with_recent_sends(
        mut self,
        ids: Vec<(String, String)>,
        owed: Vec<OwedBroadcast>,
    ) -> Router {
        if !ids.is_empty() || !owed.is_empty() {
            tracing::info!(
                rows = ids.len(),
                owed = owed.len(),
                "duplicate check restored from storage"
            );
        }
        let owed = owed
            .into_iter()
            .map(|o| (o.sender, o.id, o.recipients.into_iter().collect()))
            .collect();
        let window = self.shared.config.delivery.dedupe_window;
        self.dedupe.restore(ids, owed, window);
        self
    }

    /// Forgets owed broadcasts nobody retried for [`OWED_KEPT_MS`].
    pub(crate) fn prune_owed(&mut self) {
        let before = relay_protocol::now_ms() as i64 - OWED_KEPT_MS;
        self.store_write(WriteOp::PruneOwed { before });
    }
}
