//! The replay cache's set of pair hashes: a flat open-addressing table of `(hash, time)` slots.
//!
//! The cache holds every signed message of the replay window, so on a busy daemon the table is
//! megabytes large and each message's lookup lands on memory no other message touched recently.
//! A general hash map keeps its control bytes apart from its entries, which costs two cache
//! misses per new message (the probe, then the write of the entry). Here the hash and the time
//! share one 16-byte slot, so the probe and the insert that follows it touch one cache line.
//!
//! Keys are keyed 64-bit hashes, uniformly distributed, so a key's low bits are its home slot.
//! Key `0` marks an empty slot; [`PairTable`]'s callers never use it. Collisions are resolved by
//! linear probing, at most 5/8 of the slots are used (a miss then reads about four slots, one
//! or two cache lines), and removal shifts the following run back (no tombstones), so probe runs
//! stay short however many entries come and go.

/// Fewest slots once the table holds anything.
const MIN_SLOTS: usize = 1024;

/// Hash → signing time, for non-zero hashes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairTable {
    /// `(hash, time)`, `hash == 0` when empty; the length is zero or a power of two.
    slots: Vec<(u64, u64)>,
    len: usize,
}

impl PairTable {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The time stored for `key`.
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        debug_assert_ne!(key, 0, "0 marks an empty slot");
        self.find(key).map(|i| self.slots[i].1)
    }

    /// Stores `key` at `t` unless it is held already; `Err` gives the time it is held at.
    pub(crate) fn insert_new(&mut self, key: u64, t: u64) -> Result<(), u64> {
        debug_assert_ne!(key, 0, "0 marks an empty slot");
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS));
        }
        let mask = self.slots.len() - 1;
        let mut i = home(key, mask);
        loop {
            match self.slots[i] {
                (0, _) => {
                    self.slots[i] = (key, t);
                    self.len += 1;
                    return Ok(());
                }
                (held, held_t) if held == key => return Err(held_t),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Stores `key` at `t`, replacing the time it is held at, if any.
    pub(crate) fn set(&mut self, key: u64, t: u64) {
        if let Some(i) = self.find(key) {
            self.slots[i].1 = t;
        } else if self.insert_new(key, t).is_err() {
            unreachable!("a key that was not found is new");
        }
    }

    /// Removes `key` if it is held at `t` (a key stored again since keeps its newer entry).
    /// Returns whether it was removed.
    pub(crate) fn remove_if_at(&mut self, key: u64, t: u64) -> bool {
        let Some(mut hole) = self.find(key) else {
            return false;
        };
        if self.slots[hole].1 != t {
            return false;
        }
        // Backward-shift deletion: move each later entry of the run into the hole when its
        // home slot is not between the hole and where it sits, so every entry stays reachable
        // from its home without tombstones.
        let mask = self.slots.len() - 1;
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let (key_there, _) = self.slots[next];
            if key_there == 0 {
                break;
            }
            let home_there = home(key_there, mask);
            let stays = if hole <= next {
                hole < home_there && home_there <= next
            } else {
                hole < home_there || home_there <= next
            };
            if !stays {
                self.slots[hole] = self.slots[next];
                hole = next;
            }
        }
        self.slots[hole] = (0, 0);
        self.len -= 1;
        // Give memory back after a burst, with room to grow again before the next resize.
        if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize((self.slots.len() / 4).max(MIN_SLOTS));
        }
        true
    }

    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = home(key, mask);
        loop {
            match self.slots[i].0 {
                0 => return None,
                held if held == key => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn resize(&mut self, slots: usize) {
        debug_assert!(slots.is_power_of_two() && slots * 5 >= self.len * 8);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); slots]);
        let mask = slots - 1;
        for (key, t) in old.into_iter().filter(|&(key, _)| key != 0) {
            let mut i = home(key, mask);
            while self.slots[i].0 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (key, t);
        }
    }
}

/// The slot a key's probe starts at: its low bits (the keys are uniform hashes already).
fn home(key: u64, mask: usize) -> usize {
    // Only the bits under the mask are kept, so the truncation on 32-bit targets is harmless.
    (key as usize) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn holds_what_a_map_holds_through_inserts_and_removals() {
        // Half the keys start their probe in the table's last 16 slots, whatever its size, the
        // other half in its first 7: long runs that wrap around the end and meet, the case
        // backward-shift deletion must get right.
        let keys: Vec<u64> = (1..=3000u64)
            .map(|i| {
                if i.is_multiple_of(2) {
                    (i << 40) | 0xffff_fff0 | (i % 16)
                } else {
                    (i << 40) | (i % 7 + 1)
                }
            })
            .collect();
        let mut table = PairTable::default();
        let mut model = HashMap::new();
        for (n, &k) in keys.iter().enumerate() {
            assert_eq!(table.insert_new(k, n as u64), Ok(()));
            model.insert(k, n as u64);
            assert_eq!(
                table.insert_new(k, 0),
                Err(n as u64),
                "a second insert is refused"
            );
        }
        for (n, &k) in keys.iter().enumerate().filter(|(n, _)| n.is_multiple_of(2)) {
            assert!(!table.remove_if_at(k, n as u64 + 1), "wrong time: kept");
            assert!(table.remove_if_at(k, n as u64));
            assert!(!table.remove_if_at(k, n as u64), "already gone");
            model.remove(&k);
        }
        assert_eq!(table.len(), model.len());
        for &k in &keys {
            assert_eq!(table.get(k), model.get(&k).copied(), "key {k:#x}");
        }
        for (&k, &t) in &model {
            table.set(k, t + 10);
        }
        for &k in &keys {
            assert_eq!(table.get(k), model.get(&k).map(|t| t + 10));
        }
    }

    #[test]
    fn memory_is_given_back_once_most_entries_leave() {
        let mut table = PairTable::default();
        for k in 1..=100_000u64 {
            table
                .insert_new(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k)
                .unwrap();
        }
        let grown = table.slots.len();
        assert!(grown >= 160_000);
        for k in 1..=99_900u64 {
            assert!(table.remove_if_at(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k));
        }
        assert!(
            table.slots.len() * 16 <= grown,
            "{} slots left",
            table.slots.len()
        );
        for k in 99_901..=100_000u64 {
            assert_eq!(table.get(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)), Some(k));
        }
        assert_eq!(table.len(), 100);
    }

    proptest::proptest! {
        /// Any mix of inserts, updates and removals leaves the table holding what a map holds.
        /// Keys start their probes in the table's first or last four slots, so runs are long,
        /// wrap around and pass entries sitting in their home slots.
        #[test]
        fn random_operations_match_a_map(
            ops in proptest::collection::vec((0u8..3, 0u64..400, 0u64..4), 1..2000)
        ) {
            let key = |k: u64| (k << 32) | if k.is_multiple_of(2) { 0xffff_fffc | (k / 2 % 4) } else { k / 2 % 4 };
            let mut table = PairTable::default();
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (op, k, t) in ops {
                let k = key(k);
                match op {
                    0 => {
                        let expected = match model.get(&k) {
                            Some(&held) => Err(held),
                            None => {
                                model.insert(k, t);
                                Ok(())
                            }
                        };
                        proptest::prop_assert_eq!(table.insert_new(k, t), expected);
                    }
                    1 => {
                        table.set(k, t);
                        model.insert(k, t);
                    }
                    _ => {
                        let expected = model.get(&k) == Some(&t);
                        if expected {
                            model.remove(&k);
                        }
                        proptest::prop_assert_eq!(table.remove_if_at(k, t), expected);
                    }
                }
                proptest::prop_assert_eq!(table.len(), model.len());
            }
            for k in 0..400 {
                proptest::prop_assert_eq!(table.get(key(k)), model.get(&key(k)).copied());
            }
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let mut table = PairTable::default();
        assert_eq!(table.get(5), None);
        assert!(!table.remove_if_at(5, 0));
        assert_eq!(table.len(), 0);
    }
}
