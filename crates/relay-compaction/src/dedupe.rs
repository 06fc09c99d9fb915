//! Near-duplicate detection for the `deduplicate` strategy.
//!
//! # Measure
//!
//! A body is normalised to its lower-cased words (runs of alphanumeric
//! chars; punctuation, case and spacing are ignored). Two bodies are
//! near-duplicates when the **Jaccard similarity of their word sets**
//! (`|A ∩ B| / |A ∪ B|`) is at least `dedupe_similarity` (0.85 by
//! default), or when both have no words and the same trimmed text (`👍`).
//! Numbers are words, so "build 41 passed" and "build 42 passed" are
//! different facts (similarity 0.5), while "Still working on the parser, no
//! blockers." and "still working on the parser - no blockers" are the same.
//!
//! Only messages of the same sender, thread and channel are compared: the
//! same words from two agents (two approvals) are two facts.
//!
//! # Cost
//!
//! Not all pairs are compared. Messages are visited newest first; each
//! kept message is remembered in its (sender, thread, channel) group by the
//! hash of its normalised text (exact repeats are found at any distance in
//! O(1)) and in a window of the group's [`WINDOW`] most recent kept
//! messages, the only ones compared by Jaccard (with a size pre-filter:
//! sets whose sizes differ by more than the threshold allows are skipped).
//! So the cost is O(n · WINDOW · words) instead of O(n² · words).
//!
//! A message is removed only when it is similar to a *kept, newer* message,
//! so the newest copy survives and removals never chain (A removed because
//! of B, B removed because of C, with A and C unlike).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::history::HistoryMessage;
use crate::text::words;

/// How many recent kept messages of a group each message is compared with
/// by Jaccard similarity.
pub const WINDOW: usize = 64;

/// The Jaccard similarity (0.0–1.0) of the word sets of two texts; see the
/// module docs. Two texts without words are 1.0 if their trimmed text is
/// equal, else 0.0.
pub fn similarity(a: &str, b: &str) -> f64 {
    let fa = Fingerprint::of(a);
    let fb = Fingerprint::of(b);
    if fa.words.is_empty() || fb.words.is_empty() {
        return if fa.exact == fb.exact { 1.0 } else { 0.0 };
    }
    jaccard(&fa.words, &fb.words)
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

struct Fingerprint {
    /// Hash of the normalised text.
    exact: u64,
    /// Sorted, distinct word hashes.
    words: Vec<u64>,
}

impl Fingerprint {
    fn of(body: &str) -> Self {
        let list = words(body);
        let exact = if list.is_empty() {
            hash_of(body.trim())
        } else {
            hash_of(&list)
        };
        let mut words: Vec<u64> = list.iter().map(hash_of).collect();
        words.sort_unstable();
        words.dedup();
        Fingerprint { exact, words }
    }
}

fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        0.0
    } else {
        common as f64 / union as f64
    }
}

#[derive(Default)]
struct Group {
    exact: HashSet<u64>,
    window: VecDeque<usize>,
}

/// Which of `messages` are older near-duplicates of a kept newer message.
/// `removable[i]` says whether message `i` may be removed (not protected,
/// not recent); messages with `candidate[i] == false` are ignored entirely
/// (protected ones). Returns one flag per message: true = remove.
pub(crate) fn find_duplicates(
    messages: &[&HistoryMessage],
    candidate: &[bool],
    removable: &[bool],
    threshold: f64,
) -> Vec<bool> {
    let mut remove = vec![false; messages.len()];
    let mut groups: HashMap<u64, Group> = HashMap::new();
    let mut prints: Vec<Option<Fingerprint>> = Vec::with_capacity(messages.len());
    prints.resize_with(messages.len(), || None);
    for i in (0..messages.len()).rev() {
        if !candidate[i] {
            continue;
        }
        let m = messages[i];
        let print = Fingerprint::of(&m.body);
        let key = hash_of((&m.from, &m.thread, &m.channel));
        let group = match groups.entry(key) {
            MapEntry::Occupied(e) => e.into_mut(),
            MapEntry::Vacant(e) => e.insert(Group::default()),
        };
        let duplicate = group.exact.contains(&print.exact)
            || (!print.words.is_empty()
                && group.window.iter().any(|&k| {
                    prints[k].as_ref().is_some_and(|other| {
                        let (small, large) = if print.words.len() <= other.words.len() {
                            (print.words.len(), other.words.len())
                        } else {
                            (other.words.len(), print.words.len())
                        };
                        // |A∩B|/|A∪B| ≤ |small|/|large|: skip hopeless pairs.
                        small as f64 >= threshold * large as f64
                            && jaccard(&print.words, &other.words) >= threshold
                    })
                }));
        if duplicate && removable[i] {
            remove[i] = true;
            continue;
        }
        group.exact.insert(print.exact);
        group.window.push_front(i);
        if group.window.len() > WINDOW {
            group.window.pop_back();
        }
        prints[i] = Some(print);
    }
    remove
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_measure() {
        assert_eq!(similarity("Hello world", "hello, WORLD!"), 1.0);
        assert_eq!(similarity("alpha beta", "gamma delta"), 0.0);
        assert_eq!(similarity("build 41 passed", "build 42 passed"), 0.5);
        assert_eq!(similarity("👍", " 👍 "), 1.0);
        assert_eq!(similarity("👍", "✅"), 0.0);
        assert_eq!(similarity("", "word"), 0.0);
    }

    #[test]
    fn keeps_the_newest_copy_without_chaining() {
        let bodies = [
            "one two three four five six seven eight nine ten",
            "one two three four five six seven eight nine eleven",
            "one two three four five six seven eight twelve eleven",
        ];
        let messages: Vec<HistoryMessage> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| HistoryMessage::new(i.to_string(), "A", "B", *b, i as u64))
            .collect();
        let refs: Vec<&HistoryMessage> = messages.iter().collect();
        // 0~1 (9/11 = 0.82) and 1~2 (0.82) but 0≁2 (8/12); at 0.8:
        let remove = find_duplicates(&refs, &[true; 3], &[true; 3], 0.8);
        // 1 is removed as a copy of 2 (newest); 0 is compared with 2 only
        // (1 is gone) and stays.
        assert_eq!(remove, vec![false, true, false]);
    }
}
