//! Engine behaviour: validation, voting, cancelling, expiry, queries and
//! restoring from stored records.

use relay_consensus::{
    parse_command, ConsensusConfig, ConsensusError, ConsensusType, CreateProposal, Decision,
    Engine, Outcome, Proposal, ProposalFilter, ProposalStatus, ResolvedBy, VoteValue,
};

const NOW: i64 = 1_700_000_000_000;

fn engine() -> Engine {
    Engine::with_seed(ConsensusConfig::default(), 42)
}

fn create(e: &mut Engine, req: CreateProposal) -> Proposal {
    match e.create(req, "Lead", NOW) {
        Ok(p) => p,
        Err(err) => panic!("create failed: {err}"),
    }
}

fn abc() -> CreateProposal {
    CreateProposal::new("Ship it", ["A", "B", "C"])
}

fn create_err(req: CreateProposal) -> ConsensusError {
    match engine().create(req, "Lead", NOW) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, created {p:?}"),
    }
}

#[test]
fn create_fills_defaults() {
    let mut e = engine();
    let p = create(&mut e, abc().with_description("  why  "));
    assert!(p.id.starts_with("prop_"));
    let suffix = &p.id["prop_".len()..];
    assert_eq!(suffix.len(), 20);
    assert!(suffix
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert_eq!(p.thread, format!("consensus-{}", p.id));
    assert_eq!(
        (p.ctype, p.status),
        (ConsensusType::Majority, ProposalStatus::Pending)
    );
    assert_eq!(p.description, "why");
    assert_eq!(p.proposer, "Lead");
    assert!(
        !p.is_participant("Lead"),
        "the proposer is not a participant unless listed"
    );
    assert_eq!((p.created_at, p.expires_at), (NOW, NOW + 300_000));
    assert!(p.votes.is_empty() && p.result.is_none());
    assert!(p.weights.is_empty() && p.threshold.is_none() && p.quorum.is_none());

    let sup = create(&mut e, abc().with_type(ConsensusType::Supermajority));
    assert_eq!(sup.threshold, Some(2.0 / 3.0));
    let quo = create(
        &mut e,
        CreateProposal::new("q", ["A", "B", "C", "D"]).with_type(ConsensusType::Quorum),
    );
    assert_eq!(quo.quorum, Some(3));
    let wei = create(
        &mut e,
        abc()
            .with_type(ConsensusType::Weighted)
            .with_weight("b", 2.5),
    );
    assert_eq!(wei.weights.get("A"), Some(&1.0));
    assert_eq!(wei.weights.get("B"), Some(&2.5));
    assert_ne!(p.id, sup.id);
}

#[test]
fn timeout_is_capped_and_checked() {
    let mut e = engine();
    let p = create(&mut e, abc().with_timeout_ms(10 * 86_400_000));
    assert_eq!(p.expires_at, NOW + 86_400_000);
    let p = create(&mut e, abc().with_timeout_ms(1_000));
    assert_eq!(p.expires_at, NOW + 1_000);
    assert_eq!(
        create_err(abc().with_timeout_ms(0)),
        ConsensusError::InvalidTimeout
    );
}

#[test]
fn create_validation_errors() {
    use ConsensusType::*;
    let cases: Vec<(CreateProposal, ConsensusError)> = vec![
        (CreateProposal::new("  ", ["A"]), ConsensusError::EmptyTitle),
        (
            CreateProposal::new("T", Vec::<String>::new()),
            ConsensusError::NoParticipants,
        ),
        (
            CreateProposal::new("T", ["A", " "]),
            ConsensusError::InvalidParticipant {
                name: "".into(),
                reason: "names must not be empty",
            },
        ),
        (
            CreateProposal::new("T", ["Alice Bob"]),
            ConsensusError::InvalidParticipant {
                name: "Alice Bob".into(),
                reason: "names cannot contain spaces; separate participants with commas",
            },
        ),
        (
            CreateProposal::new("T", ["_Consensus"]),
            ConsensusError::InvalidParticipant {
                name: "_Consensus".into(),
                reason: "_consensus counts the votes and cannot vote",
            },
        ),
        (
            abc().with_weight("A", 2.0),
            ConsensusError::WeightsNotAllowed(Majority),
        ),
        (
            abc().with_type(Weighted).with_weight("A", 0.0),
            ConsensusError::InvalidWeight {
                participant: "A".into(),
                weight: 0.0,
            },
        ),
        (
            abc().with_type(Weighted).with_weight("a", -1.0),
            ConsensusError::InvalidWeight {
                participant: "A".into(),
                weight: -1.0,
            },
        ),
        (
            abc().with_type(Weighted).with_weight("Z", 1.0),
            ConsensusError::WeightForNonParticipant("Z".into()),
        ),
        (
            abc().with_threshold(0.8),
            ConsensusError::ThresholdNotAllowed(Majority),
        ),
        (
            abc().with_type(Supermajority).with_threshold(0.5),
            ConsensusError::InvalidThreshold(0.5),
        ),
        (
            abc().with_type(Supermajority).with_threshold(1.5),
            ConsensusError::InvalidThreshold(1.5),
        ),
        (
            abc().with_type(Unanimous).with_quorum(2),
            ConsensusError::QuorumNotAllowed(Unanimous),
        ),
        (
            abc().with_type(Quorum).with_quorum(0),
            ConsensusError::InvalidQuorum {
                quorum: 0,
                participants: 3,
            },
        ),
        (
            abc().with_type(Quorum).with_quorum(4),
            ConsensusError::InvalidQuorum {
                quorum: 4,
                participants: 3,
            },
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(create_err(req.clone()), expected, "request {req:?}");
    }
    let nan = create_err(abc().with_type(Weighted).with_weight("A", f64::NAN));
    assert!(matches!(nan, ConsensusError::InvalidWeight { .. }));

    let small = ConsensusConfig {
        max_participants: 2,
        ..ConsensusConfig::default()
    };
    let err = Engine::new(small).create(abc(), "Lead", NOW).err();
    assert_eq!(
        err,
        Some(ConsensusError::TooManyParticipants { count: 3, max: 2 })
    );
}

#[test]
fn error_messages_say_what_to_do() {
    let msg = |e: ConsensusError| e.to_string();
    assert_eq!(
        msg(ConsensusError::InvalidQuorum {
            quorum: 4,
            participants: 3
        }),
        "quorum must be between 1 and the number of participants (3); got 4"
    );
    assert_eq!(
        msg(ConsensusError::InvalidThreshold(0.4)),
        "threshold must be greater than 0.5 and at most 1; got 0.4 (write 0.75 or 75% for three quarters)"
    );
    assert_eq!(
        msg(ConsensusError::WeightsNotAllowed(ConsensusType::Majority)),
        "weights are only used by TYPE weighted; remove them or use TYPE: weighted (this proposal is majority)"
    );
    assert_eq!(
        msg(ConsensusError::NotParticipant {
            voter: "Z".into(),
            id: "prop_1".into()
        }),
        "Z is not a participant of proposal prop_1; only the listed participants can vote"
    );
    assert_eq!(
        msg(ConsensusError::AlreadyResolved {
            id: "prop_1".into(),
            status: ProposalStatus::NoConsensus
        }),
        "proposal prop_1 is already no_consensus; it no longer accepts votes or changes"
    );
}

#[test]
fn vote_errors() {
    let mut e = engine();
    let p = create(&mut e, abc());
    assert_eq!(
        e.vote("prop_nope", "A", VoteValue::Approve, None, NOW)
            .err(),
        Some(ConsensusError::UnknownProposal("prop_nope".into()))
    );
    assert_eq!(
        e.vote(&p.id, "Z", VoteValue::Approve, None, NOW).err(),
        Some(ConsensusError::NotParticipant {
            voter: "Z".into(),
            id: p.id.clone()
        })
    );
    assert_eq!(
        e.vote(&p.id, "A", VoteValue::Approve, None, p.expires_at)
            .err(),
        Some(ConsensusError::VotingClosed {
            id: p.id.clone(),
            closed_at: "2023-11-14T22:18:20Z".into()
        })
    );
    e.vote(&p.id, "A", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    e.vote(&p.id, "b", VoteValue::Approve, None, NOW + 2)
        .expect("vote");
    assert_eq!(
        e.vote(&p.id, "C", VoteValue::Reject, None, NOW + 3).err(),
        Some(ConsensusError::AlreadyResolved {
            id: p.id.clone(),
            status: ProposalStatus::Approved
        })
    );
}

#[test]
fn votes_are_case_insensitive_and_keep_reasons() {
    let mut e = engine();
    let p = create(&mut e, abc());
    let o = e
        .vote(
            &p.id.to_uppercase(),
            "a",
            VoteValue::Reject,
            Some("  not yet \n".into()),
            NOW + 1,
        )
        .expect("vote");
    let v = &o.proposal.votes[0];
    assert_eq!(
        (v.voter.as_str(), v.value, v.reason.as_deref(), v.at),
        ("A", VoteValue::Reject, Some("not yet"), NOW + 1)
    );
    assert_eq!((o.resolved, o.previous), (false, None));
}

#[test]
fn vote_change_allowed_and_disallowed() {
    let mut e = engine();
    let p = create(&mut e, abc());
    e.vote(&p.id, "A", VoteValue::Reject, None, NOW + 1)
        .expect("vote");
    let o = e
        .vote(&p.id, "A", VoteValue::Abstain, None, NOW + 2)
        .expect("change");
    assert_eq!(o.previous, Some(VoteValue::Reject));
    assert_eq!(o.proposal.votes.len(), 1);
    assert_eq!(o.proposal.votes[0].value, VoteValue::Abstain);

    let strict = ConsensusConfig {
        allow_vote_change: false,
        ..ConsensusConfig::default()
    };
    let mut e = Engine::new(strict);
    let p = create(&mut e, abc());
    e.vote(&p.id, "A", VoteValue::Reject, None, NOW + 1)
        .expect("vote");
    let err = e.vote(&p.id, "a", VoteValue::Approve, None, NOW + 2).err();
    assert_eq!(
        err,
        Some(ConsensusError::VoteChangeNotAllowed {
            id: p.id.clone(),
            previous: VoteValue::Reject
        })
    );
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some(
            format!(
                "you already voted reject on proposal {} and vote changes are disabled",
                p.id
            )
            .as_str()
        )
    );
}

#[test]
fn cancel_rules() {
    let mut e = engine();
    let p = create(&mut e, abc());
    assert_eq!(
        e.cancel(&p.id, "A", NOW + 1).err(),
        Some(ConsensusError::NotProposer {
            id: p.id.clone(),
            by: "A".into(),
            proposer: "Lead".into()
        })
    );
    assert_eq!(
        e.cancel("prop_x", "Lead", NOW).err(),
        Some(ConsensusError::UnknownProposal("prop_x".into()))
    );
    e.vote(&p.id, "A", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    let c = e.cancel(&p.id, "lead", NOW + 2).expect("cancel");
    assert_eq!(c.status, ProposalStatus::Cancelled);
    let r = c.result.expect("result");
    assert_eq!(
        (r.decision, r.resolved_by, r.voted, r.resolved_at),
        (Decision::NoConsensus, ResolvedBy::Cancelled, 1, NOW + 2)
    );
    assert_eq!(
        e.cancel(&p.id, "Lead", NOW + 3).err(),
        Some(ConsensusError::AlreadyResolved {
            id: p.id.clone(),
            status: ProposalStatus::Cancelled
        })
    );
    assert_eq!(e.next_expiry(), None);
}

#[test]
fn expire_due_closes_in_deadline_order() {
    let mut e = engine();
    let late = create(&mut e, abc().with_timeout_ms(30_000));
    let early = create(&mut e, abc().with_timeout_ms(10_000));
    let middle = create(&mut e, abc().with_timeout_ms(20_000));
    let never = create(&mut e, abc().with_timeout_ms(90_000));
    e.vote(&middle.id, "A", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    e.vote(&middle.id, "B", VoteValue::Reject, None, NOW + 2)
        .expect("vote");
    e.vote(&late.id, "A", VoteValue::Reject, None, NOW + 3)
        .expect("vote");
    e.vote(&late.id, "C", VoteValue::Reject, None, NOW + 4)
        .expect("vote");
    let closed_early = e.get(&late.id).map(|p| p.status);
    assert_eq!(closed_early, Some(ProposalStatus::Rejected));

    assert_eq!(e.next_expiry(), Some(NOW + 10_000));
    assert!(e.expire_due(NOW + 9_999).is_empty());
    let done = e.expire_due(NOW + 30_000);
    let ids: Vec<&str> = done.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec![early.id.as_str(), middle.id.as_str()]);
    for p in &done {
        let r = p.result.as_ref().expect("result");
        assert_eq!(
            (p.status, r.decision, r.resolved_by),
            (
                ProposalStatus::NoConsensus,
                Decision::NoConsensus,
                ResolvedBy::Expiry
            )
        );
    }
    assert_eq!(done[0].result.as_ref().map(|r| r.non_voters.len()), Some(3));
    assert!(e.expire_due(NOW + 30_000).is_empty());
    assert_eq!(e.next_expiry(), Some(never.expires_at));
}

#[test]
fn force_resolve_uses_the_deadline_rule() {
    let mut e = engine();
    let p = create(&mut e, CreateProposal::new("one of two", ["A", "B"]));
    e.vote(&p.id, "A", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    let f = e.force_resolve(&p.id, NOW + 2).expect("force");
    let r = f.result.expect("result");
    assert_eq!(
        (r.decision, r.resolved_by),
        (Decision::NoConsensus, ResolvedBy::Forced)
    );
    assert!(e.force_resolve(&p.id, NOW + 3).is_err());
}

#[test]
fn queries_and_stats() {
    let mut e = engine();
    let a = create(&mut e, abc());
    let b = create(
        &mut e,
        CreateProposal::new("other", ["B", "Lead"]).with_type(ConsensusType::Unanimous),
    );
    e.vote(&a.id, "B", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    e.vote(&b.id, "B", VoteValue::Reject, None, NOW + 2)
        .expect("vote");

    let pending_a: Vec<&str> = e.pending_for("a").iter().map(|p| p.id.as_str()).collect();
    assert_eq!(pending_a, vec![a.id.as_str()]);
    assert!(e.pending_for("B").is_empty());
    assert!(
        e.pending_for("Lead").is_empty(),
        "b is closed, Lead is not a participant of a"
    );

    assert_eq!(e.list(&ProposalFilter::default()).len(), 2);
    let filter = ProposalFilter {
        agent: Some("lead".into()),
        ..ProposalFilter::default()
    };
    assert_eq!(e.list(&filter).len(), 2);
    let filter = ProposalFilter {
        agent: Some("C".into()),
        ..ProposalFilter::default()
    };
    assert_eq!(e.list(&filter).len(), 1);
    let filter = ProposalFilter {
        status: Some(ProposalStatus::Rejected),
        ..ProposalFilter::default()
    };
    assert_eq!(
        e.list(&filter)
            .iter()
            .map(|p| p.id.clone())
            .collect::<Vec<_>>(),
        vec![b.id.clone()]
    );
    let filter = ProposalFilter {
        limit: Some(1),
        ..ProposalFilter::default()
    };
    assert_eq!(e.list(&filter).len(), 1);

    let s = e.stats();
    assert_eq!((s.total, s.pending, s.rejected, s.approved), (2, 1, 1, 0));
    assert_eq!(s.by_type.get(&ConsensusType::Unanimous), Some(&1));
    assert_eq!(s.by_type.get(&ConsensusType::Quorum), Some(&0));
    assert_eq!(s.avg_participation, 0.5);
}

#[test]
fn restore_from_json_and_continue() -> Result<(), serde_json::Error> {
    let mut e = engine();
    let open = create(&mut e, abc().with_timeout_ms(60_000));
    let closed = create(&mut e, CreateProposal::new("closed", ["A"]));
    e.vote(
        &open.id,
        "A",
        VoteValue::Approve,
        Some("ok".into()),
        NOW + 1,
    )
    .expect("vote");
    e.vote(&closed.id, "A", VoteValue::Reject, None, NOW + 2)
        .expect("vote");

    // What the daemon stores and reads back.
    let stored: Vec<String> = e
        .list(&ProposalFilter::default())
        .into_iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    let loaded: Vec<Proposal> = stored
        .iter()
        .map(|s| serde_json::from_str(s))
        .collect::<Result<_, _>>()?;

    let mut restored = engine();
    let report = restored.restore(loaded);
    assert_eq!(
        (report.restored, report.pending, report.skipped.len()),
        (2, 1, 0)
    );
    assert_eq!(restored.next_expiry(), Some(NOW + 60_000));
    assert_eq!(
        restored.get(&closed.id).map(|p| p.status),
        Some(ProposalStatus::Rejected)
    );
    assert_eq!(restored.get(&open.id), e.get(&open.id));
    let o = restored
        .vote(&open.id, "B", VoteValue::Approve, None, NOW + 3)
        .expect("vote");
    assert_eq!(o.proposal.status, ProposalStatus::Approved);
    assert_eq!(restored.next_expiry(), None);
    Ok(())
}

#[test]
fn restore_skips_inconsistent_records() {
    let mut e = engine();
    let good = create(&mut e, abc());
    let mut no_participants = good.clone();
    no_participants.id = "prop_a".into();
    no_participants.participants.clear();
    let mut stranger = good.clone();
    stranger.id = "prop_b".into();
    stranger.votes.push(relay_consensus::Vote {
        voter: "Z".into(),
        value: VoteValue::Approve,
        reason: None,
        at: NOW,
    });
    let mut bad_quorum = good.clone();
    bad_quorum.id = "prop_c".into();
    bad_quorum.quorum = Some(9);

    let mut r = engine();
    let report = r.restore(vec![good.clone(), no_participants, stranger, bad_quorum]);
    assert_eq!(report.restored, 1);
    let reasons: Vec<String> = report.skipped.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        reasons,
        vec![
            "stored proposal \"prop_a\" is inconsistent (no participants); fix or delete the stored record",
            "stored proposal \"prop_b\" is inconsistent (vote by non-participant Z); fix or delete the stored record",
            "stored proposal \"prop_c\" is inconsistent (quorum 9 is outside 1..=3); fix or delete the stored record",
        ]
    );
    assert_eq!(r.len(), 1);
}

#[test]
fn prune_forgets_old_closed_proposals() {
    let mut e = engine();
    let open = create(&mut e, abc());
    let closed = create(&mut e, CreateProposal::new("x", ["A"]));
    e.vote(&closed.id, "A", VoteValue::Approve, None, NOW + 5)
        .expect("vote");
    assert!(e.prune(NOW + 5).is_empty());
    assert_eq!(e.prune(NOW + 6), vec![closed.id]);
    assert!(e.get(&open.id).is_some());
    assert_eq!(e.len(), 1);
}

#[test]
fn execute_text_commands() {
    let mut e = engine();
    let cmd = parse_command("PROPOSE: T\nPARTICIPANTS: A, B\nTIMEOUT: 1m").expect("parse");
    let created = e.execute(cmd, "Lead", NOW).expect("create");
    let Outcome::Created(p) = &created else {
        panic!("expected Created")
    };
    assert_eq!(p.expires_at, NOW + 60_000);
    assert_eq!(created.closed(), None);
    let cmd = parse_command(&format!("VOTE {} approve", p.id)).expect("parse");
    let out = e.execute(cmd, "A", NOW + 1).expect("vote");
    assert!(out.closed().is_none());
    let cmd = parse_command(&format!("VOTE {} approve", p.id)).expect("parse");
    let out = e.execute(cmd, "B", NOW + 2).expect("vote");
    assert_eq!(
        out.closed().map(|p| p.status),
        Some(ProposalStatus::Approved)
    );
    assert_eq!(out.proposal().result_recipients(), vec!["Lead", "A", "B"]);
}

#[test]
fn json_shape() -> Result<(), serde_json::Error> {
    let mut e = engine();
    let p = create(
        &mut e,
        CreateProposal::new("j", ["A", "B"]).with_type(ConsensusType::Quorum),
    );
    e.vote(&p.id, "A", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    let o = e
        .vote(&p.id, "B", VoteValue::Reject, None, NOW + 2)
        .expect("vote");
    let v = serde_json::to_value(&o.proposal)?;
    assert_eq!(v["type"], "quorum");
    assert_eq!(v["status"], "no_consensus");
    assert_eq!(v["quorum"], 2);
    assert_eq!(v["expiresAt"], NOW + 300_000);
    assert_eq!(v["votes"][0]["value"], "approve");
    assert_eq!(v["result"]["resolvedBy"], "all_voted");
    assert_eq!(v["result"]["decision"], "no_consensus");
    assert_eq!(v["result"]["approveWeight"], 1.0);
    assert!(v.get("weights").is_none() && v.get("threshold").is_none());
    let stats = serde_json::to_value(e.stats())?;
    assert_eq!(stats["byType"]["quorum"], 1);
    assert_eq!(stats["noConsensus"], 1);
    Ok(())
}

#[test]
fn config_validation() {
    assert!(Engine::try_new(ConsensusConfig::default()).is_ok());
    let bad = ConsensusConfig {
        default_threshold: 0.5,
        ..ConsensusConfig::default()
    };
    assert_eq!(
        Engine::try_new(bad).err().map(|e| e.to_string()).as_deref(),
        Some("invalid consensus configuration: defaultThreshold must be greater than 0.5 and at most 1; got 0.5")
    );
    let bad = ConsensusConfig {
        default_timeout_ms: 2,
        max_timeout_ms: 1,
        ..ConsensusConfig::default()
    };
    assert!(bad.validate().is_err());
}
