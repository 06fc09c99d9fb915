//! Line-level recognition: where a command may start on a line and what kind of line it is.

use crate::GrammarOptions;

/// Bullet and prompt glyphs that TUIs print before a command (`⏺ ->relay:Bob hi`).
pub(crate) const PREFIX_GLYPHS: &[char] = &[
    '>', '$', '%', '#', '→', '➜', '›', '»', '●', '•', '◦', '‣', '⁃', '-', '*', '⏺', '◆', '◇', '○',
    '□', '■', '│', '┃', '┆', '┇', '┊', '┋', '╎', '╏', '✦',
];

/// Glyphs that make a line a bullet item for continuation purposes.
/// List bullets that continue an inline message. `⏺` and `●` are not among them: TUIs such as
/// Claude Code start each new block of output with one, so such a line begins something new.
const BULLET_GLYPHS: &[char] = &['-', '*', '•', '◦', '‣', '◆', '◇', '○', '□', '■'];

/// Characters a line may end with to announce that the next line continues it.
const CONTINUATION_PUNCTUATION: &[char] = &[':', ';', ',', '-', '–', '—', '…'];

/// Glyphs that, alone on a line, make it a shell/REPL prompt.
const PROMPT_GLYPHS: &[char] = &['>', '$', '%', '#', '➜', '›', '»'];

pub(crate) const BLOCK_OPEN: &str = "[[RELAY]]";
pub(crate) const BLOCK_CLOSE: &str = "[[/RELAY]]";
pub(crate) const META_OPEN: &str = "[[RELAY_METADATA]]";
pub(crate) const META_CLOSE: &str = "[[/RELAY_METADATA]]";
pub(crate) const INJECTED_MARKER: &str = "Relay message from ";

/// Byte offsets at which a command may begin: after the leading whitespace, then after every
/// prefix glyph (and the whitespace following it).
pub(crate) fn anchors(line: &str) -> Anchors<'_> {
    let start = line.len() - line.trim_start().len();
    Anchors {
        line,
        next: Some(start),
    }
}

pub(crate) struct Anchors<'a> {
    line: &'a str,
    next: Option<usize>,
}

impl Iterator for Anchors<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let current = self.next?;
        let rest = self.line.get(current..).unwrap_or("");
        self.next = match rest.chars().next() {
            Some(c) if PREFIX_GLYPHS.contains(&c) => {
                let after = &rest[c.len_utf8()..];
                let skipped = after.len() - after.trim_start().len();
                Some(current + c.len_utf8() + skipped)
            }
            _ => None,
        };
        Some(current)
    }
}

/// How a line starts, once the prefix allowance is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start<'a> {
    /// `\->relay:` and friends: documentation, never a command.
    Escaped,
    /// `Relay message from …`: a message injected into the agent, echoed back.
    Injected,
    /// `->relay-file:` followed by the rest of the line.
    File(&'a str),
    /// `->relay.json:` followed by the rest of the line.
    Json(&'a str),
    /// `->relay:` / `->thinking:` followed by a non-blank rest.
    Relay { thinking: bool, rest: &'a str },
    /// `[[RELAY_METADATA]]` followed by the rest of the line.
    Metadata(&'a str),
    /// `[[RELAY]]` followed by the rest of the line.
    Block(&'a str),
}

/// `rest` without `prefix`, when `prefix` is non-empty and starts `rest`.
fn after<'a>(rest: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        None
    } else {
        rest.strip_prefix(prefix)
    }
}

/// A relay prefix must be followed directly by the target.
fn after_relay<'a>(rest: &'a str, prefix: &str) -> Option<&'a str> {
    after(rest, prefix).filter(|r| r.chars().next().is_some_and(|c| !c.is_whitespace()))
}

/// Classifies the line by the first anchor at which something is recognised.
pub(crate) fn classify<'a>(line: &'a str, opts: &GrammarOptions) -> Option<Start<'a>> {
    anchors(line).find_map(|at| classify_at(line.get(at..).unwrap_or(""), opts))
}

fn classify_at<'a>(rest: &'a str, opts: &GrammarOptions) -> Option<Start<'a>> {
    if let Some(escaped) = rest.strip_prefix('\\') {
        let prefixes = [
            &opts.prefix,
            &opts.thinking_prefix,
            &opts.file_prefix,
            &opts.json_prefix,
        ];
        if prefixes.iter().any(|p| after(escaped, p).is_some()) {
            return Some(Start::Escaped);
        }
    }
    if rest.starts_with(INJECTED_MARKER) {
        return Some(Start::Injected);
    }
    if let Some(r) = after(rest, &opts.file_prefix) {
        return Some(Start::File(r));
    }
    if let Some(r) = after(rest, &opts.json_prefix) {
        return Some(Start::Json(r));
    }
    if let Some(r) = after_relay(rest, &opts.thinking_prefix) {
        return Some(Start::Relay {
            thinking: true,
            rest: r,
        });
    }
    if let Some(r) = after_relay(rest, &opts.prefix) {
        return Some(Start::Relay {
            thinking: false,
            rest: r,
        });
    }
    if let Some(r) = rest.strip_prefix(META_OPEN) {
        return Some(Start::Metadata(r));
    }
    if let Some(r) = rest.strip_prefix(BLOCK_OPEN) {
        return Some(Start::Block(r));
    }
    None
}

/// A line that begins a new construct and therefore ends an open fenced body.
pub(crate) fn starts_construct(line: &str, opts: &GrammarOptions) -> bool {
    matches!(
        classify(line, opts),
        Some(
            Start::File(_)
                | Start::Json(_)
                | Start::Relay { .. }
                | Start::Metadata(_)
                | Start::Block(_)
        )
    )
}

/// A line that ends the continuation of an inline message.
pub(crate) fn stops_continuation(line: &str, opts: &GrammarOptions) -> bool {
    classify(line, opts).is_some()
        || is_code_fence(line)
        || is_prompt_line(line)
        || anchors(line).any(|at| line.get(at..).is_some_and(|r| r.starts_with("[[/RELAY")))
}

pub(crate) fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// A markdown code fence: ```` ``` ```` with or without a language, also after the prefix
/// allowance (a TUI bullet or box border: `⏺ ```rust`, `│ ````).
pub(crate) fn is_code_fence(line: &str) -> bool {
    anchors(line).any(|at| line.get(at..).is_some_and(|rest| rest.starts_with("```")))
}

/// A bare prompt glyph alone on the line (`>`, `$`, `❯`-style prompts).
pub(crate) fn is_prompt_line(line: &str) -> bool {
    let mut chars = line.trim().chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if PROMPT_GLYPHS.contains(&c))
}

pub(crate) fn is_indented(line: &str) -> bool {
    !is_blank(line) && line.chars().next().is_some_and(char::is_whitespace)
}

/// `- item`, `• item`, `1. item`, `2) item` (after optional spaces/tabs).
pub(crate) fn is_bullet_or_numbered(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) if BULLET_GLYPHS.contains(&c) => chars.next().is_some_and(char::is_whitespace),
        Some(c) if c.is_ascii_digit() => {
            let after_digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let mut tail = after_digits.chars();
            matches!(tail.next(), Some('.' | ')')) && tail.next().is_some_and(char::is_whitespace)
        }
        _ => false,
    }
}

/// `N.` or `N)` at the start of the line.
pub(crate) fn is_numbered_start(line: &str) -> bool {
    let rest = line.trim_start();
    let after_digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    after_digits.len() < rest.len()
        && (after_digits.starts_with('.') || after_digits.starts_with(')'))
}

/// A markdown table row.
pub(crate) fn is_table_row(line: &str) -> bool {
    line.trim_start().starts_with('|')
}

pub(crate) fn ends_with_continuation_punctuation(line: &str) -> bool {
    line.trim_end()
        .chars()
        .next_back()
        .is_some_and(|c| CONTINUATION_PUNCTUATION.contains(&c))
}

/// Width of the leading whitespace, in bytes.
fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Removes the indentation shared by all non-blank lines and trailing whitespace.
pub(crate) fn dedent(lines: &[String]) -> Vec<String> {
    let common = lines
        .iter()
        .filter(|l| !is_blank(l))
        .map(|l| indent_of(l))
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| {
            if is_blank(l) {
                String::new()
            } else {
                // Strip whole whitespace characters, at most `common` bytes of them.
                let mut strip = 0;
                for c in l.chars() {
                    if !c.is_whitespace() || strip + c.len_utf8() > common {
                        break;
                    }
                    strip += c.len_utf8();
                }
                l[strip..].trim_end().to_owned()
            }
        })
        .collect()
}

/// The first line of a construct, trimmed and shortened to about 160 characters.
pub(crate) fn excerpt(line: &str) -> String {
    const MAX_CHARS: usize = 160;
    let trimmed = line.trim();
    if trimmed.chars().count() <= MAX_CHARS {
        trimmed.to_owned()
    } else {
        let mut short: String = trimmed.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> GrammarOptions {
        GrammarOptions::default()
    }

    #[test]
    fn anchors_walk_glyphs() {
        let line = "  ⏺ - ->relay:Bob";
        let found: Vec<&str> = anchors(line).map(|a| &line[a..]).collect();
        assert_eq!(
            found,
            vec![
                "⏺ - ->relay:Bob",
                "- ->relay:Bob",
                "->relay:Bob",
                ">relay:Bob",
                "relay:Bob"
            ]
        );
    }

    #[test]
    fn classify_prefers_earliest_anchor() {
        assert!(matches!(
            classify("-->relay:Bob hi", &opts()),
            Some(Start::Relay {
                thinking: false,
                rest: "Bob hi"
            })
        ));
        assert_eq!(classify("say ->relay:Bob hi", &opts()), None);
        assert_eq!(classify("->relay: Bob", &opts()), None);
        assert_eq!(classify("\\->relay:Bob", &opts()), Some(Start::Escaped));
        assert_eq!(
            classify("> Relay message from X [1]: y", &opts()),
            Some(Start::Injected)
        );
        assert_eq!(classify("│ [[RELAY]]{}", &opts()), Some(Start::Block("{}")));
    }

    #[test]
    fn code_fences_after_a_bullet_or_border() {
        assert!(is_code_fence("```"));
        assert!(is_code_fence("  ```rust"));
        assert!(is_code_fence("⏺ ```"));
        assert!(is_code_fence("│ ```sh"));
        assert!(!is_code_fence("text ```"));
    }

    #[test]
    fn bullet_and_numbers() {
        assert!(is_bullet_or_numbered("- a"));
        assert!(is_bullet_or_numbered("  12) a"));
        assert!(
            !is_bullet_or_numbered("⏺ a"),
            "a TUI block bullet starts a new block"
        );
        assert!(!is_bullet_or_numbered("-a"));
        assert!(!is_bullet_or_numbered("1.5 apples"));
        assert!(is_numbered_start("3. x"));
        assert!(!is_numbered_start("x. 3"));
    }

    #[test]
    fn prompt_lines() {
        assert!(is_prompt_line("  > "));
        assert!(is_prompt_line("$"));
        assert!(!is_prompt_line("> hi"));
        assert!(!is_prompt_line(""));
    }

    #[test]
    fn dedent_keeps_relative_indent() {
        let lines = vec!["    a".to_owned(), "".to_owned(), "      b  ".to_owned()];
        assert_eq!(dedent(&lines), vec!["a", "", "  b"]);
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), 161);
    }
}
