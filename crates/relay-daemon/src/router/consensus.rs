//! Consensus inside the router: `_consensus` commands (text from the SDK, or structured
//! PROPOSAL_CREATE / VOTE), proposals and results sent from `_consensus`, expiry timers,
//! persistence of every change, and the CONSENSUS_* queries.
//!
//! The engine itself (`relay-consensus`) is pure; this module wires it to delivery and storage.
//! Consensus traffic is not rate-limited as user traffic and never creates registry entries.

use std::time::Duration;

use relay_consensus::{Command, ConsensusConfig, CreateProposal, Engine, Proposal, VotePayload};
use relay_protocol::{
    ConsensusGetResponsePayload, ConsensusIdPayload, ConsensusListPayload,
    ConsensusListResponsePayload, ConsensusResponsePayload, DeliveryInfo, Envelope, ErrorCode,
    MessageType,
};
use relay_store::{MessageStatus, ProposalRecord, StoredMessage, WriteOp};

use super::Router;

/// Name the consensus engine speaks as.
pub const CONSENSUS: &str = "_consensus";

pub(crate) fn engine_config(c: &relay_config::ConsensusSection) -> ConsensusConfig {
    ConsensusConfig {
        default_timeout_ms: c.default_timeout_ms,
        max_timeout_ms: c.max_timeout_ms,
        allow_vote_change: c.allow_vote_change,
        max_participants: c.max_participants,
        ..ConsensusConfig::default()
    }
}

fn now() -> i64 {
    relay_protocol::now_ms() as i64
}

impl Router {
    /// A SEND to `_consensus`: parse the text command and answer the sender.
    pub(crate) fn on_consensus_text(&mut self, sender: &str, body: &str) {
        if self.consensus.is_none() {
            return self.consensus_say(
                sender,
                "consensus is disabled on this daemon ([consensus] enabled = false)",
                None,
            );
        }
        match relay_consensus::parse_command(body) {
            Ok(Command::Propose(req)) => {
                let _ = self.consensus_create(sender, req);
            }
            Ok(Command::Vote { id, value, reason }) => {
                let _ = self.consensus_vote(sender, &id, value, reason);
            }
            Err(e) => self.consensus_say(sender, &relay_consensus::render_error(&e), None),
        }
    }

    /// PROPOSAL_CREATE, VOTE and CONSENSUS_* frames.
    pub(crate) fn on_consensus_frame(&mut self, conn_id: u64, env: Envelope) {
        let Some(sender) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        if self.consensus.is_none() {
            return self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                "consensus is disabled on this daemon; set [consensus] enabled = true".into(),
                &env.id,
            );
        }
        let Some(resp_type) = env.msg_type.response_type() else {
            return;
        };
        macro_rules! parse {
            ($t:ty) => {
                match env.payload_as::<$t>() {
                    Ok(p) => p,
                    Err(e) => {
                        return self.reply_error(
                            conn_id,
                            ErrorCode::BadRequest,
                            format!("invalid {} payload: {e}", env.msg_type),
                            &env.id,
                        )
                    }
                }
            };
        }
        let answer = match env.msg_type {
            MessageType::ProposalCreate => {
                let req = parse!(CreateProposal);
                response(self.consensus_create(&sender, req))
            }
            MessageType::Vote => {
                let vote = parse!(VotePayload);
                match vote.into_command() {
                    Ok(Command::Vote { id, value, reason }) => {
                        response(self.consensus_vote(&sender, &id, value, reason))
                    }
                    Ok(_) => return,
                    Err(e) => response(Err(e.to_string())),
                }
            }
            MessageType::ConsensusCancel => {
                let p = parse!(ConsensusIdPayload);
                response(self.consensus_cancel(&sender, &p.id))
            }
            MessageType::ConsensusGet => {
                let p = parse!(ConsensusIdPayload);
                let engine = self.consensus.as_ref();
                let payload = match engine.and_then(|e| e.get(&p.id)) {
                    Some(prop) => ConsensusGetResponsePayload {
                        proposal: serde_json::to_value(prop).ok(),
                        error: None,
                    },
                    None => ConsensusGetResponsePayload {
                        proposal: None,
                        error: Some(format!("no proposal {:?}", p.id)),
                    },
                };
                serde_json::to_value(payload).unwrap_or_default()
            }
            MessageType::ConsensusList => {
                let p = parse!(ConsensusListPayload);
                let proposals = self
                    .consensus
                    .as_ref()
                    .map(|e| {
                        e.list(&relay_consensus::ProposalFilter::default())
                            .into_iter()
                            .filter(|prop| {
                                p.status
                                    .as_deref()
                                    .is_none_or(|s| prop.status.as_str() == s)
                            })
                            .filter(|prop| {
                                p.participant
                                    .as_deref()
                                    .is_none_or(|a| prop.is_participant(a))
                            })
                            .filter_map(|prop| serde_json::to_value(prop).ok())
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::to_value(ConsensusListResponsePayload { proposals }).unwrap_or_default()
            }
            MessageType::ConsensusStats => {
                let stats = self.consensus.as_ref().map(|e| e.stats());
                serde_json::json!({ "stats": stats })
            }
            _ => return,
        };
        let out = Envelope::new(resp_type, &answer).id(env.id.clone());
        self.reply(conn_id, &out);
    }

    fn consensus_create(
        &mut self,
        proposer: &str,
        req: CreateProposal,
    ) -> Result<Proposal, String> {
        let Some(engine) = self.consensus.as_mut() else {
            return Err("consensus is disabled".into());
        };
        match engine.create(req, proposer, now()) {
            Ok(p) => {
                self.persist_proposal(&p);
                let text = relay_consensus::render_proposal(&p);
                for who in p.participants.clone() {
                    self.consensus_send(&who, &text, &p, "proposal");
                }
                self.consensus_say(proposer, &relay_consensus::render_accepted(&p), Some(&p));
                self.counters.consensus_proposals += 1;
                Ok(p)
            }
            Err(e) => {
                self.consensus_say(proposer, &relay_consensus::render_error(&e), None);
                Err(e.to_string())
            }
        }
    }

    fn consensus_vote(
        &mut self,
        voter: &str,
        id: &str,
        value: relay_consensus::VoteValue,
        reason: Option<String>,
    ) -> Result<Proposal, String> {
        let Some(engine) = self.consensus.as_mut() else {
            return Err("consensus is disabled".into());
        };
        match engine.vote(id, voter, value, reason, now()) {
            Ok(outcome) => {
                let text = relay_consensus::render_accepted(&outcome);
                let p = outcome.proposal;
                self.persist_proposal(&p);
                self.consensus_say(voter, &text, Some(&p));
                if outcome.resolved {
                    self.announce_result(&p);
                }
                self.counters.consensus_votes += 1;
                Ok(p)
            }
            Err(e) => {
                self.consensus_say(voter, &relay_consensus::render_error(&e), None);
                Err(e.to_string())
            }
        }
    }

    fn consensus_cancel(&mut self, by: &str, id: &str) -> Result<Proposal, String> {
        let Some(engine) = self.consensus.as_mut() else {
            return Err("consensus is disabled".into());
        };
        match engine.cancel(id, by, now()) {
            Ok(p) => {
                self.persist_proposal(&p);
                self.announce_result(&p);
                Ok(p)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Resolves every proposal whose deadline has passed and announces the results.
    pub(crate) fn on_consensus_expiry(&mut self) {
        let Some(engine) = self.consensus.as_mut() else {
            return;
        };
        for p in engine.expire_due(now()) {
            self.persist_proposal(&p);
            self.announce_result(&p);
        }
    }

    /// Resolved proposals older than `consensus.retention_hours` are deleted.
    pub(crate) fn prune_proposals(&mut self) {
        let hours = self.shared.config.consensus.retention_hours;
        if self.consensus.is_none() || hours == 0 {
            return;
        }
        let before = relay_protocol::now_ms() as i64 - hours as i64 * 3_600_000;
        self.store_write(WriteOp::PruneProposals {
            settled_before: before,
        });
        if let Some(engine) = self.consensus.as_mut() {
            engine.prune(before);
        }
    }

    /// When the next proposal expires (epoch ms).
    pub(crate) fn next_consensus_expiry(&self) -> Option<i64> {
        self.consensus.as_ref().and_then(|e| e.next_expiry())
    }

    fn announce_result(&mut self, p: &Proposal) {
        let text = relay_consensus::render_result(p);
        for who in p.result_recipients() {
            self.consensus_send(&who, &text, p, "result");
        }
    }

    fn persist_proposal(&mut self, p: &Proposal) {
        let Ok(body) = serde_json::to_value(p) else {
            return;
        };
        self.store_write(WriteOp::UpsertProposal(ProposalRecord {
            id: p.id.clone(),
            status: p.status.as_str().to_string(),
            updated_at: now(),
            body,
        }));
    }

    /// A reply to whoever sent a command (not part of any proposal's thread if it failed).
    fn consensus_say(&mut self, to: &str, text: &str, p: Option<&Proposal>) {
        match p {
            Some(p) => self.consensus_send(to, text, p, "reply"),
            None => self.consensus_deliver(
                to,
                text,
                None,
                serde_json::json!({"_consensus": {"event": "error"}}),
            ),
        }
    }

    fn consensus_send(&mut self, to: &str, text: &str, p: &Proposal, event: &str) {
        let data = serde_json::json!({"_consensus": {
            "event": event,
            "proposalId": p.id,
            "type": p.ctype.as_str(),
            "status": p.status.as_str(),
        }});
        self.consensus_deliver(to, text, Some(p.thread.clone()), data);
    }

    /// A message from `_consensus`: delivered now if the recipient is connected, else stored and
    /// delivered when it connects (like any message; no registry entry is made).
    fn consensus_deliver(
        &mut self,
        to: &str,
        text: &str,
        thread: Option<String>,
        data: serde_json::Value,
    ) {
        let mut row = StoredMessage::new(relay_protocol::ids::new_id(), now(), CONSENSUS, to, text);
        row.kind = "action".into();
        row.thread = thread;
        row.data = Some(data);
        self.record_history(super::context::Routed {
            message: crate::compaction::EventFields {
                id: &row.id,
                from: CONSENSUS,
                to,
                kind: "action",
                body: text,
                thread: row.thread.as_deref(),
                channel: None,
                importance: None,
                system: false,
                ts: 0,
            },
            recipients: super::context::Recipients::One(to),
        });
        let Some(conn_id) = self.by_name.get(to).copied() else {
            row.status = MessageStatus::Unread;
            self.store_write(WriteOp::InsertMessage(row));
            return;
        };
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let seq = conn.next_seq(None, CONSENSUS);
        let session_id = conn.session_id.clone();
        row.status = MessageStatus::Read;
        row.delivery_seq = Some(seq as i64);
        row.delivery_session_id = Some(session_id.clone());
        let mut env = super::delivery::deliver_from_stored(&row, seq, &session_id);
        env.delivery = Some(DeliveryInfo {
            seq,
            session_id,
            original_to: None,
        });
        let Ok(frame) =
            relay_protocol::encode_frame(&env, self.shared.config.daemon.max_frame_bytes)
        else {
            return;
        };
        if self.store_write(WriteOp::InsertMessage(row)) {
            self.send_delivery(conn_id, env.id.clone(), frame, None, true);
        }
    }
}

fn response(r: Result<Proposal, String>) -> serde_json::Value {
    let payload = match r {
        Ok(p) => ConsensusResponsePayload {
            ok: true,
            message: format!("{} {}", p.id, p.status.as_str()),
            proposal_id: Some(p.id.clone()),
            proposal: serde_json::to_value(&p).ok(),
        },
        Err(message) => ConsensusResponsePayload {
            ok: false,
            message,
            proposal_id: None,
            proposal: None,
        },
    };
    serde_json::to_value(payload).unwrap_or_default()
}

/// Restores an engine from stored proposals.
pub(crate) fn restore_engine(
    config: &relay_config::ConsensusSection,
    records: Vec<ProposalRecord>,
) -> Engine {
    let mut engine = Engine::new(engine_config(config));
    let proposals: Vec<Proposal> = records
        .into_iter()
        .filter_map(|r| match serde_json::from_value::<Proposal>(r.body) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(id = %r.id, "skipping a stored proposal that cannot be read: {e}");
                None
            }
        })
        .collect();
    let report = engine.restore(proposals);
    tracing::debug!(?report, "consensus proposals restored");
    engine
}

/// Sleeps until the next consensus deadline (epoch ms), or forever when there is none.
pub(crate) async fn consensus_deadline(at_ms: Option<i64>) {
    match at_ms {
        Some(at) => {
            let wait = (at - relay_protocol::now_ms() as i64).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await
        }
        None => std::future::pending().await,
    }
}
