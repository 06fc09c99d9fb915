//! Outbox files: the agent writes a file into its outbox directory and prints
//! `->relay-file:ID`; the caller reads the file and hands it to [`parse_outbox_file`].
//!
//! Header format:
//!
//! ```text
//! TO: Bob
//! THREAD: task-123
//! AWAIT: 30s
//!
//! Body, any number of lines.
//! ```
//!
//! `KEY: value` lines (key case-insensitive, split at the first colon) up to the first blank
//! line; the rest, trimmed, is the body. CRLF line ends and a UTF-8 byte-order mark are
//! accepted. Keys: `TO` (required for messages), `KIND` (`message` by default, `thinking`,
//! `spawn`, `release`), `THREAD`, `NAME` (spawn/release), `CLI` (spawn), `AWAIT`
//! (`true`/`yes`/`1` or a timeout such as `30s`), `IMPORTANCE` (0–100 or
//! `low|normal|high|urgent`), `SUBJECT`, `PROJECT`, `REPLY-TO`. Unknown keys are ignored. For a
//! spawn, the body is the task.
//!
//! JSON format (file name ending in `.json`, or content starting with `{`):
//! `{"kind","to","body","name","cli","task","thread","await","importance","subject",
//! "replyTo","project","data"}`, body falling back to task. Shell damage (raw newlines in
//! strings, `\!`…) is repaired first.

use crate::fields::{assemble, fields_from_json, FieldError, Fields, Source};
use crate::sanitize::sanitize_json;
use crate::Command;

/// Why an outbox file could not be turned into a command. Each message names the file, says
/// what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// Nothing but whitespace.
    #[error("outbox file `{file}` is empty; write headers such as `TO: Bob`, a blank line, then the message")]
    Empty {
        /// File name.
        file: String,
    },
    /// Not UTF-8.
    #[error("outbox file `{file}` is not valid UTF-8 (first bad byte at offset {offset}); save it as UTF-8")]
    InvalidUtf8 {
        /// File name.
        file: String,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// A line in the header section is not `KEY: value`.
    #[error("line {line} of outbox file `{file}` is not a `KEY: value` header ({text:?}); headers come first, then a blank line, then the body")]
    NotAHeader {
        /// File name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// A known header given twice.
    #[error("outbox file `{file}` sets {key} more than once; keep one {key} line")]
    DuplicateHeader {
        /// File name.
        file: String,
        /// The header, upper-cased.
        key: String,
    },
    /// A required header/field is absent.
    #[error("outbox file `{file}`: {field} is missing; {hint}")]
    Missing {
        /// File name.
        file: String,
        /// Header or JSON field.
        field: String,
        /// How to fix it.
        hint: String,
    },
    /// A header/field has an unusable value.
    #[error("outbox file `{file}`: {field} value {value:?} is invalid: {reason}")]
    InvalidValue {
        /// File name.
        file: String,
        /// Header or JSON field.
        field: String,
        /// The value as written (shortened).
        value: String,
        /// What is accepted.
        reason: String,
    },
    /// The recipient is a documentation placeholder.
    #[error("outbox file `{file}`: {field} `{value}` is a documentation placeholder; write the real agent name")]
    PlaceholderTarget {
        /// File name.
        file: String,
        /// Header or JSON field.
        field: String,
        /// The placeholder.
        value: String,
    },
    /// The kind is not supported.
    #[error(
        "outbox file `{file}`: unknown kind {kind:?}; use message, thinking, spawn or release"
    )]
    UnknownKind {
        /// File name.
        file: String,
        /// The kind as written.
        kind: String,
    },
    /// A message without a body.
    #[error("outbox file `{file}` has no message body; write the message after the blank line that ends the headers")]
    EmptyBody {
        /// File name.
        file: String,
    },
    /// The JSON could not be parsed.
    #[error("outbox file `{file}` is not valid JSON ({message}); check quotes and commas, or use the `TO: Bob` header format")]
    InvalidJson {
        /// File name.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The JSON is not an object.
    #[error("outbox file `{file}` must hold one JSON object such as {{\"to\": \"Bob\", \"body\": \"hi\"}}")]
    NotAnObject {
        /// File name.
        file: String,
    },
}

impl OutboxError {
    fn from_field(file: &str, error: FieldError) -> Self {
        let file = file.to_owned();
        match error {
            FieldError::NotObject => OutboxError::NotAnObject { file },
            FieldError::Missing { field, hint } => OutboxError::Missing {
                file,
                field: field.to_owned(),
                hint,
            },
            FieldError::Invalid {
                field,
                value,
                reason,
            } => OutboxError::InvalidValue {
                file,
                field: field.to_owned(),
                value,
                reason,
            },
            FieldError::Placeholder { field, value } => OutboxError::PlaceholderTarget {
                file,
                field: field.to_owned(),
                value,
            },
            FieldError::UnknownKind { kind, .. } => OutboxError::UnknownKind { file, kind },
            FieldError::EmptyBody => OutboxError::EmptyBody { file },
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses an outbox file into a message, spawn or release command.
///
/// `file_name` decides the format (a `.json` name means JSON) and appears in error messages.
pub fn parse_outbox_file(file_name: &str, contents: &[u8]) -> Result<Command, OutboxError> {
    let bytes = contents.strip_prefix(UTF8_BOM).unwrap_or(contents);
    let text = std::str::from_utf8(bytes).map_err(|e| OutboxError::InvalidUtf8 {
        file: file_name.to_owned(),
        offset: e.valid_up_to() + (contents.len() - bytes.len()),
    })?;
    if text.trim().is_empty() {
        return Err(OutboxError::Empty {
            file: file_name.to_owned(),
        });
    }
    let is_json =
        file_name.to_ascii_lowercase().ends_with(".json") || text.trim_start().starts_with('{');
    let (fields, source) = if is_json {
        let value: serde_json::Value =
            serde_json::from_str(&sanitize_json(text)).map_err(|e| OutboxError::InvalidJson {
                file: file_name.to_owned(),
                message: e.to_string(),
            })?;
        let fields = fields_from_json(&value, Source::OutboxJson)
            .map_err(|e| OutboxError::from_field(file_name, e))?;
        (fields, Source::OutboxJson)
    } else {
        (parse_headers(file_name, text)?, Source::OutboxHeaders)
    };
    assemble(fields, source).map_err(|e| OutboxError::from_field(file_name, e))
}

/// Reads the header format into fields.
fn parse_headers(file: &str, text: &str) -> Result<Fields, OutboxError> {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized
        .split('\n')
        .enumerate()
        .skip_while(|(_, l)| l.trim().is_empty());
    let mut fields = Fields::default();
    let mut seen: Vec<String> = Vec::new();
    for (index, line) in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        let header = line.split_once(':').and_then(|(key, value)| {
            let key = key.trim();
            let valid = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            valid.then(|| (key.to_ascii_uppercase().replace('_', "-"), value.trim()))
        });
        let Some((key, value)) = header else {
            let mut shown: String = line.trim().chars().take(60).collect();
            if line.trim().chars().count() > 60 {
                shown.push('…');
            }
            return Err(OutboxError::NotAHeader {
                file: file.to_owned(),
                line: index + 1,
                text: shown,
            });
        };
        let slot = match key.as_str() {
            "TO" => &mut fields.to,
            "KIND" => &mut fields.kind,
            "THREAD" => &mut fields.thread,
            "NAME" => &mut fields.name,
            "CLI" => &mut fields.cli,
            "AWAIT" => &mut fields.await_value,
            "IMPORTANCE" => &mut fields.importance,
            "SUBJECT" => &mut fields.subject,
            "PROJECT" => &mut fields.project,
            "REPLY-TO" | "REPLYTO" => &mut fields.reply_to,
            _ => continue,
        };
        if seen.contains(&key) {
            return Err(OutboxError::DuplicateHeader {
                file: file.to_owned(),
                key,
            });
        }
        seen.push(key);
        *slot = Some(value.to_owned());
    }
    let body: Vec<&str> = lines.map(|(_, l)| l).collect();
    let body = body.join("\n").trim().to_owned();
    fields.body = Some(body).filter(|b| !b.is_empty());
    Ok(fields)
}
