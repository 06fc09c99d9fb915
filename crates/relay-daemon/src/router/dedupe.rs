//! Which message ids each sender has had accepted recently, so that a frame sent again (a
//! client retrying after a lost ACK or a reconnect) is delivered once.
//!
//! Every sender has a window of its last `delivery.dedupe_window` accepted ids. Ids are kept as
//! 128-bit keyed hashes (SipHash-1-3 under two random keys chosen when the daemon starts), not
//! as text: about 40 bytes an id whatever its length, where the strings took about 150. Two
//! different ids of one sender would have to agree in all 128 bits for the second to be taken
//! for a duplicate; in a full window of 10,000 ids the chance is below 10⁻²⁹, and nobody
//! outside the daemon knows the keys to aim for it.
//!
//! Windows outlive their sender's connection, because a client resends after reconnecting,
//! but only for the senders who left most recently: at most [`MAX_ABSENT_SENDERS`] of them
//! holding [`MAX_ABSENT_IDS`] ids in all. Beyond that the windows of those who left first are
//! forgotten, so a daemon that sees many short-lived senders stays bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};

/// Senders no longer connected whose windows are kept.
pub(crate) const MAX_ABSENT_SENDERS: usize = 1024;

/// Ids kept in all for senders no longer connected (about 40 MB).
pub(crate) const MAX_ABSENT_IDS: usize = 1_000_000;

/// A message id as the windows keep it: its 128-bit keyed hash ([`SendDedupe::key`]).
pub(crate) type IdKey = u128;

/// Hasher of the windows' sets and maps: the keys are keyed hashes already.
type IdKeyBuild = relay_signing::PrehashedKeys;

/// What the windows know of a sender's message id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen<'a> {
    /// Not accepted from this sender recently.
    New,
    /// Accepted already: a duplicate.
    Duplicate,
    /// An accepted broadcast that these recipients refused for now: a retry goes to them only.
    Owed(&'a HashSet<String>),
}

/// One sender's recently accepted ids (bounded).
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<IdKey, IdKeyBuild>,
    order: VecDeque<IdKey>,
    /// Broadcasts accepted while some recipients refused them (NACK BUSY): who is still owed
    /// the message.
    owed: HashMap<IdKey, HashSet<String>, IdKeyBuild>,
}

impl RecentIds {
    /// Records `key`; false if it was already there.
    fn insert(&mut self, key: IdKey, cap: usize) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        while self.order.len() >= cap.max(1) {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.set.remove(&old);
            self.owed.remove(&old);
        }
        self.set.insert(key);
        self.order.push_back(key);
        true
    }

    fn set_owed(&mut self, key: IdKey, names: HashSet<String>) {
        if names.is_empty() || !self.set.contains(&key) {
            self.owed.remove(&key);
        } else {
            self.owed.insert(key, names);
        }
    }
}

/// The dedupe windows of every sender.
#[derive(Debug, Default)]
pub(crate) struct SendDedupe {
    keys: (RandomState, RandomState),
    windows: HashMap<String, RecentIds>,
    /// Senders whose connection closed, in the order they left. A name that is connected again
    /// stays listed until [`Self::sender_left`] next looks; it is skipped then, not forgotten.
    departed: VecDeque<String>,
}

impl SendDedupe {
    /// The key of message id `id`: computed once per frame and passed to the lookups below.
    pub(crate) fn key(&self, id: &str) -> IdKey {
        let half = |state: &RandomState| {
            let mut h = state.build_hasher();
            h.write(id.as_bytes());
            h.finish()
        };
        (u128::from(half(&self.keys.0)) << 64) | u128::from(half(&self.keys.1))
    }

    /// Whether `sender` has a window (it had an id remembered, and its window was not dropped).
    pub(crate) fn has_window(&self, sender: &str) -> bool {
        self.windows.contains_key(sender)
    }

    /// What is known of the id keyed `key` from `sender`.
    pub(crate) fn seen(&self, sender: &str, key: IdKey) -> Seen<'_> {
        let Some(window) = self.windows.get(sender) else {
            return Seen::New;
        };
        if !window.set.contains(&key) {
            return Seen::New;
        }
        match window.owed.get(&key) {
            Some(names) => Seen::Owed(names),
            None => Seen::Duplicate,
        }
    }

    /// Whether `id` from `sender` is an accepted broadcast some recipients are still owed.
    /// Hashes `id` only when `sender` is owed something: asked of every signed SEND.
    pub(crate) fn is_owed(&self, sender: &str, id: &str) -> bool {
        self.windows
            .get(sender)
            .is_some_and(|w| !w.owed.is_empty() && w.owed.contains_key(&self.key(id)))
    }

    /// Records `id` as accepted from `sender` (a window of `cap` ids); false if it was already.
    pub(crate) fn insert(&mut self, sender: &str, id: &str, cap: usize) -> bool {
        let key = self.key(id);
        self.window_of(sender).insert(key, cap)
    }

    /// Records the id keyed `key` as accepted from `sender` and still owed to `owed` (nobody: a
    /// plain accepted id; an entry already there is updated).
    pub(crate) fn remember(&mut self, sender: &str, key: IdKey, cap: usize, owed: HashSet<String>) {
        let window = self.window_of(sender);
        window.insert(key, cap);
        window.set_owed(key, owed);
    }

    fn window_of(&mut self, sender: &str) -> &mut RecentIds {
        if !self.windows.contains_key(sender) {
            self.windows
                .insert(sender.to_string(), RecentIds::default());
        }
        self.windows
            .get_mut(sender)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Takes back what the windows knew before a restart: the ids accepted then, oldest first
    /// (`(sender, id)`, a pair repeated for each recipient of a broadcast), and the broadcasts
    /// still owed (`(sender, id, recipients)`), in windows of `cap`. Nobody is connected yet:
    /// every sender restored counts as having left, so the bounds on absent senders hold.
    pub(crate) fn restore(
        &mut self,
        ids: Vec<(String, String)>,
        owed: Vec<(String, String, HashSet<String>)>,
        cap: usize,
    ) {
        let owed = owed.into_iter();
        let accepted = ids
            .into_iter()
            .map(|(sender, id)| (sender, id, HashSet::new()));
        for (sender, id, recipients) in accepted.chain(owed) {
            if !self.windows.contains_key(&sender) {
                self.departed.push_back(sender.clone());
            }
            let key = self.key(&id);
            self.remember(&sender, key, cap, recipients);
        }
        self.forget_oldest_absent();
    }

    /// `sender`'s connection closed: its window is kept for a while (see the module doc).
    /// `connected` tells which names are connected now.
    pub(crate) fn sender_left(&mut self, sender: &str, connected: impl Fn(&str) -> bool) {
        if !self.windows.contains_key(sender) {
            return;
        }
        self.departed.retain(|name| name != sender);
        self.departed.push_back(sender.to_string());
        self.departed.retain(|name| !connected(name));
        self.forget_oldest_absent();
    }

    /// Drops the windows of the senders who left first, beyond the bounds on absent senders.
    fn forget_oldest_absent(&mut self) {
        let mut ids: usize = self
            .departed
            .iter()
            .filter_map(|name| self.windows.get(name))
            .map(|w| w.order.len())
            .sum();
        while self.departed.len() > MAX_ABSENT_SENDERS || ids > MAX_ABSENT_IDS {
            let Some(oldest) = self.departed.pop_front() else {
                break;
            };
            if let Some(window) = self.windows.remove(&oldest) {
                ids -= window.order.len();
            }
        }
    }

    /// Senders with a window (connected or not).
    #[cfg(test)]
    fn senders(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn restored_ids_are_duplicates_and_their_senders_count_as_absent() {
        let mut d = SendDedupe::default();
        let last = format!("agent-{}", MAX_ABSENT_SENDERS + 1);
        let ids = (0..MAX_ABSENT_SENDERS + 2)
            .map(|i| (format!("agent-{i}"), "m-1".to_string()))
            .chain([(last.clone(), "m-2".to_string())])
            .collect();
        d.restore(ids, Vec::new(), 10);
        assert_eq!(d.seen(&last, d.key("m-1")), Seen::Duplicate);
        assert_eq!(d.seen(&last, d.key("m-2")), Seen::Duplicate);
        assert_eq!(d.seen(&last, d.key("m-3")), Seen::New);
        assert_eq!(d.seen("agent-2", d.key("m-1")), Seen::Duplicate);
        // The senders restored first are forgotten first, as if they had left first.
        assert_eq!(d.senders(), MAX_ABSENT_SENDERS);
        assert_eq!(d.seen("agent-0", d.key("m-1")), Seen::New);
        assert_eq!(d.seen("agent-1", d.key("m-1")), Seen::New);
    }

    #[test]
    fn restored_owed_broadcasts_are_owed_and_their_senders_count_as_absent() {
        let mut d = SendDedupe::default();
        let ids = vec![("Alice".to_string(), "b-1".to_string())];
        let owed = vec![
            ("Alice".to_string(), "b-1".to_string(), names(&["Carol"])),
            // A signed broadcast: its id is not among the unsigned ones restored.
            (
                "Bob".to_string(),
                "b-2".to_string(),
                names(&["Carol", "Dave"]),
            ),
        ];
        d.restore(ids, owed, 10);
        assert_eq!(
            d.seen("Alice", d.key("b-1")),
            Seen::Owed(&names(&["Carol"]))
        );
        assert!(d.is_owed("Bob", "b-2"));
        assert_eq!(d.departed, ["Alice", "Bob"]);
    }

    #[test]
    fn an_id_is_new_once_per_sender() {
        let mut d = SendDedupe::default();
        assert_eq!(d.seen("Alice", d.key("m-1")), Seen::New);
        assert!(d.insert("Alice", "m-1", 10));
        assert!(!d.insert("Alice", "m-1", 10));
        assert_eq!(d.seen("Alice", d.key("m-1")), Seen::Duplicate);
        assert_eq!(d.seen("Alice", d.key("m-2")), Seen::New);
        assert_eq!(
            d.seen("Bob", d.key("m-1")),
            Seen::New,
            "windows are per sender"
        );
    }

    #[test]
    fn the_window_keeps_the_last_ids_only() {
        let mut d = SendDedupe::default();
        for i in 0..5 {
            assert!(d.insert("Alice", &format!("m-{i}"), 3));
        }
        assert_eq!(
            d.seen("Alice", d.key("m-1")),
            Seen::New,
            "pushed out of the window"
        );
        for i in 2..5 {
            assert_eq!(d.seen("Alice", d.key(&format!("m-{i}"))), Seen::Duplicate);
        }
    }

    #[test]
    fn owed_recipients_are_kept_until_nobody_is_owed() {
        let mut d = SendDedupe::default();
        d.remember("Alice", d.key("b-1"), 10, names(&["Carol", "Dave"]));
        assert_eq!(
            d.seen("Alice", d.key("b-1")),
            Seen::Owed(&names(&["Carol", "Dave"]))
        );
        assert!(d.is_owed("Alice", "b-1"));
        d.remember("Alice", d.key("b-1"), 10, names(&["Dave"]));
        assert_eq!(d.seen("Alice", d.key("b-1")), Seen::Owed(&names(&["Dave"])));
        d.remember("Alice", d.key("b-1"), 10, HashSet::new());
        assert_eq!(d.seen("Alice", d.key("b-1")), Seen::Duplicate);
        assert!(!d.is_owed("Alice", "b-1"));
        // An owed entry leaves with its id.
        d.remember("Alice", d.key("b-2"), 1, names(&["Carol"]));
        d.insert("Alice", "b-3", 1);
        assert_eq!(d.seen("Alice", d.key("b-2")), Seen::New);
    }

    #[test]
    fn windows_of_departed_senders_are_bounded_oldest_first() {
        let mut d = SendDedupe::default();
        let connected = |_: &str| false;
        for i in 0..MAX_ABSENT_SENDERS + 5 {
            let name = format!("agent-{i}");
            d.insert(&name, "m-1", 10);
            d.sender_left(&name, connected);
        }
        assert_eq!(d.senders(), MAX_ABSENT_SENDERS);
        assert_eq!(
            d.seen("agent-4", d.key("m-1")),
            Seen::New,
            "the first to leave is forgotten"
        );
        assert_eq!(d.seen("agent-5", d.key("m-1")), Seen::Duplicate);
        let last = format!("agent-{}", MAX_ABSENT_SENDERS + 4);
        assert_eq!(d.seen(&last, d.key("m-1")), Seen::Duplicate);
    }

    #[test]
    fn departed_windows_are_bounded_by_their_ids_and_connected_senders_keep_theirs() {
        let mut d = SendDedupe::default();
        let per_sender = MAX_ABSENT_IDS / 2;
        for i in 0..per_sender {
            d.insert("Back", &format!("m-{i}"), per_sender);
        }
        d.sender_left("Back", |_| false);
        // Back reconnects; two others leave with half the budget each.
        for name in ["Gone-1", "Gone-2"] {
            for i in 0..per_sender {
                d.insert(name, &format!("m-{i}"), per_sender);
            }
            d.sender_left(name, |n| n == "Back");
        }
        assert_eq!(
            d.seen("Back", d.key("m-0")),
            Seen::Duplicate,
            "connected: never dropped"
        );
        assert_eq!(d.seen("Gone-1", d.key("m-0")), Seen::Duplicate);
        // A third departure goes over the budget: the earliest to leave is forgotten.
        d.insert("Gone-3", "m-0", 10);
        d.sender_left("Gone-3", |n| n == "Back");
        assert_eq!(d.seen("Gone-1", d.key("m-0")), Seen::New);
        assert_eq!(d.seen("Gone-2", d.key("m-0")), Seen::Duplicate);
        assert_eq!(d.seen("Gone-3", d.key("m-0")), Seen::Duplicate);
        assert_eq!(d.seen("Back", d.key("m-0")), Seen::Duplicate);
    }

    #[test]
    fn different_ids_get_different_keys() {
        let d = SendDedupe::default();
        let keys: HashSet<IdKey> = (0..100_000).map(|i| d.key(&format!("id-{i}"))).collect();
        assert_eq!(keys.len(), 100_000);
        assert_eq!(d.key("id-7"), d.key("id-7"));
    }
}
