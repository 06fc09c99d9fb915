//! Dead letter replays, system notices and the hand-off of `DLQ_*` requests.

use relay_protocol::{
    encode_frame, DeliveryInfo, DlqStatsResponsePayload, EntityType, Envelope, ErrorCode,
    MessageType,
};
use relay_store::{MessageStatus, SignatureJson, StoredMessage, WriteOp};

use super::delivery::deliver_from_stored;
use super::Router;

/// A dead letter sent back for delivery by the DLQ service.
#[derive(Debug)]
pub struct ReplayRequest {
    pub dlq_id: String,
    pub letter: relay_dlq::DeadLetter,
}

/// Marks a DELIVER as a replay of a dead letter (`data._replayOf`), so recipients can tell.
pub(crate) fn mark_replay(env: &mut Envelope, dlq_id: &str) {
    let Ok(mut payload) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(env.payload.get())
    else {
        return;
    };
    let mut data = payload
        .get("data")
        .and_then(|d| d.as_object())
        .cloned()
        .unwrap_or_default();
    data.insert("_replayOf".into(), dlq_id.into());
    payload.insert("data".into(), data.into());
    env.payload = relay_protocol::to_raw(&payload);
}

/// The message a letter holds, as a stored row addressed to the letter's target.
fn row_of(letter: &relay_dlq::DeadLetter, id: String) -> StoredMessage {
    let mut row = StoredMessage::new(
        id,
        relay_protocol::now_ms() as i64,
        letter.from.clone(),
        letter.to.clone(),
        letter.body.clone(),
    );
    row.kind = letter.kind.clone();
    row.topic = letter.topic.clone();
    row.data = letter.data.clone();
    row.payload_meta = letter.payload_meta.clone();
    row.payload_extra = letter.payload_extra.clone();
    row.thread = letter.thread.clone();
    row.sig = letter.sig.as_ref().and_then(SignatureJson::from_value);
    row.original_to = letter.original_to.clone();
    row.is_broadcast = letter.original_to.is_some();
    row.source_id = Some(letter.message_id.clone());
    row.attempts = letter.attempt_count;
    row
}

impl Router {
    /// Delivers a dead letter again. It counts as delivered only when the recipient ACKs it; a
    /// message already in flight to the recipient is not sent twice.
    pub(crate) fn on_replay(&mut self, req: ReplayRequest) {
        let ReplayRequest { dlq_id, letter } = req;
        let Some(dlq) = self.dlq.clone() else { return };
        let target = letter.to.clone();
        if target.starts_with('#') {
            return dlq.replay_failed(
                dlq_id,
                "channel messages are not replayed; they stay readable with INBOX".into(),
            );
        }
        // A stored delivery keeps its id (recipients de-duplicate on it); a refused SEND gets one.
        let stored = letter.msg_type == "DELIVER";
        let id = if stored {
            letter.message_id.clone()
        } else {
            relay_protocol::ids::new_id()
        };
        if self.tracker.contains(&id) {
            // The live delivery is still being retried: its ACK settles the letter too.
            self.replays.insert(id, dlq_id);
            return;
        }
        let online = self.by_name.get(&target).copied();
        if online.is_none() && !self.registry.contains_key(&target) {
            return dlq.replay_failed(dlq_id, format!("unknown recipient {target:?}"));
        }
        let mut row = row_of(&letter, id.clone());
        self.replays.insert(id.clone(), dlq_id.clone());
        let Some(conn_id) = online else {
            // Known but offline: queued like any message, delivered in order when it connects.
            row.status = MessageStatus::Unread;
            let ok = if stored {
                self.store_write(WriteOp::SetStatus {
                    id: id.clone(),
                    status: MessageStatus::Unread,
                    last_error: None,
                })
            } else {
                self.store_write(WriteOp::InsertMessage(row))
            };
            if !ok {
                self.replays.remove(&id);
                dlq.replay_failed(dlq_id, "storage is overloaded".into());
            }
            return;
        };
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let seq = conn.next_seq(row.topic.as_deref(), &row.from);
        let session_id = conn.session_id.clone();
        let mut env = deliver_from_stored(&row, seq, &session_id);
        env.ts = relay_protocol::now_ms();
        mark_replay(&mut env, &dlq_id);
        let frame = match encode_frame(&env, self.shared.config.daemon.max_frame_bytes) {
            Ok(f) => f,
            Err(e) => {
                self.replays.remove(&id);
                return dlq.replay_failed(dlq_id, format!("payload too large: {e}"));
            }
        };
        let ok = if stored {
            self.store_write(WriteOp::SetDelivery {
                id: id.clone(),
                session_id,
                seq: seq as i64,
                status: MessageStatus::Read,
            })
        } else {
            row.status = MessageStatus::Read;
            row.delivery_seq = Some(seq as i64);
            row.delivery_session_id = Some(session_id);
            self.store_write(WriteOp::InsertMessage(row))
        };
        if !ok {
            self.replays.remove(&id);
            return dlq.replay_failed(dlq_id, "storage is overloaded".into());
        }
        self.counters.dlq_replays += 1;
        let expires = None;
        self.send_delivery(conn_id, id, frame, expires, true);
    }

    /// A message from `_system`, not tracked or stored: alerts and notices for people watching.
    pub(crate) fn on_system_notice(&mut self, to: &str, text: &str, data: serde_json::Value) {
        let mut data = data.as_object().cloned().unwrap_or_default();
        data.insert("_isSystemMessage".into(), true.into());
        let payload = serde_json::json!({"kind": "state", "body": text, "data": data});
        let targets: Vec<(u64, String, String)> = self
            .conns
            .values()
            .filter(|c| {
                !c.system && (to == "*" || (to == "@users" && c.entity == EntityType::User))
            })
            .map(|c| (c.id, c.name.clone(), c.session_id.clone()))
            .collect();
        for (conn_id, name, session_id) in targets {
            let seq = match self.conns.get_mut(&conn_id) {
                Some(c) => c.next_seq(None, "_system"),
                None => continue,
            };
            let mut env = Envelope::new(MessageType::Deliver, &payload)
                .from("_system")
                .to(name);
            env.delivery = Some(DeliveryInfo {
                seq,
                session_id,
                original_to: Some(to.to_string()),
            });
            self.reply(conn_id, &env);
        }
    }

    pub(crate) fn on_dlq_request(&mut self, conn_id: u64, env: Envelope) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let (requester, outlet) = (conn.name.clone(), conn.outlet.clone());
        match &self.dlq {
            Some(dlq) => dlq.request(env, requester, outlet),
            None if env.msg_type == MessageType::DlqStats => {
                let out = Envelope::new(MessageType::DlqStatsResponse, &DlqStatsResponsePayload::default()).id(env.id.clone());
                self.reply(conn_id, &out);
            }
            None => self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                "the dead letter queue is disabled; set [dlq] enabled = true in .agent-relay/relay.toml".into(),
                &env.id,
            ),
        }
    }
}
