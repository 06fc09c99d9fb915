//! The decision table, row by row: for each type and vote pattern, when the
//! engine closes the proposal (after which vote, and why) and what the
//! deadline rule decides for the full pattern.
//!
//! Vote patterns: one character per participant, cast left to right:
//! `A` approve, `R` reject, `X` abstain, `-` does not vote.

use relay_consensus::{
    decide, ConsensusConfig, ConsensusType, CreateProposal, Decision, Engine, Proposal,
    ProposalStatus, ResolvedBy, Vote, VoteValue,
};

use ConsensusType::{Majority, Quorum, Supermajority, Unanimous, Weighted};
use Decision::{Approved, NoConsensus, Rejected};
use ResolvedBy::{AllVoted, Early};

const NOW: i64 = 1_700_000_000_000;
const TIMEOUT: u64 = 60_000;

struct Row {
    name: &'static str,
    ctype: ConsensusType,
    votes: &'static str,
    names: Vec<String>,
    weights: Vec<(&'static str, f64)>,
    threshold: Option<f64>,
    quorum: Option<usize>,
    /// (1-based index of the vote that closes it, decision, why)
    resolves: Option<(usize, Decision, ResolvedBy)>,
    expiry: Decision,
}

fn row(name: &'static str, ctype: ConsensusType, votes: &'static str) -> Row {
    Row {
        name,
        ctype,
        votes,
        names: (0..votes.len()).map(|i| format!("P{i}")).collect(),
        weights: Vec::new(),
        threshold: None,
        quorum: None,
        resolves: None,
        expiry: NoConsensus,
    }
}

impl Row {
    fn threshold(mut self, t: f64) -> Self {
        self.threshold = Some(t);
        self
    }
    fn quorum(mut self, q: usize) -> Self {
        self.quorum = Some(q);
        self
    }
    fn names(mut self, names: &[&str]) -> Self {
        self.names = names.iter().map(|s| s.to_string()).collect();
        self
    }
    fn weights(mut self, w: &[(&'static str, f64)]) -> Self {
        self.weights = w.to_vec();
        self
    }
    fn resolves(mut self, after: usize, d: Decision, by: ResolvedBy) -> Self {
        self.resolves = Some((after, d, by));
        self
    }
    fn expiry(mut self, d: Decision) -> Self {
        self.expiry = d;
        self
    }

    fn request(&self) -> CreateProposal {
        let mut req = CreateProposal::new(self.name, self.names.clone()).with_type(self.ctype);
        req.timeout_ms = Some(TIMEOUT);
        req.threshold = self.threshold;
        req.quorum = self.quorum;
        for (n, w) in &self.weights {
            req.weights.insert(n.to_string(), *w);
        }
        req
    }

    fn cast(&self) -> Vec<(String, VoteValue)> {
        self.votes
            .chars()
            .zip(&self.names)
            .filter_map(|(c, n)| {
                let v = match c {
                    'A' => VoteValue::Approve,
                    'R' => VoteValue::Reject,
                    'X' => VoteValue::Abstain,
                    _ => return None,
                };
                Some((n.clone(), v))
            })
            .collect()
    }
}

fn table() -> Vec<Row> {
    vec![
        // majority: approve iff A > R + U, reject iff R > A + U.
        row("maj all approve", Majority, "AAA")
            .resolves(2, Approved, Early)
            .expiry(Approved),
        row("maj all reject", Majority, "RRR")
            .resolves(2, Rejected, Early)
            .expiry(Rejected),
        row("maj A A R", Majority, "AAR")
            .resolves(2, Approved, Early)
            .expiry(Approved),
        row("maj R R A", Majority, "RRA")
            .resolves(2, Rejected, Early)
            .expiry(Rejected),
        row("maj R A A", Majority, "RAA")
            .resolves(3, Approved, AllVoted)
            .expiry(Approved),
        row("maj tie", Majority, "AR").resolves(2, NoConsensus, AllVoted),
        row("maj abstain no majority", Majority, "ARX").resolves(3, NoConsensus, AllVoted),
        row("maj abstainers leave base", Majority, "AXX")
            .resolves(3, Approved, AllVoted)
            .expiry(Approved),
        row("maj all abstain", Majority, "XXX").resolves(3, NoConsensus, AllVoted),
        row("maj 1 of 10 (force-resolve defect)", Majority, "A---------"),
        row("maj 5 of 10 not a majority", Majority, "AAAAA-----"),
        row("maj 6 of 10", Majority, "AAAAAA----")
            .resolves(6, Approved, Early)
            .expiry(Approved),
        row("maj 6 rejects of 10", Majority, "RRRRRR----")
            .resolves(6, Rejected, Early)
            .expiry(Rejected),
        row("maj no votes", Majority, "-----"),
        row("maj 2 of 3 silent third", Majority, "AR-"),
        // supermajority(t): approve iff A >= t(A+R+U), reject iff A+U < t(A+R+U).
        row("sup single early reject (defect)", Supermajority, "RAAA")
            .resolves(4, Approved, AllVoted)
            .expiry(Approved),
        row("sup 3 of 4 at 0.67", Supermajority, "AAAR")
            .threshold(0.67)
            .resolves(3, Approved, Early)
            .expiry(Approved),
        row("sup 2 rejects of 4", Supermajority, "RRAA")
            .resolves(2, Rejected, Early)
            .expiry(Rejected),
        row("sup A A R at 2/3", Supermajority, "AAR")
            .resolves(2, Approved, Early)
            .expiry(Approved),
        row("sup A A R at 0.75", Supermajority, "AAR")
            .threshold(0.75)
            .resolves(3, Rejected, AllVoted)
            .expiry(Rejected),
        row("sup abstain shrinks base", Supermajority, "AXR")
            .resolves(3, Rejected, AllVoted)
            .expiry(Rejected),
        row("sup A A X", Supermajority, "AAX")
            .resolves(2, Approved, Early)
            .expiry(Approved),
        row(
            "sup 1 of 10 (force-resolve defect)",
            Supermajority,
            "A---------",
        ),
        row("sup 5 of 10", Supermajority, "AAAAA-----"),
        row("sup 5 approve 1 reject of 10", Supermajority, "AAAAAR----"),
        row("sup 7 of 10", Supermajority, "AAAAAAA---")
            .resolves(7, Approved, Early)
            .expiry(Approved),
        row("sup 4 rejects of 10", Supermajority, "RRRR------")
            .resolves(4, Rejected, Early)
            .expiry(Rejected),
        row("sup 3 rejects of 10", Supermajority, "RRR-------"),
        row("sup all abstain", Supermajority, "XXX").resolves(3, NoConsensus, AllVoted),
        row("sup unanimity threshold", Supermajority, "ARA")
            .threshold(1.0)
            .resolves(2, Rejected, Early)
            .expiry(Rejected),
        row("sup no votes", Supermajority, "----"),
        // unanimous: abstain does not block, any reject rejects.
        row("una all approve", Unanimous, "AAA")
            .resolves(3, Approved, AllVoted)
            .expiry(Approved),
        row("una first reject", Unanimous, "RAA")
            .resolves(1, Rejected, Early)
            .expiry(Rejected),
        row("una later reject", Unanimous, "AR-")
            .resolves(2, Rejected, Early)
            .expiry(Rejected),
        row("una abstain does not block", Unanimous, "AAX")
            .resolves(3, Approved, AllVoted)
            .expiry(Approved),
        row("una missing vote", Unanimous, "AA-"),
        row("una all abstain", Unanimous, "XXX").resolves(3, NoConsensus, AllVoted),
        row("una no votes", Unanimous, "---"),
        // weighted: majority by weight.
        row("wei lead outweighs juniors", Weighted, "RRA")
            .names(&["J1", "J2", "Lead"])
            .weights(&[("Lead", 3.0)])
            .resolves(3, Approved, AllVoted)
            .expiry(Approved),
        row("wei lead first", Weighted, "A--")
            .names(&["Lead", "J1", "J2"])
            .weights(&[("Lead", 3.0)])
            .resolves(1, Approved, Early)
            .expiry(Approved),
        row("wei juniors cannot outvote lead", Weighted, "-RR")
            .names(&["Lead", "J1", "J2"])
            .weights(&[("Lead", 3.0)]),
        row("wei fractional tie", Weighted, "AAR")
            .weights(&[("P0", 0.5), ("P1", 0.5)])
            .resolves(3, NoConsensus, AllVoted),
        row("wei half weight silent", Weighted, "AA-").weights(&[("P0", 0.5), ("P1", 0.5)]),
        row("wei abstain of heavy voter", Weighted, "XAR")
            .weights(&[("P0", 2.0)])
            .resolves(3, NoConsensus, AllVoted),
        row("wei equal weights like majority", Weighted, "AAR")
            .resolves(2, Approved, Early)
            .expiry(Approved),
        // quorum(q): q heads must vote (abstain counts), then A vs R.
        row("quo not met", Quorum, "AA---").quorum(3),
        row("quo met by last vote", Quorum, "AAR")
            .quorum(3)
            .resolves(3, Approved, AllVoted)
            .expiry(Approved),
        row("quo met, decided at deadline", Quorum, "AA---")
            .quorum(2)
            .expiry(Approved),
        row("quo early approve", Quorum, "AAAA-")
            .quorum(2)
            .resolves(3, Approved, Early)
            .expiry(Approved),
        row("quo early reject", Quorum, "RRR--")
            .quorum(3)
            .resolves(3, Rejected, Early)
            .expiry(Rejected),
        row("quo abstain counts toward quorum", Quorum, "AXX--")
            .quorum(3)
            .expiry(Approved),
        row("quo default 3 of 4 not met", Quorum, "AR--"),
        row("quo default met, tie", Quorum, "ARX-"),
        row("quo default met, reject", Quorum, "RRA-").expiry(Rejected),
        row("quo all abstain", Quorum, "XXX").resolves(3, NoConsensus, AllVoted),
    ]
}

fn config() -> ConsensusConfig {
    ConsensusConfig::default()
}

fn with_votes(mut p: Proposal, votes: &[(String, VoteValue)]) -> Proposal {
    for (i, (voter, value)) in votes.iter().enumerate() {
        p.votes.push(Vote {
            voter: voter.clone(),
            value: *value,
            reason: None,
            at: NOW + 1 + i as i64,
        });
    }
    p
}

#[test]
fn decision_table() {
    let mut failures = Vec::new();
    for row in table() {
        let mut engine = Engine::with_seed(config(), 7);
        let created = match engine.create(row.request(), "Proposer", NOW) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: create failed: {e}", row.name));
                continue;
            }
        };
        // Moment 1 and 2: after each vote (early) and when everybody voted.
        let mut resolved = None;
        for (k, (voter, value)) in row.cast().into_iter().enumerate() {
            let out = engine.vote(&created.id, &voter, value, None, NOW + 1 + k as i64);
            match out {
                Ok(o) if o.resolved => {
                    let r = o.proposal.result.clone();
                    let r = r.map(|r| (k + 1, r.decision, r.resolved_by));
                    assert_eq!(
                        o.proposal.status,
                        r.map_or(ProposalStatus::Pending, |r| r.1.status())
                    );
                    resolved = r;
                    break;
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{}: vote {k} failed: {e}", row.name)),
            }
        }
        if resolved != row.resolves {
            failures.push(format!(
                "{}: closed {resolved:?}, expected {:?}",
                row.name, row.resolves
            ));
        }
        // Moment 3: the deadline, with every vote of the pattern cast.
        let full = with_votes(created.clone(), &row.cast());
        let at_expiry = decide(&full, NOW + TIMEOUT as i64, true);
        let got = at_expiry.as_ref().map(|r| (r.decision, r.resolved_by));
        if got != Some((row.expiry, ResolvedBy::Expiry)) {
            failures.push(format!(
                "{}: at expiry {got:?}, expected {:?}",
                row.name, row.expiry
            ));
        }
        if let Some((_, early, _)) = row.resolves {
            if early != row.expiry {
                failures.push(format!(
                    "{}: early {early:?} but expiry {:?}",
                    row.name, row.expiry
                ));
            }
        } else {
            // Nothing closed it: the engine's expiry must close it with the same rule.
            let expired = engine.expire_due(NOW + TIMEOUT as i64);
            let got = expired
                .first()
                .and_then(|p| p.result.as_ref())
                .map(|r| r.decision);
            if got != Some(row.expiry) {
                failures.push(format!("{}: expire_due gave {got:?}", row.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_participants_are_counted_once() {
    let mut engine = Engine::with_seed(config(), 1);
    let p = engine
        .create(CreateProposal::new("dup", ["A", "a", "B", " A "]), "X", NOW)
        .expect("valid proposal");
    assert_eq!(p.participants, vec!["A", "B"]);
    // With A counted twice, one approve would be 2 of 3 and close it early.
    let o = engine
        .vote(&p.id, "a", VoteValue::Approve, None, NOW + 1)
        .expect("vote");
    assert!(!o.resolved);
    let o = engine
        .vote(&p.id, "B", VoteValue::Approve, None, NOW + 2)
        .expect("vote");
    assert_eq!(
        o.proposal
            .result
            .map(|r| (r.decision, r.resolved_by, r.total_weight)),
        Some((Approved, AllVoted, 2.0))
    );
}

#[test]
fn stored_duplicates_are_tallied_once() {
    let mut engine = Engine::with_seed(config(), 1);
    let mut p = engine
        .create(CreateProposal::new("dup", ["A", "B"]), "X", NOW)
        .expect("valid proposal");
    p.participants = vec!["A".into(), "a".into(), "B".into()];
    let p = with_votes(p, &[("A".into(), VoteValue::Approve)]);
    let t = relay_consensus::Tally::of(&p);
    assert_eq!(
        (t.participants, t.total_weight, t.approve_weight),
        (2, 2.0, 1.0)
    );
    assert_eq!(decide(&p, NOW, false), None);
}

#[test]
fn vote_change_re_evaluates() {
    let mut engine = Engine::with_seed(config(), 1);
    let p = engine
        .create(CreateProposal::new("change", ["A", "B", "C"]), "X", NOW)
        .expect("valid proposal");
    engine
        .vote(&p.id, "A", VoteValue::Reject, None, NOW + 1)
        .expect("vote");
    let o = engine
        .vote(&p.id, "A", VoteValue::Approve, None, NOW + 2)
        .expect("vote");
    assert_eq!(o.previous, Some(VoteValue::Reject));
    assert_eq!(o.proposal.votes.len(), 1);
    let o = engine
        .vote(&p.id, "B", VoteValue::Approve, None, NOW + 3)
        .expect("vote");
    assert_eq!(o.proposal.status, ProposalStatus::Approved);
}
