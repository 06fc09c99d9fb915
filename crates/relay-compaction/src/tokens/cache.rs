//! A bounded, thread-safe cache of token counts keyed by a hash of the text.
//!
//! Two generations: lookups check the young one, then the old one (a hit
//! there is moved to the young one). When the young generation is full, the
//! old one is discarded and the young one becomes old. So at most
//! `capacity` entries are held, recently used counts survive, and no entry
//! needs a timestamp or a list (an approximation of LRU).
//!
//! The key is the text's 64-bit SipHash together with its length, so a
//! wrong count needs a hash collision between two texts of the same length.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Hit, miss and size figures of a [`TokenCounter`](crate::TokenCounter)'s
/// cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to count.
    pub misses: u64,
    /// Counts held now.
    pub entries: usize,
    /// The most counts held at once.
    pub capacity: usize,
}

type Key = (u64, usize);

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Key, usize>,
    old: HashMap<Key, usize>,
}

#[derive(Debug)]
pub(crate) struct CountCache {
    generations: Mutex<Generations>,
    /// Entries per generation.
    per_generation: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

pub(crate) fn key_of(text: &str) -> Key {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    (hasher.finish(), text.len())
}

impl CountCache {
    pub(crate) fn new(capacity: usize) -> Self {
        CountCache {
            generations: Mutex::new(Generations::default()),
            per_generation: (capacity / 2).max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave a half-written count
        // behind (inserts are single calls), so a poisoned lock is usable.
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, key: Key) -> Option<usize> {
        let mut generations = self.lock();
        let found = match generations.young.get(&key) {
            Some(&count) => Some(count),
            None => match generations.old.remove(&key) {
                Some(count) => {
                    Self::insert_young(&mut generations, self.per_generation, key, count);
                    Some(count)
                }
                None => None,
            },
        };
        drop(generations);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, key: Key, count: usize) {
        let mut generations = self.lock();
        Self::insert_young(&mut generations, self.per_generation, key, count);
    }

    fn insert_young(generations: &mut Generations, per_generation: usize, key: Key, count: usize) {
        if generations.young.len() >= per_generation && !generations.young.contains_key(&key) {
            generations.old = std::mem::take(&mut generations.young);
            generations.old.remove(&key);
        }
        generations.young.insert(key, count);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let generations = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: generations.young.len() + generations.old.len(),
            capacity: self.per_generation * 2,
        }
    }

    pub(crate) fn clear(&self) {
        let mut generations = self.lock();
        generations.young.clear();
        generations.old.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_recent_entries() {
        let cache = CountCache::new(10);
        for i in 0..100usize {
            cache.insert(key_of(&i.to_string()), i);
            assert!(cache.stats().entries <= 10);
        }
        assert_eq!(cache.get(key_of("99")), Some(99));
        assert_eq!(cache.get(key_of("0")), None);
    }

    #[test]
    fn old_generation_hits_are_promoted() {
        let cache = CountCache::new(4);
        cache.insert(key_of("a"), 1);
        cache.insert(key_of("b"), 2);
        // Young is full: "c" moves a and b to the old generation.
        cache.insert(key_of("c"), 3);
        assert_eq!(cache.get(key_of("a")), Some(1));
        // "d" rotates again: b (not used) is gone, a (promoted) stays.
        cache.insert(key_of("d"), 4);
        cache.insert(key_of("e"), 5);
        assert_eq!(cache.get(key_of("a")), Some(1));
        assert_eq!(cache.get(key_of("b")), None);
    }
}
