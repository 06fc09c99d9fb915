//! The built-in extractive summariser, and the summary header shared with
//! the external one.
//!
//! # Selection
//!
//! Every body is cut into sentences (at line breaks and after `.`, `!` or
//! `?` followed by a space; backtrace frames are skipped, and so are lines
//! inside code fences unless they report an error; sentences are cut to 200
//! chars). A sentence of fewer
//! than four words is joined to the next one if it says something
//! ("Agreed. Use keyset pagination …") and dropped if it does not
//! ("Morning all.", "Good question."); the result is a *unit*. Each unit is
//! scored:
//!
//! | Signal | Score |
//! |---|---|
//! | decision ("decided", "agreed", "going with", "we will", …) | +100 |
//! | error ("error", "failed", "panic", "timed out", …) | +80 |
//! | line of an earlier summary (carried over) | +60 |
//! | opening of a thread: first unit of 4+ words of its first message (no thread counts as one thread) | +50 |
//! | answer: first unit of 4+ words of a reply to a question from someone else in the same thread, itself not a question | +60 |
//! | question | +30 |
//! | number | +40 |
//! | sender-set importance ≥ 70 | +40 |
//! | work item ("todo", "fix", "blocker", …) | +30 |
//! | name (capitalised word, `snake_case`, path, `a::b`) | +20 |
//! | routine message (kind `state` or `thinking`) | −30, and only the sender's newest routine unit is kept |
//!
//! Acknowledgements and units with no signal score 0 and are left out;
//! repeated units are kept once. Units are taken by score (earlier first on
//! ties) while the summary stays within the token cap, then written in
//! chronological order as `- Speaker: text`, adjacent units of one message
//! sharing a bullet. If nothing scores, the first and the last unit are
//! used. The result is deterministic: it depends only on the messages and
//! the cap.

use std::collections::{HashMap, HashSet};

use crate::history::{HistoryMessage, MessageRole};
use crate::text::{is_ack, signals, words};
use crate::timefmt::{date, date_time, hms};
use crate::tokens::TokenCounter;

/// The first words of every summary header.
pub(crate) const SUMMARY_PREFIX: &str = "Summary of ";
const MAX_SENTENCE_CHARS: usize = 200;
const MAX_LISTED_PARTICIPANTS: usize = 8;

/// How many original messages `messages` stand for: a summary counts for
/// the messages it summarised (read from its header).
pub(crate) fn covered_count(messages: &[HistoryMessage]) -> usize {
    messages
        .iter()
        .map(|m| match m.role {
            MessageRole::Summary => summarised_count(&m.body).unwrap_or(1),
            _ => 1,
        })
        .sum()
}

fn summarised_count(body: &str) -> Option<usize> {
    let rest = body.strip_prefix(SUMMARY_PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The first line of a summary: how many messages, when, who.
pub(crate) fn header(messages: &[HistoryMessage]) -> String {
    let count = covered_count(messages);
    let mut participants: Vec<&str> = Vec::new();
    let mut threads: Vec<&str> = Vec::new();
    for m in messages {
        if m.role != MessageRole::Summary && !participants.contains(&m.from.as_str()) {
            participants.push(&m.from);
        }
        if let Some(thread) = &m.thread {
            if !threads.contains(&thread.as_str()) {
                threads.push(thread);
            }
        }
    }
    let span = match (messages.first(), messages.last()) {
        (Some(first), Some(last)) if date(first.timestamp_ms) == date(last.timestamp_ms) => {
            format!(
                "{}–{} UTC",
                date_time(first.timestamp_ms),
                hms(last.timestamp_ms)
            )
        }
        (Some(first), Some(last)) => format!(
            "{} – {} UTC",
            date_time(first.timestamp_ms),
            date_time(last.timestamp_ms)
        ),
        _ => String::new(),
    };
    let plural = if count == 1 { "" } else { "s" };
    let mut line = format!("{SUMMARY_PREFIX}{count} earlier message{plural}, {span}");
    if !participants.is_empty() {
        let extra = participants.len().saturating_sub(MAX_LISTED_PARTICIPANTS);
        let listed = participants[..participants.len().min(MAX_LISTED_PARTICIPANTS)].join(", ");
        line.push_str(", from ");
        line.push_str(&listed);
        if extra > 0 {
            line.push_str(&format!(" and {extra} more"));
        }
    }
    if !threads.is_empty() {
        line.push_str(&format!(" (threads: {})", threads.join(", ")));
    }
    line.push(':');
    line
}

struct Candidate {
    /// Chronological order of the unit.
    order: usize,
    /// Which message (or carried summary line) it comes from.
    source: usize,
    /// Its position among that message's units.
    unit: usize,
    score: u32,
    /// From a routine message (status update, thought).
    routine: bool,
    speaker: String,
    text: String,
}

impl Candidate {
    fn line(&self) -> String {
        if self.speaker.is_empty() {
            self.text.clone()
        } else {
            format!("{}: {}", self.speaker, self.text)
        }
    }
}

fn clip(sentence: &str) -> String {
    if sentence.chars().count() <= MAX_SENTENCE_CHARS {
        return sentence.to_owned();
    }
    let cut: String = sentence.chars().take(MAX_SENTENCE_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// Splits a body into sentences, skipping the inside of code fences except
/// lines that report an error.
fn sentences(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in body.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if is_trace_frame(trimmed) {
            continue;
        }
        if in_fence {
            if signals(trimmed).error {
                out.push(clip(trimmed));
            }
            continue;
        }
        let mut start = 0;
        let chars: Vec<(usize, char)> = trimmed.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            let next_is_space = chars.get(i + 1).is_some_and(|&(_, n)| n.is_whitespace());
            if matches!(c, '.' | '!' | '?') && next_is_space {
                let end = at + c.len_utf8();
                let sentence = trimmed[start..end].trim();
                if !sentence.is_empty() {
                    out.push(clip(sentence));
                }
                start = end;
            }
        }
        let rest = trimmed[start..].trim();
        if !rest.is_empty() {
            out.push(clip(rest));
        }
    }
    out
}

/// A backtrace frame (`3: core::option::unwrap_failed`, `at ./src/x.rs:1:2`)
/// or header (`stack backtrace:`, `Traceback (most recent call last):`).
fn is_trace_frame(line: &str) -> bool {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    (digits > 0 && line[digits..].starts_with(": "))
        || line.starts_with("at ")
        || line.starts_with("File \"")
        || line == "stack backtrace:"
        || line.starts_with("Traceback (most recent call last)")
}

/// Sentences grouped into units: a short sentence that says something
/// ("Agreed.", "PR #512 merged.") is joined to the sentence after it; a
/// short one that says nothing ("Morning all.", "Good question.") is
/// dropped.
fn units(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending: Option<String> = None;
    for sentence in sentences(body) {
        let short = words(&sentence).len() < SHORT_LEAD_IN_WORDS;
        if short && pending.is_none() && !says_something(&sentence) {
            continue;
        }
        let joined = match pending.take() {
            Some(lead) => format!("{lead} {sentence}"),
            None => sentence,
        };
        if words(&joined).len() < SHORT_LEAD_IN_WORDS {
            pending = Some(joined);
        } else {
            out.push(joined);
        }
    }
    out.extend(pending);
    out
}

fn says_something(text: &str) -> bool {
    let s = signals(text);
    s.decision || (!s.ack && (s.error || s.task || s.question || s.number || s.name || s.code))
}

/// Sentences with fewer words than this are joined to the next one.
const SHORT_LEAD_IN_WORDS: usize = 4;

/// What a unit gets on top of its own signals.
#[derive(Default, Clone, Copy)]
struct Context {
    /// The first substantive unit of a thread's first message.
    opening: bool,
    /// The first substantive unit of a reply to a question.
    answer: bool,
    /// The sender set an importance of 70 or more.
    important: bool,
    /// A status update or a thought (`state`, `thinking`).
    routine: bool,
    /// A line of an earlier summary.
    carried: bool,
}

fn score(text: &str, context: Context) -> u32 {
    if is_ack(text) {
        return 0;
    }
    let s = signals(text);
    let mut score: u32 = 0;
    for (on, points) in [
        (s.decision, 100),
        (s.error, 80),
        (context.carried, 60),
        (context.opening, 50),
        (context.answer && !s.question, 60),
        (s.question, 30),
        (s.number, 40),
        (context.important, 40),
        (s.task, 30),
        (s.name, 20),
    ] {
        if on {
            score += points;
        }
    }
    if context.routine {
        score = score.saturating_sub(30);
    }
    score
}

fn candidates(messages: &[HistoryMessage]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut seen_threads: HashSet<Option<&str>> = HashSet::new();
    // The last message of each thread: (sender, asked a question).
    let mut last_in_thread: HashMap<Option<&str>, (&str, bool)> = HashMap::new();
    let mut source = 0;
    for m in messages {
        source += 1;
        if m.role == MessageRole::Summary {
            // Carry the earlier summary's lines over; its header is rebuilt.
            for line in m.body.lines().skip(1) {
                let text = line.trim().trim_start_matches("- ").trim();
                if text.is_empty() {
                    continue;
                }
                let context = Context {
                    carried: true,
                    ..Context::default()
                };
                source += 1;
                out.push(Candidate {
                    order: out.len(),
                    source,
                    unit: 0,
                    score: score(text, context),
                    routine: false,
                    speaker: String::new(),
                    text: text.to_owned(),
                });
            }
            continue;
        }
        let thread = m.thread.as_deref();
        let mut opening = seen_threads.insert(thread);
        let mut answer = last_in_thread
            .get(&thread)
            .is_some_and(|&(from, asked)| asked && from != m.from);
        last_in_thread.insert(thread, (&m.from, m.body.contains('?')));
        for (unit, text) in units(&m.body).into_iter().enumerate() {
            let substantive = words(&text).len() >= SHORT_LEAD_IN_WORDS;
            let context = Context {
                opening: opening && substantive,
                answer: answer && substantive,
                important: m.importance.is_some_and(|i| i >= 70),
                routine: matches!(m.kind.as_str(), "state" | "thinking"),
                carried: false,
            };
            if substantive {
                opening = false;
                answer = false;
            }
            out.push(Candidate {
                order: out.len(),
                source,
                unit,
                score: score(&text, context),
                routine: context.routine,
                speaker: m.from.clone(),
                text,
            });
        }
    }
    // A status update is superseded by the sender's next one.
    let mut newest_routine: HashMap<&str, usize> = HashMap::new();
    for c in &out {
        if c.routine {
            newest_routine.insert(&c.speaker, c.source);
        }
    }
    let superseded: Vec<usize> = out
        .iter()
        .filter(|c| c.routine && newest_routine.get(c.speaker.as_str()) != Some(&c.source))
        .map(|c| c.order)
        .collect();
    for order in superseded {
        out[order].score = 0;
    }
    out
}

/// Writes the header and the chosen units in chronological order; adjacent
/// units of one message share a bullet.
fn assemble(header: &str, chosen: &[&Candidate]) -> String {
    let mut in_order: Vec<&Candidate> = chosen.to_vec();
    in_order.sort_by_key(|c| c.order);
    let mut text = header.to_owned();
    let mut previous: Option<&Candidate> = None;
    for c in in_order {
        let continues = previous
            .is_some_and(|p| p.source == c.source && p.unit + 1 == c.unit && !c.speaker.is_empty());
        if continues {
            text.push(' ');
            text.push_str(&c.text);
        } else {
            text.push_str("\n- ");
            text.push_str(&c.line());
        }
        previous = Some(c);
    }
    text
}

/// Builds the extractive summary of `messages` (chronological), at most
/// `max_tokens` tokens by `counter`.
pub(crate) fn extractive(
    messages: &[HistoryMessage],
    counter: &TokenCounter,
    max_tokens: usize,
) -> String {
    let header = header(messages);
    let header_tokens = counter.count(&header);
    if header_tokens >= max_tokens {
        return counter.truncate(&header, max_tokens).to_owned();
    }
    let mut all = candidates(messages);
    let mut seen = HashSet::new();
    all.retain(|c| seen.insert(words(&c.line()).join(" ")));
    let mut ranked: Vec<&Candidate> = all.iter().filter(|c| c.score > 0).collect();
    if ranked.is_empty() {
        // Nothing stands out: keep the opening and the closing remark.
        let first = all.first();
        let last = all
            .last()
            .filter(|l| first.is_some_and(|f| f.order != l.order));
        ranked.extend(first);
        ranked.extend(last);
    }
    ranked.sort_by(|a, b| b.score.cmp(&a.score).then(a.order.cmp(&b.order)));

    // Greedy by score; each bullet costs its tokens plus two for the line
    // break and the dash. The sum is checked against the real count below.
    let mut budget = max_tokens - header_tokens;
    let mut chosen: Vec<&Candidate> = Vec::new();
    for candidate in ranked {
        // The cheapest bullet is a one-token line plus its two.
        if budget < 3 {
            break;
        }
        let cost = counter.count(&candidate.line()) + 2;
        if cost <= budget {
            budget -= cost;
            chosen.push(candidate);
        }
    }
    loop {
        let text = assemble(&header, &chosen);
        if counter.count(&text) <= max_tokens || chosen.is_empty() {
            return counter.truncate(&text, max_tokens).to_owned();
        }
        // The lowest-scored unit goes first.
        chosen.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenizerMode;

    fn msg(id: &str, from: &str, body: &str, ts: u64) -> HistoryMessage {
        HistoryMessage::new(id, from, "Team", body, ts)
    }

    #[test]
    fn keeps_decisions_and_numbers_with_attribution() {
        let counter = TokenCounter::new(TokenizerMode::Heuristic);
        let messages = vec![
            msg(
                "1",
                "Lead",
                "Morning all. We decided to use Postgres 16 for the queue.",
                1_000,
            ),
            msg("2", "Backend", "ok", 2_000),
            msg(
                "3",
                "Backend",
                "The p99 latency is 41 ms after the change.",
                3_000,
            ),
        ];
        let summary = extractive(&messages, &counter, 200);
        assert!(summary.starts_with("Summary of 3 earlier messages"));
        assert!(summary.contains("- Lead: We decided to use Postgres 16 for the queue."));
        assert!(summary.contains("- Backend: The p99 latency is 41 ms"));
        assert!(!summary.contains("Backend: ok"));
    }

    #[test]
    fn respects_the_cap_and_is_deterministic() {
        let counter = TokenCounter::new(TokenizerMode::Heuristic);
        let messages: Vec<HistoryMessage> = (0..200)
            .map(|i| {
                msg(
                    &i.to_string(),
                    "Bot",
                    &format!("Build {i} failed with error E{i}."),
                    i,
                )
            })
            .collect();
        let a = extractive(&messages, &counter, 100);
        let b = extractive(&messages, &counter, 100);
        assert_eq!(a, b);
        assert!(counter.count(&a) <= 100);
        assert!(a.contains("Bot: Build 0 failed"));
    }

    #[test]
    fn folds_an_earlier_summary_and_counts_its_messages() {
        let counter = TokenCounter::new(TokenizerMode::Heuristic);
        let earlier = HistoryMessage::new(
            "s",
            "relay",
            "*",
            "Summary of 40 earlier messages, 1970-01-01 00:00:00–00:01:00 UTC, from Lead:\n\
             - Lead: We agreed on port 8443.",
            60_000,
        )
        .with_role(MessageRole::Summary);
        let messages = vec![
            earlier,
            msg("9", "QA", "Release 2.1 is blocked by bug 77.", 70_000),
        ];
        let summary = extractive(&messages, &counter, 200);
        assert!(summary.starts_with("Summary of 41 earlier messages"));
        assert!(summary.contains("- Lead: We agreed on port 8443."));
        assert!(summary.contains("- QA: Release 2.1 is blocked by bug 77."));
    }
}
