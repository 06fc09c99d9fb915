//! Applying write operations, one statement group per [`WriteOp`].

use rusqlite::{params, Connection};

use super::rows::{for_each_signed_row, SignatureParam};
use super::{json_text, SNAPSHOT_COLUMNS};
use crate::error::StoreError;
use crate::types::{member_key, WriteOp};

const INSERT_MESSAGE: &str = "INSERT OR REPLACE INTO messages (id, ts, sender, recipient, topic, \
    kind, body, data, payload_meta, payload_extra, thread, delivery_seq, delivery_session_id, \
    session_id, status, is_urgent, is_broadcast, original_to, source_id, sig, attempts, last_error) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
    ?20, ?21, ?22)";

pub(super) const BUMP_SESSION_COUNT: &str =
    "UPDATE sessions SET message_count = COALESCE(message_count, 0) + ?2 WHERE id = ?1";

pub(super) const MESSAGE_EXISTS: &str = "SELECT 1 FROM messages WHERE id = ?1";

const START_SESSION: &str = "INSERT INTO sessions \
    (id, agent_name, cli, started_at, ended_at, resume_token, closed_by, message_count) \
    VALUES (?1, ?2, ?3, ?4, NULL, ?5, NULL, ?6) \
    ON CONFLICT(id) DO UPDATE SET agent_name = excluded.agent_name, cli = excluded.cli, \
    resume_token = excluded.resume_token, ended_at = NULL, closed_by = NULL";

const UPSERT_AGENT: &str = "INSERT INTO agents (name, entity_type, cli, program, model, task, \
    working_directory, team, display_name, first_seen, last_seen, messages_sent, messages_received) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
    ON CONFLICT(name) DO UPDATE SET entity_type = excluded.entity_type, cli = excluded.cli, \
    program = excluded.program, model = excluded.model, task = excluded.task, \
    working_directory = excluded.working_directory, team = excluded.team, \
    display_name = excluded.display_name, \
    first_seen = MIN(agents.first_seen, excluded.first_seen), last_seen = excluded.last_seen, \
    messages_sent = excluded.messages_sent, messages_received = excluded.messages_received";

pub(super) fn apply_op(conn: &Connection, op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::InsertMessage(m) => {
            conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
                m.id,
                m.ts,
                m.from,
                m.to,
                m.topic,
                m.kind,
                m.body,
                json_text(&m.data)?,
                json_text(&m.payload_meta)?,
                json_text(&m.payload_extra)?,
                m.thread,
                m.delivery_seq,
                m.delivery_session_id,
                m.session_id,
                m.status.as_str(),
                m.is_urgent,
                m.is_broadcast,
                m.original_to,
                m.source_id,
                m.sig
                    .as_ref()
                    .map(|sig| SignatureParam::new(sig, m.source_id.as_deref())),
                m.attempts,
                m.last_error,
            ])?;
        }
        WriteOp::SetStatus {
            id,
            status,
            last_error,
        } => {
            conn.prepare_cached(
                "UPDATE messages SET status = ?2, last_error = COALESCE(?3, last_error) \
                 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str(), last_error])?;
        }
        WriteOp::SetDelivery {
            id,
            session_id,
            seq,
            status,
        } => {
            conn.prepare_cached(
                "UPDATE messages SET delivery_session_id = ?2, delivery_seq = ?3, status = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![id, session_id, seq, status.as_str()])?;
        }
        WriteOp::IncrementAttempts { id } => {
            conn.prepare_cached("UPDATE messages SET attempts = attempts + 1 WHERE id = ?1")?
                .execute([id])?;
        }
        WriteOp::StartSession(s) => {
            conn.prepare_cached(START_SESSION)?.execute(params![
                s.id,
                s.agent_name,
                s.cli,
                s.started_at,
                s.resume_token,
                s.message_count,
            ])?;
        }
        WriteOp::EndSession {
            id,
            ended_at,
            closed_by,
        } => {
            conn.prepare_cached("UPDATE sessions SET ended_at = ?2, closed_by = ?3 WHERE id = ?1")?
                .execute(params![id, ended_at, closed_by])?;
        }
        WriteOp::UpsertAgent(a) => {
            conn.prepare_cached(UPSERT_AGENT)?.execute(params![
                a.name,
                a.entity_type,
                a.cli,
                a.program,
                a.model,
                a.task,
                a.working_directory,
                a.team,
                a.display_name,
                a.first_seen,
                a.last_seen,
                a.messages_sent,
                a.messages_received,
            ])?;
        }
        WriteOp::RemoveAgent {
            name,
            remove_messages,
            replayable,
        } => {
            conn.prepare_cached("DELETE FROM agents WHERE name = ?1")?
                .execute([name])?;
            conn.prepare_cached("DELETE FROM sessions WHERE agent_name = ?1")?
                .execute([name])?;
            conn.prepare_cached("DELETE FROM channel_members WHERE member_key = ?1")?
                .execute([member_key(name)])?;
            conn.prepare_cached("DELETE FROM context_snapshots WHERE agent = ?1")?
                .execute([name])?;
            if *remove_messages {
                // Signatures live in the rows about to go: keep them for replay protection.
                let mut remember = conn.prepare_cached(
                    "INSERT OR IGNORE INTO signature_replay (signer, m, t) VALUES (?1, ?2, ?3)",
                )?;
                for_each_signed_row(
                    conn,
                    "WHERE (sender = ?1 OR recipient = ?1) AND sig IS NOT NULL AND ts >= ?2",
                    params![name, replayable.earliest_row_ts()],
                    |signer, m, t| {
                        if replayable.admits(t) {
                            remember.execute(params![signer, m, t])?;
                        }
                        Ok(())
                    },
                )?;
                conn.prepare_cached("DELETE FROM messages WHERE sender = ?1 OR recipient = ?1")?
                    .execute([name])?;
            }
        }
        WriteOp::JoinChannel(m) => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO channel_members (channel, member, member_key, joined_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                m.channel,
                m.member,
                member_key(&m.member),
                m.joined_at
            ])?;
        }
        WriteOp::LeaveChannel { channel, member } => {
            conn.prepare_cached(
                "DELETE FROM channel_members WHERE channel = ?1 AND member_key = ?2",
            )?
            .execute(params![channel, member_key(member)])?;
        }
        WriteOp::UpsertProposal(p) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO consensus_proposals (id, status, updated_at, body) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![p.id, p.status, p.updated_at, p.body.to_string()])?;
        }
        WriteOp::RecordSignature { signer, m, t } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO signature_replay (signer, m, t) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![signer, m, t])?;
        }
        WriteOp::PruneSignatures { before } => {
            conn.prepare_cached("DELETE FROM signature_replay WHERE t < ?1")?
                .execute(params![before])?;
        }
        WriteOp::SetOwed(owed) => {
            conn.prepare_cached("DELETE FROM owed_broadcasts WHERE sender = ?1 AND id = ?2")?
                .execute(params![owed.sender, owed.id])?;
            let mut insert = conn.prepare_cached(
                "INSERT OR REPLACE INTO owed_broadcasts (sender, id, recipient, updated_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for recipient in &owed.recipients {
                insert.execute(params![owed.sender, owed.id, recipient, owed.updated_at])?;
            }
        }
        WriteOp::PruneOwed { before } => {
            conn.prepare_cached("DELETE FROM owed_broadcasts WHERE updated_at < ?1")?
                .execute(params![before])?;
        }
        WriteOp::PutContextSnapshot(c) => {
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO context_snapshots ({SNAPSHOT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                c.agent,
                c.id,
                c.created_at,
                c.content,
                c.tokens,
                c.original_tokens,
                c.target_tokens,
                c.message_count,
                c.outcome,
                c.report.to_string(),
                c.messages.to_string(),
                c.covered_until,
            ])?;
        }
        WriteOp::PruneProposals { settled_before } => {
            conn.prepare_cached(
                "DELETE FROM consensus_proposals WHERE status != 'pending' AND updated_at < ?1",
            )?
            .execute(params![settled_before])?;
        }
    }
    Ok(())
}
