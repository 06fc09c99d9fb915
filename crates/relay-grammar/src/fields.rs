//! Building commands from named fields. Outbox files (headers or JSON), `->relay.json:`
//! lines and `[[RELAY]]` blocks all go through [`assemble`], so one set of rules decides what
//! a valid message, spawn or release is, whatever form it was written in.

use serde_json::{Map, Value};

use crate::values::{
    check_agent_name, parse_await_value, parse_importance, parse_target, parse_thread_ref,
    TargetError,
};
use crate::{Command, MessageKind, OutgoingMessage, ReleaseCommand, SpawnCommand};

/// Where the fields came from; decides field labels, allowed kinds and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `KEY: value` headers of an outbox file.
    OutboxHeaders,
    /// A JSON outbox file.
    OutboxJson,
    /// A `->relay.json:{…}` line.
    InlineJson,
    /// A `[[RELAY]]{…}[[/RELAY]]` block.
    Block,
}

/// A field, named the way its source spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Kind,
    To,
    Project,
    Name,
    Cli,
    Thread,
    Await,
    Importance,
    Subject,
    ReplyTo,
}

impl Field {
    pub(crate) fn label(self, source: Source) -> &'static str {
        let headers = source == Source::OutboxHeaders;
        match (self, headers) {
            (Field::Kind, true) => "KIND",
            (Field::Kind, false) if source == Source::Block => "\"type\"",
            (Field::Kind, false) => "\"kind\"",
            (Field::To, true) => "TO",
            (Field::To, false) => "\"to\"",
            (Field::Project, true) => "PROJECT",
            (Field::Project, false) => "\"project\"",
            (Field::Name, true) => "NAME",
            (Field::Name, false) => "\"name\"",
            (Field::Cli, true) => "CLI",
            (Field::Cli, false) => "\"cli\"",
            (Field::Thread, true) => "THREAD",
            (Field::Thread, false) => "\"thread\"",
            (Field::Await, true) => "AWAIT",
            (Field::Await, false) => "\"await\"",
            (Field::Importance, true) => "IMPORTANCE",
            (Field::Importance, false) => "\"importance\"",
            (Field::Subject, true) => "SUBJECT",
            (Field::Subject, false) => "\"subject\"",
            (Field::ReplyTo, true) => "REPLY-TO",
            (Field::ReplyTo, false) => "\"replyTo\"",
        }
    }
}

/// What is wrong with a set of fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldError {
    /// The JSON is not an object.
    NotObject,
    /// A required field is absent or empty.
    Missing { field: &'static str, hint: String },
    /// A field has an unusable value.
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// The target is a documentation placeholder.
    Placeholder { field: &'static str, value: String },
    /// The kind is not one of the allowed ones.
    UnknownKind { kind: String, allowed: &'static str },
    /// A message without text.
    EmptyBody,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldError::NotObject => write!(f, "the JSON must be an object: {{\"to\": …}}"),
            FieldError::Missing { field, hint } => write!(f, "{field} is missing; {hint}"),
            FieldError::Invalid {
                field,
                value,
                reason,
            } => write!(f, "{field} value {value:?} is invalid: {reason}"),
            FieldError::Placeholder { field, value } => write!(
                f,
                "{field} `{value}` is a documentation placeholder; name a real agent"
            ),
            FieldError::UnknownKind { kind, allowed } => {
                write!(f, "unknown kind {kind:?}; use one of {allowed}")
            }
            FieldError::EmptyBody => write!(f, "the message body is empty"),
        }
    }
}

/// Named values before validation. Strings are taken as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Fields {
    pub kind: Option<String>,
    pub to: Option<String>,
    pub project: Option<String>,
    pub body: Option<String>,
    pub task: Option<String>,
    pub name: Option<String>,
    pub cli: Option<String>,
    pub thread: Option<String>,
    pub await_value: Option<String>,
    pub importance: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Option<String>,
    pub data: Option<Value>,
}

/// A non-empty trimmed copy.
fn present(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Validates the fields and builds the command they describe.
pub(crate) fn assemble(fields: Fields, source: Source) -> Result<Command, FieldError> {
    let kind = present(&fields.kind).map(|k| k.to_lowercase());
    if source == Source::Block {
        let kind = kind.ok_or(FieldError::Missing {
            field: "\"type\"",
            hint: "add \"type\": \"message\" (or \"kind\")".to_owned(),
        })?;
        if kind == "spawn" || kind == "release" {
            return Err(FieldError::Invalid {
                field: Field::Kind.label(source),
                value: kind,
                reason: "a [[RELAY]] block only carries messages; print ->relay:spawn or \
                         ->relay:release instead"
                    .to_owned(),
            });
        }
        return message(&fields, MessageKind::from_name(&kind), source).map(Command::Message);
    }
    match kind.as_deref().unwrap_or("message") {
        "message" => message(&fields, MessageKind::Message, source).map(Command::Message),
        "thinking" => message(&fields, MessageKind::Thinking, source).map(Command::Message),
        "spawn" => spawn(&fields, source).map(Command::Spawn),
        "release" => release(&fields, source).map(Command::Release),
        other => Err(FieldError::UnknownKind {
            kind: other.to_owned(),
            allowed: "message, thinking, spawn, release",
        }),
    }
}

fn message(
    fields: &Fields,
    kind: MessageKind,
    source: Source,
) -> Result<OutgoingMessage, FieldError> {
    let to_label = Field::To.label(source);
    let to = present(&fields.to).ok_or_else(|| FieldError::Missing {
        field: to_label,
        hint: match source {
            Source::OutboxHeaders => "start the file with a line such as `TO: Bob`".to_owned(),
            _ => "add \"to\": \"Bob\"".to_owned(),
        },
    })?;
    let target = parse_target(&to).map_err(|e| match e {
        TargetError::Placeholder(value) => FieldError::Placeholder {
            field: to_label,
            value,
        },
        TargetError::Invalid(reason) => FieldError::Invalid {
            field: to_label,
            value: to.clone(),
            reason,
        },
    })?;
    let project = match present(&fields.project) {
        Some(p) if p.chars().any(char::is_whitespace) => {
            return Err(FieldError::Invalid {
                field: Field::Project.label(source),
                value: p,
                reason: "a project name has no spaces".to_owned(),
            })
        }
        Some(p) => Some(p),
        None => target.project,
    };
    let body = present(&fields.body)
        .or_else(|| present(&fields.task))
        .unwrap_or_default();
    if body.is_empty() && source != Source::Block {
        return Err(FieldError::EmptyBody);
    }
    let mut msg = OutgoingMessage::new(target.to, body, kind);
    msg.project = project;
    if let Some(thread) = present(&fields.thread) {
        let (thread_project, id) =
            parse_thread_ref(&thread).ok_or_else(|| FieldError::Invalid {
                field: Field::Thread.label(source),
                value: thread.clone(),
                reason: "use letters, digits, `_`, `.` and `-`, optionally `project:id`".to_owned(),
            })?;
        msg.thread = Some(id);
        msg.thread_project = thread_project;
    }
    if let Some(value) = present(&fields.await_value) {
        msg.sync = parse_await_value(&value).ok_or_else(|| FieldError::Invalid {
            field: Field::Await.label(source),
            value: value.clone(),
            reason: "use true, false or a timeout such as 30s, 500ms, 2m, 1h".to_owned(),
        })?;
    }
    if let Some(value) = present(&fields.importance) {
        msg.importance = Some(check_importance(&value, Field::Importance.label(source))?);
    }
    msg.subject = present(&fields.subject);
    msg.reply_to = present(&fields.reply_to);
    msg.data = fields.data.clone().filter(|d| !d.is_null());
    Ok(msg)
}

pub(crate) fn check_importance(value: &str, field: &'static str) -> Result<u8, FieldError> {
    parse_importance(value).ok_or_else(|| FieldError::Invalid {
        field,
        value: value.to_owned(),
        reason: "use a whole number 0-100 or low, normal, high, urgent".to_owned(),
    })
}

fn agent_name(fields: &Fields, source: Source, kind: &str) -> Result<String, FieldError> {
    let field = Field::Name.label(source);
    let name = present(&fields.name).ok_or_else(|| FieldError::Missing {
        field,
        hint: match source {
            Source::OutboxHeaders => format!("a {kind} file needs a line such as `NAME: Worker1`"),
            _ => format!("a {kind} needs \"name\": \"Worker1\""),
        },
    })?;
    check_agent_name(&name).map_err(|reason| FieldError::Invalid {
        field,
        value: name.clone(),
        reason,
    })?;
    Ok(name)
}

fn spawn(fields: &Fields, source: Source) -> Result<SpawnCommand, FieldError> {
    let name = agent_name(fields, source, "spawn")?;
    let field = Field::Cli.label(source);
    let cli = present(&fields.cli).ok_or_else(|| FieldError::Missing {
        field,
        hint: match source {
            Source::OutboxHeaders => "a spawn file needs a line such as `CLI: claude`".to_owned(),
            _ => "a spawn needs \"cli\": \"claude\"".to_owned(),
        },
    })?;
    if cli.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::Invalid {
            field,
            value: cli,
            reason: "the CLI is one command name or path, without spaces".to_owned(),
        });
    }
    let task = present(&fields.task).or_else(|| present(&fields.body));
    Ok(SpawnCommand { name, cli, task })
}

fn release(fields: &Fields, source: Source) -> Result<ReleaseCommand, FieldError> {
    Ok(ReleaseCommand {
        name: agent_name(fields, source, "release")?,
    })
}

/// A short rendering of a JSON value for error messages.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let mut short: String = text.chars().take(60).collect();
        short.push('…');
        short
    } else {
        text
    }
}

fn string_field(
    obj: &Map<String, Value>,
    keys: &[&str],
    field: &'static str,
) -> Result<Option<String>, FieldError> {
    for key in keys {
        match obj.get(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(other) => {
                return Err(FieldError::Invalid {
                    field,
                    value: shown(other),
                    reason: "must be a string".to_owned(),
                })
            }
        }
    }
    Ok(None)
}

/// Reads the known fields of a JSON object (`kind`/`type`, `to`, `project`, `body`/`text`,
/// `task`, `name`, `cli`, `thread`, `await`, `importance`, `subject`, `replyTo`, `data`).
pub(crate) fn fields_from_json(value: &Value, source: Source) -> Result<Fields, FieldError> {
    let obj = value.as_object().ok_or(FieldError::NotObject)?;
    let label = |f: Field| f.label(source);
    let kind_keys: &[&str] = if source == Source::Block {
        &["type", "kind"]
    } else {
        &["kind", "type"]
    };
    let await_value = match obj.get("await") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) if n.as_u64().is_some() => Some(n.to_string()),
        Some(other) => {
            return Err(FieldError::Invalid {
                field: label(Field::Await),
                value: shown(other),
                reason: "use true, false, a number of seconds or a timeout such as \"30s\""
                    .to_owned(),
            })
        }
    };
    let importance = match obj.get("importance") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => Some(u.to_string()),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && (0.0..=100.0).contains(&f) => {
                    Some(format!("{f:.0}"))
                }
                _ => Some(n.to_string()),
            },
        },
        Some(other) => Some(shown(other)),
    };
    Ok(Fields {
        kind: string_field(obj, kind_keys, label(Field::Kind))?,
        to: string_field(obj, &["to"], label(Field::To))?,
        project: string_field(obj, &["project"], label(Field::Project))?,
        body: string_field(obj, &["body", "text"], "\"body\"")?,
        task: string_field(obj, &["task"], "\"task\"")?,
        name: string_field(obj, &["name"], label(Field::Name))?,
        cli: string_field(obj, &["cli"], label(Field::Cli))?,
        thread: string_field(obj, &["thread"], label(Field::Thread))?,
        await_value,
        importance,
        subject: string_field(obj, &["subject"], label(Field::Subject))?,
        reply_to: string_field(obj, &["replyTo", "reply_to"], label(Field::ReplyTo))?,
        data: obj.get("data").cloned(),
    })
}
