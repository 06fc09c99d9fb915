//! Records kept by the engine: proposals, votes, results and configuration.
//!
//! JSON form: struct fields are `camelCase`; enum values are lowercase
//! (`majority`, `approve`, `no_consensus`, `all_voted`). Every record
//! round-trips through serde so the daemon can store it and hand it back to
//! [`Engine::restore`](crate::Engine::restore).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ConsensusError;
use crate::parse::ParseError;

/// Name of the pseudo-agent that commands are sent to and that sends
/// proposals and results.
pub const CONSENSUS_AGENT: &str = "_consensus";

/// Default supermajority threshold (two thirds).
pub const DEFAULT_THRESHOLD: f64 = 2.0 / 3.0;

/// How a proposal is decided (see the decision table in the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusType {
    /// More than half of the non-abstaining participants.
    Majority,
    /// At least a threshold fraction of the non-abstaining participants.
    Supermajority,
    /// Everybody votes and nobody rejects.
    Unanimous,
    /// Majority by weight.
    Weighted,
    /// A minimum number of voters, then a majority of the decisive votes.
    Quorum,
}

impl ConsensusType {
    /// Every type, in declaration order.
    pub const ALL: [ConsensusType; 5] = [
        ConsensusType::Majority,
        ConsensusType::Supermajority,
        ConsensusType::Unanimous,
        ConsensusType::Weighted,
        ConsensusType::Quorum,
    ];

    /// Wire and stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusType::Majority => "majority",
            ConsensusType::Supermajority => "supermajority",
            ConsensusType::Unanimous => "unanimous",
            ConsensusType::Weighted => "weighted",
            ConsensusType::Quorum => "quorum",
        }
    }
}

impl fmt::Display for ConsensusType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConsensusType {
    type Err = ParseError;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        ConsensusType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseError::InvalidType(wanted.to_string()))
    }
}

impl<'de> Deserialize<'de> for ConsensusType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A participant's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VoteValue {
    /// In favour.
    Approve,
    /// Against.
    Reject,
    /// Present, but neither for nor against (see the crate docs per type).
    Abstain,
}

impl VoteValue {
    /// Every value, in declaration order.
    pub const ALL: [VoteValue; 3] = [VoteValue::Approve, VoteValue::Reject, VoteValue::Abstain];

    /// Wire and stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VoteValue::Approve => "approve",
            VoteValue::Reject => "reject",
            VoteValue::Abstain => "abstain",
        }
    }
}

impl fmt::Display for VoteValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VoteValue {
    type Err = ConsensusError;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        VoteValue::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ConsensusError::InvalidVote(wanted.to_string()))
    }
}

impl<'de> Deserialize<'de> for VoteValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Life-cycle state of a proposal. Every state but `Pending` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Open for votes.
    Pending,
    /// Decided in favour.
    Approved,
    /// Decided against.
    Rejected,
    /// Closed without a decision (tie, too few votes, quorum not met).
    NoConsensus,
    /// Withdrawn by its proposer.
    Cancelled,
}

impl ProposalStatus {
    /// Every status, in declaration order.
    pub const ALL: [ProposalStatus; 5] = [
        ProposalStatus::Pending,
        ProposalStatus::Approved,
        ProposalStatus::Rejected,
        ProposalStatus::NoConsensus,
        ProposalStatus::Cancelled,
    ];

    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Approved => "approved",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::NoConsensus => "no_consensus",
            ProposalStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ProposalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome recorded in a [`ConsensusResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The proposal passed.
    Approved,
    /// The proposal failed.
    Rejected,
    /// Neither (tie, missing votes, quorum not met, cancelled).
    NoConsensus,
}

impl Decision {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
            Decision::NoConsensus => "no_consensus",
        }
    }

    /// Spelling used in result messages: `APPROVED`, `REJECTED`, `NO_CONSENSUS`.
    pub fn as_upper(self) -> &'static str {
        match self {
            Decision::Approved => "APPROVED",
            Decision::Rejected => "REJECTED",
            Decision::NoConsensus => "NO_CONSENSUS",
        }
    }

    /// The final status a proposal resolved with this decision takes.
    pub fn status(self) -> ProposalStatus {
        match self {
            Decision::Approved => ProposalStatus::Approved,
            Decision::Rejected => ProposalStatus::Rejected,
            Decision::NoConsensus => ProposalStatus::NoConsensus,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What closed a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedBy {
    /// The outcome could no longer change, whatever the remaining participants do.
    Early,
    /// Every participant had voted.
    AllVoted,
    /// The deadline passed.
    Expiry,
    /// The proposer cancelled it.
    Cancelled,
    /// The daemon closed it on request, with the deadline rule.
    Forced,
}

impl ResolvedBy {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedBy::Early => "early",
            ResolvedBy::AllVoted => "all_voted",
            ResolvedBy::Expiry => "expiry",
            ResolvedBy::Cancelled => "cancelled",
            ResolvedBy::Forced => "forced",
        }
    }
}

impl fmt::Display for ResolvedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One participant's vote. A changed vote replaces the earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    /// The participant, spelled as in [`Proposal::participants`].
    pub voter: String,
    /// The vote.
    pub value: VoteValue,
    /// Free-text reason, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was cast (epoch ms).
    pub at: i64,
}

/// The tally and decision of a closed proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusResult {
    /// The outcome.
    pub decision: Decision,
    /// Weight of approve votes (A).
    pub approve_weight: f64,
    /// Weight of reject votes (R).
    pub reject_weight: f64,
    /// Weight of abstain votes (Ab).
    pub abstain_weight: f64,
    /// Weight of all participants (T).
    pub total_weight: f64,
    /// Number of participants who voted (any value).
    pub voted: usize,
    /// Participants who did not vote.
    #[serde(default)]
    pub non_voters: Vec<String>,
    /// When the proposal closed (epoch ms).
    pub resolved_at: i64,
    /// What closed it.
    pub resolved_by: ResolvedBy,
    /// One sentence saying why, in plain words.
    pub summary: String,
}

/// A question put to a fixed set of participants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    /// `prop_` followed by 20 lowercase hex digits (time, then random).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Longer text; may be empty.
    #[serde(default)]
    pub description: String,
    /// Agent that created the proposal (not a participant unless listed).
    pub proposer: String,
    /// Decision rule.
    #[serde(rename = "type", alias = "consensusType")]
    pub ctype: ConsensusType,
    /// Voters, each once (compared case-insensitively, first spelling kept).
    pub participants: Vec<String>,
    /// Weight of every participant; only for [`ConsensusType::Weighted`]
    /// (empty otherwise, where every weight is 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
    /// Approval threshold; only for [`ConsensusType::Supermajority`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Required number of voters; only for [`ConsensusType::Quorum`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<usize>,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Deadline (epoch ms). Votes are accepted while `now < expires_at`.
    pub expires_at: i64,
    /// Current state.
    pub status: ProposalStatus,
    /// Current votes, oldest first, at most one per participant.
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// Set once the proposal is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ConsensusResult>,
    /// Thread used for every message about the proposal: `consensus-<id>`.
    pub thread: String,
}

impl Proposal {
    /// True while the proposal accepts votes (ignoring the deadline).
    pub fn is_pending(&self) -> bool {
        self.status == ProposalStatus::Pending
    }

    /// The participant named `name` (case-insensitive), as spelled in the list.
    pub fn participant(&self, name: &str) -> Option<&str> {
        let name = name.trim();
        self.participants
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    /// True when `name` is a participant (case-insensitive).
    pub fn is_participant(&self, name: &str) -> bool {
        self.participant(name).is_some()
    }

    /// The current vote of `name` (case-insensitive), if any.
    pub fn vote_of(&self, name: &str) -> Option<&Vote> {
        let name = name.trim();
        self.votes
            .iter()
            .rev()
            .find(|v| v.voter.eq_ignore_ascii_case(name))
    }

    /// Weight of a participant's vote: its entry in
    /// [`weights`](Self::weights) for the weighted type, 1 otherwise.
    pub fn weight_of(&self, name: &str) -> f64 {
        if self.ctype != ConsensusType::Weighted {
            return 1.0;
        }
        self.weights
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.trim()))
            .map_or(1.0, |(_, w)| *w)
    }

    /// The supermajority threshold in effect.
    pub fn effective_threshold(&self) -> f64 {
        self.threshold.unwrap_or(DEFAULT_THRESHOLD)
    }

    /// The quorum in effect (heads): the stored one, else a majority of the
    /// participants, `floor(n / 2) + 1`.
    pub fn effective_quorum(&self) -> usize {
        self.quorum
            .unwrap_or_else(|| default_quorum(self.participants.len()))
    }

    /// Participants who have not voted yet.
    pub fn non_voters(&self) -> Vec<String> {
        self.participants
            .iter()
            .filter(|p| self.vote_of(p).is_none())
            .cloned()
            .collect()
    }

    /// Who receives the result: the proposer, then every participant, each once.
    pub fn result_recipients(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.participants.len() + 1);
        for name in std::iter::once(&self.proposer).chain(&self.participants) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(name)) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// Default quorum for `n` participants: a majority of heads, `floor(n/2) + 1`.
pub fn default_quorum(n: usize) -> usize {
    n / 2 + 1
}

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsensusConfig {
    /// Voting period when a proposal gives none (ms).
    pub default_timeout_ms: u64,
    /// Longest voting period; longer requests are capped to it (ms).
    pub max_timeout_ms: u64,
    /// Whether a participant may change their vote while the proposal is open.
    pub allow_vote_change: bool,
    /// Supermajority threshold when a proposal gives none.
    pub default_threshold: f64,
    /// Largest participant list accepted.
    pub max_participants: usize,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            default_timeout_ms: 300_000,
            max_timeout_ms: 86_400_000,
            allow_vote_change: true,
            default_threshold: DEFAULT_THRESHOLD,
            max_participants: 100,
        }
    }
}

impl ConsensusConfig {
    /// Check that the settings are usable.
    pub fn validate(&self) -> Result<(), ConsensusError> {
        let bad = |msg: String| Err(ConsensusError::InvalidConfig(msg));
        if self.max_timeout_ms == 0 {
            return bad("maxTimeoutMs must be greater than zero".into());
        }
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return bad(format!(
                "defaultTimeoutMs must be between 1 and maxTimeoutMs ({}); got {}",
                self.max_timeout_ms, self.default_timeout_ms
            ));
        }
        if !valid_threshold(self.default_threshold) {
            return bad(format!(
                "defaultThreshold must be greater than 0.5 and at most 1; got {}",
                self.default_threshold
            ));
        }
        if self.max_participants == 0 {
            return bad("maxParticipants must be at least 1".into());
        }
        Ok(())
    }
}

/// A supermajority threshold must satisfy `0.5 < t <= 1`.
pub(crate) fn valid_threshold(t: f64) -> bool {
    t.is_finite() && t > 0.5 && t <= 1.0
}

/// Counts by status and type, from [`Engine::stats`](crate::Engine::stats).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusStats {
    /// Every proposal held.
    pub total: usize,
    /// Open proposals.
    pub pending: usize,
    /// Approved proposals.
    pub approved: usize,
    /// Rejected proposals.
    pub rejected: usize,
    /// Proposals closed without a decision.
    pub no_consensus: usize,
    /// Cancelled proposals.
    pub cancelled: usize,
    /// Proposals per type (every type present, zero when unused).
    pub by_type: BTreeMap<ConsensusType, usize>,
    /// Mean share of participants who voted, over closed proposals
    /// (0 when none is closed).
    pub avg_participation: f64,
}
