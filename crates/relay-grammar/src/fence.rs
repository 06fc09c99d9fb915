//! Fenced bodies: `<<<` on the command line, body lines, `>>>` to close.
//!
//! The body ends at the first line that starts with `>>>` or ends with `>>>` (not `\>>>`);
//! text before a trailing `>>>` belongs to the body. `\<<<` and `\>>>` in the body stand for
//! `<<<` and `>>>`. Without a closing marker the body is closed automatically by two
//! consecutive blank lines or by a line that starts a new construct (another command, a
//! `[[RELAY]]` block…), except inside a code fence that is part of the body. A body longer than
//! the line or byte limit is rejected; the rest of it is skipped up to where it would have
//! ended, so its lines are never read as commands or code fences.

use crate::line::{dedent, is_blank, is_code_fence, starts_construct};
use crate::{GrammarOptions, WindowEnd};

/// How a fenced body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FenceEnd {
    /// Closed by `>>>` on line `last`.
    Closed { body: String, last: usize },
    /// Closed automatically; the construct covers up to `last` and scanning resumes at `next`.
    AutoClosed {
        body: String,
        last: usize,
        next: usize,
    },
    /// Longer than the limits at line `last`; scanning resumes at `next`.
    TooLong {
        reason: String,
        last: usize,
        next: usize,
    },
    /// The window ended first and more output may still close it.
    Pending,
    /// The output ended without a close.
    Unterminated { last: usize },
}

/// Text before the closing `>>>` when `line` closes the body.
fn closing_text(line: &str) -> Option<&str> {
    if line.trim_start().starts_with(">>>") {
        return Some("");
    }
    let trimmed = line.trim_end();
    match trimmed.strip_suffix(">>>") {
        Some(before) if !before.ends_with('\\') => Some(before),
        _ => None,
    }
}

fn unescape(text: &str) -> String {
    text.replace("\\<<<", "<<<").replace("\\>>>", ">>>")
}

/// Joins the opening-line text and the dedented body lines, trimmed.
fn join(first: Option<String>, lines: &[String]) -> String {
    let mut parts: Vec<String> = Vec::with_capacity(lines.len() + 1);
    parts.extend(first);
    parts.extend(dedent(lines));
    parts.join("\n").trim().to_owned()
}

/// Reads the body of the fenced construct opened on line `open`; `first` is the text after
/// `<<<` on that line.
pub(crate) fn collect_fenced(
    lines: &[&str],
    open: usize,
    first: &str,
    opts: &GrammarOptions,
    end: WindowEnd,
) -> FenceEnd {
    let mut first_text = None;
    if !first.trim().is_empty() {
        if let Some(before) = closing_text(first) {
            return FenceEnd::Closed {
                body: unescape(before).trim().to_owned(),
                last: open,
            };
        }
        first_text = Some(unescape(first.trim()));
    }
    let mut bytes = first_text.as_ref().map_or(0, String::len);
    let mut body: Vec<String> = Vec::new();
    let mut in_code = first_text.as_deref().is_some_and(is_code_fence);
    let mut previous_blank = false;
    // Set once the body is too long: (line, reason). The rest is skipped, not collected.
    let mut too_long: Option<(usize, String)> = None;

    for (j, line) in lines.iter().enumerate().skip(open + 1) {
        let count = j - open;
        if let Some(before) = closing_text(line) {
            if let Some((last, reason)) = too_long {
                return FenceEnd::TooLong {
                    reason,
                    last,
                    next: j + 1,
                };
            }
            let has_text = !before.trim().is_empty();
            if has_text && count > opts.max_fenced_lines {
                return FenceEnd::TooLong {
                    reason: lines_reason(opts),
                    last: j,
                    next: j + 1,
                };
            }
            if has_text {
                bytes += before.len() + 1;
                if bytes > opts.max_block_bytes {
                    return FenceEnd::TooLong {
                        reason: bytes_reason(opts),
                        last: j,
                        next: j + 1,
                    };
                }
                body.push(unescape(before));
            }
            return FenceEnd::Closed {
                body: join(first_text, &body),
                last: j,
            };
        }
        let blank = is_blank(line);
        if blank && previous_blank && !in_code {
            return match too_long {
                Some((last, reason)) => FenceEnd::TooLong {
                    reason,
                    last,
                    next: j + 1,
                },
                None => FenceEnd::AutoClosed {
                    body: join(first_text, &body),
                    last: j,
                    next: j + 1,
                },
            };
        }
        if !blank && !in_code && starts_construct(line, opts) {
            return match too_long {
                Some((last, reason)) => FenceEnd::TooLong {
                    reason,
                    last,
                    next: j,
                },
                None => FenceEnd::AutoClosed {
                    body: join(first_text, &body),
                    last: j - 1,
                    next: j,
                },
            };
        }
        previous_blank = blank;
        if is_code_fence(line) {
            in_code = !in_code;
        }
        if too_long.is_some() {
            continue;
        }
        if count > opts.max_fenced_lines {
            too_long = Some((j, lines_reason(opts)));
            continue;
        }
        bytes += line.len() + 1;
        if bytes > opts.max_block_bytes {
            too_long = Some((j, bytes_reason(opts)));
            continue;
        }
        body.push(unescape(line));
    }
    match (too_long, end) {
        (Some((last, reason)), _) => FenceEnd::TooLong {
            reason,
            last,
            next: lines.len(),
        },
        (None, WindowEnd::Open) => FenceEnd::Pending,
        (None, WindowEnd::Final) => FenceEnd::Unterminated {
            last: lines.len().saturating_sub(1).max(open),
        },
    }
}

fn lines_reason(opts: &GrammarOptions) -> String {
    format!(
        "fenced block has more than {} lines without a closing >>>; send long text through an \
         outbox file",
        opts.max_fenced_lines
    )
}

fn bytes_reason(opts: &GrammarOptions) -> String {
    format!(
        "fenced block is larger than {} bytes; send long text through an outbox file",
        opts.max_block_bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(lines: &[&str]) -> FenceEnd {
        collect_fenced(lines, 0, "", &GrammarOptions::default(), WindowEnd::Open)
    }

    #[test]
    fn closing_markers() {
        assert_eq!(closing_text(">>>"), Some(""));
        assert_eq!(closing_text("  >>> trailing"), Some(""));
        assert_eq!(closing_text("done>>>  "), Some("done"));
        assert_eq!(closing_text("done\\>>>"), None);
        assert_eq!(closing_text("a >>> b"), None);
    }

    #[test]
    fn closes_and_keeps_text_before_marker() {
        assert_eq!(
            collect(&["open <<<", "  a", "    b", "  c>>>"]),
            FenceEnd::Closed {
                body: "a\n  b\nc".into(),
                last: 3
            }
        );
    }

    #[test]
    fn pending_without_close() {
        assert_eq!(collect(&["open <<<", "a", ""]), FenceEnd::Pending);
    }

    #[test]
    fn double_blank_auto_closes() {
        assert_eq!(
            collect(&["open <<<", "a", "", "", "b"]),
            FenceEnd::AutoClosed {
                body: "a".into(),
                last: 3,
                next: 4
            }
        );
    }

    #[test]
    fn code_fence_in_body_suspends_auto_close() {
        let lines = ["open <<<", "```", "->relay:X hi", "", "", "```", ">>>"];
        assert_eq!(
            collect(&lines),
            FenceEnd::Closed {
                body: "```\n->relay:X hi\n\n\n```".into(),
                last: 6
            }
        );
    }
}
