//! Consensus voting for the agent-relay daemon.
//!
//! Agents open proposals and vote on them by sending messages to the
//! pseudo-agent `_consensus`: text commands ([`parse_command`]) or the
//! structured `PROPOSAL_CREATE` / `VOTE` payloads ([`CreateProposal`],
//! [`VotePayload`]). The [`Engine`] applies them and closes each proposal
//! with a final result: `approved`, `rejected` or `no_consensus`, early when
//! the outcome can no longer change, when everybody has voted, or at the
//! deadline. The `render_*` functions produce the texts `_consensus` sends.
//!
//! This crate is a pure library: no I/O, no timers, no clock. Time is passed
//! in as `now` (milliseconds since the Unix epoch). The daemon stores every
//! proposal a mutating call returns (all records are serde-serialisable,
//! `camelCase` JSON), rebuilds the engine after a restart with
//! [`Engine::restore`], and calls [`Engine::expire_due`] at
//! [`Engine::next_expiry`].
//!
//! # Decision rules
//!
//! `T` is the total weight of the participants (each participant counted
//! once; weight 1 except for `weighted`), `A`, `R`, `Ab` the weight of the
//! approve, reject and abstain votes cast, and `U` the weight of the
//! participants who have not voted (`T = A + R + Ab + U`). "Heads" count
//! participants regardless of weight.
//!
//! The **deadline rule** decides when voting stops (at expiry, on
//! [`Engine::force_resolve`], and as soon as everybody has voted, where
//! `U = 0`); participants who did not vote stay silent:
//!
//! | Type | Approved | Rejected | Otherwise |
//! |---|---|---|---|
//! | `majority` | `A > R + U` | `R > A + U` | `no_consensus` |
//! | `weighted` | `A > R + U` (by weight) | `R > A + U` | `no_consensus` |
//! | `supermajority(t)` | `A > 0` and `A >= t·(A + R + U)` | `A + U < t·(A + R + U)` | `no_consensus` |
//! | `unanimous` | all voted, no reject, at least one approve | any reject | `no_consensus` |
//! | `quorum(q)` | voted heads `>= q` and `A > R` | voted heads `>= q` and `R > A` | `no_consensus` |
//!
//! **Early resolution** happens before everybody has voted only when the
//! deadline rule gives the same decision for *every* way the remaining
//! participants could still vote (approve, reject, abstain or stay silent):
//!
//! | Type | Early approve | Early reject |
//! |---|---|---|
//! | `majority`, `weighted` | `A > R + U` | `R > A + U` |
//! | `supermajority(t)` | `A > 0` and `A >= t·(A + R + U)` | `A + U < t·(A + R + U)` |
//! | `unanimous` | never (needs every vote) | first reject |
//! | `quorum(q)` | voted heads `>= q` and `A > R + U` | voted heads `>= q` and `R > A + U` |
//!
//! `no_consensus` is never decided early.
//!
//! Abstain and silence, per type:
//!
//! * `majority`, `weighted`, `supermajority`: an abstainer is present but
//!   does not vote, so their weight leaves the base (`T − Ab = A + R + U`).
//!   A non-voter stays in the base: silence is neither consent nor refusal,
//!   so one approve out of ten participants is `no_consensus` at the deadline.
//! * `unanimous`: abstaining does not block; if everybody abstains the
//!   result is `no_consensus`.
//! * `quorum`: an abstainer counts toward the quorum (heads), not toward the
//!   decision. The default quorum is a majority of heads, `floor(n/2) + 1`.
//!
//! Other rules: participants are deduplicated case-insensitively (first
//! spelling kept); the proposer votes only if listed; a changed vote (when
//! [`ConsensusConfig::allow_vote_change`]) replaces the earlier one and the
//! proposal is re-evaluated; once closed, a proposal accepts no votes.
//! Weights must be finite and `> 0` (default 1); thresholds satisfy
//! `0.5 < t <= 1` (default 2/3); quorums `1 <= q <= n`. The same tables
//! are in `DECISIONS.md`.
//!
//! ```
//! use relay_consensus::{parse_command, render_accepted, Engine, ProposalStatus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut engine = Engine::default();
//! let now = 1_700_000_000_000;
//! let cmd = parse_command("PROPOSE: Ship v2\nTYPE: majority\nPARTICIPANTS: A, B, C\nDESCRIPTION: go?")?;
//! let created = engine.execute(cmd, "Lead", now)?;
//! let id = created.proposal().id.clone();
//! assert!(render_accepted(&created).starts_with("ACCEPTED"));
//!
//! engine.execute(parse_command(&format!("VOTE {id} approve"))?, "A", now + 1)?;
//! let outcome = engine.execute(parse_command(&format!("vote {id} APPROVE fine by me"))?, "b", now + 2)?;
//! assert_eq!(outcome.closed().map(|p| p.status), Some(ProposalStatus::Approved));
//! # Ok(())
//! # }
//! ```

mod engine;
mod error;
mod parse;
mod render;
mod request;
mod rules;
mod types;

pub use engine::{Engine, Outcome, ProposalFilter, RestoreReport, VoteOutcome};
pub use error::ConsensusError;
pub use parse::{parse_command, parse_duration_ms, ParseError};
pub use render::{
    format_duration, format_utc, render_accepted, render_error, render_proposal, render_result,
    rule_text, Accepted,
};
pub use request::{Command, CreateProposal, VotePayload};
pub use rules::{decide, final_decision, Tally};
pub use types::{
    default_quorum, ConsensusConfig, ConsensusResult, ConsensusStats, ConsensusType, Decision,
    Proposal, ProposalStatus, ResolvedBy, Vote, VoteValue, CONSENSUS_AGENT, DEFAULT_THRESHOLD,
};
