//! Repairs JSON that was written through a shell (`echo`, heredocs): inside strings, raw
//! newlines, carriage returns, tabs and other control characters become escapes, and a
//! backslash that the shell would have needed (before one of
//! ``! [ ] ( ) { } $ ` ' space * ? # ~ = % ^ & ; | < >``) is dropped. Valid JSON escapes are
//! kept; any other backslash becomes a literal backslash. Text outside strings is untouched.

use std::fmt::Write;

/// Characters a shell user may have escaped with a backslash.
const SHELL_ESCAPED: &[char] = &[
    '!', '[', ']', '(', ')', '{', '}', '$', '`', '\'', ' ', '*', '?', '#', '~', '=', '%', '^', '&',
    ';', '|', '<', '>',
];

/// Characters that may follow a backslash in JSON.
const JSON_ESCAPES: &[char] = &['"', '\\', '/', 'b', 'f', 'n', 'r', 't', 'u'];

pub(crate) fn sanitize_json(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 16);
    let mut in_string = false;
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if !in_string {
            out.push(c);
            in_string = c == '"';
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                out.push(c);
            }
            '\\' => match chars.peek().copied() {
                Some(next) if JSON_ESCAPES.contains(&next) => {
                    out.push('\\');
                    out.push(next);
                    chars.next();
                }
                Some(next) if SHELL_ESCAPED.contains(&next) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push_str("\\\\"),
            },
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_newline_becomes_escape() {
        assert_eq!(sanitize_json("{\"a\":\"x\ny\"}"), "{\"a\":\"x\\ny\"}");
    }

    #[test]
    fn shell_escapes_dropped() {
        assert_eq!(sanitize_json(r#"{"a":"hi\!"}"#), r#"{"a":"hi!"}"#);
        assert_eq!(
            sanitize_json(r#"{"a":"\$HOME \(x\)"}"#),
            r#"{"a":"$HOME (x)"}"#
        );
    }

    #[test]
    fn json_escapes_kept() {
        let text = r#"{"a":"q\"uote\\ \n \u00e9 \/"}"#;
        assert_eq!(sanitize_json(text), text);
    }

    #[test]
    fn unknown_escape_becomes_literal_backslash() {
        assert_eq!(sanitize_json(r#"{"a":"C:\dir"}"#), r#"{"a":"C:\\dir"}"#);
    }

    #[test]
    fn outside_strings_untouched() {
        assert_eq!(sanitize_json("{\n  \"a\": 1\n}"), "{\n  \"a\": 1\n}");
    }
}
