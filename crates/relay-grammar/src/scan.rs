//! The window scanner: walks the lines once, tracking code fences, and hands each construct
//! to its reader. Every reader either finishes (emitting zero or more commands and saying
//! where scanning resumes) or reports that the window ended inside it, which stops the scan:
//! nothing after an unfinished construct is emitted, so a later, longer window reproduces
//! every command of this one unchanged.

use crate::block::{
    block_message, collect_marker, json_line_command, parse_metadata, MarkerEnd, Metadata,
};
use crate::fence::{collect_fenced, FenceEnd};
use crate::filter::instructional_marker;
use crate::inline::{collect_continuation, Continuation};
use crate::line::{
    classify, excerpt, is_blank, is_code_fence, is_indented, Start, BLOCK_CLOSE, META_CLOSE,
};
use crate::values::{
    check_agent_name, is_placeholder_target, parse_leading_tags, parse_target, Tags, TargetError,
};
use crate::{
    Command, GrammarOptions, MessageKind, OutgoingMessage, Parsed, Rejection, RejectionKind,
    ReleaseCommand, SpawnCommand, WindowEnd,
};

/// Longest accepted outbox-file id, in bytes.
const MAX_FILE_ID_LEN: usize = 255;

struct Scanner<'l, 'o> {
    lines: &'l [&'l str],
    opts: &'o GrammarOptions,
    end: WindowEnd,
    out: Vec<Parsed>,
}

/// Where scanning goes after a construct: `Some(next line)` or `None` when the window ended
/// inside the construct.
type Resume = Option<usize>;

pub(crate) fn scan(lines: &[&str], opts: &GrammarOptions, end: WindowEnd) -> Vec<Parsed> {
    let mut scanner = Scanner {
        lines,
        opts,
        end,
        out: Vec::new(),
    };
    scanner.run();
    scanner.out
}

impl<'l> Scanner<'l, '_> {
    fn run(&mut self) {
        let mut in_code = false;
        let mut i = 0;
        while i < self.lines.len() {
            let line = self.lines[i];
            if is_code_fence(line) {
                in_code = !in_code;
                i += 1;
                continue;
            }
            if in_code {
                i += 1;
                continue;
            }
            let resume = match classify(line, self.opts) {
                None | Some(Start::Escaped) => Some(i + 1),
                Some(Start::Injected) => Some(self.skip_injected(i)),
                Some(Start::File(rest)) => Some(self.file(i, rest)),
                Some(Start::Json(rest)) => Some(self.json_line(i, rest)),
                Some(Start::Relay { thinking, rest }) => self.relay(i, thinking, rest),
                Some(Start::Metadata(rest)) => self.metadata(i, rest),
                Some(Start::Block(rest)) => self.block(i, i, rest, None),
            };
            match resume {
                // Always make progress, whatever a reader answered.
                Some(next) => i = next.max(i + 1),
                None => break,
            }
        }
    }

    fn emit(&mut self, command: Command, first_line: usize, last_line: usize) {
        self.out.push(Parsed {
            command,
            first_line,
            last_line: last_line.max(first_line),
        });
    }

    fn reject(&mut self, kind: RejectionKind, reason: String, first: usize, last: usize) {
        let excerpt = excerpt(self.lines.get(first).copied().unwrap_or(""));
        self.emit(
            Command::Rejected(Rejection {
                kind,
                reason,
                excerpt,
            }),
            first,
            last,
        );
    }

    /// An injected `Relay message from …` line and the indented lines below it.
    fn skip_injected(&self, i: usize) -> usize {
        let mut j = i + 1;
        while self.lines.get(j).is_some_and(|l| is_indented(l)) {
            j += 1;
        }
        j
    }

    fn file(&mut self, i: usize, rest: &str) -> usize {
        match parse_file_id(rest) {
            Ok(id) => self.emit(Command::File(crate::FileTrigger { id }), i, i),
            Err(reason) => self.reject(RejectionKind::InvalidFileId, reason, i, i),
        }
        i + 1
    }

    fn json_line(&mut self, i: usize, rest: &str) -> usize {
        match json_line_command(rest) {
            Ok(command) => self.emit(command, i, i),
            Err((kind, reason)) => self.reject(kind, reason, i, i),
        }
        i + 1
    }

    fn relay(&mut self, i: usize, thinking: bool, rest: &str) -> Resume {
        let (target, remainder) = split_target(rest);
        let keyword = target.to_ascii_lowercase();
        if keyword == "spawn" || keyword == "release" {
            if thinking {
                self.reject(
                    RejectionKind::ReservedTarget,
                    format!("`{target}` cannot receive thinking messages; spawn and release use the message prefix"),
                    i,
                    i,
                );
                return Some(i + 1);
            }
            return if keyword == "spawn" {
                self.spawn(i, remainder)
            } else {
                Some(self.release(i, remainder))
            };
        }
        let kind = if thinking {
            MessageKind::Thinking
        } else {
            MessageKind::Message
        };
        let (tags, body) = parse_leading_tags(remainder);
        if let Some(first) = body.strip_prefix("<<<") {
            let (body, last, next) = match self.fenced(i, first)? {
                Ok(done) => done,
                Err(next) => return Some(next),
            };
            self.message(target, kind, tags, &body, i, last);
            return Some(next);
        }
        let (lines, last) = match collect_continuation(self.lines, i, self.opts, self.end) {
            Continuation::Pending => return None,
            Continuation::Done { lines, last } => (lines, last),
        };
        let mut text = body.trim().to_owned();
        for line in lines {
            text.push('\n');
            text.push_str(&line);
        }
        self.message(target, kind, tags, text.trim(), i, last);
        Some(last + 1)
    }

    /// Reads a fenced body. `Ok((body, last, next))` when it closed; `Err(next)` when it was
    /// rejected (already reported); `None` when the window ended inside it.
    #[allow(clippy::type_complexity)]
    fn fenced(&mut self, i: usize, first: &str) -> Option<Result<(String, usize, usize), usize>> {
        match collect_fenced(self.lines, i, first, self.opts, self.end) {
            FenceEnd::Closed { body, last } => Some(Ok((body, last, last + 1))),
            FenceEnd::AutoClosed { body, last, next } => Some(Ok((body, last, next))),
            FenceEnd::TooLong { reason, last, next } => {
                self.reject(RejectionKind::TooLong, reason, i, last);
                Some(Err(next))
            }
            FenceEnd::Pending => None,
            FenceEnd::Unterminated { last } => {
                self.reject(
                    RejectionKind::Unterminated,
                    "fenced block never closed; end it with a line `>>>`".to_owned(),
                    i,
                    last,
                );
                Some(Err(last + 1))
            }
        }
    }

    /// Validates and emits a text message covering lines `first..=last`.
    fn message(
        &mut self,
        target: &str,
        kind: MessageKind,
        tags: Tags,
        body: &str,
        first: usize,
        last: usize,
    ) {
        let parsed = match parse_target(target) {
            Ok(parsed) => parsed,
            Err(e) => {
                let kind = match e {
                    TargetError::Placeholder(_) => RejectionKind::PlaceholderTarget,
                    TargetError::Invalid(_) => RejectionKind::InvalidTarget,
                };
                self.reject(kind, e.message(), first, last);
                return;
            }
        };
        if body.is_empty() {
            self.reject(
                RejectionKind::EmptyBody,
                format!("message to `{target}` has no body"),
                first,
                last,
            );
            return;
        }
        if body.len() > self.opts.max_block_bytes {
            self.reject(
                RejectionKind::TooLong,
                format!(
                    "message body is larger than {} bytes; send it through an outbox file",
                    self.opts.max_block_bytes
                ),
                first,
                last,
            );
            return;
        }
        if let Some(marker) = instructional_marker(body, self.opts) {
            self.reject(
                RejectionKind::Instructional,
                format!("looks like protocol documentation, not a message (body {marker})"),
                first,
                last,
            );
            return;
        }
        let mut msg = OutgoingMessage::new(parsed.to, body, kind);
        msg.project = parsed.project;
        msg.thread = tags.thread;
        msg.thread_project = tags.thread_project;
        msg.sync = tags.sync;
        self.emit(Command::Message(msg), first, last);
    }

    /// `->relay:spawn NAME CLI ["task" | task text | <<< task >>>]`.
    fn spawn(&mut self, i: usize, remainder: &str) -> Resume {
        let mut rest = remainder.trim_start();
        let name = take_token(&mut rest);
        let cli = if name.is_empty() {
            ""
        } else {
            rest = rest.trim_start();
            take_token(&mut rest)
        };
        let rest = rest.trim_start();
        let (task, last, next) = if let Some(first) = rest.strip_prefix("<<<") {
            match self.fenced(i, first)? {
                Ok((body, last, next)) => (Ok(Some(body).filter(|b| !b.is_empty())), last, next),
                Err(next) => return Some(next),
            }
        } else {
            (spawn_task(rest), i, i + 1)
        };
        let checked = task.and_then(|task| {
            if name.is_empty() || cli.is_empty() {
                return Err(
                    "spawn needs a name and a CLI: ->relay:spawn Worker1 claude \"task\""
                        .to_owned(),
                );
            }
            check_agent_name(name)?;
            if is_placeholder_target(cli) {
                return Err(format!("CLI `{cli}` is a documentation placeholder"));
            }
            Ok(SpawnCommand {
                name: name.to_owned(),
                cli: cli.to_owned(),
                task,
            })
        });
        match checked {
            Ok(spawn) => self.emit(Command::Spawn(spawn), i, last),
            Err(reason) => self.reject(RejectionKind::InvalidSpawn, reason, i, last),
        }
        Some(next)
    }

    /// `->relay:release NAME`.
    fn release(&mut self, i: usize, remainder: &str) -> usize {
        let mut rest = remainder.trim_start();
        let name = take_token(&mut rest);
        let checked = if name.is_empty() {
            Err("release needs an agent name: ->relay:release Worker1".to_owned())
        } else if !rest.trim().is_empty() {
            Err(format!(
                "unexpected text after `{name}`; a release line is only ->relay:release NAME"
            ))
        } else {
            check_agent_name(name)
        };
        match checked {
            Ok(()) => self.emit(
                Command::Release(ReleaseCommand {
                    name: name.to_owned(),
                }),
                i,
                i,
            ),
            Err(reason) => self.reject(RejectionKind::InvalidRelease, reason, i, i),
        }
        i + 1
    }

    /// `[[RELAY_METADATA]]{…}[[/RELAY_METADATA]]`, attached to a `[[RELAY]]` block that
    /// follows directly (on the same line or after blank lines only).
    fn metadata(&mut self, i: usize, rest: &'l str) -> Resume {
        let (content, last, after) =
            match collect_marker(self.lines, i, rest, META_CLOSE, self.opts, self.end) {
                MarkerEnd::Done {
                    content,
                    last,
                    after,
                } => (content, last, after),
                MarkerEnd::Aborted { last, next } => {
                    self.reject(
                        RejectionKind::InvalidMetadata,
                        "[[RELAY_METADATA]] never closed; end it with [[/RELAY_METADATA]]"
                            .to_owned(),
                        i,
                        last,
                    );
                    return Some(next);
                }
                MarkerEnd::TooLarge { last, next } => {
                    self.reject(
                        RejectionKind::TooLong,
                        format!(
                            "[[RELAY_METADATA]] is larger than {} bytes",
                            self.opts.max_block_bytes
                        ),
                        i,
                        last,
                    );
                    return Some(next);
                }
                MarkerEnd::Pending => return None,
                MarkerEnd::Unterminated { last } => {
                    self.reject(
                        RejectionKind::InvalidMetadata,
                        "[[RELAY_METADATA]] never closed; end it with [[/RELAY_METADATA]]"
                            .to_owned(),
                        i,
                        last,
                    );
                    return Some(last + 1);
                }
            };
        let meta = match parse_metadata(&content) {
            Ok(Some(meta)) => meta,
            // Empty metadata: nothing to attach; a following block is read on its own.
            Ok(None) => return Some(last + 1),
            Err(reason) => {
                self.reject(RejectionKind::InvalidMetadata, reason, i, last);
                return Some(last + 1);
            }
        };
        if let Some(block_rest) = after.trim_start().strip_prefix(crate::line::BLOCK_OPEN) {
            return self.block(last, i, block_rest, Some(meta));
        }
        if !after.trim().is_empty() {
            return Some(last + 1);
        }
        let mut j = last + 1;
        while self.lines.get(j).is_some_and(|l| is_blank(l)) {
            j += 1;
        }
        if j >= self.lines.len() {
            return match self.end {
                WindowEnd::Open => None,
                WindowEnd::Final => Some(j),
            };
        }
        match classify(self.lines[j], self.opts) {
            Some(Start::Block(block_rest)) => self.block(j, i, block_rest, Some(meta)),
            _ => Some(j),
        }
    }

    /// `[[RELAY]]{json}[[/RELAY]]` opened on line `start`; the command covers lines from
    /// `first` (the metadata block, when there is one).
    fn block(
        &mut self,
        start: usize,
        first: usize,
        rest: &'l str,
        meta: Option<Metadata>,
    ) -> Resume {
        match collect_marker(self.lines, start, rest, BLOCK_CLOSE, self.opts, self.end) {
            MarkerEnd::Done { content, last, .. } => {
                match block_message(&content, meta.as_ref()) {
                    Ok(msg) => self.emit(Command::Message(msg), first, last),
                    Err((kind, reason)) => self.reject(kind, reason, first, last),
                }
                Some(last + 1)
            }
            MarkerEnd::Aborted { last, next } => {
                self.reject(
                    RejectionKind::Unterminated,
                    "[[RELAY]] block never closed before the next command; end it with [[/RELAY]]"
                        .to_owned(),
                    first,
                    last,
                );
                Some(next)
            }
            MarkerEnd::TooLarge { last, next } => {
                self.reject(
                    RejectionKind::TooLong,
                    format!(
                        "[[RELAY]] block is larger than {} bytes; send it through an outbox file",
                        self.opts.max_block_bytes
                    ),
                    first,
                    last,
                );
                Some(next)
            }
            MarkerEnd::Pending => None,
            MarkerEnd::Unterminated { last } => {
                self.reject(
                    RejectionKind::Unterminated,
                    "[[RELAY]] block never closed; end it with [[/RELAY]]".to_owned(),
                    first,
                    last,
                );
                Some(last + 1)
            }
        }
    }
}

/// Splits `Target rest…` after the prefix; `<<<` glued to the target starts the rest.
fn split_target(rest: &str) -> (&str, &str) {
    let token_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let token_end = rest[..token_end].find("<<<").unwrap_or(token_end);
    rest.split_at(token_end)
}

/// Takes the next whitespace-free token from `rest`, stopping before `<<<`.
fn take_token<'a>(rest: &mut &'a str) -> &'a str {
    let text = *rest;
    let mut end = text.find(char::is_whitespace).unwrap_or(text.len());
    if let Some(fence) = text[..end].find("<<<") {
        end = fence;
    }
    *rest = &text[end..];
    &text[..end]
}

/// The task after `spawn NAME CLI`: `"quoted"` / `'quoted'` (quotes removed), bare text, or
/// nothing.
fn spawn_task(rest: &str) -> Result<Option<String>, String> {
    let rest = rest.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = rest.strip_prefix(quote) {
            return match inner.strip_suffix(quote) {
                Some(task) => Ok(Some(task.trim().to_owned()).filter(|t| !t.is_empty())),
                None => Err(format!(
                    "the task starts with {quote} but does not end with one; quote the whole task"
                )),
            };
        }
    }
    Ok(Some(rest.to_owned()).filter(|t| !t.is_empty()))
}

/// The id of `->relay-file:ID`: `[A-Za-z0-9_.-]+`, optionally followed by whitespace or
/// sentence punctuation; trailing dots are punctuation, a leading dot is refused.
fn parse_file_id(rest: &str) -> Result<String, String> {
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(rest.len());
    let (id, after) = rest.split_at(end);
    if let Some(c) = after.chars().next() {
        if !(c.is_whitespace() || matches!(c, ',' | ';' | ':' | '!' | '?' | ')')) {
            return Err(format!(
                "outbox file id may only contain A-Z a-z 0-9 _ . - (found `{}`)",
                c.escape_debug()
            ));
        }
    }
    let id = id.trim_end_matches('.');
    if id.is_empty() {
        return Err("outbox file trigger has no file name: ->relay-file:msg".to_owned());
    }
    if id.starts_with('.') {
        return Err(format!(
            "outbox file id `{id}` starts with `.`; hidden files are not read"
        ));
    }
    if id.len() > MAX_FILE_ID_LEN {
        return Err(format!(
            "outbox file id is longer than {MAX_FILE_ID_LEN} bytes"
        ));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_split() {
        assert_eq!(split_target("Bob hi"), ("Bob", " hi"));
        assert_eq!(split_target("Bob<<<hi>>>"), ("Bob", "<<<hi>>>"));
        assert_eq!(split_target("Bob"), ("Bob", ""));
    }

    #[test]
    fn tokens() {
        let mut rest = "W1 claude<<< x";
        assert_eq!(take_token(&mut rest), "W1");
        rest = rest.trim_start();
        assert_eq!(take_token(&mut rest), "claude");
        assert_eq!(rest, "<<< x");
    }

    #[test]
    fn tasks() {
        assert_eq!(spawn_task("\"do it\""), Ok(Some("do it".into())));
        assert_eq!(spawn_task("'a \"b\"'"), Ok(Some("a \"b\"".into())));
        assert_eq!(spawn_task(""), Ok(None));
        assert_eq!(spawn_task("\"\""), Ok(None));
        assert_eq!(spawn_task("fix the bug"), Ok(Some("fix the bug".into())));
        assert!(spawn_task("\"unclosed").is_err());
    }

    #[test]
    fn file_ids() {
        assert_eq!(parse_file_id("msg"), Ok("msg".into()));
        assert_eq!(parse_file_id("msg."), Ok("msg".into()));
        assert_eq!(parse_file_id("msg.json now"), Ok("msg.json".into()));
        assert!(parse_file_id("../etc").is_err());
        assert!(parse_file_id(".hidden").is_err());
        assert!(parse_file_id("").is_err());
        assert!(parse_file_id("a/b").is_err());
    }
}
