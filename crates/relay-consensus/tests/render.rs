//! Texts sent by `_consensus`.

use relay_consensus::{
    format_duration, format_utc, parse_command, render_accepted, render_error, render_proposal,
    render_result, ConsensusConfig, ConsensusType, CreateProposal, Engine, Outcome, Proposal,
    VoteValue,
};

const NOW: i64 = 1_700_000_000_000;

fn setup(req: CreateProposal) -> (Engine, Proposal) {
    let mut e = Engine::with_seed(ConsensusConfig::default(), 9);
    match e.create(req, "Lead", NOW) {
        Ok(p) => (e, p),
        Err(err) => panic!("create failed: {err}"),
    }
}

#[test]
fn proposal_text_says_how_to_vote() {
    let (_, p) = setup(
        CreateProposal::new("Adopt v2", ["Dev1", "Dev2"])
            .with_description("Line one\nLine two")
            .with_timeout_ms(300_000),
    );
    let text = render_proposal(&p);
    let expected = format!(
        "PROPOSAL: Adopt v2\n\
         ID: {id}\n\
         From: Lead\n\
         Type: majority (approved when more than half of the participants who do not abstain \
         approve, rejected when more than half of them reject; not voting counts as neither, so \
         otherwise there is no consensus at the deadline)\n\
         Participants: Dev1, Dev2\n\
         Deadline: 2023-11-14T22:18:20Z (voting is open for 5m)\n\
         \n\
         Line one\nLine two\n\
         \n\
         To vote, send a message to _consensus (not to Lead):\n  \
         VOTE {id} approve|reject|abstain [reason]\n\
         For example: VOTE {id} approve looks good to me",
        id = p.id
    );
    assert_eq!(text, expected);
}

#[test]
fn rule_texts_per_type() {
    let (_, p) =
        setup(CreateProposal::new("s", ["A", "B", "C"]).with_type(ConsensusType::Supermajority));
    assert!(render_proposal(&p)
        .contains("at least 66.7% of the participants who do not abstain approve"));
    let (_, p) = setup(CreateProposal::new("q", ["A", "B", "C"]).with_type(ConsensusType::Quorum));
    assert!(render_proposal(&p).contains("at least 2 of the 3 participants must vote"));
    let (_, p) = setup(CreateProposal::new("u", ["A", "B"]).with_type(ConsensusType::Unanimous));
    assert!(render_proposal(&p).contains("abstaining does not block"));
    let (_, p) = setup(
        CreateProposal::new("w", ["A", "B"])
            .with_type(ConsensusType::Weighted)
            .with_weight("A", 2.5),
    );
    assert!(render_proposal(&p).contains("Participants: A (weight 2.5), B (weight 1)"));
}

#[test]
fn result_texts() {
    let (mut e, p) = setup(CreateProposal::new("Adopt v2", ["A", "B", "C"]));
    e.vote(&p.id, "A", VoteValue::Approve, Some("good".into()), NOW + 1)
        .expect("vote");
    let pending = e.get(&p.id).map(render_result).unwrap_or_default();
    assert!(
        pending.starts_with("CONSENSUS STATUS: PENDING\n"),
        "{pending}"
    );
    let o = e
        .vote(&p.id, "B", VoteValue::Approve, None, NOW + 2)
        .expect("vote");
    let text = render_result(&o.proposal);
    let expected = format!(
        "CONSENSUS RESULT: APPROVED\n\
         Proposal: Adopt v2\n\
         ID: {}\n\
         Type: majority\n\
         Votes: approve 2, reject 0, abstain 0, not voted 1 (3 participants)\n  \
         A approve: good\n  \
         B approve\n\
         Non-voters: C\n\
         Why: Approve 2 is more than half of the non-abstaining 3 participant(s) (decided before \
         everyone voted: the remaining votes could not change it).\n\
         Closed: 2023-11-14T22:13:20Z",
        p.id
    );
    assert_eq!(text, expected);

    let (mut e, p) =
        setup(CreateProposal::new("t", ["A", "B"]).with_type(ConsensusType::Unanimous));
    let o = e
        .vote(&p.id, "B", VoteValue::Reject, None, NOW + 1)
        .expect("vote");
    assert!(render_result(&o.proposal).starts_with("CONSENSUS RESULT: REJECTED\n"));

    let (mut e, p) = setup(CreateProposal::new("t", ["A", "B"]));
    e.vote(&p.id, "A", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    let expired = e.expire_due(p.expires_at);
    let text = expired.first().map(render_result).unwrap_or_default();
    assert!(
        text.starts_with("CONSENSUS RESULT: NO_CONSENSUS\n"),
        "{text}"
    );
    assert!(text.contains("(the deadline passed)"), "{text}");

    let (mut e, p) = setup(CreateProposal::new("t", ["A", "B"]));
    let c = e.cancel(&p.id, "Lead", NOW + 1).expect("cancel");
    let text = render_result(&c);
    assert!(text.starts_with("CONSENSUS RESULT: NO_CONSENSUS\n"));
    assert!(
        text.ends_with("Cancelled by Lead at 2023-11-14T22:13:20Z."),
        "{text}"
    );
}

#[test]
fn accepted_and_error_replies() {
    let (mut e, p) = setup(CreateProposal::new("Adopt v2", ["A", "Lead"]));
    let created = render_accepted(&p);
    assert!(created.starts_with(&format!(
        "ACCEPTED: proposal {} opened: Adopt v2\nSent to: A, Lead\n",
        p.id
    )));
    assert!(created.contains(&format!(
        "You are a participant too: VOTE {} approve|reject|abstain [reason]",
        p.id
    )));

    let o = e
        .vote(&p.id, "A", VoteValue::Reject, None, NOW + 1)
        .expect("vote");
    assert_eq!(
        render_accepted(&o),
        format!(
            "ACCEPTED: your vote reject on proposal {} (Adopt v2) is recorded\n\
             Waiting for 1 more participant(s); voting closes 2023-11-14T22:18:20Z.",
            p.id
        )
    );
    let cmd = parse_command(&format!("VOTE {} approve", p.id)).expect("parse");
    let out = e.execute(cmd, "A", NOW + 2).expect("vote");
    assert!(render_accepted(&out).contains(", replacing your earlier reject"));
    let cmd = parse_command(&format!("VOTE {} approve", p.id)).expect("parse");
    let out = e.execute(cmd, "Lead", NOW + 3).expect("vote");
    assert!(matches!(out, Outcome::Voted(_)));
    assert!(render_accepted(&out).ends_with(
        "This vote decided the proposal: APPROVED. The result is being sent to every participant."
    ));

    let (mut e, p) = setup(CreateProposal::new("t", ["A"]));
    let c = e.cancel(&p.id, "Lead", NOW).expect("cancel");
    assert_eq!(
        render_accepted(&c),
        format!(
            "ACCEPTED: proposal {} (t) is cancelled; the participants are told.",
            p.id
        )
    );

    let err = e
        .vote("prop_zz", "A", VoteValue::Approve, None, NOW)
        .err()
        .map(|e| render_error(&e));
    assert_eq!(
        err.as_deref(),
        Some("ERROR: unknown proposal \"prop_zz\"; use the id from the proposal message (it looks like prop_0123456789abcdef0123)")
    );
    let parse = parse_command("VOTE x").err().map(|e| render_error(&e));
    assert_eq!(
        parse.as_deref(),
        Some("ERROR: VOTE needs a value after the proposal id: VOTE x approve|reject|abstain [reason]")
    );
}

#[test]
fn time_formatting() {
    assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_utc(NOW), "2023-11-14T22:13:20Z");
    assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(format_utc(-1_000), "1969-12-31T23:59:59Z");
    assert_eq!(format_duration(300_000), "5m");
    assert_eq!(format_duration(5_400_000), "1h 30m");
    assert_eq!(format_duration(90_061_000), "1d 1h");
    assert_eq!(format_duration(45_000), "45s");
    assert_eq!(format_duration(500), "500ms");
}
