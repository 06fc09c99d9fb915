//! Structured forms: `[[RELAY]]{json}[[/RELAY]]` blocks, the `[[RELAY_METADATA]]` block that
//! may precede them, and single-line `->relay.json:{json}` commands.

use serde_json::Value;

use crate::fields::{assemble, check_importance, fields_from_json, FieldError, Source};
use crate::line::{classify, is_code_fence};
use crate::{Command, GrammarOptions, OutgoingMessage, RejectionKind, WindowEnd};

/// How a marker-delimited block (`[[X]]…[[/X]]`) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MarkerEnd<'a> {
    /// Closed on line `last`; `after` is the text that follows the closing marker there.
    Done {
        content: String,
        last: usize,
        after: &'a str,
    },
    /// A new construct or code fence began on line `next` before the closing marker.
    Aborted { last: usize, next: usize },
    /// The content grew past the byte limit on line `last`.
    TooLarge { last: usize, next: usize },
    /// The window ended first and more output may still close it.
    Pending,
    /// The output ended without a close.
    Unterminated { last: usize },
}

/// Collects the content of a block opened on line `start`, `first` being the text after the
/// opening marker.
pub(crate) fn collect_marker<'a>(
    lines: &[&'a str],
    start: usize,
    first: &'a str,
    close: &str,
    opts: &GrammarOptions,
    end: WindowEnd,
) -> MarkerEnd<'a> {
    if let Some(pos) = first.find(close) {
        return MarkerEnd::Done {
            content: first[..pos].to_owned(),
            last: start,
            after: &first[pos + close.len()..],
        };
    }
    let mut content = first.to_owned();
    if content.len() > opts.max_block_bytes {
        return MarkerEnd::TooLarge {
            last: start,
            next: start + 1,
        };
    }
    for (j, line) in lines.iter().enumerate().skip(start + 1) {
        if is_code_fence(line) || classify(line, opts).is_some() {
            return MarkerEnd::Aborted {
                last: j - 1,
                next: j,
            };
        }
        let (part, done) = match line.find(close) {
            Some(pos) => (&line[..pos], Some(&line[pos + close.len()..])),
            None => (*line, None),
        };
        content.push('\n');
        content.push_str(part);
        if content.len() > opts.max_block_bytes {
            return MarkerEnd::TooLarge {
                last: j,
                next: j + 1,
            };
        }
        if let Some(after) = done {
            return MarkerEnd::Done {
                content,
                last: j,
                after,
            };
        }
    }
    match end {
        WindowEnd::Open => MarkerEnd::Pending,
        WindowEnd::Final => MarkerEnd::Unterminated {
            last: lines.len().saturating_sub(1).max(start),
        },
    }
}

/// Fields of a `[[RELAY_METADATA]]` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub subject: Option<String>,
    pub importance: Option<u8>,
    pub reply_to: Option<String>,
}

/// Parses metadata JSON: `{subject, importance, replyTo, ackRequired}` (all optional;
/// `ackRequired` is accepted and ignored). Empty content means no metadata.
pub(crate) fn parse_metadata(content: &str) -> Result<Option<Metadata>, String> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(trimmed)
        .map_err(|e| format!("[[RELAY_METADATA]] is not valid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or("[[RELAY_METADATA]] must hold a JSON object")?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!(
                "[[RELAY_METADATA]] field \"{key}\" must be a string"
            )),
        }
    };
    let importance = match obj.get("importance") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => Some(other.to_string()),
    };
    let importance = importance
        .map(|v| check_importance(&v, "\"importance\""))
        .transpose()
        .map_err(|e| format!("[[RELAY_METADATA]] {e}"))?;
    Ok(Some(Metadata {
        subject: text("subject")?,
        importance,
        reply_to: match text("replyTo")? {
            Some(r) => Some(r),
            None => text("reply_to")?,
        },
    }))
}

/// Rejection category of a field error.
pub(crate) fn rejection_kind(error: &FieldError) -> RejectionKind {
    match error {
        FieldError::Placeholder { .. } => RejectionKind::PlaceholderTarget,
        FieldError::EmptyBody => RejectionKind::EmptyBody,
        _ => RejectionKind::InvalidBlock,
    }
}

/// The message of a `[[RELAY]]` block: JSON with `to` and `type` (or `kind`); the body is
/// `body`, else `text`, else empty. Metadata overrides the block's own subject, importance and
/// reply-to.
pub(crate) fn block_message(
    content: &str,
    meta: Option<&Metadata>,
) -> Result<OutgoingMessage, (RejectionKind, String)> {
    let invalid = |e: FieldError| (rejection_kind(&e), format!("[[RELAY]] block: {e}"));
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Err((
            RejectionKind::InvalidBlock,
            "[[RELAY]] block is empty; put a JSON object with \"to\" and \"type\" inside"
                .to_owned(),
        ));
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| {
        (
            RejectionKind::InvalidBlock,
            format!("[[RELAY]] block is not valid JSON: {e}"),
        )
    })?;
    let fields = fields_from_json(&value, Source::Block).map_err(invalid)?;
    let Command::Message(mut msg) = assemble(fields, Source::Block).map_err(invalid)? else {
        return Err((
            RejectionKind::InvalidBlock,
            "[[RELAY]] block does not describe a message".to_owned(),
        ));
    };
    if let Some(meta) = meta {
        if meta.subject.is_some() {
            msg.subject.clone_from(&meta.subject);
        }
        if meta.importance.is_some() {
            msg.importance = meta.importance;
        }
        if meta.reply_to.is_some() {
            msg.reply_to.clone_from(&meta.reply_to);
        }
    }
    Ok(msg)
}

/// The command of a `->relay.json:{…}` line (kinds message, thinking, spawn, release;
/// message by default).
pub(crate) fn json_line_command(text: &str) -> Result<Command, (RejectionKind, String)> {
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        (
            RejectionKind::InvalidBlock,
            format!("->relay.json: command is not valid single-line JSON: {e}"),
        )
    })?;
    let invalid = |e: FieldError| (rejection_kind(&e), format!("->relay.json: command: {e}"));
    let fields = fields_from_json(&value, Source::InlineJson).map_err(invalid)?;
    assemble(fields, Source::InlineJson).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fields() {
        let meta = parse_metadata(
            r#"{"subject":"S","importance":"high","replyTo":"m1","ackRequired":true}"#,
        );
        assert_eq!(
            meta,
            Ok(Some(Metadata {
                subject: Some("S".into()),
                importance: Some(75),
                reply_to: Some("m1".into())
            }))
        );
        assert_eq!(parse_metadata("  "), Ok(None));
        assert!(parse_metadata("{nope").is_err());
        assert!(parse_metadata(r#"{"importance":500}"#).is_err());
    }

    #[test]
    fn marker_on_one_line() {
        let lines = ["[[RELAY]]{}[[/RELAY]] tail"];
        let end = collect_marker(
            &lines,
            0,
            "{}[[/RELAY]] tail",
            "[[/RELAY]]",
            &GrammarOptions::default(),
            WindowEnd::Open,
        );
        assert_eq!(
            end,
            MarkerEnd::Done {
                content: "{}".into(),
                last: 0,
                after: " tail"
            }
        );
    }
}
