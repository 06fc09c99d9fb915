//! What the connection task does with each frame from the daemon.

use relay_protocol::{
    AckPayload, AgentReadyPayload, BusyPayload, ChannelJoinPayload, ChannelLeavePayload,
    ChannelMessagePayload, Envelope, ErrorCode, ErrorPayload, MessageType, NackPayload,
    WatchEventPayload,
};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::client::SyncAnswer;
use crate::driver::{Driver, End};
use crate::error::{error_code_name, ClientError};
use crate::event::{Delivered, Event, Signed};
use crate::shared::Waiter;

fn is_query(w: &Waiter) -> bool {
    matches!(w, Waiter::Query(_))
}
fn is_sync(w: &Waiter) -> bool {
    matches!(w, Waiter::Sync(_))
}
fn is_request(w: &Waiter) -> bool {
    matches!(w, Waiter::Request(_))
}

impl Driver {
    /// Handles one frame body. Returns `Some` when the session must end.
    pub(crate) async fn dispatch(&mut self, body: &[u8]) -> Option<End> {
        let env = match Envelope::from_slice(body) {
            Ok(env) => env,
            Err(e) => {
                warn!(error = %e, "ignoring an undecodable frame from the daemon");
                return None;
            }
        };
        match env.msg_type {
            MessageType::Ping => {
                let pong = Envelope::with_raw_payload(MessageType::Pong, env.payload);
                self.control(&pong).await;
            }
            MessageType::Deliver => self.on_deliver(env).await,
            MessageType::Ack => self.on_ack(env).await,
            MessageType::Nack => {
                if let Some(nack) = decode::<NackPayload>(&env) {
                    let waiter = self.shared.waits().take_sent(&nack.ack_id);
                    match waiter {
                        Some(w) => w.fail(ClientError::Nack(nack)),
                        None => self.emit(Event::Nack(nack)).await,
                    }
                }
            }
            MessageType::Error => return self.on_error(env).await,
            MessageType::Busy => {
                if let Some(busy) = decode::<BusyPayload>(&env) {
                    self.emit(Event::Busy(busy)).await;
                }
            }
            MessageType::ChannelMessage => {
                if !self.dedupe.first_time(&env.id) {
                    debug!(id = %env.id, "dropping a duplicate channel message");
                    return None;
                }
                if let Some(payload) = decode::<ChannelMessagePayload>(&env) {
                    let id = env.id.clone();
                    let from = env.from.clone().unwrap_or_default();
                    self.emit(Event::ChannelMessage {
                        id,
                        from,
                        payload,
                        signed: Signed::of(env),
                    })
                    .await;
                }
            }
            MessageType::ChannelJoin => {
                if let Some(payload) = decode::<ChannelJoinPayload>(&env) {
                    let from = env.from.unwrap_or_default();
                    self.emit(Event::ChannelJoin { from, payload }).await;
                }
            }
            MessageType::ChannelLeave => {
                if let Some(payload) = decode::<ChannelLeavePayload>(&env) {
                    let from = env.from.unwrap_or_default();
                    self.emit(Event::ChannelLeave { from, payload }).await;
                }
            }
            MessageType::AgentReady => {
                if let Some(payload) = decode::<AgentReadyPayload>(&env) {
                    self.emit(Event::AgentReady(payload)).await;
                }
            }
            MessageType::WatchEvent => {
                if let Some(payload) = decode::<WatchEventPayload>(&env) {
                    self.emit(Event::Watch(payload)).await;
                }
            }
            MessageType::Bye => {
                return Some(if self.closing {
                    End::Closed("closed by the application".into())
                } else {
                    End::Lost("the daemon ended the session (BYE)".into())
                });
            }
            MessageType::Welcome => debug!("ignoring a WELCOME after the handshake"),
            _ => {
                let waiter = self.shared.waits().take_key(&env.id, is_query);
                match waiter {
                    Some(Waiter::Query(tx)) => {
                        // The caller may have given up; that is fine.
                        let _ = tx.send(Ok(env));
                    }
                    Some(other) => other.fail(ClientError::Protocol("mismatched answer".into())),
                    None => {
                        debug!(kind = %env.msg_type, id = %env.id, "ignoring an unsolicited frame")
                    }
                }
            }
        }
        None
    }

    async fn on_deliver(&mut self, env: Envelope) {
        let delivered = match Delivered::from_envelope(env) {
            Ok(d) => d,
            Err(e) => {
                // Not acknowledged: the daemon redelivers it and finally dead-letters it.
                warn!(error = %e, "cannot decode a DELIVER; leaving it unacknowledged");
                return;
            }
        };
        if self.shared.config.auto_ack {
            // Duplicates are acknowledged too: a redelivery means our earlier ACK was lost.
            let ack = AckPayload {
                ack_id: delivered.id.clone(),
                seq: delivered.seq(),
                ..AckPayload::default()
            };
            self.control(&Envelope::new(MessageType::Ack, &ack)).await;
        }
        if !self.dedupe.first_time(&delivered.id) {
            debug!(id = %delivered.id, "dropping a redelivered duplicate");
            return;
        }
        let keys: Vec<String> = [
            delivered
                .payload
                .data
                .as_ref()
                .and_then(|d| d.get("_correlationId"))
                .and_then(|v| v.as_str())
                .map(str::to_string),
            delivered.meta.as_ref().and_then(|m| m.reply_to.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        for key in keys {
            let waiter = self.shared.waits().take_key(&key, is_request);
            if let Some(Waiter::Request(tx)) = waiter {
                // The caller may have given up; the answer is then dropped with it.
                let _ = tx.send(Ok(delivered));
                return;
            }
        }
        self.emit(Event::Message(delivered)).await;
    }

    async fn on_ack(&mut self, env: Envelope) {
        let Some(ack) = decode::<AckPayload>(&env) else {
            return;
        };
        let from = env.from.clone().unwrap_or_default();
        let signed = Signed::of(env);
        if let Some(cid) = ack.correlation_id.as_deref() {
            let waiter = self.shared.waits().take_key(cid, is_sync);
            if let Some(Waiter::Sync(tx)) = waiter {
                let _ = tx.send(Ok(SyncAnswer { ack, signed }));
                return;
            }
        }
        self.emit(Event::SyncAck {
            from,
            payload: ack,
            signed,
        })
        .await;
    }

    async fn on_error(&mut self, env: Envelope) -> Option<End> {
        let err = decode::<ErrorPayload>(&env)?;
        if err.code == ErrorCode::ResumeTooOld {
            debug!(message = %err.message, "the daemon dropped our session; resume token cleared");
            self.shared.state().resume_token = None;
            return None;
        }
        let waiter = err
            .reply_to
            .as_deref()
            .and_then(|id| self.shared.waits().take_sent(id));
        let fatal = err.fatal;
        let code = err.code;
        let summary = format!(
            "the daemon closed the session with {}: {}",
            error_code_name(code),
            err.message
        );
        match waiter {
            Some(w) => w.fail(ClientError::Server(err)),
            None => self.emit(Event::ServerError(err)).await,
        }
        if !fatal {
            return None;
        }
        Some(match code {
            ErrorCode::DuplicateConnection | ErrorCode::Unauthorized | ErrorCode::BadRequest => {
                End::Fatal(summary)
            }
            _ => End::Lost(summary),
        })
    }
}

fn decode<T: DeserializeOwned>(env: &Envelope) -> Option<T> {
    match env.payload_as::<T>() {
        Ok(p) => Some(p),
        Err(e) => {
            warn!(kind = %env.msg_type, id = %env.id, error = %e, "ignoring a frame with an invalid payload");
            None
        }
    }
}
