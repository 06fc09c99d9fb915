//! The grammar of what an agent prints to talk to other agents.
//!
//! An agent CLI runs in a PTY; the wrapper renders its output with a terminal emulator and
//! calls [`parse_window`] on a window of complete logical lines (recent scrollback plus the
//! screen, escape sequences removed, soft-wrapped rows joined). The same window is parsed
//! again and again as it grows and scrolls, so parsing is a pure function of the lines: every
//! command comes with the span of lines it was read from ([`Parsed::first_line`],
//! [`Parsed::last_line`]) and the caller decides which commands are new. A construct that is
//! still open at the end of the window (a fenced body without `>>>`, a `[[RELAY]]` block
//! without `[[/RELAY]]`, an inline message whose next line has not been printed yet) is not
//! emitted, and nothing after it is: a longer window always starts with the same commands.
//! Outbox files, the other way to send, are parsed by [`parse_outbox_file`].
//!
//! # Where a command may start
//!
//! Commands start at the beginning of a line, after optional whitespace and any run of bullet
//! or prompt glyphs (`> $ % # → ➜ › » ● • ◦ ‣ ⁃ - * ⏺ ◆ ◇ ○ □ ■ │ ┃ ┆ ┇ ┊ ┋ ╎ ╏ ✦`), each
//! followed by optional whitespace, so `⏺ ->relay:Bob hi` and `│ ->relay:Bob hi` are
//! commands. Text in the middle of a line never is. Not parsed at all:
//!
//! - lines between ```` ``` ```` code fences (with or without a language);
//! - escaped lines: `\->relay:…`, `\->thinking:…`, `\->relay-file:…`, `\->relay.json:…`;
//! - an injected message echoed back — a line starting with `Relay message from ` — and the
//!   indented lines right below it, so a message can never make its recipient send, spawn or
//!   release.
//!
//! # Messages
//!
//! - Inline: `->relay:Target body`. `->thinking:Target body` is the same with kind
//!   [`MessageKind::Thinking`].
//! - Tags at the start of the body, any order, repeatable, removed from the body:
//!   `[await]` (the sender waits for a reply), `[await:N]` with `N` in `ms`, `s`, `m` or `h`
//!   (a bare number is seconds), `[thread:id]` and `[thread:project:id]` (`id` is `[\w.-]+`).
//! - Continuation: the following lines join the body when they are indented, bullets or
//!   numbered items, follow a line ending in `: ; , - – — …`, or once a continuation has
//!   started; another command, a code fence, `[[RELAY]]`, a bare prompt line, an injected
//!   message or a blank line end it (a blank line followed by a table row or numbered item
//!   inside a started continuation does not; two blank lines always do). At most
//!   [`GrammarOptions::max_continuation_lines`] lines join.
//! - Fenced: `->relay:Target [tags] <<<`, body lines, then a line starting or ending with
//!   `>>>` (text before a trailing `>>>` is kept). Body text may follow `<<<` on the first line;
//!   `->relay:Bob <<<hi>>>` is a one-line form. `\>>>` does not close; `\<<<` and `\>>>` stand
//!   for `<<<` and `>>>` in the body. Without `>>>`, two consecutive blank lines or a new
//!   command line close the body (except inside a code fence within the body). More than
//!   [`GrammarOptions::max_fenced_lines`] body lines or
//!   [`GrammarOptions::max_block_bytes`] bytes: rejected. Bodies are dedented and trimmed.
//! - Targets: `Name`, `*`, `#channel`, `@users`, `project:Name` (split on the first colon),
//!   `*:lead`, `proj:*`. Placeholders (see [`is_placeholder_target`]) are rejected.
//! - Bodies that are protocol documentation (`[Agent Relay]`, `PROTOCOL: 1`, `MULTI-LINE:`,
//!   `RECEIVE:`, an escaped prefix anywhere; a first line starting with `AgentName ` or
//!   `Target `, containing `Example:` or ending with `SEND:`) are rejected; the markers are
//!   case-sensitive, so ordinary prose passes.
//! - Block: `[[RELAY]]{json}[[/RELAY]]`, possibly over several lines. The JSON needs `to` and
//!   `type` (or `kind`: `message`, `thinking`, or any other kind such as `state`); the body is
//!   `body`, else `text`, else empty; `data`, `thread`, `project` (wins over `proj:` in `to`),
//!   `await` (`true` or a timeout), `subject`, `importance`, `replyTo` are read. A
//!   `[[RELAY_METADATA]]{subject, importance, replyTo}[[/RELAY_METADATA]]` right before the
//!   block (same line or separated by blank lines only) sets subject, importance and reply-to.
//!   A block is abandoned (rejected) when a command or code fence starts before its
//!   `[[/RELAY]]`.
//! - JSON line: `->relay.json:{"to":"Bob","body":"hi"}` (`kind` message by default; also
//!   thinking, spawn, release).
//!
//! # Other commands
//!
//! - `->relay:spawn Name cli "task"`, `->relay:spawn Name cli` (no task), `->relay:spawn Name
//!   cli task text`, and `->relay:spawn Name cli <<<` … `>>>` (fenced task, same rules as
//!   fenced messages). The keyword is case-insensitive; `cli` is one token (a name or a path).
//! - `->relay:release Name`, nothing after the name.
//! - Spawn and release lines are never messages. Names are 1–64 characters of
//!   `[A-Za-z0-9_.-]`, not starting with `_`, not placeholders.
//! - `->relay-file:ID` ([`Command::File`]): the agent wrote outbox file `ID`.
//!
//! Anything that looks like a command but breaks a rule becomes [`Command::Rejected`] with a
//! reason, for logs; it is never sent.
//!
//! # Main types
//!
//! [`GrammarOptions`] (prefixes and limits), [`Parsed`] (a [`Command`] and its line span),
//! [`OutgoingMessage`], [`SpawnCommand`], [`ReleaseCommand`], [`FileTrigger`],
//! [`Rejection`], and [`OutboxError`] for outbox files.

mod block;
mod fence;
mod fields;
mod filter;
mod inline;
mod line;
mod outbox;
mod sanitize;
mod scan;
mod types;
mod values;

pub use outbox::{parse_outbox_file, OutboxError};
pub use types::*;
pub use values::is_placeholder_target;

/// Parses a window of complete lines that more output may follow.
///
/// Same as [`parse_window_with`] with [`WindowEnd::Open`].
pub fn parse_window(lines: &[&str], opts: &GrammarOptions) -> Vec<Parsed> {
    scan::scan(lines, opts, WindowEnd::Open)
}

/// Parses a window of complete lines, in order of their first line.
///
/// With [`WindowEnd::Open`] the result for a window is always a prefix of the result for the
/// same window with more lines appended. Use [`WindowEnd::Final`] only once the output has
/// ended for good: an inline message on the last line is then emitted although a following
/// line could have continued it.
pub fn parse_window_with(lines: &[&str], opts: &GrammarOptions, end: WindowEnd) -> Vec<Parsed> {
    scan::scan(lines, opts, end)
}
