//! Message texts: what `_consensus` sends to participants and replies to
//! senders. Plain text, lines joined by `\n`, no trailing newline.

use std::fmt;

use crate::engine::{Outcome, VoteOutcome};
use crate::rules::{num, percent, Tally};
use crate::types::{ConsensusType, Proposal, ProposalStatus, CONSENSUS_AGENT};

/// The proposal as participants receive it from `_consensus`: title, id,
/// proposer, type and its rule in plain words, participants, deadline,
/// description, and how to vote.
pub fn render_proposal(p: &Proposal) -> String {
    let mut out = vec![
        format!("PROPOSAL: {}", p.title),
        format!("ID: {}", p.id),
        format!("From: {}", p.proposer),
        format!("Type: {} ({})", p.ctype, rule_text(p)),
        format!("Participants: {}", participants_text(p)),
        format!(
            "Deadline: {} (voting is open for {})",
            format_utc(p.expires_at),
            format_duration(p.expires_at.saturating_sub(p.created_at))
        ),
    ];
    if !p.description.is_empty() {
        out.push(String::new());
        out.push(p.description.clone());
    }
    out.push(String::new());
    out.push(format!(
        "To vote, send a message to {CONSENSUS_AGENT} (not to {}):",
        p.proposer
    ));
    out.push(format!("  VOTE {} approve|reject|abstain [reason]", p.id));
    out.push(format!(
        "For example: VOTE {} approve looks good to me",
        p.id
    ));
    out.join("\n")
}

/// The result as the proposer and participants receive it. Begins with
/// `CONSENSUS RESULT: APPROVED|REJECTED|NO_CONSENSUS` (or
/// `CONSENSUS STATUS: PENDING` for an open proposal), then id, title, tally,
/// the individual votes and why.
pub fn render_result(p: &Proposal) -> String {
    let t = Tally::of(p);
    let mut out = Vec::new();
    match &p.result {
        Some(r) if !p.is_pending() => {
            out.push(format!("CONSENSUS RESULT: {}", r.decision.as_upper()));
        }
        _ => out.push("CONSENSUS STATUS: PENDING".to_string()),
    }
    out.push(format!("Proposal: {}", p.title));
    out.push(format!("ID: {}", p.id));
    out.push(format!("Type: {}", p.ctype));
    out.push(tally_text(p, &t));
    for v in &p.votes {
        let reason = v
            .reason
            .as_deref()
            .map(|r| format!(": {}", r.replace('\n', " ")))
            .unwrap_or_default();
        out.push(format!("  {} {}{reason}", v.voter, v.value));
    }
    let non_voters = p.non_voters();
    if !non_voters.is_empty() {
        out.push(format!("Non-voters: {}", non_voters.join(", ")));
    }
    match (&p.result, p.status) {
        (Some(r), ProposalStatus::Cancelled) => {
            out.push(format!(
                "Cancelled by {} at {}.",
                p.proposer,
                format_utc(r.resolved_at)
            ));
        }
        (Some(r), _) if !p.is_pending() => {
            out.push(format!("Why: {}.", r.summary));
            out.push(format!("Closed: {}", format_utc(r.resolved_at)));
        }
        _ => out.push(format!("Deadline: {}", format_utc(p.expires_at))),
    }
    out.join("\n")
}

/// Something an accepted command produced, described to its sender by
/// [`render_accepted`].
pub trait Accepted {
    /// The reply text.
    fn accepted_text(&self) -> String;
}

/// The reply to the agent whose command was accepted: for a [`Proposal`]
/// (just created, cancelled, or closed on request), a [`VoteOutcome`] or
/// an [`Outcome`]. Begins with `ACCEPTED:`.
pub fn render_accepted<T: Accepted + ?Sized>(what: &T) -> String {
    what.accepted_text()
}

impl Accepted for Proposal {
    fn accepted_text(&self) -> String {
        let p = self;
        match (&p.result, p.status) {
            (_, ProposalStatus::Pending) => {
                let mut out = vec![
                    format!("ACCEPTED: proposal {} opened: {}", p.id, p.title),
                    format!("Sent to: {}", p.participants.join(", ")),
                    format!("Type: {} ({})", p.ctype, rule_text(p)),
                    format!("Deadline: {}", format_utc(p.expires_at)),
                    "The result will be sent to you and every participant.".to_string(),
                ];
                if p.is_participant(&p.proposer) {
                    out.push(format!(
                        "You are a participant too: VOTE {} approve|reject|abstain [reason]",
                        p.id
                    ));
                }
                out.join("\n")
            }
            (_, ProposalStatus::Cancelled) => format!(
                "ACCEPTED: proposal {} ({}) is cancelled; the participants are told.",
                p.id, p.title
            ),
            (Some(r), _) => format!(
                "ACCEPTED: proposal {} ({}) is closed: {}. The result is being sent to every \
                 participant.",
                p.id,
                p.title,
                r.decision.as_upper()
            ),
            (None, status) => format!("ACCEPTED: proposal {} ({}) is {status}.", p.id, p.title),
        }
    }
}

impl Accepted for VoteOutcome {
    fn accepted_text(&self) -> String {
        let p = &self.proposal;
        let value = p
            .votes
            .last()
            .map_or_else(String::new, |vote| vote.value.to_string());
        let mut first = format!(
            "ACCEPTED: your vote {value} on proposal {} ({}) is recorded",
            p.id, p.title
        );
        if let Some(previous) = self.previous {
            first.push_str(&format!(", replacing your earlier {previous}"));
        }
        let second = match &p.result {
            Some(r) if self.resolved => format!(
                "This vote decided the proposal: {}. The result is being sent to every \
                 participant.",
                r.decision.as_upper()
            ),
            _ => format!(
                "Waiting for {} more participant(s); voting closes {}.",
                p.non_voters().len(),
                format_utc(p.expires_at)
            ),
        };
        format!("{first}\n{second}")
    }
}

impl Accepted for Outcome {
    fn accepted_text(&self) -> String {
        match self {
            Outcome::Created(p) => p.accepted_text(),
            Outcome::Voted(v) => v.accepted_text(),
        }
    }
}

/// The reply to the agent whose command failed: `ERROR: <message>`.
pub fn render_error(error: &dyn fmt::Display) -> String {
    format!("ERROR: {error}")
}

/// The decision rule of `p` in plain words.
pub fn rule_text(p: &Proposal) -> String {
    match p.ctype {
        ConsensusType::Majority => "approved when more than half of the participants who do not \
             abstain approve, rejected when more than half of them reject; not voting counts as \
             neither, so otherwise there is no consensus at the deadline"
            .to_string(),
        ConsensusType::Weighted => "approved when approvals carry more than half of the weight of \
             the participants who do not abstain, rejected when rejections do; not voting counts \
             as neither, so otherwise there is no consensus at the deadline"
            .to_string(),
        ConsensusType::Supermajority => format!(
            "approved when at least {} of the participants who do not abstain approve, rejected \
             once that is no longer possible; otherwise no consensus at the deadline",
            percent(p.effective_threshold())
        ),
        ConsensusType::Unanimous => "approved when every participant has voted and nobody \
             rejects (abstaining does not block); one reject rejects it; missing votes at the \
             deadline mean no consensus"
            .to_string(),
        ConsensusType::Quorum => format!(
            "at least {} of the {} participants must vote (abstaining counts toward the quorum); \
             then approved if more approve than reject, rejected if more reject than approve, a \
             tie is no consensus",
            p.effective_quorum(),
            p.participants.len()
        ),
    }
}

fn participants_text(p: &Proposal) -> String {
    if p.ctype != ConsensusType::Weighted {
        return p.participants.join(", ");
    }
    p.participants
        .iter()
        .map(|name| format!("{name} (weight {})", num(p.weight_of(name))))
        .collect::<Vec<_>>()
        .join(", ")
}

fn tally_text(p: &Proposal, t: &Tally) -> String {
    if p.ctype == ConsensusType::Weighted {
        format!(
            "Weight: approve {}, reject {}, abstain {}, not voted {} (total {})",
            num(t.approve_weight),
            num(t.reject_weight),
            num(t.abstain_weight),
            num(t.undecided_weight),
            num(t.total_weight)
        )
    } else {
        format!(
            "Votes: approve {}, reject {}, abstain {}, not voted {} ({} participants)",
            t.approve,
            t.reject,
            t.abstain,
            t.participants - t.voted,
            t.participants
        )
    }
}

/// Epoch milliseconds as ISO-8601 UTC, to the second: `2023-11-14T22:13:20Z`.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration in ms as `45s`, `5m`, `1h 30m`, `2d 3h`.
pub fn format_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        format!("{}ms", ms.max(0))
    } else {
        parts.join(" ")
    }
}
