//! The synchronous part of the strategies, on a working copy of the history.
//!
//! Every strategy leaves protected messages (system, and summary except for
//! `summarize`) and the `keep_recent` newest messages alone, and keeps the
//! chronological order.

use crate::dedupe::find_duplicates;
use crate::history::{HistoryMessage, MessageRole};
use crate::importance::importance;
use crate::tokens::TokenCounter;

/// One message of the working copy.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub msg: HistoryMessage,
    /// Among the `keep_recent` newest messages of the input.
    pub recent: bool,
}

impl Entry {
    /// May be dropped by dedupe, trim and aggressive.
    fn droppable(&self) -> bool {
        !self.recent && !self.msg.role.is_protected()
    }
}

/// The working copy: messages in order and their token total.
#[derive(Debug, Clone)]
pub(crate) struct Working {
    pub entries: Vec<Entry>,
    pub total: usize,
}

impl Working {
    /// Copies `messages`, counting every message's tokens with `counter`
    /// (reusing counts it made itself of the same content), and marks the last
    /// `keep_recent` as recent.
    pub fn new(messages: &[HistoryMessage], counter: &TokenCounter, keep_recent: usize) -> Self {
        let first_recent = messages.len().saturating_sub(keep_recent);
        let mut total = 0;
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut msg = m.clone();
                total += msg.recount(counter);
                Entry {
                    msg,
                    recent: i >= first_recent,
                }
            })
            .collect();
        Working { entries, total }
    }

    pub fn into_messages(self) -> Vec<HistoryMessage> {
        self.entries.into_iter().map(|e| e.msg).collect()
    }

    /// Removes the flagged entries; returns how many.
    fn remove_flagged(&mut self, flags: &[bool]) -> usize {
        let mut removed = 0;
        let mut i = 0;
        self.entries.retain(|e| {
            let drop = flags[i];
            i += 1;
            if drop {
                removed += 1;
                self.total -= e.msg.tokens;
            }
            !drop
        });
        removed
    }

    /// Tokens held by messages no strategy may drop (protected or recent).
    pub fn fixed_tokens(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !e.droppable())
            .map(|e| e.msg.tokens)
            .sum()
    }

    pub fn recent_count(&self) -> usize {
        self.entries.iter().filter(|e| e.recent).count()
    }

    pub fn protected_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !e.recent && e.msg.role.is_protected())
            .count()
    }
}

/// `deduplicate`: removes every droppable message that is a near-duplicate
/// of a kept newer one. Returns how many were removed.
pub(crate) fn deduplicate(work: &mut Working, threshold: f64) -> usize {
    let messages: Vec<&HistoryMessage> = work.entries.iter().map(|e| &e.msg).collect();
    let candidate: Vec<bool> = work
        .entries
        .iter()
        .map(|e| !e.msg.role.is_protected())
        .collect();
    let removable: Vec<bool> = work.entries.iter().map(Entry::droppable).collect();
    let flags = find_duplicates(&messages, &candidate, &removable, threshold);
    work.remove_flagged(&flags)
}

/// `trim_low_importance`: removes droppable messages below
/// `min_importance`, lowest importance first (oldest first on ties), until
/// the total is at most `target`. Returns how many were removed.
pub(crate) fn trim_low_importance(work: &mut Working, min_importance: u8, target: usize) -> usize {
    let len = work.entries.len();
    let mut low: Vec<(u8, usize)> = work
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.droppable())
        .map(|(i, e)| (importance(&e.msg, i, len), i))
        .filter(|&(score, _)| score < min_importance)
        .collect();
    low.sort_unstable();
    let mut flags = vec![false; len];
    let mut total = work.total;
    for (_, i) in low {
        if total <= target {
            break;
        }
        flags[i] = true;
        total -= work.entries[i].msg.tokens;
    }
    work.remove_flagged(&flags)
}

/// `aggressive`: removes the oldest droppable messages until the total is at
/// most `target`. Returns how many were removed.
pub(crate) fn aggressive(work: &mut Working, target: usize) -> usize {
    let mut flags = vec![false; work.entries.len()];
    let mut total = work.total;
    for (i, e) in work.entries.iter().enumerate() {
        if total <= target {
            break;
        }
        if e.droppable() {
            flags[i] = true;
            total -= e.msg.tokens;
        }
    }
    work.remove_flagged(&flags)
}

/// `summarize`, first half: the indices of the oldest messages to fold into
/// a summary (not system, not recent; earlier summaries included), enough
/// that replacing them with a summary of up to `reserve` tokens reaches
/// `target`, or all of them if that is not enough.
pub(crate) fn select_for_summary(work: &Working, target: usize, reserve: usize) -> Vec<usize> {
    let needed = work.total.saturating_sub(target) + reserve;
    let mut selected = Vec::new();
    let mut tokens = 0;
    for (i, e) in work.entries.iter().enumerate() {
        if tokens >= needed {
            break;
        }
        if !e.recent && e.msg.role != MessageRole::System {
            selected.push(i);
            tokens += e.msg.tokens;
        }
    }
    selected
}

/// `summarize`, second half: replaces the entries at `selected` (ascending)
/// with `summary`, which takes the place of the newest of them. Returns how
/// many were removed.
pub(crate) fn replace_with_summary(
    work: &mut Working,
    selected: &[usize],
    summary: HistoryMessage,
) -> usize {
    let Some(&last) = selected.last() else {
        return 0;
    };
    let mut flags = vec![false; work.entries.len()];
    for &i in selected {
        flags[i] = true;
    }
    // Insert the summary right after the newest summarised message, then
    // drop the summarised ones (indices before it are unaffected).
    work.total += summary.tokens;
    work.entries.insert(
        last + 1,
        Entry {
            msg: summary,
            recent: false,
        },
    );
    flags.insert(last + 1, false);
    work.remove_flagged(&flags)
}
