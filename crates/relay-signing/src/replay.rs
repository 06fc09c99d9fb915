//! Replay protection: which `(signer, m)` pairs were accepted inside the
//! window.
//!
//! An entry is kept while `now - t <= window`; after that a copy of the
//! message fails the time check anyway. The cache is bounded: when it is full
//! of entries still inside their window, the oldest is dropped and its `t`
//! becomes the *floor*, and every later signature with `t <= floor` is
//! refused ([`Replay::BelowFloor`]). Overflow thus costs availability for old
//! signatures, never a replay.
//!
//! Entries are compact so that the cache can cover a busy daemon's whole window: a pair is kept
//! as a 64-bit keyed hash (SipHash with a per-process random key) and its time, about 40 bytes
//! with the queue that orders them. Two different pairs sharing a hash would make the second be
//! refused as a replay; with a million entries the chance is about 3 in 100 million.
//!
//! The cache lives in memory; the daemon persists each accepted pair and hands the recent ones
//! back to [`ReplayCache::load`] at start-up.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use serde::{Deserialize, Serialize};

use crate::error::Replay;

/// Default capacity of [`ReplayCache::default`]: at most about 40 MB, reached only by more than
/// 3,000 signed messages a second sustained over a 300 s window.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

/// Entries the cache keeps room for however quiet it gets (a few hundred KiB).
const MIN_KEPT_CAPACITY: usize = 4096;

/// The hasher of maps and sets whose keys are keyed hashes already (uniformly distributed
/// `u64` or `u128`), such as [`ReplayCache`]'s: a key's (low) 64 bits serve as its hash instead
/// of hashing it a second time.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrehashedKeyHasher(u64);

/// Builds [`PrehashedKeyHasher`]s.
pub type PrehashedKeys = BuildHasherDefault<PrehashedKeyHasher>;

impl Hasher for PrehashedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` and `u128` keys are expected; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

/// One accepted signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayEntry {
    /// The signing agent.
    pub signer: String,
    /// The signed message id (`_sig.m`).
    pub m: String,
    /// The signing time (`_sig.t`).
    pub t: u64,
}

/// Bounded set of recently accepted `(signer, m)` pairs.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    capacity: usize,
    keys: RandomState,
    /// Pair hash → signing time. The keys are keyed hashes already, so the
    /// map uses them as they are instead of hashing them a second time.
    seen: HashMap<u64, u64, PrehashedKeys>,
    /// (pair hash, signing time) in insertion order.
    order: VecDeque<(u64, u64)>,
    floor: Option<u64>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity: capacity.max(1),
            keys: RandomState::new(),
            seen: HashMap::default(),
            order: VecDeque::new(),
            floor: None,
        }
    }

    fn key(&self, signer: &str, m: &str) -> u64 {
        let mut h = self.keys.build_hasher();
        signer.hash(&mut h);
        m.hash(&mut h);
        h.finish()
    }

    /// Records `(signer, m)` signed at `t`, or refuses it as a replay.
    ///
    /// Call it only for signatures that verified, so forgeries cannot fill
    /// the cache.
    pub fn check_and_insert(
        &mut self,
        signer: &str,
        m: &str,
        t: u64,
        now: u64,
        window: u64,
    ) -> Result<(), Replay> {
        if t.abs_diff(now) > window {
            return Err(Replay::OutsideWindow { t, now, window });
        }
        self.evict_expired(now, window);
        if let Some(floor) = self.floor {
            if t <= floor {
                return Err(Replay::BelowFloor { t, floor });
            }
        }
        let key = self.key(signer, m);
        if let Some(&first_t) = self.seen.get(&key) {
            return Err(Replay::Seen {
                signer: signer.to_string(),
                m: m.to_string(),
                first_t,
            });
        }
        self.insert(key, t);
        Ok(())
    }

    /// Whether `(signer, m)` was accepted and is still held (inside its window, or expired
    /// but not yet dropped by the next [`check_and_insert`](Self::check_and_insert)).
    pub fn contains(&self, signer: &str, m: &str) -> bool {
        !self.seen.is_empty() && self.seen.contains_key(&self.key(signer, m))
    }

    /// Drops entries whose window has passed; returns how many.
    ///
    /// Entries leave in insertion order: one signed long before it arrived may stay a little
    /// longer than its window, which only keeps refusing what the time check refuses anyway.
    pub fn evict_expired(&mut self, now: u64, window: u64) -> usize {
        let mut dropped = 0;
        while let Some(&(key, t)) = self.order.front() {
            if now.saturating_sub(t) <= window {
                break;
            }
            self.order.pop_front();
            self.forget(key, t);
            dropped += 1;
        }
        if dropped > 0 {
            self.give_back_memory();
        }
        if self.floor.is_some_and(|f| now.saturating_sub(f) > window) {
            // Every signature at or before the floor is outside the window now.
            self.floor = None;
        }
        dropped
    }

    /// Newest `t` dropped for lack of room while still in its window.
    pub fn floor(&self) -> Option<u64> {
        self.floor
    }

    /// Restores persisted entries and floor, skipping those outside the
    /// window; returns how many entries were loaded.
    pub fn load(
        &mut self,
        entries: impl IntoIterator<Item = ReplayEntry>,
        floor: Option<u64>,
        now: u64,
        window: u64,
    ) -> usize {
        if let Some(f) = floor {
            self.floor = Some(self.floor.map_or(f, |old| old.max(f)));
        }
        let mut loaded = 0;
        for e in entries {
            if now.saturating_sub(e.t) > window {
                continue;
            }
            let key = self.key(&e.signer, &e.m);
            if let Some(&old) = self.seen.get(&key) {
                if old <= e.t {
                    continue;
                }
            }
            self.insert(key, e.t);
            loaded += 1;
        }
        self.evict_expired(now, window);
        loaded
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Once a burst has left the window, most of the table is empty: keep room for twice what
    /// is held (the table grows again by doubling if traffic returns), but never less than
    /// [`MIN_KEPT_CAPACITY`].
    fn give_back_memory(&mut self) {
        let keep = (self.seen.len() * 2).max(MIN_KEPT_CAPACITY);
        if self.seen.capacity() > 4 * keep {
            self.seen.shrink_to(keep);
        }
        if self.order.capacity() > 4 * keep.max(self.order.len()) {
            self.order.shrink_to(keep);
        }
    }

    fn forget(&mut self, key: u64, t: u64) {
        // A pair reloaded with an earlier time left a stale queue entry behind.
        if self.seen.get(&key) == Some(&t) {
            self.seen.remove(&key);
        }
    }

    fn insert(&mut self, key: u64, t: u64) {
        while self.seen.len() >= self.capacity {
            let Some((old_key, old_t)) = self.order.pop_front() else {
                break;
            };
            if self.seen.get(&old_key) == Some(&old_t) {
                self.seen.remove(&old_key);
                self.floor = Some(self.floor.map_or(old_t, |f| f.max(old_t)));
            }
        }
        self.order.push_back((key, t));
        self.seen.insert(key, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1000;

    #[test]
    fn a_full_window_of_a_busy_daemon_fits() {
        let mut c = ReplayCache::default();
        for i in 0..200_000u64 {
            c.check_and_insert("bench", &format!("m{i}"), 1_000 + i / 100, 3_000, 300_000)
                .unwrap();
        }
        assert_eq!(c.floor(), None, "nothing had to be dropped");
        assert!(c
            .check_and_insert("bench", "m7", 1_000, 3_000, 300_000)
            .is_err());
    }

    #[test]
    fn memory_is_given_back_once_a_burst_leaves_the_window() {
        let mut c = ReplayCache::default();
        for i in 0..100_000u64 {
            c.check_and_insert("bench", &format!("m{i}"), 1_000 + i / 1_000, 1_100, W)
                .unwrap();
        }
        let grown = (c.seen.capacity(), c.order.capacity());
        assert!(grown.0 >= 100_000 && grown.1 >= 100_000, "{grown:?}");
        // Everything but the last millisecond's 1,000 entries is past its window.
        assert_eq!(c.evict_expired(1_099 + W, W), 99_000);
        assert_eq!(c.len(), 1_000);
        assert!(
            c.seen.capacity() <= 16_384 && c.order.capacity() <= 16_384,
            "kept {} and {} after {grown:?}",
            c.seen.capacity(),
            c.order.capacity()
        );
        // What is still held is still refused, and the cache grows again.
        assert!(c.contains("bench", "m99999") && !c.contains("bench", "m0"));
        for i in 0..20_000u64 {
            c.check_and_insert("next", &format!("n{i}"), 1_200, 1_099 + W, W)
                .unwrap();
        }
        assert_eq!(c.len(), 21_000);
    }

    #[test]
    fn a_second_copy_is_a_replay() {
        let mut c = ReplayCache::new(10);
        assert_eq!(c.check_and_insert("a", "m1", 100, 100, W), Ok(()));
        assert_eq!(
            c.check_and_insert("a", "m1", 100, 150, W),
            Err(Replay::Seen {
                signer: "a".into(),
                m: "m1".into(),
                first_t: 100
            })
        );
        // Same id from another signer is another message.
        assert_eq!(c.check_and_insert("b", "m1", 100, 150, W), Ok(()));
        assert!(c.contains("a", "m1") && c.contains("b", "m1"));
        assert!(!c.contains("a", "m2") && !c.contains("c", "m1"));
    }

    #[test]
    fn entries_leave_when_their_window_ends() {
        let mut c = ReplayCache::new(10);
        c.check_and_insert("a", "m1", 1000, 1000, W).unwrap();
        c.check_and_insert("a", "m2", 1500, 1500, W).unwrap();
        assert_eq!(c.evict_expired(2000, W), 0);
        assert_eq!(c.evict_expired(2001, W), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.check_and_insert("a", "m1", 1000, 2001, W),
            Err(Replay::OutsideWindow {
                t: 1000,
                now: 2001,
                window: W
            })
        );
    }

    #[test]
    fn overflow_raises_the_floor_instead_of_forgetting_silently() {
        let mut c = ReplayCache::new(2);
        c.check_and_insert("a", "m1", 100, 100, W).unwrap();
        c.check_and_insert("a", "m2", 200, 200, W).unwrap();
        c.check_and_insert("a", "m3", 300, 300, W).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.floor(), Some(100));
        assert_eq!(
            c.check_and_insert("a", "m1", 100, 300, W),
            Err(Replay::BelowFloor { t: 100, floor: 100 })
        );
        assert_eq!(c.check_and_insert("a", "m4", 101, 300, W), Ok(()));
        assert_eq!(c.floor(), Some(200));
        // Once the floor is outside the window it no longer matters.
        c.evict_expired(1201, W);
        assert_eq!(c.floor(), None);
    }

    #[test]
    fn entries_survive_a_save_and_load() {
        let mut c = ReplayCache::new(10);
        c.check_and_insert("a", "m1", 100, 100, W).unwrap();
        c.check_and_insert("b", "m2", 900, 900, W).unwrap();
        let saved = vec![
            ReplayEntry {
                signer: "a".into(),
                m: "m1".into(),
                t: 100,
            },
            ReplayEntry {
                signer: "b".into(),
                m: "m2".into(),
                t: 900,
            },
        ];
        let mut d = ReplayCache::new(10);
        assert_eq!(d.load(saved.clone(), Some(600), 1500, W), 1);
        assert_eq!(d.floor(), Some(600));
        assert!(matches!(
            d.check_and_insert("c", "m9", 600, 1500, W),
            Err(Replay::BelowFloor { .. })
        ));
        assert!(matches!(
            d.check_and_insert("b", "m2", 900, 1500, W),
            Err(Replay::Seen { .. })
        ));
        assert_eq!(d.len(), 1);
        let json = serde_json::to_string(&saved[1]).unwrap();
        assert_eq!(json, r#"{"signer":"b","m":"m2","t":900}"#);
    }
}
