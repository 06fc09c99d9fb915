//! Parsing one profile file: front matter splitting, YAML, field extraction.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::error::{ProfileError, ProfileWarning, WarningKind};
use crate::profile::{AgentProfile, ProfileSource};

/// Keys read into `tools`, merged in this order.
const TOOLS_KEYS: &[&str] = &["tools", "allowed-tools", "allowedTools", "allowed_tools"];
/// Keys read into `agent_type`, the first present one wins.
const AGENT_TYPE_KEYS: &[&str] = &["agentType", "agent-type", "agent_type", "type"];
const SHADOW_ROLE_KEYS: &[&str] = &["shadowRole", "shadow-role", "shadow_role"];
const SHADOW_TRIGGERS_KEYS: &[&str] = &["shadowTriggers", "shadow-triggers", "shadow_triggers"];

/// Parses one profile file.
///
/// `path` is only used for the file stem and for messages; `contents` is
/// the whole file. Problems that do not prevent loading (a number where a
/// string is expected, two spellings of a field that disagree, ...) are
/// dropped here: use [`parse_profile_with_warnings`] to see them.
///
/// # Errors
///
/// [`ProfileError`] when the front matter is not closed, is not valid
/// YAML, is not a mapping, or when the agent ends up without a name.
pub fn parse_profile(
    path: &Path,
    source: ProfileSource,
    contents: &str,
) -> Result<AgentProfile, ProfileError> {
    parse_profile_with_warnings(path, source, contents).map(|(profile, _)| profile)
}

/// Like [`parse_profile`], and also returns the warnings about a profile
/// that was loaded but has something to fix.
///
/// # Errors
///
/// The same as [`parse_profile`].
pub fn parse_profile_with_warnings(
    path: &Path,
    source: ProfileSource,
    contents: &str,
) -> Result<(AgentProfile, Vec<ProfileWarning>), ProfileError> {
    let mut warnings = Vec::new();
    let text = contents.strip_prefix('\u{feff}').unwrap_or(contents);
    let text: Cow<'_, str> = if text.contains("\r\n") {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };

    let (fields, body) = match split_front_matter(&text) {
        Split::None => {
            if first_non_blank_line_is_delimiter(&text) {
                warnings.push(ProfileWarning::new(
                    path.to_path_buf(),
                    WarningKind::FrontMatterNotAtStart,
                    "a `---` front-matter block follows blank lines, so it was read as part of \
                     the prompt and no field applies; remove the blank lines so that `---` is \
                     the first line of the file",
                ));
            }
            (Vec::new(), text.as_ref())
        }
        Split::Unclosed => {
            return Err(ProfileError::UnclosedFrontMatter {
                path: path.to_path_buf(),
            })
        }
        Split::Found { yaml, body } => {
            let mapping = parse_yaml(path, yaml)?;
            (string_keys(path, mapping, &mut warnings), body)
        }
    };

    let file_stem = file_stem(path);
    let key_order: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
    let already_warned = warnings.len();
    let mut fields = Fields {
        path,
        entries: fields,
        warnings: &mut warnings,
    };

    let name = fields
        .scalar(&["name"])
        .unwrap_or_else(|| file_stem.clone());
    if name.is_empty() {
        return Err(ProfileError::MissingName {
            path: path.to_path_buf(),
        });
    }
    let description = fields.scalar(&["description"]);
    let tools = fields.list(TOOLS_KEYS);
    let model = fields.scalar(&["model"]);
    let role = fields.scalar(&["role"]);
    let agent_type = fields.scalar(AGENT_TYPE_KEYS);
    let skills = fields.list(&["skills"]);
    let shadow_role = fields.scalar(SHADOW_ROLE_KEYS);
    let shadow_triggers = fields.list(SHADOW_TRIGGERS_KEYS);
    let extra = fields
        .entries
        .into_iter()
        .map(|(key, value)| (key, yaml_to_json(value)))
        .collect::<BTreeMap<_, _>>();
    // Field warnings in the order their keys appear in the file.
    let position = |w: &ProfileWarning| {
        let keys = match &w.kind {
            WarningKind::FieldType { key } => std::slice::from_ref(key),
            WarningKind::ConflictingKeys { keys } => keys.as_slice(),
            _ => &[],
        };
        keys.iter()
            .filter_map(|key| key_order.iter().position(|k| k == key))
            .min()
            .unwrap_or(usize::MAX)
    };
    warnings[already_warned..].sort_by_key(position);

    let profile = AgentProfile {
        name,
        file_stem,
        path: path.to_path_buf(),
        source,
        description,
        tools,
        model,
        role,
        agent_type,
        skills,
        shadow_role,
        shadow_triggers,
        prompt: body.trim().to_string(),
        extra,
    };
    Ok((profile, warnings))
}

/// The file name without `.md` (or without its last extension).
fn file_stem(path: &Path) -> String {
    match path.file_name().map(|n| n.to_string_lossy()) {
        Some(name) => match name.strip_suffix(".md") {
            Some(stem) => stem.to_string(),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        None => String::new(),
    }
}

enum Split<'a> {
    /// The file does not start with a `---` line.
    None,
    /// It does, but no closing line follows.
    Unclosed,
    /// `yaml` runs from the opening `---` line (included, so that YAML
    /// positions are file positions) up to the closing line (excluded).
    Found { yaml: &'a str, body: &'a str },
}

fn is_delimiter(line: &str, allowed: &[&str]) -> bool {
    let line = line.trim_end_matches([' ', '\t']);
    allowed.contains(&line)
}

/// Splits LF-normalised text. The closing delimiter is the first line that
/// is exactly `---` or `...` (trailing blanks allowed), never a `---`
/// inside a line.
fn split_front_matter(text: &str) -> Split<'_> {
    let first_end = text.find('\n');
    let first_line = &text[..first_end.unwrap_or(text.len())];
    if !is_delimiter(first_line, &["---"]) {
        return Split::None;
    }
    let Some(first_end) = first_end else {
        return Split::Unclosed;
    };
    let mut pos = first_end + 1;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        if is_delimiter(&text[pos..end], &["---", "..."]) {
            let body_start = (end + 1).min(text.len());
            return Split::Found {
                yaml: &text[..pos],
                body: &text[body_start..],
            };
        }
        pos = end + 1;
    }
    Split::Unclosed
}

fn first_non_blank_line_is_delimiter(text: &str) -> bool {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| is_delimiter(line, &["---"]))
}

fn parse_yaml(path: &Path, yaml: &str) -> Result<Mapping, ProfileError> {
    let invalid = |err: serde_yaml_ng::Error| {
        let location = err.location();
        let mut message = err.to_string();
        // The library appends its own "at line L column C"; the position is
        // reported separately.
        if location.is_some() {
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
        }
        let line = location.as_ref().map(|l| l.line());
        let indented_with_tab = line
            .and_then(|n| yaml.lines().nth(n.saturating_sub(1)))
            .is_some_and(|text| text.trim_start_matches(' ').starts_with('\t'));
        if indented_with_tab {
            message.push_str(" (the line is indented with a tab: YAML only allows spaces)");
        }
        ProfileError::InvalidYaml {
            path: path.to_path_buf(),
            line,
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    };
    let mut value: Value = serde_yaml_ng::from_str(yaml).map_err(invalid)?;
    value.apply_merge().map_err(invalid)?;
    match untag(value) {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(mapping) => Ok(mapping),
        other => Err(ProfileError::FrontMatterNotMapping {
            path: path.to_path_buf(),
            found: describe(&other).to_string(),
        }),
    }
}

fn untag(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => untag(tagged.value),
        other => other,
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(tagged) => describe(&tagged.value),
    }
}

/// Scalars as text: strings as they are, numbers and booleans printed.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(tagged) => scalar_text(&tagged.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// The top-level entries with their keys as strings, in file order. Number
/// and boolean keys are printed; null and complex keys are dropped with a
/// warning.
fn string_keys(
    path: &Path,
    mapping: Mapping,
    warnings: &mut Vec<ProfileWarning>,
) -> Vec<(String, Value)> {
    let mut entries = Vec::with_capacity(mapping.len());
    for (key, value) in mapping {
        match scalar_text(&key) {
            Some(key) => entries.push((key, value)),
            None => warnings.push(ProfileWarning::new(
                path.to_path_buf(),
                WarningKind::FieldType {
                    key: yaml_to_json(key.clone()).to_string(),
                },
                format!(
                    "a front-matter key is {}, so its field was ignored; use plain text keys \
                     such as `name:`",
                    describe(&key)
                ),
            )),
        }
    }
    entries
}

struct Fields<'a> {
    path: &'a Path,
    entries: Vec<(String, Value)>,
    warnings: &'a mut Vec<ProfileWarning>,
}

impl Fields<'_> {
    /// Removes the entries for `keys`, in the order of `keys`.
    fn take(&mut self, keys: &[&str]) -> Vec<(String, Value)> {
        let mut taken = Vec::new();
        for key in keys {
            if let Some(i) = self.entries.iter().position(|(k, _)| k == key) {
                taken.push(self.entries.remove(i));
            }
        }
        taken
    }

    fn warn_type(&mut self, key: &str, message: String) {
        self.warnings.push(ProfileWarning::new(
            self.path.to_path_buf(),
            WarningKind::FieldType {
                key: key.to_string(),
            },
            message,
        ));
    }

    /// One string field under any of `keys`; the first key with a usable
    /// value wins, and other keys with another value are reported.
    fn scalar(&mut self, keys: &[&str]) -> Option<String> {
        let mut found: Vec<(String, String)> = Vec::new();
        for (key, value) in self.take(keys) {
            if let Some(text) = self.scalar_value(&key, value) {
                found.push((key, text));
            }
        }
        let mut found = found.into_iter();
        let (winner_key, winner) = found.next()?;
        let losers: Vec<(String, String)> = found.filter(|(_, v)| *v != winner).collect();
        if !losers.is_empty() {
            let mut keys = vec![winner_key.clone()];
            keys.extend(losers.iter().map(|(k, _)| k.clone()));
            let others = losers
                .iter()
                .map(|(k, v)| format!("`{k}: {v}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.warnings.push(ProfileWarning::new(
                self.path.to_path_buf(),
                WarningKind::ConflictingKeys { keys },
                format!(
                    "`{winner_key}: {winner}` was used and {others} ignored, because they set \
                     the same field; keep only one of these keys"
                ),
            ));
        }
        Some(winner)
    }

    fn scalar_value(&mut self, key: &str, value: Value) -> Option<String> {
        match untag(value) {
            Value::Null => None,
            Value::String(s) => non_empty(s.trim()),
            value @ (Value::Number(_) | Value::Bool(_)) => {
                let text = scalar_text(&value).unwrap_or_default();
                self.warn_type(
                    key,
                    format!(
                        "`{key}` is {} ({text}) where a string is expected; it was read as \
                         \"{text}\", quote it (`{key}: \"{text}\"`) to say so explicitly",
                        describe(&value)
                    ),
                );
                non_empty(&text)
            }
            value => {
                self.warn_type(
                    key,
                    format!(
                        "`{key}` is {} where a string is expected, so it was ignored; give it \
                         a single value, for example `{key}: some text`",
                        describe(&value)
                    ),
                );
                None
            }
        }
    }

    /// A list field under any of `keys`, merged in key order, duplicates
    /// dropped. Each value is a comma-separated string or a YAML list.
    fn list(&mut self, keys: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let push = push_unique;
        for (key, value) in self.take(keys) {
            match untag(value) {
                Value::Null => {}
                Value::String(s) => {
                    for item in split_commas(&s) {
                        push(item, &mut out);
                    }
                }
                value @ (Value::Number(_) | Value::Bool(_)) => {
                    let text = scalar_text(&value).unwrap_or_default();
                    self.warn_type(
                        &key,
                        format!(
                            "`{key}` is {} ({text}) where a comma-separated string or a list \
                             is expected; it was read as \"{text}\", quote it to say so \
                             explicitly",
                            describe(&value)
                        ),
                    );
                    push(&text, &mut out);
                }
                Value::Sequence(items) => {
                    for item in items {
                        match untag(item) {
                            Value::Null => {}
                            Value::String(s) => push(&s, &mut out),
                            item @ (Value::Number(_) | Value::Bool(_)) => {
                                let text = scalar_text(&item).unwrap_or_default();
                                self.warn_type(
                                    &key,
                                    format!(
                                        "an item of `{key}` is {} ({text}); it was read as \
                                         \"{text}\", quote it to say so explicitly",
                                        describe(&item)
                                    ),
                                );
                                push(&text, &mut out);
                            }
                            item => self.warn_type(
                                &key,
                                format!(
                                    "an item of `{key}` is {}, so it was ignored; list plain \
                                     strings, one `- item` per line",
                                    describe(&item)
                                ),
                            ),
                        }
                    }
                }
                value => self.warn_type(
                    &key,
                    format!(
                        "`{key}` is {} where a comma-separated string or a list is expected, \
                         so it was ignored; write `{key}: a, b` or one `- item` per line",
                        describe(&value)
                    ),
                ),
            }
        }
        out
    }
}

/// Appends the trimmed item unless it is blank or already present.
fn push_unique(item: &str, out: &mut Vec<String>) {
    let item = item.trim();
    if !item.is_empty() && !out.iter().any(|x| x == item) {
        out.push(item.to_string());
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Splits on commas that are not inside brackets, so that
/// `Bash(git add:*, git commit:*), Read` is two items.
fn split_commas(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// YAML to JSON: tags are dropped (the tagged value is kept), non-string
/// keys are printed, and numbers JSON cannot hold (NaN, infinities) become
/// their YAML spelling as a string.
fn yaml_to_json(value: Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Json::String(n.to_string()), Json::Number)
            }
        }
        Value::String(s) => Json::String(s),
        Value::Sequence(items) => Json::Array(items.into_iter().map(yaml_to_json).collect()),
        Value::Mapping(mapping) => Json::Object(
            mapping
                .into_iter()
                .map(|(k, v)| {
                    let key = match scalar_text(&k) {
                        Some(key) => key,
                        None => match yaml_to_json(k) {
                            Json::Null => "null".to_string(),
                            other => other.to_string(),
                        },
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Value::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_commas_respects_brackets() {
        assert_eq!(
            split_commas("Bash(git add:*, git commit:*), Read ,Grep"),
            vec!["Bash(git add:*, git commit:*)", " Read ", "Grep"]
        );
        assert_eq!(split_commas(""), vec![""]);
        assert_eq!(split_commas("a)),b"), vec!["a))", "b"]);
    }

    #[test]
    fn split_finds_only_whole_delimiter_lines() {
        let text = "---\na: x---y\nb: ---\n--- \nbody";
        match split_front_matter(text) {
            Split::Found { yaml, body } => {
                assert_eq!(yaml, "---\na: x---y\nb: ---\n");
                assert_eq!(body, "body");
            }
            _ => panic!("front matter not found"),
        }
        assert!(matches!(split_front_matter("---"), Split::Unclosed));
        assert!(matches!(split_front_matter("---\na: 1"), Split::Unclosed));
        assert!(matches!(split_front_matter("----\na"), Split::None));
        assert!(matches!(split_front_matter(""), Split::None));
        assert!(matches!(
            split_front_matter("---\na: 1\n..."),
            Split::Found { body: "", .. }
        ));
    }

    #[test]
    fn stems() {
        assert_eq!(file_stem(Path::new("/x/a.b.md")), "a.b");
        assert_eq!(file_stem(Path::new("agent.txt")), "agent");
        assert_eq!(file_stem(Path::new("/")), "");
    }

    #[test]
    fn json_conversion_of_special_values() {
        let value: Value =
            serde_yaml_ng::from_str("{a: .nan, 1: !t x, ? [k] : v, ~: n}").unwrap_or(Value::Null);
        let json = yaml_to_json(value);
        assert_eq!(json["a"], serde_json::json!(".nan"));
        assert_eq!(json["1"], serde_json::json!("x"));
        assert_eq!(json["[\"k\"]"], serde_json::json!("v"));
        assert_eq!(json["null"], serde_json::json!("n"));
    }
}
