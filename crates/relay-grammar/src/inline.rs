//! Continuation lines of an inline message.
//!
//! After `->relay:Bob text`, the next line joins the body unless it stops the message
//! (another command or escaped command, an injected `Relay message from` line, a code fence,
//! a `[[RELAY]]`/`[[/RELAY]]` marker, a bare prompt line) and if it is indented, a bullet or
//! numbered item, follows a line ending in `: ; , - – — …`, or a continuation has already
//! started. A blank line stops the message, except inside a started continuation when the next
//! line is a table row (`|…`) or a numbered item (`N.`/`N)`); two blank lines always stop it.
//! At most `max_continuation_lines` lines are joined.

use crate::line::{
    dedent, ends_with_continuation_punctuation, is_blank, is_bullet_or_numbered, is_indented,
    is_numbered_start, is_table_row, stops_continuation,
};
use crate::{GrammarOptions, WindowEnd};

/// The continuation of the inline message on line `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Continuation {
    /// The joined continuation lines (dedented) and the last line of the message.
    Done { lines: Vec<String>, last: usize },
    /// The window ended where another line could still continue the message.
    Pending,
}

/// Collects the lines after `start` that continue its message.
pub(crate) fn collect_continuation(
    lines: &[&str],
    start: usize,
    opts: &GrammarOptions,
    end: WindowEnd,
) -> Continuation {
    let mut taken: Vec<String> = Vec::new();
    let mut last = start;
    let at_end = |taken: Vec<String>, last: usize| match end {
        WindowEnd::Open => Continuation::Pending,
        WindowEnd::Final => Continuation::Done {
            lines: dedent(&taken),
            last,
        },
    };
    loop {
        if taken.len() >= opts.max_continuation_lines {
            break;
        }
        let j = last + 1;
        let Some(line) = lines.get(j) else {
            return at_end(taken, last);
        };
        if is_blank(line) {
            if taken.is_empty() {
                break;
            }
            let Some(next) = lines.get(j + 1) else {
                return at_end(taken, last);
            };
            let resumes = !is_blank(next)
                && (is_table_row(next) || is_numbered_start(next))
                && !stops_continuation(next, opts);
            if resumes && taken.len() + 2 <= opts.max_continuation_lines {
                taken.push(String::new());
                taken.push((*next).to_owned());
                last = j + 1;
                continue;
            }
            break;
        }
        if stops_continuation(line, opts) {
            break;
        }
        let continues = !taken.is_empty()
            || is_indented(line)
            || is_bullet_or_numbered(line)
            || lines
                .get(last)
                .is_some_and(|prev| ends_with_continuation_punctuation(prev));
        if !continues {
            break;
        }
        taken.push((*line).to_owned());
        last = j;
    }
    Continuation::Done {
        lines: dedent(&taken),
        last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Continuation {
        collect_continuation(lines, 0, &GrammarOptions::default(), WindowEnd::Open)
    }

    #[test]
    fn indented_lines_join() {
        assert_eq!(
            run(&["->relay:Bob a", "  b", "c", "", "x"]),
            Continuation::Done {
                lines: vec!["  b".into(), "c".into()],
                last: 2
            }
        );
    }

    #[test]
    fn plain_next_line_does_not_join() {
        assert_eq!(
            run(&["->relay:Bob a", "b"]),
            Continuation::Done {
                lines: vec![],
                last: 0
            }
        );
    }

    #[test]
    fn end_of_window_is_pending() {
        assert_eq!(run(&["->relay:Bob a"]), Continuation::Pending);
        assert_eq!(run(&["->relay:Bob a:", "  b", ""]), Continuation::Pending);
    }

    #[test]
    fn blank_then_table_row_continues() {
        assert_eq!(
            run(&["->relay:Bob a:", "- x", "", "| t |", "", ""]),
            Continuation::Done {
                lines: vec!["- x".into(), "".into(), "| t |".into()],
                last: 3
            }
        );
    }
}
