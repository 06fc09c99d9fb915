//! Outbox files: header format, JSON format, shell damage, errors.

use relay_grammar::{
    parse_outbox_file, Command, MessageKind, OutboxError, OutgoingMessage, ReleaseCommand,
    SpawnCommand, SyncSpec,
};
use serde_json::json;

fn message(name: &str, contents: &str) -> OutgoingMessage {
    match parse_outbox_file(name, contents.as_bytes()) {
        Ok(Command::Message(m)) => m,
        other => panic!("expected a message from {contents:?}, got {other:?}"),
    }
}

fn error(name: &str, contents: &str) -> OutboxError {
    match parse_outbox_file(name, contents.as_bytes()) {
        Err(e) => e,
        Ok(c) => panic!("expected an error from {contents:?}, got {c:?}"),
    }
}

#[test]
fn header_message() {
    let m = message("msg", "TO: Bob\n\nHello Bob,\nsecond line.\n");
    assert_eq!(
        (m.to.as_str(), m.body.as_str()),
        ("Bob", "Hello Bob,\nsecond line.")
    );
    assert_eq!(m.kind, MessageKind::Message);
}

#[test]
fn header_message_with_every_header() {
    let text = "TO: proj:Bob\nTHREAD: task-123\nAWAIT: 30s\nIMPORTANCE: high\nSUBJECT: Build status\nREPLY-TO: m-7\nX-Custom: ignored\n\n  body text  \n";
    let m = message("msg", text);
    assert_eq!((m.to.as_str(), m.project.as_deref()), ("Bob", Some("proj")));
    assert_eq!(m.thread.as_deref(), Some("task-123"));
    assert_eq!(
        m.sync,
        Some(SyncSpec {
            timeout_ms: Some(30_000)
        })
    );
    assert_eq!(m.importance, Some(75));
    assert_eq!(m.subject.as_deref(), Some("Build status"));
    assert_eq!(m.reply_to.as_deref(), Some("m-7"));
    assert_eq!(m.body, "body text");
}

#[test]
fn keys_are_case_insensitive_and_split_at_first_colon() {
    let m = message("msg", "to: Bob\nSubject: re: the plan\n\nx");
    assert_eq!(m.subject.as_deref(), Some("re: the plan"));
    assert_eq!(m.to, "Bob");
}

#[test]
fn await_values() {
    for (value, expected) in [
        ("true", Some(SyncSpec { timeout_ms: None })),
        ("yes", Some(SyncSpec { timeout_ms: None })),
        ("1", Some(SyncSpec { timeout_ms: None })),
        ("false", None),
        (
            "2m",
            Some(SyncSpec {
                timeout_ms: Some(120_000),
            }),
        ),
        (
            "45",
            Some(SyncSpec {
                timeout_ms: Some(45_000),
            }),
        ),
    ] {
        let m = message("msg", &format!("TO: Bob\nAWAIT: {value}\n\nx"));
        assert_eq!(m.sync, expected, "{value}");
    }
}

#[test]
fn importance_values() {
    for (value, expected) in [
        ("0", 0),
        ("100", 100),
        ("low", 25),
        ("Normal", 50),
        ("URGENT", 100),
    ] {
        assert_eq!(
            message("msg", &format!("TO: Bob\nIMPORTANCE: {value}\n\nx")).importance,
            Some(expected)
        );
    }
}

#[test]
fn crlf_and_bom_are_tolerated() {
    let m = message(
        "msg",
        "TO: Bob\r\nTHREAD: t1\r\n\r\nline one\r\nline two\r\n",
    );
    assert_eq!(
        (m.thread.as_deref(), m.body.as_str()),
        (Some("t1"), "line one\nline two")
    );
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(b"TO: Bob\n\nhi");
    assert!(matches!(parse_outbox_file("msg", &bytes), Ok(Command::Message(m)) if m.to == "Bob"));
}

#[test]
fn leading_blank_lines_are_skipped() {
    assert_eq!(message("msg", "\n\nTO: Bob\n\nhi").body, "hi");
}

#[test]
fn header_spawn_and_release() {
    assert_eq!(
        parse_outbox_file(
            "spawn",
            b"KIND: spawn\nNAME: Worker1\nCLI: claude\n\nImplement the API.\nThen test it."
        ),
        Ok(Command::Spawn(SpawnCommand {
            name: "Worker1".into(),
            cli: "claude".into(),
            task: Some("Implement the API.\nThen test it.".into())
        }))
    );
    assert_eq!(
        parse_outbox_file("spawn", b"KIND: Spawn\nNAME: W2\nCLI: codex\n"),
        Ok(Command::Spawn(SpawnCommand {
            name: "W2".into(),
            cli: "codex".into(),
            task: None
        }))
    );
    assert_eq!(
        parse_outbox_file("release", b"KIND: release\nNAME: Worker1\n"),
        Ok(Command::Release(ReleaseCommand {
            name: "Worker1".into()
        }))
    );
}

#[test]
fn thinking_kind() {
    assert_eq!(
        message("msg", "KIND: thinking\nTO: Bob\n\nhmm").kind,
        MessageKind::Thinking
    );
}

#[test]
fn missing_required_headers() {
    let e = error("msg", "THREAD: t\n\nbody");
    assert!(matches!(&e, OutboxError::Missing { field, .. } if field == "TO"));
    assert!(e.to_string().contains("TO: Bob"), "{e}");
    let e = error("spawn", "KIND: spawn\nCLI: claude\n\ntask");
    assert!(
        matches!(&e, OutboxError::Missing { field, .. } if field == "NAME"),
        "{e}"
    );
    let e = error("spawn", "KIND: spawn\nNAME: W1\n\ntask");
    assert!(
        matches!(&e, OutboxError::Missing { field, .. } if field == "CLI"),
        "{e}"
    );
    let e = error("release", "KIND: release\n");
    assert!(
        matches!(&e, OutboxError::Missing { field, .. } if field == "NAME"),
        "{e}"
    );
}

#[test]
fn empty_files() {
    assert!(matches!(error("msg", ""), OutboxError::Empty { .. }));
    assert!(matches!(
        error("msg", " \n\r\n "),
        OutboxError::Empty { .. }
    ));
    assert!(matches!(
        error("msg", "TO: Bob\n\n   "),
        OutboxError::EmptyBody { .. }
    ));
}

#[test]
fn bad_values() {
    let e = error("msg", "TO: Bob\nAWAIT: later\n\nx");
    assert!(matches!(&e, OutboxError::InvalidValue { field, .. } if field == "AWAIT"));
    assert!(e.to_string().contains("30s"), "{e}");
    let e = error("msg", "TO: Bob\nIMPORTANCE: 150\n\nx");
    assert!(matches!(&e, OutboxError::InvalidValue { field, .. } if field == "IMPORTANCE"));
    let e = error("msg", "TO: Bob\nTHREAD: has space\n\nx");
    assert!(matches!(&e, OutboxError::InvalidValue { field, .. } if field == "THREAD"));
    let e = error("spawn", "KIND: spawn\nNAME: _x\nCLI: claude\n");
    assert!(matches!(&e, OutboxError::InvalidValue { field, .. } if field == "NAME"));
    let e = error("msg", "TO: Bob Smith\n\nx");
    assert!(matches!(&e, OutboxError::InvalidValue { field, .. } if field == "TO"));
}

#[test]
fn placeholder_recipient() {
    let e = error("msg", "TO: AgentName\n\nx");
    assert!(matches!(e, OutboxError::PlaceholderTarget { .. }), "{e}");
}

#[test]
fn body_without_blank_line_is_explained() {
    let e = error("msg", "TO: Bob\nHello there");
    assert!(matches!(&e, OutboxError::NotAHeader { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("blank line"), "{e}");
}

#[test]
fn duplicate_header() {
    let e = error("msg", "TO: Bob\nto: Carol\n\nx");
    assert!(
        matches!(&e, OutboxError::DuplicateHeader { key, .. } if key == "TO"),
        "{e}"
    );
}

#[test]
fn unknown_kind() {
    let e = error("continuity", "KIND: continuity\nACTION: save\n\nstate");
    assert!(
        matches!(&e, OutboxError::UnknownKind { kind, .. } if kind == "continuity"),
        "{e}"
    );
}

#[test]
fn json_message_spawn_release() {
    let m = message(
        "msg.json",
        r#"{"to":"Bob","body":"hi","thread":"t1","await":true,"importance":"urgent","data":{"a":1}}"#,
    );
    assert_eq!(
        (m.to.as_str(), m.body.as_str(), m.thread.as_deref()),
        ("Bob", "hi", Some("t1"))
    );
    assert_eq!(m.sync, Some(SyncSpec { timeout_ms: None }));
    assert_eq!((m.importance, m.data), (Some(100), Some(json!({"a": 1}))));
    assert_eq!(
        parse_outbox_file(
            "spawn",
            br#"{"kind":"spawn","name":"W1","cli":"claude","task":"do it"}"#
        ),
        Ok(Command::Spawn(SpawnCommand {
            name: "W1".into(),
            cli: "claude".into(),
            task: Some("do it".into())
        }))
    );
    assert_eq!(
        parse_outbox_file("x.JSON", br#"{"kind":"release","name":"W1"}"#),
        Ok(Command::Release(ReleaseCommand { name: "W1".into() }))
    );
}

#[test]
fn json_body_falls_back_to_task_and_numbers_are_accepted() {
    let m = message(
        "msg",
        r#"{"to":"Bob","task":"from task","importance":60,"await":30}"#,
    );
    assert_eq!(m.body, "from task");
    assert_eq!(m.importance, Some(60));
    assert_eq!(
        m.sync,
        Some(SyncSpec {
            timeout_ms: Some(30_000)
        })
    );
}

#[test]
fn json_shell_damage_is_repaired() {
    let m = message(
        "msg",
        "{\"to\":\"Bob\",\"body\":\"line one\nline two\\! \\$HOME\ttab\"}",
    );
    assert_eq!(m.body, "line one\nline two! $HOME\ttab");
    let m = message(
        "msg",
        r#"{"to":"Bob","body":"box ┌─┐ \"quoted\" \\ back \u00e9"}"#,
    );
    assert_eq!(m.body, "box ┌─┐ \"quoted\" \\ back é");
}

#[test]
fn json_errors() {
    let e = error("msg.json", "{\"to\": \"Bob\", ");
    assert!(matches!(e, OutboxError::InvalidJson { .. }), "{e}");
    assert!(e.to_string().contains("msg.json"), "{e}");
    assert!(matches!(
        error("msg.json", "[1,2]"),
        OutboxError::NotAnObject { .. }
    ));
    let e = error("msg.json", r#"{"to":["Bob"],"body":"x"}"#);
    assert!(
        matches!(&e, OutboxError::InvalidValue { field, .. } if field == "\"to\""),
        "{e}"
    );
    let e = error("msg.json", r#"{"body":"x"}"#);
    assert!(
        matches!(&e, OutboxError::Missing { field, .. } if field == "\"to\""),
        "{e}"
    );
    let e = error("msg.json", r#"{"to":"Bob","body":"x","await":-3}"#);
    assert!(
        matches!(&e, OutboxError::InvalidValue { field, .. } if field == "\"await\""),
        "{e}"
    );
}

#[test]
fn invalid_utf8() {
    let e = parse_outbox_file("msg", b"TO: Bob\n\n\xff\xfe");
    assert!(
        matches!(e, Err(OutboxError::InvalidUtf8 { offset: 9, .. })),
        "{e:?}"
    );
}

#[test]
fn error_messages_name_the_file() {
    for e in [
        error("note", ""),
        error("note", "THREAD: t\n\nx"),
        error("note", "TO: Bob\nAWAIT: x\n\nx"),
    ] {
        assert!(e.to_string().contains("`note`"), "{e}");
    }
}
