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
//! The cache lives in memory; the daemon persists [`ReplayCache::entries`]
//! and [`ReplayCache::floor`] and hands them back to [`ReplayCache::load`]
//! at start-up.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::Replay;

/// Default capacity of [`ReplayCache::default`].
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

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

type Key = (String, String);

/// Bounded set of recently accepted `(signer, m)` pairs.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    capacity: usize,
    seen: HashMap<Key, u64>,
    by_time: BTreeSet<(u64, Key)>,
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
            seen: HashMap::new(),
            by_time: BTreeSet::new(),
            floor: None,
        }
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
        let key = (signer.to_string(), m.to_string());
        if let Some(&first_t) = self.seen.get(&key) {
            return Err(Replay::Seen {
                signer: key.0,
                m: key.1,
                first_t,
            });
        }
        self.insert(key, t);
        Ok(())
    }

    /// Drops entries whose window has passed; returns how many.
    pub fn evict_expired(&mut self, now: u64, window: u64) -> usize {
        let mut dropped = 0;
        while let Some((t, _)) = self.by_time.first() {
            if now.saturating_sub(*t) <= window {
                break;
            }
            if let Some((_, key)) = self.by_time.pop_first() {
                self.seen.remove(&key);
                dropped += 1;
            }
        }
        if self.floor.is_some_and(|f| now.saturating_sub(f) > window) {
            // Every signature at or before the floor is outside the window now.
            self.floor = None;
        }
        dropped
    }

    /// Entries currently held, oldest first (for persistence).
    pub fn entries(&self) -> Vec<ReplayEntry> {
        self.by_time
            .iter()
            .map(|(t, (signer, m))| ReplayEntry {
                signer: signer.clone(),
                m: m.clone(),
                t: *t,
            })
            .collect()
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
            let key = (e.signer, e.m);
            if let Some(&old) = self.seen.get(&key) {
                if old <= e.t {
                    continue;
                }
                self.by_time.remove(&(old, key.clone()));
                self.seen.remove(&key);
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

    fn insert(&mut self, key: Key, t: u64) {
        while self.seen.len() >= self.capacity {
            let Some((old_t, old_key)) = self.by_time.pop_first() else {
                break;
            };
            self.seen.remove(&old_key);
            self.floor = Some(self.floor.map_or(old_t, |f| f.max(old_t)));
        }
        self.by_time.insert((t, key.clone()));
        self.seen.insert(key, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1000;

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
        let saved = c.entries();
        assert_eq!(saved[0].m, "m1");
        let mut d = ReplayCache::new(10);
        assert_eq!(d.load(saved, Some(600), 1500, W), 1);
        assert_eq!(d.floor(), Some(600));
        assert!(matches!(
            d.check_and_insert("c", "m9", 600, 1500, W),
            Err(Replay::BelowFloor { .. })
        ));
        assert!(matches!(
            d.check_and_insert("b", "m2", 900, 1500, W),
            Err(Replay::Seen { .. })
        ));
        let json = serde_json::to_string(&d.entries()).unwrap();
        assert_eq!(json, r#"[{"signer":"b","m":"m2","t":900}]"#);
    }
}
