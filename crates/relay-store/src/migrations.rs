//! Versioned SQLite schema.
//!
//! The schema version lives in `PRAGMA user_version`. `MIGRATIONS` is an
//! ordered list; every migration newer than the stored version runs in its
//! own transaction, which also bumps `user_version`, so a failed migration
//! leaves the database exactly as it was.
//!
//! Migration 1 creates the schema on an empty database and also adopts a
//! database written by the original TypeScript relay (which never set
//! `user_version`): it keeps that layout's table and column names
//! (`messages.sender`, `messages.recipient`, ...) so tools reading the file
//! keep working, and adds whatever columns the older layout lacks.

use rusqlite::{Connection, Transaction};

use crate::error::StoreError;

/// One schema step.
pub(crate) struct Migration {
    /// Value stored in `user_version` once this migration is applied.
    pub version: i64,
    pub description: &'static str,
    pub apply: fn(&Transaction<'_>) -> Result<(), StoreError>,
}

/// All migrations, oldest first. Versions must be 1, 2, 3, ... in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "relay schema (adopts the original relay's messages/sessions tables)",
        apply: migration_1,
    },
    Migration {
        version: 2,
        description: "index only pending messages for the per-recipient backlog",
        apply: migration_2,
    },
    Migration {
        version: 3,
        description: "consensus proposals",
        apply: migration_3,
    },
    Migration {
        version: 4,
        description: "signature replay cache",
        apply: migration_4,
    },
    Migration {
        version: 5,
        description: "context compaction snapshots",
        apply: migration_5,
    },
    Migration {
        version: 6,
        description: "messages.sig may hold packed signatures (BLOB)",
        apply: migration_6,
    },
    Migration {
        version: 7,
        description: "broadcasts still owed to recipients that refused them for now",
        apply: migration_7,
    },
];

fn migration_7(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS owed_broadcasts (
             sender TEXT NOT NULL,
             id TEXT NOT NULL,
             recipient TEXT NOT NULL,
             updated_at INTEGER NOT NULL,
             PRIMARY KEY (sender, id, recipient)
         );
         CREATE INDEX IF NOT EXISTS idx_owed_broadcasts_updated ON owed_broadcasts (updated_at);",
    )?;
    Ok(())
}

/// Changes no table: from this version on `messages.sig` holds BLOBs (see `packed_sig`) as well
/// as JSON text. The version bump is what matters: a build that reads `sig` only as text refuses
/// the database instead of misreading it.
fn migration_6(_tx: &Transaction<'_>) -> Result<(), StoreError> {
    Ok(())
}

fn migration_5(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS context_snapshots (
             agent TEXT PRIMARY KEY,
             id TEXT NOT NULL,
             created_at INTEGER NOT NULL,
             content TEXT NOT NULL,
             tokens INTEGER NOT NULL,
             original_tokens INTEGER NOT NULL,
             target_tokens INTEGER NOT NULL,
             message_count INTEGER NOT NULL,
             outcome TEXT NOT NULL,
             report TEXT NOT NULL,
             messages TEXT NOT NULL,
             covered_until INTEGER NOT NULL
         );",
    )?;
    Ok(())
}

fn migration_4(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS signature_replay (
             signer TEXT NOT NULL,
             m TEXT NOT NULL,
             t INTEGER NOT NULL,
             PRIMARY KEY (signer, m)
         );
         CREATE INDEX IF NOT EXISTS idx_signature_replay_t ON signature_replay (t);",
    )?;
    Ok(())
}

fn migration_3(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS consensus_proposals (
             id TEXT PRIMARY KEY,
             status TEXT NOT NULL,
             updated_at INTEGER NOT NULL,
             body TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS idx_consensus_status ON consensus_proposals (status, updated_at);",
    )?;
    Ok(())
}

/// Acknowledging a message used to rewrite its `(recipient, status, ts)` index entry; a partial
/// index over pending rows only turns that into a removal, and stays small because delivered
/// messages leave it.
fn migration_2(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS idx_messages_pending;
         CREATE INDEX IF NOT EXISTS idx_messages_pending_only ON messages (recipient, ts)
             WHERE status IN ('unread', 'read');",
    )?;
    Ok(())
}

/// Schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Current `user_version` of the database.
pub(crate) fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Bring the schema up to [`latest_version`]. Returns how many migrations ran.
pub(crate) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let current = current_version(conn)?;
    let latest = latest_version();
    if current > latest {
        return Err(StoreError::Migration(format!(
            "database schema version {current} is newer than the newest this build understands ({latest})"
        )));
    }
    let mut applied = 0;
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction()?;
        (migration.apply)(&tx).map_err(|e| {
            StoreError::Migration(format!(
                "migration {} ({}) failed: {e}",
                migration.version, migration.description
            ))
        })?;
        tx.pragma_update(None, "user_version", migration.version)?;
        tx.commit()?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied store schema migration"
        );
        applied += 1;
    }
    Ok(applied)
}

/// Names of the columns of `table` (empty when the table does not exist).
fn columns(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// Add each `(column, declaration)` missing from `table`, then check that the
/// `required` columns (which cannot be added to a populated table) exist.
fn ensure_columns(
    conn: &Connection,
    table: &str,
    required: &[&str],
    optional: &[(&str, &str)],
) -> Result<(), StoreError> {
    let existing = columns(conn, table)?;
    let has = |name: &str| existing.iter().any(|c| c.eq_ignore_ascii_case(name));
    for column in required {
        if !has(column) {
            return Err(StoreError::Migration(format!(
                "existing table {table} has no column {column}"
            )));
        }
    }
    for (column, decl) in optional {
        if !has(column) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
            tracing::debug!(table, column, "added missing column");
        }
    }
    Ok(())
}

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    topic TEXT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT,
    payload_meta TEXT,
    thread TEXT,
    delivery_seq INTEGER,
    delivery_session_id TEXT,
    session_id TEXT,
    status TEXT NOT NULL DEFAULT 'unread',
    is_urgent INTEGER NOT NULL DEFAULT 0,
    is_broadcast INTEGER NOT NULL DEFAULT 0,
    payload_extra TEXT,
    original_to TEXT,
    source_id TEXT,
    sig TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    agent_name TEXT NOT NULL,
    cli TEXT,
    project_id TEXT,
    project_root TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    message_count INTEGER DEFAULT 0,
    summary TEXT,
    resume_token TEXT,
    closed_by TEXT
);
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    entity_type TEXT NOT NULL DEFAULT 'agent',
    cli TEXT,
    program TEXT,
    model TEXT,
    task TEXT,
    working_directory TEXT,
    team TEXT,
    display_name TEXT,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    messages_sent INTEGER NOT NULL DEFAULT 0,
    messages_received INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS channel_members (
    channel TEXT NOT NULL,
    member TEXT NOT NULL,
    member_key TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (channel, member_key)
);
";

const CREATE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS idx_messages_pending ON messages (recipient, status, ts);
CREATE INDEX IF NOT EXISTS idx_messages_ts ON messages (ts);
CREATE INDEX IF NOT EXISTS idx_messages_sender ON messages (sender);
CREATE INDEX IF NOT EXISTS idx_messages_thread ON messages (thread);
CREATE INDEX IF NOT EXISTS idx_messages_delivery_session ON messages (delivery_session_id);
CREATE INDEX IF NOT EXISTS idx_sessions_resume_token ON sessions (resume_token);
CREATE INDEX IF NOT EXISTS idx_sessions_agent_name ON sessions (agent_name);
";

fn migration_1(tx: &Transaction<'_>) -> Result<(), StoreError> {
    // Fresh databases get the full tables; existing ones keep theirs.
    tx.execute_batch(CREATE_TABLES)?;

    // Columns added over the original relay's lifetime, plus ours.
    ensure_columns(
        tx,
        "messages",
        &["id", "ts", "sender", "recipient", "kind", "body"],
        &[
            ("topic", "TEXT"),
            ("data", "TEXT"),
            ("payload_meta", "TEXT"),
            ("thread", "TEXT"),
            ("delivery_seq", "INTEGER"),
            ("delivery_session_id", "TEXT"),
            ("session_id", "TEXT"),
            ("status", "TEXT NOT NULL DEFAULT 'unread'"),
            ("is_urgent", "INTEGER NOT NULL DEFAULT 0"),
            ("is_broadcast", "INTEGER NOT NULL DEFAULT 0"),
            ("payload_extra", "TEXT"),
            ("original_to", "TEXT"),
            ("source_id", "TEXT"),
            ("sig", "TEXT"),
            ("attempts", "INTEGER NOT NULL DEFAULT 0"),
            ("last_error", "TEXT"),
        ],
    )?;
    ensure_columns(
        tx,
        "sessions",
        &["id", "agent_name", "started_at"],
        &[
            ("cli", "TEXT"),
            ("project_id", "TEXT"),
            ("project_root", "TEXT"),
            ("ended_at", "INTEGER"),
            ("message_count", "INTEGER DEFAULT 0"),
            ("summary", "TEXT"),
            ("resume_token", "TEXT"),
            ("closed_by", "TEXT"),
        ],
    )?;
    ensure_columns(
        tx,
        "agents",
        &["name"],
        &[
            ("entity_type", "TEXT NOT NULL DEFAULT 'agent'"),
            ("cli", "TEXT"),
            ("program", "TEXT"),
            ("model", "TEXT"),
            ("task", "TEXT"),
            ("working_directory", "TEXT"),
            ("team", "TEXT"),
            ("display_name", "TEXT"),
            ("first_seen", "INTEGER NOT NULL DEFAULT 0"),
            ("last_seen", "INTEGER NOT NULL DEFAULT 0"),
            ("messages_sent", "INTEGER NOT NULL DEFAULT 0"),
            ("messages_received", "INTEGER NOT NULL DEFAULT 0"),
        ],
    )?;
    ensure_columns(
        tx,
        "channel_members",
        &["channel", "member", "member_key", "joined_at"],
        &[],
    )?;

    tx.execute_batch(CREATE_INDEXES)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_sequential() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op() -> Result<(), StoreError> {
        let mut conn = Connection::open_in_memory()?;
        assert_eq!(migrate(&mut conn)?, MIGRATIONS.len());
        assert_eq!(current_version(&conn)?, latest_version());
        assert_eq!(migrate(&mut conn)?, 0);
        Ok(())
    }

    #[test]
    fn newer_schema_is_refused() -> Result<(), StoreError> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "user_version", latest_version() + 1)?;
        assert!(matches!(migrate(&mut conn), Err(StoreError::Migration(_))));
        Ok(())
    }

    #[test]
    fn adds_missing_columns_to_oldest_layout() -> Result<(), StoreError> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE messages (
                id TEXT PRIMARY KEY, ts INTEGER NOT NULL, sender TEXT NOT NULL,
                recipient TEXT NOT NULL, topic TEXT, kind TEXT NOT NULL,
                body TEXT NOT NULL, data TEXT, delivery_seq INTEGER,
                delivery_session_id TEXT, session_id TEXT);
             INSERT INTO messages (id, ts, sender, recipient, kind, body)
                VALUES ('m1', 5, 'a', 'b', 'message', 'hello');",
        )?;
        migrate(&mut conn)?;
        let cols = columns(&conn, "messages")?;
        for c in ["status", "is_broadcast", "attempts", "sig", "payload_extra"] {
            assert!(cols.iter().any(|x| x == c), "missing {c}");
        }
        let (status, attempts): (String, i64) = conn.query_row(
            "SELECT status, attempts FROM messages WHERE id = 'm1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!(status, "unread");
        assert_eq!(attempts, 0);
        Ok(())
    }

    #[test]
    fn incompatible_table_is_reported() -> Result<(), StoreError> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE messages (id TEXT PRIMARY KEY, text TEXT)")?;
        assert!(matches!(migrate(&mut conn), Err(StoreError::Migration(_))));
        assert_eq!(current_version(&conn)?, 0, "failed migration rolled back");
        Ok(())
    }
}
