//! In-memory backend: volatile storage with the same observable behaviour
//! as the SQLite backend (ordering, filters, upsert rules, retention), used
//! when persistence is disabled and in tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::backend::Backend;
use crate::error::StoreError;
use crate::types::{
    is_channel_recipient, member_key, AgentRecord, ChannelMembership, ContextSnapshot,
    MessageQuery, Order, OwedBroadcast, ProposalRecord, Query, QueryResult, SeqSeed, SessionRecord,
    StoreStats, StoredMessage, WriteOp,
};

/// Position of a message: `(ts, insertion sequence)`. Ordering by key is the
/// store-wide message order.
type Key = (i64, u64);

/// Volatile storage bounded by a maximum message count.
///
/// # Overflow policy
///
/// The backend holds at most `max_messages` messages. When an insert goes
/// past the bound it evicts, in order of preference:
///
/// 1. the oldest (by `ts`, then insertion order) message that is **not
///    pending** (acked, failed, or a channel row);
/// 2. if every stored message is pending, the oldest pending message. That
///    message is lost for good: the eviction is logged as a warning and
///    counted in [`Backend::evicted_pending`] (surfaced as
///    [`StoreMetrics::evicted_pending`](crate::StoreMetrics::evicted_pending)).
///
/// Operations on memory cannot fail, so every batch applies completely.
#[derive(Debug)]
pub struct MemoryBackend {
    max_messages: usize,
    next_seq: u64,
    messages: BTreeMap<Key, StoredMessage>,
    by_id: BTreeMap<String, Key>,
    /// Keys of pending messages (oldest first).
    pending: BTreeSet<Key>,
    /// Keys of non-pending messages (oldest first): eviction candidates.
    settled: BTreeSet<Key>,
    /// Pending keys per recipient.
    pending_by_to: HashMap<String, BTreeSet<Key>>,
    /// Sessions with their insertion sequence (ties in resume-token lookup).
    sessions: HashMap<String, (u64, SessionRecord)>,
    agents: BTreeMap<String, AgentRecord>,
    /// Keyed by `(channel, lower-cased member)`.
    memberships: BTreeMap<(String, String), ChannelMembership>,
    proposals: BTreeMap<String, ProposalRecord>,
    signatures: BTreeMap<(String, String), i64>,
    snapshots: HashMap<String, ContextSnapshot>,
    /// Keyed by `(sender, id)`.
    owed: BTreeMap<(String, String), OwedBroadcast>,
    evicted_pending: u64,
}

impl MemoryBackend {
    /// An empty backend holding at most `max_messages` messages (at least 1).
    pub fn new(max_messages: usize) -> Self {
        MemoryBackend {
            max_messages: max_messages.max(1),
            next_seq: 0,
            messages: BTreeMap::new(),
            by_id: BTreeMap::new(),
            pending: BTreeSet::new(),
            settled: BTreeSet::new(),
            pending_by_to: HashMap::new(),
            sessions: HashMap::new(),
            agents: BTreeMap::new(),
            memberships: BTreeMap::new(),
            proposals: BTreeMap::new(),
            signatures: BTreeMap::new(),
            snapshots: HashMap::new(),
            owed: BTreeMap::new(),
            evicted_pending: 0,
        }
    }

    /// The configured bound.
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// Number of stored messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when no message is stored.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn index(&mut self, key: Key, msg: &StoredMessage) {
        if msg.is_pending() {
            self.pending.insert(key);
            self.pending_by_to
                .entry(msg.to.clone())
                .or_default()
                .insert(key);
        } else {
            self.settled.insert(key);
        }
    }

    fn unindex(&mut self, key: Key, msg: &StoredMessage) {
        if self.pending.remove(&key) {
            if let Some(keys) = self.pending_by_to.get_mut(&msg.to) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.pending_by_to.remove(&msg.to);
                }
            }
        }
        self.settled.remove(&key);
    }

    fn remove_key(&mut self, key: Key) -> Option<StoredMessage> {
        let msg = self.messages.remove(&key)?;
        self.unindex(key, &msg);
        self.by_id.remove(&msg.id);
        Some(msg)
    }

    fn insert(&mut self, msg: StoredMessage) {
        match self.by_id.get(&msg.id).copied() {
            Some(old) => {
                self.remove_key(old);
            }
            None => {
                if let Some(session) = &msg.session_id {
                    if let Some((_, s)) = self.sessions.get_mut(session) {
                        s.message_count += 1;
                    }
                }
            }
        }
        let key = (msg.ts, self.next_seq());
        self.index(key, &msg);
        self.by_id.insert(msg.id.clone(), key);
        self.messages.insert(key, msg);
        while self.messages.len() > self.max_messages {
            self.evict_one();
        }
    }

    fn evict_one(&mut self) {
        if let Some(key) = self.settled.first().copied() {
            self.remove_key(key);
        } else if let Some(key) = self.pending.first().copied() {
            if let Some(msg) = self.remove_key(key) {
                self.evicted_pending += 1;
                tracing::warn!(
                    id = msg.id,
                    to = msg.to,
                    max_messages = self.max_messages,
                    "memory store full of pending messages; dropped the oldest pending message"
                );
            }
        }
    }

    /// Mutate the message `id` in place, keeping the indexes in step.
    fn update(&mut self, id: &str, change: impl FnOnce(&mut StoredMessage)) {
        let Some(key) = self.by_id.get(id).copied() else {
            return;
        };
        let Some(mut msg) = self.messages.remove(&key) else {
            return;
        };
        self.unindex(key, &msg);
        change(&mut msg);
        self.index(key, &msg);
        self.messages.insert(key, msg);
    }

    fn apply_op(&mut self, op: &WriteOp) {
        match op {
            WriteOp::InsertMessage(m) => self.insert(m.clone()),
            WriteOp::SetStatus {
                id,
                status,
                last_error,
            } => self.update(id, |m| {
                m.status = *status;
                if let Some(err) = last_error {
                    m.last_error = Some(err.clone());
                }
            }),
            WriteOp::SetDelivery {
                id,
                session_id,
                seq,
                status,
            } => self.update(id, |m| {
                m.delivery_session_id = Some(session_id.clone());
                m.delivery_seq = Some(*seq);
                m.status = *status;
            }),
            WriteOp::IncrementAttempts { id } => self.update(id, |m| m.attempts += 1),
            WriteOp::StartSession(s) => {
                let mut record = s.clone();
                record.ended_at = None;
                record.closed_by = None;
                match self.sessions.get_mut(&s.id) {
                    Some((_, existing)) => {
                        record.started_at = existing.started_at;
                        record.message_count = existing.message_count;
                        *existing = record;
                    }
                    None => {
                        let seq = self.next_seq();
                        self.sessions.insert(s.id.clone(), (seq, record));
                    }
                }
            }
            WriteOp::EndSession {
                id,
                ended_at,
                closed_by,
            } => {
                if let Some((_, s)) = self.sessions.get_mut(id) {
                    s.ended_at = Some(*ended_at);
                    s.closed_by = Some(closed_by.clone());
                }
            }
            WriteOp::UpsertAgent(a) => {
                let mut record = a.clone();
                if let Some(old) = self.agents.get(&a.name) {
                    record.first_seen = record.first_seen.min(old.first_seen);
                }
                self.agents.insert(a.name.clone(), record);
            }
            WriteOp::RemoveAgent {
                name,
                remove_messages,
                replayable,
            } => {
                self.agents.remove(name);
                self.sessions.retain(|_, (_, s)| &s.agent_name != name);
                let key = member_key(name);
                self.memberships.retain(|(_, member), _| member != &key);
                self.snapshots.remove(name);
                if *remove_messages {
                    let doomed: Vec<Key> = self
                        .messages
                        .iter()
                        .filter(|(_, m)| &m.from == name || &m.to == name)
                        .map(|(k, _)| *k)
                        .collect();
                    // Signatures live in the rows about to go: keep them for replay protection.
                    for k in &doomed {
                        let Some(row) = self.messages.get(k) else {
                            continue;
                        };
                        if let Some((m, t)) = signed_id_and_time(row) {
                            if replayable.admits(t) {
                                self.signatures.entry((row.from.clone(), m)).or_insert(t);
                            }
                        }
                    }
                    for k in doomed {
                        self.remove_key(k);
                    }
                }
            }
            WriteOp::JoinChannel(m) => {
                self.memberships
                    .entry((m.channel.clone(), member_key(&m.member)))
                    .or_insert_with(|| m.clone());
            }
            WriteOp::LeaveChannel { channel, member } => {
                self.memberships
                    .remove(&(channel.clone(), member_key(member)));
            }
            WriteOp::UpsertProposal(p) => {
                self.proposals.insert(p.id.clone(), p.clone());
            }
            WriteOp::RecordSignature { signer, m, t } => {
                self.signatures.insert((signer.clone(), m.clone()), *t);
            }
            WriteOp::PruneSignatures { before } => {
                self.signatures.retain(|_, t| *t >= *before);
            }
            WriteOp::PutContextSnapshot(c) => {
                self.snapshots.insert(c.agent.clone(), c.clone());
            }
            WriteOp::SetOwed(owed) => {
                let key = (owed.sender.clone(), owed.id.clone());
                if owed.recipients.is_empty() {
                    self.owed.remove(&key);
                } else {
                    let mut owed = owed.clone();
                    owed.recipients.sort();
                    owed.recipients.dedup();
                    self.owed.insert(key, owed);
                }
            }
            WriteOp::PruneOwed { before } => {
                self.owed.retain(|_, o| o.updated_at >= *before);
            }
            WriteOp::PruneProposals { settled_before } => {
                self.proposals
                    .retain(|_, p| p.status == "pending" || p.updated_at >= *settled_before);
            }
        }
    }

    fn messages(&self, q: &MessageQuery) -> Vec<StoredMessage> {
        let matching = |m: &&StoredMessage| q.matches(m);
        let offset = q.offset.unwrap_or(0);
        let limit = q.limit.unwrap_or(usize::MAX);
        match q.order {
            Order::Asc => self
                .messages
                .values()
                .filter(matching)
                .skip(offset)
                .take(limit)
                .cloned()
                .collect(),
            Order::Desc => self
                .messages
                .values()
                .rev()
                .filter(matching)
                .skip(offset)
                .take(limit)
                .cloned()
                .collect(),
        }
    }

    fn message_by_id_prefix(&self, prefix: &str) -> Result<Option<StoredMessage>, StoreError> {
        if prefix.is_empty() {
            return Ok(None);
        }
        if let Some(key) = self.by_id.get(prefix) {
            return Ok(self.messages.get(key).cloned());
        }
        let by_prefix: Vec<&Key> = self
            .by_id
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .map(|(_, k)| k)
            .take(2)
            .collect();
        let candidates = if by_prefix.is_empty() {
            // A unique suffix: the short id people see.
            self.by_id
                .iter()
                .filter(|(id, _)| id.ends_with(prefix))
                .map(|(_, k)| k)
                .take(2)
                .collect()
        } else {
            by_prefix
        };
        match candidates.as_slice() {
            [] => Ok(self
                // Not a stored id: it may be the SEND id the sender saw.
                .messages
                .values()
                .filter(|m| m.source_id.as_deref() == Some(prefix))
                .min_by_key(|m| m.ts)
                .cloned()),
            [one] => Ok(self.messages.get(*one).cloned()),
            _ => {
                let count = self
                    .by_id
                    .keys()
                    .filter(|id| id.starts_with(prefix))
                    .count()
                    .max(self.by_id.keys().filter(|id| id.ends_with(prefix)).count());
                Err(StoreError::AmbiguousId {
                    prefix: prefix.to_string(),
                    count,
                })
            }
        }
    }

    fn pending_for(&self, agent: &str) -> Vec<StoredMessage> {
        if is_channel_recipient(agent) {
            // Channel rows are never indexed as pending; answer like SQL would.
            return self
                .messages
                .values()
                .filter(|m| m.to == agent && m.status.is_pending())
                .cloned()
                .collect();
        }
        self.pending_by_to
            .get(agent)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| self.messages.get(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn session_by_resume_token(&self, token: &str) -> Option<SessionRecord> {
        self.sessions
            .values()
            .filter(|(_, s)| s.resume_token.as_deref() == Some(token))
            .max_by_key(|(seq, s)| (s.started_at, *seq))
            .map(|(_, s)| s.clone())
    }

    fn max_seq_by_session(&self, session_id: &str) -> Vec<SeqSeed> {
        let mut seeds: BTreeMap<(String, Option<String>), i64> = BTreeMap::new();
        for m in self.messages.values() {
            if m.delivery_session_id.as_deref() != Some(session_id) {
                continue;
            }
            let Some(seq) = m.delivery_seq else { continue };
            seeds
                .entry((m.from.clone(), m.topic.clone()))
                .and_modify(|max| *max = (*max).max(seq))
                .or_insert(seq);
        }
        seeds
            .into_iter()
            .map(|((from, topic), seq)| (from, topic, seq))
            .collect()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            message_count: count(self.messages.len()),
            pending_count: count(self.pending.len()),
            session_count: count(self.sessions.len()),
            agent_count: count(self.agents.len()),
            oldest_message_ts: self.messages.keys().next().map(|(ts, _)| *ts),
        }
    }
}

/// The signed message id and signature time a stored row's `_sig` carries, if it is signed.
fn signed_id_and_time(row: &StoredMessage) -> Option<(String, i64)> {
    row.sig.as_ref()?.signed_id_and_time()
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new(crate::config::DEFAULT_MEMORY_MAX_MESSAGES)
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn persistent(&self) -> bool {
        false
    }

    /// In-memory operations cannot fail, so every batch applies completely.
    fn apply(&mut self, batch: &[WriteOp]) -> Result<(), StoreError> {
        for op in batch {
            self.apply_op(op);
        }
        Ok(())
    }

    fn query(&mut self, q: &Query) -> Result<QueryResult, StoreError> {
        Ok(match q {
            Query::Messages(mq) => QueryResult::Messages(self.messages(mq)),
            Query::MessageByIdPrefix(prefix) => {
                QueryResult::Message(self.message_by_id_prefix(prefix)?)
            }
            Query::PendingFor { agent } => QueryResult::Messages(self.pending_for(agent)),
            Query::SessionByResumeToken(token) => {
                QueryResult::Session(self.session_by_resume_token(token))
            }
            Query::MaxSeqBySession { session_id } => {
                QueryResult::SeqSeeds(self.max_seq_by_session(session_id))
            }
            Query::Agents => QueryResult::Agents(self.agents.values().cloned().collect()),
            Query::ChannelMemberships => {
                QueryResult::Memberships(self.memberships.values().cloned().collect())
            }
            Query::Proposals => QueryResult::Proposals(self.proposals.values().cloned().collect()),
            // Every row is looked at: no skew needs allowing for.
            Query::RecentSignatures(replayable) => QueryResult::Signatures(
                self.signatures
                    .iter()
                    .filter(|(_, t)| replayable.admits(**t))
                    .map(|((s, m), t)| (s.clone(), m.clone(), *t))
                    // Stored signed messages carry their signature in the row.
                    .chain(self.messages.values().filter_map(|row| {
                        let (m, t) = signed_id_and_time(row)?;
                        replayable.admits(t).then(|| (row.from.clone(), m, t))
                    }))
                    .collect(),
            ),
            Query::Stats => QueryResult::Stats(self.stats()),
            Query::ContextSnapshot { agent } => {
                QueryResult::ContextSnapshot(self.snapshots.get(agent).cloned())
            }
            Query::RecentSendIds { since, limit } => {
                // `messages` is keyed by (ts, insertion order): newest last.
                let mut rows: Vec<(String, String)> = self
                    .messages
                    .values()
                    .rev()
                    .take_while(|row| row.ts >= *since)
                    .filter(|row| row.sig.is_none())
                    .filter_map(|row| Some((row.from.clone(), row.source_id.clone()?)))
                    .take(*limit)
                    .collect();
                rows.reverse();
                QueryResult::SendIds(rows)
            }
            Query::OwedBroadcasts { since } => {
                let mut owed: Vec<OwedBroadcast> = self
                    .owed
                    .values()
                    .filter(|o| o.updated_at >= *since)
                    .cloned()
                    .collect();
                // The map's order is (sender, id); a stable sort by time keeps it for ties.
                owed.sort_by_key(|o| o.updated_at);
                QueryResult::Owed(owed)
            }
            Query::Conversation {
                agent,
                channels,
                since_ts,
                until_ts,
                limit,
            } => QueryResult::Messages(
                self.messages
                    .values()
                    .rev()
                    .filter(|m| since_ts.is_none_or(|since| m.ts >= since))
                    .filter(|m| until_ts.is_none_or(|until| m.ts < until))
                    .filter(|m| &m.from == agent || &m.to == agent || channels.contains(&m.to))
                    .take(*limit)
                    .cloned()
                    .collect(),
            ),
        })
    }

    fn cleanup(&mut self, older_than_ts: i64) -> Result<u64, StoreError> {
        let doomed: Vec<Key> = self.settled.range(..(older_than_ts, 0)).copied().collect();
        for key in &doomed {
            self.remove_key(*key);
        }
        Ok(doomed.len() as u64)
    }

    fn evicted_pending(&self) -> u64 {
        self.evicted_pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MessageStatus;

    fn msg(id: &str, ts: i64, status: MessageStatus) -> WriteOp {
        let mut m = StoredMessage::new(id, ts, "a", "b", "x");
        m.status = status;
        WriteOp::InsertMessage(m)
    }

    fn ids(b: &MemoryBackend) -> Vec<String> {
        b.messages.values().map(|m| m.id.clone()).collect()
    }

    #[test]
    fn evicts_oldest_settled_message_first() -> Result<(), StoreError> {
        let mut b = MemoryBackend::new(3);
        b.apply(&[
            msg("p1", 1, MessageStatus::Unread),
            msg("s1", 2, MessageStatus::Acked),
            msg("s2", 3, MessageStatus::Failed),
            msg("p2", 4, MessageStatus::Read),
        ])?;
        assert_eq!(ids(&b), ["p1", "s2", "p2"]);
        assert_eq!(b.evicted_pending(), 0);
        Ok(())
    }

    #[test]
    fn evicts_oldest_pending_when_everything_is_pending() -> Result<(), StoreError> {
        let mut b = MemoryBackend::new(2);
        b.apply(&[
            msg("p1", 1, MessageStatus::Unread),
            msg("p2", 2, MessageStatus::Unread),
            msg("p3", 3, MessageStatus::Read),
        ])?;
        assert_eq!(ids(&b), ["p2", "p3"]);
        assert_eq!(b.evicted_pending(), 1);
        assert_eq!(b.len(), 2);
        Ok(())
    }

    #[test]
    fn status_change_moves_message_between_indexes() -> Result<(), StoreError> {
        let mut b = MemoryBackend::new(10);
        b.apply(&[msg("p1", 1, MessageStatus::Unread)])?;
        assert_eq!(b.pending_for("b").len(), 1);
        b.apply(&[WriteOp::SetStatus {
            id: "p1".into(),
            status: MessageStatus::Acked,
            last_error: None,
        }])?;
        assert!(b.pending_for("b").is_empty());
        assert!(
            b.pending_by_to.is_empty(),
            "empty recipient entries are pruned"
        );
        assert_eq!(b.settled.len(), 1);
        Ok(())
    }
}
