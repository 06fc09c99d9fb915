//! Commands: what an agent asks `_consensus` to do, whether it arrived as
//! text ([`parse_command`](crate::parse_command)) or as a structured
//! `PROPOSAL_CREATE` / `VOTE` payload (JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConsensusError;
use crate::types::{ConsensusType, VoteValue};

/// A request to open a proposal; also the `PROPOSAL_CREATE` payload:
/// `{title, description?, participants: [..], type?, timeoutMs?, quorum?,
/// threshold?, weights?}`. Checked by [`Engine::create`](crate::Engine::create).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateProposal {
    /// One-line title.
    pub title: String,
    /// Longer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Voters (duplicates are removed, case-insensitively).
    pub participants: Vec<String>,
    /// Decision rule; `majority` when absent.
    #[serde(
        default,
        rename = "type",
        alias = "consensusType",
        skip_serializing_if = "Option::is_none"
    )]
    pub ctype: Option<ConsensusType>,
    /// Voting period in ms; the configured default when absent, capped at
    /// the configured maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Required voters (quorum type only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<usize>,
    /// Approval threshold (supermajority type only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Weight per participant (weighted type only); unlisted participants weigh 1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
}

impl CreateProposal {
    /// A majority proposal with the given title and participants.
    pub fn new<I, S>(title: impl Into<String>, participants: I) -> CreateProposal
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CreateProposal {
            title: title.into(),
            participants: participants.into_iter().map(Into::into).collect(),
            ..CreateProposal::default()
        }
    }

    /// Set the decision rule.
    pub fn with_type(mut self, ctype: ConsensusType) -> Self {
        self.ctype = Some(ctype);
        self
    }

    /// Set the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Set the voting period (ms).
    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Set the quorum (quorum type).
    pub fn with_quorum(mut self, quorum: usize) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// Set the threshold (supermajority type).
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Set one participant's weight (weighted type).
    pub fn with_weight(mut self, participant: impl Into<String>, weight: f64) -> Self {
        self.weights.insert(participant.into(), weight);
        self
    }
}

/// The structured `VOTE` payload: `{proposalId, value, reason?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VotePayload {
    /// The proposal voted on.
    #[serde(alias = "id")]
    pub proposal_id: String,
    /// `approve`, `reject` or `abstain` (any case).
    pub value: String,
    /// Free-text reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl VotePayload {
    /// Check the value and turn the payload into a [`Command::Vote`].
    pub fn into_command(self) -> Result<Command, ConsensusError> {
        let value: VoteValue = self.value.parse()?;
        Ok(Command::Vote {
            id: self.proposal_id.trim().to_string(),
            value,
            reason: clean_reason(self.reason.as_deref()),
        })
    }
}

/// A command for the engine ([`Engine::execute`](crate::Engine::execute)).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open a proposal; the sender is the proposer.
    Propose(CreateProposal),
    /// Vote on a proposal; the sender is the voter.
    Vote {
        /// The proposal.
        id: String,
        /// The vote.
        value: VoteValue,
        /// Free-text reason (may span lines).
        reason: Option<String>,
    },
}

/// Trim a reason; empty becomes `None`.
pub(crate) fn clean_reason(reason: Option<&str>) -> Option<String> {
    let r = reason?.trim();
    (!r.is_empty()).then(|| r.to_string())
}
