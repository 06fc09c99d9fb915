//! Versioned schema of the `dead_letters` table in PostgreSQL.
//!
//! Same layout and column names as the SQLite table, with `JSONB` payload
//! columns, `BIGINT` timestamps and a `BOOLEAN` acknowledged flag. The
//! version lives in `dlq_schema_version` (one row per applied migration).
//! Migrations run in one transaction under an advisory lock, so daemons
//! starting together cannot apply them twice.

use deadpool_postgres::Object;

use super::pg_error;
use crate::error::DlqError;
use crate::sql::{DEDUPE, INDEXES};

/// Advisory lock key serialising migrations ("relay_dl" in ASCII).
const MIGRATION_LOCK: i64 = 0x7265_6c61_795f_646c;

struct Migration {
    version: i64,
    description: &'static str,
    statements: &'static [&'static str],
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "dead_letters table",
    statements: &[
        "CREATE TABLE IF NOT EXISTS dead_letters (
            id TEXT PRIMARY KEY,
            message_id TEXT NOT NULL,
            msg_type TEXT NOT NULL DEFAULT 'SEND',
            from_agent TEXT NOT NULL,
            to_agent TEXT NOT NULL,
            original_to TEXT,
            topic TEXT,
            kind TEXT NOT NULL DEFAULT 'message',
            body TEXT NOT NULL,
            data JSONB,
            payload_meta JSONB,
            payload_extra JSONB,
            thread TEXT,
            sig JSONB,
            original_ts BIGINT NOT NULL,
            dlq_ts BIGINT NOT NULL,
            reason TEXT NOT NULL,
            error_message TEXT,
            attempt_count BIGINT NOT NULL DEFAULT 0,
            ttl_ms BIGINT,
            last_attempt_ts BIGINT,
            dlq_retry_count BIGINT NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending',
            next_retry_at BIGINT,
            acknowledged BOOLEAN NOT NULL DEFAULT FALSE,
            acknowledged_ts BIGINT,
            acknowledged_by TEXT
        )",
        // Columns an older dead_letters layout may lack.
        "ALTER TABLE dead_letters
            ADD COLUMN IF NOT EXISTS msg_type TEXT NOT NULL DEFAULT 'SEND',
            ADD COLUMN IF NOT EXISTS original_to TEXT,
            ADD COLUMN IF NOT EXISTS payload_meta JSONB,
            ADD COLUMN IF NOT EXISTS payload_extra JSONB,
            ADD COLUMN IF NOT EXISTS sig JSONB,
            ADD COLUMN IF NOT EXISTS ttl_ms BIGINT,
            ADD COLUMN IF NOT EXISTS state TEXT NOT NULL DEFAULT 'pending',
            ADD COLUMN IF NOT EXISTS next_retry_at BIGINT",
        DEDUPE,
    ],
}];

/// Schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Create `schema` if given, then bring the dead letter schema up to
/// [`latest_version`]. Returns how many migrations ran.
pub(crate) async fn migrate(client: &mut Object, schema: Option<&str>) -> Result<usize, DlqError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    if let Some(schema) = schema {
        // `schema` was validated as a plain identifier by the config.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(pg_error)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dlq_schema_version (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .await
    .map_err(pg_error)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM dlq_schema_version",
            &[],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    let latest = latest_version();
    if current > latest {
        return Err(DlqError::Migration(format!(
            "dead letter schema version {current} is newer than the newest this build \
             understands ({latest}); upgrade agent-relay"
        )));
    }
    let mut applied = 0;
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        for statement in migration.statements {
            tx.batch_execute(statement).await.map_err(|e| {
                DlqError::Migration(format!(
                    "migration {} ({}) failed: {}",
                    migration.version,
                    migration.description,
                    pg_error(e)
                ))
            })?;
        }
        for index in INDEXES {
            tx.batch_execute(index).await.map_err(pg_error)?;
        }
        tx.execute(
            "INSERT INTO dlq_schema_version (version, description, applied_at) \
             VALUES ($1, $2, (extract(epoch from now()) * 1000)::BIGINT)",
            &[&migration.version, &migration.description],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied dead letter schema migration (PostgreSQL)"
        );
        applied += 1;
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(applied)
}
