//! SQLite backend.
//!
//! One connection, owned by the store's writer thread. The database runs in
//! WAL mode with `synchronous=NORMAL`: a commit is durable against process
//! crashes, and the group commit done by the writer thread keeps the number
//! of fsyncs low. Every statement goes through the connection's prepared
//! statement cache.
//!
//! Table and column names follow the original relay's file layout
//! (`messages.sender`, `messages.recipient`, ...); see [`crate::migrations`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

mod rows;
mod write;

use rows::{agent_from_row, for_each_signed_row, json_column, message_from_row, session_from_row};
use write::{apply_op, BUMP_SESSION_COUNT, MESSAGE_EXISTS};

use crate::backend::Backend;
use crate::error::StoreError;
use crate::migrations;
use crate::types::{
    AgentRecord, ChannelMembership, ContextSnapshot, MessageQuery, Order, OwedBroadcast,
    ProposalRecord, Query, QueryResult, SeqSeed, SessionRecord, StoreStats, StoredMessage, WriteOp,
};

/// Columns of `messages`, in the order [`message_from_row`] reads them.
const MESSAGE_COLUMNS: &str = "id, ts, sender, recipient, topic, kind, body, data, payload_meta, \
    payload_extra, thread, delivery_seq, delivery_session_id, session_id, status, is_urgent, \
    is_broadcast, original_to, source_id, sig, attempts, last_error";

const SNAPSHOT_COLUMNS: &str = "agent, id, created_at, content, tokens, original_tokens, \
    target_tokens, message_count, outcome, report, messages, covered_until";

const SESSION_COLUMNS: &str =
    "id, agent_name, cli, started_at, ended_at, resume_token, closed_by, message_count";

const AGENT_COLUMNS: &str = "name, entity_type, cli, program, model, task, working_directory, \
    team, display_name, first_seen, last_seen, messages_sent, messages_received";

/// SQL condition selecting rows that retention may delete / that are not pending.
const NOT_PENDING_SQL: &str = "(status NOT IN ('unread', 'read') OR substr(recipient, 1, 1) = '#')";

/// Durable storage in a SQLite database file.
pub struct SqliteBackend {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Open (creating if needed) the database at `path` and migrate it to the
    /// current schema. A missing parent directory is created with mode 0700
    /// and a new database file with mode 0600.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(StoreError::Config("empty SQLite database path".into()));
        }
        prepare_file(&path)?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_millis(5000))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL journal mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
        migrations::migrate(&mut conn)?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(SqliteBackend { conn, path })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::current_version(&self.conn)
    }

    fn messages(&self, q: &MessageQuery) -> Result<Vec<StoredMessage>, StoreError> {
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1");
        let mut args: Vec<SqlValue> = Vec::new();
        let mut filter = |clause: &str, value: SqlValue| {
            sql.push_str(clause);
            args.push(value);
        };
        if let Some(since) = q.since_ts {
            filter(" AND ts >= ?", SqlValue::Integer(since));
        }
        if let Some(until) = q.until_ts {
            filter(" AND ts < ?", SqlValue::Integer(until));
        }
        if let Some(from) = &q.from {
            filter(" AND sender = ?", SqlValue::Text(from.clone()));
        }
        if let Some(to) = &q.to {
            filter(" AND recipient = ?", SqlValue::Text(to.clone()));
        }
        if let Some(topic) = &q.topic {
            filter(" AND topic = ?", SqlValue::Text(topic.clone()));
        }
        if let Some(thread) = &q.thread {
            filter(" AND thread = ?", SqlValue::Text(thread.clone()));
        }
        if q.to.is_none() && !q.include_channel {
            sql.push_str(" AND substr(recipient, 1, 1) <> '#'");
        }
        if let Some(statuses) = &q.statuses {
            if statuses.is_empty() {
                sql.push_str(" AND 0");
            } else {
                let marks = vec!["?"; statuses.len()].join(", ");
                sql.push_str(&format!(" AND status IN ({marks})"));
                args.extend(
                    statuses
                        .iter()
                        .map(|s| SqlValue::Text(s.as_str().to_string())),
                );
            }
        }
        sql.push_str(match q.order {
            Order::Asc => " ORDER BY ts ASC, rowid ASC",
            Order::Desc => " ORDER BY ts DESC, rowid DESC",
        });
        if q.limit.is_some() || q.offset.is_some() {
            let limit = q.limit.map_or(-1, to_i64);
            let offset = q.offset.map_or(0, to_i64);
            sql.push_str(" LIMIT ? OFFSET ?");
            args.push(SqlValue::Integer(limit));
            args.push(SqlValue::Integer(offset));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(args), message_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn message_by_id_prefix(&self, prefix: &str) -> Result<Option<StoredMessage>, StoreError> {
        if prefix.is_empty() {
            return Ok(None);
        }
        let exact = self
            .conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
            ))?
            .query_row([prefix], message_from_row)
            .optional()?;
        if exact.is_some() {
            return Ok(exact);
        }
        // A unique prefix (the time part) or a unique suffix (the short id people see).
        let escaped = escape_glob(prefix);
        for pattern in [format!("{escaped}*"), format!("*{escaped}")] {
            if let Some(found) = self.unique_glob(prefix, &pattern)? {
                return Ok(Some(found));
            }
        }
        // Not a stored id: it may be the SEND id the sender saw. Rare (interactive lookups
        // only), so an unindexed scan is acceptable.
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE source_id = ?1 ORDER BY ts ASC, rowid ASC LIMIT 1"
            ))?
            .query_row([prefix], message_from_row)
            .optional()?)
    }

    /// The one message whose id matches `pattern`; an error when several do.
    fn unique_glob(&self, given: &str, pattern: &str) -> Result<Option<StoredMessage>, StoreError> {
        let mut matches = self
            .conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id GLOB ?1 ORDER BY id LIMIT 2"
            ))?
            .query_map([pattern], message_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        if matches.len() < 2 {
            return Ok(matches.pop());
        }
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM messages WHERE id GLOB ?1")?
            .query_row([pattern], |row| row.get(0))?;
        Err(StoreError::AmbiguousId {
            prefix: given.to_string(),
            count: usize::try_from(count).unwrap_or(usize::MAX),
        })
    }

    fn pending_for(&self, agent: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE recipient = ?1 AND status IN ('unread', 'read') ORDER BY ts ASC, rowid ASC"
        ))?;
        let rows = stmt
            .query_map([agent], message_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn session_by_resume_token(&self, token: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE resume_token = ?1 \
                 ORDER BY started_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([token], session_from_row)
            .optional()?)
    }

    fn max_seq_by_session(&self, session_id: &str) -> Result<Vec<SeqSeed>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sender, topic, MAX(delivery_seq) FROM messages \
             WHERE delivery_session_id = ?1 AND delivery_seq IS NOT NULL \
             GROUP BY sender, topic ORDER BY sender, topic",
        )?;
        let rows = stmt
            .query_map([session_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"))?;
        let rows = stmt
            .query_map([], agent_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn proposals(&self) -> Result<Vec<ProposalRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, status, updated_at, body FROM consensus_proposals ORDER BY id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, status, updated_at, body) = row?;
            match serde_json::from_str(&body) {
                Ok(body) => out.push(ProposalRecord {
                    id,
                    status,
                    updated_at,
                    body,
                }),
                Err(e) => {
                    tracing::warn!(%id, "skipping a stored proposal that is not valid JSON: {e}")
                }
            }
        }
        Ok(out)
    }

    /// One row per owed recipient; the rows of one broadcast share its time, so ordering by
    /// time, sender and id keeps them together.
    fn owed_broadcasts(&self, since: i64) -> Result<Vec<OwedBroadcast>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sender, id, recipient, updated_at FROM owed_broadcasts \
             WHERE updated_at >= ?1 ORDER BY updated_at, sender, id, recipient",
        )?;
        let mut rows = stmt.query([since])?;
        let mut out: Vec<OwedBroadcast> = Vec::new();
        while let Some(row) = rows.next()? {
            let (sender, id, recipient, updated_at): (String, String, String, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            match out.last_mut() {
                Some(last) if last.sender == sender && last.id == id => {
                    last.recipients.push(recipient)
                }
                _ => out.push(OwedBroadcast {
                    sender,
                    id,
                    recipients: vec![recipient],
                    updated_at,
                }),
            }
        }
        Ok(out)
    }

    fn context_snapshot(&self, agent: &str) -> Result<Option<ContextSnapshot>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM context_snapshots WHERE agent = ?1"
            ))?
            .query_row([agent], |row| {
                Ok(ContextSnapshot {
                    agent: row.get(0)?,
                    id: row.get(1)?,
                    created_at: row.get(2)?,
                    content: row.get(3)?,
                    tokens: row.get(4)?,
                    original_tokens: row.get(5)?,
                    target_tokens: row.get(6)?,
                    message_count: row.get(7)?,
                    outcome: row.get(8)?,
                    report: json_column(row, 9)?.unwrap_or(serde_json::Value::Null),
                    messages: json_column(row, 10)?.unwrap_or(serde_json::Value::Null),
                    covered_until: row.get(11)?,
                })
            })
            .optional()?)
    }

    /// Newest first: what `agent` sent, what was addressed to it, and what was posted to
    /// `channels`. Walks the `ts` index backwards, so it stops after `limit` matching rows.
    fn conversation(
        &self,
        agent: &str,
        channels: &[String],
        since_ts: Option<i64>,
        until_ts: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut args: Vec<SqlValue> = vec![SqlValue::Text(agent.to_string())];
        let mut sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE (sender = ?1 OR recipient = ?1");
        if !channels.is_empty() {
            let marks = vec!["?"; channels.len()].join(", ");
            sql.push_str(&format!(" OR recipient IN ({marks})"));
            args.extend(channels.iter().map(|c| SqlValue::Text(c.clone())));
        }
        sql.push(')');
        if let Some(since) = since_ts {
            sql.push_str(" AND ts >= ?");
            args.push(SqlValue::Integer(since));
        }
        if let Some(until) = until_ts {
            sql.push_str(" AND ts < ?");
            args.push(SqlValue::Integer(until));
        }
        sql.push_str(" ORDER BY ts DESC, rowid DESC LIMIT ?");
        args.push(SqlValue::Integer(to_i64(limit)));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(args), message_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn channel_memberships(&self) -> Result<Vec<ChannelMembership>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT channel, member, joined_at FROM channel_members ORDER BY channel, member_key",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok(ChannelMembership {
                    channel: row.get(0)?,
                    member: row.get(1)?,
                    joined_at: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let sql = format!(
            "SELECT (SELECT count(*) FROM messages), \
             (SELECT count(*) FROM messages WHERE NOT {NOT_PENDING_SQL}), \
             (SELECT count(*) FROM sessions), (SELECT count(*) FROM agents), \
             (SELECT min(ts) FROM messages)"
        );
        Ok(self.conn.prepare_cached(&sql)?.query_row([], |row| {
            Ok(StoreStats {
                message_count: row.get(0)?,
                pending_count: row.get(1)?,
                session_count: row.get(2)?,
                agent_count: row.get(3)?,
                oldest_message_ts: row.get(4)?,
            })
        })?)
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn persistent(&self) -> bool {
        true
    }

    fn apply(&mut self, batch: &[WriteOp]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Session message counts are summed over the batch and written once per session.
        let mut session_counts: std::collections::HashMap<&str, i64> =
            std::collections::HashMap::new();
        for op in batch {
            if let WriteOp::InsertMessage(m) = op {
                if let Some(session) = &m.session_id {
                    let exists = tx.prepare_cached(MESSAGE_EXISTS)?.exists(params![m.id])?;
                    if !exists {
                        *session_counts.entry(session.as_str()).or_insert(0) += 1;
                    }
                }
            }
            apply_op(&tx, op)?;
        }
        for (session, n) in session_counts {
            tx.prepare_cached(BUMP_SESSION_COUNT)?
                .execute(params![session, n])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn query(&mut self, q: &Query) -> Result<QueryResult, StoreError> {
        Ok(match q {
            Query::Messages(mq) => QueryResult::Messages(self.messages(mq)?),
            Query::MessageByIdPrefix(prefix) => {
                QueryResult::Message(self.message_by_id_prefix(prefix)?)
            }
            Query::PendingFor { agent } => QueryResult::Messages(self.pending_for(agent)?),
            Query::SessionByResumeToken(token) => {
                QueryResult::Session(self.session_by_resume_token(token)?)
            }
            Query::MaxSeqBySession { session_id } => {
                QueryResult::SeqSeeds(self.max_seq_by_session(session_id)?)
            }
            Query::Agents => QueryResult::Agents(self.agents()?),
            Query::ChannelMemberships => QueryResult::Memberships(self.channel_memberships()?),
            Query::Proposals => QueryResult::Proposals(self.proposals()?),
            Query::RecentSignatures(replayable) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT signer, m, t FROM signature_replay WHERE t >= ?1 ORDER BY t",
                )?;
                let mut rows = stmt
                    .query_map([replayable.since], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                // Signed messages that were stored keep their `_sig` in the row instead. A
                // signature's time is within the replay window of the daemon's clock when the
                // row is written, so rows older than `since` by more than that cannot hold one.
                for_each_signed_row(
                    &self.conn,
                    "WHERE ts >= ?1 AND sig IS NOT NULL",
                    [replayable.earliest_row_ts()],
                    |signer, m, t| {
                        if replayable.admits(t) {
                            rows.push((signer, m, t));
                        }
                        Ok(())
                    },
                )?;
                QueryResult::Signatures(rows)
            }
            Query::Stats => QueryResult::Stats(self.stats()?),
            Query::ContextSnapshot { agent } => {
                QueryResult::ContextSnapshot(self.context_snapshot(agent)?)
            }
            Query::OwedBroadcasts { since } => QueryResult::Owed(self.owed_broadcasts(*since)?),
            Query::RecentSendIds { since, limit } => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT sender, source_id FROM messages \
                     WHERE ts >= ?1 AND source_id IS NOT NULL AND sig IS NULL \
                     ORDER BY ts DESC, rowid DESC LIMIT ?2",
                )?;
                let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
                let mut rows = stmt
                    .query_map(params![since, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<(String, String)>, _>>()?;
                rows.reverse();
                QueryResult::SendIds(rows)
            }
            Query::Conversation {
                agent,
                channels,
                since_ts,
                until_ts,
                limit,
            } => QueryResult::Messages(
                self.conversation(agent, channels, *since_ts, *until_ts, *limit)?,
            ),
        })
    }

    fn cleanup(&mut self, older_than_ts: i64) -> Result<u64, StoreError> {
        let deleted = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM messages WHERE ts < ?1 AND {NOT_PENDING_SQL}"
            ))?
            .execute([older_than_ts])?;
        Ok(deleted as u64)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        // Fold the WAL back into the main file so the database is
        // self-contained once the store is closed.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Create the parent directory (0700) and an empty database file (0600) if
/// they do not exist yet. Existing files and directories are left alone.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(parent)?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Escape `*`, `?` and `[` so `text` matches literally in a GLOB pattern.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn json_text(value: &Option<serde_json::Value>) -> Result<Option<String>, StoreError> {
    Ok(value.as_ref().map(serde_json::to_string).transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SignatureJson;

    /// The clients' signature layout is written packed, anything else as text, and both read
    /// back as the text that was stored.
    #[test]
    fn signatures_are_packed_when_their_layout_allows() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut backend = SqliteBackend::open(dir.path().join("relay.db"))?;
        let packable = format!(
            r#"{{"s":"{}","k":"00112233445566ff","t":1700000000000,"a":"hmac-sha256","m":"m-1"}}"#,
            "3c".repeat(32)
        );
        let spaced =
            r#"{"s": "3c3c", "k": "00112233445566ff", "t": 1, "a": "hmac-sha256", "m": "m-2"}"#;
        let mut batch = Vec::new();
        for (id, sig) in [("m-1", packable.as_str()), ("m-2", spaced)] {
            let mut m = StoredMessage::new(id, 1, "Alice", "Bob", "hi");
            m.source_id = Some(id.to_string());
            m.sig = SignatureJson::from_text(sig.to_string());
            batch.push(WriteOp::InsertMessage(m));
        }
        backend.apply(&batch)?;
        for (id, sig, storage) in [("m-1", packable.as_str(), "blob"), ("m-2", spaced, "text")] {
            let (kind, len): (String, i64) = backend.conn.query_row(
                "SELECT typeof(sig), length(sig) FROM messages WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            assert_eq!(kind, storage, "{id}");
            if storage == "blob" {
                assert!(len < 60, "packed signature takes {len} bytes");
            }
            let read = backend.message_by_id_prefix(id)?.ok_or("row missing")?;
            assert_eq!(read.sig.as_ref().map(SignatureJson::get), Some(sig));
        }
        Ok(())
    }

    #[test]
    fn glob_escaping() {
        assert_eq!(escape_glob("abc"), "abc");
        assert_eq!(escape_glob("a*b?c[d]"), "a[*]b[?]c[[]d]");
    }

    #[cfg(unix)]
    #[test]
    fn creates_private_directory_and_file() -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested").join("relay.db");
        let backend = SqliteBackend::open(&path)?;
        assert_eq!(backend.schema_version()?, migrations::latest_version());
        let dir_mode = std::fs::metadata(dir.path().join("nested"))?
            .permissions()
            .mode();
        let file_mode = std::fs::metadata(&path)?.permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(file_mode & 0o777, 0o600);
        // SQLite gives the WAL the database file's permissions.
        let wal = dir.path().join("nested").join("relay.db-wal");
        if wal.exists() {
            assert_eq!(std::fs::metadata(&wal)?.permissions().mode() & 0o777, 0o600);
        }
        drop(backend);
        Ok(())
    }

    #[test]
    fn glob_metacharacters_in_prefix_match_literally() -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        let mut backend = SqliteBackend::open(dir.path().join("r.db"))?;
        backend.apply(&[
            WriteOp::InsertMessage(StoredMessage::new("a*1", 1, "x", "y", "b")),
            WriteOp::InsertMessage(StoredMessage::new("ab2", 2, "x", "y", "b")),
        ])?;
        let found = backend.message_by_id_prefix("a*")?;
        assert_eq!(found.map(|m| m.id).as_deref(), Some("a*1"));
        assert!(backend.message_by_id_prefix("a?")?.is_none());
        Ok(())
    }
}
