//! Agent profiles: discovery of `.claude/agents/*.md` (and `.openagents/*.md`).
//!
//! A *profile* describes an agent a spawner can start: its name, model,
//! tools, role and the system prompt that defines it. This crate finds the
//! profile files of a project, parses them, resolves a name to one profile,
//! and turns a profile into `claude` command-line flags. It does not start
//! or supervise anything.
//!
//! # Where profiles live
//!
//! [`ProfileRegistry::discover`] reads, non-recursively:
//!
//! 1. `<project>/.claude/agents/*.md` ([`ProfileSource::ClaudeAgents`]),
//! 2. `<project>/.openagents/*.md` ([`ProfileSource::OpenAgents`]).
//!
//! A missing directory is not an error. Hidden files, files not ending in
//! `.md`, sub-directories and files over [`MAX_PROFILE_BYTES`] (1 MiB) are
//! not profiles. Each file is read once per `discover`; discover again for
//! fresh data. Nothing in discovery panics or fails: every problem becomes
//! a [`ProfileWarning`] that names the file, says what is wrong and how to
//! fix it.
//!
//! # File format
//!
//! Markdown with optional YAML front matter, as Claude Code writes it:
//!
//! ```markdown
//! ---
//! name: code-reviewer
//! description: "Reviews diffs for bugs: use after every change"
//! tools: Read, Grep, Glob, Bash(git diff:*)
//! model: sonnet
//! role: reviewer
//! skills:
//!   - rust
//!   - security
//! shadowRole: reviewer
//! shadowTriggers: [CODE_WRITTEN, REVIEW_REQUEST]
//! color: purple
//! ---
//!
//! You are a meticulous code reviewer. ...
//! ```
//!
//! * The front matter must start on the very first line (after an optional
//!   UTF-8 byte order mark) with a line that is exactly `---`, and ends at
//!   the next line that is exactly `---` or `...` (trailing blanks allowed).
//!   A `---` inside a value does not end it. CRLF line ends are accepted
//!   (the prompt is returned with LF).
//! * It is parsed as YAML, so quoting, block scalars, lists, anchors and
//!   merge keys behave as YAML says. Invalid YAML is reported with the line
//!   and column in the file.
//! * Recognised keys ([`AgentProfile`] lists them all): `name`,
//!   `description`, `tools` and `allowed-tools` (merged), `model`, `role`,
//!   `agentType`/`agent-type`/`type`, `skills`, `shadowRole`,
//!   `shadowTriggers` (camelCase, kebab-case and snake_case spellings of
//!   the multi-word keys are accepted). List fields take a comma-separated
//!   string (commas inside brackets do not split: `Bash(git add:*, git
//!   commit:*)` is one tool) or a YAML list. Every other key is kept in
//!   [`AgentProfile::extra`] as JSON.
//! * A number or boolean where a string is expected (`model: 4`) is read as
//!   its text, with a warning suggesting quotes; a list or mapping there is
//!   ignored with a warning. Empty values count as absent.
//! * A file without front matter is a valid profile, without a warning:
//!   its name is the file stem and the whole file is the prompt. (If the
//!   first non-blank line is `---` but blank lines precede it, the file is
//!   read the same way and a warning says so.)
//! * A file whose front matter is not closed, is not valid YAML or is not a
//!   mapping is skipped with a warning.
//!
//! # Name matching
//!
//! [`ProfileRegistry::find`] matches the front-matter name or the file
//! stem, ignoring case. When several profiles match (a *collision*, always
//! reported as a warning naming both files):
//!
//! 1. `.claude/agents` wins over `.openagents`;
//! 2. then a profile whose name or stem has exactly the spelling asked for;
//! 3. then the smallest path.
//!
//! The outcome never depends on directory listing order.
//!
//! # Applying a profile to `claude`
//!
//! [`is_claude_cli`] tells whether a command runs the Claude Code CLI, and
//! [`apply_claude_profile`] adds `--model` and `--agent` to its arguments
//! unless they are already there (in either `--flag value` or
//! `--flag=value` form).
//!
//! ```
//! use std::path::Path;
//! use relay_agents::{apply_claude_profile, parse_profile, ProfileSource};
//!
//! let text = "---\nname: code-reviewer\nmodel: sonnet\ntools: Read, Grep\n---\nReview diffs.\n";
//! let path = Path::new(".claude/agents/code-reviewer.md");
//! let profile = parse_profile(path, ProfileSource::ClaudeAgents, text)?;
//! assert_eq!(profile.tools, ["Read", "Grep"]);
//! assert_eq!(profile.prompt, "Review diffs.");
//!
//! let args = apply_claude_profile(&["--verbose".to_string()], &profile);
//! assert_eq!(args, ["--verbose", "--model", "sonnet", "--agent", "code-reviewer"]);
//! # Ok::<(), relay_agents::ProfileError>(())
//! ```
//!
//! # Main types
//!
//! * [`ProfileRegistry`]: discovery, the list of profiles and warnings, and
//!   lookup by name.
//! * [`AgentProfile`]: one parsed profile; [`ProfileSource`]: where it was
//!   found.
//! * [`parse_profile`] / [`parse_profile_with_warnings`]: parse one file's
//!   text; [`ProfileError`]: why a file was rejected.
//! * [`ProfileWarning`] / [`WarningKind`]: problems found during discovery.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod claude;
mod error;
mod parse;
mod profile;
mod registry;

pub use claude::{apply_claude_profile, is_claude_cli};
pub use error::{ProfileError, ProfileWarning, WarningKind};
pub use parse::{parse_profile, parse_profile_with_warnings};
pub use profile::{AgentProfile, ProfileSource};
pub use registry::{ProfileRegistry, MAX_PROFILE_BYTES};
