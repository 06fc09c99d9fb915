//! Early resolution is exact: a proposal closes before the deadline if and
//! only if the deadline rule gives the same decision for every way the
//! remaining participants could still vote (approve, reject, abstain or stay
//! silent). So no later vote could have flipped an early decision.

use proptest::prelude::*;
use relay_consensus::{
    decide, ConsensusConfig, ConsensusError, ConsensusType, CreateProposal, Decision, Engine,
    Proposal, ResolvedBy, Vote, VoteValue,
};

const NOW: i64 = 1_700_000_000_000;
const DEADLINE: i64 = NOW + 300_000;

/// Every deadline decision reachable from `p` by letting each participant
/// who has not voted approve, reject, abstain or stay silent.
fn completions(p: &Proposal) -> Vec<Decision> {
    let open = p.non_voters();
    let mut out = Vec::new();
    let total = 4usize.pow(open.len() as u32);
    for mut code in 0..total {
        let mut q = p.clone();
        for name in &open {
            let choice = code % 4;
            code /= 4;
            let value = match choice {
                0 => continue,
                1 => VoteValue::Approve,
                2 => VoteValue::Reject,
                _ => VoteValue::Abstain,
            };
            q.votes.push(Vote {
                voter: name.clone(),
                value,
                reason: None,
                at: NOW,
            });
        }
        if let Some(r) = decide(&q, DEADLINE, true) {
            out.push(r.decision);
        }
    }
    out
}

fn ctype_strategy() -> impl Strategy<Value = ConsensusType> {
    prop::sample::select(ConsensusType::ALL.to_vec())
}

fn request(
    ctype: ConsensusType,
    n: usize,
    weights: &[f64],
    threshold: f64,
    quorum: usize,
) -> CreateProposal {
    let mut req = CreateProposal::new("p", (0..n).map(|i| format!("P{i}"))).with_type(ctype);
    match ctype {
        ConsensusType::Weighted => {
            for (i, w) in weights.iter().take(n).enumerate() {
                req.weights.insert(format!("P{i}"), *w);
            }
        }
        ConsensusType::Supermajority => req.threshold = Some(threshold),
        ConsensusType::Quorum => req.quorum = Some(quorum.clamp(1, n)),
        _ => {}
    }
    req
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn early_decisions_cannot_be_flipped(
        ctype in ctype_strategy(),
        n in 1usize..=5,
        weights in prop::collection::vec(prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, 3.0]), 5),
        threshold in prop::sample::select(vec![0.51, 0.6, 2.0 / 3.0, 0.75, 0.9, 1.0]),
        quorum in 1usize..=5,
        votes in prop::collection::vec((0usize..5, 0u8..3), 0..10),
    ) {
        let mut engine = Engine::with_seed(ConsensusConfig::default(), 3);
        let p = engine
            .create(request(ctype, n, &weights, threshold, quorum), "Lead", NOW)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (step, (who, v)) in votes.into_iter().enumerate() {
            let value = [VoteValue::Approve, VoteValue::Reject, VoteValue::Abstain][usize::from(v)];
            let voter = format!("P{}", who % n);
            let outcome = match engine.vote(&p.id, &voter, value, None, NOW + 1 + step as i64) {
                Ok(o) => o,
                Err(ConsensusError::AlreadyResolved { .. }) => break,
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            let current = &outcome.proposal;
            let reachable = completions(current);
            match &current.result {
                Some(r) => {
                    prop_assert!(outcome.resolved);
                    // Whatever the remaining participants do, the deadline rule agrees.
                    prop_assert!(
                        reachable.iter().all(|d| *d == r.decision),
                        "{:?} closed {:?} ({:?}) but completions reach {:?}",
                        ctype, r.decision, r.resolved_by, reachable
                    );
                    if r.resolved_by == ResolvedBy::AllVoted {
                        prop_assert!(current.non_voters().is_empty());
                    }
                }
                None => {
                    // Still open: some completions must disagree.
                    prop_assert!(!current.non_voters().is_empty());
                    let first = reachable.first().copied();
                    prop_assert!(
                        reachable.iter().any(|d| Some(*d) != first),
                        "{:?} left open although every completion gives {:?}",
                        ctype, first
                    );
                }
            }
        }
    }
}
