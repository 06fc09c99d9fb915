//! Small text analyses shared by importance scoring, dedupe and the
//! extractive summariser. No regular expressions: words are runs of
//! alphanumeric chars, lower-cased, and keywords match whole words.

/// What a piece of text talks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Signals {
    /// A decision: "decided", "agreed", "approved", "going with", "we will", …
    pub decision: bool,
    /// An error: "error", "panic", "failed", "exception", "traceback", …
    pub error: bool,
    /// Work to do: "todo", "task", "implement", "fix", "blocker", "urgent", …
    pub task: bool,
    /// A question mark.
    pub question: bool,
    /// A code fence, an indented block or inline code.
    pub code: bool,
    /// An `@name` mention.
    pub mention: bool,
    /// A digit.
    pub number: bool,
    /// A name-like word: capitalised inside a sentence, `snake_case`,
    /// `CamelCase`, a path or a `module::path`.
    pub name: bool,
    /// The whole text is an acknowledgement ("ok", "got it", "thanks", 👍).
    pub ack: bool,
}

const DECISION_WORDS: &[&str] = &[
    "decided",
    "decide",
    "decision",
    "decisions",
    "agreed",
    "approved",
    "approve",
    "chose",
    "chosen",
    "settled",
    "adopt",
    "adopted",
    "resolved",
    "conclusion",
];

const DECISION_PHRASES: &[&[&str]] = &[
    &["going", "with"],
    &["go", "with"],
    &["we", "will"],
    &["we", "ll"],
    &["let", "s", "use"],
    &["plan", "is"],
    &["final", "answer"],
];

const ERROR_WORDS: &[&str] = &[
    "error",
    "errors",
    "err",
    "panic",
    "panicked",
    "panics",
    "failed",
    "failure",
    "failures",
    "failing",
    "fails",
    "exception",
    "traceback",
    "fatal",
    "crash",
    "crashed",
    "crashes",
    "segfault",
    "broken",
    "regression",
    "refused",
    "denied",
    "timeout",
];

const ERROR_PHRASES: &[&[&str]] = &[&["stack", "trace"], &["timed", "out"]];

const TASK_WORDS: &[&str] = &[
    "todo",
    "task",
    "tasks",
    "implement",
    "fix",
    "bug",
    "blocker",
    "blocked",
    "blocking",
    "important",
    "critical",
    "urgent",
    "deadline",
    "must",
    "asap",
];

const ACKS: &[&str] = &[
    "ok",
    "okay",
    "k",
    "ack",
    "acked",
    "got it",
    "thanks",
    "thank you",
    "thx",
    "ty",
    "done",
    "lgtm",
    "sounds good",
    "will do",
    "on it",
    "sure",
    "yes",
    "yep",
    "yeah",
    "roger",
    "noted",
    "understood",
    "cool",
    "great",
    "nice",
    "ok thanks",
    "ok thank you",
    "got it thanks",
    "perfect",
    "np",
    "agreed",
    "agree",
    "i agree",
];

const ACK_SYMBOLS: &[&str] = &["👍", "✅", "🙏", "👌", "+1", "✔", "✔️"];

/// The lower-cased words of `text`: runs of alphanumeric chars.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn has_phrase(words: &[String], phrase: &[&str]) -> bool {
    words
        .windows(phrase.len())
        .any(|window| window.iter().zip(phrase).all(|(w, p)| w == p))
}

fn has_any(words: &[String], list: &[&str], phrases: &[&[&str]]) -> bool {
    words.iter().any(|w| list.contains(&w.as_str())) || phrases.iter().any(|p| has_phrase(words, p))
}

fn has_code(text: &str) -> bool {
    if text.contains("```") {
        return true;
    }
    let inline = text.matches('`').count() >= 2;
    let indented = text
        .lines()
        .any(|l| (l.starts_with("    ") || l.starts_with('\t')) && !l.trim().is_empty());
    inline || indented
}

fn has_mention(text: &str) -> bool {
    let mut prev_alnum = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '@' && !prev_alnum && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            return true;
        }
        prev_alnum = c.is_alphanumeric();
    }
    false
}

fn is_name_like(raw: &str, sentence_start: bool) -> bool {
    let word = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
    if word.len() < 2 {
        return false;
    }
    let inner = raw.trim_matches(|c: char| {
        matches!(
            c,
            '.' | ',' | ';' | ':' | '!' | '?' | '(' | ')' | '"' | '\''
        )
    });
    if inner.contains("::") || inner.contains('/') || inner.contains('_') {
        return true;
    }
    if inner.contains('.') && inner.chars().any(|c| c.is_alphabetic()) && !inner.ends_with('.') {
        return true;
    }
    let mut chars = word.chars();
    let first_upper = chars.next().is_some_and(char::is_uppercase);
    let later_upper = chars.any(char::is_uppercase);
    let later_lower = word.chars().skip(1).any(char::is_lowercase);
    // CamelCase, or a capitalised word that does not start the sentence
    // (and is not "I").
    (later_upper && later_lower) || (first_upper && !sentence_start)
}

fn has_name(text: &str) -> bool {
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        if is_name_like(raw, sentence_start) {
            return true;
        }
        sentence_start = raw.ends_with(['.', '!', '?', ':']);
    }
    false
}

/// Whether `text` is only an acknowledgement.
pub(crate) fn is_ack(text: &str) -> bool {
    let trimmed = text.trim();
    if ACK_SYMBOLS.contains(&trimmed) {
        return true;
    }
    let joined = words(trimmed).join(" ");
    !joined.is_empty() && ACKS.contains(&joined.as_str())
}

/// Analyses `text`.
pub(crate) fn signals(text: &str) -> Signals {
    let words = words(text);
    Signals {
        decision: has_any(&words, DECISION_WORDS, DECISION_PHRASES),
        error: has_any(&words, ERROR_WORDS, ERROR_PHRASES),
        task: has_any(&words, TASK_WORDS, &[]),
        question: text.contains('?'),
        code: has_code(text),
        mention: has_mention(text),
        number: text.chars().any(|c| c.is_ascii_digit()),
        name: has_name(text),
        ack: is_ack(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_whole_words_only() {
        assert!(signals("We decided to use Postgres").decision);
        assert!(!signals("undecidedness").decision);
        assert!(signals("we'll ship Friday").decision);
        assert!(signals("Error: connection refused").error);
        assert!(!signals("terrorism").error);
    }

    #[test]
    fn acknowledgements_are_whole_messages() {
        assert!(is_ack("ok"));
        assert!(is_ack("Got it, thanks!"));
        assert!(is_ack("👍"));
        assert!(!is_ack("okay so the parser is broken"));
        assert!(!is_ack("acknowledged the failing test, looking at it"));
    }

    #[test]
    fn detects_code_mentions_names_and_numbers() {
        let s = signals("@Backend see `parse_frame` in src/codec.rs, 3 tests fail");
        assert!(s.code && s.mention && s.name && s.number);
        assert!(!signals("all good here").name);
        assert!(signals("ping Alice about it").name);
    }
}
