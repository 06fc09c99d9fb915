//! Values shared by every form of the grammar: targets, agent names, threads, durations,
//! importance and the `[await]`/`[thread:]` tags.

use crate::SyncSpec;

/// Placeholder names that documentation uses instead of a real recipient.
const PLACEHOLDERS: &[&str] = &[
    "agentname",
    "target",
    "recipient",
    "yourtarget",
    "targetagent",
    "someagent",
    "otheragent",
    "worker",
    "name",
];

/// Longest accepted target, project or thread id, in bytes.
const MAX_TARGET_LEN: usize = 256;

/// Longest agent name accepted by spawn and release.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// True when `name` is a documentation placeholder rather than a real recipient:
/// `AgentName`, `Target`, `Recipient`, `YourTarget`, `TargetAgent`, `SomeAgent`,
/// `OtherAgent`, `Worker`, `Name` (any case), anything in angle brackets (`<name>`,
/// `<agent>`) and ellipses (`...`, `…`).
pub fn is_placeholder_target(name: &str) -> bool {
    let trimmed = name.trim();
    if trimmed.len() >= 2 && trimmed.starts_with('<') && trimmed.ends_with('>') {
        return true;
    }
    if !trimmed.is_empty() && trimmed.chars().all(|c| c == '.' || c == '…') {
        return true;
    }
    let lower = trimmed.to_lowercase();
    PLACEHOLDERS.contains(&lower.as_str())
}

/// A recipient split into its project and agent parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub to: String,
    pub project: Option<String>,
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetError {
    Placeholder(String),
    Invalid(String),
}

impl TargetError {
    pub(crate) fn message(&self) -> String {
        match self {
            TargetError::Placeholder(t) => {
                format!("target `{t}` is a documentation placeholder; name a real agent")
            }
            TargetError::Invalid(reason) => reason.clone(),
        }
    }
}

/// Parses `Name`, `*`, `#channel`, `@users`, `project:Name` (split on the first colon),
/// `*:lead`, `proj:*`.
pub(crate) fn parse_target(raw: &str) -> Result<Target, TargetError> {
    if raw.is_empty() {
        return Err(TargetError::Invalid("the target is empty".to_owned()));
    }
    if raw.len() > MAX_TARGET_LEN {
        return Err(TargetError::Invalid(format!(
            "the target is {} bytes long; the limit is {MAX_TARGET_LEN}",
            raw.len()
        )));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TargetError::Invalid(format!(
            "target `{}` contains whitespace or control characters",
            raw.escape_debug()
        )));
    }
    if is_placeholder_target(raw) {
        return Err(TargetError::Placeholder(raw.to_owned()));
    }
    let splittable = !raw.starts_with('#') && !raw.starts_with('@');
    let target = match raw.split_once(':') {
        Some((project, to)) if splittable => {
            if project.is_empty() || to.is_empty() {
                return Err(TargetError::Invalid(format!(
                    "target `{raw}` has an empty project or agent part; write `project:Agent`"
                )));
            }
            if is_placeholder_target(to) {
                return Err(TargetError::Placeholder(raw.to_owned()));
            }
            Target {
                to: to.to_owned(),
                project: Some(project.to_owned()),
            }
        }
        _ => Target {
            to: raw.to_owned(),
            project: None,
        },
    };
    Ok(target)
}

/// Checks an agent name for spawn/release: 1–64 characters of `[A-Za-z0-9_.-]`, not starting
/// with `_`, not only dots, not a placeholder.
pub(crate) fn check_agent_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the agent name is missing".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "agent name `{name}` is {} characters long; the limit is {MAX_NAME_LEN}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "agent name `{}` contains `{}`; use only A-Z a-z 0-9 _ . -",
            name.escape_debug(),
            bad.escape_debug()
        ));
    }
    if name.starts_with('_') {
        return Err(format!(
            "agent name `{name}` starts with `_`, which is reserved"
        ));
    }
    if is_placeholder_target(name) {
        return Err(format!(
            "agent name `{name}` is a documentation placeholder; choose a real name"
        ));
    }
    Ok(())
}

/// A thread id (`[\w.-]+`), optionally qualified by a project: `proj:id`.
pub(crate) fn parse_thread_ref(raw: &str) -> Option<(Option<String>, String)> {
    fn is_id(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_TARGET_LEN
            && s.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    }
    match raw.split_once(':') {
        Some((project, id)) if is_id(project) && is_id(id) => {
            Some((Some(project.to_owned()), id.to_owned()))
        }
        Some(_) => None,
        None if is_id(raw) => Some((None, raw.to_owned())),
        None => None,
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds, in milliseconds.
pub(crate) fn parse_duration_ms(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let digits_end = raw
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(raw.len(), |(i, _)| i);
    if digits_end == 0 {
        return None;
    }
    let number: u64 = raw[..digits_end].parse().ok()?;
    let factor = match raw[digits_end..].to_ascii_lowercase().as_str() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// An await value from a header or JSON: `true`/`yes`/`1` (wait, default timeout),
/// `false`/`no`/`0` (do not wait) or a duration (`30s`, bare number = seconds).
pub(crate) fn parse_await_value(raw: &str) -> Option<Option<SyncSpec>> {
    let lower = raw.trim().to_ascii_lowercase();
    match lower.as_str() {
        "true" | "yes" | "1" => Some(Some(SyncSpec { timeout_ms: None })),
        "false" | "no" | "0" => Some(None),
        _ => parse_duration_ms(&lower).map(|ms| {
            Some(SyncSpec {
                timeout_ms: Some(ms),
            })
        }),
    }
}

/// Importance: an integer 0–100 or `low|normal|high|urgent` (25/50/75/100).
pub(crate) fn parse_importance(raw: &str) -> Option<u8> {
    let lower = raw.trim().to_ascii_lowercase();
    match lower.as_str() {
        "low" => Some(25),
        "normal" => Some(50),
        "high" => Some(75),
        "urgent" => Some(100),
        _ => lower.parse::<u8>().ok().filter(|n| *n <= 100),
    }
}

/// Tags read from the start of a message body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tags {
    pub sync: Option<SyncSpec>,
    pub thread: Option<String>,
    pub thread_project: Option<String>,
}

/// Reads `[await]`, `[await:N]`, `[thread:id]` and `[thread:project:id]` tags (any order,
/// repeatable, the last one of a kind wins) from the start of `text`. Returns the tags and
/// the remaining text, which starts at the first character that is not part of a tag.
pub(crate) fn parse_leading_tags(text: &str) -> (Tags, &str) {
    let mut tags = Tags::default();
    let mut rest = text.trim_start();
    while let Some(inner_and_more) = rest.strip_prefix('[') {
        let Some(close) = inner_and_more.find(']') else {
            break;
        };
        let inner = &inner_and_more[..close];
        let (keyword, value) = match inner.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (inner, None),
        };
        let keyword = keyword.to_ascii_lowercase();
        match (keyword.as_str(), value) {
            ("await", None) => tags.sync = Some(SyncSpec { timeout_ms: None }),
            ("await", Some(v)) => match parse_duration_ms(v) {
                Some(ms) => {
                    tags.sync = Some(SyncSpec {
                        timeout_ms: Some(ms),
                    })
                }
                None => break,
            },
            ("thread", Some(v)) => match parse_thread_ref(v) {
                Some((project, id)) => {
                    tags.thread = Some(id);
                    tags.thread_project = project;
                }
                None => break,
            },
            _ => break,
        }
        rest = inner_and_more[close + 1..].trim_start();
    }
    (tags, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("30"), Some(30_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("1H"), Some(3_600_000));
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("10d"), None);
        assert_eq!(parse_duration_ms("99999999999999999999h"), None);
        assert_eq!(parse_duration_ms("18446744073709551615h"), None);
    }

    #[test]
    fn importance_values() {
        assert_eq!(parse_importance("0"), Some(0));
        assert_eq!(parse_importance("100"), Some(100));
        assert_eq!(parse_importance("101"), None);
        assert_eq!(parse_importance("Urgent"), Some(100));
        assert_eq!(parse_importance("low"), Some(25));
        assert_eq!(parse_importance("-1"), None);
        assert_eq!(parse_importance("soon"), None);
    }

    #[test]
    fn await_values() {
        assert_eq!(
            parse_await_value("yes"),
            Some(Some(SyncSpec { timeout_ms: None }))
        );
        assert_eq!(parse_await_value("0"), Some(None));
        assert_eq!(
            parse_await_value("45s"),
            Some(Some(SyncSpec {
                timeout_ms: Some(45_000)
            }))
        );
        assert_eq!(parse_await_value("maybe"), None);
    }

    #[test]
    fn tags_any_order() {
        let (tags, rest) = parse_leading_tags("[thread:p:t-1] [await:5m]  hi [await]");
        assert_eq!(rest, "hi [await]");
        assert_eq!(tags.thread.as_deref(), Some("t-1"));
        assert_eq!(tags.thread_project.as_deref(), Some("p"));
        assert_eq!(
            tags.sync,
            Some(SyncSpec {
                timeout_ms: Some(300_000)
            })
        );
    }

    #[test]
    fn unknown_tag_stays_in_body() {
        let (tags, rest) = parse_leading_tags("[urgent] [await] x");
        assert_eq!(tags, Tags::default());
        assert_eq!(rest, "[urgent] [await] x");
        let (tags, rest) = parse_leading_tags("[await:soon] x");
        assert_eq!(tags.sync, None);
        assert_eq!(rest, "[await:soon] x");
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("proj:a:b"),
            Ok(Target {
                to: "a:b".into(),
                project: Some("proj".into())
            })
        );
        assert_eq!(parse_target("#chan").map(|t| t.project), Ok(None));
        assert!(matches!(
            parse_target("proj:"),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            parse_target("proj:AgentName"),
            Err(TargetError::Placeholder(_))
        ));
    }

    #[test]
    fn names() {
        assert!(check_agent_name("Worker-1.a_b").is_ok());
        assert!(check_agent_name("_hidden").is_err());
        assert!(check_agent_name("a/b").is_err());
        assert!(check_agent_name(&"a".repeat(65)).is_err());
        assert!(check_agent_name("...").is_err());
        assert!(check_agent_name("").is_err());
    }
}
