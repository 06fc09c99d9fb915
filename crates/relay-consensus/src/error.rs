//! Errors returned by the engine. Their messages are sent back verbatim to
//! the agent that issued the command, so each one says what was wrong and
//! what to do instead.

use thiserror::Error;

use crate::types::{ConsensusType, ProposalStatus, VoteValue};

/// Why a proposal could not be created, voted on, cancelled or restored.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// No proposal has this id.
    #[error(
        "unknown proposal {0:?}; use the id from the proposal message (it looks like \
         prop_0123456789abcdef0123)"
    )]
    UnknownProposal(String),

    /// The voter is not on the proposal's participant list.
    #[error(
        "{voter} is not a participant of proposal {id}; only the listed participants can vote"
    )]
    NotParticipant {
        /// Who tried to vote.
        voter: String,
        /// The proposal.
        id: String,
    },

    /// The proposal is closed.
    #[error("proposal {id} is already {status}; it no longer accepts votes or changes")]
    AlreadyResolved {
        /// The proposal.
        id: String,
        /// Its final status.
        status: ProposalStatus,
    },

    /// The deadline has passed; the result is about to be announced.
    #[error(
        "voting on proposal {id} closed at {closed_at}; the result will be sent to every \
         participant"
    )]
    VotingClosed {
        /// The proposal.
        id: String,
        /// Its deadline, as an ISO-8601 UTC time.
        closed_at: String,
    },

    /// The voter already voted and vote changes are disabled.
    #[error("you already voted {previous} on proposal {id} and vote changes are disabled")]
    VoteChangeNotAllowed {
        /// The proposal.
        id: String,
        /// The vote already recorded.
        previous: VoteValue,
    },

    /// Not one of `approve`, `reject`, `abstain`.
    #[error(
        "vote value must be approve, reject or abstain; got {0:?} (format: VOTE <proposal-id> \
         approve|reject|abstain [reason])"
    )]
    InvalidVote(String),

    /// Somebody other than the proposer tried to cancel.
    #[error("only the proposer ({proposer}) can cancel proposal {id}; {by} cannot")]
    NotProposer {
        /// The proposal.
        id: String,
        /// Who tried.
        by: String,
        /// Who may.
        proposer: String,
    },

    /// The title is empty.
    #[error("a proposal needs a title (PROPOSE: <title>)")]
    EmptyTitle,

    /// The participant list is empty.
    #[error(
        "a proposal needs at least one participant; list the voters separated by commas \
         (PARTICIPANTS: Alice, Bob)"
    )]
    NoParticipants,

    /// More participants than the configuration allows.
    #[error("too many participants: {count} (at most {max}); split the vote or list fewer agents")]
    TooManyParticipants {
        /// Participants after removing duplicates.
        count: usize,
        /// The configured limit.
        max: usize,
    },

    /// A participant name is unusable.
    #[error("invalid participant name {name:?}: {reason}")]
    InvalidParticipant {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A weight is zero, negative or not a number.
    #[error("weight of {participant} must be a number greater than 0; got {weight}")]
    InvalidWeight {
        /// The participant.
        participant: String,
        /// The weight given.
        weight: f64,
    },

    /// A weight names somebody who is not a participant.
    #[error("a weight is given for {0:?}, who is not in the participant list; add them or remove the weight")]
    WeightForNonParticipant(String),

    /// Weights were given for a type that does not use them.
    #[error("weights are only used by TYPE weighted; remove them or use TYPE: weighted (this proposal is {0})")]
    WeightsNotAllowed(ConsensusType),

    /// The threshold is outside `0.5 < t <= 1`.
    #[error(
        "threshold must be greater than 0.5 and at most 1; got {0} (write 0.75 or 75% for \
         three quarters)"
    )]
    InvalidThreshold(f64),

    /// A threshold was given for a type that does not use it.
    #[error("a threshold is only used by TYPE supermajority; remove it or use TYPE: supermajority (this proposal is {0})")]
    ThresholdNotAllowed(ConsensusType),

    /// The quorum is outside `1..=participants`.
    #[error(
        "quorum must be between 1 and the number of participants ({participants}); got {quorum}"
    )]
    InvalidQuorum {
        /// The quorum given.
        quorum: usize,
        /// Participants after removing duplicates.
        participants: usize,
    },

    /// A quorum was given for a type that does not use it.
    #[error("a quorum is only used by TYPE quorum; remove it or use TYPE: quorum (this proposal is {0})")]
    QuorumNotAllowed(ConsensusType),

    /// A zero timeout.
    #[error("timeout must be greater than zero (for example TIMEOUT: 5m)")]
    InvalidTimeout,

    /// A stored proposal is inconsistent and was not restored.
    #[error("stored proposal {id:?} is inconsistent ({reason}); fix or delete the stored record")]
    CorruptProposal {
        /// The proposal id as stored.
        id: String,
        /// What is inconsistent.
        reason: String,
    },

    /// The engine configuration is unusable.
    #[error("invalid consensus configuration: {0}")]
    InvalidConfig(String),
}
