//! Channels: persisted memberships, join/leave notifications, channel messages.

use std::collections::HashMap;

use relay_protocol::{
    ChannelJoinPayload, ChannelLeavePayload, ChannelMember, ChannelMembersPayload,
    ChannelMessagePayload, ChannelTypingPayload, Envelope, ErrorCode, MessageType, SendPayload,
};
use relay_store::{ChannelMembership, MessageStatus, StoredMessage, WriteOp};

use super::Router;

/// Channel name → members. Channel names are exact strings; member names compare
/// case-insensitively and keep the spelling they joined with.
#[derive(Debug, Default)]
pub struct Channels {
    members: HashMap<String, Vec<String>>,
}

impl Channels {
    pub fn from_memberships(rows: Vec<ChannelMembership>) -> Channels {
        let mut c = Channels::default();
        for row in rows {
            c.join(&row.channel, &row.member);
        }
        c
    }

    /// Adds `member`; false if it was already there.
    pub fn join(&mut self, channel: &str, member: &str) -> bool {
        let list = self.members.entry(channel.to_string()).or_default();
        if list.iter().any(|m| m.eq_ignore_ascii_case(member)) {
            return false;
        }
        list.push(member.to_string());
        true
    }

    pub fn leave(&mut self, channel: &str, member: &str) -> bool {
        let Some(list) = self.members.get_mut(channel) else {
            return false;
        };
        let before = list.len();
        list.retain(|m| !m.eq_ignore_ascii_case(member));
        let removed = list.len() != before;
        if list.is_empty() {
            self.members.remove(channel);
        }
        removed
    }

    pub fn is_member(&self, channel: &str, member: &str) -> bool {
        self.members
            .get(channel)
            .is_some_and(|l| l.iter().any(|m| m.eq_ignore_ascii_case(member)))
    }

    pub fn members(&self, channel: &str) -> &[String] {
        self.members.get(channel).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn remove_member_everywhere(&mut self, member: &str) {
        for list in self.members.values_mut() {
            list.retain(|m| !m.eq_ignore_ascii_case(member));
        }
        self.members.retain(|_, l| !l.is_empty());
    }

    pub fn channel_count(&self) -> usize {
        self.members.len()
    }
}

fn valid_channel(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 128
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!("invalid channel name {name:?}: 1-128 characters, no spaces or control characters (e.g. #general)"));
    }
    Ok(())
}

impl Router {
    pub(crate) fn on_channel_membership(&mut self, conn_id: u64, env: Envelope) {
        let Some(actor) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        let join = env.msg_type == MessageType::ChannelJoin;
        let (channel, member) = if join {
            match env.payload_as::<ChannelJoinPayload>() {
                Ok(p) => (p.channel, p.member),
                Err(e) => {
                    return self.reply_error(
                        conn_id,
                        ErrorCode::BadRequest,
                        format!("invalid CHANNEL_JOIN payload: {e}"),
                        &env.id,
                    )
                }
            }
        } else {
            match env.payload_as::<ChannelLeavePayload>() {
                Ok(p) => (p.channel, p.member),
                Err(e) => {
                    return self.reply_error(
                        conn_id,
                        ErrorCode::BadRequest,
                        format!("invalid CHANNEL_LEAVE payload: {e}"),
                        &env.id,
                    )
                }
            }
        };
        if let Err(msg) = valid_channel(&channel) {
            return self.reply_error(conn_id, ErrorCode::BadRequest, msg, &env.id);
        }
        let admin = member.is_some();
        let member = member.unwrap_or(actor.clone());
        let changed = if join {
            self.channels.join(&channel, &member)
        } else {
            self.channels.leave(&channel, &member)
        };
        if !changed {
            return;
        }
        let op = if join {
            WriteOp::JoinChannel(ChannelMembership {
                channel: channel.clone(),
                member: member.clone(),
                joined_at: relay_protocol::now_ms() as i64,
            })
        } else {
            WriteOp::LeaveChannel {
                channel: channel.clone(),
                member: member.clone(),
            }
        };
        self.store_write(op);
        if admin {
            return;
        }
        let mut note = Envelope::with_raw_payload(env.msg_type.clone(), env.payload.clone())
            .from(actor.clone());
        note.ts = relay_protocol::now_ms();
        let frame = crate::connection::frame_of(&note, usize::MAX);
        for m in self.channels.members(&channel).to_vec() {
            if m.eq_ignore_ascii_case(&actor) {
                continue;
            }
            if let Some(id) = self.by_name.get(&m).copied() {
                self.push(id, frame.clone());
            }
        }
    }

    pub(crate) fn on_channel_message(&mut self, conn_id: u64, env: Envelope) {
        let p: ChannelMessagePayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid CHANNEL_MESSAGE payload: {e}"),
                    &env.id,
                )
            }
        };
        let Some(sender) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        // Checked like a SEND: a bad signature is always refused, a missing one per
        // `require_signatures`.
        if !self.verify_ingress(conn_id, &env, false).accepted() {
            return;
        }
        self.post_to_channel(conn_id, &sender, &p.channel.clone(), &env, p);
    }

    /// A SEND addressed to `#channel` is a channel message.
    pub(crate) fn route_to_channel(
        &mut self,
        conn_id: u64,
        sender: &str,
        channel: &str,
        env: &Envelope,
        payload: &SendPayload,
    ) {
        let p = ChannelMessagePayload {
            channel: channel.to_string(),
            body: payload.body.clone(),
            thread: payload.thread.clone(),
            mentions: None,
            attachments: None,
            data: payload.data.clone(),
        };
        self.post_to_channel(conn_id, sender, channel, env, p);
    }

    fn post_to_channel(
        &mut self,
        conn_id: u64,
        sender: &str,
        channel: &str,
        env: &Envelope,
        p: ChannelMessagePayload,
    ) {
        if let Err(msg) = valid_channel(channel) {
            return self.reply_error(conn_id, ErrorCode::BadRequest, msg, &env.id);
        }
        if !self.channels.is_member(channel, sender) {
            let msg = format!("{sender} is not a member of {channel}; send CHANNEL_JOIN first. The message was not delivered");
            return self.nack(conn_id, &env.id, relay_protocol::NackCode::Forbidden, msg);
        }
        let window = self.shared.config.delivery.dedupe_window;
        if env.msg_type == MessageType::ChannelMessage
            && !self.dedupe.insert(sender, &env.id, window)
        {
            self.counters.duplicate_sends += 1;
            return;
        }
        let mut row = StoredMessage::new(
            relay_protocol::ids::new_id(),
            relay_protocol::now_ms() as i64,
            sender,
            channel,
            p.body.clone(),
        );
        let mut data = p.data.clone().unwrap_or_default();
        data.insert("_isChannelMessage".into(), true.into());
        data.insert("_channel".into(), channel.into());
        if let Some(m) = &p.mentions {
            data.insert("_mentions".into(), serde_json::json!(m));
        }
        row.data = Some(serde_json::Value::Object(data));
        row.thread = p.thread.clone();
        row.is_broadcast = true;
        row.status = MessageStatus::Acked;
        row.source_id = Some(env.id.clone());
        // Kept with the row like a SEND's, so the replay cache is rebuilt from it after a restart.
        row.sig = env.sig.clone();
        let mut extra = serde_json::Map::new();
        if let Some(a) = &p.attachments {
            extra.insert("attachments".into(), serde_json::json!(a));
        }
        if let Some(m) = &p.mentions {
            extra.insert("mentions".into(), serde_json::json!(m));
        }
        row.payload_extra = (!extra.is_empty()).then_some(serde_json::Value::Object(extra));
        let id = row.id.clone();
        if !self.store_write(WriteOp::InsertMessage(row)) {
            return self.nack(
                conn_id,
                &env.id,
                relay_protocol::NackCode::Busy,
                "storage is overloaded; retry shortly".into(),
            );
        }
        let out = channel_copy(env, &p, id, sender);
        let frame = crate::connection::frame_of(&out, usize::MAX);
        let mut reached = 0u64;
        for m in self.channels.members(channel).to_vec() {
            if m.eq_ignore_ascii_case(sender) {
                continue;
            }
            if let Some(cid) = self.by_name.get(&m).copied() {
                self.push(cid, frame.clone());
                reached += 1;
            }
        }
        self.counters.channel_messages += 1;
        self.touch_registry(sender, 1, 0);
        let send_like = SendPayload {
            kind: relay_protocol::PayloadKind::Message,
            body: p.body.clone(),
            data: p.data.clone(),
            thread: p.thread.clone(),
        };
        self.notify_watchers(sender, channel, env, &send_like);
        let members = super::context::Recipients::Channel(channel);
        let mut routed = super::context::Routed::send(env, sender, channel, &send_like, members);
        routed.message.channel = Some(channel);
        self.record_history(routed);
        tracing::trace!(channel, reached, "channel message");
    }

    pub(crate) fn on_channel_typing(&mut self, conn_id: u64, env: Envelope) {
        let Some(sender) = self.conn_name(conn_id).map(str::to_string) else {
            return;
        };
        let p: ChannelTypingPayload = match env.payload_as() {
            Ok(p) => p,
            Err(e) => {
                return self.reply_error(
                    conn_id,
                    ErrorCode::BadRequest,
                    format!("invalid CHANNEL_TYPING payload: {e}"),
                    &env.id,
                )
            }
        };
        if !self.channels.is_member(&p.channel, &sender) {
            return;
        }
        let out = Envelope::new(MessageType::ChannelTyping, &p).from(sender.clone());
        let frame = crate::connection::frame_of(&out, usize::MAX);
        for m in self.channels.members(&p.channel).to_vec() {
            if !m.eq_ignore_ascii_case(&sender) {
                if let Some(cid) = self.by_name.get(&m).copied() {
                    self.push(cid, frame.clone());
                }
            }
        }
    }

    /// CHANNEL_INFO / CHANNEL_MEMBERS `{channel}` → CHANNEL_MEMBERS with the member list.
    pub(crate) fn on_channel_info(&mut self, conn_id: u64, env: Envelope) {
        let channel = serde_json::from_str::<serde_json::Value>(env.payload.get())
            .ok()
            .and_then(|v| {
                v.get("channel")
                    .and_then(|c| c.as_str())
                    .map(str::to_string)
            });
        let Some(channel) = channel else {
            return self.reply_error(
                conn_id,
                ErrorCode::BadRequest,
                format!("{} needs {{channel}}", env.msg_type),
                &env.id,
            );
        };
        let members = self
            .channels
            .members(&channel)
            .iter()
            .map(|m| ChannelMember {
                name: m.clone(),
                entity_type: self
                    .by_name
                    .get(m)
                    .and_then(|id| self.conns.get(id))
                    .map(|c| c.entity),
                display_name: None,
                avatar_url: None,
                status: Some(
                    if self.by_name.contains_key(m) {
                        "online"
                    } else {
                        "offline"
                    }
                    .into(),
                ),
            })
            .collect();
        let out = Envelope::new(
            MessageType::ChannelMembers,
            &ChannelMembersPayload { channel, members },
        )
        .id(env.id.clone());
        self.reply(conn_id, &out);
    }
}

/// What the other members get for a post: a CHANNEL_MESSAGE under the stored row's id, from
/// the sender. A CHANNEL_MESSAGE's payload (verbatim, as the original daemon forwarded it),
/// target, topic, metadata and `_sig` are passed on as they arrived, so a signed post verifies
/// at every member. A SEND to `#channel` is turned into a channel payload; its signature
/// covers the SEND, not this copy, so it is not passed on.
fn channel_copy(env: &Envelope, p: &ChannelMessagePayload, id: String, sender: &str) -> Envelope {
    if env.msg_type != MessageType::ChannelMessage {
        return Envelope::new(MessageType::ChannelMessage, p)
            .id(id)
            .from(sender);
    }
    let mut out = Envelope::with_raw_payload(MessageType::ChannelMessage, env.payload.clone())
        .id(id)
        .from(sender);
    out.to = env.to.clone();
    out.topic = env.topic.clone();
    out.payload_meta = env.payload_meta.clone();
    out.sig = env.sig.clone();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_case_insensitive_and_keeps_spelling() {
        let mut c = Channels::default();
        assert!(c.join("#eng", "Alice"));
        assert!(!c.join("#eng", "alice"));
        assert!(c.is_member("#eng", "ALICE"));
        assert_eq!(c.members("#eng"), ["Alice".to_string()]);
        assert!(!c.is_member("#ENG", "Alice"), "channel names are exact");
        assert!(c.leave("#eng", "alice"));
        assert_eq!(c.channel_count(), 0);
    }
}
