//! A bounded set of recently seen message ids.

use std::collections::{HashSet, VecDeque};

/// Remembers the last `capacity` ids; the oldest is forgotten first.
#[derive(Debug)]
pub(crate) struct Dedupe {
    order: VecDeque<String>,
    seen: HashSet<String>,
    capacity: usize,
}

impl Dedupe {
    pub(crate) fn new(capacity: usize) -> Dedupe {
        Dedupe {
            order: VecDeque::with_capacity(capacity.min(4096)),
            seen: HashSet::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Records `id`; returns false when it was already seen (a duplicate).
    pub(crate) fn first_time(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_capacity() {
        let mut d = Dedupe::new(2);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert!(d.first_time("a"), "a was evicted by c");
        assert!(!d.first_time("c"));
    }

    #[test]
    fn zero_capacity_disables() {
        let mut d = Dedupe::new(0);
        assert!(d.first_time("a"));
        assert!(d.first_time("a"));
    }
}
