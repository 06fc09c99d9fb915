//! Applying a profile to a `claude` command line.

use crate::profile::AgentProfile;

/// Whether `command` runs the Claude Code CLI: the base name of its first
/// word is `claude` (ignoring case, and a trailing `.exe`).
///
/// The first word may be quoted with `'` or `"`; `/` and `\` both separate
/// directories. Anything else (`claude-code-wrapper`, `claudex`,
/// `node claude.js`, `/opt/claude/bin/codex`) is not Claude.
pub fn is_claude_cli(command: &str) -> bool {
    let Some(word) = first_word(command) else {
        return false;
    };
    let base = word.rsplit(['/', '\\']).next().unwrap_or_default();
    let base = base.to_lowercase();
    let base = base.strip_suffix(".exe").unwrap_or(&base);
    base == "claude"
}

/// The first word of a shell command, with `'…'` and `"…"` quoting removed.
fn first_word(command: &str) -> Option<String> {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in command.trim_start().chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                started = true;
            }
            None if c.is_whitespace() => break,
            None => {
                word.push(c);
                started = true;
            }
        }
    }
    (started && !word.is_empty()).then_some(word)
}

/// The arguments (program name excluded) with the profile applied, the way
/// spawners start `claude` for a named agent.
///
/// `args` is copied; then `--model <model>` is added when the profile has a
/// model and `args` has neither `--model x` nor `--model=x`, and
/// `--agent <profile name>` is added unless `args` has `--agent` or
/// `--agent=x`. Arguments after a literal `--` are positional: they are not
/// searched, and the added flags go before the `--`.
pub fn apply_claude_profile(args: &[String], profile: &AgentProfile) -> Vec<String> {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (options, rest) = args.split_at(end);

    let mut out = options.to_vec();
    if let Some(model) = &profile.model {
        if !has_flag(options, "--model") {
            out.push("--model".to_string());
            out.push(model.clone());
        }
    }
    if !has_flag(options, "--agent") {
        out.push("--agent".to_string());
        out.push(profile.name.clone());
    }
    out.extend_from_slice(rest);
    out
}

fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|arg| {
        arg.strip_prefix(flag)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    })
}
