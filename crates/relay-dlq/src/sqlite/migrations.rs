//! Versioned schema of the `dead_letters` table in a SQLite file.
//!
//! The file is shared with the relay's message store, which versions its own
//! tables with `PRAGMA user_version`; the dead letter queue therefore keeps
//! its version in a table of its own, `dlq_schema_version` (one row per
//! applied migration), and touches no other table.
//!
//! Migration 1 creates `dead_letters`, or adopts an existing one written by
//! an older relay: it keeps that table's column names, adds the columns the
//! older layout lacks, keeps only the newest row of each
//! `(message_id, to_agent)` pair and builds the indexes.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::DlqError;
use crate::sql::{DEDUPE, INDEXES};

/// One schema step.
struct Migration {
    version: i64,
    description: &'static str,
    apply: fn(&Transaction<'_>) -> Result<(), DlqError>,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "dead_letters table (adopts an older dead_letters layout)",
    apply: migration_1,
}];

/// Schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS dlq_schema_version (
    version INTEGER PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)";

/// Highest applied version (0 for a file without the dead letter schema).
pub(crate) fn current_version(conn: &Connection) -> Result<i64, DlqError> {
    conn.execute_batch(CREATE_VERSION_TABLE)?;
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM dlq_schema_version",
        [],
        |row| row.get(0),
    )?)
}

/// Bring the schema up to [`latest_version`]; each migration runs in its own
/// `IMMEDIATE` transaction, so two processes opening the same file cannot
/// both apply it. Returns how many migrations ran.
pub(crate) fn migrate(conn: &mut Connection) -> Result<usize, DlqError> {
    let latest = latest_version();
    let mut applied = 0;
    for migration in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = current_version(&tx)?;
        if current > latest {
            return Err(DlqError::Migration(format!(
                "dead letter schema version {current} is newer than the newest this build \
                 understands ({latest}); upgrade agent-relay"
            )));
        }
        if migration.version <= current {
            continue;
        }
        (migration.apply)(&tx).map_err(|e| {
            DlqError::Migration(format!(
                "migration {} ({}) failed: {e}",
                migration.version, migration.description
            ))
        })?;
        tx.execute(
            "INSERT INTO dlq_schema_version (version, description, applied_at) \
             VALUES (?1, ?2, ?3)",
            rusqlite::params![migration.version, migration.description, wall_clock_ms()],
        )?;
        tx.commit()?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied dead letter schema migration"
        );
        applied += 1;
    }
    Ok(applied)
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

const CREATE_TABLE: &str = "CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL,
    msg_type TEXT NOT NULL DEFAULT 'SEND',
    from_agent TEXT NOT NULL,
    to_agent TEXT NOT NULL,
    original_to TEXT,
    topic TEXT,
    kind TEXT NOT NULL DEFAULT 'message',
    body TEXT NOT NULL,
    data TEXT,
    payload_meta TEXT,
    payload_extra TEXT,
    thread TEXT,
    sig TEXT,
    original_ts INTEGER NOT NULL,
    dlq_ts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error_message TEXT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    ttl_ms INTEGER,
    last_attempt_ts INTEGER,
    dlq_retry_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    next_retry_at INTEGER,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    acknowledged_ts INTEGER,
    acknowledged_by TEXT
)";

/// Columns an adopted table must already have.
const REQUIRED: &[&str] = &[
    "id",
    "message_id",
    "from_agent",
    "to_agent",
    "body",
    "original_ts",
    "dlq_ts",
    "reason",
];

/// Columns added to an adopted table when missing.
const OPTIONAL: &[(&str, &str)] = &[
    ("msg_type", "TEXT NOT NULL DEFAULT 'SEND'"),
    ("original_to", "TEXT"),
    ("topic", "TEXT"),
    ("kind", "TEXT NOT NULL DEFAULT 'message'"),
    ("data", "TEXT"),
    ("payload_meta", "TEXT"),
    ("payload_extra", "TEXT"),
    ("thread", "TEXT"),
    ("sig", "TEXT"),
    ("error_message", "TEXT"),
    ("attempt_count", "INTEGER NOT NULL DEFAULT 0"),
    ("ttl_ms", "INTEGER"),
    ("last_attempt_ts", "INTEGER"),
    ("dlq_retry_count", "INTEGER NOT NULL DEFAULT 0"),
    ("state", "TEXT NOT NULL DEFAULT 'pending'"),
    ("next_retry_at", "INTEGER"),
    ("acknowledged", "INTEGER NOT NULL DEFAULT 0"),
    ("acknowledged_ts", "INTEGER"),
    ("acknowledged_by", "TEXT"),
];

fn columns(conn: &Connection) -> Result<Vec<String>, DlqError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('dead_letters')")?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

fn migration_1(tx: &Transaction<'_>) -> Result<(), DlqError> {
    let existing = columns(tx)?;
    if existing.is_empty() {
        tx.execute_batch(CREATE_TABLE)?;
    } else {
        let has = |name: &str| existing.iter().any(|c| c.eq_ignore_ascii_case(name));
        if let Some(missing) = REQUIRED.iter().find(|c| !has(c)) {
            return Err(DlqError::Migration(format!(
                "the existing dead_letters table has no column {missing}; it was not written \
                 by agent-relay: rename or drop it"
            )));
        }
        for (column, decl) in OPTIONAL {
            if !has(column) {
                tx.execute_batch(&format!(
                    "ALTER TABLE dead_letters ADD COLUMN {column} {decl}"
                ))?;
                tracing::debug!(column, "added missing dead_letters column");
            }
        }
        let removed = tx.execute(DEDUPE, [])?;
        if removed > 0 {
            tracing::warn!(
                removed,
                "removed older duplicate dead letters (same message and target)"
            );
        }
    }
    for index in INDEXES {
        tx.execute_batch(index)?;
    }
    Ok(())
}
