//! `[[RELAY]]` blocks, `[[RELAY_METADATA]]`, and `->relay.json:` lines.

mod common;

use common::{fin, fin_with, messages, msg, open, rejected, sent, spans};
use relay_grammar::{
    Command, GrammarOptions, MessageKind, RejectionKind, ReleaseCommand, SpawnCommand, SyncSpec,
};
use serde_json::json;

#[test]
fn single_line_block() {
    let m = msg(r#"[[RELAY]]{"to":"Bob","type":"message","body":"hi"}[[/RELAY]]"#);
    assert_eq!(
        (m.to.as_str(), m.body.as_str(), m.kind),
        ("Bob", "hi", MessageKind::Message)
    );
}

#[test]
fn multi_line_block() {
    let text = "[[RELAY]]\n{\n  \"to\": \"Bob\",\n  \"type\": \"message\",\n  \"body\": \"hi\"\n}\n[[/RELAY]]\nafter";
    let parsed = fin(text);
    assert_eq!(spans(&parsed), vec![(0, 6)]);
    assert_eq!(msg(text).body, "hi");
}

#[test]
fn block_fields() {
    let m = msg(
        r#"[[RELAY]]{"to":"Bob","kind":"message","body":"b","thread":"t-1","data":{"k":[1,2]},"await":"30s","subject":"S","importance":80,"replyTo":"m-9"}[[/RELAY]]"#,
    );
    assert_eq!(m.thread.as_deref(), Some("t-1"));
    assert_eq!(m.data, Some(json!({"k": [1, 2]})));
    assert_eq!(
        m.sync,
        Some(SyncSpec {
            timeout_ms: Some(30_000)
        })
    );
    assert_eq!(m.subject.as_deref(), Some("S"));
    assert_eq!(m.importance, Some(80));
    assert_eq!(m.reply_to.as_deref(), Some("m-9"));
    let m = msg(r#"[[RELAY]]{"to":"Bob","type":"message","body":"b","await":true}[[/RELAY]]"#);
    assert_eq!(m.sync, Some(SyncSpec { timeout_ms: None }));
}

#[test]
fn explicit_project_wins_over_target_prefix() {
    let m = msg(r#"[[RELAY]]{"to":"p:Bob","type":"message","body":"b","project":"q"}[[/RELAY]]"#);
    assert_eq!((m.to.as_str(), m.project.as_deref()), ("Bob", Some("q")));
    let m = msg(r#"[[RELAY]]{"to":"p:Bob","type":"message","body":"b"}[[/RELAY]]"#);
    assert_eq!((m.to.as_str(), m.project.as_deref()), ("Bob", Some("p")));
}

#[test]
fn invalid_json_is_rejected_with_reason() {
    let r = rejected("[[RELAY]]{not json}[[/RELAY]]");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].kind, RejectionKind::InvalidBlock);
    assert!(r[0].reason.contains("not valid JSON"), "{}", r[0].reason);
    assert_eq!(
        rejected("[[RELAY]][1,2][[/RELAY]]")[0].kind,
        RejectionKind::InvalidBlock
    );
    assert_eq!(
        rejected("[[RELAY]][[/RELAY]]")[0].kind,
        RejectionKind::InvalidBlock
    );
}

#[test]
fn missing_fields_are_rejected() {
    let r = rejected(r#"[[RELAY]]{"type":"message","body":"x"}[[/RELAY]]"#);
    assert!(r[0].reason.contains("\"to\" is missing"), "{}", r[0].reason);
    let r = rejected(r#"[[RELAY]]{"to":"Bob","body":"x"}[[/RELAY]]"#);
    assert!(
        r[0].reason.contains("\"type\" is missing"),
        "{}",
        r[0].reason
    );
    let r = rejected(r#"[[RELAY]]{"to":5,"type":"message"}[[/RELAY]]"#);
    assert!(r[0].reason.contains("must be a string"), "{}", r[0].reason);
}

#[test]
fn text_fallback_and_empty_body() {
    assert_eq!(
        msg(r#"[[RELAY]]{"to":"Bob","type":"message","text":"via text"}[[/RELAY]]"#).body,
        "via text"
    );
    let m = msg(r#"[[RELAY]]{"to":"Bob","type":"state","data":{"s":1}}[[/RELAY]]"#);
    assert_eq!(
        (m.body.as_str(), m.kind),
        ("", MessageKind::Other("state".into()))
    );
}

#[test]
fn thinking_and_other_types() {
    let m = msg(r#"[[RELAY]]{"to":"Bob","type":"Thinking","body":"hmm"}[[/RELAY]]"#);
    assert_eq!(m.kind, MessageKind::Thinking);
    let r = rejected(r#"[[RELAY]]{"to":"Bob","type":"spawn","body":"x"}[[/RELAY]]"#);
    assert_eq!(r[0].kind, RejectionKind::InvalidBlock);
}

#[test]
fn block_only_at_line_start() {
    assert!(fin(r#"see [[RELAY]]{"to":"Bob","type":"message","body":"x"}[[/RELAY]]"#).is_empty());
    assert_eq!(
        messages(r#"⏺ [[RELAY]]{"to":"Bob","type":"message","body":"x"}[[/RELAY]]"#).len(),
        1
    );
}

#[test]
fn block_inside_code_fence_is_ignored() {
    let text =
        "```json\n[[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"x\"}[[/RELAY]]\n```";
    assert!(fin(text).is_empty());
}

#[test]
fn block_size_limit() {
    let opts = GrammarOptions {
        max_block_bytes: 32,
        ..GrammarOptions::default()
    };
    let text = "[[RELAY]]{\"to\":\"Bob\",\n\"type\":\"message\",\n\"body\":\"a long body that does not fit\"}\n[[/RELAY]]";
    let parsed = fin_with(text, &opts);
    assert!(matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::TooLong));
}

#[test]
fn block_spanning_windows() {
    let mut lines = vec!["[[RELAY]]{\"to\":\"Bob\",", "\"type\":\"message\","];
    let opts = GrammarOptions::default();
    assert!(relay_grammar::parse_window(&lines, &opts).is_empty());
    lines.push("\"body\":\"x\"}[[/RELAY]]");
    let parsed = relay_grammar::parse_window(&lines, &opts);
    assert_eq!(spans(&parsed), vec![(0, 2)]);
}

#[test]
fn unterminated_block_is_abandoned_at_next_command() {
    let parsed = fin("[[RELAY]]{\"to\":\"Bob\",\n->relay:Carol hi");
    assert_eq!(spans(&parsed), vec![(0, 0), (1, 1)]);
    assert!(
        matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::Unterminated)
    );
    assert!(matches!(&parsed[1].command, Command::Message(m) if m.to == "Carol"));
    assert!(open("[[RELAY]]{\"to\":\"Bob\",\n\"x\": 1").is_empty());
}

#[test]
fn placeholder_in_block_is_rejected() {
    let r = rejected(r#"[[RELAY]]{"to":"AgentName","type":"message","body":"x"}[[/RELAY]]"#);
    assert_eq!(r[0].kind, RejectionKind::PlaceholderTarget);
}

#[test]
fn metadata_attaches_to_following_block() {
    let text = "[[RELAY_METADATA]]{\"subject\":\"Build\",\"importance\":\"urgent\",\"replyTo\":\"m-1\",\"ackRequired\":true}[[/RELAY_METADATA]]\n[[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"red\",\"subject\":\"ignored\"}[[/RELAY]]";
    let parsed = fin(text);
    assert_eq!(spans(&parsed), vec![(0, 1)]);
    let m = msg(text);
    assert_eq!(m.subject.as_deref(), Some("Build"));
    assert_eq!(m.importance, Some(100));
    assert_eq!(m.reply_to.as_deref(), Some("m-1"));
}

#[test]
fn metadata_on_same_line_or_after_blank_lines() {
    let same = "[[RELAY_METADATA]]{\"importance\":10}[[/RELAY_METADATA]][[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"x\"}[[/RELAY]]";
    assert_eq!(msg(same).importance, Some(10));
    let spaced = "[[RELAY_METADATA]]\n{\"subject\":\"S\"}\n[[/RELAY_METADATA]]\n\n[[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"x\"}[[/RELAY]]";
    assert_eq!(spans(&fin(spaced)), vec![(0, 4)]);
    assert_eq!(msg(spaced).subject.as_deref(), Some("S"));
}

#[test]
fn metadata_absent_empty_partial() {
    let block = "[[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"x\"}[[/RELAY]]";
    let m = msg(block);
    assert_eq!((m.subject, m.importance, m.reply_to), (None, None, None));
    let m = msg(&format!("[[RELAY_METADATA]][[/RELAY_METADATA]]\n{block}"));
    assert_eq!((m.subject, m.importance), (None, None));
    let m = msg(&format!(
        "[[RELAY_METADATA]]{{\"subject\":\"only\"}}[[/RELAY_METADATA]]\n{block}"
    ));
    assert_eq!((m.subject.as_deref(), m.importance), (Some("only"), None));
}

#[test]
fn malformed_metadata_is_reported_and_block_still_sent() {
    let text = "[[RELAY_METADATA]]{broken[[/RELAY_METADATA]]\n[[RELAY]]{\"to\":\"Bob\",\"type\":\"message\",\"body\":\"x\"}[[/RELAY]]";
    let parsed = fin(text);
    assert_eq!(spans(&parsed), vec![(0, 0), (1, 1)]);
    assert!(
        matches!(&parsed[0].command, Command::Rejected(r) if r.kind == RejectionKind::InvalidMetadata)
    );
    assert!(matches!(&parsed[1].command, Command::Message(m) if m.subject.is_none()));
    let r = rejected("[[RELAY_METADATA]]{\"importance\":\"whenever\"}[[/RELAY_METADATA]]");
    assert_eq!(r[0].kind, RejectionKind::InvalidMetadata);
}

#[test]
fn metadata_without_block_emits_nothing() {
    assert!(
        fin("[[RELAY_METADATA]]{\"subject\":\"S\"}[[/RELAY_METADATA]]\nprose\n->relay:Bob hi")
            .len()
            == 1
    );
    assert!(open("[[RELAY_METADATA]]{\"subject\":\"S\"}[[/RELAY_METADATA]]\n").is_empty());
}

#[test]
fn json_line_message() {
    let m = msg(r#"->relay.json:{"to":"Bob","body":"hi","thread":"t1","await":"10s"}"#);
    assert_eq!(
        (m.to.as_str(), m.body.as_str(), m.thread.as_deref()),
        ("Bob", "hi", Some("t1"))
    );
    assert_eq!(
        m.sync,
        Some(SyncSpec {
            timeout_ms: Some(10_000)
        })
    );
    let m = msg(r##"⏺ ->relay.json:{"kind":"message","to":"#general","text":"via text"}"##);
    assert_eq!((m.to.as_str(), m.body.as_str()), ("#general", "via text"));
}

#[test]
fn json_line_other_kinds() {
    assert_eq!(
        sent(r#"->relay.json:{"kind":"spawn","name":"W1","cli":"claude","task":"t"}"#),
        vec![Command::Spawn(SpawnCommand {
            name: "W1".into(),
            cli: "claude".into(),
            task: Some("t".into())
        })]
    );
    assert_eq!(
        sent(r#"->relay.json:{"kind":"release","name":"W1"}"#),
        vec![Command::Release(ReleaseCommand { name: "W1".into() })]
    );
    assert_eq!(
        msg(r#"->relay.json:{"kind":"thinking","to":"Bob","body":"x"}"#).kind,
        MessageKind::Thinking
    );
    assert!(sent(r#"->relay.json:{"kind":"summary","to":"Bob","body":"x"}"#).is_empty());
}

#[test]
fn json_line_errors() {
    assert_eq!(
        rejected("->relay.json:{oops")[0].kind,
        RejectionKind::InvalidBlock
    );
    let r = rejected(r#"->relay.json:{"body":"no recipient"}"#);
    assert!(r[0].reason.contains("\"to\" is missing"), "{}", r[0].reason);
    assert_eq!(
        rejected(r#"->relay.json:{"to":"Bob"}"#)[0].kind,
        RejectionKind::EmptyBody
    );
    assert!(fin(r#"text ->relay.json:{"to":"Bob","body":"x"}"#).is_empty());
}
