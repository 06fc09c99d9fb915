//! The decision rules: tallying votes and deciding proposals.
//!
//! Everything here is a pure function of a [`Proposal`]'s participants,
//! weights, parameters and votes. The rules themselves are tabulated in the
//! crate documentation and in `DECISIONS.md`; the comments below refer to the
//! same symbols: `T` total weight, `A`/`R`/`Ab` weight of approve, reject and
//! abstain votes, `U` weight of the participants who have not voted.

use serde::{Deserialize, Serialize};

use crate::types::{ConsensusResult, ConsensusType, Decision, Proposal, ResolvedBy, VoteValue};

/// Relative tolerance for weight comparisons, so that thresholds such as 2/3
/// compare exactly as they would in real arithmetic.
const TOLERANCE: f64 = 1e-9;

/// The current count of a proposal, each participant counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// T: weight of all participants.
    pub total_weight: f64,
    /// A: weight of approve votes.
    pub approve_weight: f64,
    /// R: weight of reject votes.
    pub reject_weight: f64,
    /// Ab: weight of abstain votes.
    pub abstain_weight: f64,
    /// U: weight of participants who have not voted.
    pub undecided_weight: f64,
    /// Number of participants.
    pub participants: usize,
    /// Participants who voted (any value).
    pub voted: usize,
    /// Participants who voted approve.
    pub approve: usize,
    /// Participants who voted reject.
    pub reject: usize,
    /// Participants who voted abstain.
    pub abstain: usize,
}

impl Tally {
    /// Count the current votes of `p`. Participants listed twice (possible
    /// only in hand-edited stored data) and votes from non-participants are
    /// ignored; a participant's latest vote counts.
    pub fn of(p: &Proposal) -> Tally {
        let mut t = Tally::default();
        let mut seen: Vec<&str> = Vec::with_capacity(p.participants.len());
        for name in &p.participants {
            if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                continue;
            }
            seen.push(name);
            let w = p.weight_of(name);
            t.participants += 1;
            t.total_weight += w;
            match p.vote_of(name).map(|v| v.value) {
                None => t.undecided_weight += w,
                Some(VoteValue::Approve) => {
                    t.voted += 1;
                    t.approve += 1;
                    t.approve_weight += w;
                }
                Some(VoteValue::Reject) => {
                    t.voted += 1;
                    t.reject += 1;
                    t.reject_weight += w;
                }
                Some(VoteValue::Abstain) => {
                    t.voted += 1;
                    t.abstain += 1;
                    t.abstain_weight += w;
                }
            }
        }
        t
    }

    /// True when every participant has voted.
    pub fn all_voted(&self) -> bool {
        self.voted == self.participants
    }

    fn tol(&self) -> f64 {
        TOLERANCE * self.total_weight.max(1.0)
    }

    /// `a > b`, beyond rounding noise.
    fn gt(&self, a: f64, b: f64) -> bool {
        a > b + self.tol()
    }

    /// `a >= b`, allowing rounding noise. Exactly `!gt(b, a)`.
    fn ge(&self, a: f64, b: f64) -> bool {
        !self.gt(b, a)
    }
}

/// Parameters of the rule, taken from the proposal.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Majority,
    Supermajority(f64),
    Unanimous,
    Quorum(usize),
}

impl Rule {
    fn of(p: &Proposal) -> Rule {
        match p.ctype {
            ConsensusType::Majority | ConsensusType::Weighted => Rule::Majority,
            ConsensusType::Supermajority => Rule::Supermajority(p.effective_threshold()),
            ConsensusType::Unanimous => Rule::Unanimous,
            ConsensusType::Quorum => Rule::Quorum(p.effective_quorum()),
        }
    }
}

/// The deadline rule: the decision when voting stops with the current votes,
/// non-voters staying silent. Also used when everybody has voted.
pub fn final_decision(p: &Proposal) -> Decision {
    let t = Tally::of(p);
    final_rule(Rule::of(p), &t)
}

fn final_rule(rule: Rule, t: &Tally) -> Decision {
    let (a, r, u) = (t.approve_weight, t.reject_weight, t.undecided_weight);
    match rule {
        // Non-voters stay in the base: approve needs A > (T - Ab) / 2.
        Rule::Majority => {
            if t.gt(a, r + u) {
                Decision::Approved
            } else if t.gt(r, a + u) {
                Decision::Rejected
            } else {
                Decision::NoConsensus
            }
        }
        Rule::Supermajority(th) => {
            let base = a + r + u;
            if t.gt(a, 0.0) && t.ge(a, th * base) {
                Decision::Approved
            } else if t.gt(th * base, a + u) {
                Decision::Rejected
            } else {
                Decision::NoConsensus
            }
        }
        Rule::Unanimous => {
            if t.reject > 0 {
                Decision::Rejected
            } else if t.all_voted() && t.approve > 0 {
                Decision::Approved
            } else {
                Decision::NoConsensus
            }
        }
        Rule::Quorum(q) => {
            if t.voted < q {
                Decision::NoConsensus
            } else if t.gt(a, r) {
                Decision::Approved
            } else if t.gt(r, a) {
                Decision::Rejected
            } else {
                Decision::NoConsensus
            }
        }
    }
}

/// The early rule: `Some(decision)` only when the deadline rule gives that
/// decision for every way the remaining participants could still vote
/// (approve, reject, abstain or stay silent).
fn early_rule(rule: Rule, t: &Tally) -> Option<Decision> {
    let (a, r, u) = (t.approve_weight, t.reject_weight, t.undecided_weight);
    match rule {
        // Approve even if every undecided rejects; reject even if every
        // undecided approves.
        Rule::Majority => {
            if t.gt(a, r + u) {
                Some(Decision::Approved)
            } else if t.gt(r, a + u) {
                Some(Decision::Rejected)
            } else {
                None
            }
        }
        Rule::Supermajority(th) => {
            let base = a + r + u;
            if t.gt(a, 0.0) && t.ge(a, th * base) {
                Some(Decision::Approved)
            } else if t.gt(th * base, a + u) {
                Some(Decision::Rejected)
            } else {
                None
            }
        }
        Rule::Unanimous => (t.reject > 0).then_some(Decision::Rejected),
        Rule::Quorum(q) => {
            if t.voted < q {
                None
            } else if t.gt(a, r + u) {
                Some(Decision::Approved)
            } else if t.gt(r, a + u) {
                Some(Decision::Rejected)
            } else {
                None
            }
        }
    }
}

/// Decide `p` from its votes alone (its status is not looked at).
///
/// * `at_expiry == true`: always `Some`, by the deadline rule
///   ([`ResolvedBy::Expiry`]).
/// * otherwise: `Some` with [`ResolvedBy::AllVoted`] when every participant
///   has voted (deadline rule), `Some` with [`ResolvedBy::Early`] when the
///   outcome can no longer change, else `None`.
///
/// `now` becomes [`ConsensusResult::resolved_at`].
pub fn decide(p: &Proposal, now: i64, at_expiry: bool) -> Option<ConsensusResult> {
    let t = Tally::of(p);
    let rule = Rule::of(p);
    let (decision, by) = if at_expiry {
        (final_rule(rule, &t), ResolvedBy::Expiry)
    } else if t.all_voted() {
        (final_rule(rule, &t), ResolvedBy::AllVoted)
    } else {
        (early_rule(rule, &t)?, ResolvedBy::Early)
    };
    Some(result_for(p, &t, decision, by, now))
}

/// Build the result record for `decision`, with a summary saying why.
pub(crate) fn result_for(
    p: &Proposal,
    t: &Tally,
    decision: Decision,
    by: ResolvedBy,
    now: i64,
) -> ConsensusResult {
    ConsensusResult {
        decision,
        approve_weight: t.approve_weight,
        reject_weight: t.reject_weight,
        abstain_weight: t.abstain_weight,
        total_weight: t.total_weight,
        voted: t.voted,
        non_voters: p.non_voters(),
        resolved_at: now,
        resolved_by: by,
        summary: summary(p, t, decision, by),
    }
}

fn summary(p: &Proposal, t: &Tally, decision: Decision, by: ResolvedBy) -> String {
    let when = match by {
        ResolvedBy::Early => {
            "decided before everyone voted: the remaining votes could not change it"
        }
        ResolvedBy::AllVoted => "every participant voted",
        ResolvedBy::Expiry => "the deadline passed",
        ResolvedBy::Forced => "closed on request with the deadline rule",
        ResolvedBy::Cancelled => return format!("cancelled by {}", p.proposer),
    };
    let (a, r, u) = (t.approve_weight, t.reject_weight, t.undecided_weight);
    let why = match (p.ctype, decision) {
        (ConsensusType::Majority | ConsensusType::Weighted, Decision::Approved) => format!(
            "approve {} is more than half of the non-abstaining {}",
            num(a),
            weight_word(p.ctype, a + r + u)
        ),
        (ConsensusType::Majority | ConsensusType::Weighted, Decision::Rejected) => format!(
            "reject {} is more than half of the non-abstaining {}",
            num(r),
            weight_word(p.ctype, a + r + u)
        ),
        (ConsensusType::Majority | ConsensusType::Weighted, Decision::NoConsensus) => format!(
            "neither approve ({}) nor reject ({}) is more than half of the non-abstaining {}",
            num(a),
            num(r),
            weight_word(p.ctype, a + r + u)
        ),
        (ConsensusType::Supermajority, d) => {
            let pct = percent(p.effective_threshold());
            match d {
                Decision::Approved => format!(
                    "approve {} reaches {pct} of the non-abstaining {}",
                    num(a),
                    num(a + r + u)
                ),
                Decision::Rejected => format!(
                    "approve cannot reach {pct} of the non-abstaining {} (reject {})",
                    num(a + r + u),
                    num(r)
                ),
                Decision::NoConsensus if a + r + u <= 0.0 => {
                    "every participant abstained".to_string()
                }
                Decision::NoConsensus => format!(
                    "approve {} did not reach {pct} of the non-abstaining {}, and {} did not vote",
                    num(a),
                    num(a + r + u),
                    t.participants - t.voted
                ),
            }
        }
        (ConsensusType::Unanimous, Decision::Approved) => {
            "nobody rejected and every participant voted".to_string()
        }
        (ConsensusType::Unanimous, Decision::Rejected) => {
            format!("{} participant(s) rejected", t.reject)
        }
        (ConsensusType::Unanimous, Decision::NoConsensus) if t.all_voted() => {
            "every participant abstained".to_string()
        }
        (ConsensusType::Unanimous, Decision::NoConsensus) => format!(
            "{} of {} participants did not vote",
            t.participants - t.voted,
            t.participants
        ),
        (ConsensusType::Quorum, d) => {
            let q = p.effective_quorum();
            if t.voted < q {
                format!("quorum not met: {} of {q} required voters", t.voted)
            } else {
                let verdict = match d {
                    Decision::Approved => "more approve than reject",
                    Decision::Rejected => "more reject than approve",
                    Decision::NoConsensus => "approve and reject are tied",
                };
                format!(
                    "quorum met ({} of {q} required voters), {verdict} ({} to {})",
                    t.voted,
                    num(a),
                    num(r)
                )
            }
        }
    };
    format!("{} ({when})", capitalise(&why))
}

fn weight_word(ctype: ConsensusType, base: f64) -> String {
    if ctype == ConsensusType::Weighted {
        format!("weight {}", num(base))
    } else {
        format!("{} participant(s)", num(base))
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Format a weight: integers without decimals, others with up to 3.
pub(crate) fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Format a fraction as a percentage: `0.75` → `75%`, `2/3` → `66.7%`.
pub(crate) fn percent(t: f64) -> String {
    format!("{}%", num((t * 1000.0).round() / 10.0))
}
