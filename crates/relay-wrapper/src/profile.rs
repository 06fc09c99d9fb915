//! Per-CLI readiness profiles: when an agent can take typed input.
//!
//! Typing into an agent that is busy interleaves with its redraws or is lost. Each profile says
//! what "busy" looks like on screen, what its input prompt looks like, how long the output must
//! be quiet, and whether multi-line text may be pasted. Every wait has a deadline: when the
//! heuristics never say "ready" the message is typed anyway rather than held forever.

use std::time::Duration;

use regex::Regex;

/// How the wrapper judges and drives one kind of agent CLI.
#[derive(Debug, Clone)]
pub struct ReadinessProfile {
    pub name: &'static str,
    /// Text anywhere on screen that means the agent is working.
    busy: Vec<Regex>,
    /// A line at or just above the cursor that means the agent waits for input.
    prompt: Vec<Regex>,
    /// Quiet output needed before typing when a prompt is visible.
    pub quiet: Duration,
    /// Quiet output after which the agent counts as ready even without a recognised prompt.
    pub quiet_without_prompt: Duration,
    /// Longest wait for readiness before typing anyway.
    pub max_wait: Duration,
    /// Pause between the text and the Enter key.
    pub enter_delay: Duration,
    /// Type multi-line bodies as one bracketed paste (when the agent enabled bracketed paste);
    /// otherwise they are joined into one line. Off for CLIs that collapse pastes into a
    /// placeholder, where the text could not be verified on screen.
    pub paste_multiline: bool,
}

impl ReadinessProfile {
    /// The profile for a command line: by the program's name (`claude`, `codex`, `gemini`),
    /// else the generic shell-like profile. `explicit` (a `--profile` flag) wins.
    pub fn for_command(program: &str, explicit: Option<&str>) -> ReadinessProfile {
        let name = explicit.map(str::to_ascii_lowercase).unwrap_or_else(|| {
            std::path::Path::new(program)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(program)
                .to_ascii_lowercase()
        });
        match name.as_str() {
            "claude" => Self::claude(),
            "codex" => Self::codex(),
            "gemini" => Self::gemini(),
            _ => Self::generic(),
        }
    }

    /// Names accepted by [`ReadinessProfile::for_command`]'s `explicit`.
    pub const NAMES: &'static [&'static str] = &["claude", "codex", "gemini", "generic"];

    pub fn claude() -> ReadinessProfile {
        ReadinessProfile {
            name: "claude",
            busy: regexes(&[r"(?i)esc to interrupt", r"(?i)\bthinking…"]),
            prompt: regexes(&[r"^\s*[│|]?\s*>\s?", r"^\s*❯\s?"]),
            quiet: Duration::from_millis(250),
            quiet_without_prompt: Duration::from_millis(2000),
            max_wait: Duration::from_secs(60),
            enter_delay: Duration::from_millis(80),
            paste_multiline: false,
        }
    }

    pub fn codex() -> ReadinessProfile {
        ReadinessProfile {
            name: "codex",
            busy: regexes(&[r"(?i)esc to interrupt", r"(?i)\bworking\b.*\(\d+s"]),
            prompt: regexes(&[r"^\s*[›▌>]\s?"]),
            quiet: Duration::from_millis(300),
            quiet_without_prompt: Duration::from_millis(2000),
            max_wait: Duration::from_secs(60),
            enter_delay: Duration::from_millis(120),
            paste_multiline: false,
        }
    }

    pub fn gemini() -> ReadinessProfile {
        ReadinessProfile {
            name: "gemini",
            busy: regexes(&[r"(?i)esc to cancel"]),
            prompt: regexes(&[r"^\s*[│|]?\s*>\s", r"^\s*[│|]?\s*\*\s"]),
            quiet: Duration::from_millis(300),
            quiet_without_prompt: Duration::from_millis(2000),
            max_wait: Duration::from_secs(60),
            enter_delay: Duration::from_millis(100),
            paste_multiline: false,
        }
    }

    /// Shell-like programs: a prompt character at the end of the cursor's line.
    pub fn generic() -> ReadinessProfile {
        ReadinessProfile {
            name: "generic",
            busy: Vec::new(),
            prompt: regexes(&[r"[>$%#❯›»]\s?$", r"^\s*[│|]?\s*>\s"]),
            quiet: Duration::from_millis(200),
            quiet_without_prompt: Duration::from_millis(1500),
            max_wait: Duration::from_secs(30),
            enter_delay: Duration::from_millis(50),
            paste_multiline: true,
        }
    }

    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Whether the screen shows the agent working.
    pub fn is_busy(&self, screen_text: &str) -> bool {
        self.busy.iter().any(|r| r.is_match(screen_text))
    }

    /// Whether one of `lines` (the cursor's line and a few above it) is an input prompt.
    pub fn shows_prompt(&self, lines: &[String]) -> bool {
        lines
            .iter()
            .rev()
            .take(3)
            .any(|l| self.prompt.iter().any(|r| r.is_match(l)))
    }
}

fn regexes(patterns: &[&str]) -> Vec<Regex> {
    patterns.iter().filter_map(|p| Regex::new(p).ok()).collect()
}

/// The verdict on one readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Busy or not quiet yet.
    NotYet,
}

/// Judges readiness from what is on screen and how long output has been quiet.
pub fn judge(
    profile: &ReadinessProfile,
    screen_text: &str,
    cursor_lines: &[String],
    quiet: Duration,
    explicit_ready: bool,
) -> Readiness {
    if profile.is_busy(screen_text) {
        return Readiness::NotYet;
    }
    if explicit_ready && quiet >= profile.quiet {
        return Readiness::Ready;
    }
    if quiet >= profile.quiet && profile.shows_prompt(cursor_lines) {
        return Readiness::Ready;
    }
    if quiet >= profile.quiet_without_prompt {
        return Readiness::Ready;
    }
    Readiness::NotYet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn profiles_are_chosen_by_program_name() {
        assert_eq!(
            ReadinessProfile::for_command("/usr/bin/claude", None).name,
            "claude"
        );
        assert_eq!(ReadinessProfile::for_command("codex", None).name, "codex");
        assert_eq!(ReadinessProfile::for_command("gemini", None).name, "gemini");
        assert_eq!(ReadinessProfile::for_command("bash", None).name, "generic");
        assert_eq!(
            ReadinessProfile::for_command("bash", Some("claude")).name,
            "claude"
        );
    }

    #[test]
    fn claude_busy_spinner_blocks_and_prompt_box_allows() {
        let p = ReadinessProfile::claude();
        let busy = "✻ Thinking… (esc to interrupt)\n│ > \n";
        let q = Duration::from_millis(500);
        assert_eq!(
            judge(&p, busy, &lines(&["│ > "]), q, false),
            Readiness::NotYet
        );
        let idle = "⏺ done\n╭──╮\n│ > \n╰──╯";
        assert_eq!(
            judge(&p, idle, &lines(&["╭──╮", "│ > "]), q, false),
            Readiness::Ready
        );
        // Not quiet long enough.
        let short = Duration::from_millis(10);
        assert_eq!(
            judge(&p, idle, &lines(&["│ > "]), short, false),
            Readiness::NotYet
        );
    }

    #[test]
    fn generic_prompt_or_long_silence() {
        let p = ReadinessProfile::generic();
        let q = Duration::from_millis(300);
        assert_eq!(
            judge(&p, "", &lines(&["user@host:~$ "]), q, false),
            Readiness::Ready
        );
        assert_eq!(
            judge(&p, "", &lines(&["compiling 3/10"]), q, false),
            Readiness::NotYet
        );
        let long = Duration::from_secs(2);
        assert_eq!(
            judge(&p, "", &lines(&["compiling 3/10"]), long, false),
            Readiness::Ready
        );
        assert_eq!(judge(&p, "", &lines(&["x"]), q, true), Readiness::Ready);
    }
}
