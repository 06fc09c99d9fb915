//! `CONTEXT` requests: an agent's history against its budget, its stored snapshot, and on
//! demand a compaction now (`compact`) or a delivery now (`inject`).

use std::time::Duration;

use relay_protocol::{CompactionReport, ContextResponsePayload, Envelope, ErrorCode, MessageType};

use super::report::{self, Trigger};
use super::service::CompactionService;
use super::{ContextReply, ContextRequest};
use crate::connection::{error_frame, frame_of, Outbound, Outlet};

/// How long an answer may wait for room in the requester's outbound queue.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends a frame to a requester without holding up the service.
fn send_frame(outlet: &Outlet, frame: bytes::Bytes) {
    let tx = outlet.tx.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(ANSWER_TIMEOUT, tx.send(Outbound::Frame(frame))).await;
    });
}

impl CompactionService {
    pub(super) async fn on_request(&mut self, req: ContextRequest) {
        let agent = req.payload.agent.clone();
        self.ensure(&agent);
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        if state.history.is_none() {
            // Answered once the history is rebuilt.
            state.requests.push(req);
            return;
        }
        self.serve(req).await;
    }

    /// Serves a request whose agent's history is loaded.
    pub(super) async fn serve(&mut self, req: ContextRequest) {
        let agent = req.payload.agent.clone();
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        if req.payload.compact == Some(true) {
            let running = state.compacting;
            state.compact_waiters.push(req);
            if !running {
                self.start(&agent, Trigger::Request);
            }
            return;
        }
        self.respond(req, None).await;
    }

    /// Answers a request with the agent's current state (and `result`, the report of the
    /// compaction it asked for); with `inject`, the router delivers the snapshot and answers.
    pub(super) async fn respond(&mut self, req: ContextRequest, result: Option<CompactionReport>) {
        let agent = req.payload.agent.clone();
        let Some(state) = self.agents.get(&agent) else {
            return;
        };
        let (messages, tokens) = state
            .history
            .as_ref()
            .map(|h| (h.len(), h.total_tokens()))
            .unwrap_or_default();
        let snapshot = state.snapshot.clone().flatten();
        let response = ContextResponsePayload {
            agent: agent.clone(),
            history_messages: messages as u64,
            history_tokens: tokens as u64,
            max_tokens: self.config.max_tokens as u64,
            threshold_tokens: self.config.threshold_tokens() as u64,
            target_tokens: self.config.target_tokens() as u64,
            needs_compaction: self.compactor.over_threshold(tokens),
            tokenizer: self
                .compactor
                .counter()
                .effective_mode()
                .as_str()
                .to_string(),
            snapshot: snapshot.as_ref().map(report::info_of),
            result,
            injection: None,
        };
        if req.payload.inject != Some(true) {
            let env = Envelope::new(MessageType::ContextResponse, &response).id(req.request_id);
            return send_frame(&req.outlet, frame_of(&env, usize::MAX));
        }
        let Some(snapshot) = snapshot else {
            let message = format!(
                "{agent} has no stored context snapshot yet: its history ({tokens} tokens) has not \
                 crossed the threshold ({} tokens). Make one and deliver it with \
                 `agent-relay context {agent} --compact --inject`",
                self.config.threshold_tokens()
            );
            let frame = error_frame(ErrorCode::BadRequest, message, false, Some(&req.request_id));
            return send_frame(&req.outlet, frame);
        };
        let reply = ContextReply {
            outlet: req.outlet,
            request_id: req.request_id,
            response,
        };
        self.deliver(&snapshot, None, Some(reply)).await;
    }
}

/// The router's answer to `CONTEXT{inject:true}` once it has tried the delivery.
pub(crate) fn answer_injection(reply: ContextReply, injection: &str) {
    let ContextReply {
        outlet,
        request_id,
        mut response,
    } = reply;
    response.injection = Some(injection.to_string());
    let env = Envelope::new(MessageType::ContextResponse, &response).id(request_id);
    send_frame(&outlet, frame_of(&env, usize::MAX));
}
