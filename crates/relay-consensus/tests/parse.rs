//! The `_consensus` text protocol and the structured payloads.

use relay_consensus::{
    parse_command, parse_duration_ms, Command, ConsensusError, ConsensusType, CreateProposal,
    ParseError, VotePayload, VoteValue,
};

fn propose(body: &str) -> CreateProposal {
    match parse_command(body) {
        Ok(Command::Propose(req)) => req,
        other => panic!("expected a proposal from {body:?}, got {other:?}"),
    }
}

fn vote(body: &str) -> (String, VoteValue, Option<String>) {
    match parse_command(body) {
        Ok(Command::Vote { id, value, reason }) => (id, value, reason),
        other => panic!("expected a vote from {body:?}, got {other:?}"),
    }
}

fn err(body: &str) -> String {
    match parse_command(body) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("expected an error from {body:?}, got {c:?}"),
    }
}

#[test]
fn sdk_minimal_proposal() {
    let body = [
        "PROPOSE: Adopt the v2 API",
        "TYPE: majority",
        "PARTICIPANTS: Alice, Bob, Carol",
        "DESCRIPTION: Switch every client to v2.",
    ]
    .join("\n");
    let req = propose(&body);
    assert_eq!(req.title, "Adopt the v2 API");
    assert_eq!(req.ctype, Some(ConsensusType::Majority));
    assert_eq!(req.participants, vec!["Alice", "Bob", "Carol"]);
    assert_eq!(
        req.description.as_deref(),
        Some("Switch every client to v2.")
    );
    assert_eq!(
        (req.timeout_ms, req.quorum, req.threshold),
        (None, None, None)
    );
    assert!(req.weights.is_empty());
}

#[test]
fn sdk_proposal_with_every_option() {
    let body = [
        "PROPOSE: Release 1.4",
        "TYPE: supermajority",
        "PARTICIPANTS: A, B, C, D",
        "DESCRIPTION: Cut the release today.",
        "TIMEOUT: 60000",
        "THRESHOLD: 0.75",
    ]
    .join("\n");
    let req = propose(&body);
    assert_eq!(req.ctype, Some(ConsensusType::Supermajority));
    assert_eq!(req.timeout_ms, Some(60_000));
    assert_eq!(req.threshold, Some(0.75));

    let body = "PROPOSE: Merge\nTYPE: quorum\nPARTICIPANTS: A, B, C\nDESCRIPTION: d\nTIMEOUT: 5000\nQUORUM: 2";
    let req = propose(body);
    assert_eq!(
        (req.ctype, req.quorum, req.timeout_ms),
        (Some(ConsensusType::Quorum), Some(2), Some(5000))
    );
}

#[test]
fn headers_are_case_insensitive_and_whitespace_tolerant() {
    let body = "  propose:   Lower case  \n Type :UNANIMOUS \t\nparticipants:a,b ,  c,\ndescription:   x   \ntimeout: 5m  ";
    let req = propose(body);
    assert_eq!(req.title, "Lower case");
    assert_eq!(req.ctype, Some(ConsensusType::Unanimous));
    assert_eq!(req.participants, vec!["a", "b", "c"]);
    assert_eq!(req.description.as_deref(), Some("x"));
    assert_eq!(req.timeout_ms, Some(300_000));
}

#[test]
fn crlf_and_cr_line_ends() {
    let req = propose(
        "PROPOSE: T\r\nTYPE: weighted\r\nPARTICIPANTS: A:2, B\r\nDESCRIPTION: one\r\ntwo\r\n",
    );
    assert_eq!(req.ctype, Some(ConsensusType::Weighted));
    assert_eq!(req.description.as_deref(), Some("one\ntwo"));
    let req = propose("PROPOSE: T\rPARTICIPANTS: A\r");
    assert_eq!(req.participants, vec!["A"]);
    let (id, value, reason) = vote("VOTE prop_1 approve fine\r\n");
    assert_eq!(
        (id.as_str(), value, reason.as_deref()),
        ("prop_1", VoteValue::Approve, Some("fine"))
    );
}

#[test]
fn multi_line_description_until_next_header() {
    let body = "PROPOSE: T\nDESCRIPTION: first line\n  - bullet\n\nlast paragraph   \nPARTICIPANTS: A, B\nTYPE: majority";
    let req = propose(body);
    assert_eq!(
        req.description.as_deref(),
        Some("first line\n  - bullet\n\nlast paragraph")
    );
    assert_eq!(req.participants, vec!["A", "B"]);
}

#[test]
fn free_text_and_unknown_headers_are_description() {
    let body = "PROPOSE: T\nPARTICIPANTS: A\nPRIORITY: high\nPlease look at this.";
    let req = propose(body);
    assert_eq!(
        req.description.as_deref(),
        Some("PRIORITY: high\nPlease look at this.")
    );
    assert_eq!(propose("PROPOSE: T\nPARTICIPANTS: A").description, None);
}

#[test]
fn proposal_alias_and_mentions() {
    let req = propose("PROPOSAL: Docs format\nPARTICIPANTS: @Alice, @bob");
    assert_eq!(req.title, "Docs format");
    assert_eq!(req.participants, vec!["Alice", "bob"]);
    assert_eq!(req.ctype, None);
}

#[test]
fn weighted_participants() {
    let req = propose("PROPOSE: W\nTYPE: weighted\nPARTICIPANTS: Lead:3, Dev=1.5, Intern");
    assert_eq!(req.participants, vec!["Lead", "Dev", "Intern"]);
    assert_eq!(req.weights.get("Lead"), Some(&3.0));
    assert_eq!(req.weights.get("Dev"), Some(&1.5));
    assert_eq!(req.weights.get("Intern"), None);
}

#[test]
fn durations_and_thresholds() {
    for (text, ms) in [
        ("300000", 300_000),
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("5 min", 300_000),
        ("1h", 3_600_000),
        ("1.5H", 5_400_000),
        ("1d", 86_400_000),
    ] {
        assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
    }
    assert_eq!(
        propose("PROPOSE: T\nPARTICIPANTS: A\nTHRESHOLD: 80%").threshold,
        Some(0.8)
    );
    let req = propose("PROPOSE: T\nPARTICIPANTS: A\nTHRESHOLD: 3/4");
    assert_eq!(req.threshold, Some(0.75));
    assert!(parse_command("PROPOSE: T\nPARTICIPANTS: A\nTHRESHOLD: 1/0").is_err());
}

#[test]
fn sdk_votes() {
    let (id, value, reason) = vote("VOTE prop_0123456789abcdef0123 approve");
    assert_eq!(
        (id.as_str(), value, reason),
        ("prop_0123456789abcdef0123", VoteValue::Approve, None)
    );
    let (_, value, reason) = vote("VOTE prop_1 reject Too risky right now");
    assert_eq!(
        (value, reason.as_deref()),
        (VoteValue::Reject, Some("Too risky right now"))
    );
    let (_, value, _) = vote("VOTE prop_1 abstain");
    assert_eq!(value, VoteValue::Abstain);
}

#[test]
fn tolerant_votes() {
    let (id, value, _) = vote("vote PROP_123 APPROVE");
    assert_eq!((id.as_str(), value), ("PROP_123", VoteValue::Approve));
    let (_, value, reason) = vote("  VOTE prop_1 approve   \n");
    assert_eq!((value, reason), (VoteValue::Approve, None));
    let (_, _, reason) = vote("VOTE prop_1 reject because:\n- it breaks B  \n- and C");
    assert_eq!(reason.as_deref(), Some("because:\n- it breaks B\n- and C"));
    let (id, value, reason) = vote("VOTE: <prop_9> approve: ship it");
    assert_eq!(
        (id.as_str(), value, reason.as_deref()),
        ("prop_9", VoteValue::Approve, Some("ship it"))
    );
    let (id, value, _) = vote("VOTE approve prop_9");
    assert_eq!((id.as_str(), value), ("prop_9", VoteValue::Approve));
    let (id, value, _) = vote("VOTE prop_9\napprove");
    assert_eq!((id.as_str(), value), ("prop_9", VoteValue::Approve));
}

#[test]
fn every_parse_error_message() {
    let cases: Vec<(&str, String)> = vec![
        (
            "hello there",
            "not a consensus command; send a proposal:\n  PROPOSE: <title>\n  TYPE: majority|supermajority|unanimous|weighted|quorum\n  PARTICIPANTS: A, B, C\n  DESCRIPTION: <text>\nor a vote:\n  VOTE <proposal-id> approve|reject|abstain [reason]".into(),
        ),
        ("voter turnout", ParseError::NotACommand.to_string()),
        ("", ParseError::NotACommand.to_string()),
        (
            "PROPOSE:   \nPARTICIPANTS: A",
            "a proposal needs a title: the first line must be PROPOSE: <title>, e.g. PROPOSE: Adopt the new API".into(),
        ),
        ("TYPE: majority\nPARTICIPANTS: A", ParseError::MissingTitle.to_string()),
        (
            "PROPOSE: T\nTYPE: majority",
            "PARTICIPANTS is missing or empty; list the voters separated by commas, e.g. PARTICIPANTS: Alice, Bob, Carol".into(),
        ),
        ("PROPOSE: T\nPARTICIPANTS: , ,", ParseError::MissingParticipants.to_string()),
        (
            "PROPOSE: T\nTYPE: majoritee\nPARTICIPANTS: A",
            "TYPE must be one of majority, supermajority, unanimous, weighted, quorum; got \"majoritee\"".into(),
        ),
        (
            "PROPOSE: T\nPARTICIPANTS: A\nTIMEOUT: soon",
            "TIMEOUT must be a duration such as 300000 (milliseconds), 30s, 5m or 1h; got \"soon\"".into(),
        ),
        (
            "PROPOSE: T\nPARTICIPANTS: A\nTIMEOUT: 5 fortnights",
            "TIMEOUT must be a duration such as 300000 (milliseconds), 30s, 5m or 1h; got \"5 fortnights\"".into(),
        ),
        (
            "PROPOSE: T\nPARTICIPANTS: A\nQUORUM: two",
            "QUORUM must be a whole number of voters such as 3; got \"two\"".into(),
        ),
        (
            "PROPOSE: T\nPARTICIPANTS: A\nTHRESHOLD: most",
            "THRESHOLD must be a fraction such as 0.75 or a percentage such as 75%; got \"most\"".into(),
        ),
        (
            "PROPOSE: T\nTYPE: weighted\nPARTICIPANTS: A:heavy",
            "weight of A must be a number such as 2 (PARTICIPANTS: Alice:2, Bob:1); got \"heavy\"".into(),
        ),
        (
            "PROPOSE: T\nTYPE: majority\ntype: quorum\nPARTICIPANTS: A",
            "TYPE appears more than once; give each header once".into(),
        ),
        (
            "VOTE",
            "VOTE needs a proposal id and a value: VOTE <proposal-id> approve|reject|abstain [reason]".into(),
        ),
        (
            "VOTE prop_1",
            "VOTE needs a value after the proposal id: VOTE prop_1 approve|reject|abstain [reason]".into(),
        ),
        (
            "VOTE prop_1 maybe",
            "vote value must be approve, reject or abstain; got \"maybe\" (format: VOTE <proposal-id> approve|reject|abstain [reason])".into(),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(err(body), expected, "body {body:?}");
    }
}

#[test]
fn structured_create_payload() -> Result<(), serde_json::Error> {
    let json = r#"{"title":"T","participants":["A","B"],"type":"Weighted","timeoutMs":1000,"weights":{"A":2}}"#;
    let req: CreateProposal = serde_json::from_str(json)?;
    assert_eq!(req.ctype, Some(ConsensusType::Weighted));
    assert_eq!(req.timeout_ms, Some(1000));
    assert_eq!(req.weights.get("A"), Some(&2.0));
    let req: CreateProposal = serde_json::from_str(
        r#"{"title":"T","participants":["A"],"consensusType":"quorum","quorum":1,"description":"d"}"#,
    )?;
    assert_eq!(
        (req.ctype, req.quorum, req.description.as_deref()),
        (Some(ConsensusType::Quorum), Some(1), Some("d"))
    );
    let bad = serde_json::from_str::<CreateProposal>(
        r#"{"title":"T","participants":["A"],"type":"majoritee"}"#,
    );
    assert!(bad.is_err_and(|e| e.to_string().contains("TYPE must be one of")));
    Ok(())
}

#[test]
fn structured_vote_payload() -> Result<(), serde_json::Error> {
    let v: VotePayload =
        serde_json::from_str(r#"{"proposalId":"prop_1","value":"Reject","reason":"  no  "}"#)?;
    assert_eq!(
        v.into_command(),
        Ok(Command::Vote {
            id: "prop_1".into(),
            value: VoteValue::Reject,
            reason: Some("no".into())
        })
    );
    let v: VotePayload = serde_json::from_str(r#"{"proposalId":"prop_1","value":"maybe"}"#)?;
    let e = v.into_command().err();
    assert_eq!(e, Some(ConsensusError::InvalidVote("maybe".into())));
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("vote value must be approve, reject or abstain; got \"maybe\" (format: VOTE <proposal-id> approve|reject|abstain [reason])")
    );
    Ok(())
}
