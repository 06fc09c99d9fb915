//! The engine: holds proposals, applies commands and closes proposals.

use std::collections::{BTreeMap, HashMap};

use crate::error::ConsensusError;
use crate::render::format_utc;
use crate::request::{clean_reason, Command, CreateProposal};
use crate::rules::{decide, final_decision, result_for, Tally};
use crate::types::{
    default_quorum, valid_threshold, ConsensusConfig, ConsensusStats, ConsensusType, Decision,
    Proposal, ProposalStatus, ResolvedBy, Vote, VoteValue, CONSENSUS_AGENT,
};

/// What a vote did.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteOutcome {
    /// The proposal after the vote (closed when `resolved`).
    pub proposal: Proposal,
    /// True when this vote closed the proposal; send the result then.
    pub resolved: bool,
    /// The voter's earlier vote, when this one replaced it.
    pub previous: Option<VoteValue>,
}

/// What an accepted command did ([`Engine::execute`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A proposal was opened; send it to its participants.
    Created(Proposal),
    /// A vote was recorded.
    Voted(VoteOutcome),
}

impl Outcome {
    /// The proposal the command acted on, as it is now.
    pub fn proposal(&self) -> &Proposal {
        match self {
            Outcome::Created(p) => p,
            Outcome::Voted(v) => &v.proposal,
        }
    }

    /// The proposal when the command closed it (its result must be sent).
    pub fn closed(&self) -> Option<&Proposal> {
        match self {
            Outcome::Created(_) => None,
            Outcome::Voted(v) => v.resolved.then_some(&v.proposal),
        }
    }
}

/// Selects proposals for [`Engine::list`]; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProposalFilter {
    /// Only proposals in this state.
    pub status: Option<ProposalStatus>,
    /// Only proposals this agent proposed or takes part in (case-insensitive).
    pub agent: Option<String>,
    /// Only proposals of this type.
    pub ctype: Option<ConsensusType>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

/// What [`Engine::restore`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreReport {
    /// Proposals loaded (pending or closed).
    pub restored: usize,
    /// Of those, how many are still pending.
    pub pending: usize,
    /// Records that were not loaded, with the reason
    /// ([`ConsensusError::CorruptProposal`]).
    pub skipped: Vec<ConsensusError>,
}

/// The consensus engine. Pure state: no I/O, no timers; time comes in as
/// `now` (epoch ms). The daemon persists every proposal returned by a
/// mutating call, sends the messages, and calls [`Engine::expire_due`] at
/// [`Engine::next_expiry`].
#[derive(Debug, Clone)]
pub struct Engine {
    config: ConsensusConfig,
    proposals: HashMap<String, Proposal>,
    rng: fastrand::Rng,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            config: ConsensusConfig::default(),
            proposals: HashMap::new(),
            rng: fastrand::Rng::new(),
        }
    }
}

impl Engine {
    /// An empty engine with this configuration, used as given (see
    /// [`Engine::try_new`] to check it first).
    pub fn new(config: ConsensusConfig) -> Engine {
        Engine {
            config,
            ..Engine::default()
        }
    }

    /// An empty engine, after checking the configuration
    /// ([`ConsensusConfig::validate`]).
    pub fn try_new(config: ConsensusConfig) -> Result<Engine, ConsensusError> {
        config.validate()?;
        Ok(Engine::new(config))
    }

    /// Like [`Engine::new`] with a fixed seed for proposal ids (tests).
    pub fn with_seed(config: ConsensusConfig, seed: u64) -> Engine {
        let mut engine = Engine::new(config);
        engine.rng = fastrand::Rng::with_seed(seed);
        engine
    }

    /// The configuration in use.
    pub fn config(&self) -> &ConsensusConfig {
        &self.config
    }

    /// Number of proposals held (pending and closed).
    pub fn len(&self) -> usize {
        self.proposals.len()
    }

    /// True when no proposal is held.
    pub fn is_empty(&self) -> bool {
        self.proposals.is_empty()
    }

    /// Apply a parsed command sent by `from`.
    pub fn execute(
        &mut self,
        command: Command,
        from: &str,
        now: i64,
    ) -> Result<Outcome, ConsensusError> {
        match command {
            Command::Propose(req) => self.create(req, from, now).map(Outcome::Created),
            Command::Vote { id, value, reason } => {
                self.vote(&id, from, value, reason, now).map(Outcome::Voted)
            }
        }
    }

    /// Open a proposal. Checks, in order: title, participants (names,
    /// duplicates removed case-insensitively keeping the first spelling,
    /// count), weights, threshold, quorum, timeout (capped at
    /// `max_timeout_ms`).
    pub fn create(
        &mut self,
        req: CreateProposal,
        proposer: &str,
        now: i64,
    ) -> Result<Proposal, ConsensusError> {
        let title = req.title.split_whitespace().collect::<Vec<_>>().join(" ");
        if title.is_empty() {
            return Err(ConsensusError::EmptyTitle);
        }
        let ctype = req.ctype.unwrap_or(ConsensusType::Majority);
        let participants = clean_participants(&req.participants)?;
        let n = participants.len();
        if n == 0 {
            return Err(ConsensusError::NoParticipants);
        }
        if n > self.config.max_participants {
            return Err(ConsensusError::TooManyParticipants {
                count: n,
                max: self.config.max_participants,
            });
        }
        let weights = resolve_weights(ctype, &participants, &req.weights)?;
        let threshold = match (ctype, req.threshold) {
            (ConsensusType::Supermajority, t) => {
                let t = t.unwrap_or(self.config.default_threshold);
                if !valid_threshold(t) {
                    return Err(ConsensusError::InvalidThreshold(t));
                }
                Some(t)
            }
            (_, Some(_)) => return Err(ConsensusError::ThresholdNotAllowed(ctype)),
            (_, None) => None,
        };
        let quorum = match (ctype, req.quorum) {
            (ConsensusType::Quorum, q) => {
                let q = q.unwrap_or_else(|| default_quorum(n));
                if q == 0 || q > n {
                    return Err(ConsensusError::InvalidQuorum {
                        quorum: q,
                        participants: n,
                    });
                }
                Some(q)
            }
            (_, Some(_)) => return Err(ConsensusError::QuorumNotAllowed(ctype)),
            (_, None) => None,
        };
        let timeout = match req.timeout_ms {
            Some(0) => return Err(ConsensusError::InvalidTimeout),
            Some(t) => t.min(self.config.max_timeout_ms),
            None => self.config.default_timeout_ms,
        };
        let id = self.new_id(now);
        let proposal = Proposal {
            thread: format!("consensus-{id}"),
            id: id.clone(),
            title,
            description: req.description.as_deref().unwrap_or("").trim().to_string(),
            proposer: proposer.trim().to_string(),
            ctype,
            participants,
            weights,
            threshold,
            quorum,
            created_at: now,
            expires_at: now.saturating_add(i64::try_from(timeout).unwrap_or(i64::MAX)),
            status: ProposalStatus::Pending,
            votes: Vec::new(),
            result: None,
        };
        self.proposals.insert(id, proposal.clone());
        Ok(proposal)
    }

    /// Record `voter`'s vote. Checks, in order: the proposal exists, is
    /// pending, its deadline has not passed (`now < expires_at`), the voter
    /// is a participant, and (when changes are disabled) has not voted yet.
    /// A changed vote replaces the earlier one. The proposal is then
    /// re-evaluated and closed when decided ([`decide`]).
    pub fn vote(
        &mut self,
        id: &str,
        voter: &str,
        value: VoteValue,
        reason: Option<String>,
        now: i64,
    ) -> Result<VoteOutcome, ConsensusError> {
        let allow_change = self.config.allow_vote_change;
        let p = self.pending_mut(id)?;
        if now >= p.expires_at {
            return Err(ConsensusError::VotingClosed {
                id: p.id.clone(),
                closed_at: format_utc(p.expires_at),
            });
        }
        let Some(name) = p.participant(voter).map(str::to_string) else {
            return Err(ConsensusError::NotParticipant {
                voter: voter.trim().to_string(),
                id: p.id.clone(),
            });
        };
        let previous = p.vote_of(&name).map(|v| v.value);
        if let (Some(previous), false) = (previous, allow_change) {
            return Err(ConsensusError::VoteChangeNotAllowed {
                id: p.id.clone(),
                previous,
            });
        }
        p.votes.retain(|v| !v.voter.eq_ignore_ascii_case(&name));
        p.votes.push(Vote {
            voter: name,
            value,
            reason: clean_reason(reason.as_deref()),
            at: now,
        });
        let resolved = match decide(p, now, false) {
            Some(result) => {
                close(p, result);
                true
            }
            None => false,
        };
        Ok(VoteOutcome {
            proposal: p.clone(),
            resolved,
            previous,
        })
    }

    /// Withdraw a pending proposal. Only its proposer may (case-insensitive).
    /// The status becomes `cancelled` and the result records the tally at
    /// that moment with decision `no_consensus`.
    pub fn cancel(&mut self, id: &str, by: &str, now: i64) -> Result<Proposal, ConsensusError> {
        let p = self.lookup_mut(id)?;
        if !p.proposer.eq_ignore_ascii_case(by.trim()) {
            return Err(ConsensusError::NotProposer {
                id: p.id.clone(),
                by: by.trim().to_string(),
                proposer: p.proposer.clone(),
            });
        }
        let p = self.pending_mut(id)?;
        let tally = Tally::of(p);
        let result = result_for(p, &tally, Decision::NoConsensus, ResolvedBy::Cancelled, now);
        p.result = Some(result);
        p.status = ProposalStatus::Cancelled;
        Ok(p.clone())
    }

    /// Close a pending proposal now with the deadline rule
    /// ([`ResolvedBy::Forced`]), for operators.
    pub fn force_resolve(&mut self, id: &str, now: i64) -> Result<Proposal, ConsensusError> {
        let p = self.pending_mut(id)?;
        let tally = Tally::of(p);
        let result = result_for(p, &tally, final_decision(p), ResolvedBy::Forced, now);
        close(p, result);
        Ok(p.clone())
    }

    /// Close every pending proposal whose deadline has passed
    /// (`expires_at <= now`) with the deadline rule. Returned in deadline
    /// order (then creation time, then id); send each one's result.
    pub fn expire_due(&mut self, now: i64) -> Vec<Proposal> {
        let mut due: Vec<(i64, i64, String)> = self
            .proposals
            .values()
            .filter(|p| p.is_pending() && p.expires_at <= now)
            .map(|p| (p.expires_at, p.created_at, p.id.clone()))
            .collect();
        due.sort();
        let mut out = Vec::with_capacity(due.len());
        for (_, _, id) in due {
            if let Some(p) = self.proposals.get_mut(&id) {
                if let Some(result) = decide(p, now, true) {
                    close(p, result);
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// The earliest deadline among pending proposals: when to call
    /// [`Engine::expire_due`] next.
    pub fn next_expiry(&self) -> Option<i64> {
        self.proposals
            .values()
            .filter(|p| p.is_pending())
            .map(|p| p.expires_at)
            .min()
    }

    /// The proposal with this id (exact, else case-insensitive).
    pub fn get(&self, id: &str) -> Option<&Proposal> {
        self.key_of(id).and_then(|k| self.proposals.get(&k))
    }

    /// Proposals matching `filter`, newest first.
    pub fn list(&self, filter: &ProposalFilter) -> Vec<&Proposal> {
        let mut out: Vec<&Proposal> = self
            .proposals
            .values()
            .filter(|p| filter.status.is_none_or(|s| p.status == s))
            .filter(|p| filter.ctype.is_none_or(|t| p.ctype == t))
            .filter(|p| {
                filter.agent.as_deref().is_none_or(|a| {
                    p.proposer.eq_ignore_ascii_case(a.trim()) || p.is_participant(a)
                })
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        out
    }

    /// Pending proposals on which `agent` is a participant and has not voted
    /// yet, earliest deadline first.
    pub fn pending_for(&self, agent: &str) -> Vec<&Proposal> {
        let mut out: Vec<&Proposal> = self
            .proposals
            .values()
            .filter(|p| p.is_pending() && p.is_participant(agent) && p.vote_of(agent).is_none())
            .collect();
        out.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Counts by status and type.
    pub fn stats(&self) -> ConsensusStats {
        let mut s = ConsensusStats {
            by_type: ConsensusType::ALL.into_iter().map(|t| (t, 0)).collect(),
            ..ConsensusStats::default()
        };
        let mut participation = 0.0;
        let mut closed = 0usize;
        for p in self.proposals.values() {
            s.total += 1;
            *s.by_type.entry(p.ctype).or_insert(0) += 1;
            match p.status {
                ProposalStatus::Pending => s.pending += 1,
                ProposalStatus::Approved => s.approved += 1,
                ProposalStatus::Rejected => s.rejected += 1,
                ProposalStatus::NoConsensus => s.no_consensus += 1,
                ProposalStatus::Cancelled => s.cancelled += 1,
            }
            if let (Some(r), false) = (&p.result, p.participants.is_empty()) {
                closed += 1;
                participation += r.voted as f64 / p.participants.len() as f64;
            }
        }
        if closed > 0 {
            s.avg_participation = participation / closed as f64;
        }
        s
    }

    /// Load stored proposals (pending and closed), replacing any held with
    /// the same id. Inconsistent records are skipped and reported. Call
    /// [`Engine::expire_due`] afterwards for deadlines that passed while the
    /// daemon was down.
    pub fn restore(&mut self, proposals: Vec<Proposal>) -> RestoreReport {
        let mut report = RestoreReport::default();
        for p in proposals {
            match check_stored(&p) {
                Ok(()) => {
                    report.restored += 1;
                    if p.is_pending() {
                        report.pending += 1;
                    }
                    self.proposals.insert(p.id.clone(), p);
                }
                Err(e) => report.skipped.push(e),
            }
        }
        report
    }

    /// Forget closed proposals that closed before `closed_before` (epoch ms);
    /// returns their ids so the daemon can delete the stored records.
    pub fn prune(&mut self, closed_before: i64) -> Vec<String> {
        let mut gone: Vec<String> = self
            .proposals
            .values()
            .filter(|p| !p.is_pending())
            .filter(|p| p.result.as_ref().map_or(p.expires_at, |r| r.resolved_at) < closed_before)
            .map(|p| p.id.clone())
            .collect();
        gone.sort();
        for id in &gone {
            self.proposals.remove(id);
        }
        gone
    }

    fn new_id(&mut self, now: i64) -> String {
        let time = u64::try_from(now).unwrap_or(0) & 0xfff_ffff_ffff;
        loop {
            let id = format!("prop_{time:011x}{:09x}", self.rng.u64(..) & 0xf_ffff_ffff);
            if !self.proposals.contains_key(&id) {
                return id;
            }
        }
    }

    fn key_of(&self, id: &str) -> Option<String> {
        let id = id.trim();
        if self.proposals.contains_key(id) {
            return Some(id.to_string());
        }
        let lower = id.to_ascii_lowercase();
        if self.proposals.contains_key(&lower) {
            return Some(lower);
        }
        self.proposals
            .keys()
            .find(|k| k.eq_ignore_ascii_case(id))
            .cloned()
    }

    fn lookup_mut(&mut self, id: &str) -> Result<&mut Proposal, ConsensusError> {
        let key = self
            .key_of(id)
            .ok_or_else(|| ConsensusError::UnknownProposal(id.trim().to_string()))?;
        self.proposals
            .get_mut(&key)
            .ok_or_else(|| ConsensusError::UnknownProposal(id.trim().to_string()))
    }

    fn pending_mut(&mut self, id: &str) -> Result<&mut Proposal, ConsensusError> {
        let p = self.lookup_mut(id)?;
        if !p.is_pending() {
            return Err(ConsensusError::AlreadyResolved {
                id: p.id.clone(),
                status: p.status,
            });
        }
        Ok(p)
    }
}

fn close(p: &mut Proposal, result: crate::types::ConsensusResult) {
    p.status = result.decision.status();
    p.result = Some(result);
}

/// Trim names, reject unusable ones, drop case-insensitive duplicates
/// (keeping the first spelling).
fn clean_participants(raw: &[String]) -> Result<Vec<String>, ConsensusError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let name = name.trim();
        let invalid = |reason| ConsensusError::InvalidParticipant {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("names must not be empty"));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "names cannot contain spaces; separate participants with commas",
            ));
        }
        if name.contains(',') {
            return Err(invalid("names cannot contain commas"));
        }
        if name.eq_ignore_ascii_case(CONSENSUS_AGENT) {
            return Err(invalid("_consensus counts the votes and cannot vote"));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// The full weight map of a weighted proposal (every participant, default
/// 1); empty for other types, which must not give weights.
fn resolve_weights(
    ctype: ConsensusType,
    participants: &[String],
    given: &BTreeMap<String, f64>,
) -> Result<BTreeMap<String, f64>, ConsensusError> {
    if ctype != ConsensusType::Weighted {
        if given.is_empty() {
            return Ok(BTreeMap::new());
        }
        return Err(ConsensusError::WeightsNotAllowed(ctype));
    }
    let mut out: BTreeMap<String, f64> = participants.iter().map(|p| (p.clone(), 1.0)).collect();
    for (name, &weight) in given {
        let Some(p) = participants
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name.trim()))
        else {
            return Err(ConsensusError::WeightForNonParticipant(
                name.trim().to_string(),
            ));
        };
        if !(weight.is_finite() && weight > 0.0) {
            return Err(ConsensusError::InvalidWeight {
                participant: p.clone(),
                weight,
            });
        }
        out.insert(p.clone(), weight);
    }
    Ok(out)
}

/// Invariants a stored proposal must satisfy to be decided correctly.
fn check_stored(p: &Proposal) -> Result<(), ConsensusError> {
    let bad = |reason: String| {
        Err(ConsensusError::CorruptProposal {
            id: p.id.clone(),
            reason,
        })
    };
    if p.id.trim().is_empty() {
        return bad("empty id".into());
    }
    if p.participants.is_empty() {
        return bad("no participants".into());
    }
    for (i, name) in p.participants.iter().enumerate() {
        if p.participants[..i]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(name))
        {
            return bad(format!("participant {name} is listed twice"));
        }
    }
    if let Some((name, w)) = p
        .weights
        .iter()
        .find(|(_, w)| !(w.is_finite() && **w > 0.0))
    {
        return bad(format!("weight of {name} is {w}"));
    }
    if let Some(t) = p.threshold.filter(|t| !valid_threshold(*t)) {
        return bad(format!("threshold {t} is outside (0.5, 1]"));
    }
    if let Some(q) = p.quorum.filter(|q| *q == 0 || *q > p.participants.len()) {
        return bad(format!(
            "quorum {q} is outside 1..={}",
            p.participants.len()
        ));
    }
    for (i, v) in p.votes.iter().enumerate() {
        if !p.is_participant(&v.voter) {
            return bad(format!("vote by non-participant {}", v.voter));
        }
        if p.votes[..i]
            .iter()
            .any(|o| o.voter.eq_ignore_ascii_case(&v.voter))
        {
            return bad(format!("two votes by {}", v.voter));
        }
    }
    if p.is_pending() && p.result.is_some() {
        return bad("pending but has a result".into());
    }
    Ok(())
}
